import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: request-response', () => {
  it('answers a request; oversized responses and requests fail with typed errors', async () => {
    const r = await main(() => {})
    expect(r.answer).toBe('hello client! hello client!')
    // the client's cap trips on the length prefix of the ~42 KB response
    expect(r.responseTooLarge.name).toBe('MessageTooLargeError')
    expect(r.responseTooLarge.message).toContain('1024')
    // the server refuses a request over its 64 KiB cap and resets the stream
    expect(r.serverSaw).toBe('MessageTooLargeError')
    expect(r.requestTooLarge.name).toBe('StreamClosedError')
  })
})

import { describe, expect, it } from 'vitest'
import { MessageTooLargeError, TimeoutError, KAD_DHT_PROTOCOL, PROTOCOL_PREFIX } from '../src/index.js'

describe('errors', () => {
  it('carries its class name on instances and the class, so callers can branch on err.name', () => {
    const err = new MessageTooLargeError('too big')
    expect(err.name).toBe('MessageTooLargeError')
    expect(err.name).toBe(MessageTooLargeError.name)
    expect(err).toBeInstanceOf(Error)
    expect(new TimeoutError('slow').name).toBe('TimeoutError')
  })

  it('protocol ids live under the NeuroShard prefix', () => {
    expect(KAD_DHT_PROTOCOL.startsWith(`${PROTOCOL_PREFIX}/`)).toBe(true)
  })
})

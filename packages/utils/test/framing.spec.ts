import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { timeoutSignal, toStreamError } from '../src/index.js'
import { strictLengthDecoder, varintLength } from '../src/framing.js'
import { varint } from './fixtures/hosts.js'

/** Feed the decoder one byte at a time, as lpStream does; returns the length or throws */
function decode (cap: number, bytes: number[]): number {
  const decoder = strictLengthDecoder(cap)
  const prefix = new Uint8ArrayList()

  for (const byte of bytes) {
    prefix.append(Uint8Array.of(byte))

    try {
      return decoder(prefix)
    } catch (err) {
      if (!(err instanceof RangeError)) {
        throw err
      }
    }
  }

  throw new Error('incomplete')
}

describe('strictLengthDecoder', () => {
  it('decodes minimal varints up to the cap', () => {
    for (const value of [0, 1, 127, 128, 300, 16_383, 16_384, 4 * 1024 * 1024]) {
      expect(decode(4 * 1024 * 1024, [...varint(value)])).toBe(value)
    }
  })

  it('rejects a prefix longer than the cap needs with MessageTooLargeError, before it ends', () => {
    // cap 1024 needs 2 prefix bytes; a third continuation byte can only mean more
    expect(() => decode(1024, [0xff, 0xff, 0xff, 0xff])).toThrow(expect.objectContaining({ name: 'MessageTooLargeError' }))
    expect(() => decode(1024, [0x80, 0x80])).toThrow(expect.objectContaining({ name: 'MessageTooLargeError' }))
  })

  it('rejects non-minimal encodings with MalformedMessageError', () => {
    expect(() => decode(1024, [0x80, 0x00])).toThrow(expect.objectContaining({ name: 'MalformedMessageError' }))
    expect(() => decode(1024, [0x81, 0x00])).toThrow(expect.objectContaining({ name: 'MalformedMessageError' }))
  })

  it('leaves values over the cap that fit the prefix length to lpStream\'s maxDataLength check', () => {
    // 2000 > 1024 but encodes in 2 bytes like 1024 does
    expect(decode(1024, [...varint(2000)])).toBe(2000)
  })

  it('varintLength matches the encoding', () => {
    for (const value of [0, 127, 128, 16_383, 16_384, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      expect(varintLength(value)).toBe(varint(value).length)
    }
  })
})

describe('toStreamError', () => {
  const named = (name: string): Error => Object.assign(new Error(name), { name })

  it.each([
    ['InvalidDataLengthError', 'MessageTooLargeError'],
    ['InvalidDataLengthLengthError', 'MessageTooLargeError'],
    ['StreamBufferError', 'MessageTooLargeError'],
    ['InvalidMessageLengthError', 'MalformedMessageError'],
    ['UnexpectedEOFError', 'StreamClosedError'],
    ['StreamResetError', 'StreamClosedError'],
    ['StreamAbortedError', 'StreamClosedError'],
    ['StreamStateError', 'StreamClosedError'],
    ['ConnectionClosedError', 'StreamClosedError'],
    ['MuxerClosedError', 'StreamClosedError'],
    ['UnsupportedProtocolError', 'UnsupportedProtocolError']
  ])('maps %s to %s, keeping the cause', (from, to) => {
    const original = named(from)
    const mapped = toStreamError(original)
    expect(mapped.name).toBe(to)

    if (from !== to) {
      expect(mapped.cause).toBe(original)
    }
  })

  it('prefers the aborted signal\'s reason over the error the abort caused', async () => {
    const deadline = timeoutSignal(1, { name: 'read' })
    await new Promise((resolve) => { deadline.signal.addEventListener('abort', resolve) })
    const mapped = toStreamError(named('StreamResetError'), deadline.signal)
    expect(mapped.name).toBe('TimeoutError')
    expect(mapped).toBe(deadline.signal.reason)

    const reason = new Error('caller reason')
    const controller = new AbortController()
    controller.abort(reason)
    const aborted = toStreamError(named('StreamResetError'), controller.signal)
    expect(aborted.name).toBe('AbortError')
    expect(aborted.cause).toBe(reason)
  })

  it('maps a close Event (p-event rejection) to StreamClosedError', () => {
    expect(toStreamError(new Event('close')).name).toBe('StreamClosedError')
  })
})

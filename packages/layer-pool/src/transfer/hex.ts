import { InvalidParametersError } from '@neuroshard/interface'

/** Lowercase hex of bytes */
export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Bytes of a lowercase or uppercase hex string of exactly `bytes` bytes; `InvalidParametersError` otherwise */
export function fromHex (hex: string, bytes: number, name = 'hash'): Uint8Array<ArrayBuffer> {
  if (typeof hex !== 'string' || hex.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new InvalidParametersError(`${name} must be ${bytes * 2} hex digits, got ${JSON.stringify(String(hex).slice(0, 80))}`)
  }

  return new Uint8Array(Buffer.from(hex, 'hex'))
}

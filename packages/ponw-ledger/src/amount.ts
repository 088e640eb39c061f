import { InvalidAmountError } from './errors.js'

/** 1 NEURO = 10^18 base units */
export const NEURO = 10n ** 18n

/** Largest amount any single field may carry: 2^128 - 1 base units */
export const MAX_AMOUNT = (1n << 128n) - 1n

/** Throws unless `v` is a bigint in [0, 2^128) */
export function checkAmount (v: bigint, what = 'amount'): bigint {
  if (typeof v !== 'bigint') {
    throw new InvalidAmountError(`${what} must be a bigint`)
  }
  if (v < 0n) {
    throw new InvalidAmountError(`${what} must not be negative`)
  }
  if (v > MAX_AMOUNT) {
    throw new InvalidAmountError(`${what} does not fit in 128 bits`)
  }
  return v
}

/** Minimal big-endian encoding: no leading zero byte, 0 is the empty string */
export function encodeAmount (v: bigint): Uint8Array<ArrayBuffer> {
  checkAmount(v)
  if (v === 0n) {
    return new Uint8Array(0)
  }
  let hex = v.toString(16)
  if (hex.length % 2 === 1) {
    hex = '0' + hex
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** Inverse of {@link encodeAmount}; rejects leading zeros and more than 16 bytes */
export function decodeAmount (b: Uint8Array, what = 'amount'): bigint {
  if (b.byteLength === 0) {
    return 0n
  }
  if (b.byteLength > 16) {
    throw new InvalidAmountError(`${what} is longer than 16 bytes`)
  }
  if (b[0] === 0) {
    throw new InvalidAmountError(`${what} has a leading zero byte (non-canonical)`)
  }
  return BigInt('0x' + Buffer.from(b).toString('hex'))
}

/** Formats base units as a decimal NEURO string, e.g. 1500000000000000000n → "1.5" */
export function formatNeuro (v: bigint): string {
  const neg = v < 0n
  const a = neg ? -v : v
  const whole = a / NEURO
  const frac = (a % NEURO).toString().padStart(18, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${whole}${frac.length > 0 ? '.' + frac : ''}`
}

/** Parses a decimal NEURO string ("1.5") into base units, exactly; more than 18 decimals is an error */
export function parseNeuro (s: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,18}))?$/.exec(s)
  if (m == null) {
    throw new InvalidAmountError(`not a NEURO amount: ${JSON.stringify(s)}`)
  }
  return checkAmount(BigInt(m[1]) * NEURO + BigInt((m[2] ?? '').padEnd(18, '0')))
}

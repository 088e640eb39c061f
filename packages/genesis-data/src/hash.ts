import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'

/** sha256 as lowercase hex */
export function sha256Hex (bytes: Uint8Array): string {
  return bytesToHex(nobleSha256(bytes))
}

/** sha256 digest bytes */
export function sha256 (bytes: Uint8Array): Uint8Array {
  return nobleSha256(bytes)
}

const HEX64 = /^[0-9a-f]{64}$/

/** Whether `s` is a lowercase hex sha256 */
export function isSha256Hex (s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s)
}

/**
 * Canonical JSON (the bytes the manifest hash is taken over): object keys sorted by UTF-16 code
 * units, no whitespace, strings as `JSON.stringify` writes them. Only strings, integers, booleans,
 * null, arrays and objects may appear (no fractional numbers, so every language prints them alike).
 */
export function canonicalJson (value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds only safe integers, got ${value}`)
    return String(value)
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter(k => (value as Record<string, unknown>)[k] !== undefined).sort()
    return `{${keys.map(k => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`
  }
  throw new TypeError(`cannot put ${typeof value} in canonical JSON`)
}

/** Incremental sha256 */
export function sha256Stream (): { update(bytes: Uint8Array): void, hex(): string } {
  const h = nobleSha256.create()
  return {
    update: (bytes) => { h.update(bytes) },
    hex: () => bytesToHex(h.digest())
  }
}

/**
 * GPT-2's reversible byte ↔ printable-unicode mapping, the alphabet Hugging Face's `ByteLevel`
 * pre-tokenizer and decoder use in `tokenizer.json` (byte 0x20 ' ' ↔ 'Ġ', 0x0A '\n' ↔ 'Ċ', …).
 */
function buildTables (): { byteToChar: string[], charToByte: Map<string, number> } {
  const bs: number[] = []
  for (let b = 33; b <= 126; b++) bs.push(b)
  for (let b = 161; b <= 172; b++) bs.push(b)
  for (let b = 174; b <= 255; b++) bs.push(b)
  const cs = bs.slice()
  let n = 0
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b)
      cs.push(256 + n)
      n++
    }
  }
  const byteToChar: string[] = new Array<string>(256)
  const charToByte = new Map<string, number>()
  for (let i = 0; i < bs.length; i++) {
    const ch = String.fromCharCode(cs[i])
    byteToChar[bs[i]] = ch
    charToByte.set(ch, bs[i])
  }
  return { byteToChar, charToByte }
}

const tables = buildTables()

/** `BYTE_TO_CHAR[b]` is the one-character string that stands for byte `b` */
export const BYTE_TO_CHAR: readonly string[] = tables.byteToChar
/** Inverse of {@link BYTE_TO_CHAR} */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = tables.charToByte

/** Bytes → their byte-level string (how a token is spelled in `tokenizer.json`) */
export function bytesToByteLevel (bytes: ArrayLike<number>): string {
  let s = ''
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]]
  return s
}

/** Byte-level string → bytes, or `undefined` when a character is outside the 256-character alphabet */
export function byteLevelToBytes (s: string): Uint8Array | undefined {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) {
    const b = CHAR_TO_BYTE.get(s[i])
    if (b === undefined) return undefined
    out[i] = b
  }
  return out
}

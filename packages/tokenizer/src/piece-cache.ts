/**
 * The encoder's pre-token → ids cache: an open-addressing hash table over the piece's UTF-16 code
 * units, so a hit needs no substring and no JS string hashing (this is what makes encoding fast:
 * most pieces of real text are hits). When full it is cleared (simple, O(1) amortized).
 */
export class PieceCache {
  /** Pieces longer than this (UTF-16 units) are not cached */
  static readonly MAX_PIECE = 128

  private readonly maxEntries: number
  private readonly slots: Int32Array
  private readonly mask: number
  private readonly hashes: Int32Array
  private readonly keyStart: Int32Array
  private readonly keyLen: Int32Array
  private readonly idStart: Int32Array
  private readonly idLen: Int32Array
  private chars: Uint16Array
  private ids: Int32Array
  private count = 0
  private charTop = 0
  private idTop = 0

  constructor (maxEntries: number) {
    this.maxEntries = Math.max(1, maxEntries)
    let size = 16
    while (size < this.maxEntries * 2) size *= 2
    this.slots = new Int32Array(size)
    this.mask = size - 1
    this.hashes = new Int32Array(this.maxEntries)
    this.keyStart = new Int32Array(this.maxEntries)
    this.keyLen = new Int32Array(this.maxEntries)
    this.idStart = new Int32Array(this.maxEntries)
    this.idLen = new Int32Array(this.maxEntries)
    this.chars = new Uint16Array(1024)
    this.ids = new Int32Array(1024)
  }

  get size (): number {
    return this.count
  }

  /** Hash of `text[s, e)` */
  static hash (text: string, s: number, e: number): number {
    let h = 0x811c9dc5 ^ (e - s)
    for (let i = s; i < e; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
    return h ^ (h >>> 15)
  }

  /** Appends the cached ids of `text[s, e)` to `out`; false on a miss */
  get (text: string, s: number, e: number, h: number, out: number[]): boolean {
    const len = e - s
    const slots = this.slots
    const mask = this.mask
    let slot = h & mask
    for (;;) {
      const entry = slots[slot] - 1
      if (entry < 0) return false
      if (this.hashes[entry] === h && this.keyLen[entry] === len) {
        const chars = this.chars
        let k = this.keyStart[entry]
        let i = s
        while (i < e && chars[k] === text.charCodeAt(i)) {
          i++
          k++
        }
        if (i === e) {
          const ids = this.ids
          const start = this.idStart[entry]
          const end = start + this.idLen[entry]
          for (let j = start; j < end; j++) out.push(ids[j])
          return true
        }
      }
      slot = (slot + 1) & mask
    }
  }

  set (text: string, s: number, e: number, h: number, ids: readonly number[]): void {
    const len = e - s
    if (len > PieceCache.MAX_PIECE) return
    if (this.count >= this.maxEntries) this.clear()
    if (this.charTop + len > this.chars.length) {
      const grown = new Uint16Array(Math.max(this.chars.length * 2, this.charTop + len))
      grown.set(this.chars)
      this.chars = grown
    }
    if (this.idTop + ids.length > this.ids.length) {
      const grown = new Int32Array(Math.max(this.ids.length * 2, this.idTop + ids.length))
      grown.set(this.ids)
      this.ids = grown
    }
    const entry = this.count++
    this.hashes[entry] = h
    this.keyStart[entry] = this.charTop
    this.keyLen[entry] = len
    for (let i = s; i < e; i++) this.chars[this.charTop++] = text.charCodeAt(i)
    this.idStart[entry] = this.idTop
    this.idLen[entry] = ids.length
    for (let i = 0; i < ids.length; i++) this.ids[this.idTop++] = ids[i]
    let slot = h & this.mask
    while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask
    this.slots[slot] = entry + 1
  }

  clear (): void {
    this.slots.fill(0)
    this.count = 0
    this.charTop = 0
    this.idTop = 0
  }
}

/** A small seeded PRNG (xoshiro128**): every fuzz run is reproducible from its seed */
export class Rng {
  private s: Uint32Array

  constructor (seed: number) {
    // splitmix32 to fill the state
    this.s = new Uint32Array(4)
    let x = seed >>> 0
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      this.s[i] = (z ^ (z >>> 16)) >>> 0
    }
  }

  /** uniform uint32 */
  u32 (): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0
    const t = (s[1] << 9) >>> 0
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
    s[3] = rotl(s[3], 11)
    return result
  }

  /** uniform in [0, 1) */
  next (): number { return this.u32() / 4294967296 }
  /** integer in [0, n) */
  int (n: number): number { return Math.floor(this.next() * n) }
  bool (p = 0.5): boolean { return this.next() < p }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)] }
  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }

  /** a length biased to small values, sometimes large */
  len (max = 4096): number {
    const r = this.next()
    if (r < 0.5) return this.int(8)
    if (r < 0.8) return this.int(64)
    if (r < 0.95) return this.int(512)
    return this.int(max)
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

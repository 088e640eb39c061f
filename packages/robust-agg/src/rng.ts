/**
 * A small seeded generator (SplitMix32-style mixing over a 32-bit counter, Mulberry32) so that bucketing and
 * the attack suite are reproducible without a dependency. Not cryptographic.
 */
export function createRng (seed: number): () => number {
  let a = (Math.floor(seed) >>> 0) ^ 0x9e3779b9
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Standard normal samples by the Box–Muller transform over a uniform generator */
export function createNormalRng (random: () => number): () => number {
  let spare: number | undefined
  return () => {
    if (spare != null) {
      const s = spare
      spare = undefined
      return s
    }
    let u = 0
    while (u === 0) u = random()
    const v = random()
    const r = Math.sqrt(-2 * Math.log(u))
    spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
}

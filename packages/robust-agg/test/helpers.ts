/** Build Float32 vectors from plain arrays */
export function vecs (...rows: number[][]): Float32Array[] {
  return rows.map(r => Float32Array.from(r))
}

/** Plain array of a vector */
export function arr (x: Float32Array): number[] {
  return Array.from(x)
}

/** The error a function throws (fails the test when it does not throw) */
export function thrown (fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected the call to throw')
}

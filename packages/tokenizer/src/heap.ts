/** A binary min-heap of plain numbers (the encoder packs `rank * 2^32 + position` into one) */
export class NumberHeap {
  private readonly items: number[] = []

  get size (): number {
    return this.items.length
  }

  push (v: number): void {
    const a = this.items
    let i = a.length
    a.push(v)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (a[p] <= v) break
      a[i] = a[p]
      i = p
    }
    a[i] = v
  }

  /** Smallest item; the heap must not be empty */
  pop (): number {
    const a = this.items
    const top = a[0]
    const last = a.pop() as number
    const n = a.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && a[r] < a[l] ? r : l
        if (a[c] >= last) break
        a[i] = a[c]
        i = c
      }
      a[i] = last
    }
    return top
  }
}

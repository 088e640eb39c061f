/**
 * The assignment rule (specs/layer-pool/README.md, "Assignment"): pure functions over a view of the swarm,
 * so every node, the tests and an alternate client decide alike. No coordinator: each node applies the
 * rule to the records it sees, claims a span as `loading`, and re-checks once concurrent claims arrived.
 */

import type { SpanStateName } from './records.js'

/** One span of one peer, as the assignment rule sees it */
export interface Holding {
  peer: string
  start: number
  end: number
  state: SpanStateName
  /** tokens/s the holder measured for the span (0: not measured) */
  throughput: number
  /** When the holder first claimed the span (ms since the epoch) */
  claimedAt: number
}

/** What the swarm holds in one slot */
export interface SlotView {
  /** Holders serving or training the slot */
  live: number
  /** Holders loading the slot whose claim is younger than the loading grace */
  pending: number
  /** Sum of the live holders' throughput (a holder with no measurement counts as DEFAULT_UNMEASURED_THROUGHPUT) */
  throughput: number
}

/** The throughput a live holder with no measurement yet counts for */
export const DEFAULT_UNMEASURED_THROUGHPUT = 1

export interface ViewOptions {
  now: number
  /** A `loading` claim older than this is not counted (a node that never finishes loading) */
  loadingGraceMs: number
  /** Leave this peer's holdings out (the deciding node's own) */
  exclude?: string
  /** Count only these `loading` claims (e.g. the ones that outrank the deciding node's own) */
  countPending?(holding: Holding): boolean
}

/** Per-slot live replicas, pending claims and throughput */
export function buildView (holdings: Iterable<Holding>, slotCount: number, options: ViewOptions): SlotView[] {
  const view: SlotView[] = Array.from({ length: slotCount }, () => ({ live: 0, pending: 0, throughput: 0 }))
  for (const h of holdings) {
    if (h.peer === options.exclude) continue
    const live = h.state === 'serving' || h.state === 'training'
    const pending = h.state === 'loading' && options.now - h.claimedAt <= options.loadingGraceMs &&
      (options.countPending == null || options.countPending(h))
    if (!live && !pending) continue
    for (let s = Math.max(0, h.start); s < Math.min(slotCount, h.end); s++) {
      if (live) {
        view[s].live++
        view[s].throughput += h.throughput > 0 ? h.throughput : DEFAULT_UNMEASURED_THROUGHPUT
      } else {
        view[s].pending++
      }
    }
  }
  return view
}

/** A chosen slot range and why */
export interface SpanChoice {
  start: number
  end: number
  /** Missing replicas (below minReplicas, live + pending) the span covers */
  deficit: number
}

export interface ChooseSpanOptions {
  minReplicas: number
  /** Uniform random number in [0, 1): the tie-break among equally good spans */
  random(): number
  /** Slots the span must not touch (already held by the deciding node) */
  blocked?: ReadonlySet<number>
  /** Only spans that cover a missing replica @default false */
  requireDeficit?: boolean
}

/**
 * The span a node with `budget` bytes should take: for each start, the longest span from there that fits
 * (`costs[s]` bytes per slot). Among those, in order: the most missing replicas covered (slots below
 * `minReplicas` live + pending); then the fewest replicas (ascending per-slot coverage compared
 * lexicographically); then the lowest throughput (the same for per-slot throughput: Petals' rule); then the
 * longest; then at random. `undefined` when no slot fits (or, with `requireDeficit`, none is missing).
 */
export function chooseSpan (view: readonly SlotView[], costs: readonly number[], budget: number, options: ChooseSpanOptions): SpanChoice | undefined {
  let best: { choice: SpanChoice, coverage: number[], throughput: number[], tie: number } | undefined
  for (let start = 0; start < view.length; start++) {
    if (options.blocked?.has(start) === true) continue
    const end = longestSpanEnd(start, view.length, costs, budget, options.blocked)
    if (end === start) continue
    let deficit = 0
    const coverage: number[] = []
    const throughput: number[] = []
    for (let s = start; s < end; s++) {
      const have = view[s].live + view[s].pending
      deficit += Math.max(0, options.minReplicas - have)
      coverage.push(have)
      throughput.push(view[s].throughput)
    }
    if (options.requireDeficit === true && deficit === 0) continue
    coverage.sort((a, b) => a - b)
    throughput.sort((a, b) => a - b)
    const candidate = { choice: { start, end, deficit }, coverage, throughput, tie: options.random() }
    if (best == null || better(candidate, best)) best = candidate
  }
  return best?.choice
}

/** The end (≤ `slots`) of the longest span from `start` whose slots fit `budget` and avoid `blocked` (`start`: none fits) */
function longestSpanEnd (start: number, slots: number, costs: readonly number[], budget: number, blocked?: ReadonlySet<number>): number {
  let end = start
  let used = 0
  while (end < slots && blocked?.has(end) !== true && used + costs[end] <= budget) used += costs[end++]
  return end
}

function better (a: { choice: SpanChoice, coverage: number[], throughput: number[], tie: number }, b: typeof a): boolean {
  if (a.choice.deficit !== b.choice.deficit) return a.choice.deficit > b.choice.deficit
  const c = compareAscending(a.coverage, b.coverage)
  if (c !== 0) return c < 0
  const t = compareAscending(a.throughput, b.throughput)
  if (t !== 0) return t < 0
  const la = a.choice.end - a.choice.start
  const lb = b.choice.end - b.choice.start
  if (la !== lb) return la > lb
  return a.tie < b.tie
}

/** Lexicographic comparison of two ascending lists over their common length */
function compareAscending (a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i]
  }
  return 0
}

/** Missing replicas (below `minReplicas` live + pending) that the slots of a span account for */
export function spanDeficit (view: readonly SlotView[], span: { start: number, end: number }, minReplicas: number): number {
  let deficit = 0
  for (let s = span.start; s < span.end; s++) deficit += Math.max(0, minReplicas - (view[s].live + view[s].pending))
  return deficit
}

/** Slots of a span that are below `minReplicas` (live + pending): how many a holder of the span keeps from going missing */
export function coverGain (view: readonly SlotView[], span: { start: number, end: number }, minReplicas: number): number {
  let n = 0
  for (let s = span.start; s < span.end; s++) if (view[s].live + view[s].pending < minReplicas) n++
  return n
}

/** Slots whose live + pending replicas are below `minReplicas` */
export function underReplicated (view: readonly SlotView[], minReplicas: number): number[] {
  const out: number[] = []
  view.forEach((v, i) => { if (v.live + v.pending < minReplicas) out.push(i) })
  return out
}

/** The swarm's bottleneck: the lowest per-slot throughput (0 when a slot has no live holder) */
export function bottleneckThroughput (view: readonly SlotView[]): number {
  return view.reduce((min, v) => Math.min(min, v.throughput), Number.POSITIVE_INFINITY)
}

export interface RebalanceOptions extends ChooseSpanOptions {
  /** Move when the bottleneck is below this fraction of what the move gives (Petals: 0.75) */
  balanceQuality: number
  /** The deciding node's throughput (what it adds to the slots it holds) */
  throughput: number
}

/**
 * Petals' rebalancing rule with a replica guard: leave the current span only if no slot of it would drop
 * below `minReplicas` without this node, and the swarm's bottleneck throughput today is below
 * `balanceQuality` times the bottleneck after moving to the best span. When the guard holds the node and
 * some slot has no live holder, a move that closes such a gap is taken instead (`closeGapTarget`).
 * `viewWithoutMe` must leave out the deciding node's own holdings. Returns the span to move to, or
 * `undefined` to stay.
 */
export function rebalanceTarget (viewWithoutMe: readonly SlotView[], current: { start: number, end: number }, costs: readonly number[], budget: number, options: RebalanceOptions): SpanChoice | undefined {
  for (let s = current.start; s < current.end; s++) {
    if (viewWithoutMe[s].live < options.minReplicas) return closeGapTarget(viewWithoutMe, current, costs, budget, options)
  }
  const target = chooseSpan(viewWithoutMe, costs, budget, options)
  if (target == null || (target.start === current.start && target.end === current.end)) return undefined
  const mine = Math.max(options.throughput, DEFAULT_UNMEASURED_THROUGHPUT)
  const withSpan = (span: { start: number, end: number }): SlotView[] => viewWithoutMe.map((v, i) =>
    i >= span.start && i < span.end ? { ...v, live: v.live + 1, throughput: v.throughput + mine } : v)
  const now = bottleneckThroughput(withSpan(current))
  const after = bottleneckThroughput(withSpan(target))
  return now < options.balanceQuality * after ? target : undefined
}

/**
 * A move that closes a gap (spec layer-pool 1.7.2, §5 rule 7): with fewer holders than slots × `minReplicas`
 * the replica guard can hold every node while a slot has no live holder at all (two nodes on four slots at
 * [0, 2) and [1, 3): each holds a slot only it serves, so neither may leave, and slot 3 stays unserved). Among
 * the longest spans from each start that fit `budget`, those that leave no slot of `current` without a live
 * holder are compared by the slots that would then have none (fewest first), then by the slots they share with
 * `current` (most first: less to load), then at random; the best is returned if it has fewer unserved slots
 * than staying, else `undefined`.
 */
export function closeGapTarget (viewWithoutMe: readonly SlotView[], current: { start: number, end: number }, costs: readonly number[], budget: number, options: Pick<ChooseSpanOptions, 'minReplicas' | 'random'>): SpanChoice | undefined {
  const unserved = (span: { start: number, end: number }): number => {
    let n = 0
    viewWithoutMe.forEach((v, s) => { if (v.live === 0 && (s < span.start || s >= span.end)) n++ })
    return n
  }
  const now = unserved(current)
  if (now === 0) return undefined
  let best: { choice: SpanChoice, unserved: number, shared: number, tie: number } | undefined
  for (let start = 0; start < viewWithoutMe.length; start++) {
    const end = longestSpanEnd(start, viewWithoutMe.length, costs, budget)
    if (end === start) continue
    let leavesGap = false
    for (let s = current.start; s < current.end; s++) {
      if ((s < start || s >= end) && viewWithoutMe[s].live === 0) leavesGap = true
    }
    if (leavesGap) continue
    const candidate = {
      choice: { start, end, deficit: spanDeficit(viewWithoutMe, { start, end }, options.minReplicas) },
      unserved: unserved({ start, end }),
      shared: Math.max(0, Math.min(end, current.end) - Math.max(start, current.start)),
      tie: options.random()
    }
    if (best == null || candidate.unserved < best.unserved || (candidate.unserved === best.unserved &&
      (candidate.shared > best.shared || (candidate.shared === best.shared && candidate.tie < best.tie)))) best = candidate
  }
  return best != null && best.unserved < now ? best.choice : undefined
}

/**
 * Which chains train. A pipeline stage steps in lockstep with one Driver (the pipeline refuses a training
 * request whose step is not the stage's), so two Drivers must never train through the same node. Every
 * node derives the same pairing from the same layer-pool records: Drivers in peer-id order each take the
 * first free chain of serving spans from the end of their own span to the head, preferring long spans
 * (fewer hops) and then peer-id order. A Worker accepts training only from the nodes of its own chain
 * (`trainingPeers`); while views differ for a moment the refused Driver retries, so no stage ever mixes
 * two Drivers' gradients.
 */

/** A span a peer serves, as the pairing sees it */
export interface ServedSpan {
  peer: string
  start: number
  end: number
}

/** One hop of a training chain */
export interface ChainHop {
  peer: string
  start: number
  end: number
}

/** A Driver and the hops of its training chain (slots [driverEnd, slots) in order) */
export interface TrainingChain {
  driver: string
  /** End of the Driver's own span (its span is [0, driverEnd)) */
  driverEnd: number
  hops: ChainHop[]
}

const byPeer = (a: { peer: string }, b: { peer: string }): number => a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0

/**
 * The training chains of a swarm: `spans` are the live (serving or training) spans of every peer, `slots`
 * the model's slot count (L + 2). A Driver without a free chain is left out.
 */
export function trainingChains (spans: readonly ServedSpan[], slots: number): TrainingChain[] {
  const live = spans.filter(s => Number.isSafeInteger(s.start) && Number.isSafeInteger(s.end) && s.start >= 0 && s.start < s.end && s.end <= slots)
  const drivers = live.filter(s => s.start === 0).sort((a, b) => byPeer(a, b) || b.end - a.end)
  const used = new Set<string>()
  const chains: TrainingChain[] = []
  for (const d of drivers) {
    if (used.has(d.peer)) continue
    if (d.end === slots) {
      // a Driver holding the whole model trains alone
      used.add(d.peer)
      chains.push({ driver: d.peer, driverEnd: d.end, hops: [] })
      continue
    }
    const taken = new Set<string>([d.peer])
    const hops = extend(live, d.end, slots, used, taken)
    if (hops == null) continue
    for (const p of taken) used.add(p)
    chains.push({ driver: d.peer, driverEnd: d.end, hops })
  }
  return chains
}

/** Depth-first: the first chain from `at` to `slots` over peers not used yet (long spans first) */
function extend (live: readonly ServedSpan[], at: number, slots: number, used: Set<string>, taken: Set<string>): ChainHop[] | undefined {
  if (at === slots) return []
  const candidates = live
    .filter(s => s.start === at && !used.has(s.peer) && !taken.has(s.peer))
    .sort((a, b) => (b.end - a.end) || byPeer(a, b))
  for (const c of candidates) {
    taken.add(c.peer)
    const rest = extend(live, c.end, slots, used, taken)
    if (rest != null) return [{ peer: c.peer, start: c.start, end: c.end }, ...rest]
    taken.delete(c.peer)
  }
  return undefined
}

/** The chain `peer` belongs to (as Driver or hop), if any */
export function chainOf (chains: readonly TrainingChain[], peer: string): TrainingChain | undefined {
  return chains.find(c => c.driver === peer || c.hops.some(h => h.peer === peer))
}

/** The peers `peer` may take training requests from: the other members of its chain */
export function trainingPeers (chains: readonly TrainingChain[], peer: string): Set<string> {
  const chain = chainOf(chains, peer)
  if (chain == null) return new Set()
  return new Set([chain.driver, ...chain.hops.map(h => h.peer)].filter(p => p !== peer))
}

/**
 * The peers that train `slot` in `chains`: each chain's Driver when the slot is in its span [0, driverEnd), and the
 * hop covering it. A holder of the slot not named here never trains it (a node trains in one chain only: the
 * Workers of that chain take its training requests, `trainingPeers`)
 */
export function slotTrainers (chains: readonly TrainingChain[], slot: number): Set<string> {
  const out = new Set<string>()
  for (const c of chains) {
    if (slot < c.driverEnd) out.add(c.driver)
    for (const h of c.hops) if (h.start <= slot && slot < h.end) out.add(h.peer)
  }
  return out
}

/**
 * Spans merged into their contiguous runs: [a, b) and [b, c) (or overlapping ones) become [a, c). A node
 * serves one pipeline stage per run of its spans (`NetworkNode`), so a chain or a route crosses them in one hop.
 */
export function contiguousRuns (spans: ReadonlyArray<{ start: number, end: number }>): Array<{ start: number, end: number }> {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end)
  const runs: Array<{ start: number, end: number }> = []
  for (const s of sorted) {
    const last = runs[runs.length - 1]
    if (last != null && s.start <= last.end) last.end = Math.max(last.end, s.end)
    else runs.push({ start: s.start, end: s.end })
  }
  return runs
}

/**
 * The spans training chains are made of: the `training` spans of the layer records (a node that only serves
 * announces `serving` spans and refuses training requests, so it must not be paired into a chain), each peer's
 * adjacent spans merged into the one stage it serves them with (a layer-pool record may list [0, 1) and [1, 2)
 * after a claim next to a span or a trim; as two spans of one peer no chain could use both)
 */
export function trainingSpans (records: Iterable<[string, { record: { spans: ReadonlyArray<{ start: number, end: number, state: string }> } }]>): Array<{ peer: string, start: number, end: number }> {
  const out: Array<{ peer: string, start: number, end: number }> = []
  for (const [peer, entry] of records) {
    for (const r of contiguousRuns(entry.record.spans.filter(s => s.state === 'training'))) out.push({ peer, ...r })
  }
  return out
}

/**
 * Another Driver for an inference request this Driver cannot route. A Driver never routes through itself (a
 * route names it once, as hop 0, and its router's candidates are other peers' spans), so a Driver holding
 * [0, 1) and [2, 4) has no chain once the only other holder of slot 2 is gone, while a Driver holding [0, 2)
 * can go on through this node's [2, 4) (testbed node-failover run 6: a completion waited 30 s for
 * `[1, 4) (3 candidates)` and failed). `others`: the live, unbanned spans of other peers as this node's
 * router sees them; `own`: this node's spans; `slots`: L + 2. Inference hops may run part of a span. The
 * Driver (a span starting at 0) whose chain from the end of that span exists without itself, this node's
 * spans included; the lowest peer id when several can; undefined when none.
 */
export function relayDriver (self: string, others: readonly ServedSpan[], own: ReadonlyArray<{ start: number, end: number }>, slots: number): string | undefined {
  const valid = (s: { start: number, end: number }): boolean => Number.isSafeInteger(s.start) && Number.isSafeInteger(s.end) && s.start >= 0 && s.start < s.end && s.end <= slots
  const all = [...others.filter(s => s.peer !== self), ...own.map(s => ({ peer: self, start: s.start, end: s.end }))].filter(valid)
  const drivers = [...new Set(others.filter(s => s.peer !== self && s.start === 0 && valid(s)).map(s => s.peer))].sort()
  for (const d of drivers) {
    const from = Math.max(...others.filter(s => s.peer === d && s.start === 0 && valid(s)).map(s => s.end))
    // boundaries reachable from `from` with hops of peers other than d (each hop: part of a span, from a slot it covers)
    const reached = new Set<number>([from])
    for (let at = from; at < slots; at++) {
      if (!reached.has(at)) continue
      for (const s of all) if (s.peer !== d && s.start <= at && at < s.end) for (let e = at + 1; e <= s.end; e++) reached.add(e)
    }
    if (reached.has(slots)) return d
  }
  return undefined
}

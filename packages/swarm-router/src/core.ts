/**
 * The routing core: pure functions over candidate spans, no I/O (specs/swarm-router/README.md).
 *
 * - `shortestChain`: Petals' rule — the chain from slot `from` to slot `to` with the least total cost, where a
 *   hop's cost is its RTT + the span's compute time for the request's tokens + a load penalty + a KV-cache
 *   penalty that grows as the hop's cache headroom runs out, over a graph
 *   whose vertices are slot boundaries and whose edges are candidate spans (used whole).
 * - `standbys`: for each hop, the cheapest other live candidate with the same span (switched in at once
 *   when the hop fails).
 * - `weightedChain`: SWARM's dispatch for training micro-batches and sessions — the span layout of the
 *   shortest chain, each span's replica drawn with probability ∝ capacity (throughput / (1 + load)).
 */

export interface Candidate {
  /** Peer id string */
  peer: string
  start: number
  end: number
  /** The span's measured tokens/s from its record (0: unmeasured) */
  throughput: number
  /** RTT from this node, ms (undefined: not measured) */
  rttMs?: number
  /**
   * Tokens of one more session the peer can still keep in its KV cache on this span (its record's
   * `kvTokensLeft`; undefined: unknown, assumed enough and not charged)
   */
  kvHeadroom?: number
  /** Sessions / micro-batches this router currently has on the peer */
  load?: number
  /** The weights the span serves inference with (its layer record's `quantization`) @default 'fp32' */
  quantization?: 'fp32' | 'int8' | 'int4'
  /**
   * A quantized span's group size when not 32 (its layer record's `quant_block_size`, layer-pool 1.7.0: 64 or 128)
   * @default 32
   */
  quantBlockSize?: number
}

export interface CostOptions {
  /** @default DEFAULT_UNKNOWN_RTT_MS */
  unknownRttMs: number
  /** @default DEFAULT_UNMEASURED_THROUGHPUT */
  unmeasuredThroughput: number
  /** Tokens the request carries @default 1 */
  tokens: number
  /**
   * Tokens the session will keep in each hop's KV cache (prompt + new tokens; 0: no cache, e.g. training).
   * A hop whose known headroom is below is skipped; otherwise `kvPenaltyMs · kvTokens / headroom` is added.
   * @default 0
   */
  kvTokens: number
  /** ms added for a hop whose KV headroom this session would use up (less as the headroom grows) @default DEFAULT_KV_PENALTY_MS */
  kvPenaltyMs: number
  /** ms per unit of load @default DEFAULT_LOAD_PENALTY_MS */
  loadPenaltyMs: number
  /** Hops use whole spans only (training: servers refuse partial spans) @default false */
  wholeSpans?: boolean
}

/**
 * The cost of one hop, ms (Infinity: unusable). A hop may use part `[start, end)` of the candidate's span
 * (Petals): its compute is the span's time scaled by the share of slots used. A hop with known KV headroom
 * costs `kvPenaltyMs · kvTokens / headroom` more (the whole penalty when the session would fill it), and is
 * unusable when the session does not fit.
 */
export function hopCost (c: Candidate, o: CostOptions, start = c.start, end = c.end): number {
  let kv = 0
  if (c.kvHeadroom != null && o.kvTokens > 0) {
    if (c.kvHeadroom < o.kvTokens) return Infinity
    kv = o.kvPenaltyMs * o.kvTokens / c.kvHeadroom
  }
  const tput = c.throughput > 0 ? c.throughput : o.unmeasuredThroughput
  const share = (end - start) / (c.end - c.start)
  return (c.rttMs ?? o.unknownRttMs) + 1000 * o.tokens / tput * share + (c.load ?? 0) * o.loadPenaltyMs + kv
}

/** One hop of a chain: a candidate and the part of its span the hop runs */
export interface Hop extends Candidate {
  /** The candidate's whole span */
  spanStart: number
  spanEnd: number
}

function asHop (c: Candidate, start: number, end: number): Hop {
  const h = c as Partial<Hop>
  return { ...c, start, end, spanStart: h.spanStart ?? c.start, spanEnd: h.spanEnd ?? c.end }
}

export interface Chain {
  hops: Hop[]
  /** Sum of the hops' costs, ms */
  cost: number
}

/**
 * Least-cost chain tiling [from, to). A hop is any candidate that covers its range `[i, j)` (the whole span or
 * part of it, as in Petals). Ties go to fewer hops, then to the lower peer id of the hop ending at the later
 * boundary, so the result does not depend on the candidates' order. `undefined` when no chain exists.
 */
export function shortestChain (candidates: readonly Candidate[], from: number, to: number, o: CostOptions, excluded: ReadonlySet<string> = new Set()): Chain | undefined {
  if (!(from < to)) return { hops: [], cost: 0 }
  const n = to - from + 1
  const dist = new Array<number>(n).fill(Infinity)
  const hopsTo = new Array<number>(n).fill(Infinity)
  const via = new Array<{ c: Candidate, i: number } | undefined>(n).fill(undefined)
  dist[0] = 0
  hopsTo[0] = 0
  const usable = candidates.filter(c => !excluded.has(c.peer) && c.end > c.start && c.end > from && c.start < to)
  // slot boundaries only move forward: a DAG, so one pass in boundary order gives the shortest paths
  for (let i = 0; i < n - 1; i++) {
    if (dist[i] === Infinity) continue
    const at = from + i
    for (const c of usable) {
      if (!(c.start <= at && at < c.end)) continue
      if (o.wholeSpans === true && (c.start !== at || c.end > to)) continue
      for (let e = o.wholeSpans === true ? c.end : at + 1; e <= Math.min(c.end, to); e++) {
        const w = hopCost(c, o, at, e)
        if (w === Infinity) break
        const j = e - from
        const d = dist[i] + w
        const h = hopsTo[i] + 1
        const prev = via[j]
        if (d < dist[j] || (d === dist[j] && (h < hopsTo[j] || (h === hopsTo[j] && prev != null && c.peer < prev.c.peer)))) {
          dist[j] = d
          hopsTo[j] = h
          via[j] = { c, i }
        }
      }
    }
  }
  if (dist[n - 1] === Infinity) return undefined
  const hops: Hop[] = []
  for (let j = n - 1; j > 0;) {
    const v = via[j] as { c: Candidate, i: number }
    hops.unshift(asHop(v.c, from + v.i, from + j))
    j = v.i
  }
  return { hops, cost: dist[n - 1] }
}

/** For each hop, the cheapest other usable candidate that covers the hop's range (undefined when there is none) */
export function standbys (chain: Chain, candidates: readonly Candidate[], o: CostOptions, excluded: ReadonlySet<string> = new Set()): Array<Hop | undefined> {
  return chain.hops.map(h => {
    let best: Candidate | undefined
    let bestCost = Infinity
    for (const c of candidates) {
      if (c.start > h.start || c.end < h.end || c.peer === h.peer || excluded.has(c.peer)) continue
      if (o.wholeSpans === true && (c.start !== h.start || c.end !== h.end)) continue
      const w = hopCost(c, o, h.start, h.end)
      if (w < bestCost || (w === bestCost && best != null && c.peer < best.peer)) {
        best = c
        bestCost = w
      }
    }
    return best != null ? asHop(best, h.start, h.end) : undefined
  })
}

/** A replica's share in weighted dispatch: throughput / (1 + load) */
export function capacity (c: Candidate, o: Pick<CostOptions, 'unmeasuredThroughput'>): number {
  return (c.throughput > 0 ? c.throughput : o.unmeasuredThroughput) / (1 + (c.load ?? 0))
}

/** Draw one candidate with probability ∝ weight, given a uniform `u` in [0, 1) */
export function weightedPick<T> (items: readonly T[], weight: (t: T) => number, u: number): T | undefined {
  let total = 0
  for (const t of items) total += Math.max(0, weight(t))
  if (!(total > 0)) return undefined
  let x = u * total
  for (const t of items) {
    x -= Math.max(0, weight(t))
    if (x < 0) return t
  }
  return items[items.length - 1]
}

/**
 * SWARM dispatch: the hop ranges of the shortest chain, each hop's replica (usable candidates covering that
 * range) drawn ∝ capacity with the draws `random()` gives.
 */
export function weightedChain (candidates: readonly Candidate[], from: number, to: number, o: CostOptions, random: () => number, excluded: ReadonlySet<string> = new Set()): Chain | undefined {
  const base = shortestChain(candidates, from, to, o, excluded)
  if (base == null) return undefined
  const hops = base.hops.map(h => {
    const replicas = candidates
      .filter(c => c.start <= h.start && c.end >= h.end && !excluded.has(c.peer) && hopCost(c, o, h.start, h.end) < Infinity)
      .filter(c => o.wholeSpans !== true || (c.start === h.start && c.end === h.end))
      .sort((a, b) => a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)
    const pick = weightedPick(replicas, c => capacity(c, o), random())
    return pick != null ? asHop(pick, h.start, h.end) : h
  })
  return { hops, cost: hops.reduce((s, c) => s + hopCost({ ...c, start: c.spanStart, end: c.spanEnd }, o, c.start, c.end), 0) }
}

export interface BanOptions {
  baseMs: number
  maxMs: number
  forgetMs: number
}

/** Peers that failed, banned for base · 2^(failures − 1) ms (capped); the count is forgotten after a good spell */
export class BanList {
  private readonly entries = new Map<string, { failures: number, until: number, last: number }>()
  private readonly o: BanOptions

  constructor (options: BanOptions) {
    this.o = options
  }

  /**
   * Record a failure at `now`; returns the ban's end. A failure reported while the peer is still banned (more reports
   * of the same outage: every session and micro-batch that used it) changes nothing: only a failure after the ban has
   * ended counts again (spec §6)
   */
  fail (peer: string, now: number): number {
    const e = this.entries.get(peer)
    if (e != null && now < e.until) return e.until
    const failures = e != null && now - e.last < this.o.forgetMs + (e.until - e.last) ? e.failures + 1 : 1
    const until = now + Math.min(this.o.maxMs, this.o.baseMs * 2 ** (failures - 1))
    this.entries.set(peer, { failures, until, last: now })
    return until
  }

  /** Whether `peer` is banned at `now` */
  banned (peer: string, now: number): boolean {
    const e = this.entries.get(peer)
    return e != null && now < e.until
  }

  /** The peers banned at `now` (and forgets entries past their forget time) */
  bannedSet (now: number): Set<string> {
    const out = new Set<string>()
    for (const [p, e] of this.entries) {
      if (now < e.until) out.add(p)
      else if (now - e.until > this.o.forgetMs) this.entries.delete(p)
    }
    return out
  }

  failures (peer: string): number {
    return this.entries.get(peer)?.failures ?? 0
  }

  /**
   * Drop `peer`'s ban and failure count: the process that failed is gone (its layer record shows it restarted, spec
   * §6, 1.3.0), so its outage's failures say nothing about the process now serving under its id
   */
  forgive (peer: string): void {
    this.entries.delete(peer)
  }
}

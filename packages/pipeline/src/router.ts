/**
 * How the Driver gets its chain. `@neuroshard/swarm-router` implements `PipelineRouter` from layer-pool
 * records (RTT, throughput, KV headroom, standbys, bans); `staticRouter` is a fixed candidate list for
 * tests and small setups.
 */
import { NoRouteError } from './errors.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'

/** One hop of a chain: a peer and the slot span it runs */
export interface RouteHop {
  peer: PeerId
  start: number
  end: number
  /** The weights the hop serves inference with, as its layer record declares (absent: float32 or unknown) */
  quantization?: 'fp32' | 'int8' | 'int4'
  /**
   * A quantized hop's group size, as its layer record declares it (`quant_block_size`, 64 or 128; absent: 32 or
   * unknown)
   */
  quantBlockSize?: number
}

export interface ChainOptions extends AbortOptions {
  /** First slot the chain must cover (the Driver runs [0, from) itself) */
  from: number
  /** One past the last slot (L + 2) */
  to: number
  /** What the chain is for: sessions pin a chain, training micro-batches are spread by capacity */
  purpose?: 'inference' | 'training'
  /**
   * Tokens a session will keep in every hop's KV cache (prompt + new tokens): routers skip hops without that
   * much headroom and prefer roomier ones (absent: not considered)
   */
  tokens?: number
  /**
   * Peers the chain must not use (the Driver's session found their KV cache full, spec §4.2); not a failure: no ban
   */
  exclude?: PeerId[]
}

export interface PipelineRouter {
  /** A chain of hops covering [from, to) contiguously; throws NoRouteError when none exists */
  chain(options: ChainOptions): Promise<RouteHop[]> | RouteHop[]
  /** A hop failed (unreachable, timed out, reset): stop choosing it for a while */
  reportFailure(peer: PeerId, error?: Error): void
  /** A hop answered (optional latency sample, ms) */
  reportSuccess?(peer: PeerId, latencyMs?: number): void
  /** A session now uses `peer` (load-aware routing); returns the release */
  acquire?(peer: PeerId): () => void
  /**
   * For each hop of `chain`, the peer that would replace it if it failed (covering at least the hop's slots), or
   * undefined: the Driver warms them (spec §4.2, WARM). `tokens`: as in `chain()`, so a standby has room for the session
   */
  standbys?(chain: RouteHop[], options?: { tokens?: number }): Promise<Array<RouteHop | undefined>> | Array<RouteHop | undefined>
}

/**
 * A router over a fixed candidate list: for each position the first candidate (in list order) that starts
 * there and is neither marked failed nor excluded by the caller. Failed peers stay out until `reset()`.
 */
export function staticRouter (candidates: RouteHop[]): PipelineRouter & { failed: Set<string>, reset(): void, standbys(chain: RouteHop[]): Array<RouteHop | undefined> } {
  const failed = new Set<string>()
  return {
    failed,
    reset () { failed.clear() },
    chain ({ from, to, exclude = [] }) {
      const hops: RouteHop[] = []
      let at = from
      while (at < to) {
        const next = candidates.find(c => c.start === at && c.end <= to && !failed.has(c.peer.toString()) && !exclude.some(p => p.equals(c.peer)))
        if (next == null) throw new NoRouteError(`no live candidate starts at slot ${at}`)
        hops.push(next)
        at = next.end
      }
      return hops
    },
    reportFailure (peer) { failed.add(peer.toString()) },
    standbys (chain) {
      return chain.map(h => candidates.find(c => c.start === h.start && c.end === h.end && !c.peer.equals(h.peer) && !failed.has(c.peer.toString())))
    }
  }
}

/**
 * Serving a training span from its last finished DiLoCo round (NetworkNode `serveRoundWeights`).
 *
 * A training stage's executors change their weights every inner step, and each replica of a span trains on its own
 * data, so inference served from them mixes weights: a generation's tokens computed at different inner steps (its KV
 * cache from older weights than its next token), and a route through replicas of different chains mixes their
 * inner-loop weights. The base weights of a finished round are the same on every replica of a slot (DiLoCo's outer
 * step), so inference served from them is one model on every hop.
 *
 * `RoundServing` wraps a training stage (`stage`, the object the pipeline serves): training calls go to its
 * executors as before; the inference calls the pipeline makes (`infer`, `openInference`, `fused`, `headRunner`) go to
 * the current `ServingSnapshot`, inference-only executors of the span with the round's weights baked in (prepacked by
 * onnxruntime; embedding + blocks, or blocks + head, fused into one session where the span has blocks). A new
 * round's snapshot is built off the hot path and swapped in atomically; a KV session (a generation's state on this
 * hop) stays on the snapshot it was opened on until it closes, and an old snapshot is closed once nothing uses it.
 */
import { logger } from '@libp2p/logger'
import { buildInferenceGraph, shardParameters } from '@neuroshard/model'
import { spanRoles } from '@neuroshard/pipeline'
import { createShardExecutor } from '@neuroshard/runtime'
import type { ModelConfig, ShardRole } from '@neuroshard/model'
import type { PipelineStage } from '@neuroshard/pipeline'
import type { KvCacheSession, RuntimeInit, ShardExecutor } from '@neuroshard/runtime'

const log = logger('neuroshard:node:round-snapshot')

type Kind = ShardRole['kind']

/** The onnxruntime settings of a snapshot's executors */
export type SnapshotRuntime = Pick<RuntimeInit, 'intraOpNumThreads' | 'inThread' | 'device'>

/**
 * One version of a span's serving weights: inference-only executors with the weights baked in. Where the span holds
 * blocks, one blocks session runs the embedding lookup and / or the head too (`fused`); a separate head executor (for
 * the pipeline's head-only runs: scoring drafts) is built on first use.
 */
export class ServingSnapshot {
  /** The DiLoCo round whose base weights these are */
  readonly round: number
  readonly fused?: { readonly embed: boolean, readonly head: boolean }
  /** The pipeline's long-lived head runner of this snapshot (`PipelineStage.headRunner`) */
  headRunner?: KvCacheSession
  private readonly executors: Partial<Record<Kind, ShardExecutor>>
  private lazyHead?: Promise<ShardExecutor>
  /** The head's weights, kept for a head executor built on first use (span with blocks and the head) */
  private headParameters?: Map<string, Float32Array>
  private readonly config: ModelConfig
  private readonly runtime: SnapshotRuntime
  /** Open KV sessions and calls in flight on this snapshot */
  private uses = 0
  private retired = false
  private closing?: Promise<void>

  private constructor (config: ModelConfig, round: number, runtime: SnapshotRuntime, executors: Partial<Record<Kind, ShardExecutor>>, fused: ServingSnapshot['fused'], headParameters?: Map<string, Float32Array>) {
    this.config = config
    this.round = round
    this.runtime = runtime
    this.executors = executors
    if (fused != null) this.fused = fused
    if (headParameters != null) this.headParameters = headParameters
  }

  /** Builds the snapshot of span [start, end) with `parameters` (every parameter the span's shards read) */
  static async build (config: ModelConfig, start: number, end: number, parameters: Map<string, Float32Array>, round: number, runtime: SnapshotRuntime): Promise<ServingSnapshot> {
    const roles = spanRoles(config, start, end)
    const blocks = roles.find(r => r.kind === 'blocks')
    const hasEmbed = roles.some(r => r.kind === 'embed')
    const hasHead = roles.some(r => r.kind === 'head')
    const executors: Partial<Record<Kind, ShardExecutor>> = {}
    try {
      if (blocks != null) {
        const withEmbed = hasEmbed
        const withHead = hasHead
        const graph = buildInferenceGraph(config, blocks, { parameters, kvCache: 'append', withEmbed, withHead })
        executors.blocks = await inferenceExecutor(config, blocks, graph.bytes, runtime)
      } else {
        for (const role of roles) executors[role.kind] = await inferenceExecutor(config, role, buildInferenceGraph(config, role, { parameters }).bytes, runtime)
      }
    } catch (err) {
      await Promise.allSettled(Object.values(executors).map(async e => { await e.close() }))
      throw err
    }
    const fused = blocks != null ? { embed: hasEmbed, head: hasHead } : undefined
    let headParameters: Map<string, Float32Array> | undefined
    if (blocks != null && hasHead) {
      headParameters = new Map()
      for (const p of shardParameters(config, { kind: 'head' })) headParameters.set(p.name, parameters.get(p.name)!)
    }
    return new ServingSnapshot(config, round, runtime, executors, fused, headParameters)
  }

  /** The executor that serves `kind`'s inference calls, or undefined (the stage's own then: an embedding lookup only) */
  async executor (kind: Kind): Promise<ShardExecutor | undefined> {
    const own = this.executors[kind]
    if (own != null) return own
    if (kind === 'head' && this.headParameters != null) {
      const parameters = this.headParameters
      this.lazyHead ??= inferenceExecutor(this.config, { kind: 'head' }, buildInferenceGraph(this.config, { kind: 'head' }, { parameters }).bytes, this.runtime)
      return await this.lazyHead
    }
    return undefined
  }

  /** Counts a use (a KV session, a call in flight): the snapshot stays open until it is released */
  acquire (): void { this.uses++ }

  release (): void {
    this.uses--
    if (this.retired && this.uses <= 0) void this.close()
  }

  /** No longer the current snapshot: closed once its last use is released */
  retire (): void {
    this.retired = true
    if (this.uses <= 0) void this.close()
  }

  get openUses (): number { return this.uses }

  async close (): Promise<void> {
    this.closing ??= (async () => {
      const head = await this.lazyHead?.catch(() => undefined)
      await Promise.allSettled([...Object.values(this.executors), ...(head != null ? [head] : [])].map(async e => { await e.close() }))
    })()
    await this.closing
  }
}

/** An executor that only runs `graph` (weights baked in: no resident parameters, no training graphs) */
async function inferenceExecutor (config: ModelConfig, role: ShardRole, graph: Uint8Array, runtime: SnapshotRuntime): Promise<ShardExecutor> {
  return await createShardExecutor({ ...runtime, config, role, parameterSpecs: [], parameters: new Map(), graphs: { inference: graph } })
}

/**
 * A training stage that serves inference from snapshots: `stage` is what the pipeline is given. Until the first
 * snapshot is set (`update`), and when a snapshot could not be built at all, inference runs on the training
 * executors as without it.
 */
export class RoundServing {
  readonly stage: PipelineStage
  private current?: ServingSnapshot
  /** the newest round asked for while a build runs (builds are serial; the newest wins) */
  private wanted?: { round: number, parameters: () => Promise<Map<string, Float32Array>> }
  private building?: Promise<void>
  private closed = false
  /** snapshots whose KV sessions or head runner still run (closed on `close`) */
  private readonly retired = new Set<ServingSnapshot>()
  /** head runners by the snapshot they were opened on */
  private readonly runners = new WeakMap<KvCacheSession, ServingSnapshot>()

  constructor (readonly live: PipelineStage, private readonly build: (round: number, parameters: Map<string, Float32Array>) => Promise<ServingSnapshot>, private readonly onSwap?: (round: number, buildMs: number) => void) {
    const self = this
    const wrapped = new Map<ShardExecutor, ShardExecutor>()
    for (const e of live.executors) wrapped.set(e, this.wrap(e))
    const at = (e?: ShardExecutor): ShardExecutor | undefined => e == null ? undefined : wrapped.get(e)
    const stage: PipelineStage = {
      ...live,
      embed: at(live.embed),
      blocks: at(live.blocks),
      head: at(live.head),
      executors: live.executors.map(e => wrapped.get(e)!),
      close: async () => { await self.close() }
    }
    // the snapshot's fusion and head runner, read when the pipeline uses them
    Object.defineProperty(stage, 'fused', { enumerable: true, get: () => self.current?.fused ?? live.fused })
    Object.defineProperty(stage, 'headRunner', {
      enumerable: true,
      get: () => self.current != null ? self.current.headRunner : live.headRunner,
      set: (runner: KvCacheSession | undefined) => {
        const owner = runner != null ? self.runners.get(runner) : self.current
        if (owner != null) owner.headRunner = runner
        else live.headRunner = runner
      }
    })
    this.stage = stage
  }

  /** The round served now (undefined: the training executors serve) */
  get round (): number | undefined { return this.current?.round }

  /** Snapshots retired but still in use (KV sessions of generations that began before a swap) */
  get draining (): number { return this.retired.size }

  /**
   * Serve `round` from a snapshot of `parameters()` (read when its build starts): built in the background, one build at
   * a time, the newest round asked for winning; resolves when that round (or a newer one) is served or failed
   */
  async update (round: number, parameters: () => Promise<Map<string, Float32Array>>): Promise<void> {
    if (this.closed || (this.current != null && this.current.round >= round) || (this.wanted != null && this.wanted.round >= round)) return await this.building
    this.wanted = { round, parameters }
    this.building ??= this.drain().finally(() => { this.building = undefined })
    await this.building
  }

  private async drain (): Promise<void> {
    while (this.wanted != null && !this.closed) {
      const { round, parameters } = this.wanted
      this.wanted = undefined
      if (this.current != null && this.current.round >= round) continue
      let snap: ServingSnapshot
      const t0 = performance.now()
      try {
        snap = await this.build(round, await parameters())
      } catch (err: any) {
        log('snapshot of [%d, %d) at round %d not built: %s', this.live.start, this.live.end, round, err.message)
        continue
      }
      if (this.closed) { await snap.close(); return }
      // fusion must not change under a running session (its feeds follow `fused`): a span serves all its life fused or not
      const old = this.current
      this.current = snap
      if (old != null) {
        if (old.openUses > 0) this.retired.add(old)
        old.retire()
      }
      this.onSwap?.(round, performance.now() - t0)
    }
  }

  /** Runs `fn` on the snapshot executor of `kind` (counted as a use), or on the training executor `own` */
  private async onSnapshot<T> (kind: Kind, own: ShardExecutor, fn: (e: ShardExecutor) => Promise<T>): Promise<T> {
    const snap = this.current
    if (snap == null) return await fn(own)
    snap.acquire()
    try {
      return await fn((await snap.executor(kind)) ?? own)
    } finally {
      this.releaseUse(snap)
    }
  }

  private releaseUse (snap: ServingSnapshot): void {
    snap.release()
    if (snap !== this.current && snap.openUses <= 0) this.retired.delete(snap)
  }

  private wrap (e: ShardExecutor): ShardExecutor {
    const kind = e.role.kind
    return new Proxy(e, {
      get: (target, prop) => {
        if (prop === 'infer') return async (feeds: any, options?: any) => await this.onSnapshot(kind, target, async x => await x.infer(feeds, options))
        if (prop === 'openInference') return async (options?: any) => await this.openInference(kind, target, options)
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }

  /**
   * A blocks KV session stays on the snapshot it was opened on until it is closed (one weights version per generation
   * on this hop); a head runner (reused by later generations) counts a use only while it runs
   */
  private async openInference (kind: Kind, own: ShardExecutor, options?: any): Promise<KvCacheSession> {
    const snap = this.current
    if (snap == null) return await own.openInference(options)
    snap.acquire()
    let kv: KvCacheSession
    try {
      kv = await ((await snap.executor(kind)) ?? own).openInference(options)
    } catch (err) {
      this.releaseUse(snap)
      throw err
    }
    if (kind === 'head') {
      this.releaseUse(snap)
      this.runners.set(kv, snap)
      const run = kv.run.bind(kv)
      kv.run = async (...args: Parameters<KvCacheSession['run']>) => {
        snap.acquire()
        try { return await run(...args) } finally { this.releaseUse(snap) }
      }
      return kv
    }
    const close = kv.close.bind(kv)
    let released = false
    kv.close = async () => {
      try {
        await close()
      } finally {
        if (!released) { released = true; this.releaseUse(snap) }
      }
    }
    return kv
  }

  async close (): Promise<void> {
    this.closed = true
    await this.building?.catch(() => {})
    const snaps = [...this.retired, ...(this.current != null ? [this.current] : [])]
    this.retired.clear()
    this.current = undefined
    await Promise.allSettled([this.live.close(), ...snaps.map(async s => { await s.close() })])
  }
}

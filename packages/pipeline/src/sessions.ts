/**
 * The inference sessions a node holds: one KV cache per (session, stage), with a session cap, a memory cap
 * over all caches, an idle TTL, and eviction of expired sessions when room is needed. Runs of one session
 * are serialised.
 */
import { KvCacheFullError, SessionPositionError, UnknownSessionError } from './errors.js'
import type { PipelineStage } from './stage.js'
import type { KvCacheSession } from '@neuroshard/runtime'

interface Entry {
  key: string
  stage: PipelineStage
  kv: KvCacheSession
  /** Bytes of cache per token of this session (batch included) */
  perToken: number
  /** Tokens reserved (the cache holds, or is about to hold, this many) */
  tokens: number
  lastUsed: number
  busy: Promise<unknown>
  running: number
}

export interface SessionTableInit {
  maxSessions: number
  maxKvBytes: number
  ttlMs: number
  now?(): number
}

/** KV bytes per token per batch row of a stage's blocks (keys + values, float32) */
export function kvBytesPerToken (stage: PipelineStage): number {
  if (stage.blocks == null || stage.blocks.role.kind !== 'blocks') return 0
  const c = stage.config
  const blocks = stage.blocks.role.end - stage.blocks.role.start
  return 2 * blocks * c.nKvHeads * (c.dModel / c.nHeads) * 4
}

export class SessionTable {
  private readonly entries = new Map<string, Entry>()
  private readonly init: SessionTableInit
  private readonly now: () => number
  private reserved = 0

  constructor (init: SessionTableInit) {
    this.init = init
    this.now = init.now ?? Date.now
  }

  /** Sessions held */
  get size (): number {
    return this.entries.size
  }

  /** KV bytes reserved by all sessions */
  get bytes (): number {
    return this.reserved
  }

  /** Bytes still free under the cap (what the router calls KV headroom) */
  get headroom (): number {
    return Math.max(0, this.init.maxKvBytes - this.reserved)
  }

  /**
   * Tokens of one more session, at `perToken` bytes of cache per token, that fit now (0 at the session cap; idle
   * sessions past their TTL count as held: they are only freed when room is needed)
   */
  tokensLeft (perToken: number): number {
    if (this.entries.size >= this.init.maxSessions) return 0
    return Math.floor(this.headroom / perToken)
  }

  has (key: string): boolean {
    return this.entries.has(key)
  }

  /**
   * Run `seq` new tokens of batch `batch` through the session `key` of `stage`, whose cache must hold
   * `position` tokens first (0 opens it, or restarts it when it exists: a replay). Reserves the memory
   * before running; throws KvCacheFullError, UnknownSessionError or SessionPositionError without changing
   * anything.
   */
  async run<T> (key: string, stage: PipelineStage, position: number, batch: number, seq: number, fn: (kv: KvCacheSession) => Promise<T>, options: { rollback?: boolean } = {}): Promise<T> {
    let entry = this.entries.get(key)
    // a rollback (speculative decoding) first drops what the cache holds past `position`
    const rollback = options.rollback === true && entry != null && position > 0 && entry.stage === stage && entry.tokens > position
    if (entry == null && position !== 0) {
      throw new UnknownSessionError(`no session ${key.slice(0, 16)}… here (expired, evicted or never opened); replay from position 0`)
    }
    const perToken = kvBytesPerToken(stage) * batch
    if (entry != null && (position === 0 || entry.stage !== stage)) {
      // a replay restarts the cache from scratch
      if (entry.running > 0) throw new SessionPositionError(`session ${key.slice(0, 16)}… is busy; cannot restart it`)
      await this.close(key)
      entry = undefined
      // a cache of a stage this node no longer runs (rebuilt since) is gone: only a replay from 0 may reopen it
      if (position !== 0) throw new UnknownSessionError(`session ${key.slice(0, 16)}… was held by a stage rebuilt since; replay from position 0`)
    }
    if (entry != null) {
      if (entry.tokens !== position && !rollback) throw new SessionPositionError(`session ${key.slice(0, 16)}… holds ${entry.tokens} tokens, the request says ${position}`)
      if (entry.perToken !== perToken) throw new SessionPositionError(`session ${key.slice(0, 16)}… has batch ${entry.perToken / Math.max(1, kvBytesPerToken(stage))}, the request ${batch}`)
    }
    const dropped = rollback ? entry!.tokens - position : 0
    const grow = perToken * seq
    await this.makeRoom(grow - perToken * dropped, entry == null ? 1 : 0, key)
    if (entry == null) {
      const kv = await stage.blocks!.openInference()
      entry = { key, stage, kv, perToken, tokens: 0, lastUsed: this.now(), busy: Promise.resolve(), running: 0 }
      this.entries.set(key, entry)
    }
    const e = entry
    e.tokens += seq - dropped
    this.reserved += grow - perToken * dropped
    e.running++
    e.lastUsed = this.now()
    const run = e.busy.then(async () => {
      if (dropped > 0) await e.kv.truncate(position)
      return await fn(e.kv)
    })
    e.busy = run.catch(() => {})
    try {
      return await run
    } catch (err) {
      // a refused chunk leaves the cache unchanged: give back the reservation
      if (this.entries.get(key) === e) {
        e.tokens -= seq
        this.reserved -= grow
        if (e.tokens === 0) await this.close(key)
      }
      throw err
    } finally {
      e.running--
      e.lastUsed = this.now()
    }
  }

  /**
   * Roll session `key` back to its first `position` tokens (TRUNCATE). Throws UnknownSessionError when it is not
   * held and SessionPositionError when `position` is more than it holds; returns the tokens it holds after.
   */
  async truncate (key: string, position: number): Promise<number> {
    const e = this.entries.get(key)
    if (e == null) throw new UnknownSessionError(`no session ${key.slice(0, 16)}… here (expired, evicted or never opened)`)
    if (!(Number.isSafeInteger(position) && position >= 0 && position <= e.tokens)) {
      throw new SessionPositionError(`session ${key.slice(0, 16)}… holds ${e.tokens} tokens; cannot truncate it to ${position}`)
    }
    if (position === e.tokens) return position
    const dropped = e.tokens - position
    e.tokens = position
    this.reserved -= e.perToken * dropped
    e.lastUsed = this.now()
    const run = e.busy.then(async () => await e.kv.truncate(position))
    e.busy = run.catch(() => {})
    await run
    return position
  }

  private async makeRoom (bytes: number, sessions: number, except: string): Promise<void> {
    const fits = (): boolean => this.reserved + bytes <= this.init.maxKvBytes && this.entries.size + sessions <= this.init.maxSessions
    if (fits()) return
    await this.sweep(except)
    if (!fits()) {
      throw new KvCacheFullError(this.entries.size + sessions > this.init.maxSessions
        ? `session cap reached (${this.init.maxSessions} sessions)`
        : `KV cache memory cap reached (${this.reserved} of ${this.init.maxKvBytes} bytes reserved, ${bytes} more needed)`)
    }
  }

  /** Free every idle session unused for the TTL; returns how many were freed */
  async sweep (except?: string): Promise<number> {
    const t = this.now()
    let n = 0
    for (const e of [...this.entries.values()]) {
      if (e.key !== except && e.running === 0 && t - e.lastUsed >= this.init.ttlMs) {
        await this.close(e.key)
        n++
      }
    }
    return n
  }

  /** Free one session (no-op when absent) */
  async close (key: string): Promise<void> {
    const e = this.entries.get(key)
    if (e == null) return
    this.entries.delete(key)
    this.reserved -= e.perToken * e.tokens
    await e.kv.close().catch(() => {})
  }

  async closeAll (): Promise<void> {
    await Promise.all([...this.entries.keys()].map(async k => { await this.close(k) }))
  }
}

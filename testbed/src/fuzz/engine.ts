/**
 * The fuzz engine: feeds a target N generated inputs and measures what the issue asks for — crashes
 * (uncaught exceptions, unhandled rejections, a handler that stops serving), hangs (an input over the
 * per-input time bound), memory (heap after a forced GC, after warm-up and at the end), and junk accepted
 * (an input that is invalid by construction but was accepted).
 */
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import { Rng } from './rng.js'

export interface FuzzInput {
  bytes: Uint8Array
  /** true when the generator knows the input is invalid (a handler that accepts it is broken) */
  mustReject: boolean
  /** generator class, for the report */
  kind: string
}

export interface Outcome {
  accepted: boolean
  /** error name when refused (typed error, or 'StreamClosed' / 'Reset' for a stream that was ended) */
  error?: string
}

export interface FuzzTarget {
  /** short name for the results table */
  name: string
  /** which handler it exercises */
  handler: string
  mode: 'message' | 'stream'
  setup(): Promise<void>
  teardown(): Promise<void>
  generate(rng: Rng, i: number): FuzzInput
  run(input: FuzzInput, signal: AbortSignal): Promise<Outcome>
  /** throws when the handler no longer serves an honest request */
  alive(): Promise<void>
  /** inputs in flight at once (streams) @default 1 */
  concurrency?: number
  /** per-input time bound @default 5000 ms (message) / 20000 ms (stream) */
  timeoutMs?: number
}

export interface FuzzResult {
  target: string
  handler: string
  mode: string
  inputs: number
  accepted: number
  rejected: number
  /** rejections with an untyped error (TypeError, RangeError, plain Error): not crashes, but not the typed errors the standards ask for */
  untyped: number
  untypedSamples: Array<{ kind: string, error: string, input: string }>
  crashes: number
  crashSamples: Array<{ kind: string, error: string, stack: string, input: string }>
  hangs: number
  hangSamples: Array<{ kind: string, input: string }>
  junkAccepted: number
  junkSamples: Array<{ kind: string, input: string }>
  mustReject: number
  aliveAfter: boolean
  p50Ms: number
  p99Ms: number
  maxMs: number
  heapStartMB: number
  heapEndMB: number
  heapGrowthMB: number
  rssGrowthMB: number
  seconds: number
  errors: Record<string, number>
}

export interface FuzzOptions {
  inputs: number
  seed?: number
  /** fail when heap grows more than this between warm-up and end @default 32 MiB */
  maxHeapGrowthBytes?: number
  onProgress?(done: number): void
}

const UNTYPED = new Set(['Error', 'TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'URIError', 'AggregateError'])

let gcFn: (() => void) | undefined
export function forceGc (): void {
  if (gcFn == null) {
    const g = (globalThis as any).gc
    if (typeof g === 'function') gcFn = g
    else {
      setFlagsFromString('--expose-gc')
      gcFn = runInNewContext('gc')
    }
  }
  gcFn?.()
  gcFn?.()
}

export function hexSample (b: Uint8Array, max = 96): string {
  const h = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, max)).toString('hex')
  return b.length > max ? `${h}… (${b.length} bytes)` : h
}

function errorName (err: any): string {
  return String(err?.name ?? (typeof err))
}

/** Runs one target; never throws for what the inputs do (that is what the result reports) */
export async function fuzz (target: FuzzTarget, options: FuzzOptions): Promise<FuzzResult> {
  const rng = new Rng(options.seed ?? 1)
  const n = options.inputs
  const timeoutMs = target.timeoutMs ?? (target.mode === 'stream' ? 20_000 : 5_000)
  const concurrency = target.concurrency ?? 1
  const res: FuzzResult = {
    target: target.name, handler: target.handler, mode: target.mode, inputs: n, accepted: 0, rejected: 0, untyped: 0, untypedSamples: [],
    crashes: 0, crashSamples: [], hangs: 0, hangSamples: [], junkAccepted: 0, junkSamples: [], mustReject: 0, aliveAfter: false,
    p50Ms: 0, p99Ms: 0, maxMs: 0, heapStartMB: 0, heapEndMB: 0, heapGrowthMB: 0, rssGrowthMB: 0, seconds: 0, errors: {}
  }
  // the current input of each lane, to attribute process-level failures
  const current = new Set<FuzzInput>()
  const onCrash = (err: any): void => {
    res.crashes++
    if (res.crashSamples.length < 5) {
      const input = [...current][0]
      res.crashSamples.push({ kind: input?.kind ?? '?', error: `${errorName(err)}: ${String(err?.message ?? err)}`, stack: String(err?.stack ?? ''), input: input != null ? hexSample(input.bytes, 4096) : '' })
    }
  }
  const times = new Float64Array(n)
  await target.setup()
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
  const started = performance.now()
  const warmup = Math.min(n - 1, Math.max(50, Math.floor(n / 10)))
  let heapStart = 0
  let rssStart = 0
  try {
    let next = 0
    const lane = async (): Promise<void> => {
      while (true) {
        const i = next++
        if (i >= n) return
        if (i === warmup) {
          // all lanes pass here at about the same time; a GC now gives the heap after warm-up
          forceGc()
          heapStart = process.memoryUsage().heapUsed
          rssStart = process.memoryUsage().rss
        }
        const input = target.generate(rng, i)
        if (input.mustReject) res.mustReject++
        current.add(input)
        const controller = new AbortController()
        let timer: ReturnType<typeof setTimeout> | undefined
        const t0 = performance.now()
        const timedOut = new Promise<'hang'>(resolve => { timer = setTimeout(() => { resolve('hang') }, timeoutMs) })
        const work = target.run(input, controller.signal).then(o => o, (err: any) => ({ accepted: false, error: errorName(err), thrown: err }))
        const outcome = await Promise.race([work, timedOut])
        clearTimeout(timer)
        times[i] = performance.now() - t0
        current.delete(input)
        if (outcome === 'hang') {
          res.hangs++
          controller.abort(new Error('fuzz input timed out'))
          if (res.hangSamples.length < 5) res.hangSamples.push({ kind: input.kind, input: hexSample(input.bytes, 4096) })
          continue
        }
        if (outcome.accepted) {
          res.accepted++
          if (input.mustReject) {
            res.junkAccepted++
            if (res.junkSamples.length < 5) res.junkSamples.push({ kind: input.kind, input: hexSample(input.bytes, 512) })
          }
        } else {
          res.rejected++
          const name = outcome.error ?? 'refused'
          res.errors[name] = (res.errors[name] ?? 0) + 1
          if (UNTYPED.has(name)) {
            res.untyped++
            const thrown = (outcome as any).thrown
            if (res.untypedSamples.length < 5) res.untypedSamples.push({ kind: input.kind, error: `${name}: ${String(thrown?.message ?? '')} ${String(thrown?.stack ?? '').split('\n').slice(1, 4).join(' | ')}`, input: hexSample(input.bytes, 512) })
          }
        }
        if (options.onProgress != null && (i + 1) % 1000 === 0) options.onProgress(i + 1)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, async () => { await lane() }))
    res.seconds = (performance.now() - started) / 1000
    // let handlers that outlived their client (timers, stream cleanup) finish before measuring
    await new Promise(resolve => setTimeout(resolve, 200))
    forceGc()
    const mem = process.memoryUsage()
    res.heapStartMB = heapStart / 2 ** 20
    res.heapEndMB = mem.heapUsed / 2 ** 20
    res.heapGrowthMB = (mem.heapUsed - heapStart) / 2 ** 20
    res.rssGrowthMB = (mem.rss - rssStart) / 2 ** 20
    try {
      await target.alive()
      res.aliveAfter = true
    } catch (err: any) {
      res.aliveAfter = false
      onCrash(new Error(`the handler no longer serves an honest request: ${String(err?.message ?? err)}`))
    }
  } finally {
    process.off('uncaughtException', onCrash)
    process.off('unhandledRejection', onCrash)
    await target.teardown().catch(() => {})
  }
  const sorted = Array.from(times).sort((a, b) => a - b)
  res.p50Ms = sorted[Math.floor(n * 0.5)] ?? 0
  res.p99Ms = sorted[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0
  res.maxMs = sorted[n - 1] ?? 0
  return res
}

/** Why a result fails the goals (empty: it passes) */
export function failures (r: FuzzResult, options: { maxHeapGrowthMB?: number } = {}): string[] {
  const out: string[] = []
  if (r.crashes > 0) out.push(`${r.crashes} crashes`)
  if (r.hangs > 0) out.push(`${r.hangs} hangs`)
  if (r.junkAccepted > 0) out.push(`${r.junkAccepted} invalid inputs accepted`)
  if (!r.aliveAfter) out.push('handler not alive after the run')
  const max = options.maxHeapGrowthMB ?? 32
  if (r.heapGrowthMB > max) out.push(`heap grew ${r.heapGrowthMB.toFixed(1)} MB (bound ${max} MB)`)
  return out
}

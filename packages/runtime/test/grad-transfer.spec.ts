/**
 * Moving large tensors to and from a shard's worker without copies (the pipeline's tied `vocab × d` matrix and its
 * gradient): `getGradientRows` copies out only some rows of a gradient; `addGradients` / `setParameters` with
 * `transfer` move whole buffers into the worker (the caller's arrays are detached) and copy views as before.
 */
import { describe, it, expect, afterEach } from 'vitest'
import { buildShardGraph, initParameter, preset, shardParameters } from '@neuroshard/model'
import { createShardExecutor, int64 } from '../src/index.js'
import type { ShardExecutor } from '../src/index.js'

const config = preset('tiny')
const V = config.vocabSize
const d = config.dModel
const executors: ShardExecutor[] = []
afterEach(async () => { await Promise.all(executors.splice(0).map(async e => { await e.close() })) })

async function embedShard (): Promise<ShardExecutor> {
  const role = { kind: 'embed' as const }
  const e = await createShardExecutor({
    config,
    role,
    parameters: new Map(shardParameters(config, role).map(p => [p.name, initParameter(config, p, 3)])),
    intraOpNumThreads: 1,
    graphs: { forward: buildShardGraph(config, role, 'forward').bytes, backward: buildShardGraph(config, role, 'backward').bytes }
  })
  executors.push(e)
  return e
}

/** A gradient of the hidden states from an LCG (independent of the code under test) */
function gradHidden (rows: number, seq: number): Float32Array {
  let s = 42
  return Float32Array.from({ length: rows * seq * d }, () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5 })
}

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

describe('gradient rows and transfers', () => {
  it('getGradientRows: the rows asked for, in that order, as the whole gradient holds them; zeros before any backward', async () => {
    const e = await embedShard()
    expect(await e.getGradientRows('embed.weight', [1, 7])).toEqual(new Float32Array(2 * d))
    const ids = BigInt64Array.from([5n, 9n, 5n, 200n, 3n, 9n])
    await e.backward({ input_ids: int64(ids, [2, 3]), grad_hidden: { type: 'float32', dims: [2, 3, d], data: gradHidden(2, 3) } })
    const whole = (await e.getGradients()).get('embed.weight')!
    const asked = [200, 3, 9, 5, 0]
    const rows = await e.getGradientRows('embed.weight', asked)
    expect(rows.length).toBe(asked.length * d)
    for (const [k, r] of asked.entries()) expect(rows.subarray(k * d, (k + 1) * d)).toEqual(whole.subarray(r * d, (r + 1) * d))
    // the gathered rows are not zero (5 and 9 twice: the sums), the untouched row 0 is
    expect(rows.subarray(3 * d, 4 * d).some(x => x !== 0)).toBe(true)
    expect(rows.subarray(4 * d, 5 * d).every(x => x === 0)).toBe(true)
    for (const bad of [[-1], [V], [1.5]]) expect((await rejection(e.getGradientRows('embed.weight', bad))).name).toBe('InvalidParametersError')
    expect((await rejection(e.getGradientRows('nope', [0]))).name).toBe('InvalidParametersError')
  })

  it('addGradients with transfer: the buffer moves (detached here) and is added; a view is copied and added', async () => {
    const e = await embedShard()
    await e.backward({ input_ids: int64(BigInt64Array.from([1n, 2n]), [1, 2]), grad_hidden: { type: 'float32', dims: [1, 2, d], data: gradHidden(1, 2) } })
    const before = (await e.getGradients()).get('embed.weight')!
    const g = Float32Array.from({ length: V * d }, (_, i) => (i % 13) / 8)
    const want = Float32Array.from(before, (x, i) => x + g[i])
    await e.addGradients(new Map([['embed.weight', g]]), { transfer: true })
    expect(g.byteLength).toBe(0)
    expect((await e.getGradients()).get('embed.weight')).toEqual(want)
    // a view into a larger buffer cannot move: copied, the caller's array stays usable
    const big = new Float32Array(V * d + 4).fill(0.25)
    const view = big.subarray(4)
    await e.addGradients(new Map([['embed.weight', view]]), { transfer: true })
    expect(view.length).toBe(V * d)
    expect((await e.getGradients()).get('embed.weight')).toEqual(Float32Array.from(want, x => x + 0.25))
    // still checked first
    const nan = new Float32Array(V * d)
    nan[10] = NaN
    expect((await rejection(e.addGradients(new Map([['embed.weight', nan]]), { transfer: true }))).name).toBe('NonFiniteTensorError')
    expect(nan.length).toBe(V * d)
  })

  it('setParameters with transfer: the buffer moves and becomes the weights', async () => {
    const e = await embedShard()
    const w = Float32Array.from({ length: V * d }, (_, i) => (i % 7) / 16)
    const copy = w.slice()
    await e.setParameters(new Map([['embed.weight', w]]), { transfer: true })
    expect(w.byteLength).toBe(0)
    expect((await e.getParameters()).get('embed.weight')).toEqual(copy)
  })
})

import { describe, it, expect, afterAll } from 'vitest'
import { buildShardGraph, SHARD_IO } from '../../src/index.js'
import type { ModelConfig, ShardRole } from '../../src/index.js'
import { Runner, TINY_TEST, allParams, dot, ids, randn, relErr, rng, shardParams } from './helpers.js'
import type { T } from './helpers.js'

const TOL = 1e-6
const H = 1e-6
const BATCH = 2
const SEQ = 3

/**
 * Whole-shard gradient check in float64: L = ⟨forward output, R⟩ for a fixed random R fed as the backward
 * seed; for every float input x (shard input and each parameter) and 2 random directions v,
 * FD = (L(x + h v) − L(x − h v)) / 2h must match AD = ⟨grad x, v⟩ within relErr < 1e-6.
 */
async function checkShard (config: ModelConfig, role: ShardRole, feeds: Record<string, T>, outName: string, seedName: string, gradName: (input: string) => string): Promise<number> {
  const fwd = buildShardGraph(config, role, 'forward', { dtype: 'float64' })
  const bwd = buildShardGraph(config, role, 'backward', { dtype: 'float64' })
  const fr = await Runner.create(fwd.bytes)
  const br = await Runner.create(bwd.bytes)
  const r = rng(7)
  try {
    const y = (await fr.run(feeds))[outName]
    const seed: T = { data: randn(r, y.data.length), dims: y.dims }
    const grads = await br.run({ ...feeds, [seedName]: seed })
    const L = async (f: Record<string, T>): Promise<number> => dot((await fr.run(f))[outName].data, seed.data)
    let worst = 0
    let checked = 0
    for (const spec of fwd.inputs) {
      if (spec.dtype !== 'float64') continue
      const x = feeds[spec.name].data as Float64Array
      const g = grads[gradName(spec.name)]
      expect(g, `gradient output for ${spec.name}`).toBeDefined()
      for (let k = 0; k < 2; k++) {
        const v = randn(r, x.length)
        const shifted = (sign: number): T => ({ data: x.map((xi, i) => xi + sign * H * v[i]), dims: feeds[spec.name].dims })
        const fd = ((await L({ ...feeds, [spec.name]: shifted(1) })) - (await L({ ...feeds, [spec.name]: shifted(-1) }))) / (2 * H)
        const ad = dot(g.data, v)
        const e = relErr(fd, ad)
        expect(e, `${spec.name}: fd ${fd} ad ${ad}`).toBeLessThan(TOL)
        expect(Math.abs(ad)).toBeGreaterThan(1e-8)
        worst = Math.max(worst, e)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(0)
    return worst
  } finally {
    await fr.release()
    await br.release()
  }
}

describe('shard backward graphs agree with finite differences (float64)', () => {
  const worst: Record<string, number> = {}
  afterAll(() => { console.log('worst relative errors', worst) })

  for (const tied of [false, true]) {
    const config = { ...TINY_TEST, tieEmbeddings: tied }
    const params = allParams(config, 3, 'float64')
    const r = rng(11)
    const inputIds = ids(r, BATCH, SEQ, config.vocabSize)
    const targets = ids(r, BATCH, SEQ, config.vocabSize)
    const hidden: T = { data: randn(r, BATCH * SEQ * config.dModel), dims: [BATCH, SEQ, config.dModel] }

    if (!tied) {
      it('embed', async () => {
        // repeated ids check ScatterND accumulation
        const rep: T = { data: BigInt64Array.from([1n, 4n, 1n, 4n, 4n, 0n]), dims: [BATCH, SEQ] }
        worst.embed = await checkShard(config, { kind: 'embed' }, { [SHARD_IO.inputIds]: rep, ...shardParams(config, { kind: 'embed' }, params) }, SHARD_IO.hidden, SHARD_IO.gradHidden, n => SHARD_IO.grad(n))
        expect(inputIds.data.length).toBe(BATCH * SEQ)
      })

      it('blocks [0, 2)', async () => {
        const role: ShardRole = { kind: 'blocks', start: 0, end: 2 }
        worst.blocks = await checkShard(config, role, { [SHARD_IO.hiddenIn]: hidden, ...shardParams(config, role, params) }, SHARD_IO.hiddenOut, SHARD_IO.gradHiddenOut, n => n === SHARD_IO.hiddenIn ? SHARD_IO.gradHiddenIn : SHARD_IO.grad(n))
      })
    }

    it(`head + loss (${tied ? 'tied' : 'untied'} embeddings)`, async () => {
      worst[`head${tied ? '_tied' : ''}`] = await checkShard(config, { kind: 'head' }, { [SHARD_IO.hidden]: hidden, [SHARD_IO.targets]: targets, ...shardParams(config, { kind: 'head' }, params) }, SHARD_IO.loss, SHARD_IO.gradLoss, n => n === SHARD_IO.hidden ? SHARD_IO.gradHidden : SHARD_IO.grad(n))
    })
  }
})

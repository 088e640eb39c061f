import { afterEach, describe, expect, it } from 'vitest'
import { connectAll, startHost, stopAll, TOY_SPAN, toyParams } from './helpers.js'
import type { DiLoCoHost } from './helpers.js'
import { verifyRoundRecord } from '../src/index.js'
import type { RoundOutcome } from '../src/index.js'

const FAST = { minDeadlineMs: 1500, commitStaggerMs: 1000 }

describe('one DiLoCo round on 4 real hosts (loopback TCP)', () => {
  let hosts: DiLoCoHost[] = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('equals the hand-computed outer Nesterov update and leaves the replicas bit-identical', async () => {
    hosts = await Promise.all([0, 1, 2, 3].map(async () => await startHost({ span: TOY_SPAN, codec: 'fp32', aggregator: 'mean', ...FAST })))
    await connectAll(hosts)
    const a0 = [0.5, -1.25, 2]
    const b0 = [1, 2, 3, 4]
    for (const h of hosts) h.services.diloco.initialize(toyParams(a0, b0))
    // worker i's inner loop moved the weights by −δᵢ (so Δᵢ = δᵢ)
    const deltaA = [[0.1, 0.2, -0.3], [0.05, 0.1, 0.1], [-0.2, 0.3, 0.0], [0.15, -0.1, 0.2]]
    const deltaB = [[0.01, 0.02, 0.03, 0.04], [-0.04, 0.0, 0.02, 0.1], [0.2, 0.1, -0.1, 0.0], [0.03, 0.03, 0.03, 0.03]]
    const outcomes: RoundOutcome[] = await Promise.all(hosts.map(async (h, i) => {
      const local = toyParams(a0.map((x, k) => x - deltaA[i][k]), b0.map((x, k) => x - deltaB[i][k]))
      return await h.services.diloco.contribute(local, { dataShards: [`shard-${i}`], innerSteps: 50, tokens: 1000 })
    }))

    // expected, in float64: g = mean Δ; first Nesterov step with b0 = 0: b = g, θ' = θ − lr·(g + μ·g)
    const lr = 0.7
    const mu = 0.9
    const expect1 = (x0: number[], d: number[][]): number[] => x0.map((x, k) => {
      const g = (d[0][k] + d[1][k] + d[2][k] + d[3][k]) / 4
      return x - lr * (g + mu * g)
    })
    const ea = expect1(a0, deltaA)
    const eb = expect1(b0, deltaB)
    for (const o of outcomes) {
      expect(o.round).toBe(0)
      expect(o.included).toBe(true)
      const a = o.parameters.get('a') as Float32Array
      const b = o.parameters.get('b') as Float32Array
      ea.forEach((x, k) => expect(a[k]).toBeCloseTo(x, 6))
      eb.forEach((x, k) => expect(b[k]).toBeCloseTo(x, 6))
    }
    // bit-identical replicas: same bytes, same weights hash, same round
    const ref = outcomes[0]
    for (const o of outcomes.slice(1)) {
      expect(Buffer.from((o.parameters.get('a') as Float32Array).buffer)).toEqual(Buffer.from((ref.parameters.get('a') as Float32Array).buffer))
      expect(Buffer.from((o.parameters.get('b') as Float32Array).buffer)).toEqual(Buffer.from((ref.parameters.get('b') as Float32Array).buffer))
      expect(Buffer.from(o.baseHash)).toEqual(Buffer.from(ref.baseHash))
    }
    for (const h of hosts) expect(h.services.diloco.round).toBe(1)
    // the record: every sender accepted, data shards kept, same on every node
    const rec = hosts[0].services.diloco.record(0)
    expect(rec?.contributions.length).toBe(4)
    expect(rec?.contributions.every(c => c.accepted)).toBe(true)
    expect(rec?.contributions.map(c => c.dataShards[0]).sort()).toEqual(['shard-0', 'shard-1', 'shard-2', 'shard-3'])
    for (const h of hosts.slice(1)) expect(h.services.diloco.record(0)?.resultHash).toBe(rec?.resultHash)

    // anyone can rebuild the record from the signed commit and the payloads
    if (rec === undefined) throw new Error('no record')
    const payloads = new Map(rec.contributions.map(c => [c.payloadHash, hosts[3].services.diloco.payload(c.payloadHash) as Uint8Array]))
    await verifyRoundRecord(rec, { payloads, aggregator: 'mean' })
    const tampered = { ...rec, contributions: rec.contributions.map((c, i) => i === 0 ? { ...c, accepted: false } : c) }
    await expect(verifyRoundRecord(tampered, { payloads, aggregator: 'mean' })).rejects.toHaveProperty('name', 'InvalidCommitError')
    const forged = { ...rec, contributions: rec.contributions.map((c, i) => i === 0 ? { ...c, dataShards: ['other'] } : c) }
    await expect(verifyRoundRecord(forged)).rejects.toHaveProperty('name', 'InvalidCommitError')
    // the ledger's AggregationRecords question
    const c0 = rec.contributions[0]
    const query = { round: 0n, sender: c0.sender, baseWeightsHash: Buffer.from(rec.baseHash, 'hex'), pseudoGradientHash: Buffer.from(c0.payloadHash, 'hex') }
    expect(await hosts[1].services.diloco.acceptedPseudoGradient(query)).toBe(true)
    expect(await hosts[1].services.diloco.acceptedPseudoGradient({ ...query, round: 1n })).toBe(false)
  })

  it('int8 + the default aggregator (NNM + trimmed mean) + differential privacy over three rounds keeps the replicas identical', async () => {
    hosts = await Promise.all([0, 1, 2, 3].map(async (i) => await startHost({ span: TOY_SPAN, ...FAST, privacy: { clipNorm: 1, noiseMultiplier: 0.01, seed: i } })))
    await connectAll(hosts)
    for (const h of hosts) h.services.diloco.initialize(toyParams([0, 0, 0], [0, 0, 0, 0]))
    for (let r = 0; r < 3; r++) {
      const outs = await Promise.all(hosts.map(async (h, i) => {
        const p = h.services.diloco.parameters()
        for (const v of p.values()) for (let k = 0; k < v.length; k++) v[k] -= 0.01 * (i + 1) * (k + 1) * (r + 1)
        return await h.services.diloco.contribute(p)
      }))
      const hashes = new Set(outs.map(o => Buffer.from(o.baseHash).toString('hex')))
      expect(hashes.size).toBe(1)
      expect(outs.every(o => o.round === r)).toBe(true)
    }
    // every node spent three Gaussian releases: ε from the zCDP accountant (ρ = 3 / (2 · 0.01²), δ = 1e-5)
    const rho = 3 / (2 * 0.01 * 0.01)
    for (const h of hosts) {
      expect(h.services.diloco.privacy()?.rounds).toBe(3)
      expect(h.services.diloco.privacy()?.epsilon).toBeCloseTo(rho + 2 * Math.sqrt(rho * Math.log(1e5)), 6)
    }
  })
})

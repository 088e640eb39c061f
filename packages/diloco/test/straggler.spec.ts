import { afterEach, describe, expect, it } from 'vitest'
import { connectAll, startHost, stopAll, TOY_SPAN, toyParams, until } from './helpers.js'
import type { DiLoCoHost } from './helpers.js'

const FAST = { minDeadlineMs: 1500, commitStaggerMs: 1000 }

describe('a straggler whose inner steps started from an older base', () => {
  let hosts: DiLoCoHost[] = []
  afterEach(async () => { await stopAll(hosts); hosts = [] })

  it('contributes its own progress (startedFrom − local), not the difference to the current base', async () => {
    // plain averaging (outer lr 1, no momentum), fp32: the new base is the current one minus the mean Δ
    hosts = await Promise.all([0, 1].map(async () => await startHost({ span: TOY_SPAN, codec: 'fp32', aggregator: 'mean', outerLr: 1, outerMomentum: 0, ...FAST })))
    await connectAll(hosts)
    // both in each other's gossipsub mesh, so that both pseudo-gradients make the round
    await until(() => hosts.every(h => (h.services.pubsub as any).getMeshPeers(h.services.diloco.topic).length >= 1), 20_000, () => 'gossipsub mesh')
    const a0 = [1, 2, 3]
    const b0 = [4, 5, 6, 7]
    // θ₀: an older base; the group's current base is θ₁ = θ₀ − 1 (a round host 0 did not see before it trained)
    const theta0 = toyParams(a0, b0)
    for (const h of hosts) h.services.diloco.initialize(toyParams(a0.map(x => x - 1), b0.map(x => x - 1)), { round: 1 })
    // host 0 trained from θ₀ and moved by −3; host 1 trained from θ₁ and moved by −1. Progress 3 and 1 → mean 2
    // → θ₂ = θ₁ − 2 = θ₀ − 3. (Against the current base, host 0's Δ would be θ₁ − (θ₀ − 3) = 2, the mean 1.5
    // and θ₂ = θ₀ − 2.5.)
    const [o0, o1] = await Promise.all([
      hosts[0].services.diloco.contribute(toyParams(a0.map(x => x - 3), b0.map(x => x - 3)), { startedFrom: theta0 }),
      hosts[1].services.diloco.contribute(toyParams(a0.map(x => x - 2), b0.map(x => x - 2)))
    ])
    for (const o of [o0, o1]) {
      expect(o.round).toBe(1)
      expect(o.record?.contributions.length).toBe(2)
      expect(Array.from(o.parameters.get('a') as Float32Array)).toEqual(a0.map(x => x - 3))
      expect(Array.from(o.parameters.get('b') as Float32Array)).toEqual(b0.map(x => x - 3))
    }
    expect(Buffer.from(o0.baseHash)).toEqual(Buffer.from(o1.baseHash))
  })
})

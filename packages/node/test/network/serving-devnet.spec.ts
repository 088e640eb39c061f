/**
 * A serving-only devnet (every node `training: false`): inference routes come from the swarm router (no training
 * chains pin them), so a healthy peer it bans for a local error is a NoRouteError for every completion until the
 * ban ends. Checked: the router's probes while other pings of the same peers are in flight ban no one (libp2p's
 * connection monitor pings every connection; with one ping stream per connection the probe failed with
 * TooManyOutboundProtocolStreamsError and banned the peer), and greedy chat completions through the pipeline —
 * with the n-gram speculative decoding the node uses for them — are `neuroshard generate`'s engine's tokens, with the
 * serving stages fused (embed + blocks, blocks + head: one onnxruntime run per token on a node).
 */
import { rm } from 'node:fs/promises'
import { TextGenerator } from '@neuroshard/trainer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalGenerator } from '../../src/api/local-generator.js'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { genesisWeights, retryUntilRouted, waitForCoverage } from './devnet-wait.js'
import { prepareTestData } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { PreparedData } from '../../src/workspace.js'
import type { NetworkNode } from '../../src/network/node.js'

describe('a serving-only devnet', () => {
  let dir: string
  let devnet: NetworkDevnet
  let local: LocalGenerator
  /** `neuroshard generate`'s engine, the same weights */
  let engine: TextGenerator
  let data: PreparedData

  beforeAll(async () => {
    ({ dir, data } = await prepareTestData('serving-devnet', 600))
    devnet = await startNetworkDevnet({
      nodes: 4,
      tokenizer: data.tokenizer,
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      node: { training: false },
      ledger: false
    })
    const weights = genesisWeights(devnet.config)
    local = await LocalGenerator.create({ tokenizer: data.tokenizer, config: devnet.config, parameters: weights, threads: 1 })
    engine = await TextGenerator.create({ config: devnet.config, parameters: weights, threads: 1 })
    // every node serves a span and every slot is held
    await waitForCoverage(devnet, { everyNodeServes: true })
  }, 300_000)

  afterAll(async () => {
    await devnet?.stop()
    await local?.close()
    await engine?.close()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  }, 120_000)

  const drivers = (): NetworkNode[] => devnet.nodes.filter(n => n.heldStages().some(h => h.start === 0))

  /** Generations that succeed once the Driver's layer records show a route (records spread by gossip) */
  async function generateOnce (driver: NetworkNode): Promise<void> {
    await retryUntilRouted(async () => {
      for await (const _ of driver.generate([1, 2, 3], { maxNewTokens: 2, temperature: 0 })) { void _ }
    })
  }

  it('router probes while other pings of the same peers are in flight ban no healthy peer', async () => {
    for (const driver of drivers()) {
      await generateOnce(driver) // the router now has a plan to probe
      const router = driver.host.services.swarmRouter
      const peers = devnet.nodes.filter(n => n !== driver).map(n => n.peerId)
      for (let round = 0; round < 3; round++) {
        // what libp2p's connection monitor does on its own timer: a ping on every connection
        const monitor = Promise.allSettled(peers.map(async p => await driver.host.services.ping.ping(p)))
        await router.probe()
        await monitor
        for (const p of peers) expect(router.isBanned(p), `peer ${p.toString()} banned after round ${round}`).toBe(false)
      }
      // and completions route
      await generateOnce(driver)
    }
  }, 300_000)

  it('greedy completions through the pipeline (speculative, n-gram drafts) are the one-process engine\'s tokens', async () => {
    const driver = drivers()[0]
    const eos = data.tokenizer.eosId!
    const before = { ...driver.speculation }
    let produced = 0
    for (const prompt of ['The driver sends', 'A worker holds the cache', 'Every node', 'the ledger signs a proof of work']) {
      // laid out as a chat completion is (one document per message)
      const ids = local.encode([{ role: 'user', content: prompt }])
      const session = await engine.session()
      const want: number[] = []
      try {
        for await (const id of session.generate(ids, { temperature: 0, maxTokens: 40, stopTokens: [eos] })) want.push(id)
      } finally {
        await session.close()
      }
      const got: number[] = []
      for await (const t of driver.generate(ids, { temperature: 0, maxNewTokens: 40, stopTokens: [eos] })) got.push(t.id)
      expect(got, prompt).toEqual(want)
      produced += want.length
    }
    expect(produced).toBeGreaterThan(4)
    // serving stages of this small model run embed + blocks and blocks + head as one session (fuseInference)
    for (const n of devnet.nodes) {
      for (const { stage } of n.heldStages()) {
        if (stage.blocks != null && (stage.embed != null || stage.head != null)) expect(stage.fused).toEqual({ embed: stage.embed != null, head: stage.head != null })
      }
    }
    // the speculative path ran and its drafts were taken
    expect(driver.speculation.rounds).toBeGreaterThan(before.rounds)
    expect(driver.speculation.accepted).toBeGreaterThan(before.accepted)
  }, 300_000)
})

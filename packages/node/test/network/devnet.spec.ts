/**
 * The devnet as a user runs it, in one process: four NetworkNodes on loopback (real libp2p hosts, layer
 * pool, pipeline, DiLoCo groups, onnxruntime stages) on a genesis dataset built here. Checked: the
 * network's validation loss falls over DiLoCo rounds, replicas of every slot hold the same weights after
 * each round, chat completions stream through the pipeline, and training and a streamed completion both
 * go on when a Worker is killed.
 */
import { rm } from 'node:fs/promises'
import { constantLr } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startApiServer } from '../../src/api/server.js'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { prepareTestData } from './test-data.js'
import type { ApiServer } from '../../src/api/server.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'

const TOKEN = 'devnet-test-token'

/** Resolves when `predicate` holds for an event of `type` on `node` (checked on every event) */
async function waitFor<T> (node: NetworkNode, type: 'node:validation' | 'node:round' | 'node:step', predicate: (detail: any) => T | undefined, ms: number, what: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { node.removeEventListener(type, on as any); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)) }, ms)
    function on (evt: CustomEvent<any>): void {
      const v = predicate(evt.detail)
      if (v === undefined) return
      clearTimeout(timer)
      node.removeEventListener(type, on as any)
      resolve(v)
    }
    node.addEventListener(type, on as any)
  })
}

async function readSse (res: Response): Promise<{ pieces: string[], done: boolean }> {
  const text = await res.text()
  const pieces: string[] = []
  let done = false
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ')) continue
    const data = line.slice(6)
    if (data === '[DONE]') { done = true; continue }
    const chunk = JSON.parse(data)
    const content = chunk.choices?.[0]?.delta?.content
    if (typeof content === 'string' && content !== '') pieces.push(content)
  }
  return { pieces, done }
}

describe('devnet: nodes that train and serve together', () => {
  let dir: string
  let devnet: NetworkDevnet
  let server: ApiServer
  /** A Driver, serving the API */
  let api: NetworkNode
  const validation = new Map<number, number>()
  /** `${slot}/${round}` → base weights hash (hex) reported by each holder when it applied the round */
  const hashes = new Map<string, Set<string>>()

  beforeAll(async () => {
    const prepared = await prepareTestData('devnet', 1500, 320)
    dir = prepared.dir
    const data = prepared.data
    expect(data.validation.length).toBeGreaterThan(0)
    devnet = await startNetworkDevnet({
      nodes: 4,
      tokenizer: data.tokenizer,
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      // one token per pipeline pass: with n-gram drafts a repetitive greedy answer can be complete in a burst
      // before the Worker-kill test kills its Worker (the fresh-clone CI saw 40 tokens and no failover)
      node: { innerSteps: 5, batchSize: 4, seqLen: 32, optimizer: { schedule: constantLr(3e-3) }, evalBatches: 2, draftGreedy: false },
      onNode: (node) => {
        node.addEventListener('node:validation', (e) => { validation.set(e.detail.round, e.detail.loss) })
        node.addEventListener('node:round', (e) => {
          const g = node.group(e.detail.slot)
          if (g == null || g.round !== e.detail.round) return
          const key = `${e.detail.slot}/${e.detail.round}`
          const set = hashes.get(key) ?? new Set()
          set.add(Buffer.from(g.baseHash).toString('hex'))
          hashes.set(key, set)
        })
      }
    })
    // the layer pool settles: every node serves a span
    const deadline = Date.now() + 120_000
    while (!devnet.nodes.every(n => n.heldStages().length > 0)) {
      if (Date.now() > deadline) throw new Error('the nodes did not all take a span in 120 s')
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    api = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    server = await startApiServer({ backend: api.backend(), port: 0, token: TOKEN, defaultMetrics: false })
  }, 240_000)

  afterAll(async () => {
    await server?.close()
    await devnet?.stop()
    await rm(dir, { recursive: true, force: true })
  }, 60_000)

  it('every node takes a span, two pipelines form, and the network validation loss falls over DiLoCo rounds', async () => {
    const driver = api
    await waitFor(driver, 'node:validation', d => d.round >= 3 ? true : undefined, 240_000, 'the validation loss after round 3')
    const spans = devnet.nodes.map(n => n.heldStages().map(h => [h.start, h.end]))
    // every slot is held by two nodes (two replicas) and each node holds about half of the model
    for (let slot = 0; slot < 4; slot++) expect(spans.flat().filter(([a, b]) => a <= slot && slot < b)).toHaveLength(2)
    expect(driver.chains()).toHaveLength(2)
    const rounds = [...validation.keys()].sort((a, b) => a - b)
    const first = validation.get(rounds[0])!
    const last = validation.get(rounds.at(-1)!)!
    // from ≈ ln(320) ≈ 5.77 at init (round 0 is measured when a node joins its groups); three rounds of two
    // pipelines bring it well down
    expect(last).toBeLessThan(first - 0.5)
    expect(last).toBeLessThan(Math.log(320) - 0.5)
  }, 300_000)

  it('the replicas of every slot hold the same weights after each round', () => {
    const complete = [...hashes.entries()]
    expect(complete.length).toBeGreaterThanOrEqual(8)
    for (const [key, set] of complete) expect(set.size, `slot/round ${key}`).toBe(1)
    // the two holders of a slot both reported the round (not just one of them)
    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    const round = driver.group(0)!.round
    const holders = devnet.nodes.filter(n => n.group(0) != null && n.group(0)!.round === round)
    expect(holders.length).toBe(2)
    expect(Buffer.from(holders[0].group(0)!.baseHash).equals(Buffer.from(holders[1].group(0)!.baseHash))).toBe(true)
  })

  it('/v1/chat/completions streams tokens through the pipeline; without the token it is 401', async () => {
    const body = JSON.stringify({ model: 'devnet', messages: [{ role: 'user', content: 'The driver' }], max_tokens: 8, stream: true, temperature: 0 })
    const denied = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(denied.status).toBe(401)
    const generatedBefore = api.host.services.pipeline.trafficStats().requests
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body })
    expect(res.status).toBe(200)
    const { pieces, done } = await readSse(res)
    expect(done).toBe(true)
    expect(pieces.length).toBeGreaterThan(0)
    // the tokens came over the pipeline (requests to the other hops), not from a local model
    expect(api.host.services.pipeline.trafficStats().requests).toBeGreaterThan(generatedBefore)
    const models: any = await (await fetch(`${server.url}/v1/models`)).json()
    expect(models.data.map((m: any) => m.id)).toContain('devnet')
  }, 120_000)

  it('a streamed completion and training both go on when a Worker is killed', async () => {
    const tail = api.heldStages()[0].end
    // the router plans once it has measured its candidates (on a fast, idle machine the test can get here first)
    for (const until = Date.now() + 60_000; api.host.services.swarmRouter.plan(tail, 4) == null && Date.now() < until;) {
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    expect(api.host.services.swarmRouter.plan(tail, 4)).toBeDefined()
    // the victim is the Worker the generation runs through, read from the chain its pipeline asked the router for
    // (a plan made here beforehand is not that chain: training micro-batches change the replicas' load between the
    // two, and a plan weighs no KV headroom; 1 run in 9 killed the other replica and saw no failover)
    const router = api.host.services.swarmRouter
    const chainOf = router.chain.bind(router)
    let inference: Exclude<ReturnType<typeof chainOf>, Promise<unknown>> | undefined
    router.chain = (options) => {
      const hops = chainOf(options)
      if (options.purpose === 'inference' && Array.isArray(hops)) inference = hops
      return hops
    }
    let failovers = 0
    api.host.services.pipeline.addEventListener('pipeline:failover', () => { failovers++ })

    let survivorDriver: NetworkNode | undefined
    // each node's slot-0 round before the generation: the survivor's is the baseline of its rounds after the kill
    const roundsBefore = new Map(devnet.nodes.map(n => [n, n.group(0)?.round ?? 0]))
    let roundBefore = 0
    const controller = new AbortController()
    const pieces: string[] = []
    try {
      for await (const token of api.generate([1, 2, 3], { maxNewTokens: 40, signal: controller.signal })) {
        pieces.push(token.text)
        if (pieces.length !== 5) continue
        const hop = inference?.find(h => h.start <= tail && tail < h.end)
        expect(hop, 'the generation\'s chain').toBeDefined()
        const planned = hop!.peer.toString()
        const victim = devnet.nodes.findIndex(n => n.peerId.toString() === planned)
        expect(victim).toBeGreaterThanOrEqual(0)
        // the training chain without the victim keeps training
        const survivorChain = api.chains().find(c => c.driver !== planned && !c.hops.some(h => h.peer === planned))
        expect(survivorChain).toBeDefined()
        survivorDriver = devnet.nodes.find(n => n.peerId.toString() === survivorChain!.driver)!
        roundBefore = roundsBefore.get(survivorDriver)!
        await devnet.stopNode(victim, { kill: true })
      }
    } finally {
      router.chain = chainOf
    }
    expect(pieces).toHaveLength(40)
    expect(failovers).toBeGreaterThan(0)

    // the pipeline that lost its Worker waits; the other one trains on and its rounds still apply
    await waitFor(survivorDriver!, 'node:round', d => d.slot === 0 && d.round >= roundBefore + 2 ? true : undefined, 180_000, 'two more rounds after the kill')
  }, 300_000)
})

/**
 * Proof of Neural Work on the devnet (real libp2p hosts, onnxruntime stages, DiLoCo groups, the ledger in
 * level): nodes sign training proofs for the rounds their pseudo-gradients were accepted in, validators
 * re-execute them (the stage replays its committed inputs on fresh executors) and check the slot groups'
 * signed round records; a node that holds no layers earns uptime but no training reward; the supply
 * invariant holds; a proof whose final weights were not obtained by the committed training is refused
 * although its round record accepted the pseudo-gradient.
 */
import { rm } from 'node:fs/promises'
import { assignShards, currentEpoch, currentRound, signTx } from '@neuroshard/ponw-ledger'
import { constantLr } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startApiServer } from '../../src/api/server.js'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { decodeWitness, encodeWitness, sha256 } from '../../src/ponw/stage-work.js'
import { prepareTestData } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { Outcome } from '@neuroshard/ponw-ledger'

async function until<T> (fn: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
}

describe('devnet: Proof of Neural Work from real work', () => {
  let dir: string
  let devnet: NetworkDevnet
  /** holds no layer: trains nothing */
  let idle: NetworkNode
  const proofs = new Map<number, string[]>()

  beforeAll(async () => {
    const prepared = await prepareTestData('ponw', 1200)
    dir = prepared.dir
    const data = prepared.data
    devnet = await startNetworkDevnet({
      nodes: 4,
      tokenizer: data.tokenizer,
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      node: { innerSteps: 4, batchSize: 2, seqLen: 16, optimizer: { schedule: constantLr(3e-3) }, evalEvery: 0 },
      ledger: { params: { epochMs: 60_000, roundMs: 30_000, heartbeatSeconds: 2 } },
      onNode: (node, i) => {
        proofs.set(i, [])
        node.ponw?.onProof(p => { if (p.kind === 'training') proofs.get(i)!.push(p.id) })
      }
    })
    // a fifth node with too little memory for any slot: it runs the ledger (heartbeats) and nothing else
    idle = await devnet.addNode({ memoryBytes: 1024, training: false })
  }, 300_000)

  afterAll(async () => {
    await devnet?.stop()
    await rm(dir, { recursive: true, force: true })
  }, 120_000)

  const outcomes = async (node: NetworkNode, address: string): Promise<Outcome[]> => await node.ponw!.service.ledger.history(address)
  const applied = (list: Outcome[], kind: string): Outcome[] => list.filter(o => o.kind === kind && o.status === 'applied' && o.minted > 0n)

  it('every training node earns training rewards for accepted rounds; the idle node earns uptime only', async () => {
    const observer = devnet.nodes[0]
    const training = devnet.nodes.slice(0, 4)
    for (let i = 0; i < training.length; i++) {
      await until(async () => applied(await outcomes(observer, devnet.wallets[i].address), 'training').length > 0 ? true : undefined, 420_000, `a final training reward of node ${i}`)
    }
    await until(async () => applied(await outcomes(observer, devnet.wallets[4].address), 'uptime').length > 0 ? true : undefined, 300_000, 'an uptime reward of the idle node')
    // data proofs: possession of the assigned genesis shards, opened on the validators' challenges
    await until(async () => applied(await outcomes(observer, devnet.wallets[4].address), 'data').length > 0 ? true : undefined, 300_000, 'a data reward of the idle node')
    expect(idle.heldStages()).toHaveLength(0)
    const idleHistory = await outcomes(observer, devnet.wallets[4].address)
    expect(idleHistory.filter(o => o.kind === 'training')).toHaveLength(0)
    // every training reward pays the proof's own sender, for a proof that node signed itself
    for (let i = 0; i < training.length; i++) {
      const rewarded = applied(await outcomes(observer, devnet.wallets[i].address), 'training')
      for (const o of rewarded) {
        expect(o.sender).toBe(devnet.wallets[i].address)
        expect(proofs.get(i)).toContain(o.id)
        expect(o.deltas[devnet.wallets[i].address]).toBe(o.minted)
      }
    }
    // balances: genesis allocation plus exactly the rewards minted to it
    const ledger = observer.ponw!.service.ledger
    for (let i = 0; i < 5; i++) {
      const a = devnet.wallets[i].address
      // rewards keep arriving: compare a balance and a history read with no outcome applied in between
      let balance = -1n
      let gained = 0n
      for (let tries = 0; tries < 50; tries++) {
        const before = ledger.balance(a)
        gained = (await outcomes(observer, a)).reduce((s, o) => s + (o.deltas[a] ?? 0n), 0n)
        if (ledger.balance(a) === before) { balance = before; break }
      }
      // the four initial wallets start with 100 NEURO; the idle node joined after genesis with nothing
      expect(balance).toBe((i < 4 ? 100n * 10n ** 18n : 0n) + gained)
    }
    // supply invariant: everything held = genesis supply + minted − burned
    const st = ledger.state
    expect(st.holdings()).toBe(st.totals.genesisSupply + st.totals.minted - st.totals.burned)
    expect(st.totals.minted).toBeGreaterThan(0n)
  }, 900_000)

  it('a paid completion through the pipeline earns the serving node an inference reward; the payment is single-use', async () => {
    const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
    const provider = devnet.wallets[devnet.nodes.indexOf(driver)].address
    const client = idle.ponw!.service
    const server = await startApiServer({ backend: driver.backend(), port: 0, defaultMetrics: false })
    try {
      const ask = async (payment: string): Promise<Response> => await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'devnet', prompt: 'the', max_tokens: 8, temperature: 0, neuroshard_payment: payment })
      })
      // not a payment this node knows: 402
      const unknown = await ask('ab'.repeat(32))
      expect(unknown.status).toBe(402)
      expect(((await unknown.json()) as any).error.code).toBe('payment_required')
      const pay = await client.send({ kind: 'payment', provider, tokens: 8n, pricePerToken: 10n ** 15n, sessionId: new Uint8Array(32).fill(7) })
      await until(() => driver.ponw!.service.ledger.state.payments.has(pay.idHex) ? true : undefined, 240_000, 'the payment to be final on the serving node')
      const res = await ask(pay.idHex)
      expect(res.status).toBe(200)
      const body = await res.json() as any
      expect(body.choices[0].text.length).toBeGreaterThan(0)
      // the same payment again: refused
      const again = await ask(pay.idHex)
      expect(again.status).toBe(402)
      expect(((await again.json()) as any).error.code).toBe('payment_used')
      const rewarded = await until(async () => applied(await outcomes(devnet.nodes[0], provider), 'inference').find(o => o.sender === provider), 300_000, 'the inference reward')
      expect(rewarded.minted).toBeGreaterThan(0n)
      // capped by the burned part of the fee (1/5 of 8 × 10^15)
      expect(rewarded.minted).toBeLessThanOrEqual(8n * 10n ** 15n / 5n)
    } finally {
      await server.close()
    }
  }, 600_000)

  it('refuses a training proof whose committed inputs do not produce its final weights (the round record alone accepts it)', async () => {
    // an honest proof of node 1 that became final
    const prover = devnet.nodes[1]
    const observer = devnet.nodes[0]
    const chain = observer.ponw!.service.ledger.chain
    const honestId = applied(await outcomes(observer, devnet.wallets[1].address), 'training').map(o => o.id).find(id => prover.ponw!.witnesses(id) != null)
    expect(honestId).toBeDefined()
    const [w0, wf] = prover.ponw!.witnesses(honestId!)!
    const body = prover.ponw!.claim(honestId!) as any
    expect(body?.kind).toBe('training')
    // forged: the same accepted payloads and final weights, but committed inputs the stage did not train on
    // (every activation and gradient it received halved)
    const base = decodeWitness(w0)!
    for (const per of base.ops) {
      for (const step of per) {
        for (const op of step) {
          if (op.kind !== 'backward') continue
          for (const t of Object.values(op.feeds)) if (t.type === 'float32') for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] *= 0.5
        }
      }
    }
    const forgedW0 = encodeWitness({ ...base, bytes: undefined })
    // ledger rounds within the window for which node 1 has no proof: node 1 stops signing training proofs
    prover.ponw!.signTraining = false
    const proved = (r: bigint): boolean => observer.ponw!.service.ledger.state.proofKeys.has(`training/${devnet.wallets[1].address}/${r}`)
    const freeRound = async (): Promise<bigint> => await until(async () => {
      // no training proof of node 1 in flight (it could be about to become final for the round); its uptime and
      // inference proofs do not matter, and one of them is in flight most of the time on a busy devnet
      if ((await prover.ponw!.service.ledger.unfinishedOwn()).some(t => t.tx.training != null)) return undefined
      const round = currentRound(chain, Date.now())
      return [round, round - 1n].find(r => r >= 0n && !proved(r))
    }, 240_000, 'a ledger round without a proof of node 1')
    // sequences far ahead of the account's: these messages are only checked, never sent
    const make = (sequence: bigint, modelHash: Uint8Array, round: bigint): any => signTx(chain, devnet.wallets[1], sequence, currentEpoch(chain, Date.now()), {
      kind: 'training',
      round,
      modelHash,
      shardIds: assignShards(chain, devnet.wallets[1].address, round),
      tokens: body.tokens,
      batches: body.batches,
      lossBeforeMicro: 0n,
      lossAfterMicro: 0n,
      pseudoGradientHash: body.pseudoGradientHash,
      batchLossMicro: body.batchLossMicro,
      checkpointInterval: 0,
      checkpointHashes: []
    })
    const state = observer.ponw!.service.ledger.state
    // control: the claim with the honest witnesses passes every check
    const honestCopy = make(1_000_001n, body.modelHash, await freeRound())
    prover.ponw!.serve(honestCopy.idHex, [w0, wf])
    await observer.ponw!.verifier.check(chain, state, honestCopy, Date.now())

    const round = await freeRound()
    const forgedTx = make(1_000_000n, sha256(forgedW0), round)
    prover.ponw!.serve(forgedTx.idHex, [forgedW0, wf])
    // the round record check alone accepts it: its record, base weights and payloads are the real ones
    const q = { proofId: forgedTx.idHex, round, sender: devnet.wallets[1].address, baseWeightsHash: sha256(forgedW0), pseudoGradientHash: body.pseudoGradientHash }
    expect(await observer.ponw!.aggregation.acceptedPseudoGradient(q)).toBe(true)
    // the re-execution does not: replaying the committed inputs lands elsewhere
    await expect(observer.ponw!.verifier.check(chain, state, forgedTx, Date.now())).rejects.toThrow(/segment 0: re-executed weights are/)
  }, 300_000)
})

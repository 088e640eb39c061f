/**
 * Proof of Neural Work with a tied model (the pipeline's owned tied matrix, spec 1.8.0 §4.4 rule 7) in a training
 * network: two NetworkNodes on loopback with the ledger (real libp2p hosts, onnxruntime stages, DiLoCo groups), a tied
 * micro model, the Driver holding [0, k), the Validator the rest. Each stage's inner loops are recorded for training
 * proofs (`StageRecorder`). Every loop a node would sign a proof of must re-execute on the node's verifier
 * (`StageTrainingModel`: fresh onnxruntime executors replaying the committed calls) to the final state the proof names,
 * the tied matrix included, and one whose final tied matrix is changed must not.
 *
 * (node/ponw 1.1.0) The witness records the calls that move the tied matrix between the two nodes (the head's gradient
 * taken, added to the Driver's embedding; rows fetched from the owner; SET_TIED / GET_TIED's matrix and moments; the
 * replica's steps with the Driver's AdamW numbers; the Driver's step skipping the owned matrix), so a tied stage's loops
 * are provable: both nodes sign training proofs and the ledger makes them final (the validators re-execute them). Before
 * 1.1.0 every such loop broke on those calls and no training proof was signed.
 */
import { constantLr } from '@neuroshard/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StageTrainingModel } from '../../src/ponw/stage-verifier.js'
import { decodeWitness, encodeWitness } from '../../src/ponw/stage-work.js'
import { stopTestDevnet } from './test-data.js'
import { startTiedPair, until } from './tied-pair.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { RecordedRound, StageWitness } from '../../src/ponw/stage-work.js'
import type { TrainingClaim } from '@neuroshard/ponw-ledger'

const H = 4
const optimizer = { schedule: constantLr(2e-2) }

interface Finished { node: 'driver' | 'validator', start: number, end: number, recorded?: RecordedRound }

describe('PoNW with a tied model (real hosts, tied micro model, owned tied matrix)', () => {
  let dir: string
  let devnet: NetworkDevnet
  let driver: NetworkNode
  let validator: NetworkNode
  const finished: Finished[] = []
  /** training proofs the two nodes signed */
  const proofs: string[] = []

  beforeAll(async () => {
    ({ dir, devnet, driver, validator } = await startTiedPair('tied-ponw', H, { node: { optimizer }, ledger: { params: { epochMs: 60_000, roundMs: 30_000, heartbeatSeconds: 2 } } }))
    for (const node of [driver, validator]) node.ponw!.onProof(p => { if (p.kind === 'training') proofs.push(p.id) })
    // every inner loop a stage's recorder finishes, as the node gets it (undefined: not provable)
    for (const [name, node] of [['driver', driver], ['validator', validator]] as const) {
      for (const held of (node as any).stages.values()) {
        const rec = held.recorder
        expect(rec, `${name}'s stage ${held.start}-${held.end} is recorded`).toBeDefined()
        const finish = rec.finish.bind(rec)
        rec.finish = async () => {
          const recorded = await finish()
          finished.push({ node: name, start: held.start, end: held.end, recorded })
          return recorded
        }
      }
    }
  }, 400_000)

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('a tied stage\'s loops are provable: each recorded loop re-executes to its final state, and the ledger makes both nodes\' training proofs final', async () => {
    const recorded = (who: string): Finished[] => finished.filter(f => f.node === who && f.recorded != null)
    await until(() => recorded('validator').length >= 1 && recorded('driver').length >= 1, 240_000,
      () => `a recorded loop of each node (${finished.length} finished, the last: ${JSON.stringify(finished.slice(-6).map(f => ({ ...f, recorded: f.recorded != null })))})`)
    const model = new StageTrainingModel({ config: devnet.config, optimizer })
    try {
      for (const f of finished) {
        if (f.recorded == null) continue
        const work = f.recorded
        const w0 = decodeWitness(encodeWitness({ start: work.start, end: work.end, states: work.before, opsFrom: work.opsFrom, ops: work.ops, evidence: [], payloads: [] }))!
        const wf = decodeWitness(encodeWitness({ start: work.start, end: work.end, states: work.after, opsFrom: work.opsFrom, ops: [], evidence: [], payloads: [] }))!
        let w: StageWitness = w0
        for (let i = 0; i < H; i++) w = await model.step(w, {} as TrainingClaim, i)
        expect(model.distance(w, wf), `${f.node} ${f.start}-${f.end} from ${work.opsFrom}`).toBeLessThanOrEqual(1e-6)
        // the final tied matrix changed by a little: refused
        const changed = wf.states.map(st => ({ ...st, parameters: new Map([...st.parameters].map(([k, v]) => [k, k === 'embed.weight' ? v.map(x => x + 1e-3) : v])) }))
        expect(model.distance(w, { ...wf, states: changed })).toBeGreaterThan(1e-4)
      }
    } finally {
      await model.close()
    }
    // the tied calls are in the recorded loops: the Driver's embedding (rows fetched from the owner, its step skipping the
    // owned matrix), the Validator's head (its tied gradient taken, its replica stepped)
    const kinds = (who: string, e: number): Set<string> => new Set(recorded(who).flatMap(f => f.recorded!.ops[e].flat().map(o => o.kind === 'step' && o.skip != null ? 'skip' : o.kind)))
    const head = recorded('validator')[0].recorded!.ops.length - 1
    expect([...kinds('validator', head)].filter(k => k === 'take' || k === 'tiedStep').sort()).toEqual(['take', 'tiedStep'])
    expect(kinds('driver', 0).has('rows') || kinds('driver', 0).has('add')).toBe(true)
    // the ledger: a final training reward for a proof of each node (both nodes vote, re-executing the other's witness)
    const applied = async (node: NetworkNode): Promise<string[]> => {
      const i = devnet.nodes.indexOf(node)
      return (await driver.ponw!.service.ledger.history(devnet.wallets[i].address)).filter(o => o.kind === 'training' && o.status === 'applied' && o.minted > 0n).map(o => o.id)
    }
    const deadline = Date.now() + 300_000
    while ((await applied(driver)).length === 0 || (await applied(validator)).length === 0) {
      if (Date.now() > deadline) throw new Error(`no final training reward of both nodes in 300 s (proofs signed ${proofs.length}: ${proofs.join(', ')}; finished ${finished.length}, the last ${JSON.stringify(finished.slice(-6).map(f => ({ node: f.node, span: `${f.start}-${f.end}`, from: f.recorded?.opsFrom })))})`)
      await new Promise(resolve => setTimeout(resolve, 500))
    }
    expect(proofs.length).toBeGreaterThanOrEqual(2)
    // each final proof is one its node signed, and its committed calls are a tied stage's (tied ops in checkpoint 0)
    for (const node of [driver, validator]) {
      for (const id of await applied(node)) {
        expect(proofs).toContain(id)
        const w0 = decodeWitness(node.ponw!.witnesses(id)![0])!
        expect(w0.ops.flat(2).some(o => o.kind === 'take' || o.kind === 'tiedStep' || o.kind === 'rows' || o.kind === 'add' || (o.kind === 'step' && o.skip != null)), `proof ${id}: tied ops`).toBe(true)
      }
    }
  }, 600_000)
})

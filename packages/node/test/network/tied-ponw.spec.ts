/**
 * Proof of Neural Work with a tied model (the pipeline's owned tied matrix, spec 1.8.0 §4.4 rule 7) in a training
 * network: two NetworkNodes on loopback with the ledger (real libp2p hosts, onnxruntime stages, DiLoCo groups), a tied
 * micro model, the Driver holding [0, k), the Validator the rest. Each stage's inner loops are recorded for training
 * proofs (`StageRecorder`). Every loop a node would sign a proof of must re-execute on the node's verifier
 * (`StageTrainingModel`: fresh onnxruntime executors replaying the committed calls) to the final state the proof names,
 * the tied matrix included, and one whose final tied matrix is changed must not.
 *
 * What this shows today: NO loop of a tied stage is provable, so a tied model's nodes sign no training proof (none that
 * a validator would refuse either). The witness (specs/node/ponw) records backward feeds, gradient resets and optimizer
 * steps of the stage's own executors; a tied step also moves the head's gradient to the Driver's embedding
 * (`addGradients`), or steps the matrix on its owner (the Driver's step `skip`s it, the Validator's replica steps in its
 * worker: `takeTiedGradients`, `stepTiedReplica`), and the Validator is re-seeded (`setParameters`, SET_TIED): calls a
 * replay cannot reproduce, which break the loop. Proofs of tied stages need a witness with those inputs (not done).
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

  it('no loop of a tied stage is offered as provable unless it re-executes to its final state (none is, today: NOT provable)', async () => {
    await until(() => finished.filter(f => f.node === 'validator').length >= 2 && finished.filter(f => f.node === 'driver').length >= 2, 200_000,
      () => `two finished loops of each node (${JSON.stringify(finished.map(f => ({ ...f, recorded: f.recorded != null })))})`)
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
    // today: none (see the header); both nodes' stages finished loops and none is provable
    expect(finished.filter(f => f.recorded != null).map(f => `${f.node} ${f.start}-${f.end} from ${f.recorded!.opsFrom}`)).toEqual([])
    expect(proofs).toEqual([])
  }, 300_000)
})

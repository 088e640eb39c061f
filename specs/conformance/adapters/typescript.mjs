// Conformance adapter of the TypeScript implementation (@neuroshard/ponw-ledger, built: `tsc -b` first).
// JSON lines on stdin/stdout, protocol in ../README.md. Run by: python3 specs/conformance/run.py -- node <this file>
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { describeWitness, witnessOf } from '../../node/vectors/witness-json.mjs'
import * as L from '../../../packages/ponw-ledger/dist/src/index.js'
import * as PB from '../../../packages/ponw-ledger/dist/src/pb/ledger.js'
const { Tx } = PB
// the other packages load on first use (the model package brings onnxruntime): a ledger-only run starts fast
const lazy = (path) => { let m; return async () => (m ??= await import(path)) }
const hostPkg = lazy('../../../packages/host/dist/src/index.js')
const tensorPkg = lazy('../../../packages/tensor/dist/src/index.js')
const tokenizerPkg = lazy('../../../packages/tokenizer/dist/src/index.js')
const modelPkg = lazy('../../../packages/model/dist/src/index.js')
const genesisPkg = lazy('../../../packages/genesis-data/dist/src/index.js')
const layerPoolPkg = lazy('../../../packages/layer-pool/dist/src/index.js')
const pipelinePkg = lazy('../../../packages/pipeline/dist/src/index.js')
const routerPkg = lazy('../../../packages/swarm-router/dist/src/index.js')
const dilocoPkg = lazy('../../../packages/diloco/dist/src/index.js')
const runtimePkg = lazy('../../../packages/runtime/dist/src/index.js')
const nodePonwWork = lazy('../../../packages/node/dist/src/ponw/stage-work.js')
const nodePonwVerifier = lazy('../../../packages/node/dist/src/ponw/stage-verifier.js')
// libp2p keys and peer ids as the layer-pool package resolves them (the adapter has no node_modules of its own)
const keysPkg = lazy('../../../packages/layer-pool/node_modules/@libp2p/crypto/dist/src/keys/index.js')
const peerIdPkg = lazy('../../../packages/layer-pool/node_modules/@libp2p/peer-id/dist/src/index.js')
const multiaddrPkg = lazy('../../../packages/layer-pool/node_modules/@multiformats/multiaddr/dist/src/index.js')
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const chains = new Map()
function chainOf (g) {
  const k = JSON.stringify(g)
  if (!chains.has(k)) chains.set(k, L.loadChain(L.genesisFromJSON(k)))
  return chains.get(k)
}
const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))
const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

// the protobuf field types of the bodies (the rest are bytes or messages): uint64 as bigint, uint32/enum as number
const U64 = new Set(['sequence', 'epoch', 'round', 'tokens', 'batches', 'loss_before_micro', 'loss_after_micro', 'batch_loss_micro', 'started_ms', 'ended_ms', 'samples'])
const U32 = new Set(['version', 'max_entries', 'shard_ids', 'checkpoint_interval', 'heartbeats', 'shard_id', 'kind', 'validator'])
const MESSAGES = new Set(['transfer', 'stake', 'unbond', 'withdraw', 'training', 'inference', 'uptime', 'data', 'payment', 'slash'])
// protons represents enums by name
const EVIDENCE_KINDS = ['EVIDENCE_UNKNOWN', 'ACCOUNT_EQUIVOCATION', 'VALIDATOR_EQUIVOCATION']
const evidenceKind = (n) => EVIDENCE_KINDS[Number(n)] ?? Number(n)
function toPb (d) {
  const out = {}
  for (const [k, v] of Object.entries(d)) {
    const conv = MESSAGES.has(k) ? toPb : k === 'kind' ? evidenceKind : U64.has(k) ? (x) => BigInt(x) : U32.has(k) ? (x) => Number(x) : unhex
    out[camel(k)] = Array.isArray(v) ? v.map(conv) : conv(v)
  }
  return out
}

const tokenizers = new Map()
async function tokenizerOf (json) {
  const { BpeTokenizer } = await tokenizerPkg()
  if (!tokenizers.has(json)) tokenizers.set(json, BpeTokenizer.fromTokenizerJson(json))
  return tokenizers.get(json)
}
// a float as the vectors write it: a JSON number, or "NaN", "Infinity", "-Infinity", "-0"
const floatOut = (x) => Number.isNaN(x) ? 'NaN' : x === Infinity ? 'Infinity' : x === -Infinity ? '-Infinity' : Object.is(x, -0) ? '-0' : x

const snake = (s) => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
// a decoded protons message as the vectors write it: proto field names, bytes hex, bigint decimal, defaults left out
function normalize (v) {
  const out = {}
  for (const [k, x] of Object.entries(v)) {
    const conv = (y) => y instanceof Uint8Array ? hex(y) : typeof y === 'bigint' ? y.toString() : (y != null && typeof y === 'object') ? normalize(y) : y
    if (x == null || x === 0 || x === 0n || x === '' || x === false || (x instanceof Uint8Array && x.byteLength === 0) || (Array.isArray(x) && x.length === 0)) continue
    out[snake(k)] = Array.isArray(x) ? x.map(conv) : conv(x)
  }
  return out
}

const fromBits = (bits) => new Float32Array(Uint32Array.from(bits).buffer)
const toBits = (x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length))
// a decoded protons message as the pipeline vectors write it: field names as generated, bytes hex, enums by name
function pbFields (v) {
  const out = {}
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue
    out[k] = x instanceof Uint8Array ? hex(x) : Array.isArray(x) ? x.map(y => y instanceof Uint8Array ? hex(y) : typeof y === 'object' ? pbFields(y) : y) : (x !== null && typeof x === 'object') ? pbFields(x) : x
  }
  return out
}

// ---- model: checkpoints decoded (hashes checked) once per content, one onnxruntime session per graph ----
let runtime
// transfer R1: what a played replica checks of each request before it answers (it answers BAD_REQUEST otherwise, so a
// requester whose requests break R1 loses the replica): a 32-byte chunks_root, start < end, a model id of at most 256
// UTF-8 bytes, at most 64 distinct chunk indices below the content's chunk count
const r1Problem = (req, count) => {
  if (req.chunksRoot.byteLength !== 32) return 'chunks_root is not 32 bytes'
  if (!(req.start < req.end)) return 'start >= end'
  if (Buffer.byteLength(req.modelId) > 256) return 'model id over 256 bytes'
  if (req.chunks.length > 64) return 'more than 64 chunks'
  if (new Set(req.chunks).size !== req.chunks.length) return 'a chunk named twice'
  if (req.chunks.some(i => i >= count)) return 'a chunk index beyond the chunk count'
  return undefined
}
// layer-pool §6 votes from records as targets.json writes them (status live | unreachable | lapsed)
const votesOf = (lp, records, slot) => {
  const asRecord = (rec) => ({ peerId: rec.peer, spans: rec.spans.map(sp => ({ ...sp, throughput: 0, claimedAt: 0 })) })
  const counted = records.filter(x => x.status !== 'lapsed').map(x => ({ record: asRecord(x), serves: x.status === 'live' }))
  return lp.slotVotes(counted, records.filter(x => x.status === 'lapsed').map(asRecord), slot)
}
const sessions = new Map()
const weightSets = new Map()
const int64 = (rows) => ({ type: 'int64', data: BigInt64Array.from(rows.flat().map(BigInt)), dims: [rows.length, rows[0].length] })
async function tinyWeights (r) {
  const key = r.checkpoints.map(c => c.contentHash).join('/') + JSON.stringify(r.config)
  if (!weightSets.has(key)) {
    const M = await modelPkg()
    const config = M.validateConfig(r.config)
    const weights = {}
    for (const c of r.checkpoints) {
      const ck = M.decodeCheckpoint(unhex(c.fileHex), { config, role: c.role, contentHash: c.contentHash })
      for (const s of M.modelParameters(config)) {
        const v = ck.parameters.get(s.name)
        if (v !== undefined) weights[s.name] = { type: 'float32', data: v, dims: s.shape }
      }
    }
    weightSets.set(key, { weights, config })
  }
  return weightSets.get(key)
}
async function runGraph (config, role, variant, feeds, weights) {
  const key = JSON.stringify([config, role, variant])
  if (!sessions.has(key)) {
    runtime ??= await (await runtimePkg()).createRuntime({ device: 'cpu' })
    const g = (await modelPkg()).buildShardGraph(config, role, variant)
    sessions.set(key, { graph: g, session: await runtime.createSession(g.bytes) })
  }
  const { graph, session } = sessions.get(key)
  const all = { ...feeds }
  for (const i of graph.inputs) if (all[i.name] === undefined && weights[i.name] !== undefined) all[i.name] = weights[i.name]
  return await session.run(all)
}

async function handle (r) {
  switch (r.op) {
    case 'ledger.chainId': return { chainId: chainOf(r.genesis).chainIdHex }
    case 'ledger.keys': { const w = new L.Wallet(unhex(r.secretKey)); return { publicKey: hex(w.publicKey), address: w.address } }
    case 'ledger.txId': return { txId: hex(L.txDigest(chainOf(r.genesis).chainId, unhex(r.txBytes))) }
    case 'ledger.voteDigest': return { voteDigest: hex(L.voteDigest(chainOf(r.genesis).chainId, unhex(r.txId))) }
    case 'ledger.sign': return { signature: hex(new L.Wallet(unhex(r.secretKey)).signDigest(unhex(r.digest))) }
    case 'ledger.verify': return { valid: L.verifyDigest(unhex(r.signature), unhex(r.digest), unhex(r.publicKey)) }
    case 'ledger.amount': return { bytes: hex(L.encodeAmount(BigInt(r.value))) }
    case 'ledger.amountDecode': return { value: L.decodeAmount(unhex(r.bytes)).toString() }
    case 'ledger.encodeTx': {
      const d = toPb(r.decoded)
      // proto3 defaults for absent scalars: protons' encoder skips them anyway
      return { txBytes: hex(Tx.encode({ version: 0, chainId: new Uint8Array(0), sender: new Uint8Array(0), sequence: 0n, epoch: 0n, ...d })) }
    }
    case 'ledger.parseSignedTx': {
      const t = L.parseSignedTx(chainOf(r.genesis), unhex(r.signedTx))
      return { txId: t.idHex, kind: t.kind, sender: t.sender, sequence: t.sequence.toString(), epoch: t.epoch.toString() }
    }
    case 'ledger.parseCertificate': {
      const c = L.parseCertificate(chainOf(r.genesis), unhex(r.certificate))
      return { txId: c.tx.idHex, validators: c.votes.map(v => v.validator) }
    }
    case 'ledger.evidence': {
      const e = L.checkSlashReport(chainOf(r.genesis), {
        kind: evidenceKind(r.kind), signedTxA: unhex(r.signedTxA), signedTxB: unhex(r.signedTxB), validator: r.validator ?? 0,
        voteSigA: unhex(r.voteSigA ?? ''), voteSigB: unhex(r.voteSigB ?? '')
      })
      return e instanceof L.EvidenceFailure ? { key: null, reason: e.reason } : { key: e.key, offender: e.offender }
    }
    case 'ledger.reporter': return { reporter: L.designatedReporter(chainOf(r.genesis), r.key, BigInt(r.epoch), r.offender ?? undefined) }
    case 'ledger.assignShards': return { shards: L.assignShards(chainOf(r.genesis), r.address, BigInt(r.round)) }
    case 'ledger.state': {
      const chain = chainOf(r.genesis)
      const s = new L.LedgerState(chain)
      for (const c of r.certificates) s.addFinal([L.parseCertificate(chain, unhex(c)).tx])
      const json = (v) => JSON.parse(L.canonicalJSON(v))
      return {
        stateHash: s.stateHash(),
        canonical: s.canonical(),
        accounts: Object.fromEntries((r.addresses ?? []).map(a => [a, json(s.get(a))])),
        totals: json(s.totals)
      }
    }
    case 'ledger.checkpoint': {
      const chain = chainOf(r.genesis)
      const s = new L.LedgerState(chain)
      s.addFinal(r.certificates.map(c => L.parseCertificate(chain, unhex(c)).tx))
      const snap = L.snapshotOf(s)
      return { snapshot: new TextDecoder().decode(snap.bytes), snapshotHash: hex(snap.hash), height: snap.height.toString(), checkpointDigest: hex(L.checkpointDigest(chain, snap.height, snap.hash)) }
    }
    case 'ledger.verifyCheckpoint': {
      const { certificate } = L.verifyCheckpoint(chainOf(r.genesis), unhex(r.certificate), new TextEncoder().encode(r.snapshot))
      return { validators: certificate.votes.map(v => v.validator) }
    }
    case 'ledger.installCheckpoint': {
      // a Ledger (level store in a temporary folder) that applied `applied` from genesis, then installCheckpoint in turn,
      // then `after`
      const dir = await mkdtemp(join(tmpdir(), 'conformance-checkpoint-'))
      const l = await L.Ledger.open({ genesis: chainOf(r.genesis), path: dir, now: () => 0, pruneOnCheckpoint: true })
      const frontier = () => Object.fromEntries([...l.state.accounts].filter(([, a]) => a.nextSeq > 0n).map(([k, a]) => [k, Number(a.nextSeq)]))
      try {
        for (const c of r.applied) await l.addCertificates([unhex(c)])
        const first = frontier()
        const outcomes = []
        for (const x of r.installs) {
          const o = {}
          try { await l.installCheckpoint(unhex(x.certificate), new TextEncoder().encode(x.snapshot)) } catch (err) { o.error = err.name }
          outcomes.push({ ...o, frontier: frontier() })
        }
        for (const c of r.after ?? []) await l.addCertificates([unhex(c)])
        return { frontier: first, outcomes, snapshotHash: hex(L.snapshotOf(l.state).hash) }
      } finally {
        await l.close()
        await rm(dir, { recursive: true, force: true })
      }
    }
    case 'ledger.validator': {
      // a validator's Ledger (level store in a temporary folder, its wallet the vector's key) fed final certificates and
      // offered messages at the vector's clock: Ledger.vote signs or refuses (README §6.1)
      const dir = await mkdtemp(join(tmpdir(), 'conformance-validator-'))
      let now = 0
      const l = await L.Ledger.open({ genesis: chainOf(r.genesis), path: dir, now: () => now, wallet: new L.Wallet(unhex(r.secretKey)) })
      try {
        const outcomes = []
        for (const s of r.steps) {
          if (s.op === 'final') { await l.addCertificates([unhex(s.certificate)]); outcomes.push({}); continue }
          now = s.nowMs
          try {
            const endorsements = s.endorsements?.map(v => ({ validator: v.validator, signature: unhex(v.signature) }))
            await l.vote(unhex(s.signedTx), endorsements != null ? { endorsements } : {})
            outcomes.push({ signed: true })
          } catch (err) { outcomes.push({ error: err.name }) }
        }
        return { outcomes }
      } finally {
        await l.close()
        await rm(dir, { recursive: true, force: true })
      }
    }
    case 'ledger.trainingCheck': {
      // the package's ProofVerifier with plug-ins that answer as the vector says (README §8 training checks)
      const chain = chainOf(r.genesis)
      const s = new L.LedgerState(chain)
      for (const c of r.final) s.addFinal([L.parseCertificate(chain, unhex(c)).tx])
      const verifier = new L.ProofVerifier({
        ...(r.accepted != null ? { aggregation: { acceptedPseudoGradient: async () => r.accepted } } : {}),
        ...(r.verdict != null ? { training: { verifyTraining: async () => ({ batchesChecked: 1, ...r.verdict }) } } : {})
      })
      await verifier.check(chain, s, L.parseSignedTx(chain, unhex(r.proof)), r.nowMs)
      return { valid: true }
    }
    case 'ledger.sync': {
      // a requester's Ledger (level store in a temporary folder) holding `known`, reading the vector's pages as the service's
      // sync stream does: checkSyncPage, addCertificates (partial), the §6.3 bound syncServedTooMuch (README §10)
      const dir = await mkdtemp(join(tmpdir(), 'conformance-sync-'))
      const l = await L.Ledger.open({ genesis: chainOf(r.genesis), path: dir, now: () => 0 })
      try {
        if (r.known.length > 0) await l.addCertificates(r.known.map(unhex))
        const outcomes = []
        let from = 0
        let knownServed = 0
        for (const p of r.pages) {
          const certificates = p.certificates.map(unhex)
          try {
            L.checkSyncPage(from, r.limit, { certificates, next: BigInt(p.next) })
            const before = l.finalCount
            if (certificates.length > 0) await l.addCertificates(certificates, { partial: true })
            const fresh = l.finalCount - before
            knownServed += certificates.length - fresh
            from = p.next
            const end = p.done || certificates.length === 0 || L.syncServedTooMuch(knownServed, l.finalCount)
            outcomes.push({ added: fresh, end })
            if (end) break
          } catch (err) { outcomes.push({ error: err.name }); break }
        }
        return { outcomes }
      } finally {
        await l.close()
        await rm(dir, { recursive: true, force: true })
      }
    }
    case 'ledger.deriveCheckpoint': {
      // a Ledger (level store in a temporary folder), with `base` installed first, that applied `applied`, re-derives the proposal
      const dir = await mkdtemp(join(tmpdir(), 'conformance-derive-'))
      const l = await L.Ledger.open({ genesis: chainOf(r.genesis), path: dir, now: () => 0, pruneOnCheckpoint: true })
      try {
        if (r.base != null) await l.installCheckpoint(unhex(r.base.certificate), new TextEncoder().encode(r.base.snapshot))
        for (const c of r.applied) await l.addCertificates([unhex(c)])
        const p = r.proposal
        const { snapshot } = await l.deriveCheckpoint({
          height: BigInt(p.height), snapshotHash: unhex(p.snapshotHash), baseHeight: BigInt(p.baseHeight), baseHash: unhex(p.baseHash),
          frontier: p.frontier.map(e => ({ address: e.address, nextSeq: BigInt(e.nextSeq) }))
        })
        return { snapshotHash: hex(snapshot.hash) }
      } finally {
        await l.close()
        await rm(dir, { recursive: true, force: true })
      }
    }
    case 'ledger.keystoreDecrypt': return { address: (await L.decryptKeystore(r.file, r.passphrase)).address }
    case 'ledger.verifyBinding': return { address: await L.verifyBinding(r.binding) }
    case 'ledger.decodeMessage': {
      const codec = PB[r.message]
      if (codec == null) return undefined
      const m = codec.decode(unhex(r.bytes))
      return { decoded: normalize(m), reencoded: hex(codec.encode(m)) }
    }
    case 'ledger.merkleRoot': return { root: hex(L.dataMerkleRoot(r.samples.map(unhex))) }
    case 'ledger.merkleProof': return { path: L.dataMerkleProof(r.samples.map(unhex), r.index).map(hex) }
    case 'ledger.verifyMerkleProof': return { valid: L.verifyDataMerkleProof(unhex(r.root), r.count, r.index, unhex(r.sample), r.path.map(unhex)) }
    case 'ledger.manifestHash': return { manifestHash: hex(L.shardManifestHash(r.shards.map(s => ({ hash: unhex(s.hash), samples: BigInt(s.samples) })))) }
    case 'ledger.challengeIndexes': return { indexes: L.challengeIndexes(r.proofId, unhex(r.secret), r.count, r.k) }
    case 'ledger.sampleBatches': return { indexes: L.sampleBatches(r.proofId, r.batches, r.samples, unhex(r.salt)) }
    // ProofOfLearningVerifier (pol.ts) picks segments inline: sampleBatches(`${proofId}/segments`, m, segments, salt) plus the last
    case 'ledger.sampleSegments': return { indexes: [...new Set([...L.sampleBatches(`${r.proofId}/segments`, r.segments, r.count, unhex(r.salt)), r.segments - 1])].sort((a, b) => a - b) }
    case 'model.scaling': {
      const M = await modelPkg()
      const architecture = M.architectureForCapacity({ nodes: r.nodes, totalMemoryBytes: r.totalMemoryBytes })
      return { architecture, parameters: M.countParameters(M.modelParameters(architecture)) }
    }
    case 'model.validateConfig': return { config: (await modelPkg()).validateConfig(r.config) }
    case 'model.decodeCheckpoint': {
      const M = await modelPkg()
      const ck = M.decodeCheckpoint(unhex(r.fileHex), { config: r.expectConfig, role: r.expectRole, contentHash: r.expectContentHash })
      const parameters = new Map([...ck.parameters].map(([k, x]) => [k, M.bytesAsFloat32(new Uint8Array(x.buffer, x.byteOffset, x.byteLength).slice())]))
      const again = M.encodeCheckpoint({ config: ck.config, role: ck.role, parameters, step: ck.step, metadata: ck.metadata })
      return { config: ck.config, role: ck.role, step: ck.step, metadata: ck.metadata, contentHash: ck.contentHash, reencoded: hex(again) }
    }
    case 'genesisData.validateManifest': return { manifest: (await genesisPkg()).validateManifest(r.manifest) }
    case 'genesisData.loadShard': {
      const G = await genesisPkg()
      const dir = await mkdtemp(join(tmpdir(), 'conformance-shard-'))
      try {
        await mkdir(join(dir, 'shards'))
        await writeFile(join(dir, 'shards', `${String(r.name)}.bin`), unhex(r.shardHex))
        return { tokens: Array.from((await G.loadShard(dir, r.name, r.manifest)).tokens) }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }
    // ---- node PoNW (specs/node/ponw.md §2) ----
    case 'node.encodeWitness': return { bytes: hex((await nodePonwWork()).encodeWitness(witnessOf(r.witness))) }
    case 'node.decodeWitness': {
      const w = (await nodePonwWork()).decodeWitness(unhex(r.bytes))
      return w == null ? { refused: true } : { witness: describeWitness(w) }
    }
    case 'node.codecTuple': {
      const { resolveCodec } = await dilocoPkg()
      const a = r.announced
      return { tuple: (await nodePonwVerifier()).codecTuple(resolveCodec({ ...a, codec: { 1: 'fp32', 2: 'fp16', 3: 'int8', 4: 'sparse' }[a.codec] })) }
    }
    case 'node.stagePseudoGradientHash': return { hash: hex((await nodePonwVerifier()).stagePseudoGradientHash(r.entries.map(e => ({ ...e, payloadHash: unhex(e.payloadHash) })))) }
    case 'node.pseudoGradientHash': {
      // the validator's StageTrainingModel.pseudoGradientHash (no executors: it reads the states' parameters and the payloads)
      const { StageTrainingModel } = await nodePonwVerifier()
      return { hash: hex(new StageTrainingModel({ config: r.config }).pseudoGradientHash(witnessOf(r.base), witnessOf(r.final))) }
    }
    case 'node.checkStageStep': {
      // the validator's witness checks of re-execution rule 2 (checkStageStep, which StageTrainingModel.step runs first)
      ;(await nodePonwVerifier()).checkStageStep(r.config, witnessOf(r.witness), r.index)
      return { valid: true }
    }
    case 'node.replayStage': {
      // re-execution rule 3: the validator's StageTrainingModel replays inner steps 0 .. batches − 1 from checkpoint 0 (its
      // step runs checkStageStep first) and its distance to the final checkpoint is compared with 1e-4, as the ledger's
      // ProofOfLearningVerifier does for its one segment (distanceTolerance's default)
      const { StageTrainingModel } = await nodePonwVerifier()
      const o = r.optimizer
      const model = new StageTrainingModel({ config: r.config, optimizer: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm, schedule: () => o.lr }, threads: 1 })
      try {
        let w = witnessOf(r.base)
        for (let i = 0; i < r.batches; i++) w = await model.step(w, undefined, i)
        const d = model.distance(w, witnessOf(r.final))
        if (!(d <= 1e-4)) throw new L.ReExecutionMismatchError(`re-executed state is ${d} from the committed one (tolerance 1e-4)`)
        return { valid: true, distance: d }
      } finally {
        await model.close()
      }
    }
    case 'node.finalWeights': {
      // the ledger's checks of the final weights (ProofOfLearningVerifier's checkFinalWeights) with the validator's StageTrainingModel
      const { StageTrainingModel } = await nodePonwVerifier()
      L.checkFinalWeights(new StageTrainingModel({ config: r.config }), { modelHash: unhex(r.modelHash), pseudoGradientHash: unhex(r.pseudoGradientHash) }, witnessOf(r.base), witnessOf(r.final))
      return { valid: true }
    }
    case 'node.acceptedPseudoGradient': {
      // the validator's StageAggregationRecords.acceptedPseudoGradient with checkpoint 0 served from the vector
      const { StageAggregationRecords } = await nodePonwVerifier()
      const records = new StageAggregationRecords({
        config: r.config, modelId: r.modelId, aggregator: r.aggregator, peerOf: (a) => r.peerOf[a],
        witness: { fetchWeights: async () => witnessOf(r.witness) }
      })
      const q = r.query
      return { accepted: await records.acceptedPseudoGradient({ proofId: 'conformance', sender: q.sender, baseWeightsHash: unhex(q.modelHash), pseudoGradientHash: unhex(q.pseudoGradientHash) }) }
    }
    case 'genesisData.documentSplit': return { split: (await genesisPkg()).documentSplit(r.document, r.validationThreshold) }
    case 'genesisData.shuffleWords': {
      const rng = new (await genesisPkg()).ShuffleStream(BigInt(r.seed))
      return { words: Array.from({ length: r.count }, () => rng.nextU32()) }
    }
    case 'genesisData.windowOrder': return { order: (await genesisPkg()).windowOrder(r.shardLengths, r.seqLen, BigInt(r.seed)) }
    case 'genesisData.nlpCorpus': {
      // the documents as the package reads them; their source hash as the spec defines it (the package computes it only
      // inside a whole build)
      const { documents } = await (await genesisPkg()).readCorpus('nlp-corpus')
      const h = createHash('sha256')
      for (const d of documents) {
        const b = Buffer.from(d, 'utf8')
        const len = Buffer.alloc(4)
        len.writeUInt32LE(b.length)
        h.update(len).update(b)
      }
      return { documents: documents.length, sha256: h.digest('hex'), first: documents[0], document1000: documents[1000], last: documents.at(-1) }
    }
    case 'genesisData.assignShards': return { shards: (await genesisPkg()).assignShards(r.manifest, r.peerId, BigInt(r.round), r.k, r.split == null ? {} : { split: r.split }) }
    case 'host.identity': {
      // the file as <dataDir>/identity.key with that mode, loaded by the host's own loader
      const dir = await mkdtemp(join(tmpdir(), 'conformance-identity-'))
      try {
        const file = join(dir, 'identity.key')
        await writeFile(file, unhex(r.fileHex))
        await chmod(file, parseInt(r.mode, 8))
        const { privateKey } = await (await hostPkg()).loadOrCreateIdentity(dir)
        return { peerId: (await peerIdPkg()).peerIdFromPrivateKey(privateKey).toString() }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }
    case 'host.recordKey': { const k = (await hostPkg()).parseNeuroShardRecordKey(unhex(r.keyHex)); return { namespace: k.namespace, recordId: k.id } }
    case 'host.recordValue': {
      const v = (await hostPkg()).decodeNeuroShardRecord(unhex(r.valueHex))
      return { sequence: v.sequence.toString(), payloadHex: hex(v.payload) }
    }
    case 'host.encodeRecordValue': return { valueHex: hex((await hostPkg()).encodeNeuroShardRecord({ sequence: BigInt(r.sequence), payload: unhex(r.payloadHex) })) }
    case 'framing.read': {
      // @neuroshard/utils messageStream reading one end of an in-memory libp2p stream pair; the other end sends the
      // vector's bytes and closes (eof) or stays open. Rule 8: whether the sender's end then sees a reset
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const [a, b] = await streamPair()
      const ended = new Promise(resolve => { a.addEventListener('close', resolve, { once: true }) })
      const reader = messageStream(b, { maxMessageSize: r.maxMessageSize, timeout: r.timeoutMs })
      if (r.stream.length > 0) a.send(unhex(r.stream))
      if (r.eof) void a.close().catch(() => {})
      const messages = []
      let error = null
      try {
        for (let i = 0; i < r.count; i++) messages.push(hex(await reader.readBytes()))
      } catch (err) {
        error = err.name
        // the reset reaches the other end at once in memory; the bound only keeps a broken receiver from hanging the run
        await Promise.race([ended, new Promise(resolve => { setTimeout(resolve, 10_000).unref() })])
      }
      const reset = a.status === 'reset'
      if (!reset) { a.abort(new Error('done')); b.abort(new Error('done')) }
      return { messages, error, reset }
    }
    case 'framing.readMessage': {
      // rule 6: messageStream.read(codec) on one end of an in-memory stream pair, the codec the protons-generated
      // EchoRequest of packages/utils' tests (framing/README.md); the other end writes the body as one message
      if (r.message !== 'EchoRequest') return undefined
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { EchoRequest } = await import('../../../packages/utils/dist/test/fixtures/echo.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const [a, b] = await streamPair()
      const ended = new Promise(resolve => { a.addEventListener('close', resolve, { once: true }) })
      await messageStream(a, { timeout: 5000 }).writeBytes(unhex(r.body))
      const reader = messageStream(b, { timeout: 5000 })
      try {
        const m = await reader.read(EchoRequest)
        a.abort(new Error('done'))
        b.abort(new Error('done'))
        return { decoded: { text: m.text, payload: hex(m.payload) }, reset: false }
      } catch (err) {
        await Promise.race([ended, new Promise(resolve => { setTimeout(resolve, 10_000).unref() })])
        return { error: err.name, reset: a.status === 'reset' }
      }
    }
    case 'framing.write': {
      // @neuroshard/utils messageStream writing one end of an in-memory stream pair; what the other end receives
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const [a, b] = await streamPair()
      const chunks = []
      const received = (async () => { for await (const c of b) chunks.push(c.subarray()) })()
      const writer = messageStream(a, { maxMessageSize: r.maxMessageSize, timeout: 5000 })
      let error = null
      try {
        for (const m of r.messages) await writer.writeBytes(unhex(m))
      } catch (err) {
        error = err.name
      }
      await a.close()
      await received
      return { written: hex(Buffer.concat(chunks)), error }
    }
    case 'host.gossipMessage': {
      // a received message as @libp2p/gossipsub checks it (validateToRawMessage under the host's signature policy) and
      // names it (the host's msgIdFn), for a host createNeuroShardHost built
      const node = await profileHost({})
      const G = '../../../packages/host/node_modules/@libp2p/gossipsub/dist/src'
      const { RPC } = await import(`${G}/message/rpc.js`)
      const { validateToRawMessage } = await import(`${G}/utils/buildRawMessage.js`)
      const raw = RPC.Message.decode(unhex(r.message))
      const v = await validateToRawMessage(node.services.pubsub.globalSignaturePolicy, raw)
      if (!v.valid) return { valid: false, reason: v.error }
      const id = await node.services.pubsub.msgIdFn(v.message)
      return { valid: true, from: v.message.from.toString(), seqno: hex(raw.seqno), topic: v.message.topic, data: hex(v.message.data), messageId: hex(id) }
    }
    case 'host.p6': {
      // gossipsub's own score function with the score parameters of a host built by createNeuroShardHost (not started)
      const node = await profileHost({ swarmKey: r.privateSwarm })
      const { computeScore } = await import('../../../packages/host/node_modules/@libp2p/gossipsub/dist/src/score/compute-score.js')
      const peers = new Set(Array.from({ length: r.peers }, (_, i) => `peer-${i}`))
      const score = computeScore('peer-0', { topics: {}, knownIPs: new Set([r.ip]), behaviourPenalty: 0 }, node.services.pubsub.score.params, new Map([[r.ip, peers]]))
      return { penalty: score === 0 ? 0 : score }
    }
    case 'host.dhtAddresses': {
      // the peer-info mapper of the host's Kad-DHT, for a host built with that address filter
      const node = await profileHost({ dhtAddressFilter: r.filter })
      const { multiaddr } = await import('../../../packages/host/node_modules/@multiformats/multiaddr/dist/src/index.js')
      const info = node.services.dht.peerInfoMapper({ id: node.peerId, multiaddrs: r.addrs.map(a => multiaddr(a)) })
      return { kept: info.multiaddrs.map(String) }
    }
    case 'host.profile': {
      // a host built by createNeuroShardHost with these options (not started: nothing listens), read back from libp2p
      const H = await hostPkg()
      const { swarmKey, ...rest } = r.options
      const node = await H.createNeuroShardHost({ start: false, ...rest, ...(swarmKey === true ? { swarmKey: H.generateSwarmKey() } : {}) })
      const c = node.components.components ?? node.components
      const listen = c.addressManager.getListenAddrs().map(String)
      const transports = c.transportManager.getTransports().map(t => t[Symbol.toStringTag])
      const o = node.services.pubsub.opts
      return {
        profile: {
          listenHosts: [...new Set(listen.map(a => a.split('/')[2]))].sort(),
          tcpListen: listen.some(a => a.includes('/tcp/')),
          quic: transports.includes('quic'),
          webrtcDirect: transports.includes('@libp2p/webrtc-direct'),
          noise: c.upgrader.connectionEncrypters.has('/noise'),
          yamux: c.upgrader.streamMuxers.has('/yamux/1.0.0'),
          protector: c.connectionProtector?.tag ?? null,
          pnetNonceTimeoutMs: c.connectionProtector?.timeout ?? null,
          identify: node.services.identify.protocol,
          ping: node.services.ping.protocol,
          kadProtocol: node.services.dht.protocol,
          kadK: node.services.dht.k,
          gossipsub: {
            protocols: node.services.pubsub.protocols, D: o.D, Dlo: o.Dlo, Dhi: o.Dhi, heartbeatMs: o.heartbeatInterval, floodsub: o.fallbackToFloodsub,
            signaturePolicy: node.services.pubsub.globalSignaturePolicy, maxRpcBytes: o.maxInboundDataLength, maxOutboundBufferBytes: o.maxOutboundBufferSize
          },
          mdns: Object.keys(c).some(k => k.startsWith('peer-discovery-')),
          upnp: node.services.upnp != null,
          relayHop: node.services.relay != null
        }
      }
    }
    case 'host.joinDelay': {
      const H = await hostPkg()
      return { delayMs: H.joinRetryDelay(r.attempt, H.JOIN_RETRY_INITIAL_DELAY_MS, H.JOIN_RETRY_MAX_DELAY_MS, H.JOIN_RETRY_BACKOFF_FACTOR, () => r.u) }
    }
    case 'host.joinRounds': return { states: await joinRounds(r.target, r.events) }
    case 'host.recordSelect': return { best: (await hostPkg()).selectNeuroShardRecord(new TextEncoder().encode(r.key), r.valuesHex.map(unhex)) }
    case 'tensor.convert': {
      const T = await tensorPkg()
      const x = new Float32Array(new Uint32Array([parseInt(r.float32Bits, 16)]).buffer)
      return { bits: (r.format === 'float16' ? T.toFloat16 : T.toBFloat16)(x, { overflow: r.overflow })[0] }
    }
    case 'model.init': {
      const M = await modelPkg()
      const config = M.validateConfig(r.config)
      const spec = M.modelParameters(config).find(p => p.name === r.name)
      if (spec === undefined) return { error: 'UnknownParameterError' }
      return { shape: [...spec.shape], first: Array.from(M.initParameter(config, spec, r.seed).subarray(0, r.count)) }
    }
    case 'model.contentHash': return { contentHash: (await modelPkg()).contentHash(r.tensors.map(t => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: unhex(t.dataHex) }))) }
    case 'host.swarmKey': return { canonical: new TextDecoder().decode((await hostPkg()).parseSwarmKey(r.input)) }
    case 'tensor.decode': {
      const { decodeTensorFrame, tensorHashHex } = await tensorPkg()
      const frame = unhex(r.frame)
      const t = decodeTensorFrame(frame, r.maxBytes != null ? { maxBytes: r.maxBytes } : {})
      const out = { dtype: t.dtype, shape: t.shape, name: t.name, hash: tensorHashHex(frame) }
      if (t.dtype === 'float16' || t.dtype === 'bfloat16') out.bits = Array.from(t.data)
      else if (t.dtype === 'int64') out.values = Array.from(t.data, String)
      else out.values = Array.from(t.data, floatOut)
      if (t.dtype === 'int8') { out.blockSize = t.blockSize; out.scales = Array.from(t.scales, floatOut) }
      return out
    }
    case 'tensor.encode': {
      // the tensor's element bytes as the typed array of its dtype (an unknown dtype gets bytes: the encoder refuses it first)
      const t = r.tensor
      const bytes = unhex(t.dataHex)
      const ARRAYS = { float32: Float32Array, float16: Uint16Array, bfloat16: Uint16Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array }
      const A = ARRAYS[t.dtype] ?? Uint8Array
      const tensor = { dtype: t.dtype, shape: t.shape, data: new A(bytes.buffer, 0, bytes.byteLength / A.BYTES_PER_ELEMENT) }
      if (t.name !== undefined) tensor.name = t.name
      if (t.dtype === 'int8') {
        const s = unhex(t.scalesHex)
        Object.assign(tensor, { blockSize: t.blockSize, scales: new Float32Array(s.buffer, 0, s.byteLength / 4) })
      }
      return { frame: hex((await tensorPkg()).encodeTensorFrame(tensor)) }
    }
    case 'tensor.quantizeInt8': {
      const q = (await tensorPkg()).quantizeInt8(new Float32Array(r.values.map(Number)), { blockSize: r.blockSize })
      return { values: Array.from(q.data), scales: Array.from(q.scales, floatOut) }
    }
    case 'tokenizer.pretokenize': return { pieces: (await tokenizerPkg()).pretokenize(r.text) }
    case 'tokenizer.encode': return { ids: (await tokenizerOf(r.tokenizerJson)).encode(r.text, { allowSpecial: r.allowSpecial, addBos: r.addBos, addEos: r.addEos }) }
    case 'tokenizer.decode': {
      const tok = await tokenizerOf(r.tokenizerJson)
      const opts = { skipSpecialTokens: r.skipSpecialTokens }
      return { bytesHex: hex(tok.decodeBytes(r.ids, opts)), text: tok.decode(r.ids, opts) }
    }
    case 'tokenizer.load': await tokenizerOf(r.tokenizerJson); return { ok: true }
    // ---- layer-pool ----
    case 'layerPool.view': {
      const P = await layerPoolPkg()
      const view = P.buildView(r.holdings, r.slots, { now: r.nowMs, loadingGraceMs: r.loadingGraceMs })
      return { view: view.map(v => [v.live, v.pending, v.throughput]), underReplicated: P.underReplicated(view, r.minReplicas) }
    }
    case 'layerPool.chooseSpan': {
      const P = await layerPoolPkg()
      const view = P.buildView(r.holdings, r.slots, { now: r.nowMs, loadingGraceMs: r.loadingGraceMs })
      // the vectors fix random() = 0.5 for every candidate
      return { span: P.chooseSpan(view, r.costs, r.budget, { minReplicas: r.minReplicas, random: () => 0.5 }) ?? null }
    }
    case 'layerPool.chunks': {
      const P = await layerPoolPkg()
      const tensors = r.tensors.map(t => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.values) }))
      const d = P.digestChunks(tensors, { chunkSize: r.chunkSize })
      const stream = P.canonicalStream(tensors)
      return {
        canonicalOrder: [...P.assembleTensors(r.tensors, stream).keys()], stream: hex(stream), totalBytes: d.totalBytes,
        chunkHashes: d.chunkHashes.map(hex), chunksRoot: hex(d.chunksRoot), weightsHash: P.tensorsContentHash(tensors)
      }
    }
    case 'layerPool.serve': {
      // the package's weightsServer on one end of an in-memory libp2p stream pair; this end writes the request
      // (length-prefixed) and reads what comes back
      const holds = r.holds.map(h => ({ ...h, tensors: h.tensors.map(t => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.values) })) }))
      const server = await weightServer(r, () => holds)
      return await serveOnce(server, r.request)
    }
    case 'layerPool.dequantized': {
      // §2.4 rules 2-3: the model package's quantizeMatrix (what executors build their MatMulNBits / lookup from), read
      // back with dequantizeMatrix; an [in, out] projection is `KN`, the embedding table [vocab, d] `NK` (K = d)
      const M = await modelPkg()
      const w = new Float32Array(Uint32Array.from(r.values).buffer)
      const kn = r.groupsAlong === 'rows'
      const [K, N] = kn ? [r.rows, r.cols] : [r.cols, r.rows]
      const q = M.quantizeMatrix(w, K, N, { bits: r.format === 'int4' ? 4 : 8, blockSize: r.blockSize, layout: kn ? 'KN' : 'NK' })
      const d = M.dequantizeMatrix(q)   // [K, N] row-major
      const out = new Float32Array(r.rows * r.cols)
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[kn ? k * N + n : n * K + k] = d[k * N + n]
      return { dequantized: Array.from(new Uint32Array(out.buffer)) }
    }
    case 'layerPool.serveSequence': {
      // transfer R9: one weightsServer answering each step's request while its provider holds that step's content; a
      // tensor whose content is the same as at an earlier step of the sequence is the same array (a provider returns
      // the same arrays while its content does not change: the server may keep its chunk hashes), a changed one a new array
      const arrays = new Map()
      const arrayOf = (h, t) => {
        const key = JSON.stringify([h.modelId, h.version, h.start, h.end, h.part, t.name, t.shape, t.values])
        if (!arrays.has(key)) arrays.set(key, Float32Array.from(t.values))
        return arrays.get(key)
      }
      let holds = []
      const server = await weightServer(r, () => holds)
      const answers = []
      for (const step of r.steps) {
        holds = step.holds.map(h => ({ ...h, tensors: h.tensors.map(t => ({ name: t.name, shape: t.shape, data: arrayOf(h, t) })) }))
        answers.push(await serveOnce(server, step.request))
      }
      return { answers }
    }
    case 'layerPool.fetch': {
      // the package's fetchSpanWeights from one replica played by this adapter over in-memory libp2p stream pairs: it
      // answers the manifest request with the vector's bytes, a chunk request with the vector's chunks (or as `mode` says)
      const P = await layerPoolPkg()
      const pb = await import('../../../packages/layer-pool/dist/src/pb/transfer.js')
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const rep = r.replica
      const peer = (await peerIdPkg()).peerIdFromPrivateKey(await (await keysPkg()).generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7)))
      const dialer = { dialProtocol: async () => { const [a, b] = await streamPair(); void playReplica(rep, b, pb, messageStream); return a } }
      try {
        // R15: a resume state as the vector writes it (manifest fields, the stream and the indices it says were verified)
        const rs = rep.resume
        const resume = rs == null ? undefined : {
          chunksRoot: rs.chunksRoot,
          manifest: { ...rs.manifest, chunkHashes: rs.manifest.chunkHashes.map(unhex) },
          stream: unhex(rs.stream),
          verified: new Set(rs.verified)
        }
        const res = await P.fetchSpanWeights(dialer, [peer], { ...r.expected, config: r.config }, { chunkSize: r.chunkSize, busyRetries: 0, timeout: 5000, ...(resume != null ? { resume } : {}) })
        return { weightsHash: P.tensorsContentHash([...res.tensors].map(([name, data]) => ({ name, shape: res.manifest.tensors.find(t => t.name === name).shape, data }))) }
      } catch (err) {
        return { error: err.name, message: err.message, ...(err.faults?.length > 0 ? { fault: err.faults[0].kind, misbehaved: err.faults[0].misbehaved } : {}) }
      }
    }
    case 'layerPool.fetchMany': {
      // transfer R13: fetchSpanWeights from several replicas this adapter plays at once (as layerPool.fetch plays one)
      const P = await layerPoolPkg()
      const pb = await import('../../../packages/layer-pool/dist/src/pb/transfer.js')
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const peers = []
      for (let i = 0; i < r.replicas.length; i++) peers.push((await peerIdPkg()).peerIdFromPrivateKey(await (await keysPkg()).generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7 + i))))
      const dialer = { dialProtocol: async (peer) => { const rep = r.replicas[peers.findIndex(p => p.equals(peer))]; const [a, b] = await streamPair(); void playReplica(rep, b, pb, messageStream); return a } }
      try {
        // a bound on the whole fetch, so that a requester that never finishes fails its case instead of stalling the runner
        const res = await P.fetchSpanWeights(dialer, peers, { ...r.expected, config: r.config }, { chunkSize: r.chunkSize, busyRetries: 0, timeout: 5000, signal: AbortSignal.timeout(30_000) })
        return { weightsHash: P.tensorsContentHash([...res.tensors].map(([name, data]) => ({ name, shape: res.manifest.tensors.find(t => t.name === name).shape, data }))) }
      } catch (err) {
        return { error: err.name, message: err.message }
      }
    }
    // §6 / §6.1: the package's pure decisions (target.ts), which the layer pool's load and catch-up call
    case 'layerPool.slotSource': {
      const lp = await layerPoolPkg()
      const t = lp.bestVote(votesOf(lp, r.records, r.slot))
      const avoid = new Set(r.avoid)
      const s = lp.slotSource(t, r.genesisHash, (p) => avoid.has(p))
      return { source: s.source, replicas: s.source === 'transfer' ? s.replicas : [], target: t == null ? null : { weightsHash: t.weightsHash, chunksRoot: t.chunksRoot, step: t.step, votes: t.votes } }
    }
    case 'layerPool.loadSpan': {
      const lp = await layerPoolPkg()
      const avoid = new Set(r.avoid)
      const sources = []
      const fromGenesis = []
      for (const slot of r.slots) {
        const s = lp.slotSource(lp.bestVote(votesOf(lp, r.resolve[slot], slot)), r.genesis[slot], (p) => avoid.has(p))
        sources.push(s.source)
        if (s.source === 'wait') return { sources, fetchAgain: null }
        if (s.source === 'genesis') fromGenesis.push(slot)
      }
      return { sources, fetchAgain: lp.genesisSlotsToFetch(fromGenesis, (slot) => lp.bestVote(votesOf(lp, r.recheck, slot)), (slot) => r.genesis[slot]) }
    }
    case 'layerPool.catchUp': {
      const lp = await layerPoolPkg()
      const since = new Map()
      const outcomes = []
      for (const h of r.heartbeats) {
        const checked = h.serving.map((slot) => ({ slot, behind: lp.isBehind(votesOf(lp, h.records, slot), h.own[slot]) }))
        const fetch = lp.catchUpDue(checked, since, h.nowMs, r.graceMs)
        outcomes.push({ behind: checked.filter(c => c.behind).map(c => c.slot).sort((a, b) => a - b), fetch: fetch ?? null })
      }
      return { outcomes }
    }
    case 'layerPool.peerId': {
      const key = await (await keysPkg()).generateKeyPairFromSeed('Ed25519', unhex(r.ed25519Seed))
      return { peerId: (await peerIdPkg()).peerIdFromPrivateKey(key).toString(), publicKeyProtobuf: hex((await keysPkg()).publicKeyToProtobuf(key.publicKey)) }
    }
    case 'layerPool.signRecord': {
      const P = await layerPoolPkg()
      const key = await (await keysPkg()).generateKeyPairFromSeed('Ed25519', unhex(r.ed25519Seed))
      const { multiaddr } = await multiaddrPkg()
      const f = r.fields
      const peerId = (await peerIdPkg()).peerIdFromString(r.peerId)
      const signed = await P.signLayerRecord({
        modelId: f.model_id, version: f.version, peerId, sequence: BigInt(f.sequence), issuedAt: f.issued_at_ms, expiresAt: f.expires_at_ms,
        memoryBytes: f.memory_bytes, addresses: f.addresses.map(a => multiaddr(a)), spans: f.spans
      }, key)
      return { envelope: hex(signed.bytes), dhtKey: new TextDecoder().decode(P.layerRecordDhtKey(f.model_id, f.version, peerId)) }
    }
    case 'layerPool.openRecord': {
      const { record } = await (await layerPoolPkg()).openLayerRecord(unhex(r.envelope), { now: r.nowMs, slotCount: r.slotCount })
      return {
        peerId: record.peerId.toString(),
        fields: {
          model_id: record.modelId, version: record.version, sequence: String(record.sequence), issued_at_ms: record.issuedAt, expires_at_ms: record.expiresAt,
          memory_bytes: record.memoryBytes, addresses: record.addresses.map(String), spans: record.spans
        }
      }
    }
    case 'layerPool.openArchitecture': {
      const P = await layerPoolPkg()
      const { peerIdFromString } = await peerIdPkg()
      const p = r.parent
      const a = await P.openArchitecture(unhex(r.envelope), {
        authorities: r.authorities.map(x => peerIdFromString(x)),
        parent: { modelId: p.model_id, version: p.version, config: p.config, initSeed: BigInt(p.init_seed), parentVersion: p.parent_version ?? 0, issuedAt: p.issued_at_ms ?? 0 },
        limits: r.limits
      })
      return { fields: { model_id: a.modelId, version: a.version, config: a.config, init_seed: String(a.initSeed), parent_version: a.parentVersion, issued_at_ms: a.issuedAt } }
    }
    case 'layerPool.validateDhtRecord': {
      // the host's validator for /neuroshard/ keys (key grammar, uint64le(sequence) ‖ payload) with the layer-pool namespace's
      const validate = (await hostPkg()).createNeuroShardRecordValidator({ 'layer-pool': (await layerPoolPkg()).layerPoolRecordValidator({ now: () => r.nowMs }) })
      await validate(new TextEncoder().encode(r.key), unhex(r.value))
      return { valid: true }
    }
    // ---- pipeline ----
    case 'pipeline.draw': {
      const P = await pipelinePkg()
      return { splitmix64: P.splitmix64(BigInt(r.seed) + BigInt(r.position)).toString(), u: P.uniformDraw(Number(r.seed), r.position) }
    }
    case 'pipeline.sample': return { token: (await pipelinePkg()).sampleToken(Float32Array.from(r.logits), { temperature: r.temperature, topK: r.topK, topP: r.topP, seed: Number(r.seed) }, r.position) }
    case 'pipeline.sessions': {
      // the package's session table over a stage of the vector's shape whose runs do nothing (or fail as told)
      const P = await pipelinePkg()
      const stage = {
        config: { nKvHeads: r.stage.nKvHeads, nHeads: r.stage.nHeads, dModel: r.stage.dModel },
        blocks: { role: { kind: 'blocks', start: 1, end: 1 + r.stage.blocks }, openInference: async () => ({ truncate: async () => {}, close: async () => {} }) }
      }
      const t = new P.SessionTable({ maxSessions: r.limits.maxSessions, maxKvBytes: r.limits.maxKvBytes, ttlMs: 3_600_000 })
      const outcomes = []
      for (const x of r.steps) {
        const o = {}
        try {
          if (x.op === 'infer') {
            await t.run(x.session, stage, x.position, 1, x.seq, async () => {
              if (x.failRun != null) throw Object.assign(new Error('the run failed'), { name: x.failRun })
            }, { rollback: x.rollback === true })
          } else if (x.op === 'truncate') await t.truncate(x.session, x.position)
          else await t.close(x.session)
        } catch (err) { o.error = err.name }
        // the tokens each held session's cache holds (the table keeps them in its entries)
        outcomes.push({ ...o, holds: Object.fromEntries([...t.entries.values()].map(e => [e.key, e.tokens])), bytes: t.bytes })
      }
      return { outcomes }
    }
    case 'pipeline.tiedStep': {
      // the Validator's own check of a STEP's tied rows (private), on a stand-in holding only its message cap
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const stage = { config: { vocabSize: r.vocabSize, dModel: r.dModel }, head: r.hasTied ? { tiedParameters: ['embed.weight'] } : undefined }
      const req = { step: r.step, tiedIds: unhex(r.tiedIds), tied: unhex(r.tied), tiedAdamw: r.adamw ?? undefined }
      return { ids: Array.from(DefaultPipeline.prototype.tiedRows.call(Object.assign(Object.create(DefaultPipeline.prototype), { maxMessageSize: 1 << 20 }), req, stage).ids) }
    }
    case 'pipeline.tiedSequence': {
      // the service's own TAKE_TIED, early take at the last micro-batch and STEP handlers (private serveTakeTied,
      // prepareTied, serveStep) on a stand-in tied Validator: a head whose tied-gradient accumulation this adapter plays
      // (accumulate: the runtime's float32 sum; takeTiedGradients takes it), and a replica set as the vector's
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const T = await tensorPkg()
      const floats = (b) => new Float32Array(Uint32Array.from(b).buffer)
      const { adamwKernel } = await import('../../../packages/runtime/dist/src/optim.js')
      let pending
      // the head's tied matrix and the replica's moments live with the head (the runtime's worker): SET_TIED's matrix
      // goes through setParameters, the moments through seedTiedReplica, and the replica steps in stepTiedReplica —
      // played here with the runtime's own AdamW kernel: the Driver's rows added to the head's gradient, in place
      let tied = { p: undefined, m: undefined, v: undefined }
      const head = {
        stepCount: r.headStep,
        tiedParameters: ['embed.weight'],
        // the final norm HEAD_INPUT and a 1.6.0 TAKE_TIED answer with the inputs (§4.4 rules 5-6)
        // (1.8.0) GET_TIED's matrix: the head's resident embed.weight (the replica's matrix)
        runtime: { async getResident (names) { return names.includes('embed.weight') ? { 'embed.weight': { data: Float32Array.from(tied.p) } } : { 'final_norm.weight': { data: new Float32Array(r.dModel).fill(1) } } } },
        // (1.8.0) the owner's rows (TARGETS) and moments (GET_TIED), as the runtime's worker answers them
        async getParameterRows (name, ids) { const out = new Float32Array(ids.length * r.dModel); ids.forEach((id, k) => out.set(tied.p.subarray(id * r.dModel, (id + 1) * r.dModel), k * r.dModel)); return out },
        async getTiedReplicaState () { return tied.m == null ? undefined : { m: Float32Array.from(tied.m), v: Float32Array.from(tied.v) } },
        async takeTiedGradients () { const g = pending; pending = undefined; return g == null ? new Map() : new Map([['embed.weight', g]]) },
        async step () { head.stepCount++ },
        async setParameters (params) { if (params.has('embed.weight')) tied.p = Float32Array.from(params.get('embed.weight')) },
        async seedTiedReplica (name, { m, v }) { tied.m = Float32Array.from(m); tied.v = Float32Array.from(v) },
        async stepTiedReplica (name, g, rows, o) {
          if (tied.p == null || tied.m == null || tied.v == null) throw Object.assign(new Error(`no tied replica of ${name} to step`), { name: 'InvalidTensorError' })
          for (let k = 0; k < rows.ids.length; k++) for (let j = 0; j < r.dModel; j++) g[rows.ids[k] * r.dModel + j] += rows.data[k * r.dModel + j]
          const finite = adamwKernel(tied.p, g, tied.m, tied.v, o)
          if (!finite) tied = { p: tied.p, m: undefined, v: undefined }
          return { finite, hash: createHash('sha256').update(new Uint8Array(tied.p.buffer, tied.p.byteOffset, tied.p.byteLength)).digest() }
        }
      }
      const stage = { head, executors: [head], config: { vocabSize: r.vocabSize, dModel: r.dModel } }
      const svc = Object.assign(Object.create(DefaultPipeline.prototype), { train: new Map(), replicas: new Map(), seeds: new Map(), preparedTied: new Map(), tiedReplica: true, tiedRecompute: false, tiedOwner: r.acceptOwner !== false, maxMessageSize: 1 << 20, maxBatch: 4, timeout: 1000, maxMicroBatches: 64, log: () => {} })
      const bitsOf = (frame) => frame.length === 0 ? null : Array.from(new Uint32Array(Float32Array.from(T.decodeTensorFrame(frame).data).buffer))
      const idsFrame = (ids) => T.encodeTensorFrame({ dtype: 'int64', shape: [ids.length], data: BigInt64Array.from(ids.map(BigInt)) })
      // (rows that do not fill [k, d], as a bad vector sends them: a flat frame, refused by the service)
      const rowsFrame = (ids, rows) => T.encodeTensorFrame({ dtype: 'float32', name: 'embed.weight', shape: rows.length === ids.length * r.dModel ? [ids.length, r.dModel] : [rows.length], data: floats(rows) })
      const session = new Uint8Array(16)
      if (r.replica != null) {
        tied = { p: floats(r.replica.p), m: floats(r.replica.m), v: floats(r.replica.v) }
        svc.replicas.set(stage, { step: r.replica.step })
      }
      const outcomes = []
      for (const x of r.ops) {
        try {
          if (x.op === 'accumulate') {
            const g = floats(x.g)
            if (pending == null) pending = g
            else for (let i = 0; i < g.length; i++) pending[i] += g[i]
            if (x.microBatch != null) {
              // what the service's trainForward records after the head's backward of that micro-batch (1.7.0): its input, in order
              const key = DefaultPipeline.prototype.microKey.call(svc, { session, step: head.stepCount, microBatch: x.microBatch })
              DefaultPipeline.prototype.trainState.call(svc, stage).headInputs.push({ microBatch: x.microBatch, key, hidden: { type: 'float32', dims: [1, 1, r.dModel], data: new Float32Array(r.dModel) }, done: true })
            }
            outcomes.push({})
          } else if (x.op === 'headInput') {
            // HEAD_INPUT (§4.4 rule 6): the service's own serveHeadInput
            const res = await DefaultPipeline.prototype.serveHeadInput.call(svc, { session, step: x.step, microBatch: x.microBatch }, stage, AbortSignal.timeout(5000))
            outcomes.push({ replica: res.replica, ...(res.replica ? { headMicroBatches: res.headMicroBatches, headInputs: res.headInputs.length } : {}) })
          } else if (x.op === 'lastMicroBatch') {
            DefaultPipeline.prototype.prepareTied.call(svc, stage, head.stepCount)
            await svc.preparedTied.get(stage).ready
            outcomes.push({})
          } else if (x.op === 'setTied') {
            // SET_TIED {tied} / {tied_m} / {tied_v}: the service's own serveSetTied (§4.4 rule 4, a replica re-seeded)
            const frame = (b) => b == null ? new Uint8Array(0) : T.encodeTensorFrame({ dtype: 'float32', name: 'embed.weight', shape: [r.vocabSize, r.dModel], data: floats(b) })
            const res = await DefaultPipeline.prototype.serveSetTied.call(svc, { step: x.step, tied: frame(x.tied), tiedM: frame(x.m), tiedV: frame(x.v) }, stage)
            outcomes.push({ replica: res.replica })
          } else if (x.op === 'takeTied') {
            const owner = x.tiedOwner != null ? { tiedOwner: x.tiedOwner, tiedIds: x.ids.length > 0 ? idsFrame(x.ids) : new Uint8Array(0), tied: x.ids.length > 0 ? rowsFrame(x.ids, x.rows) : new Uint8Array(0) } : {}
            const res = await DefaultPipeline.prototype.serveTakeTied.call(svc, { step: x.step, tiedReplica: x.tiedReplica, tiedRecompute: x.tiedRecompute ?? false, recomputed: x.recomputed ?? [], ...owner }, stage)
            outcomes.push(res.tiedOwner
              ? { replica: res.replica, tiedOwner: true, tiedNormSq: res.tiedNormSq }
              : {
                  tied: bitsOf(res.tied),
                  replica: res.replica,
                  ...(x.tiedRecompute != null ? { headMicroBatches: res.headMicroBatches, headInputs: res.headInputs.length } : {}),
                  ...(x.tiedOwner != null ? { tiedOwner: false } : {})
                })
          } else if (x.op === 'targets') {
            // (1.8.0) TARGETS {tied_owner, tied_ids}: the service's own serveTargets
            const targets = T.encodeTensorFrame({ dtype: 'int64', shape: [1, 1], data: BigInt64Array.of(0n) })
            const res = await DefaultPipeline.prototype.serveTargets.call(svc, { session, step: x.step, microBatch: outcomes.length, targets, deflate: false, tiedOwner: true, tiedIds: x.ids.length > 0 ? idsFrame(x.ids) : new Uint8Array(0) }, stage)
            outcomes.push({ tiedOwner: res.tiedOwner, tied: bitsOf(res.tied) })
          } else if (x.op === 'getTied') {
            const res = await DefaultPipeline.prototype.serveGetTied.call(svc, { step: x.step, tiedPart: x.part }, stage)
            outcomes.push({ tiedOwner: res.tiedOwner, tied: bitsOf(res.tied) })
          } else {
            const ids = x.ids.length > 0 ? idsFrame(x.ids) : new Uint8Array(0)
            const tied = x.ids.length > 0 ? rowsFrame(x.ids, x.rows) : new Uint8Array(0)
            const res = await DefaultPipeline.prototype.serveStep.call(svc, { step: x.step, gradNorm: 1, tiedIds: ids, tied, tiedAdamw: x.adamw, ...(x.tiedOwner != null ? { tiedOwner: x.tiedOwner } : {}) }, stage)
            outcomes.push({ replica: res.replica, ...(res.replica ? { tiedHash: hex(res.tiedHash) } : {}), ...(x.tiedOwner != null ? { tiedOwner: res.tiedOwner } : {}) })
          }
        } catch (err) { outcomes.push({ error: err.name }) }
      }
      return { outcomes }
    }
    case 'pipeline.training': {
      // the service's own TRAIN_FORWARD and STEP handlers (private) on a stand-in: a blocks stage whose forward and
      // backward pass the activation through (backward calls count the accumulations), a downstream hop whose answer's
      // loss is the number of times it was reached, and an executor that counts its steps
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const P = await pipelinePkg()
      const svc = Object.assign(Object.create(DefaultPipeline.prototype), { train: new Map(), replicas: new Map(), maxMicroBatches: r.maxMicroBatches, maxBatch: 1, maxMessageSize: 1 << 20 })
      const hidden = P.encodeActivation({ dtype: 'float32', dims: [1, 1, 4], data: Float32Array.of(1, 2, 3, 4) }, false)
      let reached = 0
      svc.forwardHop = async () => ({ error: '', grad: hidden, loss: ++reached })
      const counts = { accumulated: 0, step: r.step }
      const stage = {
        config: { dModel: 4, maxSeqLen: 8 },
        executors: [{ get stepCount () { return counts.step }, step: async () => { counts.step++ } }],
        blocks: { forward: async (x) => ({ hidden_out: x.hidden_in }), backward: async (x) => { counts.accumulated++; return { grad_hidden_in: x.grad_hidden_out } } }
      }
      const outcomes = []
      for (const x of r.ops) {
        const o = {}
        try {
          if (x.op === 'forward') {
            const res = await svc.serveTrainForward({ session: unhex(x.session), step: x.step, microBatch: x.microBatch, hidden, compress: false, deflate: false }, stage, AbortSignal.timeout(10_000))
            o.loss = res.loss
          } else await svc.serveStep({ step: x.step, gradNorm: 1, tiedIds: new Uint8Array(0) }, stage)
        } catch (err) { o.error = err.name }
        outcomes.push({ ...o, ...counts })
      }
      return { outcomes }
    }
    case 'pipeline.mirror': {
      // §5 rule 15: the service's own INFER handler (private serveInfer) on a stand-in stage — blocks (a Worker, the next hop
      // a stand-in forwardHop) or blocks and head (a Validator, a stand-in deliver/sample) — whose session runs are recorded
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const P = await pipelinePkg()
      const q = r.request
      const ran = []
      const svc = Object.assign(Object.create(DefaultPipeline.prototype), {
        maxBatch: 1, maxMessageSize: 1 << 20, log: () => {},
        async runStageOutputs (_s, _session, _position, hidden) { ran.push('blocks'); return { hidden } },
        async forwardHop () { ran.push('forwarded'); return { ...P.PipelineResponse.decode(new Uint8Array(0)), position: q.position + q.seq } },
        async sample () { ran.push('sampled'); return {} },
        deliver () { return { ...P.PipelineResponse.decode(new Uint8Array(0)), position: q.position + q.seq } },
        async takeDraft () { return undefined }
      })
      const stage = { config: { dModel: 4, maxSeqLen: 16 }, blocks: {}, ...(r.stage === 'validator' ? { head: {} } : {}) }
      const hidden = P.encodeActivation({ type: 'float32', dims: [1, q.seq, 4], data: new Float32Array(q.seq * 4).fill(0.5) }, false)
      const req = { ...P.PipelineRequest.decode(new Uint8Array(0)), kind: P.Kind.INFER, session: new Uint8Array(16), hidden, position: q.position, mirror: q.mirror, direct: q.direct, draftCount: q.draftCount, standbys: Array.from({ length: q.standbys }, () => new Uint8Array(0)) }
      try {
        const res = await DefaultPipeline.prototype.serveInfer.call(svc, req, stage, new AbortController().signal)
        // what ran last: a mirror only its blocks; others their blocks, then forwarded or sampled
        return { error: res.error, position: res.position, ran: ran[ran.length - 1] }
      } catch (err) { return { error: err.name } }
    }
    case 'pipeline.relay': {
      // §5 rule 6: the service's own TRAIN_FORWARD handler and its forwarding to hop + 1 (private serveTrainForward,
      // forwardHop, send) on a stand-in Worker (a blocks stage passing the activation through); hop + 1 is a dialer whose
      // dial fails, or one end of an in-memory stream pair on which this adapter answers as the vector's `next` says
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const P = await pipelinePkg()
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const peer = P.peerBytes((await peerIdPkg()).peerIdFromPrivateKey(await (await keysPkg()).generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(9))))
      const hidden = P.encodeActivation({ type: 'float32', dims: [1, 1, 4], data: Float32Array.of(1, 2, 3, 4) }, false)
      const blank = (codec) => codec.decode(new Uint8Array(0))
      const next = r.next
      const connectionManager = {
        async dialProtocol () {
          if (next.unreachable) throw new Error('the dial failed')
          const [a, b] = await streamPair()
          void (async () => {
            const m = messageStream(b, { maxMessageSize: 1 << 20, timeout: 5000 })
            try {
              await m.read(P.PipelineRequest)
              const res = next.answer.error !== '' ? next.answer : { error: '', grad: hidden, loss: next.answer.loss }
              await m.write({ ...blank(P.PipelineResponse), ...res }, P.PipelineResponse)
              await m.close()
            } catch {}
          })()
          return a
        }
      }
      const svc = Object.assign(Object.create(DefaultPipeline.prototype), {
        train: new Map(), replicas: new Map(), maxMicroBatches: 8, maxBatch: 1, maxMessageSize: 1 << 20, mirrorStandbys: false,
        traffic: { requests: 0, sent: 0, received: 0 }, links: new Map(), brokenLinks: new Map(), peerIds: new Map(), maxSessionLinks: 16,
        protocol: '/neuroshard/pipeline/1.0.0', hopTimeout: 5000, log: () => {}, routerOrUndefined: () => undefined, components: { connectionManager }
      })
      const stage = {
        config: { dModel: 4, maxSeqLen: 8 },
        executors: [{ stepCount: 0 }],
        blocks: { forward: async (x) => ({ hidden_out: x.hidden_in }), backward: async (x) => ({ grad_hidden_in: x.grad_hidden_out }) }
      }
      const route = Array.from({ length: r.hops }, (_, i) => ({ peer, start: i, end: i + 1 }))
      const req = { ...blank(P.PipelineRequest), kind: P.Kind.TRAIN_FORWARD, session: new Uint8Array(16), step: 0, microBatch: 0, hidden, route, hop: r.hop, standbys: [] }
      const res = await svc.serveTrainForward(req, stage, AbortSignal.timeout(10_000))
      return { error: res.error, message: res.message, failedHop: res.failedHop, ...(res.error === '' ? { loss: res.loss } : {}) }
    }
    case 'pipeline.sessionStream': {
      // §5 rule 17: the service's own session-stream loop (private serveSessionStream) on one end of an in-memory stream
      // pair, its request handling (serve) a stand-in giving each request the vector's outcome at this hop: `forwarded`
      // (a Worker sent it on: for a quiet request nothing comes back yet), `token` (a Validator wrote the token on the
      // Driver's tokens stream), `answered` (a plain answer) or `error` (this hop's refusal). This end writes every
      // request, closes, and reads every answer until the stream ends
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const P = await pipelinePkg()
      const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
      const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
      const blank = (codec) => codec.decode(new Uint8Array(0))
      const outcomeOf = new Map(r.requests.map((q, i) => [i, q.outcome]))
      const svc = Object.assign(Object.create(DefaultPipeline.prototype), {
        maxMessageSize: 1 << 20, sessionTtlMs: 30_000, protocol: '/neuroshard/pipeline/1.0.0', log: () => {},
        async serve (req) {
          const o = outcomeOf.get(req.microBatch) // (the request's index rides in micro_batch, which INFER does not use)
          if (o.error != null) return { ...blank(P.PipelineResponse), error: o.error, message: 'refused', failedHop: req.hop }
          if (o.forwarded === true) return req.quiet && req.direct ? undefined : { ...blank(P.PipelineResponse), position: req.position + 1 }
          if (o.token === true) return { ...blank(P.PipelineResponse), direct: true, position: req.position + 1 }
          return { ...blank(P.PipelineResponse), position: req.position + 1 }
        }
      })
      const [a, b] = await streamPair()
      const serving = svc.serveSessionStream(b, { remotePeer: { toString: () => 'upstream' } })
      const m = messageStream(a, { maxMessageSize: 1 << 20, timeout: 5000 })
      for (const [i, q] of r.requests.entries()) {
        await m.write({ ...blank(P.PipelineRequest), kind: P.Kind[q.kind], session: new Uint8Array(16), hop: q.hop, position: q.position, quiet: q.quiet, direct: q.direct, microBatch: i }, P.PipelineRequest)
      }
      await m.close()
      const answers = []
      for (;;) {
        let res
        try { res = await m.read(P.PipelineResponse) } catch { break }
        answers.push({ error: res.error, quiet: res.quiet, ...(res.quiet ? { position: res.position } : {}) })
      }
      await serving
      return { answers }
    }
    case 'pipeline.draft': {
      // the service's own DRAFT handler (private), on a stand-in holding only its draft table
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const stand = { drafts: new Map(), draftWaiters: new Map(), maxSessionLinks: 16 }
      const stage = { head: r.head === false ? undefined : {}, config: { vocabSize: r.vocabSize, maxSeqLen: r.maxSeqLen } }
      DefaultPipeline.prototype.serveDraft.call(stand, { session: new Uint8Array(16), position: r.position, draft: r.draft }, stage)
      return { valid: true }
    }
    case 'pipeline.acceptDraw': return { a: (await pipelinePkg()).acceptDraw(Number(r.seed), r.position) }
    case 'pipeline.verifyDraft': {
      const sampling = { temperature: r.temperature, topK: r.topK, topP: r.topP, seed: Number(r.seed) }
      return { tokens: (await pipelinePkg()).verifyDraft(r.rows.map(x => Float32Array.from(x)), r.draft, sampling, r.first).tokens }
    }
    case 'pipeline.encodeRequest': {
      const P = await pipelinePkg()
      // every field of the vector (bytes hex → bytes, the kind by name, hops' peers), over the proto3 defaults of the
      // scalar fields protons' encoder expects to find
      const BYTES = new Set(['session', 'hidden', 'targets', 'tied', 'tiedIds', 'tiedM', 'tiedV'])
      const req = {
        session: new Uint8Array(0), position: 0, hop: 0, route: [], hidden: new Uint8Array(0), microBatch: 0, targets: new Uint8Array(0), step: 0,
        gradNorm: 0, compress: false, tied: new Uint8Array(0), lossScale: 0, tiedReplica: false, tiedIds: new Uint8Array(0), tiedM: new Uint8Array(0),
        tiedV: new Uint8Array(0), deflate: false, lastMicroBatch: false, rollback: false, draftCount: 0, draft: [], mirror: false, standbys: []
      }
      for (const [k, v] of Object.entries(r.fields)) {
        req[k] = k === 'kind' ? P.Kind[v] : k === 'standbys' ? v.map(unhex) : k === 'route' ? v.map(h => ({ peer: unhex(h.peer), start: h.start ?? 0, end: h.end ?? 0 })) : BYTES.has(k) ? unhex(v) : v
      }
      return { bytes: hex(P.PipelineRequest.encode(req)) }
    }
    case 'pipeline.decodeRequest': return { fields: pbFields((await pipelinePkg()).PipelineRequest.decode(unhex(r.bytes))) }
    case 'pipeline.decodeResponse': {
      const P = await pipelinePkg()
      const m = P.PipelineResponse.decode(unhex(r.bytes))
      return { fields: pbFields(m), reencoded: hex(P.PipelineResponse.encode(m)) }
    }
    case 'pipeline.decodeActivation': {
      const t = (await pipelinePkg()).decodeActivation(unhex(r.bytes), { ...r.limits, what: 'hidden' })
      return { shape: [...t.dims], values: toBits(t.data) }
    }
    case 'pipeline.decodeTargets': {
      const t = (await pipelinePkg()).decodeIds(unhex(r.bytes), { ...r.limits, what: 'targets' })
      return { shape: [...t.dims], ids: Array.from(t.data, String) }
    }
    case 'pipeline.checkRoute': {
      // the service's own check (private), on a stand-in holding only what it reads: this node's spans and peer id
      const P = await pipelinePkg()
      const { DefaultPipeline } = await import('../../../packages/pipeline/dist/src/pipeline.js')
      const stand = {
        own: r.serves.map(([start, end]) => ({ start, end, config: { nLayers: r.nLayers } })),
        components: { peerId: P.peerFromBytes(unhex(r.node)) },
        selfBytes: unhex(r.node),
        async subStage () { return {} }
      }
      await DefaultPipeline.prototype.checkRoute.call(stand, { session: unhex(r.session), route: r.route.map(h => ({ peer: unhex(h.peer), start: h.start, end: h.end })), hop: r.hop, kind: P.Kind[r.kind], standbys: (r.standbys ?? []).map(unhex) })
      return { valid: true }
    }
    // ---- swarm-router ----
    case 'router.chain': {
      const R = await routerPkg()
      const excluded = new Set(r.excluded)
      const chain = R.shortestChain(r.candidates, r.from, r.to, r.cost, excluded)
      if (chain == null) return { chain: null }
      return { chain: chain.hops.map(h => [h.peer, h.start, h.end]), chainCost: chain.cost, standbys: R.standbys(chain, r.candidates, r.cost, excluded).map(s => s?.peer ?? null) }
    }
    case 'router.weightedPick': return { index: (await routerPkg()).weightedPick(r.weights.map((_, i) => i), (i) => r.weights[i], r.u) }
    case 'router.bans': {
      const bans = new (await routerPkg()).BanList({ baseMs: r.baseMs, maxMs: r.maxMs, forgetMs: r.forgetMs })
      return { events: r.events.map(e => ({ bannedUntil: bans.fail(e.peer, e.failAt), failures: bans.failures(e.peer) })) }
    }
    // ---- diloco ----
    case 'diloco.outerStep': {
      const theta = fromBits(r.theta)
      const mom = fromBits(r.momentum)
      ;(await dilocoPkg()).outerStep(theta, mom, fromBits(r.g), { lr: r.lr, momentum: r.mu })
      return { theta: toBits(theta), momentum: toBits(mom) }
    }
    case 'diloco.encode': {
      const D = await dilocoPkg()
      return { payload: hex(D.encodePayload(fromBits(r.input), D.resolveCodec(r.codec))) }
    }
    case 'diloco.decode': {
      const D = await dilocoPkg()
      return { decoded: toBits(D.decodePayload(unhex(r.payload), r.elements, D.resolveCodec(r.codec))) }
    }
    case 'diloco.errorFeedback': {
      const D = await dilocoPkg()
      const codec = D.resolveCodec(r.codec)
      const ef = new D.ErrorFeedback(r.elements, r.decay)
      return { rounds: r.deltas.map(d => ({ payload: hex(ef.compress(fromBits(d), codec).payload), residual: toBits(ef.residual) })) }
    }
    case 'diloco.openAnnounce': {
      const D = await dilocoPkg()
      const o = await D.openAnnounce(D.Signed.decode(unhex(r.signed)))
      return { sender: o.sender, payloadHash: o.payloadHashHex }
    }
    case 'diloco.stateDownload': {
      // the package's StateDownload (which DiLoCo's sync drives) fed the vector's answers in order (README §4)
      const D = await dilocoPkg()
      const layout = D.spanLayout({ id: 'vector', parameters: r.layout })
      const d = new D.StateDownload(layout.size, r.rangeBytes, (base) => D.weightsHash(layout, base))
      const answers = r.answers.map(a => ({ ...a, data: unhex(a.data), baseHash: unhex(a.baseHash), stateHash: unhex(a.stateHash) }))
      let i = 0
      d.header(answers[i++])
      for (let want = d.next(); want != null; want = d.next()) {
        if (!d.range(answers[i++])) return { restart: true }
      }
      const s = d.finish()
      return { state: { round: s.round, theta: toBits(s.base), momentum: toBits(s.momentum) } }
    }
    case 'diloco.checkAnnounce': {
      const D = await dilocoPkg()
      const o = await D.openAnnounce(D.Signed.decode(unhex(r.signed)))
      D.checkAnnounce(o.announce, { ...r.expect, baseHash: unhex(r.expect.baseHash) })
      return { valid: true }
    }
    case 'diloco.round': {
      // the service's own announce handler (private receiveAnnounce) on a stand-in collecting `expect.round`: a
      // contribution is only recorded (no payload fetch, no commit timer), `commit` marks the round committed
      const { DefaultDiLoCo } = await import('../../../packages/diloco/dist/src/diloco.js')
      const D = await dilocoPkg()
      const e = r.expect
      const svc = Object.assign(Object.create(DefaultDiLoCo.prototype), {
        base: new Float32Array(e.elements), state: { contributions: new Map(), timers: [], committed: undefined }, currentRound: e.round,
        currentHash: unhex(e.baseHash), group: e.group, layout: { span: { id: e.span }, size: e.elements }, future: new Map(), seenPayloads: new Set(),
        opts: { maxPayloadBytes: e.maxPayloadBytes, maxContributions: r.maxContributions, membersOnly: false },
        addContribution (c) { this.state.contributions.set(c.opened.sender, c) },
        safeDispatch () {},
        ensurePayload: async () => {}
      })
      const outcomes = []
      for (const x of r.ops) {
        if (x.op === 'commit') {
          svc.state.committed = { round: e.round }
          outcomes.push({})
          continue
        }
        try {
          await svc.receiveAnnounce(D.Signed.decode(unhex(x.signed)), '')
          outcomes.push({})
        } catch (err) { outcomes.push({ error: err.name }) }
      }
      return { outcomes }
    }
    case 'diloco.commits': {
      // the service's own commit handler (private receiveCommit) on a stand-in at `round`: catchUp is recorded,
      // apply only moves it to the next round on the vector's base (the outer step has its own vectors)
      const { DefaultDiLoCo } = await import('../../../packages/diloco/dist/src/diloco.js')
      const D = await dilocoPkg()
      // `stalled` (§6 step 5a): the round stalled with that many announcers (stand-ins: only their number is read)
      const fresh = (round, stalled) => ({
        round, contributions: new Map(Array.from({ length: stalled ?? 0 }, (_, i) => [`announcer-${i}`, {}])), timers: [], committed: undefined,
        ...(stalled != null ? { stalled: { at: 0, silent: new Set() } } : {})
      })
      let event
      const svc = Object.assign(Object.create(DefaultDiLoCo.prototype), {
        base: new Float32Array(r.elements), state: fresh(r.round, r.stalled), currentRound: r.round, currentHash: unhex(r.baseHash), group: r.group,
        layout: { span: { id: r.span }, size: r.elements }, commits: new Map(), applying: Promise.resolve(), started: true,
        opts: { aggregator: r.aggregator },
        // no replica set (the topic view): `members` is the group the node sees; the floor (1.4.0) starts at 0
        floor: 0,
        leaderOrder () { return Array.from({ length: r.members }, (_, i) => `member-${i}`) },
        fullIds () { return new Set(Array.from({ length: r.members }, (_, i) => `member-${i}`)) },
        armStall () {},
        async catchUp (peer) { event ??= { outcome: 'catchUp', from: peer } },
        async apply (st, opened) {
          event ??= { outcome: 'applied' }
          this.currentRound = st.round + 1
          this.currentHash = unhex(r.bases[String(st.round)])
          this.state = fresh(st.round + 1)
          this.carryFloor(opened) // the service's own rule (§6 step 4, 1.4.0), as its apply() ends
        }
      })
      const outcomes = []
      for (const x of r.ops) {
        event = undefined
        try {
          await svc.receiveCommit(D.Signed.decode(unhex(x.signed)), '')
          await svc.applying
          outcomes.push(event ?? { outcome: 'ignored' })
        } catch (err) { outcomes.push({ error: err.name }) }
      }
      return { outcomes }
    }
    case 'diloco.openCommit': {
      const D = await dilocoPkg()
      const o = await D.openCommit(D.Signed.decode(unhex(r.signed)))
      return { leader: o.leader, senders: o.announces.map(a => a.sender) }
    }
    case 'diloco.aggregate': {
      const a = (await dilocoPkg()).aggregateRound(r.inputs.map(fromBits), r.aggregator)
      return { value: toBits(a.value), accepted: a.accepted, distances: a.distances }
    }
    case 'diloco.verifyRoundRecord': {
      const D = await dilocoPkg()
      const payloads = r.payloads == null ? undefined : new Map(Object.entries(r.payloads).map(([h, p]) => [h, unhex(p)]))
      await D.verifyRoundRecord({ ...r.record, commit: unhex(r.record.commit) }, payloads == null ? {} : { payloads, elements: r.elements, aggregator: r.aggregator })
      return { valid: true }
    }
    case 'diloco.leaderKey': return { key: (await dilocoPkg()).leaderKey(Number(r.round), unhex(r.peer)) }
    case 'diloco.privacyEpsilon': return { epsilon: (await dilocoPkg()).privacyEpsilon(r.rounds, r.noiseMultiplier, r.delta) }
    // ---- model: forward, KV-cache inference, backward, graph inputs and outputs (onnxruntime through @neuroshard/runtime) ----
    case 'model.forward': {
      const { weights, config } = await tinyWeights(r)
      const ids = int64(r.ids)
      const h = (await runGraph(config, { kind: 'embed' }, 'forward', { input_ids: ids }, weights)).hidden
      const h2 = (await runGraph(config, { kind: 'blocks', start: 0, end: config.nLayers }, 'forward', { hidden_in: h }, weights)).hidden_out
      const logits = (await runGraph(config, { kind: 'head' }, 'inference', { hidden: h2 }, weights)).logits
      const loss = (await runGraph(config, { kind: 'head' }, 'forward', { hidden: h2, targets: int64(r.targets) }, weights)).loss
      return { logits: Array.from(logits.data), logitsShape: [...logits.dims], loss: loss.data[0] }
    }
    case 'model.decode': {
      const { weights, config } = await tinyWeights(r)
      const hd = config.dModel / config.nHeads
      let cache = {}
      for (let k = 0; k < config.nLayers; k++) {
        cache[`past_key.${k}`] = { type: 'float32', data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
        cache[`past_value.${k}`] = { type: 'float32', data: new Float32Array(0), dims: [1, config.nKvHeads, 0, hd] }
      }
      const logits = []
      let pos = 0
      for (const [from, to] of r.steps) {
        const h = (await runGraph(config, { kind: 'embed' }, 'inference', { input_ids: int64([r.ids.slice(from, to)]) }, weights)).hidden
        const o = await runGraph(config, { kind: 'blocks', start: 0, end: config.nLayers }, 'inference',
          { hidden_in: h, ...cache, position_offset: { type: 'int64', data: BigInt64Array.of(BigInt(pos)), dims: [] } }, weights)
        logits.push(...(await runGraph(config, { kind: 'head' }, 'inference', { hidden: o.hidden_out }, weights)).logits.data)
        cache = {}
        for (let k = 0; k < config.nLayers; k++) {
          cache[`past_key.${k}`] = o[`present_key.${k}`]
          cache[`past_value.${k}`] = o[`present_value.${k}`]
        }
        pos = to
      }
      return { logits }
    }
    case 'model.gradients': {
      const { weights, config } = await tinyWeights(r)
      const ids = int64(r.ids)
      const blocks = { kind: 'blocks', start: 0, end: config.nLayers }
      // embed forward → blocks forward → head backward → blocks backward → embed backward (model §5)
      const h = (await runGraph(config, { kind: 'embed' }, 'forward', { input_ids: ids }, weights)).hidden
      const h2 = (await runGraph(config, blocks, 'forward', { hidden_in: h }, weights)).hidden_out
      const head = await runGraph(config, { kind: 'head' }, 'backward', { hidden: h2, targets: int64(r.targets), grad_loss: { type: 'float32', data: Float32Array.of(r.gradLoss), dims: [] } }, weights)
      const blk = await runGraph(config, blocks, 'backward', { hidden_in: h, grad_hidden_out: head.grad_hidden }, weights)
      const emb = await runGraph(config, { kind: 'embed' }, 'backward', { input_ids: ids, grad_hidden: blk.grad_hidden_in }, weights)
      const grads = { ...head, ...blk, ...emb }
      return { loss: head.loss.data[0], gradients: r.at.map(a => grads[`grad.${a.name}`]?.data[a.index] ?? null) }
    }
    case 'model.graphIO': {
      const g = (await modelPkg()).buildShardGraph(r.config, r.role, r.variant)
      const io = (l) => l.map(x => ({ name: x.name, dtype: x.dtype, shape: x.shape.map(d => typeof d === 'number' ? d : String(d)) }))
      return { inputs: io(g.inputs), outputs: io(g.outputs) }
    }
    default: return undefined
  }
}

// hosts of the host profile built by createNeuroShardHost and never started (nothing listens), one per options
const profileHosts = new Map()
/**
 * Answers one weight-transfer request on `stream` as a replica a vector describes (transfer.json's fetch and
 * fetchMany cases): its manifest, its chunks (as they are, right or wrong), and the misbehaviour its `mode` names
 */
// layerPool.serve / serveSequence: the package's weightsServer, its provider answering from holds() at each request
async function weightServer (r, holds) {
  const P = await layerPoolPkg()
  return P.weightsServer({ registrar: { handle: async () => {}, unhandle: async () => {} } }, {
    chunkSize: r.chunkSize,
    maxChunksPerRequest: r.maxChunksPerRequest,
    timeout: 5000,
    provider: (span) => {
      const h = holds().find(h => h.modelId === span.modelId && h.version === span.version && h.start === span.start && h.end === span.end && h.part === span.part)
      return h == null ? undefined : { tensors: h.tensors, optimizerStep: h.optimizerStep }
    }
  })
}

// one request to `server` on one end of an in-memory libp2p stream pair: this end writes the request (length-prefixed)
// and reads what comes back
async function serveOnce (server, request) {
  const pb = await import('../../../packages/layer-pool/dist/src/pb/transfer.js')
  const { messageStream } = await import('../../../packages/utils/dist/src/index.js')
  const { streamPair } = await import('../../../packages/utils/node_modules/@libp2p/utils/dist/src/index.js')
  const [a, b] = await streamPair()
  const serving = server.onStream(b, { remotePeer: { toString: () => 'requester' } })
  const m = messageStream(a, { maxMessageSize: 4 << 20, timeout: 5000 })
  await m.writeBytes(unhex(request))
  await m.close()
  let res
  try {
    res = await m.read(pb.WeightsResponse)
  } catch (err) {
    await serving
    return { reset: true, stats: { failedStreams: server.stats.failedStreams }, why: err.name }
  }
  const chunks = []
  for (let k = 0; k < res.chunkCount; k++) {
    const c = pb.Chunk.decode(await m.readList())
    chunks.push({ index: c.index, data: hex(c.data) })
  }
  await serving
  const mf = res.manifest
  return {
    status: pb.Status[res.status] ?? res.status,
    message: res.message,
    manifest: mf == null ? null : { tensors: mf.tensors.map(t => ({ name: t.name, shape: t.shape })), totalBytes: mf.totalBytes, chunkSize: mf.chunkSize, chunkHashes: mf.chunkHashes.map(hex), optimizerStep: mf.optimizerStep },
    chunkCount: res.chunkCount,
    chunks
  }
}

async function playReplica (rep, stream, pb, messageStream) {
  const m = messageStream(stream, { maxMessageSize: 4 << 20, timeout: 5000 })
  try {
    const req = await m.read(pb.WeightsRequest)
    const problem = r1Problem(req, rep.chunks.length)
    if (problem != null) {
      await m.write({ status: pb.Status.BAD_REQUEST, message: problem, chunkCount: 0 }, pb.WeightsResponse)
    } else if (req.wantManifest) {
      await m.writeBytes(unhex(rep.manifest))
    } else {
      const n = req.chunks.length
      await m.write({ status: pb.Status.OK, message: '', chunkCount: rep.mode === 'count-plus-one' ? n + 1 : n }, pb.WeightsResponse)
      for (const i of req.chunks) await m.write({ index: rep.mode === 'index-out-of-range' ? rep.chunks.length : i, data: unhex(rep.chunks[i]) }, pb.Chunk)
    }
    await m.close()
  } catch {}
}

async function profileHost (opts) {
  const k = JSON.stringify(opts)
  if (!profileHosts.has(k)) {
    const H = await hostPkg()
    const { swarmKey, ...rest } = opts
    profileHosts.set(k, await H.createNeuroShardHost({ start: false, listen: [], transports: { quic: false, webrtcDirect: false }, ...rest, ...(swarmKey === true ? { swarmKey: H.generateSwarmKey() } : {}) }))
  }
  return profileHosts.get(k)
}

// host R21: the package's joiner service with stand-in components (connections counted as the events say, dials that
// change nothing), its timers captured instead of run, Math.random giving each event's draw u
async function joinRounds (target, events) {
  const H = await hostPkg()
  const { peerIdFromPrivateKey } = await peerIdPkg()
  const { generateKeyPairFromSeed } = await keysPkg()
  const id = async (n) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(n)))
  const self = await id(1)
  const boot = await id(2)
  let peers = 0
  const events_ = new EventTarget()
  const log = Object.assign(() => {}, { error: () => {}, trace: () => {} })
  const components = {
    peerId: self,
    peerStore: { merge: async () => {}, all: async () => [] },
    peerRouting: { getClosestPeers: async function * () {} },
    connectionManager: {
      openConnection: async () => ({ remotePeer: boot }),
      getConnections: () => Array.from({ length: peers }, (_, i) => ({ remotePeer: { toString: () => `peer-${i}` } }))
    },
    events: events_,
    logger: { forComponent: () => log }
  }
  const j = H.joiner({ bootstrap: [`/ip4/127.0.0.1/tcp/1/p2p/${boot.toString()}`], minPeers: target })(components)
  let joined = 0
  j.addEventListener('join:joined', () => { joined++ })
  const { setTimeout: st, clearTimeout: ct } = globalThis
  const random = Math.random
  let pending = null
  globalThis.setTimeout = (fn, ms) => { pending = { fn, ms }; return pending }
  globalThis.clearTimeout = (t) => { if (t != null && t === pending) pending = null }
  const out = []
  try {
    for (const e of events) {
      Math.random = () => e.u ?? 0
      const before = joined
      if (e.event === 'start') {
        await j.start()
        await j.afterStart()
      } else if (e.event === 'round') {
        const p = pending
        if (p == null) throw new Error('no round pending')
        pending = null
        peers = e.peers
        p.fn()
        await j.running
      } else {
        peers = e.peers
        events_.dispatchEvent(new CustomEvent(e.event === 'connect' ? 'peer:connect' : 'peer:disconnect'))
      }
      out.push({ pendingMs: pending?.ms ?? null, attempt: j.attempt, joined: joined > before })
    }
  } finally {
    globalThis.setTimeout = st
    globalThis.clearTimeout = ct
    Math.random = random
    await j.stop()
  }
  return out
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue
  const req = JSON.parse(line)
  let out
  try {
    out = (await handle(req)) ?? { unsupported: true }
  } catch (err) {
    out = { error: err.name, message: err.message }
  }
  process.stdout.write(JSON.stringify({ ...out, id: req.id }) + '\n')
}
await runtime?.close()

// Conformance adapter of the TypeScript implementation (@neuroshard/ponw-ledger, built: `tsc -b` first).
// JSON lines on stdin/stdout, protocol in ../README.md. Run by: python3 specs/conformance/run.py -- node <this file>
import { createInterface } from 'node:readline'
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
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
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
    case 'genesisData.assignShards': return { shards: (await genesisPkg()).assignShards(r.manifest, r.peerId, BigInt(r.round), r.k, r.split == null ? {} : { split: r.split }) }
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
    default: return undefined
  }
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

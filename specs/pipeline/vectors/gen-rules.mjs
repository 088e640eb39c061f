// Writes specs/pipeline/vectors/rules.json: the §5 rule 1 route checks and the rule 2 activation / targets checks
// (with §3's zlib streams of `Request.deflate`), built with the real @neuroshard/pipeline and @neuroshard/tensor code.
// The expected outcome of every case is written here by hand from the spec text (decoded values: int8 x̂ = fround(q·scale)
// of tensor-frame); the script checks each case with the TypeScript implementation and stops (exit 1, nothing written)
// if it disagrees. The route check is the pipeline service's own (DefaultPipeline.checkRoute, called on a stand-in
// holding only what it reads: the node's spans and peer id).
//
//   npx -y pnpm@10 exec tsc -b packages/pipeline && node specs/pipeline/vectors/gen-rules.mjs
import { writeFileSync } from 'node:fs'
import { deflateSync, deflateRawSync, gzipSync } from 'node:zlib'
import * as P from '../../../packages/pipeline/dist/src/index.js'
import { DefaultPipeline } from '../../../packages/pipeline/dist/src/pipeline.js'
import { encodeTensorFrame } from '../../../packages/tensor/dist/src/index.js'
import { generateKeyPairFromSeed } from '../../../packages/layer-pool/node_modules/@libp2p/crypto/dist/src/keys/index.js'
import { peerIdFromPrivateKey } from '../../../packages/layer-pool/node_modules/@libp2p/peer-id/dist/src/index.js'

const hex = (b) => Buffer.from(b).toString('hex')
const bits = (xs) => Array.from(new Uint32Array(Float32Array.from(xs).buffer))
let disagreements = 0
function agree (what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    disagreements++
    console.error(`the TypeScript implementation disagrees on "${what}": ${JSON.stringify(got)} (spec: ${JSON.stringify(want)})`)
  }
}
function outcome (fn) {
  try { return { ok: fn() } } catch (err) { return { error: err.name } }
}

// ---- rule 2: activations [batch, seq, d] and targets [batch, seq] ----
const D = 4
const limits = { dModel: D, maxBatch: 2, maxSeq: 3, maxBytes: 512 }
const f32 = (shape, values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i - 3) * 0.25)) => ({ frame: encodeTensorFrame({ dtype: 'float32', shape, data: Float32Array.from(values) }), values })
const plain = f32([1, 2, D])
// int8, block 4: q and scales chosen here; x̂ = fround(q · scale)
const q = [-127, -64, 0, 5, 127, 1, -1, 100]
const scales = [0.5, 0.0078125]
const int8 = encodeTensorFrame({ dtype: 'int8', shape: [1, 2, D], data: Int8Array.from(q), scales: Float32Array.from(scales), blockSize: 4 })
const int8Values = q.map((x, i) => Math.fround(x * scales[i >> 2]))
const big = f32([2, 3, D]) // 24 values, 96 bytes of data
const bomb = encodeTensorFrame({ dtype: 'float32', shape: [2, 3, 40], data: new Float32Array(240) }) // over 512 bytes; deflates to a few dozen
const z = (b, level = 1) => deflateSync(b, { level })
const badAdler = (() => { const b = Buffer.from(z(plain.frame)); b[b.length - 1] ^= 1; return b })()
const withCompress = { compress: true }
const activationCases = [
  ['float32 [1, 2, 4]', plain.frame, {}, { shape: [1, 2, D], values: bits(plain.values) }],
  ['float32 [2, 3, 4]: batch and seq at their limits', big.frame, {}, { shape: [2, 3, D], values: bits(big.values) }],
  ['int8 [1, 2, 4] with compress (dequantized)', int8, withCompress, { shape: [1, 2, D], values: bits(int8Values) }],
  ['deflate: a zlib stream of a float32 frame (level 1)', z(plain.frame), { deflate: true }, { shape: [1, 2, D], values: bits(plain.values) }],
  ['deflate: a zlib stream at level 9 (any level)', z(plain.frame, 9), { deflate: true }, { shape: [1, 2, D], values: bits(plain.values) }],
  ['deflate and compress: a zlib stream of an int8 frame', z(int8), { deflate: true, compress: true }, { shape: [1, 2, D], values: bits(int8Values) }],
  ['int8 frame without compress', int8, {}, 'InvalidActivationError'],
  ['float32 frame with compress', plain.frame, withCompress, 'InvalidActivationError'],
  ['float16 frame', encodeTensorFrame({ dtype: 'float16', shape: [1, 2, D], data: new Uint16Array(8) }), {}, 'InvalidActivationError'],
  ['rank 2', f32([2, D]).frame, {}, 'InvalidActivationError'],
  ['rank 4', f32([1, 1, 2, D]).frame, {}, 'InvalidActivationError'],
  ['last dim 5, not d = 4', f32([1, 2, 5]).frame, {}, 'InvalidActivationError'],
  ['batch 0', f32([0, 2, D], []).frame, {}, 'InvalidActivationError'],
  ['batch 3 over the max batch 2', f32([3, 1, D]).frame, {}, 'InvalidActivationError'],
  ['seq 0', f32([1, 0, D], []).frame, {}, 'InvalidActivationError'],
  ['seq 4 over maxSeqLen 3', f32([1, 4, D]).frame, {}, 'InvalidActivationError'],
  ['a frame over the frame cap (512 bytes)', bomb, {}, 'InvalidActivationError'],
  ['not a tensor frame (bad magic)', Buffer.concat([Buffer.from('XXXX'), Buffer.from(plain.frame).subarray(4)]), {}, 'InvalidActivationError'],
  ['deflate: a raw frame, not a zlib stream', plain.frame, { deflate: true }, 'InvalidActivationError'],
  ['deflate: a zlib stream cut short', z(plain.frame).subarray(0, 20), { deflate: true }, 'InvalidActivationError'],
  ['deflate: a wrong Adler-32', badAdler, { deflate: true }, 'InvalidActivationError'],
  ['deflate: raw deflate (RFC 1951) without the zlib header', deflateRawSync(plain.frame), { deflate: true }, 'InvalidActivationError'],
  ['deflate: a gzip stream (RFC 1952)', gzipSync(plain.frame), { deflate: true }, 'InvalidActivationError'],
  ['deflate: inflates past the frame cap (512 bytes)', z(bomb), { deflate: true }, 'InvalidActivationError'],
  ['a zlib stream without deflate', z(plain.frame), {}, 'InvalidActivationError']
]
const activations = []
for (const [name, bytes, opts, want] of activationCases) {
  const lim = { ...limits, compress: false, deflate: false, ...opts }
  const got = outcome(() => { const t = P.decodeActivation(Uint8Array.from(bytes), { ...lim, what: 'hidden' }); return { shape: [...t.dims], values: bits(t.data) } })
  agree(name, got, typeof want === 'string' ? { error: want } : { ok: want })
  activations.push({ name, bytes: hex(bytes), limits: lim, ...(typeof want === 'string' ? { error: want } : want) })
}

const ids = (shape, values) => encodeTensorFrame({ dtype: 'int64', shape, data: BigInt64Array.from(values.map(BigInt)) })
const tgt = ids([1, 3], [5, 255, 0])
const targetCases = [
  ['int64 [1, 3]', tgt, {}, { shape: [1, 3], ids: ['5', '255', '0'] }],
  ['int64 [2, 1], deflated', z(ids([2, 1], [7, 9])), { deflate: true }, { shape: [2, 1], ids: ['7', '9'] }],
  ['float32 targets', f32([1, 3]).frame, {}, 'InvalidActivationError'],
  ['rank 3', ids([1, 1, 3], [1, 2, 3]), {}, 'InvalidActivationError'],
  ['batch 3 over the max batch 2', ids([3, 1], [1, 2, 3]), {}, 'InvalidActivationError'],
  ['seq 4 over maxSeqLen 3', ids([1, 4], [1, 2, 3, 4]), {}, 'InvalidActivationError'],
  ['deflate: not a zlib stream', tgt, { deflate: true }, 'InvalidActivationError']
]
const targets = []
for (const [name, bytes, opts, want] of targetCases) {
  const lim = { maxBatch: limits.maxBatch, maxSeq: limits.maxSeq, maxBytes: limits.maxBytes, deflate: false, ...opts }
  const got = outcome(() => { const t = P.decodeIds(Uint8Array.from(bytes), { ...lim, what: 'targets' }); return { shape: [...t.dims], ids: Array.from(t.data, String) } })
  agree(name, got, typeof want === 'string' ? { error: want } : { ok: want })
  targets.push({ name, bytes: hex(bytes), limits: lim, ...(typeof want === 'string' ? { error: want } : want) })
}

// ---- rule 1: routes (a model of L = 2 blocks: slots [0, 4)); this node serves [1, 3) ----
const keys = await Promise.all([1, 2, 3, 4].map(k => generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, (_, i) => (k * 53 + i) & 0xff))))
const [me, a, b, c] = keys.map(k => peerIdFromPrivateKey(k))
const pb = (p) => hex(P.peerBytes(p))
const hop = (p, s, e) => ({ peer: pb(p), start: s, end: e })
const SESSION = '00112233445566778899aabbccddeeff'
const serves = [[1, 3]]
const routeCases = [
  ['INFER over this node\'s whole span', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 4)], 1, 'INFER', SESSION, null],
  ['TRAIN_FORWARD over the whole span', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 4)], 1, 'TRAIN_FORWARD', SESSION, null],
  ['INFER over part of the span (a sub-span)', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 2, 4)], 1, 'INFER', SESSION, null],
  ['CLOSE over part of the span', [hop(a, 0, 2), hop(me, 2, 3), hop(b, 3, 4)], 1, 'CLOSE', SESSION, null],
  ['TRAIN_FORWARD over part of the span', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 2, 4)], 1, 'TRAIN_FORWARD', SESSION, 'PipelineRequestError'],
  ['STEP over part of the span', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 2, 4)], 1, 'STEP', SESSION, 'PipelineRequestError'],
  ['session of 15 bytes', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 4)], 1, 'INFER', SESSION.slice(2), 'PipelineRequestError'],
  ['order: session of 15 bytes and a one-hop route (session first)', [hop(me, 0, 4)], 1, 'INFER', SESSION.slice(2), 'PipelineRequestError'],
  ['a route of one hop', [hop(me, 0, 4)], 0, 'INFER', SESSION, 'InvalidRouteError'],
  ['hop 0 (the Driver\'s own place)', [hop(me, 0, 1), hop(a, 1, 3), hop(b, 3, 4)], 0, 'INFER', SESSION, 'InvalidRouteError'],
  ['hop equal to the route length', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 4)], 3, 'INFER', SESSION, 'InvalidRouteError'],
  ['route[hop] names another peer', [hop(a, 0, 1), hop(c, 1, 3), hop(b, 3, 4)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['a span this node does not serve (the head)', [hop(a, 0, 1), hop(c, 1, 3), hop(me, 3, 4)], 2, 'INFER', SESSION, 'InvalidRouteError'],
  ['a span overlapping this node\'s but not inside it', [hop(a, 0, 1), hop(me, 1, 4)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['an empty hop', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 3), hop(c, 3, 4)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['a gap in the route (slot 2 missing)', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 3, 4)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['hops out of slot order (the route starts at slot 3)', [hop(b, 3, 4), hop(me, 1, 3)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['overlapping hops', [hop(a, 0, 2), hop(me, 1, 3), hop(b, 3, 4)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['a route ending before slot L + 2', [hop(a, 0, 1), hop(me, 1, 3)], 1, 'INFER', SESSION, 'InvalidRouteError'],
  ['a route going past slot L + 2', [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 5)], 1, 'INFER', SESSION, 'InvalidRouteError']
]
// ---- rule 15 (1.4.0; order 1.6.1): an INFER's `standbys` is empty or one entry per route hop (an empty entry: no
// standby for that hop), else InvalidRouteError, checked after rule 1's checks ----
const r3 = [hop(a, 0, 1), hop(me, 1, 3), hop(b, 3, 4)]
const standbyCases = [
  ['standbys: one per hop (3 of a 3-hop route)', r3, 1, 'INFER', SESSION, [pb(c), pb(c), pb(a)], null],
  ['standbys: one per hop, some empty (no standby for those hops)', r3, 1, 'INFER', SESSION, ['', pb(c), ''], null],
  ['standbys: one per hop on a sub-span route', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 2, 4)], 1, 'INFER', SESSION, ['', '', pb(b)], null],
  ['standbys: 2 for a 3-hop route', r3, 1, 'INFER', SESSION, [pb(c), pb(c)], 'InvalidRouteError'],
  ['standbys: 4 for a 3-hop route', r3, 1, 'INFER', SESSION, [pb(c), pb(c), pb(a), pb(b)], 'InvalidRouteError'],
  ['standbys: 1 for a 3-hop route, all empty', r3, 1, 'INFER', SESSION, [''], 'InvalidRouteError'],
  ['standbys: 1 for a 2-hop route over a sub-span', [hop(a, 0, 1), hop(me, 1, 2), hop(c, 2, 4)], 1, 'INFER', SESSION, [pb(b)], 'InvalidRouteError'],
  ['standbys: 64 for a 3-hop route', r3, 1, 'INFER', SESSION, Array.from({ length: 64 }, () => pb(c)), 'InvalidRouteError'],
  ['order: 2 standbys and a session of 15 bytes (session first)', r3, 1, 'INFER', SESSION.slice(2), [pb(c), pb(c)], 'PipelineRequestError']
]
for (const [name, route, h, kind, session, standbys, error] of standbyCases) routeCases.push([name, route, h, kind, session, error, standbys])
const stand = {
  own: serves.map(([s, e]) => ({ start: s, end: e, config: { nLayers: 2 } })),
  components: { peerId: me },
  // (1.5.0: checkRoute compares the route's peer bytes with this node's own)
  selfBytes: P.peerBytes(me),
  async subStage () { return { sub: true } }
}
const routes = []
for (const [name, route, hopIndex, kind, session, error, standbys] of routeCases) {
  const req = { session: Buffer.from(session, 'hex'), route: route.map(h => ({ peer: Buffer.from(h.peer, 'hex'), start: h.start, end: h.end })), hop: hopIndex, kind: P.Kind[kind], standbys: (standbys ?? []).map(s => Buffer.from(s, 'hex')) }
  let got
  try { await DefaultPipeline.prototype.checkRoute.call(stand, req); got = { ok: true } } catch (err) { got = { error: err.name } }
  agree(name, got, error ? { error } : { ok: true })
  routes.push({ name, route, hop: hopIndex, kind, session, ...(standbys != null ? { standbys } : {}), ...(error ? { error } : {}) })
}

// ---- rule 12: a STEP's tied rows for a Validator's replica (vocab 8, d 2, the span's step 5) ----
// The Validator's own check (DefaultPipeline.tiedRows, on a stand-in holding only its message cap)
const TIED = { vocabSize: 8, dModel: 2, step: 5 }
const ids64 = (xs, shape = [xs.length]) => hex(encodeTensorFrame({ dtype: 'int64', shape, data: BigInt64Array.from(xs.map(BigInt)) }))
const rows = (k, { name = 'embed.weight', values = Array.from({ length: k * TIED.dModel }, (_, i) => i / 4 - 1), dtype = 'float32' } = {}) =>
  hex(encodeTensorFrame({ dtype, name, shape: [k, TIED.dModel], data: dtype === 'float32' ? Float32Array.from(values) : Int32Array.from(values) }))
const adamw = { lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clipScale: 1, t: TIED.step + 1 }
const tiedCases = [
  ['three rows', ids64([1, 4, 7]), rows(3), adamw, null, [1, 4, 7]],
  ['every row, lr 0, no decay, beta1 0, clip 0.5', ids64([0, 1, 2, 3, 4, 5, 6, 7]), rows(8), { ...adamw, lr: 0, weightDecay: 0, beta1: 0, clipScale: 0.5 }, null, [0, 1, 2, 3, 4, 5, 6, 7]],
  ['ids not increasing', ids64([4, 1]), rows(2), adamw, 'InvalidActivationError'],
  ['a repeated id', ids64([1, 1]), rows(2), adamw, 'InvalidActivationError'],
  ['an id equal to the vocabulary size', ids64([1, 8]), rows(2), adamw, 'InvalidActivationError'],
  ['a negative id', ids64([-1, 2]), rows(2), adamw, 'InvalidActivationError'],
  ['no ids', ids64([]), rows(0), adamw, 'InvalidActivationError'],
  ['ids as int32', hex(encodeTensorFrame({ dtype: 'int32', shape: [2], data: Int32Array.from([1, 2]) })), rows(2), adamw, 'InvalidActivationError'],
  ['ids of rank 2', ids64([1, 2], [1, 2]), rows(2), adamw, 'InvalidActivationError'],
  ['ids that are no tensor frame', 'deadbeef', rows(2), adamw, 'InvalidActivationError'],
  ['rows named head.weight', ids64([1, 2]), rows(2, { name: 'head.weight' }), adamw, 'InvalidActivationError'],
  ['two rows for three ids', ids64([1, 2, 3]), rows(2), adamw, 'InvalidActivationError'],
  ['a NaN in the rows', ids64([1, 2]), rows(2, { values: [0, 1, NaN, 2] }), adamw, 'InvalidActivationError'],
  ['rows as int32', ids64([1, 2]), rows(2, { dtype: 'int32', values: [0, 1, 2, 3] }), adamw, 'InvalidActivationError'],
  ['no AdamW numbers', ids64([1, 2]), rows(2), null, 'PipelineRequestError'],
  ['beta1 1', ids64([1, 2]), rows(2), { ...adamw, beta1: 1 }, 'PipelineRequestError'],
  ['beta2 negative', ids64([1, 2]), rows(2), { ...adamw, beta2: -0.5 }, 'PipelineRequestError'],
  ['eps 0', ids64([1, 2]), rows(2), { ...adamw, eps: 0 }, 'PipelineRequestError'],
  ['lr negative', ids64([1, 2]), rows(2), { ...adamw, lr: -0.001 }, 'PipelineRequestError'],
  ['weight decay negative', ids64([1, 2]), rows(2), { ...adamw, weightDecay: -0.01 }, 'PipelineRequestError'],
  ['clip scale 0', ids64([1, 2]), rows(2), { ...adamw, clipScale: 0 }, 'PipelineRequestError'],
  ['clip scale 1.5', ids64([1, 2]), rows(2), { ...adamw, clipScale: 1.5 }, 'PipelineRequestError'],
  ['t equal to the step (not step + 1)', ids64([1, 2]), rows(2), { ...adamw, t: TIED.step }, 'PipelineRequestError']
]
const tiedStand = Object.assign(Object.create(DefaultPipeline.prototype), { maxMessageSize: 1 << 20 })
const tiedStage = (head) => ({ config: { vocabSize: TIED.vocabSize, dModel: TIED.dModel }, head: head ? { tiedParameters: ['embed.weight'] } : undefined })
const tiedSteps = []
for (const [name, tiedIds, tied, adamwNumbers, error, ids] of [...tiedCases, ['a hop without a tied parameter', ids64([1, 2]), rows(2), adamw, 'InvalidRouteError']]) {
  const req = { step: TIED.step, tiedIds: Buffer.from(tiedIds, 'hex'), tied: Buffer.from(tied, 'hex'), tiedAdamw: adamwNumbers ?? undefined }
  const got = outcome(() => Array.from(DefaultPipeline.prototype.tiedRows.call(tiedStand, req, tiedStage(error !== 'InvalidRouteError')).ids))
  agree(name, got, error ? { error } : { ok: ids })
  tiedSteps.push({ name, tiedIds, tied, adamw: adamwNumbers, ...(error === 'InvalidRouteError' ? { noTiedParameter: true } : {}), ...(error ? { error } : { ids }) })
}

if (disagreements > 0) {
  console.error(`${disagreements} disagreement(s): rules.json not written`)
  process.exit(1)
}
writeFileSync(new URL('rules.json', import.meta.url), JSON.stringify({
  description: 'Pipeline §5 rule 1 (routes: this node, self, serves the spans listed, of a model with nLayers blocks; a case with `standbys` carries them, peer id bytes hex, \'\' for a hop without one: rule 15), rule 2 (activation and targets frames, with §3 zlib streams when deflate) and rule 12 (a STEP\'s tied rows, ids and AdamW numbers for a Validator\'s replica; tiedSteps.step is the span\'s step); written by gen-rules.mjs, expected outcomes from the spec text. Values are float32 bit patterns.',
  activations,
  targets,
  routes: { self: pb(me), serves, nLayers: 2, cases: routes },
  tiedSteps: { ...TIED, cases: tiedSteps }
}, null, 1) + '\n')
console.log(`wrote rules.json: ${activations.length} activations, ${targets.length} targets, ${routes.length} routes, ${tiedSteps.length} tied steps`)

// Writes specs/node/vectors/witness.json with the reference implementation (packages/node, after `tsc -b`):
// stage witnesses (node/ponw.md §2) as the encoder writes them, byte strings every decoder must refuse, stage
// pseudo-gradient hashes and codec tuples. specs/node/python/ponw.py re-derives every byte of it from node/ponw.md.
//   node specs/node/vectors/gen-witness.mjs
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeWitness, encodeWitness } from '../../../packages/node/dist/src/ponw/stage-work.js'
import { codecTuple, stagePseudoGradientHash } from '../../../packages/node/dist/src/ponw/stage-verifier.js'
import { resolveCodec } from '../../../packages/diloco/dist/src/index.js'
import { describeWitness } from './witness-json.mjs'

const hex = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const f32 = (xs) => Float32Array.from(xs)
const bytes = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) & 0xff)

// ---- witnesses ----
const state = (step, names, scale) => {
  const m = (k) => new Map(names.map((n, i) => [n, f32(Array.from({ length: 3 + i }, (_, t) => scale * k * (t - 1.25 + i) / 7))]))
  return { step, parameters: m(1), m: m(0.01), v: m(0.0001) }
}
const record = (slot, payload) => ({
  group: `devnet/slot-${slot}`,
  span: `slot-${slot}`,
  round: 3,
  baseHash: 'ab'.repeat(32),
  leader: '12D3KooWLeaderLeaderLeaderLeaderLeaderLeaderLeader',
  commit: bytes(19, slot),
  aggregator: 'nnm-trimmed-mean',
  contributions: [
    { sender: '12D3KooWSenderA', payloadHash: createHash('sha256').update(payload).digest('hex'), dataShards: ['5d0aee64', '7b1be399'], innerSteps: 4, tokens: 512, accepted: true, distance: 0.05830943267393943 },
    { sender: '12D3KooWSenderB', payloadHash: 'cd'.repeat(32), dataShards: [], innerSteps: 4, tokens: 512, accepted: false, distance: 33.297600554099 }
  ],
  resultHash: 'ef'.repeat(32)
})
const payloadA = bytes(24, 1)
const payloadB = bytes(10, 2)
const witnesses = [
  ['checkpoint 0 of a blocks stage (one executor, two inner steps, evidence of two slots)', {
    start: 1,
    end: 3,
    states: [state(8, ['blocks.0.attn.wq', 'blocks.0.ffn.w1', 'blocks.1.norm'], 1)],
    opsFrom: 8,
    ops: [[
      [{ kind: 'zero' }, { kind: 'backward', feeds: { hidden: { type: 'float32', dims: [1, 2, 2], data: f32([0.5, -1.5, 1e-7, 3e21]) }, grad: { type: 'float32', dims: [1, 2, 2], data: f32([-0, 2, 1 / 3, -7.25]) } } }, { kind: 'step', gradNorm: 0.1 }],
      [{ kind: 'zero' }, { kind: 'backward', feeds: { hidden: { type: 'float32', dims: [1, 1, 2], data: f32([4, 5]) } } }, { kind: 'step' }]
    ]],
    evidence: [
      { slot: 1, record: record(1, payloadA), payloads: new Map([[createHash('sha256').update(payloadA).digest('hex'), payloadA], ['cd'.repeat(32), payloadB]]) },
      { slot: 2, record: record(2, payloadB), payloads: new Map() }
    ],
    payloads: []
  }],
  ['checkpoint 0 of a whole-model stage (embed, blocks, head; int64 feeds)', {
    start: 0,
    end: 4,
    states: [state(0, ['embed.weight'], 2), state(0, ['blocks.0.attn.wq', 'blocks.1.attn.wq'], 3), state(0, ['head.norm', 'head.weight'], 4)],
    opsFrom: 0,
    ops: [
      [[{ kind: 'backward', feeds: { input_ids: { type: 'int64', dims: [1, 3], data: BigInt64Array.from([0n, 255n, 9007199254740993n]) } } }, { kind: 'step', gradNorm: 12.5 }]],
      [[{ kind: 'backward', feeds: { grad: { type: 'float32', dims: [1, 3, 2], data: f32([1, 2, 3, 4, 5, 6]) } } }, { kind: 'step', gradNorm: 12.5 },
        // numbers at the edges of the written form (plain / exponent, integral above 2^53)
        ...[1e-7, 0.000001, 0.0000123, 1e21, 1.5e21, 123456789012345680000, 2 ** 53 + 2, 5e-324, 1.7976931348623157e308, 0.1 + 0.2].map(g => ({ kind: 'step', gradNorm: g }))]],
      [[{ kind: 'backward', feeds: { targets: { type: 'int64', dims: [1, 3], data: BigInt64Array.from([-1n, 1n, 2n]) }, hidden: { type: 'float32', dims: [0, 3, 2], data: f32([]) } } }, { kind: 'step', gradNorm: 0 }]]
    ],
    evidence: [],
    payloads: []
  }],
  ['the final checkpoint (state after the round, the published payloads)', {
    start: 2,
    end: 4,
    states: [state(10, ['blocks.1.attn.wq'], -1), state(10, ['head.weight'], 5)],
    opsFrom: 10,
    ops: [],
    evidence: [],
    payloads: [
      { slot: 2, codec: codecTuple(resolveCodec({ codec: 'int8', blockSize: 64 })), bytes: payloadA },
      { slot: 3, codec: codecTuple(resolveCodec('fp16')), bytes: payloadB }
    ]
  }],
  // (1.1.0) tied embeddings: a vocabulary of 3 rows of width 2
  ['(1.1.0) checkpoint 0 of a tied Validator\'s head (replica moments; take, SET_TIED set and seed, a replica step after the step)', {
    start: 3,
    end: 4,
    states: [{ ...state(6, ['embed.weight', 'final_norm.weight'], 1), replica: { m: new Map([['embed.weight', f32([0.5, -0.25, 0, 1e-7, 2, 3])]]), v: new Map([['embed.weight', f32([1e-8, 0, 0.125, 4, 5, 6])]]) } }],
    opsFrom: 6,
    ops: [[
      [{ kind: 'backward', feeds: { hidden: { type: 'float32', dims: [1, 1, 2], data: f32([1, 2]) } } }, { kind: 'take' }, { kind: 'step', gradNorm: 0.75 },
        { kind: 'tiedStep', name: 'embed.weight', gradIds: Int32Array.of(0, 2), gradRows: f32([0.5, 1.5, -2, 3]), ids: Int32Array.of(1), rows: f32([0.25, -0.75]), adamw: { lr: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 7, gradScale: 0.8333333333333334 } }],
      [{ kind: 'take' }, { kind: 'set', parameters: new Map([['embed.weight', f32([1, 2, 3, 4, 5, 6])]]) }, { kind: 'seed', name: 'embed.weight', m: f32([0, 0, 0, 0, 0, 1]), v: f32([0, 0, 0, 0, 1, 0]) }, { kind: 'step', gradNorm: null },
        { kind: 'tiedStep', name: 'embed.weight', gradIds: new Int32Array(0), gradRows: f32([]), ids: new Int32Array(0), rows: f32([]), adamw: { lr: 1e-7, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 8, gradScale: 1 } }]
    ]],
    evidence: [],
    payloads: []
  }],
  ['(1.1.0) checkpoint 0 of a tied Driver\'s embedding (add, rows, GET_TIED set and moments, a step that skips the owned matrix)', {
    start: 0,
    end: 1,
    states: [state(2, ['embed.weight'], 3)],
    opsFrom: 2,
    ops: [[
      [{ kind: 'backward', feeds: { input_ids: { type: 'int64', dims: [1, 2], data: BigInt64Array.from([2n, 0n]) } } }, { kind: 'add', gradients: new Map([['embed.weight', f32([6, 5, 4, 3, 2, 1])]]) }, { kind: 'step', gradNorm: 2 }],
      [{ kind: 'set', parameters: new Map([['embed.weight', f32([1, 1, 2, 2, 3, 3])]]) }, { kind: 'moments', m: new Map([['embed.weight', f32([0, 1, 0, 1, 0, 1])]]), v: new Map([['embed.weight', f32([1, 0, 1, 0, 1, 0])]]) },
        { kind: 'rows', name: 'embed.weight', ids: Int32Array.of(0, 2), data: f32([9, 8, 7, 6]) }, { kind: 'step', gradNorm: 3, skip: ['embed.weight'] }]
    ]],
    evidence: [],
    payloads: []
  }]
]
// JSON with every object's keys sorted: the decoded witness equals the encoded one whatever order its maps had
const canon = (v) => JSON.stringify(v, (_, x) => x != null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) : x)
const encoded = witnesses.map(([name, w]) => {
  const b = encodeWitness(w)
  const back = decodeWitness(b)
  if (back == null || canon(describeWitness(back)) !== canon(describeWitness(w))) throw new Error(`${name}: does not decode to itself`)
  return { name, witness: describeWitness(w), bytes: hex(b), commitment: createHash('sha256').update(b).digest('hex') }
})

// ---- byte strings every decoder must refuse (and a few it must accept) ----
const te = new TextEncoder()
function frame (header, blob = new Uint8Array(0), headLen) {
  const h = te.encode(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + h.length + blob.length)
  out.set(te.encode('NSW1'))
  new DataView(out.buffer).setUint32(4, headLen ?? h.length)
  out.set(h, 8)
  out.set(blob, 8 + h.length)
  return out
}
const base = { start: 0, end: 1, opsFrom: 0, states: [], ops: [], evidence: [], payloads: [] }
const blob16 = bytes(16, 3)
const feedOp = (t) => ({ ...base, ops: [[[{ kind: 'backward', feeds: { x: t } }]]] })
const stateOf = (entries) => ({ ...base, states: [{ step: 0, parameters: entries, m: [], v: [] }] })
const evidenceOf = (e) => ({ ...base, evidence: [{ slot: 0, record: { group: 'g', span: 's', round: 0, baseHash: '', leader: 'l', commit: [0, 0], aggregator: 'mean', contributions: [], resultHash: '', ...e }, payloads: [] }] })
const cases = [
  ['empty', new Uint8Array(0), true],
  ['7 bytes', te.encode('NSW1\0\0\0'), true],
  ['another magic', (() => { const b = frame(base); b[3] = 0x32; return b })(), true],
  ['header length past the end', frame(base, blob16, 1000), true],
  ['header length over 16 MiB', frame(base, blob16, 16 * 1024 * 1024 + 1), true],
  ['header not UTF-8 (a 0xff byte inside a string)', (() => { const b = frame('{"start":0,"end":1,"x":"zz"}'); b[b.length - 4] = 0xff; return b })(), true],
  ['header not JSON', frame('{"start":0,', blob16), true],
  ['header a JSON array', frame('[0, 1]'), true],
  ['end not above start', frame({ ...base, start: 3, end: 3 }), true],
  ['start above 2^20', frame({ ...base, start: 1048577, end: 1048578 }), true],
  ['start a fraction', frame({ ...base, start: 0.5 }), true],
  ['start true', frame({ ...base, start: true }), true],
  ['opsFrom negative', frame({ ...base, opsFrom: -1 }), true],
  ['opsFrom 2^53 (not a safe integer)', frame('{"start":0,"end":1,"opsFrom":9007199254740992,"states":[],"ops":[],"evidence":[],"payloads":[]}'), true],
  ['states missing', frame({ ...base, states: undefined }), true],
  ['4 executors (states)', frame({ ...base, states: Array.from({ length: 4 }, () => ({ step: 0, parameters: [], m: [], v: [] })) }), true],
  ['4 executors (ops)', frame({ ...base, ops: [[], [], [], []] }), true],
  ['1001 steps', frame({ ...base, ops: [Array.from({ length: 1001 }, () => [])] }), true],
  ['257 ops in a step', frame({ ...base, ops: [[Array.from({ length: 257 }, () => ({ kind: 'zero' }))]] }), true],
  ['an unknown op kind', frame({ ...base, ops: [[[{ kind: 'reset' }]]] }), true],
  ['a negative gradNorm', frame({ ...base, ops: [[[{ kind: 'step', gradNorm: -1 }]]] }), true],
  ['a gradNorm given as a string', frame({ ...base, ops: [[[{ kind: 'step', gradNorm: '1' }]]] }), true],
  ['a tensor past the blob', frame(stateOf([['w', [8, 12]]]), blob16), true],
  ['a tensor at the blob end + 1', frame(stateOf([['w', [17, 0]]]), blob16), true],
  ['a float32 tensor of 6 bytes', frame(stateOf([['w', [0, 6]]]), blob16), true],
  ['a tensor ref of one number', frame(stateOf([['w', [0]]]), blob16), true],
  ['a duplicate tensor name', frame(stateOf([['w', [0, 4]], ['w', [4, 4]]]), blob16), true],
  ['a tensor name of 257 UTF-16 code units', frame(stateOf([['\u00e9'.repeat(257), [0, 4]]]), blob16), true],
  ['4097 tensors in one map', frame(stateOf(Array.from({ length: 4097 }, (_, i) => [`w${i}`, [0, 0]])), blob16), true],
  ['a feed whose size does not match its dims', frame(feedOp({ type: 'float32', dims: [1, 3], at: [0, 8] }), blob16), true],
  ['an int64 feed of 4-byte elements', frame(feedOp({ type: 'int64', dims: [2], at: [0, 8] }), blob16), true],
  ['a feed of another type', frame(feedOp({ type: 'float16', dims: [2], at: [0, 4] }), blob16), true],
  ['a feed dimension above 2^24', frame(feedOp({ type: 'float32', dims: [16777217, 0], at: [0, 0] }), blob16), true],
  ['a feed of 9 dimensions', frame(feedOp({ type: 'float32', dims: [1, 1, 1, 1, 1, 1, 1, 1, 1], at: [0, 4] }), blob16), true],
  ['9 feeds in one backward', frame({ ...base, ops: [[[{ kind: 'backward', feeds: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, { type: 'float32', dims: [1], at: [0, 4] }])) }]]] }, blob16), true],
  ['feeds given as an array', frame({ ...base, ops: [[[{ kind: 'backward', feeds: [] }]]] }), true],
  ['a contribution without accepted', frame(evidenceOf({ contributions: [{ sender: 'a', payloadHash: '', dataShards: [], innerSteps: 0, tokens: 0, distance: 1 }] })), true],
  ['a contribution distance as a string', frame(evidenceOf({ contributions: [{ sender: 'a', payloadHash: '', dataShards: [], innerSteps: 0, tokens: 0, accepted: true, distance: '1' }] })), true],
  ['a base hash of 65 characters', frame(evidenceOf({ baseHash: 'a'.repeat(65) })), true],
  ['a data shard name of 129 characters', frame(evidenceOf({ contributions: [{ sender: 'a', payloadHash: '', dataShards: ['s'.repeat(129)], innerSteps: 0, tokens: 0, accepted: true, distance: 0 }] })), true],
  ['65 evidence entries', frame({ ...base, evidence: Array.from({ length: 65 }, () => evidenceOf({}).evidence[0]) }), true],
  ['a payload codec above 16', frame({ ...base, payloads: [{ slot: 0, codec: { codec: 17, blockSize: 0, chunk: 0, topK: 0, bits: 0 }, at: [0, 0] }] }), true],
  ['a payload codec bits above 32', frame({ ...base, payloads: [{ slot: 0, codec: { codec: 4, blockSize: 0, chunk: 0, topK: 0, bits: 33 }, at: [0, 0] }] }), true],
  ['a payload slot above 2^20', frame({ ...base, payloads: [{ slot: 1048577, codec: { codec: 1, blockSize: 0, chunk: 0, topK: 0, bits: 0 }, at: [0, 0] }] }), true],
  // (1.1.0) tied ops: row ids int32 in [0, 2^24], rows fitting their ids, AdamW numbers, a step's skip, a replica
  ['(1.1.0) rows ids of 6 bytes', frame({ ...base, ops: [[[{ kind: 'rows', name: 'embed.weight', ids: [0, 6], data: [0, 0] }]]] }, blob16), true],
  ['(1.1.0) a negative row id', frame({ ...base, ops: [[[{ kind: 'rows', name: 'embed.weight', ids: [0, 4], data: [0, 0] }]]] }, Uint8Array.of(255, 255, 255, 255)), true],
  ['(1.1.0) a row id above 2^24', frame({ ...base, ops: [[[{ kind: 'rows', name: 'embed.weight', ids: [0, 4], data: [0, 0] }]]] }, Uint8Array.of(1, 0, 0, 1)), true],
  ['(1.1.0) rows whose data is not a multiple of the ids', frame({ ...base, ops: [[[{ kind: 'rows', name: 'embed.weight', ids: [0, 8], data: [8, 4] }]]] }, blob16.map(() => 0)), true],
  ['(1.1.0) rows without ids and with data', frame({ ...base, ops: [[[{ kind: 'rows', name: 'embed.weight', ids: [0, 0], data: [0, 4] }]]] }, blob16), true],
  ['(1.1.0) a tiedStep without adamw', frame({ ...base, ops: [[[{ kind: 'tiedStep', name: 'embed.weight', gradIds: [0, 0], gradRows: [0, 0], ids: [0, 0], rows: [0, 0] }]]] }), true],
  ['(1.1.0) a tiedStep at t 0', frame({ ...base, ops: [[[{ kind: 'tiedStep', name: 'embed.weight', gradIds: [0, 0], gradRows: [0, 0], ids: [0, 0], rows: [0, 0], adamw: { lr: 1, beta1: 0.9, beta2: 0.9, eps: 0, weightDecay: 0, t: 0, gradScale: 1 } }]]] }), true],
  ['(1.1.0) a tiedStep with a negative gradScale', frame({ ...base, ops: [[[{ kind: 'tiedStep', name: 'embed.weight', gradIds: [0, 0], gradRows: [0, 0], ids: [0, 0], rows: [0, 0], adamw: { lr: 1, beta1: 0.9, beta2: 0.9, eps: 0, weightDecay: 0, t: 1, gradScale: -1 } }]]] }), true],
  ['(1.1.0) a tiedStep lr given as a string', frame({ ...base, ops: [[[{ kind: 'tiedStep', name: 'embed.weight', gradIds: [0, 0], gradRows: [0, 0], ids: [0, 0], rows: [0, 0], adamw: { lr: '1', beta1: 0.9, beta2: 0.9, eps: 0, weightDecay: 0, t: 1, gradScale: 1 } }]]] }), true],
  ['(1.1.0) a step skip of 9 names', frame({ ...base, ops: [[[{ kind: 'step', gradNorm: 1, skip: Array.from({ length: 9 }, (_, i) => `p${i}`) }]]] }), true],
  ['(1.1.0) a step skip that is a string', frame({ ...base, ops: [[[{ kind: 'step', gradNorm: 1, skip: 'embed.weight' }]]] }), true],
  ['(1.1.0) a replica that is null', frame({ ...base, states: [{ step: 0, parameters: [], m: [], v: [], replica: null }] }), true],
  ['(1.1.0) a replica without v', frame({ ...base, states: [{ step: 0, parameters: [], m: [], v: [], replica: { m: [] } }] }), true],
  ['(1.1.0) a seed whose m is 6 bytes', frame({ ...base, ops: [[[{ kind: 'seed', name: 'embed.weight', m: [0, 6], v: [0, 4] }]]] }, blob16), true],
  ['(1.1.0) an add whose gradients are not a map', frame({ ...base, ops: [[[{ kind: 'add', gradients: { 'embed.weight': [0, 4] } }]]] }, blob16), true],
  ['(1.1.0) accepted: an empty skip (as if absent), a take with an unknown key, an empty replica', frame({ ...base, states: [{ step: 0, parameters: [], m: [], v: [], replica: { m: [], v: [] } }], ops: [[[{ kind: 'take', x: 1 }, { kind: 'step', gradNorm: 1, skip: [] }]]] }), false],
  // accepted: formatting, key order, unknown keys, integral floats, empty refs, trailing blob bytes
  ['accepted: whitespace, other key order, unknown keys', frame('{ "payloads": [], "evidence": [], "ops": [ ], "states": [], "opsFrom": 0, "end": 1, "start": 0, "note": "x" }', blob16), false],
  ['accepted: integers written 1.0 and 1e0', frame('{"start":0,"end":1e0,"opsFrom":2.0,"states":[{"step":1.0,"parameters":[["w",[0.0,4]]],"m":[],"v":[]}],"ops":[],"evidence":[],"payloads":[]}', blob16), false],
  ['accepted: a UTF-8 byte-order mark before the header', frame('\ufeff' + JSON.stringify(base)), false],
  ['a NaN literal in the header', frame('{"start":0,"end":1,"opsFrom":NaN,"states":[],"ops":[],"evidence":[],"payloads":[]}'), true],
  ['accepted: a step without gradNorm, a zero-length tensor at the blob end', frame({ ...base, states: [{ step: 0, parameters: [['w', [16, 0]]], m: [], v: [] }], ops: [[[{ kind: 'step' }]]] }, blob16), false]
]
const refusals = cases.map(([name, b, refused]) => {
  const got = decodeWitness(b)
  if ((got == null) !== refused) throw new Error(`${name}: the reference ${got == null ? 'refuses' : 'accepts'} it`)
  return { name, bytes: hex(b), refused, ...(refused ? {} : { witness: describeWitness(got) }) }
})

// ---- stage pseudo-gradient hashes and codec tuples ----
const h = (s) => createHash('sha256').update(s).digest()
// an announce's codec fields (diloco §2; the parameters a codec does not use are ignored there) → the tuple hashed
const NAMES = { 1: 'fp32', 2: 'fp16', 3: 'int8', 4: 'sparse' }
const announced = [
  { codec: 1, blockSize: 0, chunk: 0, topK: 0, bits: 0 },
  { codec: 1, blockSize: 64, chunk: 9, topK: 3, bits: 2 },
  { codec: 2, blockSize: 0, chunk: 0, topK: 0, bits: 7 },
  { codec: 3, blockSize: 64, chunk: 0, topK: 0, bits: 0 },
  { codec: 3, blockSize: 65536, chunk: 4096, topK: 64, bits: 2 },
  { codec: 4, blockSize: 0, chunk: 4096, topK: 64, bits: 2 },
  { codec: 4, blockSize: 256, chunk: 128, topK: 8, bits: 4 }
]
const tuples = announced.map(a => ({ announced: a, tuple: codecTuple(resolveCodec({ ...a, codec: NAMES[a.codec] })) }))
const hashCases = [
  ['one slot, int8', [{ slot: 5, payloadHash: h('a'), codec: tuples[3].tuple }]],
  ['three slots given out of order (hashed in ascending slot order)', [{ slot: 9, payloadHash: h('c'), codec: tuples[0].tuple }, { slot: 7, payloadHash: h('a'), codec: tuples[2].tuple }, { slot: 8, payloadHash: h('b'), codec: tuples[6].tuple }]],
  ['no slots', []]
].map(([name, entries]) => ({ name, entries: entries.map(e => ({ slot: e.slot, payloadHash: hex(e.payloadHash), codec: e.codec })), hash: hex(stagePseudoGradientHash(entries)) }))

writeFileSync(join(process.env.NEUROSHARD_SPECS_DIR ?? new URL('../..', import.meta.url).pathname, 'node', 'vectors', 'witness.json'), JSON.stringify({
  description: 'node/ponw.md §2: stage witnesses as the reference encoder writes them (witness: the description, float32 tensors as bit patterns, int64 as decimal strings, blobs as hex; bytes: the encoding; commitment: its sha256), byte strings every decoder must refuse (refused: true) or accept (with what they decode to), stage pseudo-gradient hashes and the codec tuples of announced codecs. Written by gen-witness.mjs with packages/node; specs/node/python/ponw.py re-derives it from the text.',
  witnesses: encoded,
  decoding: refusals,
  codecTuples: tuples,
  stagePseudoGradientHashes: hashCases
}, null, 2) + '\n')
console.log(`wrote witness.json: ${encoded.length} witnesses, ${refusals.length} decoding cases, ${tuples.length} codec tuples, ${hashCases.length} hashes`)

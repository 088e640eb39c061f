// Writes specs/diloco/vectors/messages.json: signed announces and commits (README §2, §3, §6 step 3), the
// aggregation's accept/reject (§7) and round records (§7, verifyRoundRecord), built with the real @neuroshard/diloco
// code from fixed Ed25519 keys (deterministic signatures). The expected outcome of every case is written here by hand
// from the spec text (aggregate values: the definitions of §7 in binary64, rounded to float32); the script checks each
// case with the TypeScript implementation and stops (exit 1, nothing written) if it disagrees.
//
//   npx -y pnpm@10 exec tsc -b packages/diloco && node specs/diloco/vectors/gen-messages.mjs
import { writeFileSync } from 'node:fs'
import * as D from '../../../packages/diloco/dist/src/index.js'
import { generateKeyPairFromSeed } from '../../../packages/diloco/node_modules/@libp2p/crypto/dist/src/keys/index.js'
import { peerIdFromPrivateKey } from '../../../packages/diloco/node_modules/@libp2p/peer-id/dist/src/index.js'

const hex = (b) => Buffer.from(b).toString('hex')
const f32 = Math.fround
const bits = (xs) => Array.from(new Uint32Array(Float32Array.from(xs).buffer))
const fromBits = (b) => new Float32Array(Uint32Array.from(b).buffer)

const seeds = [1, 2, 3, 4].map(k => Uint8Array.from({ length: 32 }, (_, i) => (k * 37 + i) & 0xff))
const keys = await Promise.all(seeds.map(s => generateKeyPairFromSeed('Ed25519', s)))
const ids = keys.map(k => peerIdFromPrivateKey(k))
const idBytes = ids.map(p => p.toMultihash().bytes)
const LEADER = 3
const GROUP = 'devnet/full'
const SPAN = 'full'
const ROUND = 5
const BASE = Buffer.alloc(32, 0xab)
const N = 8

// three senders' fp32 pseudo-gradients: two close, one far (the median rejects it, the mean accepts everyone)
const inputs = [
  [0.5, -0.25, 1, 0.125, -1, 2, 0.75, -0.5],
  [0.625, -0.25, 1.125, 0, -1, 2.25, 0.75, -0.375],
  [40, 40, -40, 40, -40, 40, 40, -40]
].map(x => Float32Array.from(x))
const payloads = inputs.map(x => new Uint8Array(x.buffer.slice(0)))

function announceFields (i, over = {}) {
  return {
    group: GROUP, span: SPAN, round: ROUND, sender: idBytes[i], baseHash: BASE, codec: D.PayloadCodec.FP32, blockSize: 0, chunk: 0, topK: 0, bits: 0,
    elements: N, payloadSize: 4 * N, payloadHash: D.sha256(payloads[i]), gossipChunk: 0, dataShards: [`shard-${i}a`, `shard-${i}b`],
    innerSteps: 50 + i, tokens: 1000 * (i + 1), timestampMs: 1_800_000_000_000 + i, ...over
  }
}
const sign = async (domain, body, key) => D.Signed.encode(await D.signBody(domain, body, key))
const signAnnounce = async (i, over = {}, { key = keys[i], domain = D.ANNOUNCE_DOMAIN } = {}) => sign(domain, D.Announce.encode(announceFields(i, over)), key)
const flipLast = (b) => { const c = Uint8Array.from(b); c[c.length - 1] ^= 1; return c }

let disagreements = 0
function agree (what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    disagreements++
    console.error(`the TypeScript implementation disagrees on "${what}": ${JSON.stringify(got)} (spec: ${JSON.stringify(want)})`)
  }
}
async function outcome (fn) {
  try { return { ok: await fn() } } catch (err) { return { error: err.name } }
}

// ---- §2/§3 announces: [name, Signed bytes, expected error or null] ----
const valid = await Promise.all([0, 1, 2].map(i => signAnnounce(i)))
const announceCases = [
  ['a signed fp32 announce', valid[0], null],
  ['a signed int8 announce (block 4: payload 4·⌈8/4⌉ + 8 bytes)', await signAnnounce(0, { codec: D.PayloadCodec.INT8, blockSize: 4, payloadSize: 16 }), null],
  ['a signed sparse announce ((C, k, b) = (4, 2, 2): 2 × (4 + 4 + 1) bytes)', await signAnnounce(0, { codec: D.PayloadCodec.SPARSE, chunk: 4, topK: 2, bits: 2, payloadSize: 18 }), null],
  ['64 data shards', await signAnnounce(0, { dataShards: Array.from({ length: 64 }, (_, k) => `s${k}`) }), null],
  ['signature with its last byte flipped', await (async () => { const s = D.Signed.decode(valid[0]); return D.Signed.encode({ ...s, signature: flipLast(s.signature) }) })(), 'InvalidSignatureError'],
  ['signed over the commit domain', await signAnnounce(0, {}, { domain: D.COMMIT_DOMAIN }), 'InvalidSignatureError'],
  ['sender names another peer than the signer', await signAnnounce(0, { sender: idBytes[1] }), 'InvalidSignatureError'],
  ['public_key is not a libp2p public key', await (async () => { const s = D.Signed.decode(valid[0]); return D.Signed.encode({ ...s, publicKey: Uint8Array.of(8, 1, 18, 2, 1, 2) }) })(), 'InvalidSignatureError'],
  ['body over 16 384 bytes', await sign(D.ANNOUNCE_DOMAIN, new Uint8Array(16_385), keys[0]), 'OversizedPseudoGradientError'],
  ['body does not decode', await sign(D.ANNOUNCE_DOMAIN, Uint8Array.of(0x0a, 0x09, 0x61), keys[0]), 'MalformedPseudoGradientError'],
  ['order: body does not decode and the signature is wrong (decoding first)', await (async () => { const s = D.Signed.decode(await sign(D.ANNOUNCE_DOMAIN, Uint8Array.of(0x0a, 0x09, 0x61), keys[0])); return D.Signed.encode({ ...s, signature: flipLast(s.signature) }) })(), 'MalformedPseudoGradientError'],
  ['65 data shards', await signAnnounce(0, { dataShards: Array.from({ length: 65 }, (_, k) => `s${k}`) }), 'MalformedPseudoGradientError'],
  ['base_hash of 31 bytes', await signAnnounce(0, { baseHash: Buffer.alloc(31, 0xab) }), 'MalformedPseudoGradientError'],
  ['payload_hash of 33 bytes', await signAnnounce(0, { payloadHash: Buffer.alloc(33, 1) }), 'MalformedPseudoGradientError'],
  ['group of 129 bytes', await signAnnounce(0, { group: 'g'.repeat(129) }), 'MalformedPseudoGradientError'],
  ['span of 129 bytes', await signAnnounce(0, { span: 's'.repeat(129) }), 'MalformedPseudoGradientError'],
  ['a data shard id of 129 bytes', await signAnnounce(0, { dataShards: ['d'.repeat(129)] }), 'MalformedPseudoGradientError'],
  ['codec CODEC_UNSPECIFIED', await signAnnounce(0, { codec: D.PayloadCodec.CODEC_UNSPECIFIED }), 'MalformedPseudoGradientError'],
  ['int8 with block_size 0', await signAnnounce(0, { codec: D.PayloadCodec.INT8, blockSize: 0, payloadSize: 8 }), 'MalformedPseudoGradientError'],
  ['sparse with top_k above chunk', await signAnnounce(0, { codec: D.PayloadCodec.SPARSE, chunk: 4, topK: 5, bits: 2, payloadSize: 18 }), 'MalformedPseudoGradientError'],
  ['sparse with 9 bits', await signAnnounce(0, { codec: D.PayloadCodec.SPARSE, chunk: 4, topK: 2, bits: 9, payloadSize: 18 }), 'MalformedPseudoGradientError'],
  ['payload_size one byte more than the fp32 size', await signAnnounce(0, { payloadSize: 4 * N + 1 }), 'MalformedPseudoGradientError'],
  ['elements 0', await signAnnounce(0, { elements: 0, payloadSize: 0 }), 'MalformedPseudoGradientError'],
  ['order: sender names another peer and the codec is unknown (signer first)', await signAnnounce(0, { sender: idBytes[1], codec: D.PayloadCodec.CODEC_UNSPECIFIED }), 'InvalidSignatureError']
]
const announces = []
for (const [name, signed, error] of announceCases) {
  const want = error ? { error } : { ok: { sender: ids[0].toString(), payloadHash: hex(D.sha256(payloads[0])) } }
  const got = await outcome(async () => { const o = await D.openAnnounce(D.Signed.decode(signed)); return { sender: o.sender, payloadHash: o.payloadHashHex } })
  agree(name, got, want)
  announces.push({ name, signed: hex(signed), ...(error ? { error } : want.ok) })
}

// ---- §6 step 3: the receiver's round checks, in order ----
const expect = { group: GROUP, span: SPAN, elements: N, round: ROUND, baseHash: hex(BASE), maxPayloadBytes: 4 * N }
const checkCases = [
  ['an announce of the round being collected', {}, {}, null],
  ['another group', { group: 'devnet/other' }, {}, 'WrongSpanError'],
  ['another span', { span: 'blocks:0-2' }, {}, 'WrongSpanError'],
  ['another element count', { elements: N + 1, payloadSize: 4 * (N + 1) }, {}, 'WrongSpanError'],
  ['payload over the receiver\'s limit', {}, { maxPayloadBytes: 4 * N - 1 }, 'OversizedPseudoGradientError'],
  ['the previous round', { round: ROUND - 1 }, {}, 'WrongRoundError'],
  ['the next round', { round: ROUND + 1 }, {}, 'WrongRoundError'],
  ['another base hash', { baseHash: Buffer.alloc(32, 0xac) }, {}, 'BaseHashMismatchError'],
  ['order: another span and another round (span first)', { span: 'blocks:0-2', round: ROUND + 1 }, {}, 'WrongSpanError'],
  ['order: over the limit and another round (size first)', { round: ROUND + 1 }, { maxPayloadBytes: 4 * N - 1 }, 'OversizedPseudoGradientError'],
  ['order: another round and another base hash (round first)', { round: ROUND + 1, baseHash: Buffer.alloc(32, 0xac) }, {}, 'WrongRoundError']
]
const checks = []
for (const [name, over, exOver, error] of checkCases) {
  const signed = await signAnnounce(0, over)
  const ex = { ...expect, ...exOver }
  const got = await outcome(async () => { const o = await D.openAnnounce(D.Signed.decode(signed)); D.checkAnnounce(o.announce, { ...ex, baseHash: Buffer.from(ex.baseHash, 'hex') }); return true })
  agree(name, got, error ? { error } : { ok: true })
  checks.push({ name, signed: hex(signed), expect: ex, ...(error ? { error } : {}) })
}

// ---- §6 step 6 commits ----
const order = [0, 1, 2].sort((a, b) => Buffer.compare(idBytes[a], idBytes[b]))
const commitFields = (over = {}) => ({ group: GROUP, span: SPAN, round: ROUND, leader: idBytes[LEADER], baseHash: BASE, announces: order.map(i => D.Signed.decode(valid[i])), timestampMs: 1_800_000_000_100, ...over })
const signCommit = async (over = {}, { key = keys[LEADER], domain = D.COMMIT_DOMAIN } = {}) => sign(domain, D.Commit.encode(commitFields(over)), key)
const validCommit = await signCommit()
const commitCases = [
  ['a commit of three announces in byte-wise sender order', validCommit, null],
  ['a commit of one announce', await signCommit({ announces: [D.Signed.decode(valid[0])] }), null],
  ['signature with its last byte flipped', D.Signed.encode({ ...D.Signed.decode(validCommit), signature: flipLast(D.Signed.decode(validCommit).signature) }), 'InvalidSignatureError'],
  ['signed over the announce domain', await signCommit({}, { domain: D.ANNOUNCE_DOMAIN }), 'InvalidSignatureError'],
  ['leader names another peer than the signer', await signCommit({ leader: idBytes[0] }), 'InvalidSignatureError'],
  ['body does not decode', await sign(D.COMMIT_DOMAIN, Uint8Array.of(0x0a, 0x09, 0x61), keys[LEADER]), 'InvalidCommitError'],
  ['body over 1 048 576 bytes', await sign(D.COMMIT_DOMAIN, new Uint8Array(1_048_577), keys[LEADER]), 'OversizedPseudoGradientError'],
  ['no announces', await signCommit({ announces: [] }), 'InvalidCommitError'],
  ['announces not in byte-wise sender order', await signCommit({ announces: [...order].reverse().map(i => D.Signed.decode(valid[i])) }), 'InvalidCommitError'],
  ['one sender twice', await signCommit({ announces: [order[0], order[0]].map(i => D.Signed.decode(valid[i])) }), 'InvalidCommitError'],
  ['an announce of another round', await signCommit({ round: ROUND + 1 }), 'InvalidCommitError'],
  ['an announce of another base hash', await signCommit({ baseHash: Buffer.alloc(32, 0xac) }), 'InvalidCommitError'],
  ['an announce of another span', await signCommit({ span: 'blocks:0-2' }), 'InvalidCommitError'],
  ['an announce whose signature does not verify', await signCommit({ announces: [{ ...D.Signed.decode(valid[0]), signature: flipLast(D.Signed.decode(valid[0]).signature) }] }), 'InvalidSignatureError'],
  ['an announce that is malformed (payload_size wrong)', await signCommit({ announces: [D.Signed.decode(await signAnnounce(0, { payloadSize: 4 * N + 1 }))] }), 'MalformedPseudoGradientError']
]
const commits = []
for (const [name, signed, error] of commitCases) {
  const senders = name === 'a commit of one announce' ? [ids[0].toString()] : order.map(i => ids[i].toString())
  const want = error ? { error } : { ok: { leader: ids[LEADER].toString(), senders } }
  const got = await outcome(async () => { const o = await D.openCommit(D.Signed.decode(signed)); return { leader: o.leader, senders: o.announces.map(a => a.sender) } })
  agree(name, got, want)
  commits.push({ name, signed: hex(signed), ...(error ? { error } : want.ok) })
}

// ---- §7 aggregation: accept/reject, distances, value (spec definitions in binary64, then float32) ----
const mean = (xs) => Float32Array.from(xs[0], (_, t) => xs.reduce((s, x) => s + x[t], 0) / xs.length)
const median = (xs) => Float32Array.from(xs[0], (_, t) => { const v = xs.map(x => x[t]).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2 })
const trimmed = (xs, f) => Float32Array.from(xs[0], (_, t) => { const v = xs.map(x => x[t]).sort((a, b) => a - b).slice(f, xs.length - f); return v.reduce((s, y) => s + y, 0) / v.length })
const dist = (x, g) => Math.sqrt(x.reduce((s, y, t) => s + (y - g[t]) ** 2, 0))
const medianOf = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
function byDistance (xs, g, factor = 2.5) {
  const d = xs.map(x => dist(x, g))
  const m = medianOf(d)
  return { value: g, accepted: d.map(x => x <= factor * m), distances: d }
}
function multiKrum (xs) {
  const n = xs.length
  const f = Math.floor((n - 1) / 3)
  if (f === 0) return { value: mean(xs), accepted: xs.map(() => true) }
  if (n < 2 * f + 3) return byDistance(xs, trimmed(xs, f)) // 1.1.0: below 2f + 3 inputs, the trimmed mean
  const k = n - f - 2
  const scores = xs.map((x, i) => xs.map((y, j) => j === i ? Infinity : dist(x, y) ** 2).sort((a, b) => a - b).slice(0, k).reduce((s, v) => s + v, 0))
  const sel = scores.map((s, i) => i).sort((a, b) => scores[a] - scores[b] || a - b).slice(0, n - f)
  const value = mean(sel.sort((a, b) => a - b).map(i => xs[i]))
  return { value, accepted: xs.map((_, i) => sel.includes(i)) }
}
// seven inputs around one point and two far ones (f = 2 for n = 7), five around another with one far (f = 1)
const around = (c, n, seed) => Array.from({ length: n }, (_, i) => Float32Array.from({ length: 6 }, (_, t) => f32(c + 0.01 * (((i + 1) * (t + 3) * seed) % 17 - 8))))
const seven = [...around(1, 5, 7), Float32Array.from({ length: 6 }, () => 30), Float32Array.from({ length: 6 }, (_, t) => (t % 2 ? -25 : 25))]
const five = [...around(-2, 4, 5), Float32Array.from({ length: 6 }, (_, t) => 9 + t)]
const aggCases = [
  ['mean of three (every input accepted)', 'mean', inputs, { ...byDistance(inputs, mean(inputs)), accepted: [true, true, true] }],
  ['median of three (the far input rejected)', 'median', inputs, byDistance(inputs, median(inputs))],
  ['median of five (even/odd: odd)', 'median', five, byDistance(five, median(five))],
  ['median of four (mean of the middle two)', 'median', five.slice(1), byDistance(five.slice(1), median(five.slice(1)))],
  ['trimmed mean of seven (f = 2)', 'trimmed-mean', seven, byDistance(seven, trimmed(seven, 2))],
  ['trimmed mean of three (f = 0: the mean, every input accepted)', 'trimmed-mean', inputs, { ...byDistance(inputs, mean(inputs)), accepted: [true, true, true] }],
  ['multi-krum of seven (f = 2: the five closest selected)', 'multi-krum', seven, multiKrum(seven)],
  ['multi-krum of five (f = 1)', 'multi-krum', five, multiKrum(five)],
  ['multi-krum of four (n < 2f + 3: the trimmed mean with f = 1)', 'multi-krum', five.slice(1), multiKrum(five.slice(1))],
  ['multi-krum of three (f = 0: the mean)', 'multi-krum', inputs, { ...byDistance(inputs, mean(inputs)), accepted: [true, true, true] }]
]
// nnm-trimmed-mean and geometric-median (§7 gives their arithmetic): the values and accept/reject are what
// @neuroshard/robust-agg computes (through aggregateRound); specs/diloco/python/messages.py re-derives them from §7
const robustAgg = (xs, aggregator) => { const r = D.aggregateRound(xs.map(x => Float32Array.from(x)), aggregator); return { value: r.value, accepted: r.accepted } }
aggCases.push(
  ['nnm-trimmed-mean of seven (f = 2: each input mixed with its 5 nearest, then trimmed)', 'nnm-trimmed-mean', seven, robustAgg(seven, 'nnm-trimmed-mean')],
  ['nnm-trimmed-mean of five (f = 1)', 'nnm-trimmed-mean', five, robustAgg(five, 'nnm-trimmed-mean')],
  ['nnm-trimmed-mean of three (f = 0: the mean, every input accepted)', 'nnm-trimmed-mean', inputs, robustAgg(inputs, 'nnm-trimmed-mean')],
  ['geometric-median of seven (smoothed Weiszfeld)', 'geometric-median', seven, robustAgg(seven, 'geometric-median')],
  ['geometric-median of five', 'geometric-median', five, robustAgg(five, 'geometric-median')],
  ['geometric-median of four (even n: the median of the squared distances is the mean of the middle two)', 'geometric-median', five.slice(1), robustAgg(five.slice(1), 'geometric-median')],
  ['geometric-median of three', 'geometric-median', inputs, robustAgg(inputs, 'geometric-median')]
)
const aggregation = []
for (const [name, aggregator, xs, want] of aggCases) {
  const r = D.aggregateRound(xs.map(x => Float32Array.from(x)), aggregator)
  const close = Array.from(r.value).every((v, t) => Math.abs(v - want.value[t]) <= 1e-6 * Math.max(1, Math.abs(want.value[t])))
  agree(`${name}: accepted`, r.accepted, want.accepted)
  if (!close) agree(`${name}: value`, Array.from(r.value), Array.from(want.value))
  aggregation.push({ name, aggregator, inputs: xs.map(x => bits(x)), value: bits(want.value), accepted: want.accepted })
}

// ---- §7 round records (verifyRoundRecord) ----
const openedValid = await D.openCommit(D.Signed.decode(validCommit))
const med = byDistance(order.map(i => inputs[i]), median(order.map(i => inputs[i])))
const record = {
  group: GROUP, span: SPAN, round: ROUND, baseHash: hex(BASE), leader: ids[LEADER].toString(), commit: hex(validCommit), aggregator: 'coordinate-median',
  contributions: order.map((i, k) => ({ sender: ids[i].toString(), payloadHash: hex(D.sha256(payloads[i])), dataShards: [`shard-${i}a`, `shard-${i}b`], innerSteps: 50 + i, tokens: 1000 * (i + 1), accepted: med.accepted[k], distance: med.distances[k] })),
  resultHash: 'cd'.repeat(32)
}
if (openedValid.announces.length !== 3) throw new Error('valid commit')
const allPayloads = Object.fromEntries([0, 1, 2].map(i => [hex(D.sha256(payloads[i])), hex(payloads[i])]))
const editRecord = (fn) => { const r = structuredClone(record); fn(r); return r }
const far = order.indexOf(2)
const groupOfSeven = hex(await signCommit({ members: 7 }))
const recordCases = [
  ['the record of a median round, checked against its payloads', record, allPayloads, 'median', null],
  ['the record without payloads (signatures and contributions only)', record, null, 'median', null],
  ['accept/reject of the far sender flipped', editRecord(r => { r.contributions[far].accepted = true }), allPayloads, 'median', 'InvalidCommitError'],
  ['accept/reject flipped, checked without payloads (not detectable: valid)', editRecord(r => { r.contributions[far].accepted = true }), null, 'median', null],
  ['the same record checked with the mean (which accepts everyone)', record, allPayloads, 'mean', 'InvalidCommitError'],
  ['another round than the commit\'s', editRecord(r => { r.round = ROUND + 1 }), null, 'median', 'InvalidCommitError'],
  ['another base hash than the commit\'s', editRecord(r => { r.baseHash = 'ac'.repeat(32) }), null, 'median', 'InvalidCommitError'],
  ['another leader than the commit\'s signer', editRecord(r => { r.leader = ids[0].toString() }), null, 'median', 'InvalidCommitError'],
  ['another group than the commit\'s', editRecord(r => { r.group = 'devnet/other' }), null, 'median', 'InvalidCommitError'],
  ['contributions in another order than the commit\'s', editRecord(r => { r.contributions.reverse() }), null, 'median', 'InvalidCommitError'],
  ['a contribution left out', editRecord(r => { r.contributions.pop() }), null, 'median', 'InvalidCommitError'],
  ['a sender\'s tokens changed', editRecord(r => { r.contributions[0].tokens += 1 }), null, 'median', 'InvalidCommitError'],
  ['a sender\'s inner steps changed', editRecord(r => { r.contributions[1].innerSteps += 1 }), null, 'median', 'InvalidCommitError'],
  ['a sender\'s data shards changed', editRecord(r => { r.contributions[0].dataShards = ['shard-x'] }), null, 'median', 'InvalidCommitError'],
  ['a sender\'s payload hash changed', editRecord(r => { r.contributions[0].payloadHash = '00'.repeat(32) }), null, 'median', 'InvalidCommitError'],
  ['a payload missing', record, Object.fromEntries(Object.entries(allPayloads).slice(1)), 'median', 'InvalidCommitError'],
  ['a payload that does not match its hash', record, Object.fromEntries(Object.entries(allPayloads).map(([h, p], k) => [h, k === 0 ? p.slice(0, -2) + '00' : p])), 'median', 'InvalidCommitError'],
  ['the three committed as a group of 7 (1.1.0: f = 2 needs 5 inputs for a robust aggregate)', editRecord(r => { r.commit = groupOfSeven }), allPayloads, 'median', 'InvalidCommitError'],
  ['a commit whose signature does not verify', editRecord(r => { const s = D.Signed.decode(validCommit); r.commit = hex(D.Signed.encode({ ...s, signature: flipLast(s.signature) })) }), null, 'median', 'InvalidSignatureError']
]
const records = []
for (const [name, rec, pl, aggregator, error] of recordCases) {
  const got = await outcome(async () => {
    await D.verifyRoundRecord({ ...rec, commit: Buffer.from(rec.commit, 'hex') }, pl == null ? {} : { payloads: new Map(Object.entries(pl).map(([h, p]) => [h, Buffer.from(p, 'hex')])), elements: N, aggregator })
    return true
  })
  agree(name, got, error ? { error } : { ok: true })
  records.push({ name, record: rec, payloads: pl, aggregator, elements: N, ...(error ? { error } : {}) })
}

// ---- §6 step 3 and §8: what a receiver holds for the round it collects (replays, its cap, its commit) ----
// sequences of announces (and the round's commit) to one receiver at round 5; outcomes written by hand from the text.
// The TypeScript implementation replays them through the conformance runner (its service's own receiveAnnounce)
const REPLAYED = 'ReplayedPseudoGradientError'
const ann = (signed) => ({ op: 'announce', signed: hex(signed) })
const rounds = [
  { name: 'replays: the same announce, a second announce of one sender (same payload, then a new one), another sender with a payload hash seen before', maxContributions: 3,
    ops: [ann(valid[0]), ann(valid[0]), ann(await signAnnounce(0, { timestampMs: 1_800_000_000_100 })), ann(await signAnnounce(0, { payloadHash: D.sha256(Uint8Array.of(9)) })),
      ann(await signAnnounce(1, { payloadHash: D.sha256(payloads[0]) })), ann(valid[1]), ann(valid[2])],
    errors: [null, REPLAYED, REPLAYED, REPLAYED, REPLAYED, null, null] },
  { name: 'the round\'s maximum of contributions (2); a replay at the maximum is a replay (replays are checked first)', maxContributions: 2,
    ops: [ann(valid[0]), ann(valid[1]), ann(valid[2]), ann(valid[0])],
    errors: [null, null, 'OversizedPseudoGradientError', REPLAYED] },
  { name: 'after the round\'s commit: a new sender is too late; a replay is a replay', maxContributions: 3,
    ops: [ann(valid[0]), { op: 'commit' }, ann(valid[1]), ann(valid[0])],
    errors: [null, null, 'WrongRoundError', REPLAYED] }
]

if (disagreements > 0) {
  console.error(`${disagreements} disagreement(s): messages.json not written`)
  process.exit(1)
}
writeFileSync(new URL('messages.json', import.meta.url), JSON.stringify({
  description: 'DiLoCo signed announces and commits (§2, §3), the receiver\'s round checks in order (§6 step 3, and `rounds`: sequences against what it holds for the round), the aggregation\'s accept/reject (§7) and round records (§7). Written by gen-messages.mjs from fixed Ed25519 keys; expected outcomes from the spec text. Float32 values as bit patterns; aggregate values are compared within 1e-6 relative. nnm-trimmed-mean and geometric-median: values and accept/reject as @neuroshard/robust-agg computes them (§7 defines their arithmetic; the Python adapter re-derives them).',
  keys: seeds.map((s, i) => ({ ed25519_seed: hex(s), peer_id: ids[i].toString() })),
  announces,
  checks,
  commits,
  aggregation,
  records,
  rounds: { description: 'one receiver collecting round 5 (the round checks\' `expect` above, its maximum of contributions `maxContributions`) is given `ops` in order: a signed announce, or `commit` (the round is committed); `errors` gives each outcome (null: accepted). §6 step 3 and §8.', expect, cases: rounds }
}, null, 1) + '\n')
console.log(`wrote messages.json: ${announces.length} announces, ${checks.length} round checks, ${commits.length} commits, ${aggregation.length} aggregations, ${records.length} records`)

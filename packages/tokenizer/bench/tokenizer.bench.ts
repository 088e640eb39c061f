/**
 * Tokenizer benchmark on the genesis corpus (all of `nlp-corpus`), side by side with Hugging Face's
 * native `tokenizers` (Rust, via napi) trained on the same text with the same vocabulary size.
 *
 * Run: pnpm --filter @neuroshard/tokenizer bench   (after `tsc -b packages/tokenizer`)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import corpus from 'nlp-corpus'
import { Tokenizer } from 'tokenizers'
import { trainBpe, BpeTokenizer, DEFAULT_SPECIAL_TOKENS } from '../src/index.js'

// Hugging Face's batch encode runs on a rayon pool; one thread, like ours
process.env.TOKENIZERS_PARALLELISM = 'false'
const VOCAB = Number(process.env.VOCAB ?? 8192)
const HF_DEFAULT_VOCAB = 30_000 // the only vocab size the Node binding's train() can use

function mb (bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000)
}

const text = corpus.all().join('\n')
const bytes = Buffer.byteLength(text)
// Hugging Face trains line by line, keeping each line's '\n'; give our trainer the same lines
const lines = text.split(/(?<=\n)/)
const dir = mkdtempSync(join(tmpdir(), 'ns-tok-bench-'))
const corpusFile = join(dir, 'corpus.txt')
writeFileSync(corpusFile, text)

// ours
let t0 = performance.now()
const ours = trainBpe(lines, { vocabSize: VOCAB })
const oursTrainMs = performance.now() - t0
let t1 = performance.now()
const oursIds = ours.encode(text)
const oursEncodeMs = performance.now() - t1
t1 = performance.now()
ours.encode(text)
const oursEncodeWarmMs = performance.now() - t1
const fresh = BpeTokenizer.fromTokenizerJson(ours.toTokenizerJson())
t1 = performance.now()
for (const l of lines) fresh.encode(l)
const oursLinesMs = performance.now() - t1

// Hugging Face, configured exactly like ours (same pre-tokenizer), trained on the same file
const empty = JSON.parse(ours.toTokenizerJson())
empty.added_tokens = []
empty.model.vocab = {}
empty.model.merges = []
const hf = Tokenizer.fromString(JSON.stringify(empty))
t0 = performance.now()
hf.train([corpusFile])
const hfTrainMs = performance.now() - t0
// cut HF's 30000-token result back to VOCAB: the trainer is greedy, so its first merges are exactly
// what a VOCAB-sized run makes; keep 3 ids free for the same special tokens we have
const hfPath = join(dir, 'hf.json')
hf.save(hfPath, false)
const hfDoc = JSON.parse((await import('node:fs')).readFileSync(hfPath, 'utf8'))
const cutoff = VOCAB - DEFAULT_SPECIAL_TOKENS.length
const vocab: Record<string, number> = {}
for (const [k, v] of Object.entries(hfDoc.model.vocab as Record<string, number>)) if (v < cutoff) vocab[k] = v
const alphabet = Object.values(hfDoc.model.vocab as Record<string, number>).length - hfDoc.model.merges.length
hfDoc.model.merges = (hfDoc.model.merges as Array<[string, string]>).filter(([l, r]) => vocab[l + r] !== undefined && vocab[l] !== undefined && vocab[r] !== undefined)
hfDoc.model.vocab = vocab
hfDoc.added_tokens = DEFAULT_SPECIAL_TOKENS.map((content, i) => ({ id: cutoff + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
const hf8k = Tokenizer.fromString(JSON.stringify(hfDoc))
t1 = performance.now()
const hfEnc = await hf8k.encode(text)
const hfEncodeMs = performance.now() - t1
const hfIds = hfEnc.getIds()
const hf8kFresh = Tokenizer.fromString(JSON.stringify(hfDoc))
t1 = performance.now()
await hf8kFresh.encodeBatch(lines)
const hfLinesMs = performance.now() - t1

// compatibility: Hugging Face loading OUR tokenizer.json must give our ids on the whole corpus
const oursInHf = Tokenizer.fromString(ours.toTokenizerJson())
const oursViaHf = (await oursInHf.encode(text)).getIds()
let same = oursViaHf.length === oursIds.length
for (let i = 0; same && i < oursIds.length; i++) same = oursViaHf[i] === oursIds[i]
const roundTrip = ours.decode(oursIds) === text
// reload from JSON gives identical ids
const reloaded = BpeTokenizer.fromTokenizerJson(ours.toTokenizerJson())
const reIds = reloaded.encode(text)
let reSame = reIds.length === oursIds.length
for (let i = 0; reSame && i < oursIds.length; i++) reSame = reIds[i] === oursIds[i]

// ours trained to 30000 too, for a like-for-like training-time comparison with HF's 30000 run
t0 = performance.now()
trainBpe(lines, { vocabSize: HF_DEFAULT_VOCAB })
const ours30kMs = performance.now() - t0

const oursBpt = bytes / oursIds.length
const hfBpt = bytes / hfIds.length
const result = {
  corpus: { name: 'nlp-corpus (all)', bytes, lines: lines.length },
  vocabSize: VOCAB,
  ours: {
    trainMs: Math.round(oursTrainMs),
    train30kMs: Math.round(ours30kMs),
    encodeMBps: +mb(bytes, oursEncodeMs).toFixed(2),
    encodeWarmMBps: +mb(bytes, oursEncodeWarmMs).toFixed(2),
    encodeLinesMBps: +mb(bytes, oursLinesMs).toFixed(2),
    tokens: oursIds.length,
    bytesPerToken: +oursBpt.toFixed(4),
    merges: ours.mergeCount
  },
  huggingface: {
    train30kMs: Math.round(hfTrainMs),
    encodeMBps: +mb(bytes, hfEncodeMs).toFixed(2),
    encodeLinesMBps: +mb(bytes, hfLinesMs).toFixed(2),
    tokens: hfIds.length,
    bytesPerToken: +hfBpt.toFixed(4),
    merges: hfDoc.model.merges.length,
    alphabet
  },
  bytesPerTokenRatio: +(oursBpt / hfBpt).toFixed(4),
  hfReadsOurTokenizerJsonIdentically: same,
  reloadIdentical: reSame,
  exactRoundTrip: roundTrip,
  node: process.version
}

const rows = [
  ['', '@neuroshard/tokenizer', 'tokenizers (HF, Rust)'],
  [`train, vocab ${VOCAB} (s)`, (oursTrainMs / 1000).toFixed(2), `n/a (binding trains to ${HF_DEFAULT_VOCAB} only)`],
  [`train, vocab ${HF_DEFAULT_VOCAB} (s)`, (ours30kMs / 1000).toFixed(2), (hfTrainMs / 1000).toFixed(2)],
  ['encode corpus as one string, cold cache (MB/s)', mb(bytes, oursEncodeMs).toFixed(1), mb(bytes, hfEncodeMs).toFixed(1)],
  ['encode corpus as one string, warm cache (MB/s)', mb(bytes, oursEncodeWarmMs).toFixed(1), ''],
  ['encode line by line, 1 thread (MB/s)', mb(bytes, oursLinesMs).toFixed(1), `${mb(bytes, hfLinesMs).toFixed(1)} (encodeBatch)`],
  ['tokens', String(oursIds.length), String(hfIds.length)],
  ['bytes / token', oursBpt.toFixed(4), hfBpt.toFixed(4)]
]
const w0 = Math.max(...rows.map(r => r[0].length))
const w1 = Math.max(...rows.map(r => r[1].length))
for (const r of rows) process.stdout.write(`${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}\n`)
process.stdout.write(`bytes/token ratio ours/HF: ${result.bytesPerTokenRatio}\n`)
process.stdout.write(`HF loads our tokenizer.json and gives identical ids on the whole corpus: ${same}\n`)
process.stdout.write(`reload identical: ${reSame}, exact round trip: ${roundTrip}\n`)

const outDir = new URL('../../bench-results/', import.meta.url)
mkdirSync(outDir, { recursive: true })
writeFileSync(new URL('tokenizer.json', outDir), JSON.stringify(result, null, 2) + '\n')
rmSync(dir, { recursive: true, force: true })

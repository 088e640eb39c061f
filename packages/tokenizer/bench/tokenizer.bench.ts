/**
 * Tokenizer benchmark on the genesis corpus (all of `nlp-corpus`), side by side with Hugging Face's
 * native `tokenizers` (Rust, via napi) trained on the same text with the same vocabulary size.
 *
 * Run: cd packages/tokenizer && pnpm bench   (after `tsc -b packages/tokenizer`)
 * VOCAB=… overrides the vocabulary size (default 8192).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import corpus from 'nlp-corpus'
import { Tokenizer } from 'tokenizers'
import { trainBpe, BpeTokenizer, DEFAULT_SPECIAL_TOKENS } from '../src/index.js'

// Hugging Face's batch encode runs on a rayon pool; make it one thread, like ours
process.env.TOKENIZERS_PARALLELISM = 'false'
const VOCAB = Number(process.env.VOCAB ?? 8192)
const HF_DEFAULT_VOCAB = 30_000 // the only vocab size the Node binding's train() can use

interface Timing<T> { value: T, wall: number, cpu: number }

/** Wall-clock and CPU (user + system, all threads) milliseconds of `fn` */
async function timed<T> (fn: () => T | Promise<T>): Promise<Timing<T>> {
  const c = process.cpuUsage()
  const t = performance.now()
  const value = await fn()
  const wall = performance.now() - t
  const u = process.cpuUsage(c)
  return { value, wall, cpu: (u.user + u.system) / 1000 }
}

const mbps = (bytes: number, ms: number): number => +(bytes / 1e6 / (ms / 1000)).toFixed(2)
const speed = (bytes: number, t: Timing<unknown>): { wallMBps: number, cpuMBps: number } => ({ wallMBps: mbps(bytes, t.wall), cpuMBps: mbps(bytes, t.cpu) })
const secs = (t: Timing<unknown>): { wallS: number, cpuS: number } => ({ wallS: +(t.wall / 1000).toFixed(2), cpuS: +(t.cpu / 1000).toFixed(2) })

const text = corpus.all().join('\n')
const bytes = Buffer.byteLength(text)
// Hugging Face trains line by line, keeping each line's '\n'; give our trainer the same lines
const lines = text.split(/(?<=\n)/)
const dir = mkdtempSync(join(tmpdir(), 'ns-tok-bench-'))
const corpusFile = join(dir, 'corpus.txt')
writeFileSync(corpusFile, text)

// ours
const oursTrain = await timed(() => trainBpe(lines, { vocabSize: VOCAB }))
const ours = oursTrain.value
const oursEncode = await timed(() => ours.encode(text))
const oursIds = oursEncode.value
const oursEncodeWarm = await timed(() => ours.encode(text))
const fresh = BpeTokenizer.fromTokenizerJson(ours.toTokenizerJson())
const oursLines = await timed(() => { for (const l of lines) fresh.encode(l) })

// Hugging Face, configured exactly like ours (same pre-tokenizer), trained on the same text
const empty = JSON.parse(ours.toTokenizerJson())
empty.added_tokens = []
empty.model.vocab = {}
empty.model.merges = []
const hf = Tokenizer.fromString(JSON.stringify(empty))
const hfTrain = await timed(() => { hf.train([corpusFile]) })
// cut HF's 30000-token result back to VOCAB: the trainer is greedy, so its first merges are exactly
// what a VOCAB-sized run makes; keep ids free for the same special tokens we have
const hfPath = join(dir, 'hf.json')
hf.save(hfPath, false)
const hfDoc = JSON.parse(readFileSync(hfPath, 'utf8'))
const cutoff = VOCAB - DEFAULT_SPECIAL_TOKENS.length
const vocab: Record<string, number> = {}
for (const [k, v] of Object.entries(hfDoc.model.vocab as Record<string, number>)) if (v < cutoff) vocab[k] = v
const alphabet = Object.keys(hfDoc.model.vocab).length - hfDoc.model.merges.length
hfDoc.model.merges = (hfDoc.model.merges as Array<[string, string]>).filter(([l, r]) => vocab[l + r] !== undefined && vocab[l] !== undefined && vocab[r] !== undefined)
hfDoc.model.vocab = vocab
hfDoc.added_tokens = DEFAULT_SPECIAL_TOKENS.map((content, i) => ({ id: cutoff + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
const hfSmall = Tokenizer.fromString(JSON.stringify(hfDoc))
const hfEncode = await timed(async () => (await hfSmall.encode(text)).getIds())
const hfIds = hfEncode.value
const hfFresh = Tokenizer.fromString(JSON.stringify(hfDoc))
const hfLines = await timed(async () => hfFresh.encodeBatch(lines))

// compatibility: Hugging Face loading OUR tokenizer.json must give our ids on the whole corpus
const oursViaHf = (await Tokenizer.fromString(ours.toTokenizerJson()).encode(text)).getIds()
const same = oursViaHf.length === oursIds.length && oursViaHf.every((id, i) => id === oursIds[i])
const roundTrip = ours.decode(oursIds) === text
const reIds = BpeTokenizer.fromTokenizerJson(ours.toTokenizerJson()).encode(text)
const reSame = reIds.length === oursIds.length && reIds.every((id, i) => id === oursIds[i])

// ours trained to 30000 too, for a like-for-like training-time comparison with HF's 30000 run
const ours30k = await timed(() => trainBpe(lines, { vocabSize: HF_DEFAULT_VOCAB }))

const oursBpt = bytes / oursIds.length
const hfBpt = bytes / hfIds.length
const result = {
  corpus: { name: 'nlp-corpus 4.4.0 (all)', bytes, lines: lines.length },
  vocabSize: VOCAB,
  ours: {
    train: secs(oursTrain),
    train30k: { ...secs(ours30k), merges: ours30k.value.mergeCount },
    encodeOneString: speed(bytes, oursEncode),
    encodeOneStringWarm: speed(bytes, oursEncodeWarm),
    encodeLines: speed(bytes, oursLines),
    tokens: oursIds.length,
    bytesPerToken: +oursBpt.toFixed(4),
    merges: ours.mergeCount
  },
  huggingface: {
    train30k: secs(hfTrain),
    encodeOneString: speed(bytes, hfEncode),
    encodeLines: speed(bytes, hfLines),
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

const f = (t: Timing<unknown>, kind: 's' | 'MB/s'): string => kind === 's'
  ? `${(t.wall / 1000).toFixed(2)} (cpu ${(t.cpu / 1000).toFixed(2)})`
  : `${mbps(bytes, t.wall).toFixed(1)} (cpu ${mbps(bytes, t.cpu).toFixed(1)})`
const rows = [
  ['', '@neuroshard/tokenizer', 'tokenizers (HF, Rust)'],
  [`train, vocab ${VOCAB}: s`, f(oursTrain, 's'), `n/a: binding trains to ${HF_DEFAULT_VOCAB} only`],
  [`train, vocab ${HF_DEFAULT_VOCAB}: s`, f(ours30k, 's'), f(hfTrain, 's')],
  ['encode corpus as one string: MB/s', f(oursEncode, 'MB/s'), f(hfEncode, 'MB/s')],
  ['  same, warm cache: MB/s', f(oursEncodeWarm, 'MB/s'), ''],
  ['encode line by line, 1 thread: MB/s', f(oursLines, 'MB/s'), `${f(hfLines, 'MB/s')} encodeBatch`],
  ['tokens', String(oursIds.length), String(hfIds.length)],
  ['bytes / token', oursBpt.toFixed(4), hfBpt.toFixed(4)]
]
const w0 = Math.max(...rows.map(r => r[0].length))
const w1 = Math.max(...rows.map(r => r[1].length))
for (const r of rows) process.stdout.write(`${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}\n`)
process.stdout.write(`bytes/token ours / HF: ${result.bytesPerTokenRatio} (HF: ${result.huggingface.merges} merges over a ${alphabet}-symbol alphabet; ours: ${ours.mergeCount} over 256 bytes)\n`)
process.stdout.write(`HF loads our tokenizer.json and gives identical ids on the whole corpus: ${same}\n`)
process.stdout.write(`reload identical: ${reSame}, exact round trip: ${roundTrip}\n`)

const outDir = new URL('../../bench-results/', import.meta.url)
mkdirSync(outDir, { recursive: true })
writeFileSync(new URL('tokenizer.json', outDir), JSON.stringify(result, null, 2) + '\n')
rmSync(dir, { recursive: true, force: true })

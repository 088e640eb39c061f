/**
 * `neuroshard export --gguf`: a model trained by `neuroshard train` (in process, a few steps) is written as a
 * llama GGUF; the file is read back here with a small independent GGUF reader: header, llama metadata, the
 * tokenizer, and the float32 token embedding equal to the checkpoint's bytes.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCorpus } from '@neuroshard/genesis-data'
import { exportCommand } from '../../src/commands/export.js'
import { trainCommand } from '../../src/commands/train.js'
import { loadTrainedModel } from '../../src/workspace.js'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'bin.js')
let root: string
let dataDir: string

function io (): { io: any, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return { io: { stdout: { write: (s: string) => { out += s; return true } }, stderr: { write: (s: string) => { err += s; return true } } }, out: () => out, err: () => err }
}

/** Reads a GGUF v3 file's metadata and tensor table (little-endian; gguf.md of ggml) */
function readGguf (buf: Buffer): { version: number, metadata: Map<string, unknown>, tensors: Array<{ name: string, dims: bigint[], type: number, offset: bigint }>, dataStart: number } {
  let o = 0
  const u32 = (): number => { const v = buf.readUInt32LE(o); o += 4; return v }
  const u64 = (): bigint => { const v = buf.readBigUInt64LE(o); o += 8; return v }
  const str = (): string => { const n = Number(u64()); const s = buf.toString('utf8', o, o + n); o += n; return s }
  const value = (t: number): unknown => {
    switch (t) {
      case 0: return buf.readUInt8(o++)
      case 1: return buf.readInt8(o++)
      case 2: { const v = buf.readUInt16LE(o); o += 2; return v }
      case 3: { const v = buf.readInt16LE(o); o += 2; return v }
      case 4: return u32()
      case 5: { const v = buf.readInt32LE(o); o += 4; return v }
      case 6: { const v = buf.readFloatLE(o); o += 4; return v }
      case 7: return buf.readUInt8(o++) !== 0
      case 8: return str()
      case 9: { const et = u32(); const n = Number(u64()); return Array.from({ length: n }, () => value(et)) }
      case 10: return u64()
      case 11: { const v = buf.readBigInt64LE(o); o += 8; return v }
      case 12: { const v = buf.readDoubleLE(o); o += 8; return v }
      default: throw new Error(`unknown GGUF value type ${t}`)
    }
  }
  expect(buf.toString('latin1', 0, 4)).toBe('GGUF')
  o = 4
  const version = u32()
  const nTensors = Number(u64())
  const nKv = Number(u64())
  const metadata = new Map<string, unknown>()
  for (let i = 0; i < nKv; i++) { const k = str(); metadata.set(k, value(u32())) }
  const tensors = Array.from({ length: nTensors }, () => {
    const name = str()
    const nd = u32()
    const dims = Array.from({ length: nd }, () => u64())
    return { name, dims, type: u32(), offset: u64() }
  })
  const align = Number(metadata.get('general.alignment') ?? 32)
  return { version, metadata, tensors, dataStart: Math.ceil(o / align) * align }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ns-export-'))
  dataDir = join(root, '.neuroshard')
  const corpus = join(root, 'corpus.txt')
  await writeFile(corpus, (await readCorpus('nlp-corpus')).documents.slice(0, 600).join('\n\n') + '\n')
  const t = io()
  const code = await trainCommand(['--data', corpus, '--data-dir', dataDir, '--vocab-size', '300', '--steps', '6', '--seq-len', '32', '--batch-size', '2',
    '--eval-every', '6', '--checkpoint-every', '6', '--warmup', '1', '--threads', '1', '--json'], t.io)
  expect(code, t.err()).toBe(0)
}, 300_000)
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

describe('neuroshard export --gguf', () => {
  it('writes the newest checkpoint as a llama GGUF (F32): metadata, tokenizer, and the embedding bytes of the checkpoint', async () => {
    const file = join(root, 'model-f32.gguf')
    const t = io()
    expect(await exportCommand(['--gguf', file, '--data-dir', dataDir, '--name', 'test-model', '--json'], t.io), t.err()).toBe(0)
    const line = JSON.parse(t.out())
    const { tokenizer, state } = await loadTrainedModel(dataDir)
    const c = state.settings.config
    expect(line).toMatchObject({ event: 'exported', file, type: 'F32', step: 6 })
    const buf = await readFile(file)
    expect(line.bytes).toBe(buf.length)
    const g = readGguf(buf)
    expect(g.version).toBe(3)
    expect(g.metadata.get('general.architecture')).toBe('llama')
    expect(g.metadata.get('general.name')).toBe('test-model')
    expect(g.metadata.get('llama.block_count')).toBe(c.nLayers)
    expect(g.metadata.get('llama.embedding_length')).toBe(c.dModel)
    expect(g.metadata.get('tokenizer.ggml.model')).toBe('gpt2')
    expect((g.metadata.get('tokenizer.ggml.tokens') as string[]).length).toBe(c.vocabSize)
    expect((g.metadata.get('tokenizer.ggml.merges') as string[]).length).toBe(JSON.parse(tokenizer.toTokenizerJson()).model.merges.length)
    // one tensor per parameter (norms, 9 per block, embedding, final norm, and an untied head)
    expect(g.tensors.length).toBe(line.tensors)
    expect(g.tensors.length).toBe(2 + 9 * c.nLayers + (c.tieEmbeddings ? 0 : 1))
    const embd = g.tensors.find(t => t.name === 'token_embd.weight')!
    expect(embd.type).toBe(0) // F32
    expect(embd.dims).toEqual([BigInt(c.dModel), BigInt(c.vocabSize)])
    const want = state.parameters.get('embed.weight')!
    const at = g.dataStart + Number(embd.offset)
    expect(Buffer.compare(buf.subarray(at, at + want.byteLength), Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(0)
  }, 120_000)

  it('Q4_0 through the CLI binary (process): the matrices are 4-bit, the file is smaller', async () => {
    expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b packages/node)`).toBe(true)
    const file = join(root, 'model-q4.gguf')
    const child = spawn(process.execPath, [BIN, 'export', '--gguf', file, '--type', 'Q4_0', '--data-dir', dataDir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
    expect(code, err).toBe(0)
    expect(JSON.parse(out)).toMatchObject({ event: 'exported', type: 'Q4_0' })
    const g = readGguf(await readFile(file))
    expect(g.tensors.find(t => t.name === 'blk.0.ffn_up.weight')!.type).toBe(2) // GGML_TYPE_Q4_0
    expect(g.tensors.find(t => t.name === 'blk.0.attn_norm.weight')!.type).toBe(0)
    expect((await readFile(file)).length).toBeLessThan((await readFile(join(root, 'model-f32.gguf'))).length / 3)
  }, 120_000)

  it('refuses bad flags (2) and explains a missing model (1)', async () => {
    const t = io()
    expect(await exportCommand([], t.io)).toBe(2)
    expect(t.err()).toMatch(/--gguf <file> is required/)
    expect(await exportCommand(['--gguf', join(root, 'x.gguf'), '--type', 'Q8_0'], t.io)).toBe(2)
    expect(await exportCommand(['--bogus'], t.io)).toBe(2)
    const empty = await mkdtemp(join(tmpdir(), 'ns-export-empty-'))
    try {
      const e = io()
      expect(await exportCommand(['--gguf', join(empty, 'x.gguf'), '--data-dir', empty], e.io)).toBe(1)
      expect(e.err()).toMatch(/neuroshard train/)
      expect(existsSync(join(empty, 'x.gguf'))).toBe(false)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
    const h = io()
    expect(await exportCommand(['--help'], h.io)).toBe(0)
    expect(h.out()).toMatch(/neuroshard export --gguf/)
  })
})

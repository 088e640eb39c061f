import { describe, it, expect } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import {
  encodeCheckpoint, decodeCheckpoint, saveCheckpoint, loadCheckpoint, initShardParameters, parametersHash,
  contentHash, encodeSafetensors, decodeSafetensors, preset, shardParameters
} from '../src/index.js'
import type { ShardRole } from '../src/index.js'

const config = preset('tiny')
const role: ShardRole = { kind: 'blocks', start: 0, end: 2 }

function makeFile (header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

function errorName (fn: () => unknown): string {
  try { fn() } catch (err: any) { return err.name } return 'no error'
}

describe('safetensors container', () => {
  it('round-trips tensors and metadata, 8-byte aligned', () => {
    const tensors = new Map([
      ['b', { dtype: 'F32' as const, shape: [2, 2], data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) }],
      ['a', { dtype: 'I64' as const, shape: [1], data: new Uint8Array(new BigInt64Array([5n]).buffer) }]
    ])
    const bytes = encodeSafetensors(tensors, { hello: 'world' })
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect(headerLen % 8).toBe(0)
    const out = decodeSafetensors(bytes)
    expect(out.metadata).toEqual({ hello: 'world' })
    expect(out.tensors.get('b')!.shape).toEqual([2, 2])
    expect(Array.from(new Float32Array(out.tensors.get('b')!.data.slice().buffer))).toEqual([1, 2, 3, 4])
    // the header is standard safetensors JSON: names sorted, offsets contiguous from 0
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLen)).toString())
    expect(header.a.data_offsets).toEqual([0, 8])
    expect(header.b.data_offsets).toEqual([8, 24])
  })

  it('rejects each kind of malformed file with a typed error', () => {
    const t = { dtype: 'F32', shape: [2], data_offsets: [0, 8] }
    expect(errorName(() => decodeSafetensors(new Uint8Array(5)))).toBe('CheckpointTruncatedError')
    expect(errorName(() => decodeSafetensors(makeFile({ t }, new Uint8Array(8), 1000n)))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile({ t }, new Uint8Array(8), 1n << 40n)))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile('{"t": [', new Uint8Array(8))))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile('[1,2]')))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile({ t: { ...t, dtype: 'F99' } }, new Uint8Array(8))))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile({ t: { ...t, shape: [-1] } }, new Uint8Array(8))))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeSafetensors(makeFile({ __metadata__: { a: 1 } })))).toBe('CheckpointHeaderError')
    // truncated data section
    expect(errorName(() => decodeSafetensors(makeFile({ t }, new Uint8Array(4))))).toBe('CheckpointTruncatedError')
    // offsets: size mismatch, overlap, hole, out of range, trailing bytes, reversed
    expect(errorName(() => decodeSafetensors(makeFile({ t: { ...t, data_offsets: [0, 4] } }, new Uint8Array(4))))).toBe('CheckpointOffsetsError')
    expect(errorName(() => decodeSafetensors(makeFile({ t, u: { ...t, data_offsets: [4, 12] } }, new Uint8Array(12))))).toBe('CheckpointOffsetsError')
    expect(errorName(() => decodeSafetensors(makeFile({ t: { ...t, data_offsets: [4, 12] } }, new Uint8Array(12))))).toBe('CheckpointOffsetsError')
    expect(errorName(() => decodeSafetensors(makeFile({ t, u: { ...t, data_offsets: [1000, 1008] } }, new Uint8Array(16))))).toBe('CheckpointOffsetsError')
    expect(errorName(() => decodeSafetensors(makeFile({ t }, new Uint8Array(12))))).toBe('CheckpointOffsetsError')
    expect(errorName(() => decodeSafetensors(makeFile({ t: { ...t, data_offsets: [8, 0] } }, new Uint8Array(8))))).toBe('CheckpointOffsetsError')
  })
})

describe('shard checkpoints', () => {
  const params = initShardParameters(config, role, 1)

  it('round-trip weights, architecture, role, step and content hash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ns-model-'))
    try {
      const path = join(dir, 'blocks.safetensors')
      const hash = await saveCheckpoint(path, { config, role, parameters: params, step: 12, metadata: { note: 'x' } })
      expect(hash).toMatch(/^[0-9a-f]{64}$/)
      const ck = await loadCheckpoint(path, { config, role, contentHash: hash })
      expect(ck.step).toBe(12)
      expect(ck.role).toEqual(role)
      expect(ck.config).toEqual(config)
      expect(ck.metadata).toEqual({ note: 'x' })
      expect(ck.contentHash).toBe(hash)
      for (const [name, v] of params) expect(ck.parameters.get(name)).toEqual(v)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the content hash is the documented canonical serialisation', () => {
    const specs = shardParameters(config, role)
    const manual = contentHash([...specs].reverse().map(s => ({ name: s.name, dtype: 'F32', shape: s.shape, data: new Uint8Array(params.get(s.name)!.buffer) })))
    expect(parametersHash(config, role, params)).toBe(manual)
    // pinned: the hash of the empty set is sha256("neuroshard/weights/v1\0")
    expect(contentHash([])).toBe('a5f65488ed543d88f253acc7e150424559b6a52ce76a4eee09a864a7257ff26b')
    // one tensor, serialised by hand from the spec's definition
    const data = new Uint8Array(new Float32Array([1, -2]).buffer)
    const manualBytes = Buffer.concat([
      Buffer.from('neuroshard/weights/v1\0'),
      Buffer.from([1, 0, 0, 0]), Buffer.from('w'),
      Buffer.from([3, 0, 0, 0]), Buffer.from('F32'),
      Buffer.from([1, 0, 0, 0]), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), data
    ])
    expect(contentHash([{ name: 'w', dtype: 'F32', shape: [2], data }])).toBe(createHash('sha256').update(manualBytes).digest('hex'))
    const changed = new Map(params)
    const w = params.get('blocks.0.attn.wq')!.slice()
    w[0] += 1e-3
    changed.set('blocks.0.attn.wq', w)
    expect(parametersHash(config, role, changed)).not.toBe(parametersHash(config, role, params))
  })

  it('detects tampered weights, wrong architecture, role, dtype and shape', () => {
    const bytes = encodeCheckpoint({ config, role, parameters: params, step: 3 })
    const tampered = bytes.slice()
    tampered[tampered.length - 1] ^= 0x01
    expect(errorName(() => decodeCheckpoint(tampered))).toBe('CheckpointHashMismatchError')
    expect(errorName(() => decodeCheckpoint(bytes, { contentHash: '0'.repeat(64) }))).toBe('CheckpointHashMismatchError')
    expect(errorName(() => decodeCheckpoint(bytes, { config: { ...config, dModel: 128 } }))).toBe('CheckpointMismatchError')
    expect(errorName(() => decodeCheckpoint(bytes, { role: { kind: 'head' } }))).toBe('CheckpointMismatchError')
    expect(errorName(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 3)))).toBe('CheckpointTruncatedError')

    // rewrite one tensor's dtype / shape in an otherwise valid file
    const file = decodeSafetensors(bytes)
    const asF16 = new Map(file.tensors)
    const n = file.tensors.get('blocks.0.attn_norm.weight')!
    asF16.set('blocks.0.attn_norm.weight', { dtype: 'F16', shape: [n.shape[0] * 2], data: n.data })
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(asF16, file.metadata)))).toBe('CheckpointMismatchError')
    const reshaped = new Map(file.tensors)
    reshaped.set('blocks.0.attn_norm.weight', { dtype: 'F32', shape: [n.shape[0] / 2, 2], data: n.data })
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(reshaped, file.metadata)))).toBe('CheckpointMismatchError')
    const missing = new Map(file.tensors)
    missing.delete('blocks.1.mlp.w_up')
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(missing, file.metadata)))).toBe('CheckpointMismatchError')
    const extra = new Map(file.tensors)
    extra.set('blocks.9.x', n)
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(extra, file.metadata)))).toBe('CheckpointMismatchError')
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(file.tensors, { ...file.metadata, format: 'other' })))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(file.tensors, { ...file.metadata, architecture: '{' })))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(file.tensors, { ...file.metadata, role: '{"kind":"blocks","start":0,"end":9}' })))).toBe('CheckpointHeaderError')
    expect(errorName(() => decodeCheckpoint(encodeSafetensors(file.tensors, { ...file.metadata, step: '-1' })))).toBe('CheckpointHeaderError')
  })

  it('refuses to write parameters that do not match the shard', async () => {
    const bad = new Map(params)
    bad.delete('blocks.0.attn.wq')
    expect(errorName(() => encodeCheckpoint({ config, role, parameters: bad }))).toBe('CheckpointMismatchError')
    const dir = await mkdtemp(join(tmpdir(), 'ns-model-'))
    try {
      await writeFile(join(dir, 'junk'), 'not a checkpoint at all')
      await expect(loadCheckpoint(join(dir, 'junk'))).rejects.toHaveProperty('name', 'CheckpointHeaderError')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

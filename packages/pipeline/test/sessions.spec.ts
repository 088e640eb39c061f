/**
 * SessionTable.tokensLeft: the KV headroom a node announces (layer record `kv_tokens_left`) — the tokens of one more
 * session that fit under the memory cap, and none at the session cap. A stand-in stage (no onnxruntime): the table
 * only reserves memory and calls the stage's KV sessions.
 */
import { describe, expect, it } from 'vitest'
import { preset } from '@neuroshard/model'
import { SessionTable, kvBytesPerToken } from '../src/index.js'
import type { PipelineStage } from '../src/index.js'

const config = preset('tiny')

function fakeStage (blocks: number): PipelineStage {
  const kv = { run: async () => ({}), close: async () => {}, truncate: async () => {} }
  return { config, start: 1, end: 1 + blocks, blocks: { role: { kind: 'blocks', start: 0, end: blocks }, openInference: async () => kv } } as unknown as PipelineStage
}

describe('SessionTable.tokensLeft', () => {
  it('is the free cache in tokens of the span, less what sessions hold, and 0 at the session cap', async () => {
    const stage = fakeStage(2)
    const perToken = kvBytesPerToken(stage)
    expect(perToken).toBe(2 * 2 * config.nKvHeads * (config.dModel / config.nHeads) * 4)
    const table = new SessionTable({ maxSessions: 2, maxKvBytes: 100 * perToken, ttlMs: 60_000 })
    expect(table.tokensLeft(perToken)).toBe(100)
    await table.run('a', stage, 0, 1, 30, async () => null)
    expect(table.tokensLeft(perToken)).toBe(70)
    // a span with half the blocks per token fits twice the tokens
    expect(table.tokensLeft(perToken / 2)).toBe(140)
    await table.run('b', stage, 0, 1, 5, async () => null)
    // two sessions held: no room for one more, whatever memory is free
    expect(table.headroom).toBe(65 * perToken)
    expect(table.tokensLeft(perToken)).toBe(0)
    await table.close('a')
    expect(table.tokensLeft(perToken)).toBe(95)
  })
})

describe('SessionTable.run with a rebuilt stage', () => {
  it('a session whose stage was rebuilt is unknown past position 0 (its cache is gone; running on a fresh one would compute at the wrong positions)', async () => {
    const old = fakeStage(2)
    const rebuilt = fakeStage(2)
    const table = new SessionTable({ maxSessions: 4, maxKvBytes: 1 << 30, ttlMs: 60_000 })
    await table.run('s', old, 0, 1, 10, async () => null)
    let ran = 0
    await expect(table.run('s', rebuilt, 10, 1, 1, async () => { ran++ })).rejects.toThrow(expect.objectContaining({ name: 'UnknownSessionError' }))
    expect(ran).toBe(0)
    expect(table.has('s')).toBe(false)
    expect(table.bytes).toBe(0)
    // a replay from 0 reopens it on the new stage
    await table.run('s', rebuilt, 0, 1, 11, async () => { ran++ })
    expect(ran).toBe(1)
    expect(table.bytes).toBe(11 * kvBytesPerToken(rebuilt))
  })
})

/**
 * `neuroshard start` option checks that answer before anything starts (exit 2 with the reason): the quantization
 * group size from the command line, the --config file and NEUROSHARD_QUANT_BLOCK_SIZE; --bake-weights.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCommand } from '../../src/commands/network.js'

async function start (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, stderr: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let err = ''
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  stdout.resume()
  const code = await startCommand(argv, { stdout, stderr, env })
  return { code, stderr: err }
}

describe('neuroshard start --quant-block-size', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'neuroshard-start-options-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('refuses sizes other than 32, 64, 128, from the command line, the config file or the environment', async () => {
    const q = ['--quantization', 'int4', '--training', 'off', '-d', dir]
    expect(await start([...q, '--quant-block-size', '96'])).toEqual({ code: 2, stderr: '--quant-block-size must be 32, 64 or 128\n' })
    const file = join(dir, 'config.json')
    await writeFile(file, JSON.stringify({ 'quant-block-size': 16 }))
    expect(await start([...q, '--config', file])).toEqual({ code: 2, stderr: '--quant-block-size must be 32, 64 or 128\n' })
    expect(await start(q, { NEUROSHARD_QUANT_BLOCK_SIZE: '256' })).toEqual({ code: 2, stderr: '--quant-block-size must be 32, 64 or 128\n' })
  })

  it('refuses 64 / 128 on a float32 node', async () => {
    expect(await start(['--training', 'off', '-d', dir, '--quant-block-size', '128'])).toEqual({ code: 2, stderr: '--quant-block-size needs --quantization int8 or int4\n' })
  })
})

describe('neuroshard start --bake-weights', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'neuroshard-start-options-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('takes on or off (command line, config file, NEUROSHARD_BAKE_WEIGHTS), only on a float32 serving node', async () => {
    expect(await start(['--training', 'off', '-d', dir, '--bake-weights', 'yes'])).toEqual({ code: 2, stderr: '--bake-weights must be on or off\n' })
    const file = join(dir, 'config.json')
    await writeFile(file, JSON.stringify({ 'bake-weights': true }))
    expect(await start(['--training', 'off', '-d', dir, '--config', file])).toEqual({ code: 2, stderr: '--bake-weights must be on or off\n' })
    expect(await start(['--training', 'off', '-d', dir], { NEUROSHARD_BAKE_WEIGHTS: '1' })).toEqual({ code: 2, stderr: '--bake-weights must be on or off\n' })
    expect(await start(['-d', dir, '--bake-weights', 'on'])).toEqual({ code: 2, stderr: '--bake-weights on serves inference only: add --training off\n' })
    expect(await start(['--training', 'off', '--quantization', 'int4', '-d', dir], { NEUROSHARD_BAKE_WEIGHTS: 'on' })).toEqual({ code: 2, stderr: '--bake-weights is for float32 nodes (quantized weights are always baked)\n' })
  })
})

describe('neuroshard start --serve-round-weights', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'neuroshard-start-options-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('takes on or off (command line, config file, NEUROSHARD_SERVE_ROUND_WEIGHTS), on only on a training node', async () => {
    expect(await start(['-d', dir, '--serve-round-weights', 'yes'])).toEqual({ code: 2, stderr: '--serve-round-weights must be on or off\n' })
    const file = join(dir, 'config.json')
    await writeFile(file, JSON.stringify({ 'serve-round-weights': false }))
    expect(await start(['-d', dir, '--config', file])).toEqual({ code: 2, stderr: '--serve-round-weights must be on or off\n' })
    expect(await start(['-d', dir], { NEUROSHARD_SERVE_ROUND_WEIGHTS: '0' })).toEqual({ code: 2, stderr: '--serve-round-weights must be on or off\n' })
    expect(await start(['--training', 'off', '-d', dir, '--serve-round-weights', 'on'])).toEqual({ code: 2, stderr: '--serve-round-weights is for a training node (a serving node serves the layer pool\'s weights)\n' })
  })
})

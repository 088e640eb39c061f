import { describe, it, expect, afterEach } from 'vitest'
import { createRuntime, float32, int64, cudaFallbackMessage, missingCudaLibrary } from '../src/index.js'
import { matmulModel, longModel } from './fixtures/onnx.js'
import type { Runtime } from '../src/index.js'

const runtimes: Runtime[] = []
async function start (init: Parameters<typeof createRuntime>[0] = {}): Promise<Runtime> {
  const rt = await createRuntime(init)
  runtimes.push(rt)
  return rt
}
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map(async rt => { await rt.close() }))
})

async function rejection (p: Promise<unknown>): Promise<any> {
  try { await p } catch (err) { return err }
  throw new Error('expected a rejection')
}

describe('runtime sessions', () => {
  it('runs a graph in the worker on CPU, reporting IO metadata', async () => {
    const rt = await start()
    const s = await rt.createSession(matmulModel())
    expect(s.executionProvider).toBe('cpu')
    expect(s.fallbackReason).toBeUndefined()
    expect(s.inputs.map(i => [i.name, i.type, i.shape])).toEqual([['x', 'float32', ['n', 4]], ['w', 'float32', [4, 3]]])
    const out = await s.run({ x: float32([1, 2, 3, 4, 0, 0, 0, 1], [2, 4]), w: float32(Array.from({ length: 12 }, (_, i) => i), [4, 3]) })
    expect(out.y.dims).toEqual([2, 3])
    // row 0: [1,2,3,4] @ w ; row 1: w[3]
    expect(Array.from(out.y.data as Float32Array)).toEqual([60, 70, 80, 9, 10, 11])
  })

  // on a machine where onnxruntime's CUDA provider is installed this case cannot happen
  it.skipIf(missingCudaLibrary() === undefined)("asking for 'cuda' without the CUDA libraries runs on CPU and warns once per process", async () => {
    const warnings1: string[] = []
    const warnings2: string[] = []
    const rt1 = await start({ device: 'cuda', onWarning: (m) => warnings1.push(m) })
    const s1 = await rt1.createSession(matmulModel())
    const s1b = await rt1.createSession(matmulModel())
    // the second path: no pre-check, onnxruntime itself throws at session creation and we fall back
    const rt2 = await start({ device: 'cuda', cudaPrecheck: false, onWarning: (m) => warnings2.push(m) })
    const s2 = await rt2.createSession(matmulModel())
    for (const s of [s1, s1b, s2]) {
      expect(s.executionProvider).toBe('cpu')
      expect(s.fallbackReason).toMatch(/CUDA/i)
      const out = await s.run({ x: float32([1, 1, 1, 1], [1, 4]), w: float32(new Array(12).fill(1), [4, 3]) })
      expect(Array.from(out.y.data as Float32Array)).toEqual([4, 4, 4])
    }
    expect(s2.fallbackReason).toMatch(/onnxruntime could not create a CUDA session/)
    expect(warnings1).toHaveLength(1)
    expect(warnings2).toHaveLength(0)
    expect(warnings1[0]).toContain("runs on CPU")
    expect(warnings1[0]).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12')
    expect(cudaFallbackMessage('x')).toContain('cuDNN 9')
  })

  it('feeds resident weights so calls carry only activations', async () => {
    const rt = await start()
    const s = await rt.createSession(matmulModel())
    await rt.setResident({ w: float32(new Array(12).fill(0.5), [4, 3]) })
    const out = await s.run({ x: float32([1, 2, 3, 4], [1, 4]) })
    expect(Array.from(out.y.data as Float32Array)).toEqual([5, 5, 5])
    const got = await rt.getResident(['w'])
    expect(got.w.dims).toEqual([4, 3])
  })

  it('rejects bad inputs with typed errors that name the tensor', async () => {
    const rt = await start()
    const s = await rt.createSession(matmulModel())
    const w = float32(new Array(12).fill(1), [4, 3])
    const x = float32(new Array(8).fill(1), [2, 4])
    let err = await rejection(s.run({ x: int64([1, 2, 3, 4], [1, 4]), w }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'x'])
    err = await rejection(s.run({ x, w: float32(new Array(12).fill(1), [3, 4]) }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'w'])
    err = await rejection(s.run({ x: float32(new Array(8).fill(1), [2, 2, 2]), w }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'x'])
    err = await rejection(s.run({ x: float32(new Array(7).fill(1), [2, 4]), w }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'x'])
    const nan = new Array(8).fill(1); nan[5] = Number.NaN
    err = await rejection(s.run({ x: float32(nan, [2, 4]), w }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'x'])
    expect(err.message).toContain('index 5')
    const inf = new Array(12).fill(1); inf[0] = Number.POSITIVE_INFINITY
    err = await rejection(s.run({ x, w: float32(inf, [4, 3]) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'w'])
    err = await rejection(s.run({ x }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'w'])
    err = await rejection(s.run({ x, w, extra: x }))
    expect([err.name, err.tensorName]).toEqual(['InvalidTensorError', 'extra'])
    // NaN in weights is caught when they are made resident
    err = await rejection(rt.setResident({ w: float32(nan.concat([1, 1, 1, 1]), [4, 3]) }))
    expect([err.name, err.tensorName]).toEqual(['NonFiniteTensorError', 'w'])
    // the session still works afterwards
    expect((await s.run({ x, w })).y.dims).toEqual([2, 3])
  })

  it('binds symbolic dims consistently across inputs', async () => {
    const { buildModel, FLOAT } = await import('./fixtures/onnx.js')
    const rt = await start()
    const s = await rt.createSession(buildModel({
      nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['c'] }],
      inputs: [['a', FLOAT, ['batch', 'seq']], ['b', FLOAT, ['batch', 'seq']]],
      outputs: [['c', FLOAT, ['batch', 'seq']]]
    }))
    const err = await rejection(s.run({ a: float32([1, 2, 3, 4], [2, 2]), b: float32([1, 2, 3, 4], [1, 4]) }))
    expect([err.name, err.tensorName]).toEqual(['ShapeMismatchError', 'b'])
    expect(err.message).toContain("'batch'")
  })

  it('keeps the event loop responsive while a long graph runs', async () => {
    const rt = await start({ intraOpNumThreads: 1 })
    const d = 512
    const s = await rt.createSession(longModel(d, 32))
    const w = new Float32Array(d * d).map((_, i) => ((i * 7919) % 13 - 6) / (6 * d))
    await rt.setResident({ w: float32(w, [d, d]) })
    const x = float32(new Float32Array(1024 * d).fill(0.01), [1024, d])
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 5)
    const t0 = performance.now()
    try {
      await s.run({ x })
    } finally {
      clearInterval(timer)
    }
    const elapsed = performance.now() - t0
    // a run that blocked the main thread would let no timer fire before it finished
    expect(elapsed).toBeGreaterThan(100)
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 5 / 4))
  })

  it('closes cleanly: pending and later calls reject with RuntimeClosedError', async () => {
    const rt = await start()
    const d = 512
    const s = await rt.createSession(longModel(d, 16))
    await rt.setResident({ w: float32(new Float32Array(d * d), [d, d]) })
    const pending = s.run({ x: float32(new Float32Array(256 * d), [256, d]) })
    await rt.close()
    await rt.close()
    expect((await rejection(pending)).name).toBe('RuntimeClosedError')
    expect((await rejection(s.run({ x: float32(new Float32Array(d), [1, d]) }))).name).toBe('RuntimeClosedError')
  })

  it('honours abort signals', async () => {
    const rt = await start()
    const s = await rt.createSession(matmulModel())
    const err = await rejection(s.run({ x: float32([1, 1, 1, 1], [1, 4]), w: float32(new Array(12).fill(1), [4, 3]) }, { signal: AbortSignal.abort() }))
    expect(err.name).toBe('AbortError')
  })

  it('rejects a graph onnxruntime cannot load with SessionError', async () => {
    const rt = await start()
    const err = await rejection(rt.createSession(new Uint8Array([1, 2, 3, 4, 5])))
    expect(err.name).toBe('SessionError')
  })
})

describe('process lifetime', () => {
  /** Runs `code` (a module using the compiled package: tests run after `tsc -b`) in a fresh process with the repo's Node */
  async function runChild (code: string, nodeArgs: (file: string) => string[]): Promise<{ exit: number | null, output: string }> {
    const { spawn } = await import('node:child_process')
    const { fileURLToPath } = await import('node:url')
    const { mkdtempSync, writeFileSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const file = join(mkdtempSync(join(tmpdir(), 'runtime-child-')), 'child.mjs')
    writeFileSync(file, code)
    const child = spawn(process.execPath, nodeArgs(file), { stdio: ['ignore', 'pipe', 'pipe'], cwd: fileURLToPath(new URL('..', import.meta.url)) })
    let output = ''
    child.stdout.on('data', (b: Buffer) => { output += b.toString() })
    child.stderr.on('data', (b: Buffer) => { output += b.toString() })
    const exit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(null) }, 20_000)
      child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
    })
    return { exit, output }
  }

  const runMatmul = `
    import { createRuntime, float32 } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)}
    const rt = await createRuntime()
    const s = await rt.createSession(new Uint8Array(${JSON.stringify(Array.from(matmulModel()))}))
    const out = await s.run({ x: float32([1, 1, 1, 1], [1, 4]), w: float32(new Array(12).fill(2), [4, 3]) })
    console.log('ran', out.y.data[0])
  `

  it('an idle runtime that was never closed does not keep the process alive', async () => {
    // `--input-type=module -e`: the worker (a module file) must not inherit --input-type
    const { exit, output } = await runChild(runMatmul, () => ['--input-type=module', '-e', runMatmul])
    expect(output).toContain('ran 8')
    expect(exit).toBe(0)
  })

  it('starts its worker under a V8 flag on the command line (an explicit execArgv made the Worker throw ERR_WORKER_INVALID_EXEC_ARGV)', async () => {
    const { exit, output } = await runChild(runMatmul, file => ['--max-semi-space-size=16', file])
    expect(output).not.toContain('ERR_WORKER_INVALID_EXEC_ARGV')
    expect(output).toContain('ran 8')
    expect(exit).toBe(0)
  })
})

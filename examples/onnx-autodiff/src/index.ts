/**
 * Example: reverse-mode autodiff over ONNX graphs with `@neuroshard/onnx-graph`.
 *
 * onnxruntime-node is an inference-only build: it has no gradient ops. NeuroShard trains anyway by
 * *deriving* backward graphs made of ordinary ONNX ops. This program shows the whole loop on a tiny
 * function:
 *
 * 1. build the forward graph  y = sum(silu(x @ W))  with the typed builder (shapes are checked as you build),
 * 2. derive the gradient graph with `gradients()`: inputs x, W → outputs y, ∂y/∂x, ∂y/∂W,
 * 3. run both graphs on onnxruntime-node,
 * 4. check every gradient entry against a central finite difference of the forward graph.
 *
 * The graphs are float64 so the finite difference is accurate to ~1e-9; the builder emits float32 graphs
 * the same way (that is what the model uses).
 *
 * Run: `npx -y pnpm@10 --filter @neuroshard/example-onnx-autodiff start`
 */
import { pathToFileURL } from 'node:url'
import { GraphBuilder, gradients } from '@neuroshard/onnx-graph'
import * as ort from 'onnxruntime-node'

const BATCH = 3
const IN = 4
const OUT = 5

export interface OnnxAutodiffResult {
  /** y at the test point */
  y: number
  /** largest |autodiff − finite difference| / max(1, |finite difference|) over every entry of ∂y/∂x and ∂y/∂W */
  maxRelativeError: number
  /** how many gradient entries were checked */
  checked: number
  /** backward graph input and output names, as onnxruntime sees them */
  backwardInputs: string[]
  backwardOutputs: string[]
  /** the shape error the builder raises for a mismatched matmul */
  shapeError: string
}

/** deterministic values in [-1, 1) */
function values (n: number, seed: number): Float64Array {
  let s = seed >>> 0
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 31 - 1
  })
}

export async function main (log: (line: string) => void = console.log): Promise<OnnxAutodiffResult> {
  // --- 1. forward graph: every builder call infers the output shape ------------------------------------
  const g = new GraphBuilder({ dtype: 'float64', name: 'silu_matmul' })
  const x = g.input('x', 'float64', ['batch', IN]) // a symbolic batch dimension
  const w = g.input('w', 'float64', [IN, OUT])
  const h = g.matmul(x, w, { name: 'proj' }) // ['batch', OUT]
  const y = g.reduceSum(g.silu(h), [0, 1], false) // a scalar
  g.output(y, 'y')
  log(`forward graph: x ${JSON.stringify(x.shape)} @ w ${JSON.stringify(w.shape)} → silu → sum → y ${JSON.stringify(y.shape)}`)

  // shapes are checked while building: a wrong inner dimension fails here, naming the node
  let shapeError = 'none'
  try {
    const other = new GraphBuilder({ dtype: 'float64' })
    other.matmul(other.input('x', 'float64', ['batch', IN]), other.input('v', 'float64', [IN + 1, 2]), { name: 'bad_proj' })
  } catch (err) {
    shapeError = (err as Error).name
    log(`a mismatched matmul is refused at build time → ${shapeError}: ${(err as Error).message}`)
  }

  // --- 2. the gradient graph: standard ONNX ops only (MatMul, Sigmoid, Mul, Expand, …) -------------------
  const backward = gradients(g, { of: y, wrt: [x, w], alsoOutput: [{ value: y, name: 'y' }] })

  // --- 3. run both on onnxruntime-node (CPU) ------------------------------------------------------------
  const fwd = await ort.InferenceSession.create(g.toModelProto())
  const bwd = await ort.InferenceSession.create(backward.toModelProto())
  log(`backward graph: inputs [${bwd.inputNames.join(', ')}] → outputs [${bwd.outputNames.join(', ')}]`)

  const xv = values(BATCH * IN, 1)
  const wv = values(IN * OUT, 2)
  const feeds = (xs: Float64Array, ws: Float64Array): Record<string, ort.Tensor> => ({
    x: new ort.Tensor('float64', xs, [BATCH, IN]),
    w: new ort.Tensor('float64', ws, [IN, OUT])
  })
  const forward = async (xs: Float64Array, ws: Float64Array): Promise<number> => {
    const out = await fwd.run(feeds(xs, ws))
    return (out.y.data as Float64Array)[0]
  }

  const out = await bwd.run(feeds(xv, wv))
  const yValue = (out.y.data as Float64Array)[0]
  const gradX = out['grad.x'].data as Float64Array
  const gradW = out['grad.w'].data as Float64Array
  log(`y = ${yValue.toFixed(6)} (forward graph: ${(await forward(xv, wv)).toFixed(6)})`)

  // --- 4. finite differences: (y(θ + h) − y(θ − h)) / 2h for every entry of x and W ----------------------
  const step = 1e-5
  let maxRelativeError = 0
  let checked = 0
  for (const [name, param, grad] of [['x', xv, gradX], ['w', wv, gradW]] as const) {
    let worst = 0
    for (let i = 0; i < param.length; i++) {
      const plus = Float64Array.from(param)
      const minus = Float64Array.from(param)
      plus[i] += step
      minus[i] -= step
      const fd = name === 'x'
        ? (await forward(plus, wv) - await forward(minus, wv)) / (2 * step)
        : (await forward(xv, plus) - await forward(xv, minus)) / (2 * step)
      const rel = Math.abs(grad[i] - fd) / Math.max(1, Math.abs(fd))
      worst = Math.max(worst, rel)
      checked++
    }
    log(`∂y/∂${name}: ${param.length} entries, e.g. ${grad[0].toFixed(6)}; worst relative difference to finite differences ${worst.toExponential(2)}`)
    maxRelativeError = Math.max(maxRelativeError, worst)
  }

  await fwd.release()
  await bwd.release()
  return { y: yValue, maxRelativeError, checked, backwardInputs: [...bwd.inputNames], backwardOutputs: [...bwd.outputNames], shapeError }
}

// run only when executed directly (`node dist/src/index.js`), not when a test imports main()
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}

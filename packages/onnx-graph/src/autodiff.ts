import { AutodiffError } from './errors.js'
import { GraphBuilder } from './graph.js'
import { liveNodes } from './export.js'
import { isFloat, shapeToString } from './types.js'
import type { AttrValue, Node, Value } from './graph.js'
import type { Shape } from './types.js'

/** What a VJP rule sees: the backward graph, the (recomputed) forward node's inputs/outputs and the output gradients */
export interface VjpContext {
  b: GraphBuilder
  node: Node
  inputs: Array<Value | null>
  outputs: Value[]
  /** Gradient of each output (null: that output does not reach the loss) */
  grads: Array<Value | null>
  /** Whether input i needs a gradient */
  needs: boolean[]
}

/** A vector-Jacobian product rule: returns one gradient (or null) per forward input */
export type VjpRule = (ctx: VjpContext) => Array<Value | null | undefined>

/** A differentiated output and its seed: a named graph input holding dL/d(value), or `1` for a scalar loss */
export interface GradientSeed {
  value: Value
  /** Name of the seed input added to the backward graph; omit for a scalar with seed 1 */
  seed?: string
}

export interface GradientsOptions {
  /** Values to differentiate: a scalar loss (seed 1), or outputs with named seed inputs */
  of: Value | GradientSeed[]
  /** Values (forward graph inputs, usually) to take gradients with respect to */
  wrt: Value[]
  /** Output names of the gradients, in `wrt` order @default `grad.<name>` */
  names?: string[]
  /** Forward values to output as well (e.g. the loss next to its gradients) */
  alsoOutput?: Array<{ value: Value, name: string }>
  /**
   * Saved activations: forward values the backward graph takes as inputs (under `name`) instead of
   * recomputing them. The forward graph must output them. Default: none (everything is recomputed).
   */
  saved?: Array<{ value: Value, name: string }>
}

function intAttr (n: Node, key: string, dflt: number): number {
  const a = n.attrs[key] as AttrValue | undefined
  return a != null && a.kind === 'int' ? a.value : dflt
}

function intsAttr (n: Node, key: string): number[] | undefined {
  const a = n.attrs[key] as AttrValue | undefined
  return a != null && a.kind === 'ints' ? a.value : undefined
}

function floatAttr (n: Node, key: string, dflt: number): number {
  const a = n.attrs[key] as AttrValue | undefined
  return a != null && a.kind === 'float' ? a.value : dflt
}

/** Reads a constant int64 input (axes, starts, …) of a forward node (constants are copied into the backward graph) */
function constInts (fwd: GraphBuilder, v: Value | null, what: string, node: Node): number[] {
  if (v == null) throw new AutodiffError(`${node.op} '${node.name}': missing ${what}`)
  const data = fwd.constants.get(v)
  if (data == null || !(data instanceof BigInt64Array)) throw new AutodiffError(`${node.op} '${node.name}': ${what} must be a constant to differentiate`)
  return [...data].map(x => Number(x))
}

/**
 * Sum `g` (shaped like a broadcast result) back to the shape of `x`: ReduceSum over the broadcast axes, then
 * Reshape to x's shape.
 */
export function sumToShape (b: GraphBuilder, g: Value, x: Value): Value {
  const gs = g.shape
  const xs = x.shape
  const lead = gs.length - xs.length
  if (lead < 0) throw new AutodiffError(`cannot reduce gradient ${shapeToString(gs)} to ${shapeToString(xs)}`)
  const axes: number[] = []
  for (let i = 0; i < gs.length; i++) {
    if (i < lead) { axes.push(i); continue }
    const xd = xs[i - lead]
    if (xd === 1 && gs[i] !== 1) axes.push(i)
  }
  if (axes.length === 0) return g
  const r = b.reduceSum(g, axes, true)
  if (r.shape.length === xs.length && r.shape.every((d, i) => d === xs[i])) return r
  return b.reshapeLike(r, x)
}

function transposeLast2 (b: GraphBuilder, v: Value): Value {
  const r = v.shape.length
  const perm = [...Array(r).keys()]
  perm[r - 2] = r - 1
  perm[r - 1] = r - 2
  return b.transpose(v, perm)
}

/** The VJP rules, by ONNX op type. Each is checked against central finite differences in the tests. */
export const VJP_RULES: Record<string, VjpRule> = {
  Identity: ({ grads }) => [grads[0]],
  Add: ({ b, inputs, grads, needs }) => [
    needs[0] ? sumToShape(b, grads[0] as Value, inputs[0] as Value) : null,
    needs[1] ? sumToShape(b, grads[0] as Value, inputs[1] as Value) : null
  ],
  Sub: ({ b, inputs, grads, needs }) => [
    needs[0] ? sumToShape(b, grads[0] as Value, inputs[0] as Value) : null,
    needs[1] ? sumToShape(b, b.neg(grads[0] as Value), inputs[1] as Value) : null
  ],
  Mul: ({ b, inputs, grads, needs }) => {
    const [x, y] = inputs as Value[]
    const g = grads[0] as Value
    return [needs[0] ? sumToShape(b, b.mul(g, y), x) : null, needs[1] ? sumToShape(b, b.mul(g, x), y) : null]
  },
  Div: ({ b, inputs, outputs, grads, needs }) => {
    const [x, y] = inputs as Value[]
    const g = grads[0] as Value
    const gx = b.div(g, y)
    return [needs[0] ? sumToShape(b, gx, x) : null, needs[1] ? sumToShape(b, b.neg(b.mul(gx, outputs[0])), y) : null]
  },
  Pow: ({ b, node, inputs, grads, needs }) => {
    if (needs[1]) throw new AutodiffError(`Pow '${node.name}': gradient with respect to the exponent is not supported`)
    const [x, p] = inputs as Value[]
    const g = grads[0] as Value
    return [sumToShape(b, b.mul(g, b.mul(p, b.pow(x, b.sub(p, 1)))), x), null]
  },
  Neg: ({ b, grads }) => [b.neg(grads[0] as Value)],
  Sqrt: ({ b, outputs, grads }) => [b.div(b.mul(grads[0] as Value, 0.5), outputs[0])],
  Reciprocal: ({ b, outputs, grads }) => [b.neg(b.mul(grads[0] as Value, b.mul(outputs[0], outputs[0])))],
  Exp: ({ b, outputs, grads }) => [b.mul(grads[0] as Value, outputs[0])],
  Log: ({ b, inputs, grads }) => [b.div(grads[0] as Value, inputs[0] as Value)],
  Sigmoid: ({ b, outputs, grads }) => {
    const y = outputs[0]
    return [b.mul(grads[0] as Value, b.mul(y, b.sub(1, y)))]
  },
  Tanh: ({ b, outputs, grads }) => {
    const y = outputs[0]
    return [b.mul(grads[0] as Value, b.sub(1, b.mul(y, y)))]
  },
  Sin: ({ b, inputs, grads }) => [b.mul(grads[0] as Value, b.cos(inputs[0] as Value))],
  Cos: ({ b, inputs, grads }) => [b.neg(b.mul(grads[0] as Value, b.sin(inputs[0] as Value)))],
  Cast: ({ b, inputs, grads }) => {
    const x = inputs[0] as Value
    return [isFloat(x.dtype) ? b.cast(grads[0] as Value, x.dtype) : null]
  },
  MatMul: ({ b, inputs, grads, needs }) => {
    const [x, w] = inputs as Value[]
    const g = grads[0] as Value
    let gx: Value | null = null
    let gw: Value | null = null
    if (needs[0]) gx = sumToShape(b, b.matmul(g, transposeLast2(b, w)), x)
    if (needs[1]) {
      if (w.shape.length === 2 && x.shape.length > 2) {
        // fold the batch dims into one GEMM: W-grad = X2ᵀ @ G2
        const k = w.shape[0]
        const n = w.shape[1]
        const x2 = b.reshape(x, [-1, typeof k === 'number' ? k : 0])
        const g2 = b.reshape(g, [-1, typeof n === 'number' ? n : 0])
        gw = b.matmul(b.transpose(x2, [1, 0]), g2)
      } else {
        gw = sumToShape(b, b.matmul(transposeLast2(b, x), g), w)
      }
    }
    return [gx, gw]
  },
  Gemm: ({ b, node, inputs, grads, needs }) => {
    const [a, w, c] = inputs
    const g = grads[0] as Value
    const alpha = floatAttr(node, 'alpha', 1)
    const beta = floatAttr(node, 'beta', 1)
    const tA = intAttr(node, 'transA', 0) === 1
    const tB = intAttr(node, 'transB', 0) === 1
    const opA = tA ? b.transpose(a as Value, [1, 0]) : a as Value
    const opB = tB ? b.transpose(w as Value, [1, 0]) : w as Value
    let ga: Value | null = null
    let gb: Value | null = null
    let gc: Value | null = null
    if (needs[0]) {
      const gop = b.mul(b.matmul(g, b.transpose(opB, [1, 0])), alpha)
      ga = tA ? b.transpose(gop, [1, 0]) : gop
    }
    if (needs[1]) {
      const gop = b.mul(b.matmul(b.transpose(opA, [1, 0]), g), alpha)
      gb = tB ? b.transpose(gop, [1, 0]) : gop
    }
    if (c != null && needs[2]) gc = sumToShape(b, b.mul(g, beta), c)
    return [ga, gb, gc]
  },
  ReduceSum: (ctx) => reduceVjp(ctx, false),
  ReduceMean: (ctx) => reduceVjp(ctx, true),
  Softmax: ({ b, node, outputs, grads }) => {
    const y = outputs[0]
    const g = grads[0] as Value
    const axis = intAttr(node, 'axis', -1)
    const s = b.reduceSum(b.mul(g, y), [axis], true)
    return [b.mul(y, b.sub(g, s))]
  },
  LogSoftmax: ({ b, node, outputs, grads }) => {
    const y = outputs[0]
    const g = grads[0] as Value
    const axis = intAttr(node, 'axis', -1)
    return [b.sub(g, b.mul(b.exp(y), b.reduceSum(g, [axis], true)))]
  },
  Reshape: ({ b, inputs, grads }) => [b.reshapeLike(grads[0] as Value, inputs[0] as Value), null],
  Unsqueeze: ({ b, inputs, grads }) => [b.reshapeLike(grads[0] as Value, inputs[0] as Value), null],
  Squeeze: ({ b, inputs, grads }) => [b.reshapeLike(grads[0] as Value, inputs[0] as Value), null],
  Expand: ({ b, inputs, grads }) => [sumToShape(b, grads[0] as Value, inputs[0] as Value), null],
  Transpose: ({ b, node, grads }) => {
    const perm = intsAttr(node, 'perm') as number[]
    const inv = new Array<number>(perm.length)
    perm.forEach((p, i) => { inv[p] = i })
    return [b.transpose(grads[0] as Value, inv)]
  },
  Where: ({ b, inputs, grads, needs }) => {
    const [c, x, y] = inputs as Value[]
    const g = grads[0] as Value
    const zero = b.scalar(0, g.dtype)
    return [
      null,
      needs[1] ? sumToShape(b, b.where(c, g, zero), x) : null,
      needs[2] ? sumToShape(b, b.where(c, zero, g), y) : null
    ]
  },
  Concat: ({ b, node, inputs, grads }) => {
    const axis = intAttr(node, 'axis', 0)
    const xs = inputs as Value[]
    const g = grads[0] as Value
    const sizes = xs.map(x => x.shape[axis])
    if (sizes.every(s => typeof s === 'number')) return b.split(g, sizes as number[], axis)
    // runtime sizes: gather each input's dim along the axis
    const t = b.concat(xs.map(x => b.reshape(b.dimOf(x, axis), [1])), 0)
    return b.split(g, { tensor: t, shapes: xs.map(x => x.shape) }, axis)
  },
  Split: ({ b, node, outputs, grads }) => {
    const axis = intAttr(node, 'axis', 0)
    const parts = outputs.map((o, i) => grads[i] ?? b.zerosLike(o))
    return [b.concat(parts, axis), null]
  },
  Slice: ({ b, node, inputs, grads }) => {
    const x = inputs[0] as Value
    const g = grads[0] as Value
    const src = b
    const starts = constInts(src, inputs[1], 'starts', node)
    const ends = constInts(src, inputs[2], 'ends', node)
    const axes = inputs[3] != null ? constInts(src, inputs[3], 'axes', node) : starts.map((_, i) => i)
    const steps = inputs[4] != null ? constInts(src, inputs[4], 'steps', node) : starts.map(() => 1)
    if (steps.some(s => s !== 1)) throw new AutodiffError(`Slice '${node.name}': gradient only for step 1`)
    const r = x.shape.length
    const begin: number[] = []
    const end: number[] = []
    const ax: number[] = []
    axes.forEach((a0, i) => {
      const a = a0 < 0 ? a0 + r : a0
      const d = x.shape[a]
      if (typeof d === 'number') {
        const clamp = (v: number): number => Math.max(0, Math.min(d, v < 0 ? v + d : v))
        const s = clamp(starts[i])
        const e = Math.max(s, clamp(ends[i]))
        begin.push(s); end.push(d - e); ax.push(a)
      } else if (starts[i] >= 0 && ends[i] >= Number.MAX_SAFE_INTEGER) {
        begin.push(starts[i]); end.push(0); ax.push(a)
      } else {
        throw new AutodiffError(`Slice '${node.name}': gradient needs a static size on axis ${a} (got '${d}')`)
      }
    })
    const out = b.pad(g, [...begin, ...end], ax)
    return [out.shape.every((d, i) => d === x.shape[i]) ? out : b.reshapeLike(out, x), null, null, null, null]
  },
  GatherElements: ({ b, node, inputs, grads }) => {
    const [data, idx] = inputs as Value[]
    // dData = ScatterElements-add of the gradient into zeros at the gathered positions
    return [b.scatterElements(b.zerosLike(data), idx, grads[0] as Value, intAttr(node, 'axis', 0), 'add'), null]
  },
  Gather: ({ b, node, inputs, grads }) => {
    const axis = intAttr(node, 'axis', 0)
    if (axis !== 0) throw new AutodiffError(`Gather '${node.name}': gradient only for axis 0`)
    const [data, idx] = inputs as Value[]
    const g = grads[0] as Value
    const ids = idx.dtype === 'int64' ? idx : b.cast(idx, 'int64')
    // dData = ScatterND-add of the output gradient rows into zeros: repeated ids accumulate
    return [b.scatterND(b.zerosLike(data), b.unsqueeze(ids, [-1]), g, 'add'), null]
  }
}

function reduceVjp ({ b, node, inputs, outputs, grads }: VjpContext, mean: boolean): Array<Value | null> {
  const x = inputs[0] as Value
  let g = grads[0] as Value
  const keep = intAttr(node, 'keepdims', 1) === 1
  const axesV = inputs[1]
  const r = x.shape.length
  let axes: number[]
  if (axesV == null) axes = [...Array(r).keys()]
  else {
    const data = b.constants.get(axesV)
    if (data == null || !(data instanceof BigInt64Array)) throw new AutodiffError(`${node.op} '${node.name}': axes must be a constant to differentiate`)
    axes = [...data].map(v => { const a = Number(v); return a < 0 ? a + r : a })
  }
  if (!keep) g = b.unsqueeze(g, axes)
  if (mean) {
    const count = axes.map(a => x.shape[a])
    if (count.every(c => typeof c === 'number')) {
      g = b.div(g, (count as number[]).reduce((p, c) => p * c, 1))
    } else {
      const n = b.div(b.cast(b.sizeOf(x), g.dtype), b.cast(b.sizeOf(outputs[0]), g.dtype))
      g = b.div(g, n)
    }
  }
  return [b.expandLike(g, x), null]
}

/** Ops whose outputs carry no gradient (integer/bool results or shape queries) */
const NON_DIFFERENTIABLE = new Set(['Shape', 'Size', 'Range', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'ConstantOfShape', 'ReduceMax', 'ArgMax', 'Not', 'And', 'Or'])

/**
 * Reverse-mode autodiff over the builder's IR. Returns a new graph whose inputs are the forward graph's inputs
 * plus one seed input per {@link GradientSeed} with a name, and whose outputs are the gradients of `wrt` (named
 * `grad.<input name>` unless `names` is given). The forward computation is replayed inside the backward graph
 * (activation recomputation) except for `saved` values, which become inputs; nodes not needed for the
 * gradients are pruned at export.
 */
export function gradients (fwd: GraphBuilder, options: GradientsOptions): GraphBuilder {
  return differentiate(fwd, options).b
}

/**
 * The forward activations a backward graph reads: float values computed by forward nodes that a VJP node (or a
 * requested forward output) consumes. Passing them as `saved` removes every forward replay that only served
 * them, so the backward graph does no forward recomputation for float activations (cheap integer/bool values
 * such as masks and positions are still recomputed).
 */
export function activationsToSave (fwd: GraphBuilder, options: GradientsOptions): Value[] {
  const { b, map, replayed } = differentiate(fwd, { ...options, saved: [] })
  const back = new Map<Value, Value>()
  for (const [k, v] of map) back.set(v, k)
  const { nodes } = liveNodes(b)
  const out = new Set<Value>()
  const consider = (v: Value | null): void => {
    if (v == null) return
    const f = back.get(v)
    if (f != null && f.kind === 'node' && isFloat(f.dtype)) out.add(f)
  }
  for (const n of nodes) if (!replayed.has(n)) n.inputs.forEach(consider)
  for (const o of b.outputs) consider(o.value)
  // forward order, so names given by position are stable between builds
  return fwd.nodes.flatMap(n => n.outputs).filter(v => out.has(v))
}

function differentiate (fwd: GraphBuilder, options: GradientsOptions): { b: GraphBuilder, map: Map<Value, Value>, replayed: Set<Node> } {
  const b = new GraphBuilder({ dtype: fwd.dtype, name: `${fwd.name}_backward` })
  const map = new Map<Value, Value>()
  const m = (v: Value): Value => {
    const r = map.get(v)
    if (r == null) throw new AutodiffError(`value '${v.name}' is not part of the forward graph`)
    return r
  }
  for (const v of fwd.inputs) map.set(v, b.input(v.name, v.dtype, v.shape))
  for (const [v, data] of fwd.constants) {
    const c = b.constant(data, v.dtype, v.shape, v.name)
    map.set(v, c)
  }
  const saved = new Map<Value, Value>()
  for (const sv of options.saved ?? []) {
    if (sv.value.kind !== 'node') throw new AutodiffError(`saved value '${sv.value.name}' is not a node output`)
    saved.set(sv.value, b.input(sv.name, sv.value.dtype, sv.value.shape))
  }
  for (const n of fwd.nodes) {
    // a node whose outputs are all saved is not replayed; otherwise unused replays are pruned at export
    if (n.outputs.every(o => saved.has(o))) {
      n.outputs.forEach(o => map.set(o, saved.get(o) as Value))
      continue
    }
    const outs = b.op(n.op, n.inputs.map(i => i == null ? null : m(i)), n.outputs.map(o => ({ dtype: o.dtype, shape: o.shape })), n.attrs, { name: n.name, domain: n.domain })
    n.outputs.forEach((o, i) => map.set(o, saved.get(o) ?? outs[i]))
  }
  const replayed = new Set<Node>(b.nodes)

  for (const w of options.wrt) {
    if (!isFloat(w.dtype)) throw new AutodiffError(`cannot take a gradient with respect to ${w.dtype} value '${w.name}'`)
  }
  // forward reachability from wrt
  const reach = new Set<Value>(options.wrt)
  for (const n of fwd.nodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue
    if (n.inputs.some(i => i != null && reach.has(i))) for (const o of n.outputs) if (isFloat(o.dtype)) reach.add(o)
  }
  const grads = new Map<Value, Value>()
  const accumulate = (v: Value, g: Value): void => {
    const prev = grads.get(v)
    grads.set(v, prev == null ? g : b.add(prev, g))
  }
  const seeds: GradientSeed[] = Array.isArray(options.of) ? options.of : [{ value: options.of }]
  for (const s of seeds) {
    if (s.seed != null) {
      accumulate(s.value, b.input(s.seed, s.value.dtype, s.value.shape))
    } else {
      if (s.value.shape.some(d => d !== 1)) throw new AutodiffError(`'${s.value.name}' is not a scalar ${shapeToString(s.value.shape)}: give a seed input name`)
      accumulate(s.value, b.expand(b.scalar(1, s.value.dtype), s.value.shape as number[]))
    }
  }
  for (let k = fwd.nodes.length - 1; k >= 0; k--) {
    const n = fwd.nodes[k]
    const og = n.outputs.map(o => grads.get(o) ?? null)
    if (og.every(g => g == null)) continue
    const needs = n.inputs.map(i => i != null && reach.has(i))
    if (!needs.some(Boolean)) continue
    if (NON_DIFFERENTIABLE.has(n.op)) continue
    const rule = VJP_RULES[n.op]
    if (rule == null) throw new AutodiffError(`no VJP rule for ${n.op} ('${n.name}')`)
    const ctx: VjpContext = {
      b,
      node: n,
      inputs: n.inputs.map(i => i == null ? null : m(i)),
      outputs: n.outputs.map(m),
      grads: og,
      needs
    }
    const ig = rule(ctx)
    n.inputs.forEach((i, j) => {
      const g = ig[j]
      if (i != null && needs[j] && g != null) {
        if (!sameShape(g.shape, i.shape)) throw new AutodiffError(`VJP of ${n.op} '${n.name}' gave ${shapeToString(g.shape)} for input '${i.name}' ${shapeToString(i.shape)}`)
        accumulate(i, g)
      }
    })
  }
  options.wrt.forEach((w, i) => {
    const name = options.names?.[i] ?? `grad.${w.name}`
    const g = grads.get(w)
    b.output(g ?? b.zerosLike(m(w)), name)
  })
  for (const o of options.alsoOutput ?? []) b.output(m(o.value), o.name)
  return { b, map, replayed }
}

function sameShape (a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false
  // symbolic dims may be renamed by runtime-shaped ops; only known sizes must agree
  return a.every((d, i) => d === b[i] || typeof d !== 'number' || typeof b[i] !== 'number')
}

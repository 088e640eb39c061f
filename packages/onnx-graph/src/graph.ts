import { GraphError, ShapeError } from './errors.js'
import { isFloat, isStatic, shapeToString, staticSize } from './types.js'
import type { DType, Dim, Shape } from './types.js'
import { liveNodes, toModelProto } from './export.js'
import type { ExportOptions } from './export.js'

/** An attribute value of a node. Arrays of numbers are ONNX `ints` unless wrapped with {@link floats}. */
export type AttrValue =
  | { kind: 'int', value: number }
  | { kind: 'ints', value: number[] }
  | { kind: 'float', value: number }
  | { kind: 'floats', value: number[] }
  | { kind: 'string', value: string }
  /** A one-element tensor attribute (ConstantOfShape's `value`) */
  | { kind: 'tensor', dtype: DType, value: number }

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array

/** An SSA value: produced once (graph input, constant or node output), typed and shaped */
export interface Value {
  readonly id: number
  /** ONNX name; inputs keep the name they were declared with */
  name: string
  readonly dtype: DType
  readonly shape: Shape
  /** How the value came to be */
  readonly kind: 'input' | 'constant' | 'node'
}

export interface Node {
  readonly op: string
  readonly name: string
  readonly inputs: Array<Value | null>
  readonly outputs: Value[]
  readonly attrs: Record<string, AttrValue>
  readonly domain: string
}

export interface GraphOptions {
  /** Default float type for scalars and constants created from JS numbers @default 'float32' */
  dtype?: 'float32' | 'float64'
  /** Graph name written into the ModelProto @default 'neuroshard' */
  name?: string
}

export interface OpOptions {
  /** Node name, used in error messages and in the exported graph */
  name?: string
}

/** A graph output: a value and the name it is exported under */
export interface GraphOutput {
  name: string
  value: Value
}

type Operand = Value | number

function normAxis (axis: number, rank: number, where: string): number {
  const a = axis < 0 ? axis + rank : axis
  if (a < 0 || a >= rank) throw new ShapeError(`${where}: axis ${axis} out of range for rank ${rank}`)
  return a
}

/**
 * Builds an ONNX graph op by op. Every op infers its output dtype and shape (dims may be symbolic names) and
 * throws {@link ShapeError} naming the node on a mismatch. Export with `toModelProto()` (see export.ts).
 */
export class GraphBuilder {
  readonly dtype: 'float32' | 'float64'
  readonly name: string
  readonly inputs: Value[] = []
  readonly nodes: Node[] = []
  readonly outputs: GraphOutput[] = []
  readonly constants = new Map<Value, TensorData>()
  private nextId = 0
  private readonly opCount = new Map<string, number>()
  /** value names (inputs, constants, node outputs) */
  private readonly names = new Set<string>()
  private readonly nodeNames = new Set<string>()
  private readonly constCache = new Map<string, Value>()
  private symCount = 0

  constructor (options: GraphOptions = {}) {
    this.dtype = options.dtype ?? 'float32'
    this.name = options.name ?? 'neuroshard'
  }

  /** Serialize as ONNX ModelProto bytes (dead nodes pruned) */
  toModelProto (options: ExportOptions = {}): Uint8Array {
    return toModelProto(this, options)
  }

  /** Graph inputs read by a node that reaches an output (or output directly) */
  usedInputs (): Set<Value> {
    const { values } = liveNodes(this)
    return new Set(this.inputs.filter(v => values.has(v)))
  }

  // ---------------------------------------------------------------- values

  private newValue (name: string, dtype: DType, shape: Shape, kind: Value['kind']): Value {
    const v: Value = { id: this.nextId++, name, dtype, shape: [...shape], kind }
    return v
  }

  /** A fresh name in one namespace (ONNX keeps value names and node names apart) */
  private uniqueName (base: string, taken: Set<string> = this.names): string {
    let n = base
    let i = 1
    while (taken.has(n)) n = `${base}_${i++}`
    taken.add(n)
    return n
  }

  /** A fresh symbolic dim for sizes that cannot be inferred statically */
  freshDim (hint: string): string {
    return `${hint}_${this.symCount++}`
  }

  /** Declare a graph input */
  input (name: string, dtype: DType, shape: Shape): Value {
    if (this.names.has(name)) throw new GraphError(`duplicate value name '${name}'`)
    this.names.add(name)
    const v = this.newValue(name, dtype, shape, 'input')
    this.inputs.push(v)
    return v
  }

  /** A constant tensor (exported as an initializer with raw_data) */
  constant (data: TensorData | number[], dtype: DType, shape: Shape, name?: string): Value {
    const size = staticSize(shape)
    if (size === undefined) throw new ShapeError(`constant '${name ?? ''}': shape ${shapeToString(shape)} must be static`)
    const arr = toTyped(data, dtype)
    if (arr.length !== size) throw new ShapeError(`constant '${name ?? ''}': ${arr.length} values for shape ${shapeToString(shape)}`)
    const v = this.newValue(this.uniqueName(name ?? 'const'), dtype, shape, 'constant')
    this.constants.set(v, arr)
    return v
  }

  /** A cached scalar (or small int64 vector) constant */
  scalar (value: number, dtype: DType = this.dtype): Value {
    const key = `${dtype}:s:${value}`
    let v = this.constCache.get(key)
    if (v == null) {
      v = this.constant([value], dtype, [], 'scalar')
      this.constCache.set(key, v)
    }
    return v
  }

  /** A cached 1-D int64 constant (shapes, axes, indices) */
  ints (values: number[]): Value {
    const key = `i64:${values.join(',')}`
    let v = this.constCache.get(key)
    if (v == null) {
      v = this.constant(values, 'int64', [values.length], 'ints')
      this.constCache.set(key, v)
    }
    return v
  }

  /** Mark a value as a graph output under `name` */
  output (value: Value, name: string = value.name): void {
    if (this.outputs.some(o => o.name === name)) throw new GraphError(`duplicate output name '${name}'`)
    this.outputs.push({ name, value })
  }

  private operand (x: Operand, like: Value): Value {
    return typeof x === 'number' ? this.scalar(x, like.dtype) : x
  }

  /**
   * Append a node with explicitly given output types: the escape hatch for ops the builder does not model
   * (fused contrib ops, for instance). No shape inference is done.
   */
  op (op: string, inputs: Array<Value | null>, outputs: Array<{ dtype: DType, shape: Shape }>, attrs: Record<string, AttrValue> = {}, options: OpOptions & { domain?: string } = {}): Value[] {
    const count = (this.opCount.get(op) ?? 0) + 1
    this.opCount.set(op, count)
    const nodeName = this.uniqueName(options.name ?? `${op}_${count}`, this.nodeNames)
    const outs = outputs.map((o, i) => this.newValue(this.uniqueName(outputs.length === 1 ? nodeName : `${nodeName}:${i}`), o.dtype, o.shape, 'node'))
    this.nodes.push({ op, name: nodeName, inputs, outputs: outs, attrs, domain: options.domain ?? '' })
    return outs
  }

  private node1 (op: string, inputs: Array<Value | null>, dtype: DType, shape: Shape, attrs: Record<string, AttrValue> = {}, options: OpOptions = {}): Value {
    return this.op(op, inputs, [{ dtype, shape }], attrs, options)[0]
  }

  private label (op: string, options: OpOptions): string {
    return options.name != null ? `${op} '${options.name}'` : op
  }

  private requireFloat (op: string, options: OpOptions, ...vs: Value[]): void {
    for (const v of vs) {
      if (!isFloat(v.dtype)) throw new ShapeError(`${this.label(op, options)}: expected a float tensor, got ${v.dtype} '${v.name}'`)
    }
  }

  private sameDtype (op: string, options: OpOptions, ...vs: Value[]): DType {
    const d = vs[0].dtype
    for (const v of vs) {
      if (v.dtype !== d) throw new ShapeError(`${this.label(op, options)}: dtype mismatch ${d} vs ${v.dtype} ('${vs[0].name}' and '${v.name}')`)
    }
    return d
  }

  /** Numpy-style broadcast of shapes; symbolic dims must match by name or against 1 */
  broadcastShapes (op: string, options: OpOptions, ...shapes: Shape[]): Shape {
    const rank = Math.max(...shapes.map(s => s.length))
    const out: Dim[] = []
    for (let i = 0; i < rank; i++) {
      let d: Dim = 1
      for (const s of shapes) {
        const j = i - (rank - s.length)
        if (j < 0) continue
        const e = s[j]
        if (e === d || e === 1) continue
        if (d === 1) { d = e; continue }
        if (typeof d === 'number' && typeof e === 'number') {
          throw new ShapeError(`${this.label(op, options)}: cannot broadcast ${shapes.map(shapeToString).join(' with ')} (dim ${i}: ${d} vs ${e})`)
        }
        // Two different symbols, or a symbol against a known size: not provably wrong, so the known size (or the
        // first symbol) wins and onnxruntime checks at run time.
        if (typeof e === 'number') d = e
      }
      out.push(d)
    }
    return out
  }

  // ---------------------------------------------------------------- elementwise

  private binary (op: string, a: Operand, b: Operand, options: OpOptions): Value {
    const av = typeof a === 'number' ? this.operand(a, b as Value) : a
    const bv = this.operand(b, av)
    const dt = this.sameDtype(op, options, av, bv)
    return this.node1(op, [av, bv], dt, this.broadcastShapes(op, options, av.shape, bv.shape), {}, options)
  }

  add (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.binary('Add', a, b, options) }
  sub (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.binary('Sub', a, b, options) }
  mul (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.binary('Mul', a, b, options) }
  div (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.binary('Div', a, b, options) }

  /** x ** p (p broadcast; its gradient is not taken) */
  pow (x: Value, p: Operand, options: OpOptions = {}): Value {
    const pv = this.operand(p, x)
    this.requireFloat('Pow', options, x)
    return this.node1('Pow', [x, pv], x.dtype, this.broadcastShapes('Pow', options, x.shape, pv.shape), {}, options)
  }

  private unary (op: string, x: Value, options: OpOptions, float = true): Value {
    if (float) this.requireFloat(op, options, x)
    return this.node1(op, [x], x.dtype, x.shape, {}, options)
  }

  neg (x: Value, options: OpOptions = {}): Value { return this.unary('Neg', x, options, false) }
  sqrt (x: Value, options: OpOptions = {}): Value { return this.unary('Sqrt', x, options) }
  reciprocal (x: Value, options: OpOptions = {}): Value { return this.unary('Reciprocal', x, options) }
  exp (x: Value, options: OpOptions = {}): Value { return this.unary('Exp', x, options) }
  log (x: Value, options: OpOptions = {}): Value { return this.unary('Log', x, options) }
  sigmoid (x: Value, options: OpOptions = {}): Value { return this.unary('Sigmoid', x, options) }
  tanh (x: Value, options: OpOptions = {}): Value { return this.unary('Tanh', x, options) }
  cos (x: Value, options: OpOptions = {}): Value { return this.unary('Cos', x, options) }
  sin (x: Value, options: OpOptions = {}): Value { return this.unary('Sin', x, options) }
  identity (x: Value, options: OpOptions = {}): Value { return this.unary('Identity', x, options, false) }

  /**
   * SiLU(x) = x * sigmoid(x), decomposed so its VJP comes from the Mul and Sigmoid rules. In float64 it is
   * emitted as x / (1 + exp(-x)): onnxruntime's graph optimizer fuses Mul(x, Sigmoid(x)) into
   * com.microsoft.QuickGelu, whose CPU kernel is float32-only, so the float32 form fails to load in double.
   */
  silu (x: Value, options: OpOptions = {}): Value {
    this.requireFloat('SiLU', options, x)
    const sub = (s: string): OpOptions => options.name != null ? { name: `${options.name}.${s}` } : {}
    if (x.dtype === 'float64') {
      return this.div(x, this.add(1, this.exp(this.neg(x, sub('neg')), sub('exp')), sub('add')), options)
    }
    const s = this.sigmoid(x, sub('sigmoid'))
    return this.mul(x, s, options)
  }

  /** Convert element type */
  cast (x: Value, to: DType, options: OpOptions = {}): Value {
    return this.node1('Cast', [x], to, x.shape, { to: { kind: 'int', value: onnxCode(to) } }, options)
  }

  /** Elementwise comparisons (bool result; no gradient) */
  equal (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.compare('Equal', a, b, options) }
  less (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.compare('Less', a, b, options) }
  lessOrEqual (a: Operand, b: Operand, options: OpOptions = {}): Value { return this.compare('LessOrEqual', a, b, options) }

  private compare (op: string, a: Operand, b: Operand, options: OpOptions): Value {
    const av = typeof a === 'number' ? this.operand(a, b as Value) : a
    const bv = this.operand(b, av)
    this.sameDtype(op, options, av, bv)
    return this.node1(op, [av, bv], 'bool', this.broadcastShapes(op, options, av.shape, bv.shape), {}, options)
  }

  /** Where(cond, a, b): a where cond is true, else b (broadcast) */
  where (cond: Value, a: Operand, b: Operand, options: OpOptions = {}): Value {
    if (cond.dtype !== 'bool') throw new ShapeError(`${this.label('Where', options)}: condition must be bool, got ${cond.dtype}`)
    const av = typeof a === 'number' ? this.operand(a, b as Value) : a
    const bv = this.operand(b, av)
    const dt = this.sameDtype('Where', options, av, bv)
    return this.node1('Where', [cond, av, bv], dt, this.broadcastShapes('Where', options, cond.shape, av.shape, bv.shape), {}, options)
  }

  // ---------------------------------------------------------------- linear algebra

  /** Batched matrix product with numpy broadcasting of the batch dims (both operands rank >= 2) */
  matmul (a: Value, b: Value, options: OpOptions = {}): Value {
    const label = this.label('MatMul', options)
    const dt = this.sameDtype('MatMul', options, a, b)
    if (a.shape.length < 2 || b.shape.length < 2) throw new ShapeError(`${label}: operands must have rank >= 2, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}`)
    const k1 = a.shape[a.shape.length - 1]
    const k2 = b.shape[b.shape.length - 2]
    if (k1 !== k2 && typeof k1 === 'number' && typeof k2 === 'number') throw new ShapeError(`${label}: inner dims ${k1} vs ${k2} (${shapeToString(a.shape)} @ ${shapeToString(b.shape)})`)
    const batch = this.broadcastShapes('MatMul', options, a.shape.slice(0, -2), b.shape.slice(0, -2))
    return this.node1('MatMul', [a, b], dt, [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]], {}, options)
  }

  /**
   * `com.microsoft` `MatMulNBits`: `a [..., K] @ dequant(b)` with `b` a blockwise-quantized `[K, N]` matrix stored
   * transposed and packed: `b` uint8 `[N, ceil(K / blockSize), blockSize · bits / 8]` (4-bit: element 2i in the low
   * nibble of byte i, 2i + 1 in the high nibble), `scales` `[N · ceil(K / blockSize)]` of a's float type,
   * optional `zeroPoints` uint8 (packed like `b`; absent = the midpoint 2^(bits−1)). onnxruntime prepacks `b` only
   * when it is an initializer (a `constant`), which is what makes it fast. `accuracyLevel` 4 lets the CPU kernel
   * quantize `a` to int8 per block (fastest); 0 keeps float activations. Needs the export option
   * `domains: { 'com.microsoft': 1 }`. No VJP rule: inference only.
   */
  matMulNBits (a: Value, b: Value, scales: Value, opts: OpOptions & { K: number, N: number, bits: 2 | 4 | 8, blockSize: number, accuracyLevel?: 0 | 1 | 2 | 3 | 4, zeroPoints?: Value }): Value {
    const label = this.label('MatMulNBits', opts)
    const { K, N, bits, blockSize } = opts
    if (!isFloat(a.dtype)) throw new ShapeError(`${label}: A must be float, got ${a.dtype}`)
    if (scales.dtype !== a.dtype) throw new ShapeError(`${label}: scales must be ${a.dtype} like A, got ${scales.dtype}`)
    if (b.dtype !== 'uint8') throw new ShapeError(`${label}: B must be uint8, got ${b.dtype}`)
    if (![2, 4, 8].includes(bits)) throw new ShapeError(`${label}: bits must be 2, 4 or 8, got ${bits}`)
    if (!(Number.isInteger(blockSize) && blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) throw new ShapeError(`${label}: block_size must be a power of 2 ≥ 16, got ${blockSize}`)
    const kBlocks = Math.ceil(K / blockSize)
    const blob = blockSize * bits / 8
    const want = [N, kBlocks, blob]
    if (b.shape.length !== 3 || b.shape.some((d, i) => d !== want[i])) throw new ShapeError(`${label}: B must be ${shapeToString(want)}, got ${shapeToString(b.shape)}`)
    const ns = staticSize(scales.shape)
    if (ns !== N * kBlocks) throw new ShapeError(`${label}: scales must hold N · ceil(K / block_size) = ${N * kBlocks} values, got ${shapeToString(scales.shape)}`)
    const k1 = a.shape[a.shape.length - 1]
    if (typeof k1 === 'number' && k1 !== K) throw new ShapeError(`${label}: A's last dim ${k1} differs from K = ${K}`)
    const attrs: Record<string, AttrValue> = {
      K: { kind: 'int', value: K },
      N: { kind: 'int', value: N },
      bits: { kind: 'int', value: bits },
      block_size: { kind: 'int', value: blockSize },
      accuracy_level: { kind: 'int', value: opts.accuracyLevel ?? 0 }
    }
    const inputs: Array<Value | null> = [a, b, scales]
    if (opts.zeroPoints != null) inputs.push(opts.zeroPoints)
    return this.op('MatMulNBits', inputs, [{ dtype: a.dtype, shape: [...a.shape.slice(0, -1), N] }], attrs, { name: opts.name, domain: 'com.microsoft' })[0]
  }

  /** Gemm: alpha * op(A) @ op(B) + beta * C, 2-D operands */
  gemm (a: Value, b: Value, c: Value | null, opts: OpOptions & { alpha?: number, beta?: number, transA?: boolean, transB?: boolean } = {}): Value {
    const label = this.label('Gemm', opts)
    const dt = this.sameDtype('Gemm', opts, a, b, ...(c != null ? [c] : []))
    if (a.shape.length !== 2 || b.shape.length !== 2) throw new ShapeError(`${label}: operands must be 2-D, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}`)
    const [m, k1] = opts.transA === true ? [a.shape[1], a.shape[0]] : a.shape
    const [k2, n] = opts.transB === true ? [b.shape[1], b.shape[0]] : b.shape
    if (k1 !== k2 && typeof k1 === 'number' && typeof k2 === 'number') throw new ShapeError(`${label}: inner dims ${k1} vs ${k2}`)
    if (c != null) {
      const s = this.broadcastShapes('Gemm', opts, [m, n], c.shape)
      if (s.length !== 2 || s[0] !== m || s[1] !== n) throw new ShapeError(`${label}: C ${shapeToString(c.shape)} does not broadcast to [${m}, ${n}]`)
    }
    const attrs: Record<string, AttrValue> = {
      alpha: { kind: 'float', value: opts.alpha ?? 1 },
      beta: { kind: 'float', value: opts.beta ?? 1 },
      transA: { kind: 'int', value: opts.transA === true ? 1 : 0 },
      transB: { kind: 'int', value: opts.transB === true ? 1 : 0 }
    }
    return this.node1('Gemm', c != null ? [a, b, c] : [a, b], dt, [m, n], attrs, opts)
  }

  // ---------------------------------------------------------------- reductions / softmax

  private reduce (op: string, x: Value, axes: number[], keepdims: boolean, options: OpOptions): Value {
    const label = this.label(op, options)
    const r = x.shape.length
    const norm = axes.map(a => normAxis(a, r, label))
    const shape: Dim[] = []
    x.shape.forEach((d, i) => {
      if (!norm.includes(i)) shape.push(d)
      else if (keepdims) shape.push(1)
    })
    return this.node1(op, [x, this.ints(norm)], x.dtype, shape, { keepdims: { kind: 'int', value: keepdims ? 1 : 0 } }, options)
  }

  reduceSum (x: Value, axes: number[], keepdims = true, options: OpOptions = {}): Value { return this.reduce('ReduceSum', x, axes, keepdims, options) }
  reduceMean (x: Value, axes: number[], keepdims = true, options: OpOptions = {}): Value { return this.reduce('ReduceMean', x, axes, keepdims, options) }
  /** ReduceMax has no VJP rule: use it only off the differentiated path (e.g. for a stop-gradient shift) */
  reduceMax (x: Value, axes: number[], keepdims = true, options: OpOptions = {}): Value { return this.reduce('ReduceMax', x, axes, keepdims, options) }

  softmax (x: Value, axis = -1, options: OpOptions = {}): Value {
    this.requireFloat('Softmax', options, x)
    normAxis(axis, x.shape.length, this.label('Softmax', options))
    return this.node1('Softmax', [x], x.dtype, x.shape, { axis: { kind: 'int', value: axis } }, options)
  }

  logSoftmax (x: Value, axis = -1, options: OpOptions = {}): Value {
    this.requireFloat('LogSoftmax', options, x)
    normAxis(axis, x.shape.length, this.label('LogSoftmax', options))
    return this.node1('LogSoftmax', [x], x.dtype, x.shape, { axis: { kind: 'int', value: axis } }, options)
  }

  // ---------------------------------------------------------------- shape ops

  /**
   * Reshape to `shape`: numbers (0 copies the input dim at that index, -1 is inferred), or a runtime int64
   * shape tensor together with the output shape it is known to produce.
   */
  reshape (x: Value, shape: number[] | { tensor: Value, shape: Shape }, options: OpOptions = {}): Value {
    if (!Array.isArray(shape)) {
      return this.node1('Reshape', [x, shape.tensor], x.dtype, shape.shape, {}, options)
    }
    const out = this.inferReshape(x, shape, options)
    return this.node1('Reshape', [x, this.ints(shape)], x.dtype, out, {}, options)
  }

  private inferReshape (x: Value, target: number[], options: OpOptions): Shape {
    const label = this.label('Reshape', options)
    if (target.filter(t => t === -1).length > 1) throw new ShapeError(`${label}: more than one -1 in ${shapeToString(target)}`)
    const out: Dim[] = target.map((t, i) => {
      if (t === 0) {
        if (i >= x.shape.length) throw new ShapeError(`${label}: 0 at index ${i} but input has rank ${x.shape.length}`)
        return x.shape[i]
      }
      if (t < -1) throw new ShapeError(`${label}: invalid target dim ${t}`)
      return t
    })
    // count input elements as a numeric factor times a multiset of symbols
    let num = 1
    const syms: string[] = []
    for (const d of x.shape) { if (typeof d === 'number') num *= d; else syms.push(d) }
    let onum = 1
    const osyms: string[] = []
    out.forEach((d, i) => {
      if (target[i] === -1) return
      if (typeof d === 'number') onum *= d; else osyms.push(d)
    })
    for (const s of osyms) {
      const j = syms.indexOf(s)
      if (j >= 0) syms.splice(j, 1)
      else if (!target.includes(-1)) syms.push(`1/${s}`)
    }
    const hole = target.indexOf(-1)
    if (hole >= 0) {
      if (syms.length === 0) {
        if (num % onum !== 0) throw new ShapeError(`${label}: cannot reshape ${shapeToString(x.shape)} to ${shapeToString(target)}`)
        out[hole] = num / onum
      } else if (!syms.some(x => x.startsWith('1/')) && num % onum === 0) {
        // a product of symbols, e.g. 'batch*seq' (ONNX dim_param is any string)
        out[hole] = [...(num / onum === 1 ? [] : [String(num / onum)]), ...syms].join('*')
      } else {
        out[hole] = this.freshDim('reshape')
      }
    } else if (syms.length === 0 && num !== onum) {
      throw new ShapeError(`${label}: cannot reshape ${shapeToString(x.shape)} (${num} elements) to ${shapeToString(target)} (${onum} elements)`)
    }
    return out
  }

  transpose (x: Value, perm: number[], options: OpOptions = {}): Value {
    const label = this.label('Transpose', options)
    if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      throw new ShapeError(`${label}: perm ${shapeToString(perm)} is not a permutation of rank ${x.shape.length}`)
    }
    return this.node1('Transpose', [x], x.dtype, perm.map(p => x.shape[p]), { perm: { kind: 'ints', value: perm } }, options)
  }

  unsqueeze (x: Value, axes: number[], options: OpOptions = {}): Value {
    const r = x.shape.length + axes.length
    const norm = axes.map(a => normAxis(a, r, this.label('Unsqueeze', options))).sort((a, b) => a - b)
    const out: Dim[] = []
    let j = 0
    for (let i = 0; i < r; i++) out.push(norm.includes(i) ? 1 : x.shape[j++])
    return this.node1('Unsqueeze', [x, this.ints(norm)], x.dtype, out, {}, options)
  }

  squeeze (x: Value, axes: number[], options: OpOptions = {}): Value {
    const label = this.label('Squeeze', options)
    const norm = axes.map(a => normAxis(a, x.shape.length, label))
    for (const a of norm) if (typeof x.shape[a] === 'number' && x.shape[a] !== 1) throw new ShapeError(`${label}: axis ${a} has size ${x.shape[a]}, not 1`)
    return this.node1('Squeeze', [x, this.ints(norm)], x.dtype, x.shape.filter((_, i) => !norm.includes(i)), {}, options)
  }

  /**
   * Slice with constant starts/ends (steps 1 unless given). Ends may be `Infinity` (to the end). Starts/ends
   * may also be runtime int64 values (1-D, one per axis), in which case the sliced dims become symbolic
   * unless `shape` is given.
   */
  slice (x: Value, starts: number[] | Value, ends: number[] | Value, axes: number[], options: OpOptions & { steps?: number[], shape?: Shape } = {}): Value {
    const label = this.label('Slice', options)
    const r = x.shape.length
    const ax = axes.map(a => normAxis(a, r, label))
    const steps = options.steps ?? ax.map(() => 1)
    const out = [...x.shape]
    // ORT clamps out-of-range ends, so 2^53-1 stands for "to the end"
    const toI64 = (v: number): number => v === Infinity ? Number.MAX_SAFE_INTEGER : v === -Infinity ? -Number.MAX_SAFE_INTEGER : v
    if (Array.isArray(starts) && Array.isArray(ends)) {
      if (starts.length !== ax.length || ends.length !== ax.length) throw new ShapeError(`${label}: starts/ends/axes lengths differ`)
      ax.forEach((a, i) => {
        const d = x.shape[a]
        const st = steps[i]
        if (st === 0) throw new ShapeError(`${label}: step 0`)
        if (typeof d === 'number') {
          const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v))
          let s = starts[i] < 0 ? starts[i] + d : starts[i]
          let e = ends[i] < 0 ? ends[i] + d : ends[i]
          if (st > 0) { s = clamp(s, 0, d); e = clamp(e, 0, d); out[a] = Math.max(0, Math.ceil((e - s) / st)) } else { s = clamp(s, -1, d - 1); e = clamp(e, -1, d - 1); out[a] = Math.max(0, Math.ceil((s - e) / -st)) }
        } else if (starts[i] === 0 && ends[i] === Infinity && st === 1) {
          out[a] = d
        } else {
          out[a] = this.freshDim('slice')
        }
      })
    } else {
      ax.forEach((a) => { out[a] = options.shape?.[a] ?? this.freshDim('slice') })
    }
    const sv = Array.isArray(starts) ? this.ints(starts.map(toI64)) : starts
    const ev = Array.isArray(ends) ? this.ints(ends.map(toI64)) : ends
    return this.node1('Slice', [x, sv, ev, this.ints(ax), this.ints(steps)], x.dtype, options.shape ?? out, {}, options)
  }

  concat (xs: Value[], axis: number, options: OpOptions = {}): Value {
    const label = this.label('Concat', options)
    if (xs.length === 0) throw new ShapeError(`${label}: no inputs`)
    const dt = this.sameDtype('Concat', options, ...xs)
    const r = xs[0].shape.length
    const a = normAxis(axis, r, label)
    let total: Dim = 0
    for (const x of xs) {
      if (x.shape.length !== r) throw new ShapeError(`${label}: rank mismatch ${shapeToString(xs[0].shape)} vs ${shapeToString(x.shape)}`)
      x.shape.forEach((d, i) => {
        if (i !== a && d !== xs[0].shape[i] && typeof d === 'number' && typeof xs[0].shape[i] === 'number') throw new ShapeError(`${label}: dim ${i} mismatch ${shapeToString(xs[0].shape)} vs ${shapeToString(x.shape)}`)
      })
      const d = x.shape[a]
      total = typeof total === 'number' && typeof d === 'number' ? total + d : `${total}+${d}`
    }
    if (typeof total === 'string') total = total.replace(/^0\+/, '')
    const out = [...xs[0].shape]
    out[a] = total
    return this.node1('Concat', xs, dt, out, { axis: { kind: 'int', value: a } }, options)
  }

  /** Split along `axis` into pieces of the given sizes (constant), or equal halves etc. from a runtime sizes tensor */
  split (x: Value, sizes: number[] | { tensor: Value, shapes: Shape[] }, axis: number, options: OpOptions = {}): Value[] {
    const label = this.label('Split', options)
    const a = normAxis(axis, x.shape.length, label)
    if (!Array.isArray(sizes)) {
      return this.op('Split', [x, sizes.tensor], sizes.shapes.map(s => ({ dtype: x.dtype, shape: s })), { axis: { kind: 'int', value: a } }, options)
    }
    const d = x.shape[a]
    const sum = sizes.reduce((p, c) => p + c, 0)
    if (typeof d === 'number' && d !== sum) throw new ShapeError(`${label}: sizes ${shapeToString(sizes)} sum to ${sum}, axis ${a} has ${d}`)
    const outs = sizes.map(s => { const sh = [...x.shape]; sh[a] = s; return { dtype: x.dtype, shape: sh } })
    return this.op('Split', [x, this.ints(sizes)], outs, { axis: { kind: 'int', value: a } }, options)
  }

  /** Gather rows of `data` along `axis` (embedding lookup when axis = 0) */
  gather (data: Value, indices: Value, axis = 0, options: OpOptions = {}): Value {
    const label = this.label('Gather', options)
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32') throw new ShapeError(`${label}: indices must be int64 or int32, got ${indices.dtype}`)
    const a = normAxis(axis, data.shape.length, label)
    const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)]
    return this.node1('Gather', [data, indices], data.dtype, shape, { axis: { kind: 'int', value: a } }, options)
  }

  /** GatherElements: out[i][j][k] = data[i][j][indices[i][j][k]] along `axis` (indices has data's rank) */
  gatherElements (data: Value, indices: Value, axis: number, options: OpOptions = {}): Value {
    const label = this.label('GatherElements', options)
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32') throw new ShapeError(`${label}: indices must be int64 or int32, got ${indices.dtype}`)
    if (indices.shape.length !== data.shape.length) throw new ShapeError(`${label}: indices rank ${indices.shape.length} differs from data rank ${data.shape.length}`)
    const a = normAxis(axis, data.shape.length, label)
    return this.node1('GatherElements', [data, indices], data.dtype, indices.shape, { axis: { kind: 'int', value: a } }, options)
  }

  /** ScatterElements(data, indices, updates) along `axis`, with an optional reduction */
  scatterElements (data: Value, indices: Value, updates: Value, axis: number, reduction: 'none' | 'add' = 'none', options: OpOptions = {}): Value {
    this.sameDtype('ScatterElements', options, data, updates)
    const a = normAxis(axis, data.shape.length, this.label('ScatterElements', options))
    const attrs: Record<string, AttrValue> = { axis: { kind: 'int', value: a } }
    if (reduction !== 'none') attrs.reduction = { kind: 'string', value: reduction }
    return this.node1('ScatterElements', [data, indices, updates], data.dtype, data.shape, attrs, options)
  }

  /** ScatterND(data, indices, updates) with an optional reduction ('add' accumulates duplicates) */
  scatterND (data: Value, indices: Value, updates: Value, reduction: 'none' | 'add' = 'none', options: OpOptions = {}): Value {
    this.sameDtype('ScatterND', options, data, updates)
    return this.node1('ScatterND', [data, indices, updates], data.dtype, data.shape, reduction === 'none' ? {} : { reduction: { kind: 'string', value: reduction } }, options)
  }

  /** Expand `x` to a runtime shape (int64 1-D) whose static form is `shape` */
  expand (x: Value, shape: { tensor: Value, shape: Shape } | number[], options: OpOptions = {}): Value {
    if (Array.isArray(shape)) {
      return this.node1('Expand', [x, this.ints(shape)], x.dtype, this.broadcastShapes('Expand', options, x.shape, shape), {}, options)
    }
    return this.node1('Expand', [x, shape.tensor], x.dtype, shape.shape, {}, options)
  }

  /** Pad with constant zeros; pads = [begin_0.., end_0..] over `axes` */
  pad (x: Value, pads: number[], axes: number[], options: OpOptions = {}): Value {
    const label = this.label('Pad', options)
    const ax = axes.map(a => normAxis(a, x.shape.length, label))
    const out = [...x.shape]
    ax.forEach((a, i) => {
      const d = out[a]
      const extra = pads[i] + pads[i + ax.length]
      out[a] = typeof d === 'number' ? d + extra : extra === 0 ? d : this.freshDim('pad')
    })
    return this.node1('Pad', [x, this.ints(pads), null, this.ints(ax)], x.dtype, out, { mode: { kind: 'string', value: 'constant' } }, options)
  }

  /** Shape(x) as an int64 1-D tensor */
  shapeOf (x: Value, options: OpOptions = {}): Value {
    return this.node1('Shape', [x], 'int64', [x.shape.length], {}, options)
  }

  /** One dim of x as an int64 scalar */
  dimOf (x: Value, axis: number, options: OpOptions = {}): Value {
    const a = normAxis(axis, x.shape.length, this.label('Shape', options))
    const d = this.node1('Shape', [x], 'int64', [1], { start: { kind: 'int', value: a }, end: { kind: 'int', value: a + 1 } }, options)
    return this.reshape(d, [])
  }

  /** Number of elements of x as an int64 scalar */
  sizeOf (x: Value, options: OpOptions = {}): Value {
    return this.node1('Size', [x], 'int64', [], {}, options)
  }

  /** Range(start, limit, delta) of scalars; `length` names the output dim */
  range (start: Value, limit: Value, delta: Value, length: Dim = this.freshDim('range'), options: OpOptions = {}): Value {
    const dt = this.sameDtype('Range', options, start, limit, delta)
    for (const v of [start, limit, delta]) if (v.shape.length !== 0) throw new ShapeError(`${this.label('Range', options)}: inputs must be scalars, '${v.name}' is ${shapeToString(v.shape)}`)
    return this.node1('Range', [start, limit, delta], dt, [length], {}, options)
  }

  /** A tensor of the given runtime shape filled with `value` */
  constantOfShape (shape: { tensor: Value, shape: Shape }, value: number, dtype: DType = this.dtype, options: OpOptions = {}): Value {
    return this.node1('ConstantOfShape', [shape.tensor], dtype, shape.shape, { value: { kind: 'tensor', dtype, value } }, options)
  }

  /** zeros with the shape and dtype of x */
  zerosLike (x: Value): Value {
    if (isStatic(x.shape)) {
      return this.expand(this.scalar(0, x.dtype), x.shape)
    }
    return this.constantOfShape({ tensor: this.shapeOf(x), shape: x.shape }, 0, x.dtype)
  }

  /** Reshape x to the (runtime) shape of `like` */
  reshapeLike (x: Value, like: Value, options: OpOptions = {}): Value {
    if (isStatic(like.shape)) return this.reshape(x, like.shape, options)
    return this.reshape(x, { tensor: this.shapeOf(like), shape: like.shape }, options)
  }

  /** Expand x to the (runtime) shape of `like` */
  expandLike (x: Value, like: Value, options: OpOptions = {}): Value {
    if (isStatic(like.shape)) return this.expand(x, like.shape, options)
    return this.expand(x, { tensor: this.shapeOf(like), shape: like.shape }, options)
  }
}

/** Wraps a number list as an ONNX `floats` attribute */
export function floats (value: number[]): AttrValue { return { kind: 'floats', value } }

export function onnxCode (dtype: DType): number {
  switch (dtype) {
    case 'float32': return 1
    case 'uint8': return 2
    case 'int8': return 3
    case 'int32': return 6
    case 'int64': return 7
    case 'bool': return 9
    case 'float64': return 11
  }
}

export function toTyped (data: TensorData | number[], dtype: DType): TensorData {
  if (!Array.isArray(data)) {
    const ok = (dtype === 'float32' && data instanceof Float32Array) || (dtype === 'float64' && data instanceof Float64Array) ||
      (dtype === 'int64' && data instanceof BigInt64Array) || (dtype === 'int32' && data instanceof Int32Array) || (dtype === 'bool' && data instanceof Uint8Array) ||
      (dtype === 'uint8' && data instanceof Uint8Array) || (dtype === 'int8' && data instanceof Int8Array)
    if (!ok) throw new ShapeError(`constant data does not match dtype ${dtype}`)
    return data
  }
  switch (dtype) {
    case 'float32': return Float32Array.from(data)
    case 'float64': return Float64Array.from(data)
    case 'int64': return BigInt64Array.from(data.map(v => BigInt(Math.trunc(v))))
    case 'int32': return Int32Array.from(data)
    case 'bool': return Uint8Array.from(data.map(v => v !== 0 ? 1 : 0))
    case 'uint8': return Uint8Array.from(data)
    case 'int8': return Int8Array.from(data)
  }
}

import { onnx } from './onnx.js'
import { GraphError } from './errors.js'
import { onnxCode } from './graph.js'
import type { AttrValue, GraphBuilder, Node, TensorData, Value } from './graph.js'
import type { DType, Shape } from './types.js'

/** ONNX IR version written into every model (IR 11 is the version that introduced opset 23) */
export const IR_VERSION = 11
/** Default opset of the ai.onnx domain */
export const OPSET = 23

export interface ExportOptions {
  /** @default 23 */
  opset?: number
  /** Extra opset imports, e.g. `{ 'com.microsoft': 1 }` */
  domains?: Record<string, number>
  /** Write intermediate value shapes as value_info (helps debugging, costs bytes) @default false */
  valueInfo?: boolean
  /** Leave out graph inputs that no live node or output reads @default false */
  pruneInputs?: boolean
}

function valueInfo (name: string, dtype: DType, shape: Shape): onnx.ValueInfoProto {
  return {
    name,
    docString: '',
    type: {
      tensorType: {
        elemType: onnxCode(dtype),
        shape: { dim: shape.map(d => typeof d === 'number' ? { dimValue: BigInt(d) } : { dimParam: d }) }
      }
    }
  }
}

function rawBytes (data: TensorData): Uint8Array<ArrayBuffer> {
  // little-endian host assumed (x86, arm64): typed array bytes are ONNX raw_data
  const out = new Uint8Array(data.byteLength)
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  return out
}

function tensorProto (name: string, dtype: DType, shape: number[], data: TensorData): onnx.TensorProto {
  return {
    name,
    dims: shape.map(d => BigInt(d)),
    dataType: onnxCode(dtype),
    rawData: rawBytes(data),
    floatData: [],
    int32Data: [],
    int64Data: [],
    doubleData: [],
    docString: ''
  }
}

function attribute (name: string, a: AttrValue): onnx.AttributeProto {
  const base: onnx.AttributeProto = { name, f: 0, i: 0n, s: new Uint8Array(0), floats: [], ints: [], strings: [], type: onnx.AttributeProto.AttributeType.UNDEFINED }
  switch (a.kind) {
    case 'int': return { ...base, i: BigInt(a.value), type: onnx.AttributeProto.AttributeType.INT }
    case 'ints': return { ...base, ints: a.value.map(v => BigInt(v)), type: onnx.AttributeProto.AttributeType.INTS }
    case 'float': return { ...base, f: a.value, type: onnx.AttributeProto.AttributeType.FLOAT }
    case 'floats': return { ...base, floats: a.value, type: onnx.AttributeProto.AttributeType.FLOATS }
    case 'string': return { ...base, s: new TextEncoder().encode(a.value), type: onnx.AttributeProto.AttributeType.STRING }
    case 'tensor': {
      const data = a.dtype === 'float32'
        ? Float32Array.of(a.value)
        : a.dtype === 'float64'
          ? Float64Array.of(a.value)
          : a.dtype === 'int64' ? BigInt64Array.of(BigInt(a.value)) : a.dtype === 'int32' ? Int32Array.of(a.value) : a.dtype === 'int8' ? Int8Array.of(a.value) : Uint8Array.of(a.value)
      return { ...base, t: tensorProto('', a.dtype, [1], data), type: onnx.AttributeProto.AttributeType.TENSOR }
    }
  }
}

/**
 * Nodes needed to compute the graph outputs, in their original (topological) order. Dead code (for instance
 * forward nodes a backward graph does not need) is dropped here.
 */
export function liveNodes (g: GraphBuilder): { nodes: Node[], values: Set<Value> } {
  const producer = new Map<Value, Node>()
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n)
  const live = new Set<Node>()
  const values = new Set<Value>()
  const stack: Value[] = g.outputs.map(o => o.value)
  while (stack.length > 0) {
    const v = stack.pop() as Value
    if (values.has(v)) continue
    values.add(v)
    const n = producer.get(v)
    if (n != null && !live.has(n)) {
      live.add(n)
      for (const i of n.inputs) if (i != null) stack.push(i)
    }
  }
  return { nodes: g.nodes.filter(n => live.has(n)), values }
}

/** Serialize the graph as ONNX ModelProto bytes */
export function toModelProto (g: GraphBuilder, options: ExportOptions = {}): Uint8Array {
  if (g.outputs.length === 0) throw new GraphError(`graph '${g.name}' has no outputs`)
  const { nodes, values } = liveNodes(g)
  // Rename node outputs that are exported so no Identity is needed; otherwise alias through Identity.
  const rename = new Map<Value, string>()
  const extra: onnx.NodeProto[] = []
  const taken = new Set<string>([...g.inputs.map(v => v.name), ...[...g.constants.keys()].map(v => v.name)])
  for (const n of g.nodes) for (const o of n.outputs) taken.add(o.name)
  for (const o of g.outputs) {
    if (o.value.kind === 'node' && !rename.has(o.value) && (o.value.name === o.name || !taken.has(o.name))) {
      rename.set(o.value, o.name)
      taken.add(o.name)
    }
  }
  const nameOf = (v: Value): string => rename.get(v) ?? v.name
  for (const o of g.outputs) {
    if (nameOf(o.value) !== o.name) {
      if (taken.has(o.name)) throw new GraphError(`output name '${o.name}' is already the name of another value in graph '${g.name}'`)
      taken.add(o.name)
      extra.push({ input: [nameOf(o.value)], output: [o.name], name: `output_${o.name}`, opType: 'Identity', attribute: [], docString: '', domain: '' })
    }
  }
  const nodeProtos: onnx.NodeProto[] = nodes.map(n => ({
    input: n.inputs.map(i => i == null ? '' : nameOf(i)),
    output: n.outputs.map(nameOf),
    name: n.name,
    opType: n.op,
    attribute: Object.entries(n.attrs).map(([k, a]) => attribute(k, a)),
    docString: '',
    domain: n.domain
  }))
  // Initializers are encoded without their raw data through protons, and the raw bytes are appended by hand
  // (one copy straight from the typed array into the output): protons writes large byte fields slowly
  // (≈ 15 MB/s), and a 500 MB model would otherwise take tens of seconds and two extra copies.
  const initializers: Array<{ head: Uint8Array, data: TensorData }> = []
  for (const [v, data] of g.constants) {
    if (values.has(v)) initializers.push({ head: onnx.TensorProto.encode(tensorProto(v.name, v.dtype, v.shape as number[], EMPTY)), data })
  }
  const graph: onnx.GraphProto = {
    node: [...nodeProtos, ...extra],
    name: g.name,
    initializer: [],
    docString: '',
    input: g.inputs.filter(v => options.pruneInputs !== true || values.has(v)).map(v => valueInfo(v.name, v.dtype, v.shape)),
    output: g.outputs.map(o => valueInfo(o.name, o.value.dtype, o.value.shape)),
    valueInfo: options.valueInfo === true
      ? nodes.flatMap(n => n.outputs.filter(o => values.has(o)).map(o => valueInfo(nameOf(o), o.dtype, o.shape)))
      : []
  }
  const opsetImport: onnx.OperatorSetIdProto[] = [{ domain: '', version: BigInt(options.opset ?? OPSET) }]
  for (const [domain, version] of Object.entries(options.domains ?? {})) opsetImport.push({ domain, version: BigInt(version) })
  const model = onnx.ModelProto.encode({
    irVersion: BigInt(IR_VERSION),
    producerName: '@neuroshard/onnx-graph',
    producerVersion: '0.1.0',
    domain: '',
    modelVersion: 1n,
    docString: '',
    opsetImport
  })
  const graphHead = onnx.GraphProto.encode(graph)
  // protobuf: a message's fields may come in any order and repeated fields are appended, so
  // GraphProto = graphHead ‖ (field 5: initializer)*, each TensorProto = head ‖ (field 9: raw_data)
  const tensorLen = initializers.map(t => t.head.length + fieldLength(TENSOR_RAW_DATA, t.data.byteLength))
  const graphLen = graphHead.length + tensorLen.reduce((a, n) => a + fieldLength(GRAPH_INITIALIZER, n), 0)
  const out = new Uint8Array(model.length + fieldLength(MODEL_GRAPH, graphLen))
  out.set(model, 0)
  let o = model.length
  o = writeFieldHeader(out, o, MODEL_GRAPH, graphLen)
  out.set(graphHead, o)
  o += graphHead.length
  initializers.forEach((t, i) => {
    o = writeFieldHeader(out, o, GRAPH_INITIALIZER, tensorLen[i])
    out.set(t.head, o)
    o += t.head.length
    // little-endian host assumed (x86, arm64): typed array bytes are ONNX raw_data
    o = writeFieldHeader(out, o, TENSOR_RAW_DATA, t.data.byteLength)
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o)
    o += t.data.byteLength
  })
  if (o !== out.length) throw new GraphError(`internal: encoded ${o} of ${out.length} bytes`)
  return out
}

const EMPTY = new Uint8Array(0)
/** Field numbers of the length-delimited fields written by hand (src/onnx.proto) */
const MODEL_GRAPH = 7
const GRAPH_INITIALIZER = 5
const TENSOR_RAW_DATA = 9

function varintLength (n: number): number {
  let len = 1
  while (n >= 128) { n = Math.floor(n / 128); len++ }
  return len
}

/** Bytes of a length-delimited field with a payload of `n` bytes (tag + length + payload) */
function fieldLength (field: number, n: number): number {
  return varintLength(field << 3) + varintLength(n) + n
}

function writeFieldHeader (out: Uint8Array, o: number, field: number, n: number): number {
  out[o++] = (field << 3) | 2
  while (n >= 128) { out[o++] = (n % 128) | 128; n = Math.floor(n / 128) }
  out[o++] = n
  return o
}

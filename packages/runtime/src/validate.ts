import { InvalidTensorError, NonFiniteTensorError, SequenceTooLongError, ShapeMismatchError, TokenIdOutOfRangeError } from './errors.js'
import { arrayMatchesType, numel } from './tensor.js'
import type { ValueInfo } from './protocol.js'
import type { TensorData } from './tensor.js'

/** Index of the first NaN/±Inf in a float array, or -1 */
export function firstNonFinite (data: TensorData['data'], type: TensorData['type']): number {
  if (type === 'float32' || type === 'float64') {
    const a = data as Float32Array
    for (let i = 0; i < a.length; i++) {
      const x = a[i]
      if (x - x !== 0) return i
    }
  } else if (type === 'float16') {
    const a = data as Uint16Array
    for (let i = 0; i < a.length; i++) if ((a[i] & 0x7c00) === 0x7c00) return i
  }
  return -1
}

/** Throw `NonFiniteTensorError` naming `name` if a float tensor holds NaN or ±Inf */
export function assertFinite (name: string, t: TensorData): void {
  const i = firstNonFinite(t.data, t.type)
  if (i >= 0) {
    const v = t.type === 'float16' ? 'NaN/Inf' : String((t.data as Float32Array)[i])
    throw new NonFiniteTensorError(name, `tensor ${name} holds a non-finite value (${v}) at flat index ${i}`)
  }
}

/** Check a tensor's array class and element count against its own dims */
export function assertWellFormed (name: string, t: TensorData): void {
  if (t == null || typeof t !== 'object' || !Array.isArray(t.dims)) throw new InvalidTensorError(name, `tensor ${name} must be { type, dims, data }`)
  if (!arrayMatchesType(t.type, t.data)) throw new InvalidTensorError(name, `tensor ${name}: type ${String(t.type)} does not match its ${t.data?.constructor?.name ?? typeof t.data} data`)
  if (!t.dims.every(d => Number.isSafeInteger(d) && d >= 0)) throw new ShapeMismatchError(name, `tensor ${name}: dims ${JSON.stringify(t.dims)} are not non-negative integers`)
  if (numel(t.dims) !== t.data.length) throw new ShapeMismatchError(name, `tensor ${name}: dims ${JSON.stringify(t.dims)} need ${numel(t.dims)} elements, data has ${t.data.length}`)
}

/** Index of the first integer outside [0, bound) in an int64/int32 array, or -1 */
export function firstOutOfRange (data: TensorData['data'], type: TensorData['type'], bound: number): number {
  if (type === 'int64') {
    const a = data as BigInt64Array
    const b = BigInt(bound)
    for (let i = 0; i < a.length; i++) {
      const x = a[i]
      if (x < 0n || x >= b) return i
    }
  } else if (type === 'int32') {
    const a = data as Int32Array
    for (let i = 0; i < a.length; i++) {
      const x = a[i]
      if (x < 0 || x >= bound) return i
    }
  }
  return -1
}

/** Throw `TokenIdOutOfRangeError` naming `name` if an integer tensor holds a value outside [0, bound) */
export function assertIndicesInRange (name: string, t: TensorData, bound: number): void {
  const i = firstOutOfRange(t.data, t.type, bound)
  if (i >= 0) {
    throw new TokenIdOutOfRangeError(name, `tensor ${name} holds ${String(t.data[i])} at flat index ${i}, outside [0, ${bound})`)
  }
}

/** Limits on a symbolic dimension (see `ValidateFeedsOptions.dimLimits`) */
export interface DimLimit {
  /** Smallest allowed value (below it: `ShapeMismatchError`) */
  min?: number
  /** Largest allowed value (above it: `SequenceTooLongError` if `sequence`, else `ShapeMismatchError`) */
  max?: number
  /** The dim is a sequence length */
  sequence?: boolean
  /** Why the limit is what it is (appended to the error message) */
  reason?: string
}

export interface ValidateFeedsOptions {
  /** Tensors already held by the worker (weights), checked for shape/type consistency too */
  resident?: ReadonlyMap<string, { type: string, dims: readonly number[] }>
  /** Inputs the worker supplies itself (KV-cache state), allowed to be missing */
  implicit?: (name: string) => boolean
  /**
   * Scan float feeds for NaN/Inf
   *
   * @default true
   */
  checkFinite?: boolean
  /**
   * Integer inputs whose values must lie in [0, bound): tensor name → bound (token ids and targets →
   * vocabSize). Violations raise `TokenIdOutOfRangeError`, checked whatever `checkFinite` says.
   */
  indexBounds?: Readonly<Record<string, number>>
  /**
   * Limits on symbolic dims by name (e.g. `{ batch: { min: 1 }, seq: { min: 1, max: maxSeqLen, sequence: true } }`);
   * the error names the tensor that bound the dim.
   */
  dimLimits?: Readonly<Record<string, DimLimit>>
}

/**
 * Validate feeds against a graph's inputs before running: every name is an input, every input is fed
 * (or resident / implicit), element types match, ranks (scalars included) and fixed dims match, each
 * symbolic dim binds to one value across all tensors and stays within `dimLimits`; then integer feeds
 * named in `indexBounds` are checked against their range and float feeds are scanned for NaN/Inf.
 * Returns the symbolic bindings.
 */
export function validateFeeds (inputs: readonly ValueInfo[], feeds: Record<string, TensorData>, options: ValidateFeedsOptions = {}): Map<string, number> {
  const byName = new Map(inputs.map(i => [i.name, i]))
  for (const name of Object.keys(feeds)) {
    if (!byName.has(name)) throw new InvalidTensorError(name, `${name} is not an input of this graph (inputs: ${inputs.map(i => i.name).join(', ')})`)
  }
  const bound = new Map<string, { value: number, from: string }>()
  for (const info of inputs) {
    const fed = feeds[info.name]
    const res = fed === undefined ? options.resident?.get(info.name) : undefined
    if (fed === undefined && res === undefined) {
      if (options.implicit?.(info.name) === true) continue
      throw new InvalidTensorError(info.name, `missing input ${info.name} (${info.type} ${JSON.stringify(info.shape)})`)
    }
    const type = fed?.type ?? res!.type
    const dims = fed?.dims ?? res!.dims
    if (fed !== undefined) assertWellFormed(info.name, fed)
    if (type !== info.type) throw new InvalidTensorError(info.name, `tensor ${info.name} is ${type}, the graph expects ${info.type}`)
    // the rank is always checked, scalars included: onnxruntime itself runs a declared scalar input fed
    // as [n] (and reports an input of unknown rank as [] too: graphs must declare their input shapes)
    if (dims.length !== info.shape.length) {
      throw new ShapeMismatchError(info.name, `tensor ${info.name} has shape ${JSON.stringify(dims)}, the graph expects rank ${info.shape.length} ${JSON.stringify(info.shape)}`)
    }
    info.shape.forEach((d, i) => {
      if (typeof d === 'number') {
        if (d >= 0 && dims[i] !== d) throw new ShapeMismatchError(info.name, `tensor ${info.name} has shape ${JSON.stringify(dims)}, the graph expects ${JSON.stringify(info.shape)} (dim ${i} must be ${d})`)
      } else if (d !== '') {
        const prev = bound.get(d)
        if (prev === undefined) bound.set(d, { value: dims[i], from: info.name })
        else if (prev.value !== dims[i]) {
          throw new ShapeMismatchError(info.name, `tensor ${info.name} dim ${i} ('${d}') is ${dims[i]} but ${prev.from} bound '${d}' to ${prev.value}`)
        }
      }
    })
  }
  if (options.dimLimits !== undefined) {
    for (const [dim, limit] of Object.entries(options.dimLimits)) {
      const b = bound.get(dim)
      if (b === undefined) continue
      const why = limit.reason !== undefined ? ` (${limit.reason})` : ''
      if (limit.min !== undefined && b.value < limit.min) {
        throw new ShapeMismatchError(b.from, `tensor ${b.from}: dim '${dim}' is ${b.value}, must be at least ${limit.min}${why}`)
      }
      if (limit.max !== undefined && b.value > limit.max) {
        const E = limit.sequence === true ? SequenceTooLongError : ShapeMismatchError
        throw new E(b.from, `tensor ${b.from}: dim '${dim}' is ${b.value}, must be at most ${limit.max}${why}`)
      }
    }
  }
  // contents last, so a tensor of the wrong shape is refused before it is scanned
  for (const [name, fed] of Object.entries(feeds)) {
    const indexBound = options.indexBounds?.[name]
    if (indexBound !== undefined) assertIndicesInRange(name, fed, indexBound)
    if (options.checkFinite !== false) assertFinite(name, fed)
  }
  return new Map([...bound].map(([k, v]) => [k, v.value]))
}

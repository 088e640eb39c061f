import { InvalidTensorError, NonFiniteTensorError, ShapeMismatchError } from './errors.js'
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
}

/**
 * Validate feeds against a graph's inputs before running: every name is an input, every input is fed
 * (or resident / implicit), element types match, ranks and fixed dims match, and each symbolic dim binds
 * to one value across all tensors. Float feeds are scanned for NaN/Inf. Returns the symbolic bindings.
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
    if (info.shape.length > 0 || dims.length === 0) {
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
    if (fed !== undefined && options.checkFinite !== false) assertFinite(info.name, fed)
  }
  return new Map([...bound].map(([k, v]) => [k, v.value]))
}

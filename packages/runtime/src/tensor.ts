import { InvalidTensorError } from './errors.js'

/** Options of every async API */
export interface AbortOptions {
  signal?: AbortSignal
}

/** Element types the runtime moves between threads (onnxruntime's names) */
export type TensorType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool'

export type TensorArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array

/** A plain tensor: element type, dims and row-major data. Crosses the worker boundary by structured clone or transfer. */
export interface TensorData {
  type: TensorType
  dims: readonly number[]
  data: TensorArray
}

const ARRAY_OF: Record<TensorType, new (n: number) => TensorArray> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array
}

/** Does `data` have the typed-array class `type` needs */
export function arrayMatchesType (type: TensorType, data: unknown): boolean {
  const ctor = ARRAY_OF[type]
  return ctor !== undefined && data instanceof ctor
}

/** Build a tensor, checking that the array class and element count fit */
export function tensor (type: TensorType, data: TensorArray, dims: readonly number[]): TensorData {
  if (!arrayMatchesType(type, data)) throw new InvalidTensorError('(tensor)', `a ${type} tensor needs a ${ARRAY_OF[type]?.name ?? 'known'} array`)
  return { type, data, dims: [...dims] }
}

/** A float32 tensor */
export function float32 (data: Float32Array | number[], dims: readonly number[]): TensorData {
  return { type: 'float32', data: data instanceof Float32Array ? data : Float32Array.from(data), dims: [...dims] }
}

/** An int64 tensor (token ids, targets) from numbers or bigints */
export function int64 (data: BigInt64Array | ArrayLike<number | bigint>, dims: readonly number[]): TensorData {
  const arr = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number | bigint>, v => BigInt(v)))
  return { type: 'int64', data: arr, dims: [...dims] }
}

/** Number of elements of a shape */
export function numel (dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}

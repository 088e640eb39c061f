/** Element types a tensor frame can carry */
export type Dtype = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'int32' | 'int64'

interface TensorBase {
  /** Dimensions, outermost first; `[]` is a scalar (one element). Every dim is a non-negative safe integer. */
  shape: readonly number[]
  /** Optional name (at most 1024 UTF-8 bytes); an empty name is the same as none */
  name?: string
}

export interface Float32Tensor extends TensorBase { dtype: 'float32', data: Float32Array }
/** IEEE 754 binary16 values as their raw bits; convert with `fromFloat16` / `toFloat16` */
export interface Float16Tensor extends TensorBase { dtype: 'float16', data: Uint16Array }
/** bfloat16 values as their raw bits (the top half of a float32); convert with `fromBFloat16` / `toBFloat16` */
export interface BFloat16Tensor extends TensorBase { dtype: 'bfloat16', data: Uint16Array }
/** Blockwise symmetric int8: element i dequantizes to `data[i] * scales[floor(i / blockSize)]` */
export interface Int8Tensor extends TensorBase, QuantizedInt8 { dtype: 'int8' }
export interface Int32Tensor extends TensorBase { dtype: 'int32', data: Int32Array }
export interface Int64Tensor extends TensorBase { dtype: 'int64', data: BigInt64Array }

/** A tensor: dtype, shape, optional name and its elements in row-major order */
export type Tensor = Float32Tensor | Float16Tensor | BFloat16Tensor | Int8Tensor | Int32Tensor | Int64Tensor

/** Output of `quantizeInt8`, input of `dequantizeInt8` */
export interface QuantizedInt8 {
  /** Quantized values, each in [-127, 127] */
  data: Int8Array
  /** One float32 scale per block: `ceil(data.length / blockSize)` entries */
  scales: Float32Array
  /** Elements per block (the last block may be shorter) */
  blockSize: number
}

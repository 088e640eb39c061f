/**
 * Element types the builder knows. Float graphs are float32 or float64; int64/int32/bool appear as ids, shapes and
 * masks; uint8/int8 hold packed quantized weights (e.g. `com.microsoft` `MatMulNBits`) and quantized activations.
 */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8'

/** A dimension: a known size, or a symbolic name such as `'batch'` (ONNX `dim_param`) */
export type Dim = number | string

export type Shape = Dim[]

/** ONNX TensorProto.DataType codes */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11
}

export function isFloat (dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64'
}

/** Bytes per element */
export function dtypeSize (dtype: DType): number {
  switch (dtype) {
    case 'float32': case 'int32': return 4
    case 'float64': case 'int64': return 8
    case 'bool': case 'uint8': case 'int8': return 1
  }
}

export function shapeToString (shape: Shape): string {
  return `[${shape.join(', ')}]`
}

/** Number of elements when every dim is known, else undefined */
export function staticSize (shape: Shape): number | undefined {
  let n = 1
  for (const d of shape) {
    if (typeof d !== 'number') return undefined
    n *= d
  }
  return n
}

export function isStatic (shape: Shape): shape is number[] {
  return shape.every(d => typeof d === 'number')
}

import { InvalidParametersError } from '@neuroshard/interface'
import { compareNames, contentHash, float32AsBytes } from '@neuroshard/model'
import type { ParameterSpec } from '@neuroshard/model'

/**
 * What a replica group holds: an explicit id and the parameters of the span. A node holding the whole model
 * uses every parameter (`fullModelSpan`); a pipeline stage passes its shard's parameters. The flat vector of a
 * span is its parameters concatenated in byte-wise name order (specs/diloco §1).
 */
export interface Span {
  /** Stable id of the span, e.g. `full` or `blocks:0-2` (at most 128 bytes) */
  id: string
  parameters: readonly ParameterSpec[]
}

export interface SpanLayout {
  span: Span
  /** Parameters in flat order (byte-wise name order) with their offsets */
  entries: Array<{ name: string, shape: number[], offset: number, size: number }>
  /** Elements of the flat vector */
  size: number
}

export function spanLayout (span: Span): SpanLayout {
  if (typeof span.id !== 'string' || span.id.length === 0 || Buffer.byteLength(span.id) > 128) {
    throw new InvalidParametersError('span id must be a non-empty string of at most 128 bytes')
  }
  const sorted = [...span.parameters].sort((a, b) => compareNames(a.name, b.name))
  const entries: SpanLayout['entries'] = []
  let offset = 0
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]
    if (i > 0 && sorted[i - 1].name === p.name) throw new InvalidParametersError(`duplicate parameter ${p.name} in span ${span.id}`)
    const size = p.shape.reduce((a, b) => a * b, 1)
    if (!Number.isSafeInteger(size) || size < 1) throw new InvalidParametersError(`parameter ${p.name} has no elements`)
    entries.push({ name: p.name, shape: [...p.shape], offset, size })
    offset += size
  }
  if (entries.length === 0) throw new InvalidParametersError(`span ${span.id} has no parameters`)
  return { span, entries, size: offset }
}

/** Concatenates a span's parameters into one flat vector (copy) */
export function flatten (layout: SpanLayout, parameters: ReadonlyMap<string, Float32Array>, out = new Float32Array(layout.size)): Float32Array {
  for (const e of layout.entries) {
    const p = parameters.get(e.name)
    if (p === undefined) throw new InvalidParametersError(`parameter ${e.name} of span ${layout.span.id} is missing`)
    if (p.length !== e.size) throw new InvalidParametersError(`parameter ${e.name} has ${p.length} elements, the span says ${e.size}`)
    out.set(p, e.offset)
  }
  return out
}

/** Splits a flat vector into the span's parameters (copies) */
export function unflatten (layout: SpanLayout, flat: Float32Array): Map<string, Float32Array> {
  if (flat.length !== layout.size) throw new InvalidParametersError(`flat vector has ${flat.length} elements, the span has ${layout.size}`)
  const out = new Map<string, Float32Array>()
  for (const e of layout.entries) out.set(e.name, flat.slice(e.offset, e.offset + e.size))
  return out
}

/**
 * The weights hash of a span: `@neuroshard/model`'s `contentHash` over the span's float32 parameters
 * (specs/model; the same hash checkpoints and training proofs use), as 32 bytes.
 */
export function weightsHash (layout: SpanLayout, flat: Float32Array): Uint8Array<ArrayBuffer> {
  if (flat.length !== layout.size) throw new InvalidParametersError(`flat vector has ${flat.length} elements, the span has ${layout.size}`)
  const hex = contentHash(layout.entries.map(e => ({
    name: e.name,
    dtype: 'F32',
    shape: e.shape,
    data: float32AsBytes(flat.subarray(e.offset, e.offset + e.size))
  })))
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** A shape or dtype mismatch found while building a graph; the message names the node */
export class ShapeError extends Error {
  static override name = 'ShapeError'
  override name = 'ShapeError'
}

/** A graph that cannot be built or exported (unknown value, duplicate name, unsupported construct) */
export class GraphError extends Error {
  static override name = 'GraphError'
  override name = 'GraphError'
}

/** Reverse-mode differentiation failed: no VJP rule for an op on the path, or an unsupported case of one */
export class AutodiffError extends Error {
  static override name = 'AutodiffError'
  override name = 'AutodiffError'
}

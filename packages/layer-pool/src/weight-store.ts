import { InsufficientMemoryError } from './errors.js'

/**
 * Where a node keeps the weights of the slots it holds. The pool only needs these three calls, so the node
 * can plug in its runtime (weights bound to onnxruntime sessions) while tests and the transfer use memory.
 */
export interface WeightStore {
  /**
   * Keep a slot's verified weights (replacing what the slot held). Throws when the store cannot hold them,
   * e.g. `InsufficientMemoryError`: the slot then stays `loading` and no router sends work to it.
   */
  put(slot: number, parameters: Map<string, Float32Array>): void | Promise<void>
  /** A slot's weights, `undefined` when the store does not hold the slot */
  get(slot: number): Map<string, Float32Array> | undefined
  /** Forget a slot's weights */
  delete(slot: number): void
}

export interface MemoryWeightStoreInit {
  /**
   * Bytes the store can really hold; a `put` past it throws `InsufficientMemoryError`. This is what
   * separates the memory a node announces from the memory it has.
   *
   * @default Infinity
   */
  capacityBytes?: number
}

/** A {@link WeightStore} in process memory with an optional hard capacity */
export class MemoryWeightStore implements WeightStore {
  private readonly slots = new Map<number, Map<string, Float32Array>>()
  private readonly capacityBytes: number

  constructor (init: MemoryWeightStoreInit = {}) {
    this.capacityBytes = init.capacityBytes ?? Number.POSITIVE_INFINITY
  }

  /** Bytes held now */
  get usedBytes (): number {
    let n = 0
    for (const params of this.slots.values()) n += bytesOf(params)
    return n
  }

  put (slot: number, parameters: Map<string, Float32Array>): void {
    const replaced = this.slots.get(slot)
    const after = this.usedBytes - (replaced != null ? bytesOf(replaced) : 0) + bytesOf(parameters)
    if (after > this.capacityBytes) {
      throw new InsufficientMemoryError(`slot ${slot} needs ${bytesOf(parameters)} bytes; the store holds at most ${this.capacityBytes} and ${this.usedBytes} are used`)
    }
    this.slots.set(slot, parameters)
  }

  get (slot: number): Map<string, Float32Array> | undefined {
    return this.slots.get(slot)
  }

  delete (slot: number): void {
    this.slots.delete(slot)
  }
}

function bytesOf (parameters: Map<string, Float32Array>): number {
  let n = 0
  for (const v of parameters.values()) n += v.byteLength
  return n
}

/**
 * A client's checks of a state download (specs/diloco §4): the header answer, then the ranges in order, then the
 * blob. Pure: the node's `sync` feeds it the answers it reads (specs/diloco/vectors/state.json replays it)
 */
import { sha256 } from './messages.js'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { StateSyncError } from './errors.js'
import { FetchStatus } from './pb/diloco.js'
import { decodeState } from './state.js'

/** The fields of a `FetchResponse` a state download reads */
export interface StateAnswer {
  status: FetchStatus | `${FetchStatus}`
  data: Uint8Array
  total: number
  round: number
  baseHash: Uint8Array<ArrayBuffer>
  stateHash: Uint8Array
}

export interface DownloadedState { round: number, base: Float32Array, momentum: Float32Array, baseHash: Uint8Array<ArrayBuffer> }

/**
 * One attempt: `header()` with the answer to the header request (length 0), then `range()` with the answer to each
 * range `next()` names (offset, length) until it returns undefined, then `finish()`. `range()` answers `false` when
 * the state changed meanwhile (another `state_hash`): the caller starts again. Every refusal is `StateSyncError`
 */
export class StateDownload {
  private first?: StateAnswer
  private blob?: Uint8Array
  private offset = 0

  constructor (private readonly elements: number, private readonly rangeBytes: number, private readonly baseHashOf: (base: Float32Array) => Uint8Array) {}

  header (res: StateAnswer): void {
    if (res.status !== FetchStatus.OK) throw new StateSyncError(`no state (status ${res.status})`)
    const expected = 8 + 8 * this.elements
    if (res.total !== expected) throw new StateSyncError(`the state is ${res.total} bytes, the span needs ${expected}`)
    this.first = res
    this.blob = new Uint8Array(res.total)
  }

  next (): { offset: number, length: number } | undefined {
    if (this.blob == null || this.offset >= this.blob.byteLength) return undefined
    return { offset: this.offset, length: Math.min(this.rangeBytes, this.blob.byteLength - this.offset) }
  }

  range (res: StateAnswer): boolean {
    const want = this.next()
    if (want == null || this.first == null || this.blob == null) throw new StateSyncError('no range was asked for')
    if (res.status !== FetchStatus.OK || res.data.byteLength !== want.length) throw new StateSyncError('a bad state range')
    if (!uint8ArrayEquals(res.stateHash, this.first.stateHash)) return false
    this.blob.set(res.data, want.offset)
    this.offset += want.length
    return true
  }

  finish (): DownloadedState {
    if (this.first == null || this.blob == null || this.next() != null) throw new StateSyncError('the state is not complete')
    if (!uint8ArrayEquals(sha256(this.blob), this.first.stateHash)) throw new StateSyncError('the state does not match its hash')
    const s = decodeState(this.blob, this.elements)
    if (s.round !== this.first.round) throw new StateSyncError('state round does not match the response')
    if (!uint8ArrayEquals(this.baseHashOf(s.base), this.first.baseHash)) throw new StateSyncError('the weights do not match the base hash given')
    return { ...s, baseHash: this.first.baseHash }
  }
}

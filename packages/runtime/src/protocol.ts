/**
 * Messages between the runtime's main-thread handle and its worker thread (types only, internal).
 */
import type { TensorData } from './tensor.js'

export interface ValueInfo {
  name: string
  type: string
  /** Numbers are fixed dims, strings symbolic ones */
  shape: Array<number | string>
}

export type Device = 'cpu' | 'cuda'

export interface CreateSessionRequest {
  op: 'createSession'
  bytes: Uint8Array
  device: Device
  /** Look for the CUDA provider library before trying (avoids onnxruntime's own error log) */
  cudaPrecheck: boolean
  intraOpNumThreads?: number
  allowSpinning: boolean
}

export interface CreateSessionResult {
  session: number
  executionProvider: Device
  fallbackReason?: string
  inputs: ValueInfo[]
  outputs: ValueInfo[]
}

export interface RunRequest {
  op: 'run'
  session: number
  feeds: Record<string, TensorData>
  /** KV-cache state to read past_* inputs from and store present_* outputs into */
  kv?: number
  /** With `kv`: reply `{ outputs, position }` (the cache length after the run) instead of the bare outputs */
  reportPosition?: boolean
  /** Outputs named `grad.<resident>` are added into the resident gradient buffers instead of being returned */
  accumulateGrads?: boolean
}

/** AdamW hyper-parameters of one step (shared by the worker request and the fused kernel) */
export interface AdamWHyperParameters {
  lr: number
  beta1: number
  beta2: number
  eps: number
  /** Decoupled weight decay (0 for parameters that are not decayed) */
  weightDecay: number
  /** 1-based step number, for bias correction */
  t: number
}

export interface AdamWRequest extends AdamWHyperParameters {
  op: 'adamw'
  names: string[]
  noDecay: string[]
  /** Clip threshold on the gradient norm (0 = off) */
  maxGradNorm: number
  /** Norm to clip against (e.g. pipeline-global); the local norm when absent */
  gradNorm?: number
}

export interface AdamWResult {
  gradNorm: number
  clipScale: number
  /** Name of a parameter that became non-finite, if any */
  nonFinite?: string
}

/**
 * A tied replica's AdamW step on a resident parameter (a pipeline Validator's copy of the tied matrix): `grad` plus
 * `rows` (`[ids.length, width]`, added at those rows), with the replica's own moments (`replicaSeed`)
 */
export interface TiedReplicaStepRequest extends AdamWHyperParameters {
  op: 'replicaStep'
  name: string
  grad: Float32Array
  ids: Int32Array
  rows: Float32Array
  width: number
  /** Gradient scale from clipping (1 = none) */
  gradScale: number
}

/** What a tied replica's step answers: whether every stepped value is finite, and the SHA-256 of the matrix's bytes */
export interface TiedReplicaStepResult {
  finite: boolean
  hash: Uint8Array
}

export type WorkerRequest =
  | CreateSessionRequest
  | RunRequest
  | AdamWRequest
  | { op: 'releaseSession', session: number }
  | { op: 'setResident', tensors: Record<string, TensorData> }
  | { op: 'getResident', names: string[] }
  | { op: 'setOptimizerState', m: Record<string, Float32Array>, v: Record<string, Float32Array> }
  | { op: 'getOptimizerState', names: string[] }
  | { op: 'resetOptimizer', names: string[] }
  | { op: 'gradNormSquared', names: string[] }
  | { op: 'zeroGrads' }
  | { op: 'takeGrads', names: string[] }
  | { op: 'addGrads', grads: Record<string, Float32Array> }
  | { op: 'gradRows', name: string, rows: Int32Array, width: number }
  | { op: 'hashResident', name: string }
  | { op: 'replicaSeed', name: string, m: Float32Array, v: Float32Array }
  | { op: 'residentRows', name: string, rows: Int32Array, width: number }
  | { op: 'setResidentRows', name: string, rows: Int32Array, width: number, data: Float32Array }
  | { op: 'replicaState', name: string }
  | TiedReplicaStepRequest
  | { op: 'kvOpen' }
  | { op: 'kvClose', kv: number }
  | { op: 'kvPosition', kv: number }
  | { op: 'kvTruncate', kv: number, position: number }
  | { op: 'kvState', kv: number, kvHeads?: number }

export interface WorkerReply {
  id: number
  ok: boolean
  result?: unknown
  error?: { name: string, message: string, tensorName?: string }
}

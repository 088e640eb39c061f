/**
 * A client that holds no part of the model: it sends the prompt text to a Driver
 * (`/neuroshard/pipeline/generate/1.0.0`), which tokenizes, runs the pipeline and streams the tokens back.
 */
import { AbortError, InvalidParametersError } from '@neuroshard/interface'
import { messageStream } from '@neuroshard/utils'
import { decodeTensorFrame } from '@neuroshard/tensor'
import { InvalidActivationError } from './errors.js'
import { DEFAULT_MESSAGE_TIMEOUT_MS, MAX_GENERATE_REQUEST_SIZE, MAX_STOP_ENTRIES, PIPELINE_GENERATE_PROTOCOL } from './constants.js'
import { GenerateEvent, GenerateRequest } from './pb/pipeline.js'
import { errorFromResponse } from './pipeline.js'
import { checkSampling } from './sampling.js'
import type { GenerateOptions, GeneratedToken } from './pipeline.js'
import type { AbortOptions, PeerId, Stream } from '@libp2p/interface'

/** A libp2p node (or anything that can open a protocol stream) */
export interface GenerateDialer {
  dialProtocol(peer: PeerId, protocols: string | string[], options?: AbortOptions): Promise<Stream>
}

export interface RemoteGenerateOptions extends Omit<GenerateOptions, 'compress' | 'maxRetries'> {
  /** Per-message timeout (the wait for each token), ms @default 30_000 */
  timeout?: number
  /** Largest event accepted, bytes (logits of a large vocabulary need more) @default 4 MiB */
  maxMessageSize?: number
  /** Protocol id @default PIPELINE_GENERATE_PROTOCOL */
  protocol?: string
}

/**
 * Generate on a remote Driver: yields each token as the Driver's Validator samples it. Abort with
 * `signal` (the Driver stops and frees the session). A failed generation throws the typed error the Driver
 * reports (`NoRouteError`, `KvCacheFullError`, `InvalidParametersError`, …, by `.name`).
 */
export async function * generateRemote (dialer: GenerateDialer, driver: PeerId, prompt: string | number[], options: RemoteGenerateOptions = {}): AsyncGenerator<GeneratedToken> {
  checkSampling(options)
  if ((options.stop?.length ?? 0) > MAX_STOP_ENTRIES || (options.stopTokens?.length ?? 0) > MAX_STOP_ENTRIES) {
    throw new InvalidParametersError(`at most ${MAX_STOP_ENTRIES} stop strings and ${MAX_STOP_ENTRIES} stop tokens`)
  }
  const req: GenerateRequest = {
    prompt: typeof prompt === 'string' ? prompt : '',
    promptIds: typeof prompt === 'string' ? [] : prompt,
    maxNewTokens: options.maxNewTokens ?? 0,
    sampling: { temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1, seed: options.seed ?? 0, returnLogits: options.returnLogits === true },
    stop: options.stop ?? [],
    stopTokens: options.stopTokens ?? []
  }
  const bytes = GenerateRequest.encode(req)
  if (bytes.byteLength > MAX_GENERATE_REQUEST_SIZE) throw new InvalidParametersError(`the request is ${bytes.byteLength} bytes; Drivers read at most ${MAX_GENERATE_REQUEST_SIZE}`)
  const signal = options.signal
  const stream = await dialer.dialProtocol(driver, options.protocol ?? PIPELINE_GENERATE_PROTOCOL, { signal })
  const onAbort = (): void => { stream.abort(new AbortError('generation aborted')) }
  signal?.addEventListener('abort', onAbort)
  const messages = messageStream(stream, { timeout: options.timeout ?? DEFAULT_MESSAGE_TIMEOUT_MS, maxMessageSize: options.maxMessageSize ?? 4 * 1024 * 1024 })
  let finished = false
  try {
    await messages.writeBytes(bytes, { signal })
    await messages.close({ signal })
    for (;;) {
      if (signal?.aborted === true) throw new AbortError('generation aborted')
      let event: GenerateEvent
      try {
        event = await messages.read(GenerateEvent, { signal })
      } catch (err) {
        if (isAborted(signal)) throw new AbortError('generation aborted')
        throw err
      }
      if (event.done) {
        finished = true
        if (event.error !== '') throw errorFromResponse({ error: event.error, message: event.message, failedHop: 0 } as any)
        return
      }
      const token: GeneratedToken = { id: event.id, text: event.text, position: event.position }
      if (event.logits.length > 0) token.logits = decodeLogits(event.logits)
      yield token
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    if (!finished && stream.status === 'open') stream.abort(new AbortError('the client stopped reading'))
  }
}

/** A float32 `[vocab]` frame named `logits` */
function decodeLogits (frame: Uint8Array): Float32Array {
  let t
  try {
    t = decodeTensorFrame(frame, { copy: true })
  } catch (err: any) {
    throw new InvalidActivationError(`logits: ${String(err?.name)}: ${String(err?.message)}`)
  }
  if (t.dtype !== 'float32' || t.shape.length !== 1 || t.name !== 'logits') throw new InvalidActivationError('logits must be a float32 [vocab] frame named logits')
  return t.data as Float32Array
}

function isAborted (signal?: AbortSignal): boolean {
  return signal?.aborted === true
}

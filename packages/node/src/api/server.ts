import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'
import { logger } from '@libp2p/logger'
import { InvalidParametersError } from '@neuroshard/interface'
import { loadDashboard } from '../dashboard/assets.js'
import { ApiError, BackendUnavailableError, InvalidRequestError } from './errors.js'
import { NodeMetrics } from './metrics.js'
import { StopMatcher, parseCompletionRequest } from './openai.js'
import type { NodeBackend } from './backend.js'
import type { DashboardAsset } from '../dashboard/assets.js'
import type { CompletionRequest } from './openai.js'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

const log = logger('neuroshard:node:api')

/** Port of the HTTP API (seed 002's dashboard at http://localhost:8000) @default 8000 */
export const DEFAULT_API_PORT = 8000
/** Address the API binds to: loopback only unless told otherwise @default '127.0.0.1' */
export const DEFAULT_API_HOST = '127.0.0.1'
/** Largest request body read, bytes (larger → 413) @default 1 MiB */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
/** Completion requests generating at once (more → 429) @default 4 */
export const DEFAULT_MAX_CONCURRENT_GENERATIONS = 4
/** Largest `max_tokens` a request may ask for @default 2048 */
export const DEFAULT_MAX_TOKENS_LIMIT = 2048
/** Time to receive a whole request (headers and body), ms @default 30000 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/** Open connections at most @default 256 */
export const DEFAULT_MAX_CONNECTIONS = 256
/** Finished inference sessions the API keeps for `/api/inference` @default 20 */
export const RECENT_SESSIONS = 20

export interface ApiServerOptions {
  backend: NodeBackend
  /** @default 127.0.0.1 */
  host?: string
  /** 0 picks a free port @default 8000 */
  port?: number
  /**
   * Bearer token that mutating endpoints (completions, wallet) require; when unset they are open
   * (the API then only listens on loopback unless `host` says otherwise). Never logged.
   */
  token?: string
  /** @default 1 MiB */
  maxBodyBytes?: number
  /** @default 4 */
  maxConcurrentGenerations?: number
  /** @default 2048 */
  maxTokensLimit?: number
  /** @default 30000 */
  requestTimeoutMs?: number
  /** Serve the web dashboard at `/` @default true */
  dashboard?: boolean
  /** Collect prom-client's default process metrics too @default true */
  defaultMetrics?: boolean
}

/** A running API server */
export interface ApiServer {
  /** `http://127.0.0.1:8000` */
  readonly url: string
  readonly port: number
  readonly server: Server
  readonly metrics: NodeMetrics
  /** Stops listening, ends open generations and connections; idempotent */
  close(): Promise<void>
}

interface SessionStat {
  id: string
  endpoint: 'completions' | 'chat.completions'
  model: string
  startedAt: number
  tokens: number
  firstTokenMs?: number
  endedAt?: number
  finishReason?: string
  tokensPerSecond?: number
}

/** Tracks inference sessions and tokens/s (bounded: active sessions ≤ the concurrency limit) */
class InferenceStats {
  readonly active = new Map<string, SessionStat>()
  readonly recent: SessionStat[] = []
  totalTokens = 0
  totalRequests = 0
  /** tokens per second-bucket, last 10 s */
  private readonly buckets = new Map<number, number>()

  token (s: SessionStat): void {
    s.tokens++
    this.totalTokens++
    const sec = Math.floor(Date.now() / 1000)
    this.buckets.set(sec, (this.buckets.get(sec) ?? 0) + 1)
    for (const k of this.buckets.keys()) if (k < sec - 10) this.buckets.delete(k)
  }

  end (s: SessionStat, reason: string): void {
    s.endedAt = Date.now()
    s.finishReason = reason
    const genMs = s.endedAt - s.startedAt - (s.firstTokenMs ?? 0)
    s.tokensPerSecond = s.tokens > 1 && genMs > 0 ? (s.tokens - 1) / (genMs / 1000) : undefined
    this.active.delete(s.id)
    this.recent.unshift(s)
    this.recent.length = Math.min(this.recent.length, RECENT_SESSIONS)
  }

  /** Tokens generated per second over the last 10 full seconds */
  rate (): number {
    const sec = Math.floor(Date.now() / 1000)
    let n = 0
    for (const [k, v] of this.buckets) if (k >= sec - 10 && k < sec) n += v
    return n / 10
  }
}

const ROUTES = new Set(['/', '/api/status', '/api/peers', '/api/layers', '/api/training', '/api/ledger', '/api/inference', '/metrics',
  '/v1/models', '/v1/completions', '/v1/chat/completions', '/api/wallet/transfer', '/api/wallet/stake', '/api/wallet/unstake'])

/**
 * Starts the node's HTTP API on `node:http` (no framework: a dozen routes, and every limit stays
 * visible here): JSON status endpoints, Prometheus `/metrics`, the OpenAI-compatible `/v1/*` API with
 * SSE streaming, and the web dashboard at `/`.
 */
export async function startApiServer (options: ApiServerOptions): Promise<ApiServer> {
  const backend = options.backend
  const host = options.host ?? DEFAULT_API_HOST
  const port = options.port ?? DEFAULT_API_PORT
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const maxGen = options.maxConcurrentGenerations ?? DEFAULT_MAX_CONCURRENT_GENERATIONS
  const maxTokensLimit = options.maxTokensLimit ?? DEFAULT_MAX_TOKENS_LIMIT
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new InvalidParametersError(`port must be 0-65535, got ${port}`)
  if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new InvalidParametersError('maxBodyBytes must be a positive integer')
  if (!Number.isSafeInteger(maxGen) || maxGen < 1) throw new InvalidParametersError('maxConcurrentGenerations must be a positive integer')
  if (options.token !== undefined && options.token.length < 8) throw new InvalidParametersError('the API token must have at least 8 characters')
  const tokenDigest = options.token !== undefined ? sha256(options.token) : undefined
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost'
  const metrics = new NodeMetrics(backend, { defaultMetrics: options.defaultMetrics })
  const dashboard: Map<string, DashboardAsset> = options.dashboard === false ? new Map() : await loadDashboard()
  const stats = new InferenceStats()
  const generations = new Set<AbortController>()
  let closing = false

  const server = createServer({ requestTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, headersTimeout: 10_000 }, (req, res) => {
    const started = performance.now()
    const url = new URL(req.url ?? '/', 'http://node')
    const route = dashboard.has(url.pathname) ? '/static' : ROUTES.has(url.pathname) ? url.pathname : 'other'
    res.on('finish', () => {
      metrics.httpRequests.inc({ route, method: req.method ?? '', status: String(res.statusCode) })
      metrics.httpSeconds.observe({ route }, (performance.now() - started) / 1000)
    })
    handle(req, res, url).catch((err: any) => {
      if (!(err instanceof ApiError)) log.error('%s %s failed: %s', req.method, url.pathname, err?.stack ?? err)
      sendError(res, err)
    })
  })
  server.maxConnections = DEFAULT_MAX_CONNECTIONS

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    // DNS rebinding: a page on another origin must not reach a loopback-only API through a name it controls
    if (loopback && !isLoopbackHost(req.headers.host)) {
      throw new ApiError(421, 'Misdirected request: this API answers only to localhost / 127.0.0.1', 'invalid_request_error', { code: 'misdirected_request' })
    }
    const path = url.pathname
    const method = req.method ?? 'GET'
    const asset = dashboard.get(path)
    if (asset !== undefined) {
      allow(method, ['GET', 'HEAD'])
      res.writeHead(200, {
        'content-type': asset.contentType,
        'content-length': asset.body.byteLength,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
      })
      res.end(method === 'HEAD' ? undefined : asset.body)
      return
    }
    switch (path) {
      case '/api/status': allow(method, ['GET']); return sendJson(res, 200, await backend.status())
      case '/api/peers': allow(method, ['GET']); return sendJson(res, 200, await backend.peers())
      case '/api/layers': allow(method, ['GET']); return sendJson(res, 200, await backend.layers())
      case '/api/training': allow(method, ['GET']); return sendJson(res, 200, await backend.training())
      case '/api/ledger': {
        allow(method, ['GET'])
        const address = url.searchParams.get('address') ?? undefined
        if (address !== undefined && !/^[0-9a-f]{40}$/.test(address)) throw new InvalidRequestError('address must be 40 lowercase hex characters', 'address', 'invalid_value')
        return sendJson(res, 200, await backend.ledger(address))
      }
      case '/api/inference': {
        allow(method, ['GET'])
        const backendStats = await backend.inference?.()
        return sendJson(res, 200, {
          active: [...stats.active.values()].map(publicSession),
          recent: stats.recent.map(publicSession),
          tokensPerSecond: stats.rate(),
          totalTokens: stats.totalTokens,
          totalRequests: stats.totalRequests,
          maxConcurrent: maxGen,
          ...(backendStats !== undefined ? { backendSessions: backendStats.sessions } : {})
        })
      }
      case '/metrics': {
        allow(method, ['GET'])
        const { contentType, body } = await metrics.text()
        res.writeHead(200, { 'content-type': contentType })
        res.end(body)
        return
      }
      case '/v1/models': {
        allow(method, ['GET'])
        const models = await backend.models()
        return sendJson(res, 200, { object: 'list', data: models.map(m => ({ id: m.id, object: 'model', created: m.created, owned_by: m.ownedBy, ...(m.contextLength !== undefined ? { context_length: m.contextLength } : {}) })) })
      }
      case '/v1/completions':
      case '/v1/chat/completions': {
        allow(method, ['POST'])
        authorize(req, res)
        const body = await readJson(req, res)
        const request = parseCompletionRequest(body, path === '/v1/chat/completions', { maxTokens: maxTokensLimit })
        const models = await backend.models()
        if (!models.some(m => m.id === request.model)) throw new ApiError(404, `The model '${request.model}' does not exist or is not served by this node`, 'invalid_request_error', { param: 'model', code: 'model_not_found' })
        if (generations.size >= maxGen) {
          res.setHeader('retry-after', '1')
          throw new ApiError(429, `This node is generating ${maxGen} completions already; retry shortly`, 'requests', { code: 'rate_limit_exceeded' })
        }
        await complete(res, request, path === '/v1/chat/completions')
        return
      }
      case '/api/wallet/transfer':
      case '/api/wallet/stake':
      case '/api/wallet/unstake': {
        allow(method, ['POST'])
        authorize(req, res)
        const body = await readJson(req, res)
        const wallet = backend.wallet
        if (wallet === undefined) throw new BackendUnavailableError('this node runs no ledger wallet')
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError('The request body must be a JSON object')
        const amount = parseAmount((body as Record<string, unknown>).amount)
        let result
        if (path === '/api/wallet/transfer') {
          const to = (body as Record<string, unknown>).to
          if (typeof to !== 'string' || !/^[0-9a-f]{40}$/.test(to)) throw new InvalidRequestError("'to' must be an address: 40 lowercase hex characters", 'to', 'invalid_value')
          result = await wallet.transfer(to, amount)
        } else if (path === '/api/wallet/stake') {
          result = await wallet.stake(amount)
        } else {
          result = await wallet.unstake(amount)
        }
        return sendJson(res, 202, { submitted: true, ...result })
      }
      default:
        throw new ApiError(404, `No route ${method} ${path}`, 'invalid_request_error', { code: 'not_found' })
    }
  }

  function authorize (req: IncomingMessage, res: ServerResponse): void {
    if (tokenDigest === undefined) return
    const header = req.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    if (m === null || !timingSafeEqual(sha256(m[1]), tokenDigest)) {
      res.setHeader('www-authenticate', 'Bearer realm="neuroshard"')
      throw new ApiError(401, m === null ? 'Missing API token: send Authorization: Bearer <token> (the node\'s --api-token)' : 'Incorrect API token provided', 'invalid_request_error', { code: 'invalid_api_key' })
    }
  }

  async function complete (res: ServerResponse, request: CompletionRequest, chat: boolean): Promise<void> {
    const controller = new AbortController()
    generations.add(controller)
    metrics.activeSessions.set(generations.size)
    const endpoint = chat ? 'chat.completions' : 'completions'
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`
    const created = Math.floor(Date.now() / 1000)
    const session: SessionStat = { id, endpoint, model: request.model, startedAt: Date.now(), tokens: 0 }
    stats.active.set(id, session)
    stats.totalRequests++
    // the client went away: stop generating (a closed response before we finished it)
    const onClose = (): void => { if (!res.writableFinished) controller.abort(new Error('client closed the connection')) }
    res.on('close', onClose)
    const matcher = new StopMatcher(request.stop)
    let text = ''
    let finish = 'length'
    let headersSent = false
    const chunk = (delta: { content?: string, role?: string }, finishReason: string | null): string => JSON.stringify(chat
      ? { id, object: 'chat.completion.chunk', created, model: request.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] }
      : { id, object: 'text_completion', created, model: request.model, choices: [{ index: 0, text: delta.content ?? '', logprobs: null, finish_reason: finishReason }] })
    const write = async (data: string): Promise<void> => {
      if (res.destroyed || res.writableEnded) return
      if (res.write(`data: ${data}\n\n`)) return
      // backpressure: a slow reader holds the generation, not our memory
      await new Promise<void>((resolve) => {
        const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
        res.on('drain', done)
        res.on('close', done)
      })
    }
    try {
      const promptTokens = await backend.countTokens?.(request.prompt, request.model)
      if (request.payment !== undefined) {
        if (backend.paidSession == null) throw new ApiError(400, 'this node takes no ledger payments', 'invalid_request_error', { param: 'neuroshard_payment', code: 'payments_unsupported' })
        const paid = await backend.paidSession(request.payment, controller.signal)
        request.maxTokens = Math.min(request.maxTokens, paid.tokens)
      }
      const options = { model: request.model, maxTokens: request.maxTokens, temperature: request.temperature, topP: request.topP, topK: request.topK, ...(request.seed !== undefined ? { seed: request.seed } : {}) }
      // before the headers: a backend that refuses at once (unknown model, no model) gets a proper status
      const tokens = backend.generate(request.prompt, options, controller.signal)
      if (request.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', connection: 'keep-alive' })
        headersSent = true
        res.flushHeaders()
        if (chat) await write(chunk({ role: 'assistant', content: '' }, null))
      }
      let count = 0
      for await (const piece of tokens) {
        if (count === 0) {
          session.firstTokenMs = Date.now() - session.startedAt
          metrics.firstTokenSeconds.observe({ endpoint }, session.firstTokenMs / 1000)
        }
        count++
        stats.token(session)
        metrics.generatedTokens.inc({ endpoint })
        const out = matcher.push(piece)
        if (out !== '') {
          text += out
          if (request.stream) await write(chunk({ content: out }, null))
        }
        if (matcher.stopped) { finish = 'stop'; controller.abort(new Error('stop sequence')); break }
        if (controller.signal.aborted) break
        if (count >= request.maxTokens) break
      }
      if (!matcher.stopped && count < request.maxTokens) finish = 'stop'
      const rest = matcher.flush()
      if (rest !== '') {
        text += rest
        if (request.stream) await write(chunk({ content: rest }, null))
      }
      if (res.destroyed) { finish = 'aborted'; return }
      if (request.payment !== undefined && count > 0) backend.served?.({ payment: request.payment, tokens: count, text, startedMs: session.startedAt, endedMs: Date.now() })
      const usage = promptTokens !== undefined ? { prompt_tokens: promptTokens, completion_tokens: count, total_tokens: promptTokens + count } : undefined
      if (request.stream) {
        await write(chunk({}, finish))
        // stream_options.include_usage: OpenAI's last chunk, no choices, the usage
        if (request.includeUsage === true && usage !== undefined) {
          await write(JSON.stringify({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model: request.model, choices: [], usage }))
        }
        res.end('data: [DONE]\n\n')
      } else {
        sendJson(res, 200, chat
          ? { id, object: 'chat.completion', created, model: request.model, choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }], ...(usage !== undefined ? { usage } : {}) }
          : { id, object: 'text_completion', created, model: request.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...(usage !== undefined ? { usage } : {}) })
      }
    } catch (err: any) {
      finish = controller.signal.aborted ? 'aborted' : 'error'
      if (!headersSent) throw err
      // the stream already started: report the error as a last event
      const apiErr = err instanceof ApiError ? err : new ApiError(500, 'generation failed', 'server_error')
      if (!(err instanceof ApiError)) log.error('generation %s failed: %s', id, err?.stack ?? err)
      if (!res.destroyed) {
        res.write(`data: ${JSON.stringify(apiErr.toJSON())}\n\n`)
        res.end()
      }
    } finally {
      res.off('close', onClose)
      generations.delete(controller)
      metrics.activeSessions.set(generations.size)
      metrics.completions.inc({ endpoint, outcome: finish })
      stats.end(session, finish)
    }
  }

  /** Reads a JSON body of at most `maxBody` bytes: 413 past it, 400 when it does not parse */
  async function readJson (req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const declared = Number(req.headers['content-length'] ?? NaN)
    if (Number.isFinite(declared) && declared > maxBody) tooLarge(req, res)
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      const cleanup = (): void => {
        req.off('data', onData)
        req.off('end', onEnd)
        req.off('error', onError)
      }
      const onData = (c: Buffer): void => {
        size += c.byteLength
        if (size > maxBody) {
          cleanup()
          try { tooLarge(req, res) } catch (err) { reject(err) }
          return
        }
        chunks.push(c)
      }
      const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks).toString('utf8')) }
      const onError = (err: Error): void => { cleanup(); reject(err) }
      req.on('data', onData)
      req.on('end', onEnd)
      req.on('error', onError)
    })
    try {
      return JSON.parse(text)
    } catch {
      throw new InvalidRequestError('We could not parse the JSON body of your request. Send a JSON object with Content-Type: application/json.', null, 'invalid_json')
    }
  }

  /** Answer 413 and close the connection; drain at most 8× the limit so the client reads the answer, then cut */
  function tooLarge (req: IncomingMessage, res: ServerResponse): never {
    res.setHeader('connection', 'close')
    let drained = 0
    req.removeAllListeners('data')
    req.on('data', (c: Buffer) => { drained += c.byteLength; if (drained > 8 * maxBody) req.destroy() })
    req.resume()
    res.on('finish', () => { setTimeout(() => { req.socket?.destroy() }, 1000).unref() })
    throw new ApiError(413, `Request body too large: at most ${maxBody} bytes`, 'invalid_request_error', { code: 'request_too_large' })
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${shownHost}:${address.port}`
  log('listening on %s (token %s)', url, tokenDigest !== undefined ? 'required for mutating endpoints' : 'not set')

  return {
    url,
    port: address.port,
    server,
    metrics,
    async close () {
      if (closing) return
      closing = true
      for (const g of generations) g.abort(new Error('server closing'))
      await new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        server.closeIdleConnections()
        setTimeout(() => { server.closeAllConnections() }, 1000).unref()
      })
    }
  }
}

function publicSession (s: SessionStat): Record<string, unknown> {
  return { id: s.id, endpoint: s.endpoint, model: s.model, startedAt: s.startedAt, tokens: s.tokens, firstTokenMs: s.firstTokenMs ?? null, endedAt: s.endedAt ?? null, finishReason: s.finishReason ?? null, tokensPerSecond: s.tokensPerSecond ?? null }
}

function sha256 (s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

function isLoopbackHost (hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return true
  const name = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.replace(/:\d+$/, '')
  return name === 'localhost' || name === '127.0.0.1' || name === '[::1]' || name.endsWith('.localhost')
}

function allow (method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new ApiError(405, `Method ${method} not allowed here; use ${methods.join(' or ')}`, 'invalid_request_error', { code: 'method_not_allowed' })
}

/** A base-unit amount: a decimal string of digits (never a JSON number: no floats for money) */
function parseAmount (v: unknown): bigint {
  if (typeof v !== 'string' || !/^[0-9]{1,39}$/.test(v)) throw new InvalidRequestError("'amount' must be a decimal string of base units (1 NEURO = 10^18), e.g. \"1500000000000000000\"", 'amount', 'invalid_value')
  const amount = BigInt(v)
  if (amount <= 0n || amount >= 2n ** 128n) throw new InvalidRequestError("'amount' must be > 0 and < 2^128", 'amount', 'invalid_value')
  return amount
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v) => typeof v === 'bigint' ? v.toString() : v)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError (res: ServerResponse, err: any): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  let apiErr: ApiError
  if (err instanceof ApiError) apiErr = err
  else if (err?.name === 'InvalidParametersError') apiErr = new InvalidRequestError(String(err.message))
  else if (err?.name === 'InsufficientFundsError' || err?.name === 'InvalidAmountError') apiErr = new InvalidRequestError(String(err.message), 'amount', err.name)
  else {
    apiErr = new ApiError(500, 'Internal error (see the node log)', 'server_error')
    log.error('request failed: %s', err?.stack ?? err)
  }
  sendJson(res, apiErr.status, apiErr.toJSON())
}

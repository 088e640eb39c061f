import { request as httpRequest } from 'node:http'
import { NEURO } from '@neuroshard/ponw-ledger'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TOKEN, startNodeFixture, until } from '../fixture.js'
import { LOCAL_MODEL_ID, startApiServer } from '../../src/index.js'
import type { NodeBackend } from '../../src/index.js'
import type { NodeFixture } from '../fixture.js'

let node: NodeFixture
let url: string
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }

beforeAll(async () => {
  node = await startNodeFixture()
  url = node.server.url
}, 90_000)

afterAll(async () => {
  await node?.stop()
})

async function post (path: string, body: unknown, headers: Record<string, string> = auth): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) })
}

/** Expects an OpenAI-style error body and returns its `error` */
async function openAiError (res: Response, status: number): Promise<{ message: string, type: string, param: string | null, code: string | null }> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  const body = await res.json() as any
  expect(Object.keys(body)).toEqual(['error'])
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type'])
  expect(typeof body.error.message).toBe('string')
  expect(body.error.message.length).toBeGreaterThan(0)
  return body.error
}

/** Reads an SSE response, recording when each event arrived */
async function readSse (res: Response): Promise<Array<{ data: string, at: number }>> {
  const events: Array<{ data: string, at: number }> = []
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      expect(block.startsWith('data: ')).toBe(true)
      events.push({ data: block.slice(6), at: performance.now() })
    }
  }
  expect(buffer).toBe('')
  return events
}

describe('HTTP API: node state', () => {
  it('GET /api/status names the peer, its roles and spans, uptime and version', async () => {
    const res = await fetch(url + '/api/status')
    expect(res.status).toBe(200)
    const s = await res.json() as any
    expect(s.peerId).toBe(node.hosts[0].peerId.toString())
    expect(s.spans.length).toBeGreaterThan(0)
    expect(s.spans.every((sp: any) => sp.state === 'serving')).toBe(true)
    expect(s.roles.length).toBeGreaterThan(0)
    expect(s.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(s.uptimeSeconds).toBeGreaterThan(0)
    expect(s.model).toEqual({ id: 'api-test', version: 1, slots: 4 })
    expect(s.wallet).toBe(node.wallet.address)
  })

  it('GET /api/layers maps every slot to its live holders', async () => {
    const map = await (await fetch(url + '/api/layers')).json() as any
    expect(map.slots.map((s: any) => s.name)).toEqual(['embed', 'block 0', 'block 1', 'head'])
    expect(map.peers[0]).toBe(node.hosts[0].peerId.toString())
    const all = new Set(node.hosts.map(h => h.peerId.toString()))
    for (const slot of map.slots) {
      expect(slot.live).toBeGreaterThanOrEqual(2)
      const serving = slot.holders.filter((h: any) => h.state === 'serving')
      expect(serving.length).toBe(slot.live)
      for (const h of slot.holders) expect(all.has(h.peerId)).toBe(true)
    }
    // the layer pool's own view agrees
    expect(map.slots.map((s: any) => s.live)).toEqual(node.hosts[0].services.layerPool.view().map(v => v.live))
  })

  it('GET /api/peers lists the connected peers and their transports', async () => {
    const p = await (await fetch(url + '/api/peers')).json() as any
    expect(p.self).toBe(node.hosts[0].peerId.toString())
    const ids = p.peers.map((x: any) => x.peerId)
    for (const h of node.hosts.slice(1)) expect(ids).toContain(h.peerId.toString())
    for (const peer of p.peers) for (const c of peer.connections) expect(c.transport).toBe('tcp')
  })

  it('GET /api/training follows the recorder', async () => {
    node.recorder.recordStep(5.5)
    node.recorder.recordStep(5.25)
    node.recorder.recordValidation(5.4)
    const t = await (await fetch(url + '/api/training')).json() as any
    expect(t).toMatchObject({ active: true, round: 0, innerStep: 2, innerSteps: 10, totalSteps: 2 })
    expect(t.loss.map((p: any) => p.loss)).toEqual([5.5, 5.25])
    expect(t.validation.map((p: any) => p.loss)).toEqual([5.4])
    node.recorder.recordRound({ accepted: 2, rejected: 0 })
    expect(await (await fetch(url + '/api/training')).json() as any).toMatchObject({ round: 1, innerStep: 0 })
  })

  it('GET /api/ledger gives balance and stake as bigint strings', async () => {
    const l = await (await fetch(url + '/api/ledger')).json() as any
    expect(l.enabled).toBe(true)
    expect(l.address).toBe(node.wallet.address)
    expect(l.balance).toBe((100n * NEURO).toString())
    expect(l.unit).toBe(NEURO.toString())
    expect(typeof l.stake.bonded).toBe('string')
    const bad = await fetch(url + '/api/ledger?address=not-hex')
    expect((await openAiError(bad, 400)).param).toBe('address')
  })

  it('GET /metrics is Prometheus text with the node, layer-pool and diloco metrics', async () => {
    await fetch(url + '/api/status')
    const res = await fetch(url + '/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const samples = parsePrometheus(await res.text())
    const find = (name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
    expect(find('neuroshard_node_http_requests_total', { route: '/api/status', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1)
    for (let slot = 0; slot < 4; slot++) expect(find('neuroshard_layer_pool_live_replicas', { slot: String(slot) })).toBeGreaterThanOrEqual(2)
    expect(find('neuroshard_diloco_round')).toBe(1)
    expect(find('neuroshard_node_peers')).toBeGreaterThanOrEqual(3)
    expect(find('neuroshard_node_uptime_seconds')).toBeGreaterThan(0)
    expect(samples.some(s => s.name === 'neuroshard_node_http_request_seconds_bucket' && s.labels.le === '+Inf')).toBe(true)
  })

  it('serves the dashboard with a strict content security policy, and refuses foreign Host names', async () => {
    const res = await fetch(url + '/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'")
    expect(await res.text()).toContain('id="layer-map"')
    expect((await fetch(url + '/app.js')).headers.get('content-type')).toMatch(/javascript/)
    expect((await fetch(url + '/../package.json')).status).toBe(404)
    const rebinding = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(url + '/api/status', { headers: { host: 'evil.example:8000' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('error', reject)
      req.end()
    })
    expect(rebinding).toBe(421)
  })
})

describe('HTTP API: OpenAI-compatible', () => {
  it('GET /v1/models lists the local fallback model', async () => {
    const m = await (await fetch(url + '/v1/models')).json() as any
    expect(m.object).toBe('list')
    expect(m.data).toEqual([expect.objectContaining({ id: LOCAL_MODEL_ID, object: 'model', owned_by: 'local', context_length: 128 })])
  })

  it('mutating endpoints without the token answer 401 (missing or wrong), and nothing happens', async () => {
    const before = await (await fetch(url + '/api/ledger')).json() as any
    const bodies: Record<string, unknown> = {
      '/v1/completions': { model: LOCAL_MODEL_ID, prompt: 'The' },
      '/v1/chat/completions': { model: LOCAL_MODEL_ID, messages: [{ role: 'user', content: 'hi' }] },
      '/api/wallet/transfer': { to: '00'.repeat(20), amount: '1' },
      '/api/wallet/stake': { amount: '1' },
      '/api/wallet/unstake': { amount: '1' }
    }
    for (const [path, body] of Object.entries(bodies)) {
      const none = await post(path, body, { 'content-type': 'application/json' })
      expect((await openAiError(none, 401)).code).toBe('invalid_api_key')
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/)
      const wrong = await post(path, body, { authorization: 'Bearer not-the-token', 'content-type': 'application/json' })
      expect((await openAiError(wrong, 401)).message).toMatch(/Incorrect API token/)
    }
    const inference = await (await fetch(url + '/api/inference')).json() as any
    expect(inference.totalRequests).toBe(0)
    expect((await (await fetch(url + '/api/ledger')).json() as any).history).toEqual(before.history)
  })

  it('malformed JSON, a huge body, an unknown model and bad parameters get OpenAI-style errors', async () => {
    const malformed = await openAiError(await post('/v1/chat/completions', '{"model": "x", "messages": ['), 400)
    expect(malformed.type).toBe('invalid_request_error')
    expect(malformed.message).toMatch(/parse the JSON/)

    // 2 MiB: over the 1 MiB limit, answered 413 (the body is drained, not buffered)
    const huge = JSON.stringify({ model: LOCAL_MODEL_ID, prompt: 'x'.repeat(2 * 1024 * 1024) })
    const tooBig = await openAiError(await post('/v1/completions', huge), 413)
    expect(tooBig.code).toBe('request_too_large')
    // a chunked body (no content-length) that grows past the limit
    const chunked = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = httpRequest(url + '/v1/completions', { method: 'POST', headers: auth }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      })
      req.on('error', reject)
      const piece = Buffer.alloc(64 * 1024, 0x20)
      for (let i = 0; i < 20; i++) req.write(piece)
      req.end()
    })
    expect(chunked.status).toBe(413)
    expect(JSON.parse(chunked.body).error.code).toBe('request_too_large')

    const unknown = await openAiError(await post('/v1/chat/completions', { model: 'gpt-17', messages: [{ role: 'user', content: 'hi' }] }), 404)
    expect(unknown).toMatchObject({ param: 'model', code: 'model_not_found', type: 'invalid_request_error' })

    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['/v1/completions', { prompt: 'x' }, 'model'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', temperature: 5 }, 'temperature'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', top_p: 0 }, 'top_p'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', max_tokens: 0 }, 'max_tokens'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', max_tokens: 1e9 }, 'max_tokens'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', seed: -1 }, 'seed'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', n: 3 }, 'n'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: [1, 2, 3] }, 'prompt'],
      ['/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'x', stream: 'yes' }, 'stream'],
      ['/v1/chat/completions', { model: LOCAL_MODEL_ID, messages: [] }, 'messages'],
      ['/v1/chat/completions', { model: LOCAL_MODEL_ID, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
      ['/api/wallet/transfer', { to: '00'.repeat(20), amount: 1.5 }, 'amount'],
      ['/api/wallet/transfer', { to: 'nobody', amount: '1' }, 'to']
    ]
    for (const [path, body, param] of cases) {
      const err = await openAiError(await post(path, body), 400)
      expect(err.param, `${path} ${JSON.stringify(body)}`).toBe(param)
      expect(err.type).toBe('invalid_request_error')
    }
    expect((await openAiError(await fetch(url + '/v1/completions'), 405)).code).toBe('method_not_allowed')
    expect((await openAiError(await fetch(url + '/nothing/here'), 404)).code).toBe('not_found')
  })

  it('a non-streaming completion answers text_completion with usage, within max_tokens', async () => {
    const res = await post('/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'The network', max_tokens: 12, temperature: 0.8, seed: 3 })
    expect(res.status).toBe(200)
    const body = await res.json() as any
    expect(body).toMatchObject({ object: 'text_completion', model: LOCAL_MODEL_ID, choices: [{ index: 0, logprobs: null }] })
    expect(body.id).toMatch(/^cmpl-/)
    expect(['stop', 'length']).toContain(body.choices[0].finish_reason)
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(12)
    expect(body.usage.prompt_tokens).toBeGreaterThan(1)
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens)
    // the same seed gives the same text
    const again = await (await post('/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'The network', max_tokens: 12, temperature: 0.8, seed: 3 })).json() as any
    expect(again.choices[0].text).toBe(body.choices[0].text)
  })

  it('streams a chat completion over SSE token by token, ending with [DONE]; the text equals the non-streamed answer', async () => {
    const request = { model: LOCAL_MODEL_ID, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Who holds the layers?' }], max_tokens: 24, temperature: 0.9, top_p: 0.95, seed: 11 }
    const res = await post('/v1/chat/completions', { ...request, stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const events = await readSse(res)
    expect(events.at(-1)!.data).toBe('[DONE]')
    const chunks = events.slice(0, -1).map(e => JSON.parse(e.data))
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk')
      expect(c.id).toBe(chunks[0].id)
    }
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' })
    const content = chunks.slice(1, -1)
    // one event per token: many separate content events (not one blob at the end)
    expect(content.length).toBeGreaterThanOrEqual(5)
    expect(content.every(c => c.choices[0].finish_reason === null && typeof c.choices[0].delta.content === 'string')).toBe(true)
    expect(['stop', 'length']).toContain(chunks.at(-1).choices[0].finish_reason)
    expect(chunks.at(-1).choices[0].delta).toEqual({})
    const streamed = content.map(c => c.choices[0].delta.content).join('')

    const whole = await (await post('/v1/chat/completions', request)).json() as any
    expect(whole.object).toBe('chat.completion')
    expect(whole.choices[0].message).toEqual({ role: 'assistant', content: streamed })
    expect(whole.choices[0].finish_reason).toBe(chunks.at(-1).choices[0].finish_reason)

    // stream_options.include_usage: one more chunk, no choices, the usage of the same answer
    const withUsage = await readSse(await post('/v1/chat/completions', { ...request, stream: true, stream_options: { include_usage: true } }))
    expect(withUsage.at(-1)!.data).toBe('[DONE]')
    const last = JSON.parse(withUsage.at(-2)!.data)
    expect(last.choices).toEqual([])
    expect(last.usage.completion_tokens).toBe(whole.usage.completion_tokens)
    expect(last.usage.total_tokens).toBe(last.usage.prompt_tokens + last.usage.completion_tokens)
    expect((await post('/v1/chat/completions', { ...request, stream: true, stream_options: { include_usage: 'yes' } })).status).toBe(400)

    const stats = await (await fetch(url + '/api/inference')).json() as any
    expect(stats.recent[0].tokens).toBeGreaterThan(0)
    expect(stats.totalTokens).toBeGreaterThan(content.length)
  })

  it('stop sequences cut the text and end with finish_reason stop', async () => {
    const base = await (await post('/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'The', max_tokens: 40, temperature: 0, seed: 1 })).json() as any
    const text: string = base.choices[0].text
    // pick a stop sequence that occurs after the start of the greedy text
    expect(text.length).toBeGreaterThanOrEqual(8)
    const stop = text.slice(5, 7)
    const cut = await (await post('/v1/completions', { model: LOCAL_MODEL_ID, prompt: 'The', max_tokens: 40, temperature: 0, seed: 1, stop })).json() as any
    expect(cut.choices[0].text).toBe(text.slice(0, text.indexOf(stop)))
    expect(cut.choices[0].finish_reason).toBe('stop')
  })

  it('a transfer with the token goes through the ledger; the balance falls by exactly the amount', async () => {
    const to = 'ab'.repeat(20)
    const amount = 1234567890123456789n
    const res = await post('/api/wallet/transfer', { to, amount: amount.toString() })
    expect(res.status).toBe(202)
    const sent = await res.json() as any
    expect(sent).toMatchObject({ submitted: true, sequence: '0' })
    await until(async () => (await (await fetch(url + '/api/ledger')).json() as any).balance === (100n * NEURO - amount).toString(), 20_000, 'the transfer to be final')
    const l = await (await fetch(url + '/api/ledger')).json() as any
    expect(l.history[0]).toMatchObject({ kind: 'transfer', status: 'applied', delta: (-amount).toString() })
    expect((await (await fetch(`${url}/api/ledger?address=${to}`)).json() as any).balance).toBe(amount.toString())
  })
})

describe('HTTP API: limits', () => {
  it('a generation over the concurrency limit gets 429; a closed client stops its generation', async () => {
    // a backend whose generation waits for the test, so two requests really overlap
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    let aborted = false
    const slow: NodeBackend = {
      ...node.backend,
      models: () => [{ id: 'slow', ownedBy: 'test', created: 0 }],
      async * generate (_p, _o, signal) {
        signal.addEventListener('abort', () => { aborted = true })
        yield 'a'
        await Promise.race([gate, new Promise(resolve => signal.addEventListener('abort', resolve))])
        yield 'b'
      }
    }
    const server = await startApiServer({ backend: slow, port: 0, maxConcurrentGenerations: 1, defaultMetrics: false })
    try {
      const controller = new AbortController()
      const first = await fetch(server.url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'slow', prompt: 'x', stream: true }), signal: controller.signal })
      expect(first.status).toBe(200)
      const second = await fetch(server.url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'slow', prompt: 'x' }) })
      const err = await openAiError(second, 429)
      expect(err.code).toBe('rate_limit_exceeded')
      expect(second.headers.get('retry-after')).toBe('1')
      controller.abort()
      await until(() => aborted, 15_000, 'the server to abort the generation of a closed client')
      release()
      // the slot is free again
      await until(async () => (await (await fetch(server.url + '/api/inference')).json() as any).active.length === 0, 15_000, 'the slot to be released')
      const third = await fetch(server.url + '/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'slow', prompt: 'x' }) })
      expect(third.status).toBe(200)
      expect((await third.json() as any).choices[0].text).toBe('ab')
    } finally {
      release()
      await server.close()
    }
  })
})

interface Sample { name: string, labels: Record<string, string>, value: number }

/**
 * A strict reader of the Prometheus text exposition format (0.0.4): every line is a `# HELP`, a
 * `# TYPE` or a sample `name{label="value",…} number`; each sample's family has a TYPE before it.
 */
function parsePrometheus (text: string): Sample[] {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
  const sampleRe = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (-?[0-9.eE+-]+|NaN|\\+Inf|-Inf)(?: -?[0-9]+)?$`)
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.split('\n')) {
    if (line === '') continue
    let m
    if ((m = new RegExp(`^# HELP (${NAME}) .*$`).exec(line)) !== null) continue
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line)) !== null) {
      types.set(m[1], m[2])
      continue
    }
    m = sampleRe.exec(line)
    expect(m, `not a Prometheus line: ${line}`).not.toBeNull()
    const [, name, labelText, value] = m!
    const family = name.replace(/_(bucket|sum|count)$/, '')
    expect(types.has(name) || types.has(family), `no TYPE for ${name}`).toBe(true)
    const labels: Record<string, string> = {}
    if (labelText !== undefined && labelText !== '') {
      labelRe.lastIndex = 0
      let consumed = 0
      let lm
      while ((lm = labelRe.exec(labelText)) !== null) {
        labels[lm[1]] = lm[2]
        consumed = labelRe.lastIndex
      }
      expect(consumed, `bad labels in ${line}`).toBe(labelText.length)
    }
    samples.push({ name, labels, value: Number(value) })
  }
  expect(samples.length).toBeGreaterThan(10)
  return samples
}

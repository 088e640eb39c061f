// NeuroShard node dashboard: plain ES module, no build step, no network access beyond this node's API.
// Everything from the API is shown with textContent / SVG attributes (never innerHTML): peer ids and
// history entries come from other machines.

const $ = (id) => document.getElementById(id)
const SVG_NS = 'http://www.w3.org/2000/svg'
const FAST_MS = 1000
const SLOW_MS = 3000

function el (tag, attrs = {}, text) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (text !== undefined) e.textContent = text
  return e
}

function short (peerId) {
  return peerId.length > 12 ? '…' + peerId.slice(-8) : peerId
}

function duration (seconds) {
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  return h < 48 ? `${h}h${String(m % 60).padStart(2, '0')}m` : `${Math.floor(h / 24)}d${h % 24}h`
}

/** base units (decimal string) → "12.3456" NEURO, exact (BigInt), 4 decimals */
function neuro (base, unit = '1000000000000000000') {
  let v = BigInt(base)
  const u = BigInt(unit)
  const neg = v < 0n
  if (neg) v = -v
  const whole = v / u
  const frac = ((v % u) * 10000n) / u
  return `${neg ? '-' : ''}${whole.toLocaleString('en-US')}.${String(frac).padStart(4, '0')}`
}

async function getJson (path) {
  const res = await fetch(path, { cache: 'no-store' })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return res.json()
}

// ---- status ---------------------------------------------------------------------------------------
let selfId = ''
function renderStatus (s) {
  selfId = s.peerId
  $('node-id').textContent = s.peerId || '(no host)'
  $('uptime').textContent = duration(s.uptimeSeconds)
  $('version').textContent = s.version
  const roles = $('node-roles')
  roles.replaceChildren(...(s.roles.length > 0 ? s.roles : ['no role yet']).map(r => el('span', {}, r)))
  $('node-spans').textContent = s.spans.length > 0
    ? 'This node holds ' + s.spans.map(sp => `${sp.description} (${sp.state})`).join(', ') + '.'
    : 'This node holds no span yet.'
}

// ---- layer map ------------------------------------------------------------------------------------
function renderLayers (map) {
  $('layers-model').textContent = map.modelId ? `${map.modelId} v${map.version} · ${map.slots.length} slots · ${map.peers.length} peers` : '(no layer pool)'
  const table = $('layer-map')
  const head = el('tr')
  head.append(el('th'))
  for (const s of map.slots) head.append(el('th', { class: 'slot', title: `slot ${s.slot}` }, s.name))
  const rows = [head]
  for (const peer of map.peers) {
    const tr = el('tr', { 'data-peer': peer })
    tr.append(el('th', { class: peer === selfId ? 'peer self' : 'peer', title: peer }, short(peer) + (peer === selfId ? ' (this node)' : '')))
    for (const s of map.slots) {
      const h = s.holders.find(x => x.peerId === peer)
      tr.append(el('td', { class: h ? `cell ${h.state}` : 'cell', title: h ? `${s.name}: ${h.state} by ${peer}` : `${s.name}: not held` }))
    }
    rows.push(tr)
  }
  const live = el('tr', { class: 'live-row' })
  live.append(el('th', { class: 'peer' }, 'live'))
  for (const s of map.slots) live.append(el('td', { class: s.live < map.minReplicas ? 'live under' : 'live', title: `${s.live} live, ${s.pending} loading` }, String(s.live)))
  rows.push(live)
  table.replaceChildren(...rows)
}

// ---- training -------------------------------------------------------------------------------------
function renderTraining (t) {
  $('round').textContent = String(t.round)
  $('inner-step').textContent = t.innerSteps ? `${t.innerStep}/${t.innerSteps}` : String(t.innerStep)
  $('inner-bar').style.width = t.innerSteps ? `${Math.min(100, (100 * t.innerStep) / t.innerSteps)}%` : '0%'
  const last = t.loss.at(-1)
  const lastVal = t.validation.at(-1)
  $('last-loss').textContent = last ? last.loss.toFixed(3) : '–'
  $('last-val').textContent = lastVal ? lastVal.loss.toFixed(3) : '–'
  drawChart(t.loss, t.validation)
}

function drawChart (train, val) {
  const W = 600; const H = 240; const L = 44; const R = 10; const T = 10; const B = 22
  const all = [...train, ...val]
  $('loss-empty').style.display = all.length === 0 ? '' : 'none'
  const grid = $('loss-grid')
  if (all.length === 0) {
    $('loss-train').setAttribute('points', '')
    $('loss-val').setAttribute('points', '')
    $('loss-val-dots').replaceChildren()
    grid.replaceChildren()
    return
  }
  let minY = Math.min(...all.map(p => p.loss)); let maxY = Math.max(...all.map(p => p.loss))
  if (maxY - minY < 1e-6) { minY -= 0.5; maxY += 0.5 }
  const pad = (maxY - minY) * 0.05; minY -= pad; maxY += pad
  const minX = Math.min(...all.map(p => p.step)); let maxX = Math.max(...all.map(p => p.step))
  if (maxX === minX) maxX = minX + 1
  const x = (s) => L + ((s - minX) / (maxX - minX)) * (W - L - R)
  const y = (v) => T + (1 - (v - minY) / (maxY - minY)) * (H - T - B)
  const pts = (ps) => ps.map(p => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ')
  $('loss-train').setAttribute('points', pts(train))
  $('loss-val').setAttribute('points', pts(val))
  $('loss-val-dots').replaceChildren(...val.map(p => {
    const c = document.createElementNS(SVG_NS, 'circle')
    c.setAttribute('cx', x(p.step).toFixed(1)); c.setAttribute('cy', y(p.loss).toFixed(1)); c.setAttribute('r', '3')
    // a network model measured as served (its slots at different rounds) says so: hollow dot, slot rounds in its title
    const mixed = Array.isArray(p.slotRounds) && p.slotRounds.some(r => r !== p.slotRounds[0])
    c.setAttribute('class', mixed ? 'dot-val served' : 'dot-val')
    const title = document.createElementNS(SVG_NS, 'title')
    title.textContent = `validation ${p.loss.toFixed(3)} after round ${p.round}` + (mixed ? ` (as served: slot rounds ${p.slotRounds.join('/')})` : '')
    c.append(title)
    return c
  }))
  const parts = []
  for (let i = 0; i <= 4; i++) {
    const v = minY + ((maxY - minY) * i) / 4
    const line = document.createElementNS(SVG_NS, 'line')
    line.setAttribute('x1', String(L)); line.setAttribute('x2', String(W - R)); line.setAttribute('y1', y(v).toFixed(1)); line.setAttribute('y2', y(v).toFixed(1)); line.setAttribute('class', 'grid-line')
    const label = document.createElementNS(SVG_NS, 'text')
    label.setAttribute('x', String(L - 4)); label.setAttribute('y', (y(v) + 4).toFixed(1)); label.setAttribute('text-anchor', 'end'); label.setAttribute('class', 'chart-label')
    label.textContent = v.toFixed(2)
    parts.push(line, label)
  }
  for (const [s, anchor] of [[minX, 'start'], [maxX, 'end']]) {
    const label = document.createElementNS(SVG_NS, 'text')
    label.setAttribute('x', x(s).toFixed(1)); label.setAttribute('y', String(H - 6)); label.setAttribute('text-anchor', anchor); label.setAttribute('class', 'chart-label')
    label.textContent = `step ${s}`
    parts.push(label)
  }
  grid.replaceChildren(...parts)
}

// ---- inference ------------------------------------------------------------------------------------
function renderInference (i) {
  $('tokens-per-second').textContent = i.tokensPerSecond.toFixed(1)
  $('active-sessions').textContent = String(i.active.length)
  $('total-tokens').textContent = String(i.totalTokens)
  $('total-requests').textContent = String(i.totalRequests)
  const rows = [...i.active, ...i.recent].slice(0, 8).map(s => {
    const tr = el('tr')
    tr.append(el('td', { title: s.id }, `${s.endpoint} ${s.id.slice(-6)}`), el('td', { class: 'num' }, String(s.tokens)),
      el('td', { class: 'num' }, s.tokensPerSecond != null ? s.tokensPerSecond.toFixed(1) : '–'),
      el('td', { class: 'num' }, s.firstTokenMs != null ? `${s.firstTokenMs} ms` : '–'),
      el('td', {}, s.finishReason ?? 'generating…'))
    return tr
  })
  $('sessions').tBodies[0].replaceChildren(...rows)
}

// ---- wallet ---------------------------------------------------------------------------------------
function renderLedger (l) {
  if (!l.enabled) {
    $('balance').textContent = 'no ledger'
    $('stake').textContent = '–'; $('rewards').textContent = '–'
    return
  }
  $('balance').textContent = neuro(l.balance, l.unit)
  $('stake').textContent = neuro(l.stake.bonded, l.unit)
  $('rewards').textContent = neuro(l.rewards, l.unit)
  $('wallet-address').textContent = l.address ?? '–'
  $('ledger-history').tBodies[0].replaceChildren(...l.history.slice(0, 12).map(h => {
    const tr = el('tr')
    tr.append(el('td', {}, h.kind), el('td', { class: 'num' }, h.sequence), el('td', { class: 'num' }, neuro(h.delta, l.unit)),
      el('td', { class: 'num' }, h.minted !== '0' ? neuro(h.minted, l.unit) : ''), el('td', { title: h.reason ?? '' }, h.status))
    return tr
  }))
}

// ---- peers ----------------------------------------------------------------------------------------
function renderPeers (p) {
  $('peer-count').textContent = `${p.peers.length} connected`
  $('peers').tBodies[0].replaceChildren(...p.peers.map(peer => {
    const tr = el('tr')
    const transports = [...new Set(peer.connections.map(c => `${c.transport} ${c.direction === 'inbound' ? '←' : '→'}`))].join(', ')
    tr.append(el('td', { title: peer.peerId }, short(peer.peerId)), el('td', {}, transports), el('td', { class: 'addr', title: peer.connections.map(c => c.remoteAddr).join('\n') }, peer.connections[0]?.remoteAddr ?? ''))
    return tr
  }))
}

// ---- polling --------------------------------------------------------------------------------------
async function poll (paths, render) {
  const results = await Promise.allSettled(paths.map(getJson))
  let ok = true
  results.forEach((r, k) => {
    if (r.status === 'fulfilled') render[k](r.value)
    else ok = false
  })
  const state = $('conn-state')
  state.textContent = ok ? 'live' : 'node unreachable'
  state.className = ok ? 'pill ok' : 'pill bad'
}

function loop (paths, render, ms) {
  const tick = async () => {
    try { await poll(paths, render) } finally { setTimeout(tick, ms) }
  }
  void tick()
}

// ---- chat -----------------------------------------------------------------------------------------
const conversation = []
const tokenInput = $('api-token')
tokenInput.value = sessionStorage.getItem('neuroshard-api-token') ?? ''
tokenInput.addEventListener('change', () => { sessionStorage.setItem('neuroshard-api-token', tokenInput.value) })

function addMessage (role, text) {
  const div = el('div', { class: `msg ${role}` })
  div.append(el('span', { class: 'who' }, role === 'user' ? 'you' : role === 'error' ? 'error' : 'model'), el('span', { class: 'text' }, text))
  $('chat-log').append(div)
  $('chat-log').scrollTop = $('chat-log').scrollHeight
  return div.querySelector('.text')
}

async function loadModels () {
  try {
    const { data } = await getJson('/v1/models')
    $('chat-model').replaceChildren(...data.map(m => el('option', { value: m.id }, `${m.id} (${m.owned_by})`)))
    if (data.length === 0) $('chat-model').replaceChildren(el('option', { value: '' }, 'no model served'))
  } catch { setTimeout(loadModels, SLOW_MS) }
}

async function send (text) {
  conversation.push({ role: 'user', content: text })
  addMessage('user', text)
  const out = addMessage('assistant', '')
  out.parentElement.classList.add('streaming')
  const headers = { 'content-type': 'application/json' }
  if (tokenInput.value) headers.authorization = `Bearer ${tokenInput.value}`
  let reply = ''
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: $('chat-model').value, messages: conversation, stream: true, max_tokens: 120, temperature: 0.8, top_p: 0.95 })
    })
    if (!res.ok) {
      const body = await res.json().catch(() => ({}))
      throw new Error(body.error?.message ?? `HTTP ${res.status}`)
    }
    // SSE over fetch streaming: `data: {...}\n\n` events, `data: [DONE]` last
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue
          const data = line.slice(6)
          if (data === '[DONE]') continue
          const chunk = JSON.parse(data)
          if (chunk.error) throw new Error(chunk.error.message)
          const piece = chunk.choices?.[0]?.delta?.content ?? ''
          reply += piece
          out.textContent = reply
          $('chat-log').scrollTop = $('chat-log').scrollHeight
        }
      }
    }
    conversation.push({ role: 'assistant', content: reply })
    out.parentElement.classList.add('done')
  } catch (err) {
    conversation.pop()
    out.parentElement.remove()
    addMessage('error', err.message)
  } finally {
    out.parentElement?.classList.remove('streaming')
  }
}

$('chat-form').addEventListener('submit', async (evt) => {
  evt.preventDefault()
  const input = $('chat-input')
  const text = input.value.trim()
  if (text === '') return
  input.value = ''
  $('chat-send').disabled = true
  try { await send(text) } finally { $('chat-send').disabled = false; input.focus() }
})
$('chat-reset').addEventListener('click', () => { conversation.length = 0; $('chat-log').replaceChildren() })

loop(['/api/status', '/api/layers', '/api/training', '/api/inference'], [renderStatus, renderLayers, renderTraining, renderInference], FAST_MS)
loop(['/api/peers', '/api/ledger'], [renderPeers, renderLedger], SLOW_MS)
void loadModels()

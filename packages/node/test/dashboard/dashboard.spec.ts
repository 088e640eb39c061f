/**
 * The dashboard in a real browser: Debian's `chromium` (/usr/bin/chromium, installed by .ci/run), driven
 * by playwright-core (no downloaded browser build). Screenshots go to test-results/dashboard/.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TOKEN, startNodeFixture } from '../fixture.js'
import type { NodeFixture } from '../fixture.js'
import type { BrowserContext, Page } from 'playwright-core'

// evaluated in the page (the test's tsconfig has no DOM lib)
declare const window: any
declare const document: any
declare const MutationObserver: any
declare const getComputedStyle: any

const CHROMIUM = '/usr/bin/chromium'
const HAS_CHROMIUM = existsSync(CHROMIUM)
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test-results', 'dashboard')
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

if (!HAS_CHROMIUM) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED dashboard browser test: ${CHROMIUM} is absent (install Debian's chromium: apt-get install -y chromium; .ci/run does)`)
}

describe.skipIf(!HAS_CHROMIUM)(`dashboard in headless Chromium (${CHROMIUM})`, () => {
  let node: NodeFixture
  let context: BrowserContext
  let page: Page
  let profile: string
  const foreign: string[] = []
  const errors: string[] = []

  beforeAll(async () => {
    node = await startNodeFixture()
    profile = await mkdtemp(join(tmpdir(), 'neuroshard-chromium-'))
    await mkdir(SHOTS, { recursive: true })
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1360, height: 1000 } })
    page = context.pages()[0] ?? await context.newPage()
    page.on('request', (req) => { if (!req.url().startsWith(node.server.url)) foreign.push(req.url()) })
    page.on('pageerror', (err) => { errors.push(err.message) })
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()) })
    await page.goto(node.server.url + '/')
  }, 120_000)

  afterAll(async () => {
    await context?.close()
    await node?.stop()
    if (profile !== undefined) await rm(profile, { recursive: true, force: true })
  })

  it('shows this node, its role and spans, and the layer map (every peer × every slot)', async () => {
    const self = node.hosts[0].peerId.toString()
    await expect.poll(async () => page.textContent('#node-id'), { timeout: 15_000 }).toBe(self)
    await expect.poll(async () => page.locator('#layer-map tr[data-peer]').count(), { timeout: 15_000 }).toBe(node.hosts.length)
    // the grid matches the layer pool: one coloured cell per (holder, slot), live counts in the last row
    const view = node.hosts[0].services.layerPool.view()
    const expectedServing = view.reduce((n, v) => n + v.live, 0)
    await expect.poll(async () => page.locator('#layer-map td.cell.serving').count(), { timeout: 15_000 }).toBe(expectedServing)
    // coloured as the legend says (serving ≠ an empty cell)
    const colour = async (selector: string): Promise<string> => page.locator(selector).first().evaluate((e: any) => getComputedStyle(e).backgroundColor)
    expect(await colour('#layer-map td.cell.serving')).toBe(await colour('.cell-key.serving'))
    if (expectedServing < node.hosts.length * view.length) expect(await colour('#layer-map td.cell:not(.serving)')).not.toBe(await colour('.cell-key.serving'))
    expect(await page.locator('#layer-map tr.live-row td.live').allTextContents()).toEqual(view.map(v => String(v.live)))
    expect(await page.locator('#layer-map th.slot').allTextContents()).toEqual(['embed', 'block 0', 'block 1', 'head'])
    expect(await page.locator(`#layer-map tr[data-peer="${self}"] th.peer.self`).count()).toBe(1)
    const roles = await page.locator('#node-roles span').allTextContents()
    expect(roles.length).toBeGreaterThan(0)
    expect(roles.every(r => ['driver', 'worker', 'validator'].includes(r))).toBe(true)
    expect(await page.textContent('#node-spans')).toMatch(/serving/)
    await page.screenshot({ path: join(SHOTS, 'layer-map.png'), fullPage: true })
  })

  it('draws the loss curves and redraws them as the recorder gets new points', async () => {
    const points = async (): Promise<number> => ((await page.getAttribute('#loss-train', 'points')) ?? '').split(' ').filter(p => p !== '').length
    expect(await points()).toBe(0)
    // a first stretch of training: 3 rounds of 10 inner steps, validation after each round
    let step = 0
    const loss = (i: number): number => 6 * Math.exp(-i / 40) + 2 + 0.15 * Math.sin(i * 1.7)
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < 10; i++) node.recorder.recordStep(loss(step++))
      node.recorder.recordValidation(loss(step) + 0.2)
      node.recorder.recordRound({ accepted: 2 })
    }
    await expect.poll(points, { timeout: 10_000 }).toBe(30)
    const before = await page.getAttribute('#loss-train', 'points')
    expect(await page.locator('#loss-val-dots circle').count()).toBe(3)
    expect(await page.textContent('#round')).toBe('3')

    // more steps: the SVG changes (more points, rescaled) and the round/inner-step counters move
    for (let i = 0; i < 7; i++) node.recorder.recordStep(loss(step++))
    await expect.poll(points, { timeout: 10_000 }).toBe(37)
    expect(await page.getAttribute('#loss-train', 'points')).not.toBe(before)
    await expect.poll(async () => page.textContent('#inner-step'), { timeout: 10_000 }).toBe('7/10')
    expect(Number(await page.textContent('#last-loss'))).toBeCloseTo(loss(step - 1), 3)
    // the train line lies inside the chart and goes down overall (y grows downwards in SVG)
    const ys = ((await page.getAttribute('#loss-train', 'points')) ?? '').split(' ').map(p => Number(p.split(',')[1]))
    expect(ys.every(y => y >= 0 && y <= 240)).toBe(true)
    expect(ys.at(-1)!).toBeGreaterThan(ys[0])
    await page.screenshot({ path: join(SHOTS, 'loss-curve.png'), fullPage: true })
  })

  it('streams a chat answer into the chat box, token by token, with the API token', async () => {
    await page.click('#chat-card summary')
    await page.fill('#api-token', TOKEN)
    await page.dispatchEvent('#api-token', 'change')
    await expect.poll(async () => page.locator('#chat-model option').count(), { timeout: 10_000 }).toBe(1)
    // record every intermediate text of the answer as it streams in
    await page.evaluate(() => {
      const seen: string[] = []
      ;(window as any).__seen = seen
      new MutationObserver(() => {
        const t = document.querySelector('#chat-log .msg.assistant:last-of-type .text')?.textContent ?? ''
        if (t !== '' && t !== seen.at(-1)) seen.push(t)
      }).observe(document.getElementById('chat-log'), { subtree: true, childList: true, characterData: true })
    })
    await page.fill('#chat-input', 'Which peers hold the head?')
    await page.click('#chat-send')
    await page.waitForSelector('#chat-log .msg.assistant.done', { timeout: 30_000 })
    const answer = await page.textContent('#chat-log .msg.assistant .text') ?? ''
    const seen: string[] = await page.evaluate(() => (window as any).__seen)
    expect(answer.length).toBeGreaterThan(0)
    // streamed: the text grew in steps (at least one visible state before the final one; on a loaded machine
    // several SSE events can arrive in one read and land in one DOM mutation), each a prefix of the answer
    expect(seen.length).toBeGreaterThanOrEqual(2)
    expect(seen[0].length).toBeLessThan(answer.length)
    expect(seen.every(t => answer.startsWith(t))).toBe(true)
    expect(await page.textContent('#chat-log .msg.user .text')).toBe('Which peers hold the head?')
    expect(await page.locator('#chat-log .msg.error').count()).toBe(0)
    // the inference card counts the session
    await expect.poll(async () => Number(await page.textContent('#total-requests')), { timeout: 10_000 }).toBeGreaterThanOrEqual(1)
    await page.screenshot({ path: join(SHOTS, 'chat.png'), fullPage: true })
  })

  it('shows the wallet balance in NEURO from the ledger, peers with transports, and loads nothing from outside', async () => {
    await expect.poll(async () => page.textContent('#balance'), { timeout: 10_000 }).toBe('100.0000')
    expect(await page.textContent('#wallet-address')).toBe(node.wallet.address)
    await expect.poll(async () => page.locator('#peers tbody tr').count(), { timeout: 10_000 }).toBe(node.hosts.length - 1)
    expect(await page.locator('#peers tbody tr td:nth-child(2)').allTextContents()).toSatisfy((t: string[]) => t.every(x => x.startsWith('tcp')))
    expect(foreign).toEqual([])
    expect(errors).toEqual([])
    await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true })
  })
})

/**
 * The dashboard of a REAL devnet in a real browser: four NetworkNodes on loopback (libp2p hosts, layer pool,
 * pipeline, DiLoCo, onnxruntime stages, the Proof-of-Neural-Work ledger) train `tiny` on a small corpus; the
 * API of the Driver (the node holding the embedding) is opened in Debian's `chromium` (/usr/bin/chromium),
 * driven by playwright-core. Checked from the DOM: the layer map lists the four peers with the spans they
 * hold, the training loss curve gains points while we watch, a chat answer streams in piece by piece through
 * the pipeline, and the wallet shows the node's NEURO balance and a reward it earned. Screenshots go to
 * test-results/dashboard/devnet-*.png.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { constantLr } from '@neuroshard/runtime'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startApiServer } from '../../src/api/server.js'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { prepareData } from '../../src/workspace.js'
import { testCorpus } from '../network/corpus.js'
import type { ApiServer } from '../../src/api/server.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'
import type { NetworkNode } from '../../src/network/node.js'
import type { BrowserContext, Page } from 'playwright-core'

// evaluated in the page (the test's tsconfig has no DOM lib)
declare const window: any
declare const document: any
declare const MutationObserver: any

const CHROMIUM = '/usr/bin/chromium'
const HAS_CHROMIUM = existsSync(CHROMIUM)
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test-results', 'dashboard')
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const TOKEN = 'devnet-dashboard-token'
const SLOT_NAMES = ['embed', 'block 0', 'block 1', 'head']

if (!HAS_CHROMIUM) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED devnet dashboard browser test: ${CHROMIUM} is absent (install Debian's chromium: apt-get install -y chromium; .ci/run does)`)
}

describe.skipIf(!HAS_CHROMIUM)(`the dashboard of a 4-node devnet in headless Chromium (${CHROMIUM})`, () => {
  let dir: string
  let devnet: NetworkDevnet
  let driver: NetworkNode
  let driverIndex: number
  let server: ApiServer
  let context: BrowserContext
  let page: Page
  let profile: string
  const foreign: string[] = []
  const errors: string[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'neuroshard-devnet-dashboard-'))
    await writeFile(join(dir, 'corpus.txt'), testCorpus(1500).join('\n\n'))
    const data = await prepareData({ dataDir: dir, source: { files: [join(dir, 'corpus.txt')] }, vocabSize: 320, shardTokens: 4096, validationFraction: 0.05 })
    // the devnet as `neuroshard devnet` starts it (ledger included), with short rounds
    devnet = await startNetworkDevnet({
      nodes: 4,
      tokenizer: data.tokenizer,
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      node: { innerSteps: 5, batchSize: 4, seqLen: 32, optimizer: { schedule: constantLr(3e-3) }, evalBatches: 2 }
    })
    // the layer pool settles: every node serves a span and the layout stays the same for 5 s
    const layout = (): string => devnet.nodes.map(n => n.heldStages().map(h => `${h.start}-${h.end}`).join('+')).join(' ')
    const deadline = Date.now() + 180_000
    let last = ''
    let since = Date.now()
    for (;;) {
      const now = layout()
      if (now !== last) { last = now; since = Date.now() }
      if (devnet.nodes.every(n => n.heldStages().length > 0) && Date.now() - since > 5_000) break
      if (Date.now() > deadline) throw new Error(`the layer pool did not settle in 180 s (${now})`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    driverIndex = devnet.nodes.findIndex(n => n.heldStages().some(h => h.start === 0))
    driver = devnet.nodes[driverIndex]
    server = await startApiServer({ backend: driver.backend(), port: 0, token: TOKEN, defaultMetrics: false })
    profile = await mkdtemp(join(tmpdir(), 'neuroshard-chromium-'))
    await mkdir(SHOTS, { recursive: true })
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1360, height: 1000 }, timeout: 120_000 })
    page = context.pages()[0] ?? await context.newPage()
    page.on('request', (req) => { if (!req.url().startsWith(server.url)) foreign.push(req.url()) })
    page.on('pageerror', (err) => { errors.push(err.message) })
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()) })
    await page.goto(server.url + '/', { timeout: 60_000 })
  }, 300_000)

  afterAll(async () => {
    await context?.close()
    await server?.close()
    await devnet?.stop()
    if (profile !== undefined) await rm(profile, { recursive: true, force: true })
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }, 120_000)

  /** slot → true when that row's cell is coloured (held in some state), for the row of `peer` */
  const rowCells = async (peer: string): Promise<boolean[]> =>
    await page.locator(`#layer-map tr[data-peer="${peer}"] td.cell`).evaluateAll((tds: any[]) => tds.map(td => td.className.trim() !== 'cell'))

  it('the layer map lists the four peers, each with the span it holds; the header shows this node as the Driver', async () => {
    const self = driver.peerId.toString()
    await expect.poll(async () => page.textContent('#node-id'), { timeout: 30_000 }).toBe(self)
    await expect.poll(async () => page.locator('#layer-map tr[data-peer]').count(), { timeout: 60_000 }).toBe(4)
    expect(await page.locator('#layer-map th.slot').allTextContents()).toEqual(SLOT_NAMES)
    // every node's row is coloured exactly on the slots of the stages that node serves (the nodes' own view,
    // not the API's, which reads the layer pool's records)
    const expected = (n: NetworkNode): boolean[] => SLOT_NAMES.map((_, s) => n.heldStages().some(h => h.start <= s && s < h.end))
    for (const n of devnet.nodes) {
      // '' when the row matches what the node serves now (both are read on every try)
      const mismatch = async (): Promise<string> => {
        const got = await rowCells(n.peerId.toString())
        const want = expected(n)
        return JSON.stringify(got) === JSON.stringify(want) ? '' : `row ${JSON.stringify(got)}, node serves ${JSON.stringify(want)}`
      }
      await expect.poll(mismatch, { timeout: 30_000 }).toBe('')
    }
    // the last row counts the live replicas of each slot: the nodes holding it (at least one each: the
    // network serves the whole model)
    const replicas = SLOT_NAMES.map((_, s) => devnet.nodes.filter(n => expected(n)[s]).length)
    expect(replicas.every(r => r >= 1)).toBe(true)
    await expect.poll(async () => page.locator('#layer-map tr.live-row td.live').allTextContents(), { timeout: 30_000 }).toEqual(replicas.map(String))
    expect(await page.locator(`#layer-map tr[data-peer="${self}"] th.peer.self`).count()).toBe(1)
    expect(await page.locator('#node-roles span').allTextContents()).toContain('driver')
    // this node's spans, as `[start,end) embed+blocks[…]` descriptions
    for (const h of driver.heldStages()) expect(await page.textContent('#node-spans')).toContain(`[${h.start},${h.end})`)
    expect(await page.textContent('#node-spans')).toContain('embed')
    expect(await page.textContent('#layers-model')).toMatch(/devnet v\d+ · 4 slots · 4 peers/)
    await page.screenshot({ path: join(SHOTS, 'devnet-layer-map.png'), fullPage: true })
  }, 180_000)

  it('the training loss curve gains points while we watch; round, inner step and validation move', async () => {
    const points = async (): Promise<string[]> => ((await page.getAttribute('#loss-train', 'points')) ?? '').split(' ').filter(p => p !== '')
    // the curve is drawn once the Driver has trained a step
    await expect.poll(async () => (await points()).length, { timeout: 120_000 }).toBeGreaterThan(0)
    const first = await points()
    const firstRound = Number(await page.textContent('#round'))
    // watch: the DOM changes as the network trains — more points (the recorder downsamples only past its
    // bound, far away here), a later round, a validation point
    await expect.poll(async () => (await points()).length, { timeout: 180_000 }).toBeGreaterThanOrEqual(first.length + 5)
    await expect.poll(async () => Number(await page.textContent('#round')), { timeout: 180_000 }).toBeGreaterThan(firstRound)
    await expect.poll(async () => page.locator('#loss-val-dots circle').count(), { timeout: 180_000 }).toBeGreaterThanOrEqual(1)
    const later = await points()
    expect(later).not.toEqual(first)
    // the page shows what the Driver's own recorder holds (it may have moved on by a point meanwhile)
    const progress = driver.recorder.progress()
    expect(later.length).toBeLessThanOrEqual(progress.loss.length)
    expect(await page.textContent('#inner-step')).toMatch(/^\d\/5$/)
    const lastLoss = Number(await page.textContent('#last-loss'))
    expect(lastLoss).toBeGreaterThan(0)
    expect(lastLoss).toBeLessThan(Math.log(320) + 2)
    const val = Number(await page.textContent('#last-val'))
    expect(progress.validation.map(v => v.loss.toFixed(3))).toContain(val.toFixed(3))
    // points lie inside the chart
    const ys = later.map(p => Number(p.split(',')[1]))
    expect(ys.every(y => y >= 0 && y <= 240)).toBe(true)
    await page.screenshot({ path: join(SHOTS, 'devnet-loss-curve.png'), fullPage: true })
  }, 420_000)

  it('a chat answer streams into the chat box through the pipeline, piece by piece', async () => {
    await page.click('#chat-card summary')
    await page.fill('#api-token', TOKEN)
    await page.dispatchEvent('#api-token', 'change')
    await expect.poll(async () => page.locator('#chat-model option[value="devnet"]').count(), { timeout: 30_000 }).toBe(1)
    // record every visible state of the newest answer with the time it appeared
    await page.evaluate(() => {
      ;(window as any).__seen = []
      new MutationObserver(() => {
        const seen: Array<{ t: number, text: string }> = (window as any).__seen
        const text = document.querySelector('#chat-log .msg.assistant:last-of-type .text')?.textContent ?? ''
        if (text !== '' && text !== seen.at(-1)?.text) seen.push({ t: performance.now(), text })
      }).observe(document.getElementById('chat-log'), { subtree: true, childList: true, characterData: true })
    })
    const requestsBefore = driver.host.services.pipeline.trafficStats().requests
    // a model trained for a minute may end its answer after a token or two (it samples <|eos|>): ask again
    // (a fresh conversation) until an answer is long enough to show streaming; every answer must succeed
    const PROMPTS = ['The driver sends', 'A worker holds the weights', 'Every node trains', 'The validator checks']
    let answer = ''
    let seen: Array<{ t: number, text: string }> = []
    let prompt = ''
    for (prompt of PROMPTS) {
      await page.click('#chat-reset')
      await page.evaluate(() => { (window as any).__seen = [] })
      await page.fill('#chat-input', prompt)
      await page.click('#chat-send')
      await page.waitForSelector('#chat-log .msg.assistant.done, #chat-log .msg.error', { timeout: 120_000 })
      expect(await page.locator('#chat-log .msg.error .text').allTextContents()).toEqual([])
      answer = await page.textContent('#chat-log .msg.assistant .text') ?? ''
      seen = await page.evaluate(() => (window as any).__seen)
      if (seen.length >= 3) break
    }
    expect(answer.length).toBeGreaterThan(0)
    // streamed: the text grew in steps over time, each state a prefix of the final answer (several SSE
    // events can land in one read on a loaded machine, so not necessarily one state per token)
    expect(seen.length).toBeGreaterThanOrEqual(3)
    expect(seen[0].text.length).toBeLessThan(answer.length)
    expect(seen.at(-1)!.text).toBe(answer)
    expect(seen.every(s => answer.startsWith(s.text))).toBe(true)
    expect(seen.at(-1)!.t).toBeGreaterThan(seen[0].t)
    // through the pipeline: the Driver sent requests to the next hops (it holds no head of its own)
    expect(driver.heldStages().some(h => h.end === SLOT_NAMES.length)).toBe(false)
    expect(driver.host.services.pipeline.trafficStats().requests).toBeGreaterThan(requestsBefore)
    expect(await page.textContent('#chat-log .msg.user .text')).toBe(prompt)
    // the inference card counts the session and its tokens
    await expect.poll(async () => Number(await page.textContent('#total-requests')), { timeout: 15_000 }).toBeGreaterThanOrEqual(1)
    await expect.poll(async () => Number(await page.textContent('#total-tokens')), { timeout: 15_000 }).toBeGreaterThanOrEqual(seen.length)
    await expect.poll(async () => page.locator('#sessions tbody tr').count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(1)
    await page.screenshot({ path: join(SHOTS, 'devnet-chat.png'), fullPage: true })
  }, 480_000)

  it('the wallet shows the node\'s NEURO balance and a reward it earned; peers and transports; nothing from outside', async () => {
    expect(await page.textContent('#wallet-address')).toBe(devnet.wallets[driverIndex].address)
    // the genesis gives each wallet 100 NEURO; uptime (heartbeats, each epoch) and training proofs earn more
    await expect.poll(async () => page.textContent('#balance'), { timeout: 30_000 }).toMatch(/^\d[\d,]*\.\d{4}$/)
    const rewardRows = async (): Promise<string[][]> => await page.locator('#ledger-history tbody tr').evaluateAll((trs: any[]) =>
      trs.map(tr => [...tr.querySelectorAll('td')].map((td: any) => td.textContent as string))
        .filter(cells => ['uptime', 'training', 'inference', 'data'].includes(cells[0]) && cells[3] !== '' && cells[4] === 'applied'))
    // a reward row: the first uptime epoch ends a minute after genesis, and validators then vote on it
    await expect.poll(async () => (await rewardRows()).length, { timeout: 240_000, interval: 2_000 }).toBeGreaterThanOrEqual(1)
    const [kind, , change, minted] = (await rewardRows())[0]
    expect(Number(minted.replace(/,/g, ''))).toBeGreaterThan(0)
    expect(change).toBe(minted)
    void kind
    // the ledger agrees: the balance is the account's, and above the allocation
    await expect.poll(async () => Number((await page.textContent('#balance'))?.replace(/,/g, '')), { timeout: 30_000 }).toBeGreaterThan(100)
    expect(Number((await page.textContent('#rewards'))?.replace(/,/g, ''))).toBeGreaterThan(0)
    const account = driver.ponw!.service.ledger.account(devnet.wallets[driverIndex].address)
    expect(Number(account.balance) / 1e18).toBeGreaterThan(100)
    await expect.poll(async () => page.locator('#peers tbody tr').count(), { timeout: 30_000 }).toBe(3)
    expect(await page.locator('#peers tbody tr td:nth-child(2)').allTextContents()).toSatisfy((t: string[]) => t.every(x => x.startsWith('tcp')))
    expect(foreign).toEqual([])
    expect(errors).toEqual([])
    await page.screenshot({ path: join(SHOTS, 'devnet-dashboard.png'), fullPage: true })
  }, 300_000)
})

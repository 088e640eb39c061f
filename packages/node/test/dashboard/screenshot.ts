/**
 * Makes the README's dashboard screenshot (docs/dashboard.png) with the browser test's setup: four
 * layer-pool hosts on loopback, a ledger, and the local fallback generator serving a checkpoint of a
 * real `neuroshard train` run, whose training log (JSON lines) is replayed into the training recorder
 * in rounds of 25 steps.
 *
 * Run (after `tsc -b packages/node`, with /usr/bin/chromium):
 *   node packages/node/dist/test/dashboard/screenshot.js <data-dir> <train.jsonl> <out.png>
 */
import { readFile } from 'node:fs/promises'
import { chromium } from 'playwright-core'
import { LocalGenerator } from '../../src/index.js'
import { TOKEN, startNodeFixture } from '../fixture.js'

const [dataDir, log, out] = process.argv.slice(2)
const generator = await LocalGenerator.fromDataDir(dataDir)
const node = await startNodeFixture({ generator, slotsOfMemory: Number(process.env.SLOTS_OF_MEMORY ?? 2.9) })
try {
  const lines = (await readFile(log, 'utf8')).split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l))
  node.recorder.setInnerSteps(25)
  for (const l of lines) {
    if (l.event === 'step') {
      node.recorder.recordStep(l.loss)
      if (l.step % 25 === 0) node.recorder.recordRound({ accepted: 4, rejected: 0 })
    } else if (l.event === 'eval' && l.step > 0) {
      node.recorder.recordValidation(l.loss, { step: l.step })
    }
  }
  await fetch(node.server.url + '/api/wallet/stake', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ amount: (25n * 10n ** 18n).toString() }) })
  await fetch(node.server.url + '/api/wallet/transfer', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ to: 'ab'.repeat(20), amount: (15n * 10n ** 17n).toString() }) })
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } })
  await page.goto(node.server.url + '/')
  await page.click('#chat-card summary')
  await page.fill('#api-token', TOKEN)
  await page.dispatchEvent('#api-token', 'change')
  await page.waitForSelector('#chat-model option[value="neurollm-local"]', { state: 'attached' })
  await page.fill('#chat-input', 'The weather in the city')
  await page.click('#chat-send')
  await page.waitForSelector('#chat-log .msg.assistant.done', { timeout: 60_000 })
  await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#ledger-history tbody tr').length >= 2, undefined, { timeout: 20_000 })
  await page.waitForFunction(() => !((globalThis as any).document.querySelector('#sessions tbody')?.textContent ?? '').includes('generating'), undefined, { timeout: 10_000 })
  await page.click('#chat-card summary')
  await page.screenshot({ path: out, fullPage: true })
  await browser.close()
} finally {
  await node.stop()
}

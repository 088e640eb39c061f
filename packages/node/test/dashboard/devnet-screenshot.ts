/**
 * Makes the README's screenshot of a real devnet's dashboard (docs/devnet-dashboard.png): four NetworkNodes
 * training `tiny` on the genesis data of `<data-dir>` (built by `neuroshard devnet --data-dir <data-dir>`),
 * the API of a Driver, a streamed chat answer through the pipeline after `<rounds>` DiLoCo rounds.
 *
 * Run (after `tsc -b packages/node`, with /usr/bin/chromium):
 *   node packages/node/dist/test/dashboard/devnet-screenshot.js <data-dir> <rounds> <out.png>
 */
import { chromium } from 'playwright-core'
import { startApiServer } from '../../src/api/server.js'
import { startNetworkDevnet } from '../../src/network/devnet.js'
import { prepareData } from '../../src/workspace.js'

const [dataDir, rounds, out] = process.argv.slice(2)
const data = await prepareData({ dataDir, source: 'nlp-corpus', vocabSize: 4096 })
const devnet = await startNetworkDevnet({ tokenizer: data.tokenizer, data: { manifest: data.manifest, train: data.train, validation: data.validation } })
try {
  while (!devnet.nodes.every(n => n.heldStages().length > 0)) await new Promise(resolve => setTimeout(resolve, 200))
  const driver = devnet.nodes.find(n => n.heldStages().some(h => h.start === 0))!
  const server = await startApiServer({ backend: driver.backend(), port: 0, defaultMetrics: false })
  await new Promise<void>(resolve => {
    driver.addEventListener('node:validation', (e) => { if (e.detail.round >= Number(rounds)) resolve() })
  })
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } })
  await page.goto(server.url + '/')
  await page.click('#chat-card summary')
  await page.waitForSelector('#chat-model option[value="devnet"]', { state: 'attached' })
  await page.fill('#chat-input', 'The history of the city')
  await page.click('#chat-send')
  await page.waitForSelector('#chat-log .msg.assistant.done', { timeout: 120_000 })
  await page.click('#chat-card summary')
  await page.screenshot({ path: out, fullPage: true })
  await browser.close()
  await server.close()
} finally {
  await devnet.stop()
}
process.exit(0)

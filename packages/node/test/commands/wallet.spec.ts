import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { createNeuroShardHost } from '@neuroshard/host'
import { NEURO, createGenesis, loadKeystore, ponwLedger, toHex } from '@neuroshard/ponw-ledger'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLocalBackend, startApiServer, walletCommand } from '../../src/index.js'
import { until } from '../fixture.js'
import type { ApiServer } from '../../src/index.js'
import type { PonwLedger } from '@neuroshard/ponw-ledger'

const TOKEN = 'wallet-test-token-42'
const PASSPHRASE = 'correct horse battery staple'

async function run (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (d: Buffer) => { out += d.toString() })
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await walletCommand(argv, { stdout, stderr, env: {} })
  return { code, stdout: out, stderr: err }
}

describe('neuroshard wallet', () => {
  let dir: string
  let host: Awaited<ReturnType<typeof createNeuroShardHost<{ ledger: PonwLedger }>>> | undefined
  let server: ApiServer | undefined
  let address: string
  let api: string[]
  let passFile: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'neuroshard-wallet-'))
    passFile = join(dir, 'pass.txt')
    await writeFile(passFile, PASSPHRASE + '\n', { mode: 0o600 })
  })

  afterAll(async () => {
    await server?.close()
    await host?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('create writes an encrypted keystore (mode 0600) and never overwrites it', async () => {
    const created = await run(['create', '-d', dir, '--passphrase-file', passFile, '--json'])
    expect(created.code, created.stderr).toBe(0)
    const line = JSON.parse(created.stdout)
    expect(line).toMatchObject({ event: 'created', keystore: join(dir, 'wallet.json') })
    expect(line.address).toMatch(/^[0-9a-f]{40}$/)
    address = line.address
    expect((await stat(join(dir, 'wallet.json'))).mode & 0o777).toBe(0o600)
    // the passphrase opens it, and it holds the printed address; the secret is not printed
    expect((await loadKeystore(join(dir, 'wallet.json'), PASSPHRASE)).address).toBe(address)

    const again = await run(['create', '-d', dir, '--passphrase-file', passFile])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/exists already/)
    const short = await run(['create', '--keystore', join(dir, 'other.json'), '--passphrase-file', join(dir, 'missing.txt')])
    expect(short.code).toBe(1)
  })

  it('show prints the address without a node, and balance and stake from a running node', async () => {
    const offline = await run(['show', '-d', dir, '--api', 'http://127.0.0.1:9', '--json'])
    expect(offline.code).toBe(0)
    expect(JSON.parse(offline.stdout)).toMatchObject({ address, node: null })

    // a node whose ledger wallet is this keystore's: a single-validator genesis giving it 100 NEURO
    const wallet = await loadKeystore(join(dir, 'wallet.json'), PASSPHRASE)
    const genesis = createGenesis({ network: 'wallet-test', validators: [{ publicKey: toHex(wallet.publicKey), stake: 1000n * NEURO }], allocations: [{ address, balance: 100n * NEURO }] })
    host = await createNeuroShardHost<{ ledger: PonwLedger }>({
      transports: { quic: false, webrtcDirect: false, circuitRelay: false },
      services: { ledger: ponwLedger({ genesis, path: join(dir, 'ledger'), wallet }) }
    })
    server = await startApiServer({ backend: createLocalBackend({ host, ledger: host.services.ledger }), port: 0, token: TOKEN, dashboard: false, defaultMetrics: false })
    api = ['--api', server.url]

    const shown = await run(['show', '-d', dir, ...api])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain(`address   ${address}`)
    expect(shown.stdout).toMatch(/balance\s+100(\.0+)? NEURO/)
    const j = JSON.parse((await run(['show', '-d', dir, ...api, '--json'])).stdout)
    expect(j).toMatchObject({ address, balance: (100n * NEURO).toString(), bonded: (1000n * NEURO).toString() })
  })

  it('transfer, stake and unstake need the token; with it they go through the node and the ledger applies them exactly', async () => {
    const to = 'cd'.repeat(20)
    const noToken = await run(['transfer', '--to', to, '--amount', '2.5', ...api])
    expect(noToken.code).toBe(1)
    expect(noToken.stderr).toMatch(/Missing API token.*--api-token/)
    const wrong = await run(['transfer', '--to', to, '--amount', '2.5', ...api, '--api-token', 'nope-nope-nope'])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/Incorrect API token/)
    expect(host!.services.ledger.ledger.balance(address)).toBe(100n * NEURO)

    const bad = await run(['transfer', '--to', to, '--amount', '1.0000000000000000001', ...api, '--api-token', TOKEN])
    expect(bad.code).toBe(2)
    expect((await run(['stake', ...api, '--api-token', TOKEN])).code).toBe(2)
    expect((await run(['transfer', '--to', 'xyz', '--amount', '1', ...api])).code).toBe(2)

    const sent = await run(['transfer', '--to', to, '--amount', '2.5', ...api, '--api-token', TOKEN, '--json'])
    expect(sent.code, sent.stderr).toBe(0)
    expect(JSON.parse(sent.stdout)).toMatchObject({ event: 'submitted', command: 'transfer', amount: (25n * NEURO / 10n).toString() })
    const ledger = host!.services.ledger.ledger
    await until(() => ledger.balance(to) === 25n * NEURO / 10n, 20_000, 'the transfer to be final')
    expect(ledger.balance(address)).toBe(100n * NEURO - 25n * NEURO / 10n)

    const staked = await run(['stake', '--amount', '10', ...api, '--api-token', TOKEN])
    expect(staked.code, staked.stderr).toBe(0)
    expect(staked.stdout).toMatch(/^submitted: stake of 10(\.0+)? NEURO/)
    await until(() => ledger.account(address).bonded === 1010n * NEURO, 20_000, 'the stake to be final')
    const unstaked = await run(['unstake', '--amount', '4', ...api, '--api-token', TOKEN])
    expect(unstaked.code, unstaked.stderr).toBe(0)
    await until(() => ledger.account(address).bonded === 1006n * NEURO, 20_000, 'the unbond to be final')
    expect(ledger.account(address).unbonding.map(u => u.amount)).toEqual([4n * NEURO])
    const j = JSON.parse((await run(['show', '-d', dir, ...api, '--json'])).stdout)
    expect(j).toMatchObject({ balance: (100n * NEURO - 25n * NEURO / 10n - 10n * NEURO).toString(), bonded: (1006n * NEURO).toString(), unbonding: (4n * NEURO).toString() })
  })
})

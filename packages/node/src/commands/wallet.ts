import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { Wallet, formatNeuro, parseNeuro, saveKeystore } from '@neuroshard/ponw-ledger'
import { DEFAULT_API_HOST, DEFAULT_API_PORT } from '../api/server.js'
import { DEFAULT_DATA_DIR } from '../workspace.js'
import type { CliIO } from '../progress.js'

export const WALLET_USAGE = `Usage: neuroshard wallet <command> [options]

Commands:
  create                           make a new wallet in an encrypted keystore (scrypt + XChaCha20-Poly1305)
  show                             the wallet's address, and its balance and stake from a running node
  transfer --to <addr> --amount <NEURO>   send NEURO from the node's wallet
  stake --amount <NEURO>           bond NEURO (raises the reward multiplier)
  unstake --amount <NEURO>         unbond NEURO (withdrawable after the unbonding period)

transfer, stake and unstake are signed by the running node with the wallet it was started with, through
its API (POST /api/wallet/*, which needs the node's API token when it has one).

Options:
  -d, --data-dir <dir>         keystore at <dir>/wallet.json (default ${DEFAULT_DATA_DIR})
      --keystore <file>        keystore path (overrides --data-dir)
      --passphrase-file <file> read the keystore passphrase from a file (else $NEUROSHARD_WALLET_PASSPHRASE,
                               else it is asked for)
      --api <url>              the node's API (default http://${DEFAULT_API_HOST}:${DEFAULT_API_PORT})
      --api-token <token>      the node's API token (else $NEUROSHARD_API_TOKEN)
      --to <address>           recipient (40 hex characters)
      --amount <NEURO>         amount in NEURO, e.g. 1.5 (exact: 18 decimals at most)
      --json                   one JSON object instead of text
  -h, --help                   show this help
`

const ARGS = {
  'data-dir': { type: 'string', short: 'd' },
  keystore: { type: 'string' },
  'passphrase-file': { type: 'string' },
  api: { type: 'string' },
  'api-token': { type: 'string' },
  to: { type: 'string' },
  amount: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} as const

/** Where the wallet command reads its secrets from; injectable for tests */
export interface WalletIO extends CliIO {
  env?: Record<string, string | undefined>
}

/** An error to print as it is (exit 1) */
class WalletCommandError extends Error {
  static override name = 'WalletCommandError'
  constructor (message: string) {
    super(message)
    this.name = 'WalletCommandError'
  }
}

/** Runs `neuroshard wallet …`; returns the exit code */
export async function walletCommand (argv: string[], io: WalletIO): Promise<number> {
  const env = io.env ?? process.env
  let values
  let positionals
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: ARGS, strict: true, allowPositionals: true }))
    if (values.help === true) {
      io.stdout.write(WALLET_USAGE)
      return 0
    }
    if (positionals.length !== 1 || !['create', 'show', 'transfer', 'stake', 'unstake'].includes(positionals[0])) {
      throw new Error(positionals.length === 0 ? 'a wallet command is required' : `unknown wallet command: ${positionals.join(' ')}`)
    }
    if (values.to !== undefined && !/^[0-9a-f]{40}$/.test(values.to)) throw new Error('--to must be an address: 40 lowercase hex characters')
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${WALLET_USAGE}`)
    return 2
  }
  const command = positionals[0]
  const json = values.json === true
  const keystore = resolve(values.keystore ?? join(values['data-dir'] ?? DEFAULT_DATA_DIR, 'wallet.json'))
  const api = (values.api ?? `http://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`).replace(/\/+$/, '')
  const token = values['api-token'] ?? env.NEUROSHARD_API_TOKEN
  const out = (obj: Record<string, unknown>, text: string): void => { io.stdout.write(json ? JSON.stringify(obj) + '\n' : text + '\n') }

  try {
    switch (command) {
      case 'create': {
        if (existsSync(keystore)) throw new WalletCommandError(`${keystore} exists already: a wallet is never overwritten (use --keystore for another file)`)
        const passphrase = await readPassphrase(values['passphrase-file'], env, io, true)
        const wallet = Wallet.generate()
        await mkdir(dirname(keystore), { recursive: true })
        await saveKeystore(keystore, wallet, passphrase)
        out({ event: 'created', address: wallet.address, keystore }, `created wallet ${wallet.address}\nkeystore ${keystore} (encrypted; keep the passphrase: it cannot be recovered)`)
        return 0
      }
      case 'show': {
        let address: string | undefined
        if (existsSync(keystore)) {
          // the keystore names its address in clear: no passphrase needed to show it
          const file = JSON.parse(await readFile(keystore, 'utf8'))
          if (typeof file?.address !== 'string' || !/^[0-9a-f]{40}$/.test(file.address)) throw new WalletCommandError(`${keystore} is not a keystore`)
          address = file.address
        }
        let ledger: any
        try {
          ledger = await callApi(api, 'GET', `/api/ledger${address !== undefined ? `?address=${address}` : ''}`)
        } catch (err: any) {
          if (address === undefined) throw err
          out({ address, keystore, node: null, error: err.message }, `address  ${address}\n(balance unknown: ${err.message})`)
          return 0
        }
        if (ledger.enabled !== true) throw new WalletCommandError(`the node at ${api} runs no ledger`)
        const bonded = BigInt(ledger.stake.bonded)
        const unbonding = ledger.stake.unbonding.reduce((s: bigint, u: { amount: string }) => s + BigInt(u.amount), 0n)
        out({ address: ledger.address, balance: ledger.balance, bonded: ledger.stake.bonded, unbonding: unbonding.toString(), slashed: ledger.stake.slashed, rewards: ledger.rewards, ...(address !== undefined ? { keystore } : {}) },
          [`address   ${ledger.address}${address === undefined ? ' (the node\'s wallet)' : ''}`,
            `balance   ${formatNeuro(BigInt(ledger.balance))} NEURO`,
            `staked    ${formatNeuro(bonded)} NEURO${unbonding > 0n ? ` (+ ${formatNeuro(unbonding)} unbonding)` : ''}`,
            `rewards   ${formatNeuro(BigInt(ledger.rewards))} NEURO (in the last ${ledger.history.length} entries)`].join('\n'))
        return 0
      }
      default: {
        if (values.amount === undefined) throw new UsageError('--amount is required')
        if (command === 'transfer' && values.to === undefined) throw new UsageError('--to is required')
        let amount: bigint
        try {
          amount = parseNeuro(values.amount)
        } catch (err: any) {
          throw new UsageError(`--amount: ${err.message}`)
        }
        if (amount <= 0n) throw new UsageError('--amount must be more than 0')
        const body = { amount: amount.toString(), ...(command === 'transfer' ? { to: values.to } : {}) }
        const result = await callApi(api, 'POST', `/api/wallet/${command}`, body, token)
        const what = command === 'transfer' ? `transfer of ${formatNeuro(amount)} NEURO to ${values.to}` : `${command} of ${formatNeuro(amount)} NEURO`
        out({ event: 'submitted', command, amount: amount.toString(), ...result }, `submitted: ${what} (message ${result.id}, sequence ${result.sequence}); final once the validators sign it`)
        return 0
      }
    }
  } catch (err: any) {
    if (err instanceof UsageError) {
      io.stderr.write(`${err.message}\n\n${WALLET_USAGE}`)
      return 2
    }
    io.stderr.write(`wallet ${command}: ${err?.message ?? err}\n`)
    return 1
  }
}

class UsageError extends Error {
  static override name = 'UsageError'
}

/** Calls the node's API; throws a readable error (the API's own message for OpenAI-style errors) */
async function callApi (api: string, method: 'GET' | 'POST', path: string, body?: unknown, token?: string): Promise<any> {
  let res: Response
  try {
    res = await fetch(api + path, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token !== undefined && token !== '' ? { authorization: `Bearer ${token}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000)
    })
  } catch (err: any) {
    throw new WalletCommandError(`no node API at ${api} (${err?.cause?.code ?? err.message}): start a node or pass --api`)
  }
  const text = await res.text()
  let parsed: any
  try { parsed = JSON.parse(text) } catch { parsed = undefined }
  if (!res.ok) {
    const message = parsed?.error?.message ?? `HTTP ${res.status}`
    throw new WalletCommandError(res.status === 401 ? `${message} (pass --api-token or set NEUROSHARD_API_TOKEN)` : message)
  }
  return parsed
}

/** The keystore passphrase: --passphrase-file, $NEUROSHARD_WALLET_PASSPHRASE, or asked for (twice when creating, not echoed on a terminal) */
export async function readPassphrase (file: string | undefined, env: Record<string, string | undefined>, io: WalletIO, confirm: boolean): Promise<string> {
  let passphrase: string | undefined
  if (file !== undefined) passphrase = (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
  else if (env.NEUROSHARD_WALLET_PASSPHRASE !== undefined) passphrase = env.NEUROSHARD_WALLET_PASSPHRASE
  else {
    const input = io.stdin ?? process.stdin
    const tty = input.isTTY === true
    const muted = new Writable({ write (_c, _e, cb) { cb() } })
    const rl = createInterface({ input, output: tty ? muted : undefined, terminal: tty })
    const lines = rl[Symbol.asyncIterator]()
    const ask = async (prompt: string): Promise<string> => {
      if (tty) io.stderr.write(prompt)
      const { value, done } = await lines.next()
      if (tty) io.stderr.write('\n')
      if (done === true) throw new WalletCommandError('no passphrase given (stdin ended)')
      return value
    }
    try {
      passphrase = await ask('passphrase: ')
      if (confirm && tty && await ask('again: ') !== passphrase) throw new WalletCommandError('the passphrases differ')
    } finally {
      rl.close()
    }
  }
  if (passphrase.length < 8) throw new WalletCommandError('the passphrase must have at least 8 characters')
  return passphrase
}

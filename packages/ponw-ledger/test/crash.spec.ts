import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NEURO } from '../src/amount.js'
import { genesisToJSON } from '../src/genesis.js'
import { Ledger } from '../src/ledger.js'
import { ensureBuilt } from './build.js'
import { alice, bob, carol, certify, dave, prng, sign, testChain, testGenesis } from './fixtures.js'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const genesis = testGenesis()
const chain = testChain()
const KILLS = 25

describe('crash safety (SIGKILL during writes)', () => {
  let dir: string

  beforeAll(async () => {
    // the child runs the compiled code: make sure it is current
    ensureBuilt()
    dir = await mkdtemp(join(tmpdir(), 'ponw-crash-'))
    const rnd = prng(3)
    const wallets = [alice, bob, carol]
    const seqs = new Map<string, bigint>()
    const lines: string[] = []
    for (let i = 0; i < 400; i++) {
      const w = wallets[i % 3]
      const seq = seqs.get(w.address) ?? 0n
      seqs.set(w.address, seq + 1n)
      const body = i % 7 === 0
        ? { kind: 'uptime' as const, epoch: BigInt(i), heartbeats: 10 }
        : { kind: 'transfer' as const, to: [alice, bob, carol, dave][Math.floor(rnd() * 4)].address, amount: BigInt(1 + Math.floor(rnd() * 50)) * NEURO / 100n }
      lines.push(Buffer.from(certify(chain, sign(chain, w, seq, body))).toString('base64'))
    }
    await writeFile(join(dir, 'certs.txt'), lines.join('\n') + '\n')
    await writeFile(join(dir, 'genesis.json'), genesisToJSON(genesis))
  })

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function crashes (kills: number, prune: boolean): Promise<void> {
    const rnd = prng(11)
    const prefix = prune ? 'pruned-db' : 'db'
    let db = join(dir, `${prefix}-0`)
    let nKilled = 0
    let completions = 0
    let maxStored = 0
    let prunedSeen = 0
    for (let run = 0; nKilled < kills; run++) {
      const killAfter = Math.floor(rnd() * 25)
      const outcome = await new Promise<'killed' | 'done'>((resolve, reject) => {
        const child = spawn(process.execPath, [join(pkg, 'dist', 'test', 'crash-child.js'), db, join(dir, 'certs.txt'), join(dir, 'genesis.json'), String(run + 1), prune ? 'prune' : ''], { stdio: ['ignore', 'pipe', 'pipe'] })
        let seen = 0
        let err = ''
        let killed = false
        child.stderr.on('data', d => { err += String(d) })
        child.stdout.on('data', (d: Buffer) => {
          seen += String(d).split('\n').filter(l => l.startsWith('batch')).length
          if (!killed && seen >= killAfter) {
            killed = true
            // land the kill somewhere inside the following writes
            setImmediate(() => child.kill('SIGKILL'))
          }
        })
        child.on('exit', (code, signal) => {
          if (signal === 'SIGKILL') {
            resolve('killed')
          } else if (code === 0) {
            resolve('done')
          } else {
            reject(new Error(`child failed (${code}): ${err}`))
          }
        })
      })
      const ledger = await Ledger.open({ genesis, path: db })
      try {
        await ledger.verifyStored()
        const s = ledger.state
        expect(s.holdings()).toBe(s.totals.genesisSupply + s.totals.minted - s.totals.burned)
        if (ledger.checkpoint?.pruned === true) {
          // pruned: the state is the certified snapshot plus the messages kept after it
          prunedSeen++
          expect(ledger.finalCount).toBe(s.known.size + Number(ledger.checkpoint.height))
        } else {
          expect(ledger.logLength).toBe(s.known.size)
        }
        maxStored = Math.max(maxStored, ledger.finalCount)
      } finally {
        await ledger.close()
      }
      if (outcome === 'killed') {
        nKilled++
      } else {
        completions++
        db = join(dir, `${prefix}-${run + 1}`)
      }
    }
    expect(nKilled).toBe(kills)
    // the kills landed while the database was being filled, not only before the first write
    expect(maxStored).toBeGreaterThan(100)
    void completions
    if (prune) {
      expect(prunedSeen).toBeGreaterThan(0)
    }
  }

  it(`the stored state always equals a rebuild from the stored messages (${KILLS} kills at random points)`, async () => {
    await crashes(KILLS, false)
  })

  it('with pruning behind certified checkpoints too (6 kills): the store reopens at the snapshot + kept messages', async () => {
    await crashes(6, true)
  })
})

import { spawnSync } from 'node:child_process'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadOrCreateIdentity } from '../src/index.js'

// replays specs/host/vectors/identity-*.json (record and swarm-key vectors: records.spec.ts, swarm-key.spec.ts)
const VECTORS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'host', 'vectors')
const identity = readdirSync(VECTORS).filter(f => f.startsWith('identity-') && f.endsWith('.json')).sort()

describe('specs/host/vectors identity key files (R3)', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'ns-identity-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it.skipIf(process.platform === 'win32').each(identity)('%s', async (f) => {
    const v = JSON.parse(readFileSync(join(VECTORS, f), 'utf8'))
    const path = join(dir, 'identity.key')
    await writeFile(path, Buffer.from(v.fileHex, 'hex'))
    await chmod(path, parseInt(v.mode, 8))
    if (v.error !== undefined) {
      await expect(loadOrCreateIdentity(dir)).rejects.toThrow(expect.objectContaining({ name: v.error }))
      // the refused file is left as it was (never replaced by a fresh key)
      expect(readFileSync(path).toString('hex')).toBe(v.fileHex)
      return
    }
    const id = await loadOrCreateIdentity(dir)
    expect(id.created).toBe(false)
    // an Ed25519 public key's string form is its peer id (base58btc of the identity multihash)
    expect(id.privateKey.type).toBe('Ed25519')
    expect(id.privateKey.publicKey.toString()).toBe(v.peerId)
  })
})

// The independent Python checkers next to the vectors (written from the spec text) must agree with the files too.
const hasPython = spawnSync('python3', ['--version']).status === 0
describe('independent Python checkers', () => {
  it.skipIf(!hasPython)('specs/host/vectors/check.py', () => {
    const r = spawnSync('python3', [new URL('../../../specs/', import.meta.url).pathname + 'host/vectors/check.py'], { encoding: 'utf8', timeout: 120_000 })
    expect(r.status, r.stderr + r.stdout).toBe(0)
  })
})

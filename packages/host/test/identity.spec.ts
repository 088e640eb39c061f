import { chmod, mkdtemp, rm, stat, writeFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, loadOrCreateIdentity, IDENTITY_KEY_FILE } from '../src/index.js'
import type { NeuroShardHost } from '../src/index.js'

describe('persistent identity', () => {
  let dir: string
  let hosts: NeuroShardHost[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'neuroshard-host-identity-'))
  })

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
    await rm(dir, { recursive: true, force: true })
  })

  it('creates an Ed25519 key file with mode 0600 and reuses it', async () => {
    const dataDir = join(dir, 'node')
    const first = await loadOrCreateIdentity(dataDir)
    expect(first.created).toBe(true)
    expect(first.privateKey.type).toBe('Ed25519')
    expect(first.path).toBe(join(dataDir, IDENTITY_KEY_FILE))
    expect((await stat(first.path)).mode & 0o777).toBe(0o600)
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700)
    // no temporary files left behind
    expect(await readdir(dataDir)).toEqual([IDENTITY_KEY_FILE])

    const second = await loadOrCreateIdentity(dataDir)
    expect(second.created).toBe(false)
    expect(second.privateKey.equals(first.privateKey)).toBe(true)
  })

  it('keeps the peer id of a host across a restart', async () => {
    const a = await createNeuroShardHost({ dataDir: dir })
    hosts.push(a)
    const peerId = a.peerId.toString()
    await a.stop()
    expect((await stat(join(dir, IDENTITY_KEY_FILE))).mode & 0o777).toBe(0o600)

    const b = await createNeuroShardHost({ dataDir: dir })
    hosts.push(b)
    expect(b.peerId.toString()).toBe(peerId)

    // without a data dir every host is a new, ephemeral identity
    const c = await createNeuroShardHost()
    hosts.push(c)
    expect(c.peerId.toString()).not.toBe(peerId)
  })

  it('refuses a key file readable by group or others', async () => {
    const { path } = await loadOrCreateIdentity(dir)
    await chmod(path, 0o644)
    await expect(loadOrCreateIdentity(dir)).rejects.toHaveProperty('name', 'InsecureIdentityKeyError')
    await expect(createNeuroShardHost({ dataDir: dir })).rejects.toHaveProperty('name', 'InsecureIdentityKeyError')
    await chmod(path, 0o600)
    expect((await loadOrCreateIdentity(dir)).created).toBe(false)
  })

  it('refuses a corrupt or empty key file', async () => {
    const path = join(dir, IDENTITY_KEY_FILE)
    await writeFile(path, new Uint8Array([1, 2, 3, 4]), { mode: 0o600 })
    await expect(loadOrCreateIdentity(dir)).rejects.toHaveProperty('name', 'MalformedIdentityKeyError')
    await writeFile(path, new Uint8Array(0), { mode: 0o600 })
    await expect(loadOrCreateIdentity(dir)).rejects.toHaveProperty('name', 'MalformedIdentityKeyError')
  })
})

import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { createNeuroShardHost, generateSwarmKey, parseSwarmKey } from '../src/index.js'
import { waitFor } from './fixtures.js'
import type { NeuroShardHost } from '../src/index.js'

const VECTORS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'host', 'vectors')
const vectors = readdirSync(VECTORS)
  .filter(f => f.startsWith('swarm-key-') && f.endsWith('.json'))
  .map(file => ({ file, ...JSON.parse(readFileSync(join(VECTORS, file), 'utf8')) }))

describe('swarm keys', () => {
  it('replays specs/host/vectors/swarm-keys.json', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(10)
    for (const v of vectors) {
      if (v.error == null) {
        expect(new TextDecoder().decode(parseSwarmKey(v.input)), v.file).toBe(v.canonical)
        expect(new TextDecoder().decode(parseSwarmKey(new TextEncoder().encode(v.input))), v.file).toBe(v.canonical)
      } else {
        expect(() => parseSwarmKey(v.input), v.file).toThrow(expect.objectContaining({ name: v.error }))
      }
    }
  })

  it('generates keys in the /key/swarm/psk/1.0.0/ format that parse back unchanged', () => {
    const key = generateSwarmKey()
    const text = new TextDecoder().decode(key)
    expect(text).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    expect(parseSwarmKey(key)).toEqual(key)
    expect(parseSwarmKey(text + '\r\n')).toEqual(key)
    expect(generateSwarmKey()).not.toEqual(key)
  })

  it('rejects malformed keys with InvalidSwarmKeyError', () => {
    const good = new TextDecoder().decode(generateSwarmKey())
    const bad = [
      '',
      'not a key',
      good.replace('/key/swarm/psk/1.0.0/', '/key/swarm/psk/2.0.0/'),
      good.replace('/base16/', '/base64/'),
      good.slice(0, -2),
      good.slice(0, -1) + 'z'
    ]
    for (const key of bad) {
      expect(() => parseSwarmKey(key)).toThrow(expect.objectContaining({ name: 'InvalidSwarmKeyError' }))
    }
  })
})

describe('private swarms', () => {
  let hosts: NeuroShardHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => h.stop()))
    hosts = []
  })

  it('runs TCP only when a swarm key is set', async () => {
    const host = await createNeuroShardHost({ swarmKey: generateSwarmKey() })
    hosts.push(host)
    const addrs = host.getMultiaddrs().map(String)
    expect(addrs).toHaveLength(1)
    expect(addrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    await expect(createNeuroShardHost({ swarmKey: generateSwarmKey(), transports: { quic: true } }))
      .rejects.toHaveProperty('name', 'InvalidParametersError')
    await expect(createNeuroShardHost({ swarmKey: generateSwarmKey(), listen: ['/ip4/127.0.0.1/udp/0/quic-v1'] }))
      .rejects.toHaveProperty('name', 'InvalidParametersError')
  })

  it('connects hosts with the same key and refuses hosts with a different key or none', async () => {
    const key = generateSwarmKey()
    const [a, b, outsider, open] = await Promise.all([
      createNeuroShardHost({ swarmKey: key }),
      createNeuroShardHost({ swarmKey: key }),
      createNeuroShardHost({ swarmKey: generateSwarmKey() }),
      createNeuroShardHost({ transports: { quic: false, webrtcDirect: false } })
    ])
    hosts.push(a, b, outsider, open)

    const identified = waitFor(b, 'peer:identify', evt => evt.detail.peerId.equals(a.peerId))
    const conn = await b.dial(a.getMultiaddrs()[0])
    expect(conn.remotePeer.equals(a.peerId)).toBe(true)
    await identified
    expect(await b.services.ping.ping(a.peerId)).toBeGreaterThanOrEqual(0)

    // a different key: both sides XOR with different XSalsa20 streams, the Noise handshake reads garbage
    // and fails; a host without a key never sends the pnet nonce. The three dials run concurrently since
    // each only fails when its handshake times out.
    const [wrongKey, noKeyDialer, noKeyListener] = await Promise.allSettled([
      outsider.dial(a.getMultiaddrs()[0], { signal: AbortSignal.timeout(15_000) }),
      open.dial(a.getMultiaddrs()[0], { signal: AbortSignal.timeout(15_000) }),
      a.dial(open.getMultiaddrs()[0], { signal: AbortSignal.timeout(15_000) })
    ])
    expect(wrongKey).toHaveProperty('status', 'rejected')
    expect(noKeyDialer).toHaveProperty('status', 'rejected')
    expect(noKeyListener).toHaveProperty('status', 'rejected')
    if (wrongKey.status === 'rejected') expect(wrongKey.reason.name).toBe('EncryptionFailedError')
    if (noKeyDialer.status === 'rejected') expect(noKeyDialer.reason.name).toBe('EncryptionFailedError')
    expect(outsider.getConnections(a.peerId)).toHaveLength(0)
    expect(a.getConnections(outsider.peerId)).toHaveLength(0)
    expect(a.getConnections(open.peerId)).toHaveLength(0)
    expect(open.getConnections(a.peerId)).toHaveLength(0)
  })
})

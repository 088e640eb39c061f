/**
 * A node in several replica groups (one per slot it holds): the groups share the fetch protocol's one
 * handler, each request reaching the group it names.
 */
import { createNeuroShardHost } from '@neuroshard/host'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { diloco } from '../src/index.js'
import { TOY_SPAN, stopAll, toyParams, until } from './helpers.js'
import type { DiLoCo } from '../src/index.js'
import type { NeuroShardHost } from '@neuroshard/host'
import type { Libp2p } from '@libp2p/interface'

type TwoGroupHost = NeuroShardHost & Libp2p<{ a: DiLoCo, b: DiLoCo }>

/** 2003 elements: its state (16 KB) is far more than one small fetch message */
const OTHER_SPAN = { id: 'other', parameters: [{ name: 'a', shape: [3] }, { name: 'b', shape: [40, 50] }] }
const otherParams = (sign: number): Map<string, Float32Array> => new Map([
  ['a', Float32Array.from([1, 2, 3], v => sign * v)],
  ['b', Float32Array.from({ length: 2000 }, (_, i) => sign * i / 7)]
])

async function startTwoGroupHost (): Promise<TwoGroupHost> {
  return await createNeuroShardHost<{ a: DiLoCo, b: DiLoCo }>({
    transports: { quic: false, webrtcDirect: false, circuitRelay: false },
    services: {
      a: diloco({ span: TOY_SPAN, group: 'net/slot-a', minDeadlineMs: 200 }),
      b: diloco({ span: OTHER_SPAN, group: 'net/slot-b', minDeadlineMs: 200 })
    }
  }) as TwoGroupHost
}

describe('several groups on one node', () => {
  let hosts: TwoGroupHost[] = []
  afterEach(async () => { await stopAll(hosts as any[]); hosts = [] })

  it('both groups start on one node and a newcomer downloads each group\'s own state (one larger than a small message)', async () => {
    hosts = [await startTwoGroupHost(), await startTwoGroupHost()]
    const [x, y] = hosts
    x.services.a.initialize(toyParams([1, 2, 3], [4, 5, 6, 7]), { round: 3 })
    x.services.b.initialize(otherParams(-1), { round: 9 })
    await y.dial(multiaddr(x.getMultiaddrs()[0]))
    await until(() => y.services.pubsub.getSubscribers(y.services.a.topic).length > 0 && y.services.pubsub.getSubscribers(y.services.b.topic).length > 0, 20_000, () => 'subscriptions')

    await y.services.a.sync()
    await y.services.b.sync()
    expect(y.services.a.round).toBe(3)
    expect(y.services.b.round).toBe(9)
    expect([...y.services.a.parameters().get('a')!]).toEqual([1, 2, 3])
    expect([...y.services.b.parameters().get('a')!]).toEqual([-1, -2, -3])
    expect(y.services.b.parameters().get('b')).toEqual(otherParams(-1).get('b'))
  })

  it('a group that is not served here answers NOT_FOUND (the sync fails with a typed error)', async () => {
    hosts = [await startTwoGroupHost()]
    const lone = await createNeuroShardHost<{ c: DiLoCo }>({
      transports: { quic: false, webrtcDirect: false, circuitRelay: false },
      services: { c: diloco({ span: TOY_SPAN, group: 'net/slot-c' }) }
    })
    try {
      await lone.dial(multiaddr(hosts[0].getMultiaddrs()[0]))
      hosts[0].services.a.initialize(toyParams([1, 2, 3], [4, 5, 6, 7]))
      await expect(lone.services.c.sync({ peer: hosts[0].peerId })).rejects.toMatchObject({ name: 'StateSyncError' })
    } finally {
      await lone.stop()
    }
  })
})

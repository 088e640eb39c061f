/**
 * `holePunching` (default on, host spec R19 SHOULD): the testbed's DCUtR scenario needs hosts without DCUtR as its
 * control. The hole punch itself is shown by testbed/src/netns/dcutr.ts (two NATs, a relay: a direct connection
 * follows the relayed one with DCUtR and never without it).
 */
import { describe, expect, it } from 'vitest'
import { createNeuroShardHost } from '../src/index.js'

describe('holePunching', () => {
  it('runs DCUtR by default and not with holePunching: false', async () => {
    const on = await createNeuroShardHost({ transports: { quic: false, webrtcDirect: false } })
    const off = await createNeuroShardHost({ transports: { quic: false, webrtcDirect: false }, holePunching: false })
    try {
      expect(on.services.dcutr).toBeDefined()
      expect(off.services.dcutr).toBeUndefined()
      // the protocol is registered only where the service runs
      expect(on.getProtocols()).toContain('/libp2p/dcutr')
      expect(off.getProtocols()).not.toContain('/libp2p/dcutr')
    } finally {
      await Promise.all([on.stop(), off.stop()])
    }
  })
})

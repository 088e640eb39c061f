import { describe, expect, it } from 'vitest'
import { NEURO, Wallet, concurrent, createGenesis, defaultParams, loadChain, toHex } from '@neuroshard/ponw-ledger'
import { expiredOwnAction } from '../../src/ponw/node-ponw.js'

describe('the outbox and an own message that expired without a quorum', () => {
  const epochMs = 60_000
  const old = { epoch: 10n, id: 'aa' }
  const at = (epoch: bigint, w: number, regossiped?: { id: string, at: number }, nowMs = Number(epoch) * epochMs): ReturnType<typeof expiredOwnAction> =>
    expiredOwnAction(old, { epoch, nowMs, epochWindow: w, epochMs }, regossiped)

  it('waits while it is votable, gossips it again once, then replaces it', () => {
    expect(at(10n, 1)).toBe('wait')
    expect(at(11n, 1)).toBe('wait')
    expect(at(12n, 1)).toBe('regossip')
    const regossiped = { id: 'aa', at: 12 * epochMs }
    expect(at(12n, 1, regossiped)).toBe('wait')
    expect(at(13n, 1, regossiped)).toBe('wait') // an epoch after the re-gossip, but still too close to the old one
    expect(at(14n, 1, regossiped)).toBe('replace')
    // another message re-gossiped earlier does not count for this one
    expect(at(14n, 1, { id: 'bb', at: 0 })).toBe('regossip')
  })

  it('never replaces it while the two could both be voted for (the ledger would take the pair as equivocation)', () => {
    const validator = Wallet.fromSeed('outbox')
    for (const w of [1, 2, 3]) {
      const chain = loadChain(createGenesis({ validators: [{ publicKey: toHex(validator.publicKey), stake: NEURO }], params: { ...defaultParams(), epochWindow: w } }))
      for (let e = 10n; e < 30n; e++) {
        // re-gossiped as early as possible, so only the epoch distance holds a replacement back
        const action = at(e, w, { id: 'aa', at: 0 }, Number(e) * epochMs)
        if (action === 'replace') expect(concurrent(chain, old.epoch, e)).toBe(false)
        if (!concurrent(chain, old.epoch, e)) expect(action).toBe('replace')
      }
    }
  })
})

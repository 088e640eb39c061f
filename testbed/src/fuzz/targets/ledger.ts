/**
 * PoNW ledger: the gossip handler (`handleGossip`: signed messages, votes, certificates, heartbeats) on a
 * real service with a real level database, and the sync protocol server (`/neuroshard/ledger/sync/1.0.0`)
 * on a real libp2p host over loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NEURO, SYNC_PROTOCOL, Wallet, createGenesis, encodeCertificate, loadChain, ponwLedger, signTx, signVote, toHex } from '@neuroshard/ponw-ledger'
import type { Chain, PonwLedger } from '@neuroshard/ponw-ledger'
import type { NeuroShardHost } from '@neuroshard/host'
import { handleAcceptAll } from '../accept-all.js'
import { frame, mutateAny, mutateProto, concat } from '../mutate.js'
import { encodeFields, eq, parseFields, wireMismatch } from '../proto.js'
import type { Field } from '../proto.js'
import { exchange, frames, loopbackHost, varintField } from '../net.js'
import type { FuzzInput, FuzzTarget, Outcome } from '../engine.js'
import type { Rng } from '../rng.js'

const validators = [0, 1, 2, 3].map(i => Wallet.fromSeed(`fuzz-validator-${i}`))
const alice = Wallet.fromSeed('fuzz-alice')
const bob = Wallet.fromSeed('fuzz-bob')

function genesis (): Chain {
  return loadChain(createGenesis({
    network: 'neuroshard-fuzz',
    genesisTimeMs: 0,
    validators: validators.map(v => ({ publicKey: toHex(v.publicKey), stake: 1000n * NEURO })),
    allocations: [{ address: alice.address, balance: 1000n * NEURO }, { address: bob.address, balance: 100n * NEURO }]
  }))
}

interface Honest { gossip: Uint8Array[], signed: Array<{ tx: Uint8Array, sig: Uint8Array }>, votes: Array<{ validator: bigint, sig: Uint8Array }> }

function honestMessages (chain: Chain): Honest {
  const h: Honest = { gossip: [], signed: [], votes: [] }
  for (let seq = 0n; seq < 4n; seq++) {
    const tx = signTx(chain, alice, seq, 0n, { kind: 'transfer', to: bob.address, amount: (seq + 1n) * NEURO, memo: new Uint8Array(0) })
    h.signed.push({ tx: tx.txBytes, sig: tx.signature })
    h.gossip.push(encodeFields([{ no: 1, wire: 2, value: tx.signed }]))
    const votes = validators.slice(1).map((v, i) => signVote(chain, v, i + 1, tx.id))
    for (const v of votes) {
      h.votes.push({ validator: BigInt(v.validator), sig: v.signature })
      h.gossip.push(encodeFields([{ no: 2, wire: 2, value: encodeFields([{ no: 1, wire: 2, value: tx.signed }, { no: 2, wire: 2, value: encodeFields([{ no: 1, wire: 0, value: BigInt(v.validator) }, { no: 2, wire: 2, value: v.signature }]) }]) }]))
    }
    h.gossip.push(encodeFields([{ no: 3, wire: 2, value: encodeCertificate(tx, votes) }]))
  }
  const stake = signTx(chain, bob, 0n, 0n, { kind: 'stake', amount: 5n * NEURO })
  h.signed.push({ tx: stake.txBytes, sig: stake.signature })
  h.gossip.push(encodeFields([{ no: 1, wire: 2, value: stake.signed }]))
  return h
}

const last = (fs: Field[], no: number): Field | undefined => { let v: Field | undefined; for (const x of fs) if (x.no === no) v = x; return v }

/**
 * True when the message carries a SignedTx (tx 1, signature 2) or a vote (validator 1, signature 2) that is
 * not one of the honest ones: its signature cannot verify. Undefined structure: false (no claim).
 */
function forged (b: Uint8Array, h: Honest): boolean {
  // declared wire types: GossipMessage 1-4, Vote 1-2, Certificate 1-2, SignedTx 1-2 are messages or bytes; VoteSig validator is a varint
  const LEN = { 1: 2, 2: 2, 3: 2, 4: 2 }
  const parse = (x: Uint8Array, declared: Record<number, number> = LEN): Field[] => {
    const f = parseFields(x)
    if (wireMismatch(f, declared)) throw new Error('no claim')
    return f
  }
  try {
    const g = parse(b)
    const checkSigned = (s: Uint8Array): boolean => {
      const f = parse(s)
      const tx = last(f, 1)?.value; const sig = last(f, 2)?.value
      const txb = tx instanceof Uint8Array ? tx : new Uint8Array(0); const sigb = sig instanceof Uint8Array ? sig : new Uint8Array(0)
      return !h.signed.some(x => eq(x.tx, txb) && eq(x.sig, sigb))
    }
    // the handler looks at certificate (3), else vote (2), else signed_tx (1): the same precedence here
    const cert = last(g, 3); const vote = last(g, 2); const stx = last(g, 1)
    if (cert != null) {
      if (!(cert.value instanceof Uint8Array)) return false
      const s = last(parse(cert.value), 1)
      if (!(s?.value instanceof Uint8Array)) return false
      // a certificate of a message that is already final is dropped by its id (the digest of the tx bytes)
      // without a look at the rest: that is a no-op, not an acceptance (reported in the README)
      const tx = last(parse(s.value), 1)?.value
      if (tx instanceof Uint8Array && h.signed.some(x => eq(x.tx, tx))) return false
      return checkSigned(s.value)
    }
    if (vote != null) {
      if (!(vote.value instanceof Uint8Array)) return false
      const vf = parse(vote.value)
      const s = last(vf, 1); const vs = last(vf, 2)
      if (vs == null || !(vs.value instanceof Uint8Array)) return false
      if (s?.value instanceof Uint8Array && checkSigned(s.value)) return true
      const vsf = parse(vs.value, { 1: 0, 2: 2 })
      const idx = last(vsf, 1)?.value; const sig = last(vsf, 2)?.value
      return !h.votes.some(x => x.validator === (typeof idx === 'bigint' ? idx : 0n) && sig instanceof Uint8Array && eq(x.sig, sig))
    }
    if (stx?.value instanceof Uint8Array && stx.value.length > 0) return checkSigned(stx.value)
    return false
  } catch {
    return false
  }
}

export function ledgerGossipTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let host: NeuroShardHost
  let svc: PonwLedger
  let dir: string
  let h: Honest
  return {
    name: options.vulnerable === true ? 'ledger gossip (accept-all)' : 'ledger gossip',
    handler: 'ponw-ledger: handleGossip (signed tx, vote, certificate, heartbeat) with a level store',
    mode: 'message',
    async setup () {
      dir = mkdtempSync(join(tmpdir(), 'fuzz-ledger-'))
      const chain = genesis()
      h = honestMessages(chain)
      host = await loopbackHost({ ledger: ponwLedger({ genesis: chain, path: dir, wallet: validators[0] }) })
      svc = (host.services as any).ledger
    },
    async teardown () { await host?.stop(); rmSync(dir, { recursive: true, force: true }) },
    generate (rng: Rng, i: number): FuzzInput {
      const bytes = i < h.gossip.length ? h.gossip[i] : mutateAny(rng, h.gossip)
      return { bytes, mustReject: forged(bytes, h), kind: i < h.gossip.length ? 'honest' : 'mutated' }
    },
    async run (input: FuzzInput): Promise<Outcome> {
      if (options.vulnerable === true) return { accepted: true }
      await svc.handleGossip(input.bytes, undefined)
      return { accepted: true }
    },
    async alive () {
      await svc.handleGossip(h.gossip[h.gossip.length - 1], undefined)
      if (svc.ledger.logLength < 1) throw new Error('no honest certificate was accepted')
    }
  }
}

const ACCEPT_ALL = '/fuzz/accept-all/ledger-sync'

export function ledgerSyncTarget (options: { vulnerable?: boolean } = {}): FuzzTarget {
  let server: NeuroShardHost
  let client: NeuroShardHost
  let dir: string
  const honest = [encodeFields([{ no: 1, wire: 0, value: 0n }, { no: 2, wire: 0, value: 10n }]), encodeFields([{ no: 1, wire: 0, value: 2n }, { no: 2, wire: 0, value: 1n }]), new Uint8Array(0)]
  const protocol = options.vulnerable === true ? ACCEPT_ALL : SYNC_PROTOCOL
  return {
    name: options.vulnerable === true ? 'ledger sync (accept-all)' : 'ledger sync',
    handler: 'ponw-ledger: /neuroshard/ledger/sync/1.0.0 server',
    mode: 'stream',
    concurrency: 4, // the server takes at most 4 inbound sync streams
    async setup () {
      dir = mkdtempSync(join(tmpdir(), 'fuzz-ledger-sync-'))
      const chain = genesis()
      server = await loopbackHost({ ledger: ponwLedger({ genesis: chain, path: dir, wallet: validators[0], syncIdleTimeoutMs: 2000 } as any) })
      const svc = (server.services as any).ledger as PonwLedger
      for (const m of honestMessages(chain).gossip.filter(g => parseFields(g)[0].no === 3)) await svc.handleGossip(m)
      client = await loopbackHost()
      await client.dial(server.getMultiaddrs()[0])
      await handleAcceptAll(server, ACCEPT_ALL, encodeFields([{ no: 2, wire: 0, value: 1n }, { no: 3, wire: 0, value: 1n }]))
    },
    async teardown () { await Promise.all([client?.stop(), server?.stop()]); rmSync(dir, { recursive: true, force: true }) },
    generate (rng: Rng): FuzzInput {
      const msg = rng.bool(0.7) ? mutateProto(rng, rng.pick(honest)) : mutateAny(rng, honest)
      const { bytes, framing } = frame(rng, msg, 0.25)
      // must not be answered: a first frame over the 64-byte cap, a huge length, a cursor beyond 2^53 - 1
      let mustReject = framing === 'huge-length' || framing === 'bad-varint' || (msg.length > 64 && (framing === 'ok' || framing === 'twice'))
      if (!mustReject && (framing === 'ok' || framing === 'twice')) {
        try {
          const f = parseFields(msg)
          // SyncRequest: from (1) and limit (2) are varints; another wire type: no claim (see proto.ts)
          mustReject = !wireMismatch(f, { 1: 0, 2: 0 }) && varintField(f, 1) > BigInt(Number.MAX_SAFE_INTEGER)
        } catch {}
      }
      return { bytes, mustReject, kind: `framing-${framing}` }
    },
    async run (input: FuzzInput, signal: AbortSignal): Promise<Outcome> {
      const { response, ended } = await exchange(client, server.peerId, protocol, input.bytes, signal)
      return frames(response).length > 0 ? { accepted: true } : { accepted: false, error: ended === 'reset' ? 'StreamReset' : 'StreamClosed' }
    },
    async alive () {
      const { response } = await exchange(client, server.peerId, SYNC_PROTOCOL, concat(Uint8Array.of(honest[0].length), honest[0]), AbortSignal.timeout(20_000))
      const f = frames(response)[0]
      if (f == null || parseFields(f).filter(x => x.no === 1).length < 1) throw new Error('the sync server did not return its certificates')
    }
  }
}

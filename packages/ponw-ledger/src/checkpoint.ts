/**
 * Certified checkpoints (specs/ponw-ledger/checkpoints.md). The state is a deterministic function of the set
 * of final messages, and each account's messages apply in sequence order, so the messages applied by a
 * state are exactly those below each account's `nextSeq` (its frontier). A checkpoint states "the state after
 * exactly those messages is the snapshot with this hash"; validators holding more than 2/3 of the stake sign
 * it after re-deriving it from their own final messages. A node may then forget every message behind it, and
 * a joining node starts from the snapshot instead of replaying all history.
 */
import { MAX_AMOUNT } from './amount.js'
import { canonicalJSON } from './genesis.js'
import { digest, toHex } from './keys.js'
import { InsufficientQuorumError, InvalidCheckpointError, InvalidSignatureError } from './errors.js'
import { hasQuorum } from './messages.js'
import { CheckpointCertificate as CertCodec } from './pb/ledger.js'
import { LedgerState, votingPowers } from './state.js'
import { verifyDigest } from './keys.js'
import type { Chain } from './genesis.js'
import type { Address, Wallet } from './keys.js'
import type { VoteSigData } from './messages.js'
import type { AccountState } from './state.js'

export const DOMAIN_SNAPSHOT = 'neuroshard/ledger/v1/snapshot'
export const DOMAIN_CHECKPOINT = 'neuroshard/ledger/v1/checkpoint'

/** A state snapshot: its canonical bytes, their hash and the height (number of final messages behind it) */
export interface Snapshot {
  bytes: Uint8Array
  hash: Uint8Array
  height: bigint
}

/** A certified checkpoint: votes of validators over (chain, height, snapshot hash) */
export interface CheckpointCertificateData {
  height: bigint
  snapshotHash: Uint8Array
  votes: VoteSigData[]
}

/** What a checkpoint vote carries so another validator can re-derive the snapshot from its own messages */
export interface CheckpointProposal {
  height: bigint
  snapshotHash: Uint8Array
  /** height and snapshot hash of the checkpoint it extends (0 and empty: genesis) */
  baseHeight: bigint
  baseHash: Uint8Array
  /** accounts whose next sequence is above the base, with their next sequence */
  frontier: Array<{ address: Address, nextSeq: bigint }>
}

/** Height of a state: the sum of the accounts' next sequences = the number of final messages applied in turn */
export function heightOf (state: LedgerState): bigint {
  let h = 0n
  for (const a of state.accounts.values()) {
    h += a.nextSeq
  }
  return h
}

function accountJSON (a: AccountState): unknown {
  return { balance: a.balance, bonded: a.bonded, unbonding: a.unbonding.map(e => ({ amount: e.amount, releaseEpoch: e.releaseEpoch })), slashed: a.slashed, nextSeq: a.nextSeq, bondHistory: a.bondHistory }
}

function isEmpty (a: AccountState): boolean {
  return a.balance === 0n && a.bonded === 0n && a.unbonding.length === 0 && a.slashed === 0n && a.nextSeq === 0n
}

/**
 * The snapshot of a state: canonical JSON of { chainId, accounts (non-empty), totals, proofKeys }, i.e. what
 * the state machine reads. It leaves out what only history needs (outcomes, message ids) and the queue (a
 * waiting message is above its sender's frontier, so it is not behind the checkpoint).
 */
export function snapshotOf (state: LedgerState): Snapshot {
  const accounts: Record<string, unknown> = {}
  let height = 0n
  for (const [addr, a] of [...state.accounts.entries()].sort(([x], [y]) => x < y ? -1 : 1)) {
    height += a.nextSeq
    if (!isEmpty(a)) {
      accounts[addr] = accountJSON(a)
    }
  }
  const bytes = new TextEncoder().encode(canonicalJSON({
    version: 1,
    chainId: toHex(state.chain.chainId),
    height,
    accounts,
    totals: state.totals,
    proofKeys: [...state.proofKeys].sort()
  }))
  return { bytes, hash: snapshotHash(bytes), height }
}

export function snapshotHash (bytes: Uint8Array): Uint8Array {
  return digest(DOMAIN_SNAPSHOT, bytes)
}

function big (v: unknown, what: string, min = 0n): bigint {
  if (typeof v !== 'string' || !/^-?\d{1,40}$/.test(v)) {
    throw new InvalidCheckpointError(`snapshot: ${what} is not an integer`)
  }
  const b = BigInt(v)
  if (b < min || b > MAX_AMOUNT * 1024n) {
    throw new InvalidCheckpointError(`snapshot: ${what} out of range`)
  }
  return b
}

function arr (v: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(v) || v.length > max) {
    throw new InvalidCheckpointError(`snapshot: ${what} is not a list of at most ${max}`)
  }
  return v
}

/**
 * Rebuilds a state from snapshot bytes, checking everything a forged or corrupted snapshot could get wrong
 * in its form: JSON, chain, field types and ranges, canonical form (re-encoding gives the same bytes), and
 * conservation (holdings = genesis supply + minted − burned). `expectedHash` is checked FIRST: bytes that do
 * not hash to it are never parsed. Throws InvalidCheckpointError.
 */
export function stateFromSnapshot (chain: Chain, bytes: Uint8Array, expectedHash?: Uint8Array): LedgerState {
  if (expectedHash != null && toHex(snapshotHash(bytes)) !== toHex(expectedHash)) {
    throw new InvalidCheckpointError('snapshot bytes do not hash to the certified snapshot hash')
  }
  let j: any
  try {
    j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err: any) {
    throw new InvalidCheckpointError(`snapshot is not JSON: ${err.message}`)
  }
  if (j == null || typeof j !== 'object' || j.version !== '1') {
    throw new InvalidCheckpointError('snapshot: unknown version')
  }
  if (j.chainId !== toHex(chain.chainId)) {
    throw new InvalidCheckpointError('snapshot of another chain')
  }
  const s = new LedgerState(chain)
  s.accounts.clear()
  if (j.accounts == null || typeof j.accounts !== 'object' || Array.isArray(j.accounts)) {
    throw new InvalidCheckpointError('snapshot: accounts missing')
  }
  for (const [addr, v] of Object.entries<any>(j.accounts)) {
    if (!/^[0-9a-f]{40}$/.test(addr) || v == null || typeof v !== 'object') {
      throw new InvalidCheckpointError('snapshot: bad account')
    }
    s.accounts.set(addr, {
      balance: big(v.balance, 'balance'),
      bonded: big(v.bonded, 'bonded'),
      unbonding: arr(v.unbonding, 'unbonding', 100_000).map((e: any) => ({ amount: big(e?.amount, 'unbonding amount'), releaseEpoch: big(e?.releaseEpoch, 'release epoch') })),
      slashed: big(v.slashed, 'slashed'),
      nextSeq: big(v.nextSeq, 'nextSeq'),
      bondHistory: arr(v.bondHistory, 'bondHistory', 1_000_000).map((e: any) => {
        const [seq, after] = arr(e, 'bond entry', 2)
        return [big(seq, 'bond sequence', -1n), big(after, 'bonded after')] as [bigint, bigint]
      })
    })
  }
  const t = j.totals
  if (t == null || typeof t !== 'object') {
    throw new InvalidCheckpointError('snapshot: totals missing')
  }
  Object.assign(s.totals, { genesisSupply: big(t.genesisSupply, 'genesis supply'), minted: big(t.minted, 'minted'), burned: big(t.burned, 'burned'), slashed: big(t.slashed, 'slashed') })
  for (const k of arr(j.proofKeys, 'proofKeys', 50_000_000)) {
    if (typeof k !== 'string' || k.length > 512) {
      throw new InvalidCheckpointError('snapshot: bad proof key')
    }
    try {
      s.restoreProofKey(k)
    } catch {
      throw new InvalidCheckpointError('snapshot: bad proof key')
    }
  }
  const again = snapshotOf(s)
  if (toHex(again.bytes) !== toHex(bytes)) {
    throw new InvalidCheckpointError('snapshot is not in canonical form')
  }
  if (big(j.height, 'height') !== again.height) {
    throw new InvalidCheckpointError('snapshot height is not the sum of its next sequences')
  }
  const genesis = new LedgerState(chain)
  if (s.totals.genesisSupply !== genesis.totals.genesisSupply || s.holdings() !== s.totals.genesisSupply + s.totals.minted - s.totals.burned) {
    throw new InvalidCheckpointError('snapshot does not conserve the supply')
  }
  return s
}

/** The next sequence of each account of a state (accounts at 0 left out) */
export function frontierOf (state: LedgerState): Map<Address, bigint> {
  const f = new Map<Address, bigint>()
  for (const [a, acc] of state.accounts) {
    if (acc.nextSeq > 0n) {
      f.set(a, acc.nextSeq)
    }
  }
  return f
}

function u64 (v: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, v)
  return b
}

/** What validators sign: sha256("neuroshard/ledger/v1/checkpoint" || 0 || chainId || u64be(height) || snapshotHash) */
export function checkpointDigest (chain: Chain, height: bigint, hash: Uint8Array): Uint8Array {
  return digest(DOMAIN_CHECKPOINT, chain.chainId, u64(height), hash)
}

export function signCheckpoint (chain: Chain, wallet: Wallet, validator: number, height: bigint, hash: Uint8Array): VoteSigData {
  return { validator, signature: wallet.signDigest(checkpointDigest(chain, height, hash)) }
}

export function verifyCheckpointVote (chain: Chain, height: bigint, hash: Uint8Array, vote: VoteSigData): boolean {
  const key = chain.validatorKeys[vote.validator]
  return key != null && verifyDigest(vote.signature, checkpointDigest(chain, height, hash), key)
}

/** Canonical certificate bytes (votes sorted by validator) */
export function encodeCheckpointCertificate (c: CheckpointCertificateData): Uint8Array {
  const votes = [...c.votes].sort((a, b) => a.validator - b.validator)
  return CertCodec.encode({ height: c.height, snapshotHash: Uint8Array.from(c.snapshotHash), votes: votes.map(v => ({ validator: v.validator, signature: Uint8Array.from(v.signature) })) })
}

/**
 * Decodes a checkpoint certificate and checks its form and every vote: canonical bytes, 32-byte hash,
 * distinct known validators (InvalidCheckpointError), signatures (InvalidSignatureError), votes of more than
 * 2/3 of the genesis stake (InsufficientQuorumError). The snapshot itself is checked by {@link verifyCheckpoint}.
 */
export function parseCheckpointCertificate (chain: Chain, bytes: Uint8Array): CheckpointCertificateData {
  let c: CertCodec
  try {
    c = CertCodec.decode(bytes, { limits: { votes: chain.genesis.validators.length } })
  } catch (err: any) {
    throw new InvalidCheckpointError(`checkpoint certificate does not decode: ${err.message}`)
  }
  if (c.snapshotHash.byteLength !== 32) {
    throw new InvalidCheckpointError('snapshot hash must be 32 bytes')
  }
  const cert: CheckpointCertificateData = { height: c.height, snapshotHash: c.snapshotHash, votes: c.votes.map(v => ({ validator: v.validator, signature: v.signature })) }
  if (toHex(encodeCheckpointCertificate(cert)) !== toHex(bytes)) {
    throw new InvalidCheckpointError('checkpoint certificate is not canonical')
  }
  let last = -1
  for (const v of cert.votes) {
    if (v.validator <= last || v.validator >= chain.genesis.validators.length) {
      throw new InvalidCheckpointError('checkpoint votes must be of distinct known validators, sorted')
    }
    last = v.validator
    if (!verifyCheckpointVote(chain, cert.height, cert.snapshotHash, v)) {
      throw new InvalidSignatureError(`checkpoint vote of validator ${v.validator} does not verify`)
    }
  }
  if (!hasQuorum(chain, cert.votes.map(v => v.validator))) {
    throw new InsufficientQuorumError('checkpoint votes do not hold more than 2/3 of the genesis stake')
  }
  return cert
}

/**
 * Full check of a checkpoint a node is offered: the certificate ({@link parseCheckpointCertificate}), the
 * snapshot bytes against the certified hash and in form ({@link stateFromSnapshot}), the height against the
 * snapshot, and the votes also against the voting power the snapshot itself gives (a slashed validator's
 * votes count less). Returns the snapshot's state.
 */
export function verifyCheckpoint (chain: Chain, certificate: Uint8Array | CheckpointCertificateData, snapshot: Uint8Array): { certificate: CheckpointCertificateData, state: LedgerState } {
  const cert = certificate instanceof Uint8Array ? parseCheckpointCertificate(chain, certificate) : certificate
  const state = stateFromSnapshot(chain, snapshot, cert.snapshotHash)
  if (heightOf(state) !== cert.height) {
    throw new InvalidCheckpointError('certified height differs from the snapshot\'s')
  }
  if (!hasQuorum(chain, cert.votes.map(v => v.validator), votingPowers(state))) {
    throw new InsufficientQuorumError('checkpoint votes do not hold more than 2/3 of the voting power the snapshot gives')
  }
  return { certificate: cert, state }
}

/** Encodes a frontier for a proposal: accounts sorted by address */
export function frontierEntries (f: Map<Address, bigint>): Array<{ address: Address, nextSeq: bigint }> {
  return [...f.entries()].sort(([a], [b]) => a < b ? -1 : 1).map(([address, nextSeq]) => ({ address, nextSeq }))
}


import { equals } from 'uint8arrays/equals'
import { checkAmount, decodeAmount, encodeAmount } from './amount.js'
import { InsufficientQuorumError, InvalidAmountError, InvalidMessageError, InvalidSignatureError, WrongChainError } from './errors.js'
import { addressBytes, digest, fromHex, toHex, verifyDigest } from './keys.js'
import { Certificate, EvidenceKind, SignedTx, Tx } from './pb/ledger.js'
import type { Chain } from './genesis.js'
import type { Address, Wallet } from './keys.js'

export { EvidenceKind }

/** Wire format version of Tx */
export const TX_VERSION = 1
/** Largest SignedTx accepted (a slash report carries two SignedTx) */
export const MAX_SIGNED_TX_BYTES = 16 * 1024
/** Largest Certificate accepted */
export const MAX_CERTIFICATE_BYTES = 64 * 1024

export const DOMAIN_TX = 'neuroshard/ledger/v1/tx'
export const DOMAIN_VOTE = 'neuroshard/ledger/v1/vote'

export type TxKind = 'transfer' | 'stake' | 'unbond' | 'withdraw' | 'training' | 'inference' | 'uptime' | 'data' | 'payment' | 'slash'
export const TX_KINDS: TxKind[] = ['transfer', 'stake', 'unbond', 'withdraw', 'training', 'inference', 'uptime', 'data', 'payment', 'slash']

/** What a caller asks to sign; amounts are bigint base units, hashes are bytes */
export type TxBody =
  | { kind: 'transfer', to: Address, amount: bigint, memo?: Uint8Array }
  | { kind: 'stake', amount: bigint }
  | { kind: 'unbond', amount: bigint }
  | { kind: 'withdraw', maxEntries?: number }
  | { kind: 'training', round: bigint, modelHash: Uint8Array, shardIds: number[], tokens: bigint, batches: bigint, lossBeforeMicro: bigint, lossAfterMicro: bigint, pseudoGradientHash: Uint8Array, batchLossMicro: bigint[], stakeClaim?: bigint, checkpointInterval?: number, checkpointHashes?: Uint8Array[] }
  | { kind: 'inference', sessionId: Uint8Array, tokens: bigint, outputHash: Uint8Array, startedMs: bigint, endedMs: bigint, stakeClaim?: bigint }
  | { kind: 'uptime', epoch: bigint, heartbeats: number, stakeClaim?: bigint }
  | { kind: 'data', shardId: number, samples: bigint, dataHash: Uint8Array, round: bigint, stakeClaim?: bigint }
  | { kind: 'payment', provider: Address, tokens: bigint, pricePerToken: bigint, sessionId: Uint8Array }
  | { kind: 'slash', evidence: Evidence }

export type Evidence =
  | { kind: 'account-equivocation', a: Uint8Array, b: Uint8Array }
  | { kind: 'validator-equivocation', validator: number, a: Uint8Array, voteA: Uint8Array, b: Uint8Array, voteB: Uint8Array }

/** A decoded, canonical, signature-checked message */
export interface LedgerTx {
  /** the SignedTx bytes as received */
  signed: Uint8Array
  /** the canonical Tx bytes that were signed */
  txBytes: Uint8Array
  signature: Uint8Array
  tx: Tx
  /** sha256(DOMAIN_TX || 0 || chainId || txBytes): the signing digest, also the message id */
  id: Uint8Array
  idHex: string
  sender: Address
  senderKey: Uint8Array
  sequence: bigint
  epoch: bigint
  kind: TxKind
}

/** Signing digest (and id) of a Tx */
export function txDigest (chainId: Uint8Array, txBytes: Uint8Array): Uint8Array {
  return digest(DOMAIN_TX, chainId, txBytes)
}

export function voteDigest (chainId: Uint8Array, txId: Uint8Array): Uint8Array {
  return digest(DOMAIN_VOTE, chainId, txId)
}

function amt (v: bigint | undefined, what: string, positive = false): Uint8Array<ArrayBuffer> {
  checkAmount(v ?? 0n, what)
  if (positive && (v ?? 0n) === 0n) {
    throw new InvalidAmountError(`${what} must be positive`)
  }
  return encodeAmount(v ?? 0n)
}

function u8 (b: Uint8Array): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(b)
}

/** Builds the protobuf Tx for a body (throws on invalid values) */
export function buildTx (chain: Chain, senderKey: Uint8Array, sequence: bigint, epoch: bigint, body: TxBody): Tx {
  const tx: Tx = { version: TX_VERSION, chainId: u8(chain.chainId), sender: u8(senderKey), sequence, epoch }
  switch (body.kind) {
    case 'transfer': tx.transfer = { to: fromHex(body.to), amount: amt(body.amount, 'amount', true), memo: u8(body.memo ?? new Uint8Array(0)) }; break
    case 'stake': tx.stake = { amount: amt(body.amount, 'amount', true) }; break
    case 'unbond': tx.unbond = { amount: amt(body.amount, 'amount', true) }; break
    case 'withdraw': tx.withdraw = { maxEntries: body.maxEntries ?? 0 }; break
    case 'training': tx.training = { round: body.round, modelHash: u8(body.modelHash), shardIds: body.shardIds, tokens: body.tokens, batches: body.batches, lossBeforeMicro: body.lossBeforeMicro, lossAfterMicro: body.lossAfterMicro, pseudoGradientHash: u8(body.pseudoGradientHash), batchLossMicro: body.batchLossMicro, stakeClaim: amt(body.stakeClaim, 'stakeClaim'), checkpointInterval: body.checkpointInterval ?? 0, checkpointHashes: (body.checkpointHashes ?? []).map(u8) }; break
    case 'inference': tx.inference = { sessionId: u8(body.sessionId), tokens: body.tokens, outputHash: u8(body.outputHash), startedMs: body.startedMs, endedMs: body.endedMs, stakeClaim: amt(body.stakeClaim, 'stakeClaim') }; break
    case 'uptime': tx.uptime = { epoch: body.epoch, heartbeats: body.heartbeats, stakeClaim: amt(body.stakeClaim, 'stakeClaim') }; break
    case 'data': tx.data = { shardId: body.shardId, samples: body.samples, dataHash: u8(body.dataHash), round: body.round, stakeClaim: amt(body.stakeClaim, 'stakeClaim') }; break
    case 'payment': tx.payment = { provider: fromHex(body.provider), tokens: body.tokens, pricePerToken: amt(body.pricePerToken, 'pricePerToken', true), sessionId: u8(body.sessionId) }; break
    case 'slash': {
      const e = body.evidence
      tx.slash = e.kind === 'account-equivocation'
        ? { kind: EvidenceKind.ACCOUNT_EQUIVOCATION, signedTxA: u8(e.a), signedTxB: u8(e.b), validator: 0, voteSigA: new Uint8Array(0), voteSigB: new Uint8Array(0) }
        : { kind: EvidenceKind.VALIDATOR_EQUIVOCATION, signedTxA: u8(e.a), signedTxB: u8(e.b), validator: e.validator, voteSigA: u8(e.voteA), voteSigB: u8(e.voteB) }
      break
    }
    default: throw new InvalidMessageError('unknown body kind')
  }
  return tx
}

/** Signs a message: returns the SignedTx bytes, already parsed */
export function signTx (chain: Chain, wallet: Wallet, sequence: bigint, epoch: bigint, body: TxBody): LedgerTx {
  if (typeof sequence !== 'bigint' || sequence < 0n || sequence >= 2n ** 64n || typeof epoch !== 'bigint' || epoch < 0n || epoch >= 2n ** 64n) {
    throw new InvalidMessageError('sequence and epoch must be uint64 bigints')
  }
  const txBytes = Tx.encode(buildTx(chain, wallet.publicKey, sequence, epoch, body))
  const signature = wallet.signDigest(txDigest(chain.chainId, txBytes))
  return parseSignedTx(chain, SignedTx.encode({ tx: txBytes, signature: u8(signature) }))
}

function kindOf (tx: Tx): TxKind {
  const set = TX_KINDS.filter(k => tx[k] != null)
  if (set.length !== 1) {
    throw new InvalidMessageError(`a Tx must carry exactly one body, found ${set.length}`)
  }
  return set[0]
}

function len (b: Uint8Array, n: number, what: string): void {
  if (b.byteLength !== n) {
    throw new InvalidMessageError(`${what} must be ${n} bytes`)
  }
}

function maxLen (b: Uint8Array, n: number, what: string): void {
  if (b.byteLength > n) {
    throw new InvalidMessageError(`${what} must be at most ${n} bytes`)
  }
}

function positive (b: Uint8Array, what: string): void {
  if (decodeAmount(b, what) === 0n) {
    throw new InvalidAmountError(`${what} must be positive`)
  }
}

/** Segments of a training proof: ceil(batches / k) with k = checkpointInterval (0 = one segment of all batches) */
export function trainingSegments (batches: bigint, checkpointInterval: number): bigint {
  const k = checkpointInterval === 0 ? batches : BigInt(checkpointInterval)
  return (batches + k - 1n) / k
}

/** Stateless shape checks of the body (sizes, amounts, ranges) */
function checkBody (tx: Tx, kind: TxKind): void {
  switch (kind) {
    case 'transfer': len(tx.transfer!.to, 20, 'transfer.to'); positive(tx.transfer!.amount, 'transfer.amount'); maxLen(tx.transfer!.memo, 64, 'transfer.memo'); break
    case 'stake': positive(tx.stake!.amount, 'stake.amount'); break
    case 'unbond': positive(tx.unbond!.amount, 'unbond.amount'); break
    case 'withdraw': break
    case 'training': {
      const t = tx.training!
      len(t.modelHash, 32, 'training.modelHash'); len(t.pseudoGradientHash, 32, 'training.pseudoGradientHash')
      decodeAmount(t.stakeClaim, 'training.stakeClaim')
      if (t.shardIds.length === 0 || t.shardIds.length > 64) { throw new InvalidMessageError('training.shardIds must hold 1..64 ids') }
      if (t.batches === 0n || BigInt(t.batchLossMicro.length) !== t.batches) { throw new InvalidMessageError('training.batchLossMicro must hold one loss per batch') }
      // Proof-of-Learning commitments: weights every k steps; the final weights are committed by the pseudo-gradient
      if (BigInt(t.checkpointInterval) > t.batches) { throw new InvalidMessageError('training.checkpointInterval exceeds batches') }
      if (BigInt(t.checkpointHashes.length) !== trainingSegments(t.batches, t.checkpointInterval) - 1n) { throw new InvalidMessageError('training.checkpointHashes must hold ceil(batches / checkpointInterval) - 1 hashes') }
      t.checkpointHashes.forEach((h, i) => { len(h, 32, `training.checkpointHashes[${i}]`) })
      if (t.pseudoGradientHash.every(b => b === 0)) { throw new InvalidMessageError('training.pseudoGradientHash is all zero (no pseudo-gradient)') }
      break
    }
    case 'inference': {
      const i = tx.inference!
      maxLen(i.sessionId, 32, 'inference.sessionId'); len(i.outputHash, 32, 'inference.outputHash'); decodeAmount(i.stakeClaim, 'inference.stakeClaim')
      if (i.tokens === 0n || i.endedMs <= i.startedMs) { throw new InvalidMessageError('inference proof needs tokens > 0 and endedMs > startedMs') }
      break
    }
    case 'uptime': decodeAmount(tx.uptime!.stakeClaim, 'uptime.stakeClaim'); if (tx.uptime!.heartbeats === 0) { throw new InvalidMessageError('uptime.heartbeats must be positive') } break
    case 'data': len(tx.data!.dataHash, 32, 'data.dataHash'); decodeAmount(tx.data!.stakeClaim, 'data.stakeClaim'); if (tx.data!.samples === 0n) { throw new InvalidMessageError('data.samples must be positive') } break
    case 'payment': len(tx.payment!.provider, 20, 'payment.provider'); positive(tx.payment!.pricePerToken, 'payment.pricePerToken'); maxLen(tx.payment!.sessionId, 32, 'payment.sessionId'); if (tx.payment!.tokens === 0n) { throw new InvalidMessageError('payment.tokens must be positive') } break
    case 'slash': {
      const s = tx.slash!
      if (s.kind !== EvidenceKind.ACCOUNT_EQUIVOCATION && s.kind !== EvidenceKind.VALIDATOR_EQUIVOCATION) { throw new InvalidMessageError('unknown evidence kind') }
      break
    }
  }
}

export interface ParseOptions {
  /** check the sender's signature (default true); the worker pool verifies in bulk and passes false */
  verifySignature?: boolean
}

/**
 * Decodes SignedTx bytes. Rejects (typed errors) anything oversized, malformed, non-canonical (unknown
 * fields, default values written, fields out of order), for another chain, or wrongly signed.
 */
export function parseSignedTx (chain: Chain, signed: Uint8Array, options: ParseOptions = {}): LedgerTx {
  if (!(signed instanceof Uint8Array)) {
    throw new InvalidMessageError('expected bytes')
  }
  if (signed.byteLength > MAX_SIGNED_TX_BYTES) {
    throw new InvalidMessageError(`SignedTx is ${signed.byteLength} bytes, more than ${MAX_SIGNED_TX_BYTES}`)
  }
  let st: SignedTx
  let tx: Tx
  try {
    st = SignedTx.decode(signed)
    tx = Tx.decode(st.tx)
  } catch (err: any) {
    throw new InvalidMessageError(`malformed message: ${err.message}`)
  }
  // canonical form: re-encoding must give the same bytes (rejects unknown fields and alternative encodings)
  if (!equals(SignedTx.encode(st), signed) || !equals(Tx.encode(tx), st.tx)) {
    throw new InvalidMessageError('message is not in canonical form (unknown or non-canonical fields)')
  }
  if (tx.version !== TX_VERSION) {
    throw new InvalidMessageError(`unsupported Tx version ${tx.version}`)
  }
  if (!equals(tx.chainId, chain.chainId)) {
    throw new WrongChainError('message signed for another chain')
  }
  if (tx.sender.byteLength !== 33) {
    throw new InvalidMessageError('sender must be a 33-byte compressed key')
  }
  if (tx.sender[0] !== 2 && tx.sender[0] !== 3) {
    throw new InvalidMessageError('sender is not a compressed secp256k1 key')
  }
  // (a compressed key that is not on the curve fails signature verification)
  const kind = kindOf(tx)
  checkBody(tx, kind)
  const id = txDigest(chain.chainId, st.tx)
  if (st.signature.byteLength !== 64) {
    throw new InvalidSignatureError('signature must be 64 bytes')
  }
  if (options.verifySignature !== false && !verifyDigest(st.signature, id, tx.sender)) {
    throw new InvalidSignatureError('signature does not verify')
  }
  return {
    signed,
    txBytes: st.tx,
    signature: st.signature,
    tx,
    id,
    idHex: toHex(id),
    sender: toHex(addressBytes(tx.sender)),
    senderKey: tx.sender,
    sequence: tx.sequence,
    epoch: tx.epoch,
    kind
  }
}

/** A validator's vote: signature over the vote digest of a message id */
export interface VoteSigData {
  validator: number
  signature: Uint8Array
}

export function signVote (chain: Chain, wallet: Wallet, validatorIndex: number, txId: Uint8Array): VoteSigData {
  return { validator: validatorIndex, signature: wallet.signDigest(voteDigest(chain.chainId, txId)) }
}

export function verifyVote (chain: Chain, txId: Uint8Array, v: VoteSigData): boolean {
  const key = chain.validatorKeys[v.validator]
  return key != null && verifyDigest(v.signature, voteDigest(chain.chainId, txId), key)
}

/** A final message: the signed message plus votes of validators holding more than 2/3 of the stake */
export interface LedgerCertificate {
  tx: LedgerTx
  votes: VoteSigData[]
  bytes: Uint8Array
}

/** True when the distinct validators in `indexes` hold more than 2/3 of the total stake */
export function hasQuorum (chain: Chain, indexes: Iterable<number>, powers?: bigint[]): boolean {
  let power = 0n
  const seen = new Set<number>()
  for (const i of indexes) {
    const v = chain.genesis.validators[i]
    if (v != null && !seen.has(i)) {
      seen.add(i)
      power += powers != null ? powers[i] : v.stake
    }
  }
  const total = powers != null ? powers.reduce((a, b) => a + b, 0n) : chain.totalVotingPower
  return 3n * power > 2n * total
}

/** Encodes a certificate with votes sorted by validator index (canonical) */
export function encodeCertificate (tx: LedgerTx, votes: VoteSigData[]): Uint8Array {
  const sorted = [...votes].sort((a, b) => a.validator - b.validator)
  return Certificate.encode({ signedTx: u8(tx.signed), votes: sorted.map(v => ({ validator: v.validator, signature: u8(v.signature) })) })
}

export interface ParseCertificateOptions extends ParseOptions {
  /** verify each vote signature (default true) */
  verifyVotes?: boolean
}

/** Decodes and fully verifies a certificate (message, votes, quorum); throws typed errors */
export function parseCertificate (chain: Chain, bytes: Uint8Array, options: ParseCertificateOptions = {}): LedgerCertificate {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength > MAX_CERTIFICATE_BYTES) {
    throw new InvalidMessageError('certificate missing or too large')
  }
  let c: Certificate
  try {
    c = Certificate.decode(bytes, { limits: { votes: chain.genesis.validators.length } })
  } catch (err: any) {
    throw new InvalidMessageError(`malformed certificate: ${err.message}`)
  }
  if (!equals(Certificate.encode(c), bytes)) {
    throw new InvalidMessageError('certificate is not in canonical form')
  }
  const tx = parseSignedTx(chain, c.signedTx, options)
  let last = -1
  for (const v of c.votes) {
    if (v.validator <= last) {
      throw new InvalidMessageError('certificate votes must be sorted by validator and distinct')
    }
    last = v.validator
    // an index outside the genesis is malformed whatever the signature checking mode (the bulk path
    // verifies signatures later and would otherwise look up a missing key)
    if (v.validator >= chain.genesis.validators.length) {
      throw new InvalidMessageError(`vote of unknown validator ${v.validator}`)
    }
    if (options.verifyVotes !== false && !verifyVote(chain, tx.id, v)) {
      throw new InvalidSignatureError(`vote of validator ${v.validator} does not verify`)
    }
  }
  if (!hasQuorum(chain, c.votes.map(v => v.validator))) {
    throw new InsufficientQuorumError('votes do not hold more than 2/3 of the stake')
  }
  return { tx, votes: c.votes, bytes }
}

/** Hex helper for keys used in maps */
export function slotKey (sender: Address, sequence: bigint): string {
  return `${sender}/${sequence.toString()}`
}

/** The message id inside certificate bytes, without verifying anything (to skip known ones cheaply) */
export function peekCertificateId (chain: Chain, bytes: Uint8Array): string | undefined {
  try {
    const c = Certificate.decode(bytes, { limits: { votes: chain.genesis.validators.length } })
    const st = SignedTx.decode(c.signedTx)
    return toHex(txDigest(chain.chainId, st.tx))
  } catch {
    return undefined
  }
}

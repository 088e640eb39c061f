import { chmod, readFile, writeFile, rename } from 'node:fs/promises'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { randomBytes } from '@noble/ciphers/utils.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { scryptAsync } from '@noble/hashes/scrypt.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidParametersError } from '@neuroshard/interface'
import { InvalidSignatureError, KeystoreError } from './errors.js'
import type { PrivateKey } from '@libp2p/interface'

const te = new TextEncoder()

/** A 20-byte account address as 40 lowercase hex characters */
export type Address = string

/** Domain-separated digest: sha256(utf8(domain) || 0x00 || parts...) — the only thing ever signed */
export function digest (domain: string, ...parts: Uint8Array[]): Uint8Array {
  const h = sha256.create()
  h.update(te.encode(domain))
  h.update(new Uint8Array([0]))
  for (const p of parts) {
    h.update(p)
  }
  return h.digest()
}

/** Address of a compressed secp256k1 public key: first 20 bytes of sha256("neuroshard/ledger/v1/address" || 0 || key) */
export function addressBytes (publicKey: Uint8Array): Uint8Array {
  if (publicKey.byteLength !== 33) {
    throw new InvalidParametersError('public key must be 33 bytes (compressed secp256k1)')
  }
  return digest('neuroshard/ledger/v1/address', publicKey).subarray(0, 20)
}

export function addressOf (publicKey: Uint8Array): Address {
  return toHex(addressBytes(publicKey))
}

export function toHex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

export function fromHex (s: string): Uint8Array<ArrayBuffer> {
  if (!/^([0-9a-f]{2})*$/.test(s)) {
    throw new InvalidParametersError('not lowercase hex')
  }
  return Uint8Array.from(Buffer.from(s, 'hex'))
}

const { Point, Signature } = secp256k1
const Fn = Point.Fn

/** keys seen often get a precomputed multiplication table (≈2× faster verification) */
const PRECOMPUTE_AFTER = 32
const MAX_CACHED_KEYS = 512
const keyUses = new Map<string, number>()
const keyPoints = new Map<string, InstanceType<typeof Point>>()

function cachedPoint (publicKey: Uint8Array): InstanceType<typeof Point> | undefined {
  const k = toHex(publicKey)
  const p = keyPoints.get(k)
  if (p != null) {
    return p
  }
  const n = (keyUses.get(k) ?? 0) + 1
  if (n < PRECOMPUTE_AFTER) {
    if (keyUses.size > 100_000) {
      keyUses.clear()
    }
    keyUses.set(k, n)
    return undefined
  }
  keyUses.delete(k)
  if (keyPoints.size >= MAX_CACHED_KEYS) {
    keyPoints.delete(keyPoints.keys().next().value!)
  }
  const point = Point.fromBytes(publicKey)
  point.precompute(8, false)
  keyPoints.set(k, point)
  return point
}

/**
 * Verifies a 64-byte compact low-S signature over a 32-byte digest. Frequently seen keys (validators,
 * busy senders) use a precomputed table: R = u1·G + u2·P with P's wNAF table, the same equations as
 * noble's `secp256k1.verify` (checked against it in the tests).
 */
export function verifyDigest (signature: Uint8Array, msgDigest: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 33 || msgDigest.byteLength !== 32) {
    return false
  }
  try {
    const P = cachedPoint(publicKey)
    if (P == null) {
      return secp256k1.verify(signature, msgDigest, publicKey, { prehash: false, lowS: true })
    }
    const sig = Signature.fromBytes(signature, 'compact')
    if (sig.hasHighS()) {
      return false
    }
    const h = Fn.create(BigInt('0x' + toHex(msgDigest)))
    const is = Fn.inv(sig.s)
    const R = Point.BASE.multiplyUnsafe(Fn.create(h * is)).add(P.multiplyUnsafe(Fn.create(sig.r * is)))
    if (R.is0()) {
      return false
    }
    return Fn.create(R.toAffine().x) === sig.r
  } catch {
    return false
  }
}

/**
 * A ledger wallet: one secp256k1 key, separate from the libp2p identity (bind the two with
 * {@link createBinding}). The secret never leaves this object except through {@link saveKeystore}.
 */
export class Wallet {
  readonly publicKey: Uint8Array
  readonly address: Address
  readonly #secret: Uint8Array

  constructor (secretKey: Uint8Array) {
    if (!secp256k1.utils.isValidSecretKey(secretKey)) {
      throw new InvalidParametersError('invalid secp256k1 secret key')
    }
    this.#secret = Uint8Array.from(secretKey)
    this.publicKey = secp256k1.getPublicKey(this.#secret, true)
    this.address = addressOf(this.publicKey)
  }

  /** A new random wallet */
  static generate (): Wallet {
    return new Wallet(secp256k1.utils.randomSecretKey())
  }

  /** A deterministic wallet from a seed string: for tests and spec vectors only, never for real funds */
  static fromSeed (seed: string): Wallet {
    return new Wallet(digest('neuroshard/ledger/v1/test-key', te.encode(seed)))
  }

  /** Signs a 32-byte digest (already domain separated); returns 64-byte compact low-S signature */
  signDigest (msgDigest: Uint8Array): Uint8Array {
    if (msgDigest.byteLength !== 32) {
      throw new InvalidParametersError('digest must be 32 bytes')
    }
    return secp256k1.sign(msgDigest, this.#secret, { prehash: false, lowS: true })
  }

  /** @internal for the keystore only */
  exportSecret (): Uint8Array {
    return Uint8Array.from(this.#secret)
  }

  toJSON (): { address: Address, publicKey: string } {
    return { address: this.address, publicKey: toHex(this.publicKey) }
  }
}

export interface KeystoreFile {
  version: 1
  address: Address
  kdf: { name: 'scrypt', N: number, r: number, p: number, salt: string }
  cipher: { name: 'xchacha20poly1305', nonce: string, ciphertext: string }
}

export interface KeystoreOptions {
  /**
   * scrypt cost parameter N
   *
   * @default 131072 (2^17)
   */
  scryptN?: number
}

const KEYSTORE_AD = te.encode('neuroshard/ledger/v1/keystore')

/** Encrypts the wallet's secret with a passphrase (scrypt → XChaCha20-Poly1305) */
export async function encryptKeystore (wallet: Wallet, passphrase: string, options: KeystoreOptions = {}): Promise<KeystoreFile> {
  const N = options.scryptN ?? 2 ** 17
  const salt = randomBytes(32)
  const key = await scryptAsync(te.encode(passphrase.normalize('NFKC')), salt, { N, r: 8, p: 1, dkLen: 32 })
  const nonce = randomBytes(24)
  const ciphertext = xchacha20poly1305(key, nonce, KEYSTORE_AD).encrypt(wallet.exportSecret())
  return {
    version: 1,
    address: wallet.address,
    kdf: { name: 'scrypt', N, r: 8, p: 1, salt: toHex(salt) },
    cipher: { name: 'xchacha20poly1305', nonce: toHex(nonce), ciphertext: toHex(ciphertext) }
  }
}

/** Decrypts a keystore; a wrong passphrase or any tampering throws KeystoreError */
export async function decryptKeystore (file: KeystoreFile, passphrase: string): Promise<Wallet> {
  if (file?.version !== 1 || file.kdf?.name !== 'scrypt' || file.cipher?.name !== 'xchacha20poly1305') {
    throw new KeystoreError('unsupported keystore version or algorithm')
  }
  const { N, r, p } = file.kdf
  if (![N, r, p].every(Number.isSafeInteger) || N > 2 ** 22 || r > 32 || p > 16) {
    throw new KeystoreError('keystore kdf parameters out of range')
  }
  let secret: Uint8Array
  try {
    const key = await scryptAsync(te.encode(passphrase.normalize('NFKC')), fromHex(file.kdf.salt), { N, r, p, dkLen: 32 })
    secret = xchacha20poly1305(key, fromHex(file.cipher.nonce), KEYSTORE_AD).decrypt(fromHex(file.cipher.ciphertext))
  } catch {
    throw new KeystoreError('wrong passphrase or corrupted keystore')
  }
  const wallet = new Wallet(secret)
  if (wallet.address !== file.address) {
    throw new KeystoreError('keystore address does not match its key')
  }
  return wallet
}

/** Writes an encrypted keystore file with mode 0600 (written to a temp file, then renamed) */
export async function saveKeystore (path: string, wallet: Wallet, passphrase: string, options: KeystoreOptions = {}): Promise<void> {
  const file = await encryptKeystore(wallet, passphrase, options)
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}

export async function loadKeystore (path: string, passphrase: string): Promise<Wallet> {
  let file: KeystoreFile
  try {
    file = JSON.parse(await readFile(path, 'utf8'))
  } catch (err: any) {
    throw new KeystoreError(`cannot read keystore: ${err.message}`)
  }
  return decryptKeystore(file, passphrase)
}

/**
 * A statement binding a ledger wallet to a libp2p identity: both keys sign
 * sha256("neuroshard/ledger/v1/binding" || 0 || utf8(peerId) || 0 || walletPublicKey || issuedAt as 8-byte BE).
 */
export interface IdentityBinding {
  peerId: string
  walletPublicKey: string
  issuedAtMs: number
  walletSignature: string
  peerSignature: string
}

function bindingDigest (peerId: string, walletPublicKey: Uint8Array, issuedAtMs: number): Uint8Array {
  const ts = new Uint8Array(8)
  new DataView(ts.buffer).setBigUint64(0, BigInt(issuedAtMs))
  return digest('neuroshard/ledger/v1/binding', te.encode(peerId), new Uint8Array([0]), walletPublicKey, ts)
}

export async function createBinding (wallet: Wallet, peerKey: PrivateKey, peerId: string, issuedAtMs = Date.now()): Promise<IdentityBinding> {
  const d = bindingDigest(peerId, wallet.publicKey, issuedAtMs)
  return {
    peerId,
    walletPublicKey: toHex(wallet.publicKey),
    issuedAtMs,
    walletSignature: toHex(wallet.signDigest(d)),
    peerSignature: toHex(await peerKey.sign(d))
  }
}

/** Verifies both signatures of a binding; returns the bound wallet address or throws InvalidSignatureError */
export async function verifyBinding (b: IdentityBinding): Promise<Address> {
  let publicKey: Uint8Array
  let d: Uint8Array
  try {
    publicKey = fromHex(b.walletPublicKey)
    d = bindingDigest(b.peerId, publicKey, b.issuedAtMs)
  } catch (err: any) {
    throw new InvalidSignatureError(`malformed binding: ${err.message}`)
  }
  if (!verifyDigest(fromHex(b.walletSignature), d, publicKey)) {
    throw new InvalidSignatureError('wallet signature of the binding does not verify')
  }
  let ok = false
  try {
    const peer = peerIdFromString(b.peerId)
    if (peer.publicKey == null) {
      throw new Error('peer id does not embed its public key')
    }
    ok = await peer.publicKey.verify(d, fromHex(b.peerSignature))
  } catch (err: any) {
    throw new InvalidSignatureError(`binding peer signature: ${err.message}`)
  }
  if (!ok) {
    throw new InvalidSignatureError('peer signature of the binding does not verify')
  }
  return addressOf(publicKey)
}

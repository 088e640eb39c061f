import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { chmod, readFile, writeFile, rename } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { randomBytes } from '@noble/ciphers/utils.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { scryptAsync } from '@noble/hashes/scrypt.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidParametersError } from '@neuroshard/interface'
import { InvalidSignatureError, KeystoreError } from './errors.js'
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

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

/**
 * SPKI DER prefix of a compressed secp256k1 public key:
 * SEQUENCE { SEQUENCE { id-ecPublicKey, secp256k1 }, BIT STRING (33 bytes) }
 */
const SPKI_PREFIX = Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex')
/** (n − 1) / 2 as 32 big-endian bytes: a low-S signature has s ≤ this */
const HALF_N = Buffer.from('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 'hex')
const MAX_CACHED_KEYS = 4096
const keyObjects = new Map<string, KeyObject>()

function keyObject (publicKey: Uint8Array): KeyObject {
  const k = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1')
  let key = keyObjects.get(k)
  if (key == null) {
    // throws on a point that is not on the curve
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    if (keyObjects.size >= MAX_CACHED_KEYS) {
      keyObjects.delete(keyObjects.keys().next().value!)
    }
    keyObjects.set(k, key)
  }
  return key
}

/** The signature scheme checked by noble alone (the portable reference; also the fallback) */
export function verifyDigestPortable (signature: Uint8Array, msgDigest: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 33 || msgDigest.byteLength !== 32) {
    return false
  }
  try {
    return secp256k1.verify(signature, msgDigest, publicKey, { prehash: true, lowS: true })
  } catch {
    return false
  }
}

function verifyOpenSsl (signature: Uint8Array, msgDigest: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 33 || msgDigest.byteLength !== 32) {
    return false
  }
  // OpenSSL accepts high-S signatures; the ledger does not (one message, one signature)
  if (Buffer.compare(Buffer.from(signature.buffer, signature.byteOffset + 32, 32), HALF_N) > 0) {
    return false
  }
  try {
    return cryptoVerify('sha256', msgDigest, { key: keyObject(publicKey), dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}

/** The part of the `secp256k1` package's native binding (bitcoin-core's libsecp256k1) the ledger uses */
interface Libsecp256k1 {
  /** throws on a signature with r or s ≥ n and on a key that is not a curve point; false on high-S */
  ecdsaVerify: (signature: Uint8Array, msg32: Uint8Array, publicKey: Uint8Array) => boolean
}

/**
 * libsecp256k1 through the `secp256k1` package's prebuilt N-API binding (linux-x64, darwin-arm64, win32-x64).
 * Loaded from `secp256k1/bindings`, not the package root: the root silently falls back to a slow pure-JS
 * implementation (elliptic) when the binding is missing, and we prefer OpenSSL then.
 */
const libsecp256k1: Libsecp256k1 | undefined = (() => {
  try {
    return createRequire(import.meta.url)('secp256k1/bindings') as Libsecp256k1
  } catch {
    return undefined
  }
})()

function verifyLibsecp256k1 (signature: Uint8Array, msgDigest: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 33 || msgDigest.byteLength !== 32 || libsecp256k1 == null) {
    return false
  }
  try {
    // the ledger signs sha256(digest) (noble's prehash); libsecp256k1 takes the 32 bytes it checks against,
    // and rejects high-S signatures itself (it verifies normalized signatures only)
    return libsecp256k1.ecdsaVerify(signature, createHash('sha256').update(msgDigest).digest(), publicKey)
  } catch {
    return false
  }
}

type Verify = (signature: Uint8Array, msgDigest: Uint8Array, publicKey: Uint8Array) => boolean

/** Whether a fast path gives the reference answers on a known signature (checked once at load) */
function selfTest (verify: Verify): boolean {
  try {
    const secret = digest('neuroshard/ledger/v1/self-test')
    const d = digest('neuroshard/ledger/v1/self-test', secret)
    const sig = secp256k1.sign(d, secret, { prehash: true, lowS: true })
    const pub = secp256k1.getPublicKey(secret, true)
    return verify(sig, d, pub) && !verify(sig, secret, pub)
  } catch {
    return false
  }
}

/**
 * Which implementation {@link verifyDigest} uses: libsecp256k1 (native binding, ≈ 9× OpenSSL on secp256k1),
 * else Node's OpenSSL (official Node builds carry the curve; ≈ 5× noble), else noble (portable).
 */
export const verifyBackend: 'libsecp256k1' | 'openssl' | 'noble' =
  selfTest(verifyLibsecp256k1) ? 'libsecp256k1' : selfTest(verifyOpenSsl) ? 'openssl' : 'noble'

/** Whether a native implementation (libsecp256k1 or OpenSSL) verifies signatures here */
export const nativeSecp256k1: boolean = verifyBackend !== 'noble'

/** The fast implementations, for tests that check they agree with noble */
export const verifyDigestWith: Record<'libsecp256k1' | 'openssl', Verify> = {
  libsecp256k1: verifyLibsecp256k1,
  openssl: verifyOpenSsl
}

/**
 * Verifies a 64-byte compact low-S ECDSA signature (secp256k1, SHA-256) of a 32-byte digest with the fastest
 * implementation available ({@link verifyBackend}); the tests check that all give the same answers.
 */
export const verifyDigest: Verify =
  verifyBackend === 'libsecp256k1' ? verifyLibsecp256k1 : verifyBackend === 'openssl' ? verifyOpenSsl : verifyDigestPortable

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

  /** Signs a 32-byte digest (already domain separated): ECDSA with SHA-256, RFC 6979 nonce; returns a 64-byte compact low-S signature */
  signDigest (msgDigest: Uint8Array): Uint8Array {
    if (msgDigest.byteLength !== 32) {
      throw new InvalidParametersError('digest must be 32 bytes')
    }
    return secp256k1.sign(msgDigest, this.#secret, { prehash: true, lowS: true })
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

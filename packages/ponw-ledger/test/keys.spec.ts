import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { Wallet, addressOf, createBinding, decryptKeystore, digest, encryptKeystore, loadKeystore, saveKeystore, nativeSecp256k1, verifyBackend, verifyBinding, verifyDigest, verifyDigestPortable, verifyDigestWith } from '../src/keys.js'

describe('wallet, keystore, identity binding', () => {
  it('derives a 20-byte address from the public key and signs domain-separated digests', () => {
    const w = Wallet.fromSeed('alice')
    expect(w.address).toMatch(/^[0-9a-f]{40}$/)
    expect(addressOf(w.publicKey)).toBe(w.address)
    const d = digest('test', new Uint8Array([1, 2, 3]))
    const sig = w.signDigest(d)
    expect(verifyDigest(sig, d, w.publicKey)).toBe(true)
    expect(verifyDigest(sig, digest('other', new Uint8Array([1, 2, 3])), w.publicKey)).toBe(false)
    expect(verifyDigest(sig, d, Wallet.fromSeed('bob').publicKey)).toBe(false)
    const bad = Uint8Array.from(sig)
    bad[5] ^= 1
    expect(verifyDigest(bad, d, w.publicKey)).toBe(false)
  })

  it('keystore: scrypt + XChaCha20-Poly1305, mode 0600, wrong passphrase and tampering rejected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ponw-ks-'))
    try {
      const w = Wallet.generate()
      const path = join(dir, 'wallet.json')
      await saveKeystore(path, w, 'correct horse', { scryptN: 2 ** 12 })
      expect((await stat(path)).mode & 0o777).toBe(0o600)
      const text = await readFile(path, 'utf8')
      expect(text).not.toContain(Buffer.from(w.exportSecret()).toString('hex'))
      expect((await loadKeystore(path, 'correct horse')).address).toBe(w.address)
      await expect(loadKeystore(path, 'wrong')).rejects.toHaveProperty('name', 'KeystoreError')
      const file = JSON.parse(text)
      file.cipher.ciphertext = file.cipher.ciphertext.replace(/^./, (c: string) => c === 'a' ? 'b' : 'a')
      await writeFile(path, JSON.stringify(file))
      await expect(loadKeystore(path, 'correct horse')).rejects.toHaveProperty('name', 'KeystoreError')
      const ks = await encryptKeystore(w, 'p', { scryptN: 2 ** 10 })
      await expect(decryptKeystore({ ...ks, version: 2 as any }, 'p')).rejects.toHaveProperty('name', 'KeystoreError')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('binds the wallet to a libp2p identity; a forged binding is rejected', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const w = Wallet.fromSeed('alice')
    const b = await createBinding(w, key, peerId)
    expect(await verifyBinding(b)).toBe(w.address)
    // someone else's wallet claims the same peer
    const other = await createBinding(Wallet.fromSeed('mallory'), key, peerId)
    await expect(verifyBinding({ ...b, walletPublicKey: other.walletPublicKey })).rejects.toHaveProperty('name', 'InvalidSignatureError')
    // the peer signature from another libp2p key
    const key2 = await generateKeyPair('Ed25519')
    const forged = await createBinding(w, key2, peerId)
    await expect(verifyBinding(forged)).rejects.toHaveProperty('name', 'InvalidSignatureError')
  })
})

describe('native (libsecp256k1, OpenSSL) verification paths', () => {
  it('are in use on this Node, and agree with noble on valid, tampered, high-S and malformed input', async () => {
    const { secp256k1 } = await import('@noble/curves/secp256k1.js')
    // linux-x64 has the secp256k1 package's prebuilt binding: the fast path must not silently fall back here
    expect(verifyBackend).toBe('libsecp256k1')
    expect(nativeSecp256k1).toBe(true)
    const w = Wallet.fromSeed('fast-path')
    const n = secp256k1.Point.CURVE().n
    const toBytes = (x: bigint): Uint8Array => Buffer.from(x.toString(16).padStart(64, '0'), 'hex')
    for (let i = 0; i < 40; i++) {
      const d = digest('fp', new Uint8Array([i]))
      const sig = w.signDigest(d)
      const r = BigInt('0x' + Buffer.from(sig.subarray(0, 32)).toString('hex'))
      const s = BigInt('0x' + Buffer.from(sig.subarray(32)).toString('hex'))
      const high = Uint8Array.from(sig)
      high.set(toBytes(n - s), 32)
      const variants = [
        sig,
        Uint8Array.from(sig).map((b, k) => k === i % 64 ? b ^ 1 : b),
        high,
        Uint8Array.from([...toBytes(r), ...toBytes(0n)]),
        Uint8Array.from([...toBytes(r + n < 2n ** 256n ? r + n : 0n), ...sig.subarray(32)]),
        new Uint8Array(64)
      ]
      const other = Uint8Array.from(w.publicKey)
      other[5] ^= 1 // usually not on the curve
      for (const v of variants) {
        for (const key of [w.publicKey, other, Wallet.fromSeed('other').publicKey]) {
          const reference = secp256k1.verify(v, d, key, { prehash: true, lowS: true })
          expect(verifyDigestPortable(v, d, key)).toBe(reference)
          expect(verifyDigestWith.libsecp256k1(v, d, key)).toBe(reference)
          expect(verifyDigestWith.openssl(v, d, key)).toBe(reference)
          expect(verifyDigest(v, d, key)).toBe(reference)
        }
      }
      for (const verify of [verifyDigest, verifyDigestWith.libsecp256k1, verifyDigestWith.openssl]) {
        expect(verify(sig, d, w.publicKey)).toBe(true)
        expect(verify(high, d, w.publicKey)).toBe(false)
      }
    }
  })
})

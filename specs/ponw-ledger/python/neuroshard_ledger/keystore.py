"""§4 keystore: scrypt(NFKC(passphrase)) -> XChaCha20-Poly1305 of the 32-byte secret, in pure Python (stdlib only:
hashlib.scrypt, and ChaCha20 / HChaCha20 / Poly1305 written from RFC 8439 and draft-irtf-cfrg-xchacha-03)."""
import hashlib
import hmac
import json
import os
import struct
import unicodedata

from .ledger import LedgerError, Wallet

AD = b'neuroshard/ledger/v1/keystore'
M32 = 0xFFFFFFFF


class KeystoreError(LedgerError):
    name = 'KeystoreError'


def _rotl(x, n):
    return ((x << n) & M32) | (x >> (32 - n))


def _rounds(s):
    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & M32; s[d] = _rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & M32; s[b] = _rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & M32; s[d] = _rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & M32; s[b] = _rotl(s[b] ^ s[c], 7)
    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)


CONST = list(struct.unpack('<4I', b'expand 32-byte k'))


def chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    init = CONST + list(struct.unpack('<8I', key)) + [counter] + list(struct.unpack('<3I', nonce))
    s = init[:]
    _rounds(s)
    return struct.pack('<16I', *[(a + b) & M32 for a, b in zip(s, init)])


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    s = CONST + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', nonce16))
    _rounds(s)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))


def chacha20_xor(key: bytes, counter: int, nonce: bytes, data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 64):
        block = chacha20_block(key, counter + i // 64, nonce)
        out += bytes(x ^ y for x, y in zip(data[i:i + 64], block))
    return bytes(out)


def poly1305(key: bytes, msg: bytes) -> bytes:
    r = int.from_bytes(key[:16], 'little') & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:], 'little')
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        n = int.from_bytes(msg[i:i + 16] + b'\x01', 'little')
        acc = (acc + n) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, 'little')


def _pad16(b):
    return b'\x00' * (-len(b) % 16)


def aead_chacha20_poly1305(key: bytes, nonce12: bytes, plaintext: bytes, ad: bytes):
    """RFC 8439 §2.8: returns ciphertext || 16-byte tag"""
    otk = chacha20_block(key, 0, nonce12)[:32]
    ct = chacha20_xor(key, 1, nonce12, plaintext)
    tag = poly1305(otk, ad + _pad16(ad) + ct + _pad16(ct) + struct.pack('<QQ', len(ad), len(ct)))
    return ct + tag


def aead_open(key: bytes, nonce12: bytes, sealed: bytes, ad: bytes) -> bytes:
    if len(sealed) < 16:
        raise KeystoreError('ciphertext shorter than its tag')
    ct, tag = sealed[:-16], sealed[-16:]
    otk = chacha20_block(key, 0, nonce12)[:32]
    if not hmac.compare_digest(poly1305(otk, ad + _pad16(ad) + ct + _pad16(ct) + struct.pack('<QQ', len(ad), len(ct))), tag):
        raise KeystoreError('wrong passphrase or corrupted keystore')
    return chacha20_xor(key, 1, nonce12, ct)


def xchacha20_poly1305_seal(key: bytes, nonce24: bytes, plaintext: bytes, ad: bytes) -> bytes:
    return aead_chacha20_poly1305(hchacha20(key, nonce24[:16]), b'\x00' * 4 + nonce24[16:], plaintext, ad)


def xchacha20_poly1305_open(key: bytes, nonce24: bytes, sealed: bytes, ad: bytes) -> bytes:
    return aead_open(hchacha20(key, nonce24[:16]), b'\x00' * 4 + nonce24[16:], sealed, ad)


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(unicodedata.normalize('NFKC', passphrase).encode('utf-8'), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * n + (1 << 20), dklen=32)


def encrypt_keystore(wallet: Wallet, passphrase: str, n=2 ** 17, r=8, p=1, salt=None, nonce=None) -> dict:
    salt = salt if salt is not None else os.urandom(32)
    nonce = nonce if nonce is not None else os.urandom(24)
    ct = xchacha20_poly1305_seal(_kdf(passphrase, salt, n, r, p), nonce, wallet.secret, AD)
    return {'version': 1, 'address': wallet.address, 'kdf': {'name': 'scrypt', 'N': n, 'r': r, 'p': p, 'salt': salt.hex()},
            'cipher': {'name': 'xchacha20poly1305', 'nonce': nonce.hex(), 'ciphertext': ct.hex()}}


def decrypt_keystore(file: dict, passphrase: str) -> Wallet:
    try:
        kdf, cipher = file['kdf'], file['cipher']
        if file['version'] != 1 or kdf['name'] != 'scrypt' or cipher['name'] != 'xchacha20poly1305':
            raise KeystoreError('unsupported keystore version or algorithm')
        n, r, p = kdf['N'], kdf['r'], kdf['p']
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (n, r, p)) or n > 2 ** 22 or r > 32 or p > 16:
            raise KeystoreError('keystore kdf parameters out of range')
        try:
            key = _kdf(passphrase, bytes.fromhex(kdf['salt']), n, r, p)
            secret = xchacha20_poly1305_open(key, bytes.fromhex(cipher['nonce']), bytes.fromhex(cipher['ciphertext']), AD)
        except (ValueError, KeystoreError):
            raise KeystoreError('wrong passphrase or corrupted keystore')
        try:
            w = Wallet(secret)
        except ValueError:
            raise KeystoreError('decrypted secret is not a secp256k1 key')
        if w.address != file['address']:
            raise KeystoreError('keystore address does not match its key')
        return w
    except (KeyError, TypeError):
        raise KeystoreError('malformed keystore')


def save_keystore(path: str, wallet: Wallet, passphrase: str, **kw):
    """Writes the keystore with mode 0600 (created so, then renamed into place)"""
    tmp = f'{path}.tmp-{os.getpid()}'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(json.dumps(encrypt_keystore(wallet, passphrase, **kw), indent=2) + '\n')
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)

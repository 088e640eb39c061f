"""§3 identity binding of a wallet to a libp2p peer id (Ed25519 peers), in pure Python: Ed25519 from RFC 8032 §5.1
(not constant time: tests and tools only), libp2p peer ids of Ed25519 keys (identity multihash of the protobuf
PublicKey, base58btc)."""
import hashlib

from .ledger import InvalidSignatureError, address_of, digest
from . import secp256k1

# ---- Ed25519 (RFC 8032 §5.1) ----
Q = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, Q) % Q
I = pow(2, (Q - 1) // 4, Q)


def _xrecover(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, Q) % Q
    x = pow(x2, (Q + 3) // 8, Q)
    if (x * x - x2) % Q != 0:
        x = x * I % Q
    if (x * x - x2) % Q != 0:
        return None
    if x == 0 and sign:
        return None
    return Q - x if x & 1 != sign else x


_BY = 4 * pow(5, -1, Q) % Q
_B = (_xrecover(_BY, 0), _BY, 1, _xrecover(_BY, 0) * _BY % Q)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % Q
    b = (p[1] + p[0]) * (q[1] + q[0]) % Q
    c = 2 * p[3] * q[3] * D % Q
    d = 2 * p[2] * q[2] % Q
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % Q, g * h % Q, f * g % Q, e * h % Q)


def _mul(s, p):
    out = (0, 1, 1, 0)
    while s:
        if s & 1:
            out = _add(out, p)
        p = _add(p, p)
        s >>= 1
    return out


def _encode(p):
    zi = pow(p[2], -1, Q)
    x, y = p[0] * zi % Q, p[1] * zi % Q
    return (y | ((x & 1) << 255)).to_bytes(32, 'little')


def _decode(b):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, 'little')
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= Q:
        return None
    x = _xrecover(y, sign)
    return None if x is None else (x, y, 1, x * y % Q)


def _h(*parts):
    return int.from_bytes(hashlib.sha512(b''.join(parts)).digest(), 'little')


def _expand(secret):
    h = hashlib.sha512(secret).digest()
    a = int.from_bytes(h[:32], 'little')
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public_key(secret: bytes) -> bytes:
    return _encode(_mul(_expand(secret)[0], _B))


def ed25519_sign(secret: bytes, msg: bytes) -> bytes:
    a, prefix = _expand(secret)
    pub = _encode(_mul(a, _B))
    r = _h(prefix, msg) % L
    rb = _encode(_mul(r, _B))
    s = (r + _h(rb, pub, msg) * a) % L
    return rb + s.to_bytes(32, 'little')


def ed25519_verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    if len(sig) != 64:
        return False
    a, r = _decode(pub), _decode(sig[:32])
    s = int.from_bytes(sig[32:], 'little')
    if a is None or r is None or s >= L:
        return False
    k = _h(sig[:32], pub, msg) % L
    return _encode(_mul(s, _B)) == _encode(_add(r, _mul(k, a)))


# ---- libp2p peer ids of Ed25519 keys ----
B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def _b58encode(b: bytes) -> str:
    n = int.from_bytes(b, 'big')
    out = ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return '1' * (len(b) - len(b.lstrip(b'\x00'))) + out


def _b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        if c not in B58:
            raise ValueError('not base58btc')
        n = n * 58 + B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, 'big') if n else b''
    return b'\x00' * (len(s) - len(s.lstrip('1'))) + body


def peer_id_of_ed25519(pub: bytes) -> str:
    """identity multihash (0x00, length) of the protobuf PublicKey {Type: Ed25519 (1), Data: key}, base58btc"""
    proto = b'\x08\x01\x12\x20' + pub
    return _b58encode(b'\x00' + bytes([len(proto)]) + proto)


def ed25519_key_of_peer_id(peer_id: str):
    b = _b58decode(peer_id)
    if len(b) == 38 and b[:6] == b'\x00\x24\x08\x01\x12\x20':
        return b[6:]
    return None


# ---- §3 binding ----

def binding_digest(peer_id: str, wallet_public_key: bytes, issued_at_ms: int) -> bytes:
    return digest('neuroshard/ledger/v1/binding', peer_id.encode('utf-8'), b'\x00', wallet_public_key, issued_at_ms.to_bytes(8, 'big'))


def create_binding(wallet, peer_secret: bytes, issued_at_ms: int) -> dict:
    peer_id = peer_id_of_ed25519(ed25519_public_key(peer_secret))
    d = binding_digest(peer_id, wallet.public_key, issued_at_ms)
    return {'peerId': peer_id, 'walletPublicKey': wallet.public_key.hex(), 'issuedAtMs': issued_at_ms,
            'walletSignature': wallet.sign_digest(d).hex(), 'peerSignature': ed25519_sign(peer_secret, d).hex()}


def verify_binding(b: dict) -> str:
    """The bound wallet's address, or InvalidSignatureError (wallet signature first, then the peer's)"""
    try:
        pub = bytes.fromhex(b['walletPublicKey'])
        d = binding_digest(b['peerId'], pub, b['issuedAtMs'])
        wallet_sig, peer_sig = bytes.fromhex(b['walletSignature']), bytes.fromhex(b['peerSignature'])
    except (KeyError, ValueError, TypeError, OverflowError, AttributeError) as e:
        raise InvalidSignatureError(f'malformed binding: {e}')
    if not secp256k1.verify(wallet_sig, d, pub):
        raise InvalidSignatureError('wallet signature of the binding does not verify')
    try:
        key = ed25519_key_of_peer_id(b['peerId'])
    except ValueError:
        key = None
    if key is None or not ed25519_verify(key, d, peer_sig):
        raise InvalidSignatureError('peer signature of the binding does not verify (Ed25519 peer ids only here)')
    return address_of(pub)

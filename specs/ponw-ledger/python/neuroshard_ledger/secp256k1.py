"""secp256k1 ECDSA as specs/ponw-ledger/README.md ("Signatures") defines it, in pure Python (stdlib only).

The signed message is a 32-byte digest d; the ECDSA hash is e = sha256(d); nonces follow RFC 6979 (HMAC-SHA256,
on sha256(d)); signatures are 64-byte compact r || s with low S. Not constant time: for tests and tools, never
for keys that hold real funds.
"""
import hashlib
import hmac

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)
HALF_N = (N - 1) // 2


def _jdouble(a):
    # Jacobian doubling for y^2 = x^3 + 7 (a = 0)
    if a is None or a[1] == 0:
        return None
    x, y, z = a
    ysq = y * y % P
    s = 4 * x * ysq % P
    m = 3 * x * x % P
    nx = (m * m - 2 * s) % P
    return (nx, (m * (s - nx) - 8 * ysq * ysq) % P, 2 * y * z % P)


def _jadd(a, b):
    if a is None:
        return b
    if b is None:
        return a
    x1, y1, z1 = a
    x2, y2, z2 = b
    z1s, z2s = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2s % P, x2 * z1s % P
    s1, s2 = y1 * z2s * z2 % P, y2 * z1s * z1 % P
    if u1 == u2:
        return _jdouble(a) if s1 == s2 else None
    h, r = (u2 - u1) % P, (s2 - s1) % P
    h2 = h * h % P
    h3 = h * h2 % P
    u1h2 = u1 * h2 % P
    nx = (r * r - h3 - 2 * u1h2) % P
    return (nx, (r * (u1h2 - nx) - s1 * h3) % P, h * z1 * z2 % P)


def _affine(j):
    if j is None:
        return None
    zi = pow(j[2], -1, P)
    return (j[0] * zi * zi % P, j[1] * zi * zi * zi % P)


def _mul(k, pt):
    out = None
    acc = (pt[0], pt[1], 1)
    while k:
        if k & 1:
            out = _jadd(out, acc)
        acc = _jdouble(acc)
        k >>= 1
    return _affine(out)


def _mul2(k1, p1, k2, p2):
    """k1*p1 + k2*p2 (Shamir's trick)"""
    a, b = (p1[0], p1[1], 1), (p2[0], p2[1], 1)
    ab = _jadd(a, b)
    out = None
    for i in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        out = _jdouble(out)
        bits = ((k1 >> i) & 1, (k2 >> i) & 1)
        if bits == (1, 1):
            out = _jadd(out, ab)
        elif bits == (1, 0):
            out = _jadd(out, a)
        elif bits == (0, 1):
            out = _jadd(out, b)
    return _affine(out)


def public_key(secret: bytes) -> bytes:
    """33-byte compressed public key of a 32-byte secret (1 <= secret < n)"""
    k = int.from_bytes(secret, 'big')
    if len(secret) != 32 or not 1 <= k < N:
        raise ValueError('invalid secp256k1 secret key')
    x, y = _mul(k, G)
    return bytes([2 + (y & 1)]) + x.to_bytes(32, 'big')


def decompress(pub: bytes):
    """The curve point of a 33-byte compressed key, or None when it is not one"""
    if len(pub) != 33 or pub[0] not in (2, 3):
        return None
    x = int.from_bytes(pub[1:], 'big')
    if x >= P:
        return None
    y2 = (pow(x, 3, P) + 7) % P
    y = pow(y2, (P + 1) // 4, P)
    if y * y % P != y2:
        return None
    if (y & 1) != (pub[0] & 1):
        y = P - y
    return (x, y)


def _rfc6979_k(secret: int, h1: bytes):
    """RFC 6979 §3.2 with HMAC-SHA256; qlen = hlen = 256, so bits2int is plain big-endian"""
    x = secret.to_bytes(32, 'big')
    h = (int.from_bytes(h1, 'big') % N).to_bytes(32, 'big')
    v = b'\x01' * 32
    k = b'\x00' * 32
    k = hmac.new(k, v + b'\x00' + x + h, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b'\x01' + x + h, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()
        t = int.from_bytes(v, 'big')
        if 1 <= t < N:
            yield t
        k = hmac.new(k, v + b'\x00', hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def sign(secret: bytes, d: bytes) -> bytes:
    """64-byte compact low-S signature of the 32-byte digest d (ECDSA hash e = sha256(d))"""
    if len(d) != 32:
        raise ValueError('digest must be 32 bytes')
    return sign_hash(secret, hashlib.sha256(d).digest())


def sign_hash(secret: bytes, h1: bytes) -> bytes:
    """ECDSA of an already computed 32-byte hash h1 (RFC 6979 nonce, low S)"""
    x = int.from_bytes(secret, 'big')
    if len(secret) != 32 or not 1 <= x < N:
        raise ValueError('invalid secp256k1 secret key')
    e = int.from_bytes(h1, 'big')
    for k in _rfc6979_k(x, h1):
        r = _mul(k, G)[0] % N
        if r == 0:
            continue
        s = pow(k, -1, N) * (e + r * x) % N
        if s == 0:
            continue
        if s > HALF_N:
            s = N - s
        return r.to_bytes(32, 'big') + s.to_bytes(32, 'big')


def verify(signature: bytes, d: bytes, pub: bytes) -> bool:
    """True when `signature` is a valid 64-byte compact low-S signature of digest d by key `pub`"""
    if len(signature) != 64 or len(d) != 32:
        return False
    q = decompress(pub)
    if q is None:
        return False
    r = int.from_bytes(signature[:32], 'big')
    s = int.from_bytes(signature[32:], 'big')
    if not (1 <= r < N and 1 <= s <= HALF_N):
        return False
    e = int.from_bytes(hashlib.sha256(d).digest(), 'big')
    w = pow(s, -1, N)
    pt = _mul2(e * w % N, G, r * w % N, q)
    return pt is not None and pt[0] % N == r

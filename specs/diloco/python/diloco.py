"""DiLoCo's byte-level rules (specs/diloco/README.md §1 leader order, §5 codecs, error feedback and the privacy
accountant, §6 the outer step), written from the spec text alone, standard library only. float32 arithmetic is
emulated with struct: fround(x) rounds a binary64 to the nearest binary32, ties to even."""
import hashlib
import math
import struct


class MalformedPseudoGradientError(Exception):
    name = 'MalformedPseudoGradientError'


def fround(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def from_bits(bits):
    return [struct.unpack('<f', struct.pack('<I', b))[0] for b in bits]


def to_bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


# tensor-frame: the largest binary32 s with fround(127·s) finite
MAX_INT8_SCALE = struct.unpack('<f', struct.pack('<I', 0x7c010203))[0]


def outer_step(theta, b, g, lr, mu, nesterov=True):
    """§6: b ← fround(fround(μ·b) + g); u ← fround(g + fround(μ·b)) (Nesterov) or b; θ ← fround(θ − fround(lr·u))"""
    theta, b = list(theta), list(b)
    for i in range(len(theta)):
        b[i] = fround(fround(mu * b[i]) + g[i])
        u = fround(g[i] + fround(mu * b[i])) if nesterov else b[i]
        theta[i] = fround(theta[i] - fround(lr * u))
    return theta, b


def _rne(x):
    return int(round(x))  # Python rounds binary64 halves to even


def encode(xs, codec):
    c = codec['codec']
    if c == 'fp32':
        return b''.join(struct.pack('<f', x) for x in xs)
    if c == 'fp16':
        return b''.join(struct.pack('<e', x) for x in xs)
    if c == 'int8':
        B = codec.get('blockSize', 64)
        scales, qs = [], []
        for s in range(0, len(xs), B):
            blk = xs[s:s + B]
            scale = min(fround(max(abs(x) for x in blk) / 127), MAX_INT8_SCALE)
            scales.append(scale)
            r = 1 / scale if scale else 0
            qs += [max(-127, min(127, _rne(x * r))) if scale else 0 for x in blk]
        return b''.join(struct.pack('<f', s) for s in scales) + bytes(q & 0xFF for q in qs)
    if c == 'sparse':
        C, k, bits = codec.get('chunk', 4096), codec.get('topK', 64), codec.get('bits', 2)
        m = (1 << bits) - 1
        out = b''
        for s in range(0, len(xs), C):
            ch = xs[s:s + C]
            kc = min(k, len(ch))
            keep = sorted(sorted(range(len(ch)), key=lambda i: (-abs(ch[i]), i))[:kc])
            scale = fround(max((abs(ch[i]) for i in keep), default=0.0))
            codes = [min(m, max(0, _rne((ch[i] / scale + 1) * m / 2))) if scale else 0 for i in keep]
            packed = bytearray((kc * bits + 7) // 8)
            for j, code in enumerate(codes):
                for t in range(bits):
                    if code >> t & 1:
                        packed[(j * bits + t) // 8] |= 1 << ((j * bits + t) % 8)
            out += struct.pack('<f', scale) + b''.join(struct.pack('<H', i) for i in keep) + bytes(packed)
        return out
    raise ValueError(f'unknown codec {c}')


def decode(payload, n, codec):
    """§5, with every check a decoder MUST make (exact size, finite values, scale range, int8 −128, sparse indices
    strictly increasing and inside the chunk, zero padding bits)"""
    def bad(why):
        raise MalformedPseudoGradientError(why)
    c = codec['codec']
    if c == 'fp32':
        if len(payload) != 4 * n:
            bad('size')
        out = list(struct.unpack(f'<{n}f', payload))
        if not all(math.isfinite(x) for x in out):
            bad('non-finite value')
        return out
    if c == 'fp16':
        if len(payload) != 2 * n:
            bad('size')
        out = list(struct.unpack(f'<{n}e', payload))
        if not all(math.isfinite(x) for x in out):
            bad('non-finite value')
        return out
    if c == 'int8':
        B = codec.get('blockSize', 64)
        nb = -(-n // B)
        if len(payload) != 4 * nb + n:
            bad('size')
        scales = struct.unpack(f'<{nb}f', payload[:4 * nb])
        if not all(math.isfinite(s) and 0 <= s <= MAX_INT8_SCALE for s in scales):
            bad('scale')
        qs = struct.unpack(f'<{n}b', payload[4 * nb:])
        if -128 in qs:
            bad('int8 -128')
        return [fround(q * scales[i // B]) for i, q in enumerate(qs)]
    if c == 'sparse':
        C, k, bits = codec.get('chunk', 4096), codec.get('topK', 64), codec.get('bits', 2)
        m = (1 << bits) - 1
        out, pos = [0.0] * n, 0
        for s in range(0, n, C):
            length = min(C, n - s)
            kc = min(k, length)
            size = 4 + 2 * kc + (kc * bits + 7) // 8
            if pos + size > len(payload):
                bad('size')
            scale = struct.unpack('<f', payload[pos:pos + 4])[0]
            if not (math.isfinite(scale) and scale >= 0):
                bad('scale')
            idx = struct.unpack(f'<{kc}H', payload[pos + 4:pos + 4 + 2 * kc])
            if any(i >= length for i in idx) or any(a >= b for a, b in zip(idx, idx[1:])):
                bad('indices')
            packed = payload[pos + 4 + 2 * kc:pos + size]
            value = int.from_bytes(packed, 'little')
            if value >> (kc * bits):
                bad('padding bits')
            for j, i in enumerate(idx):
                code = value >> (j * bits) & m
                out[s + i] = fround(scale * (2 * code - m) / m)
            pos += size
        if pos != len(payload):
            bad('size')
        return out
    raise ValueError(f'unknown codec {c}')


def error_feedback(deltas, codec, decay=1.0):
    """§5: e ← fround(fround(β·e) + Δ); payload = encode(e); e ← fround(e − decode(payload)); per round"""
    e = [0.0] * len(deltas[0])
    rounds = []
    for d in deltas:
        e = [fround(fround(decay * x) + y) for x, y in zip(e, d)]
        p = encode(e, codec)
        e = [fround(x - y) for x, y in zip(e, decode(p, len(e), codec))]
        rounds.append((p, list(e)))
    return rounds


def leader_key(rnd, peer_id):
    """§1: sha256(utf8("neuroshard/diloco/leader/v1") ‖ 0x00 ‖ u64be(r) ‖ peer id bytes), lowercase hex"""
    return hashlib.sha256(b'neuroshard/diloco/leader/v1\x00' + struct.pack('>Q', rnd) + peer_id).hexdigest()


def privacy_epsilon(rounds, z, delta):
    """§5: ρ = T/(2z²), ε = ρ + 2√(ρ ln(1/δ))"""
    rho = rounds / (2 * z * z)
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))

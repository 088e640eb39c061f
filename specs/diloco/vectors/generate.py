#!/usr/bin/env python3
"""Independent generator of specs/diloco/vectors/*.json (plain Python 3, no NeuroShard code).

float32 arithmetic is emulated with struct: f32(x) rounds a Python float (binary64) to the nearest float32,
ties to even, which is what Math.fround does. Run: python3 specs/diloco/vectors/generate.py
"""
import hashlib
import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def f32_bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]


def f32le(xs):
    return b''.join(struct.pack('<f', x) for x in xs)


def round_half_even(x):
    return round(x)  # Python's round() on floats is round-half-to-even


# ---- outer Nesterov ----------------------------------------------------------------------------------
def outer_step(theta, mom, g, lr=0.7, mu=0.9, nesterov=True):
    t, b = list(theta), list(mom)
    for i in range(len(t)):
        b[i] = f32(f32(mu * b[i]) + g[i])
        u = f32(g[i] + f32(mu * b[i])) if nesterov else b[i]
        t[i] = f32(t[i] - f32(lr * u))
    return t, b


def outer_vectors():
    out = []
    theta = [f32(x) for x in [1.0, -2.0, 0.5, 3.25]]
    mom = [0.0] * 4
    grads = [[0.1, -0.2, 0.3, 0.0], [0.05, 0.05, -0.1, 1e-3], [-0.2, 0.1, 0.0, -0.5]]
    for g in grads:
        g = [f32(x) for x in g]
        nt, nb = outer_step(theta, mom, g)
        out.append({'theta': [f32_bits(x) for x in theta], 'momentum': [f32_bits(x) for x in mom], 'g': [f32_bits(x) for x in g],
                    'lr': 0.7, 'mu': 0.9, 'theta_out': [f32_bits(x) for x in nt], 'momentum_out': [f32_bits(x) for x in nb]})
        theta, mom = nt, nb
    return out


# ---- codecs ------------------------------------------------------------------------------------------
def enc_int8(xs, block):
    scales, data = [], []
    for s in range(0, len(xs), block):
        blk = xs[s:s + block]
        absmax = max(abs(x) for x in blk)
        scale = f32(absmax / 127)
        scales.append(scale)
        if scale == 0:
            data += [0] * len(blk)
            continue
        r = 1 / scale
        data += [max(-127, min(127, int(round_half_even(x * r)))) for x in blk]
    payload = f32le(scales) + bytes((q & 0xff) for q in data)
    decoded = [f32(data[i] * scales[i // block]) for i in range(len(xs))]
    return payload, decoded


def f32_to_f16_bits(x):
    return struct.unpack('<H', struct.pack('<e', x))[0]  # IEEE half, round to nearest even


def enc_fp16(xs):
    bits = [f32_to_f16_bits(x) for x in xs]
    payload = b''.join(struct.pack('<H', b) for b in bits)
    decoded = [struct.unpack('<e', struct.pack('<H', b))[0] for b in bits]
    return payload, decoded


def level(j, bits):
    m = (1 << bits) - 1
    return (2 * j - m) / m


def enc_sparse(xs, chunk, k, bits):
    m = (1 << bits) - 1
    payload = b''
    decoded = [0.0] * len(xs)
    for s in range(0, len(xs), chunk):
        c = xs[s:s + chunk]
        kk = min(k, len(c))
        order = sorted(range(len(c)), key=lambda i: (-abs(c[i]), i))
        chosen = sorted(order[:kk])
        scale = f32(max(abs(c[i]) for i in chosen))
        codes = []
        for i in chosen:
            code = 0
            if scale > 0:
                t = (c[i] / scale + 1) * m / 2
                code = min(m, max(0, int(round_half_even(t))))
            codes.append(code)
        packed = bytearray((kk * bits + 7) // 8)
        for j, code in enumerate(codes):
            for b in range(bits):
                if (code >> b) & 1:
                    packed[(j * bits + b) >> 3] |= 1 << ((j * bits + b) & 7)
        payload += struct.pack('<f', scale) + b''.join(struct.pack('<H', i) for i in chosen) + bytes(packed)
        for i, code in zip(chosen, codes):
            decoded[s + i] = f32(scale * level(code, bits))
    return payload, decoded


def codec_vectors():
    xs = [f32(x) for x in [0.1, -0.9, 0.3, 0.05, 0.6, 0.0, 0.0, -0.2, 1.5, -1.5, 2.5e-3, 7.0, -3.3]]
    out = []
    out.append({'codec': {'codec': 'fp32'}, 'input': [f32_bits(x) for x in xs], 'payload': f32le(xs).hex(), 'decoded': [f32_bits(x) for x in xs]})
    p, d = enc_fp16(xs)
    out.append({'codec': {'codec': 'fp16'}, 'input': [f32_bits(x) for x in xs], 'payload': p.hex(), 'decoded': [f32_bits(x) for x in d]})
    for block in (4, 64):
        p, d = enc_int8(xs, block)
        out.append({'codec': {'codec': 'int8', 'blockSize': block}, 'input': [f32_bits(x) for x in xs], 'payload': p.hex(), 'decoded': [f32_bits(x) for x in d]})
    for chunk, k, bits in ((4, 2, 2), (5, 3, 3), (16, 1, 1), (8, 8, 8)):
        p, d = enc_sparse(xs, chunk, k, bits)
        out.append({'codec': {'codec': 'sparse', 'chunk': chunk, 'topK': k, 'bits': bits}, 'input': [f32_bits(x) for x in xs], 'payload': p.hex(), 'decoded': [f32_bits(x) for x in d]})
    return out


def error_feedback_vector():
    """Three rounds of e ← e + Δ; send C(e); e ← e − D(C(e)) with sparse (chunk 4, top-1, 2 bits)"""
    deltas = [[f32(math.sin(r * 8 + i) / 8) for i in range(8)] for r in range(3)]
    e = [0.0] * 8
    rounds = []
    for d in deltas:
        e = [f32(f32(1.0 * e[i]) + d[i]) for i in range(8)]
        p, dec = enc_sparse(e, 4, 1, 2)
        e = [f32(e[i] - dec[i]) for i in range(8)]
        rounds.append({'delta': [f32_bits(x) for x in d], 'payload': p.hex(), 'residual_after': [f32_bits(x) for x in e]})
    return {'codec': {'codec': 'sparse', 'chunk': 4, 'topK': 1, 'bits': 2}, 'decay': 1, 'rounds': rounds}


def malformed_vectors():
    out = []
    p, _ = enc_int8([1.0, -1.0, 0.5, 0.25], 2)
    out.append({'why': 'int8 payload one byte short', 'codec': {'codec': 'int8', 'blockSize': 2}, 'elements': 4, 'payload': p[:-1].hex(), 'error': 'MalformedPseudoGradientError'})
    bad = bytearray(p); bad[8] = 0x80
    out.append({'why': 'int8 value -128', 'codec': {'codec': 'int8', 'blockSize': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    bad = bytearray(p); bad[0:4] = struct.pack('<f', float('nan'))
    out.append({'why': 'int8 NaN scale', 'codec': {'codec': 'int8', 'blockSize': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    bad = bytearray(p); bad[0:4] = struct.pack('<f', -0.5)
    out.append({'why': 'int8 negative scale', 'codec': {'codec': 'int8', 'blockSize': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    out.append({'why': 'fp16 +Inf', 'codec': {'codec': 'fp16'}, 'elements': 1, 'payload': '007c', 'error': 'MalformedPseudoGradientError'})
    out.append({'why': 'fp32 NaN', 'codec': {'codec': 'fp32'}, 'elements': 1, 'payload': '0000c07f', 'error': 'MalformedPseudoGradientError'})
    sp, _ = enc_sparse([1.0, 2.0, 3.0, 4.0], 4, 2, 2)
    bad = bytearray(sp); bad[6:8] = bad[4:6]
    out.append({'why': 'sparse repeated index', 'codec': {'codec': 'sparse', 'chunk': 4, 'topK': 2, 'bits': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    bad = bytearray(sp); bad[4:6] = struct.pack('<H', 4)
    out.append({'why': 'sparse index past the chunk', 'codec': {'codec': 'sparse', 'chunk': 4, 'topK': 2, 'bits': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    bad = bytearray(sp); bad[8] |= 0x80
    out.append({'why': 'sparse padding bits set', 'codec': {'codec': 'sparse', 'chunk': 4, 'topK': 2, 'bits': 2}, 'elements': 4, 'payload': bytes(bad).hex(), 'error': 'MalformedPseudoGradientError'})
    return out


def leader_vectors():
    out = []
    for rnd, peer in ((0, '00240801122000000000000000000000000000000000000000000000000000000000000000'), (7, '002408011220' + 'ab' * 32)):
        h = hashlib.sha256(b'neuroshard/diloco/leader/v1' + b'\x00' + struct.pack('>Q', rnd) + bytes.fromhex(peer)).hexdigest()
        out.append({'round': rnd, 'peer': peer, 'key': h})
    return out


def privacy_vectors():
    out = []
    for rounds, z, delta in ((1, 1.0, 1e-5), (100, 4.0, 1e-5), (500, 10.0, 1e-6)):
        rho = rounds / (2 * z * z)
        out.append({'rounds': rounds, 'noiseMultiplier': z, 'delta': delta, 'epsilon': rho + 2 * math.sqrt(rho * math.log(1 / delta))})
    return out


def main():
    doc = {
        'outer': outer_vectors(),
        'codecs': codec_vectors(),
        'errorFeedback': error_feedback_vector(),
        'malformed': malformed_vectors(),
        'leader': leader_vectors(),
        'privacy': privacy_vectors()
    }
    with open(os.path.join(HERE, 'vectors.json'), 'w') as f:
        json.dump(doc, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()

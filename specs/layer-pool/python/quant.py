"""layer-pool §2.4 (1.7.1) rules 2-3: the weights a quantized span multiplies, written from the spec text.

Standard library only. A matrix is given as its float32 values row-major in its stored layout; `groups_along`
says which index runs along the groups (the matrix's input dimension): 'rows' for an `[in, out]` projection (a
column's values form the groups), 'cols' for the embedding table `[vocab, d]` (a row's values)."""
import math
import struct


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def _group(values, fmt):
    """(scale, codes) of one zero-padded group: rule 3"""
    if fmt == 'int4':
        m = 0.0
        for x in values:
            if abs(x) > abs(m):   # the first one on a tie
                m = x
        s = f32(m / -8)
        inv = 1 / s if s != 0 else 0.0
        return s, [min(15, math.floor(x * inv + 8.5)) - 8 for x in values]
    if fmt == 'int8':
        s = f32(max(abs(x) for x in values) / 127)
        inv = 1 / s if s != 0 else 0.0
        return s, [max(-127, min(127, math.floor(x * inv + 0.5))) for x in values]
    raise ValueError(f'unknown format {fmt}')


def dequantized(values, rows, cols, fmt, block, groups_along):
    """The float32 values (same layout) that the quantized matrix stands for: each value q · s as binary32"""
    out = [0.0] * (rows * cols)
    length, count = (rows, cols) if groups_along == 'rows' else (cols, rows)
    at = (lambda line, k: k * cols + line) if groups_along == 'rows' else (lambda line, k: line * cols + k)
    for line in range(count):
        for k0 in range(0, length, block):
            n = min(block, length - k0)
            group = [values[at(line, k0 + j)] for j in range(n)] + [0.0] * (block - n)
            s, q = _group(group, fmt)
            for j in range(n):
                out[at(line, k0 + j)] = f32(q[j] * s)
    return out

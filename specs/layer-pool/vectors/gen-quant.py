#!/usr/bin/env python3
"""quant.json: layer-pool §2.4 (1.7.1) rules 2-3 — the weights a quantized span multiplies, for int4 and int8 at
each group size, an `[in, out]` projection (groups along a column) and an embedding table `[vocab, d]` (groups
along a row, the rows a lookup reads), with inputs that exercise the rules: ties for the largest magnitude (the
first one wins), an all-zero group (scale 0), a group running past the dimension's end (zero-padded), values on
the rounding boundaries. Expected values from specs/layer-pool/python/quant.py (the spec text); float32 as bits."""
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import quant as Q  # noqa: E402


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def matrix(rows, cols, seed):
    rnd = random.Random(seed)
    return [Q.f32(rnd.gauss(0, 0.5)) for _ in range(rows * cols)]


def special(rows, cols, groups_along):
    """ties, zeros and boundary values placed in the first groups"""
    v = matrix(rows, cols, 7)
    at = (lambda line, k: k * cols + line) if groups_along == 'rows' else (lambda line, k: line * cols + k)
    length = rows if groups_along == 'rows' else cols
    for k in range(length):
        v[at(0, k)] = 0.0                                      # line 0: an all-zero group (scale 0)
        v[at(1, k)] = Q.f32(((k % 17) - 8) / 8)                # line 1: -1 and +1 tie in magnitude (the first wins)
        v[at(2, k)] = Q.f32([1.0, -1.0][k % 2] * (0.5 + (k % 5) / 16))  # line 2: values on half-code steps
    return v


cases = []
for fmt in ('int4', 'int8'):
    for block in (32, 64, 128):
        for name, rows, cols, along in (('projection [in 200, out 3]', 200, 3, 'rows'), ('embedding table [vocab 5, d 150]', 5, 150, 'cols')):
            v = special(rows, cols, along)
            cases.append({'name': f'{fmt}, {block}-value groups, {name}', 'format': fmt, 'blockSize': block, 'rows': rows, 'cols': cols,
                          'groupsAlong': along, 'values': bits(v), 'dequantized': bits(Q.dequantized(v, rows, cols, fmt, block, along))})

out = {'description': 'layer-pool README §2.4 (1.7.1) rules 2-3: `values` (float32 bits, row-major, `rows` × `cols`) quantized with '
                      '`format` in groups of `blockSize` consecutive values along the input dimension (`groupsAlong`: `rows` for an '
                      '[in, out] projection, a column per group line; `cols` for the embedding table [vocab, d], a row per group line), '
                      'zero-padded past its end; `dequantized`: the float32 bits of the values the quantized matrix stands for (q · s). '
                      'Written by gen-quant.py from specs/layer-pool/python/quant.py.',
       'cases': cases}
with open(os.path.join(HERE, 'quant.json'), 'w') as fh:
    fh.write('{\n "description": ' + json.dumps(out['description']) + ',\n "cases": [\n  ' + ',\n  '.join(json.dumps(c) for c in cases) + '\n ]\n}\n')
print(f'quant.json: {len(cases)} cases')

#!/usr/bin/env python3
"""Writes encoding.json: the tensor-frame encoder's cases (README.md "Encoding rules"), Python standard library only,
from the spec text (specs/tensor-frame/python/tensor_frame.py `encode`).

- every valid frame of this folder (the decoder's vectors) with its tensor, taken from the vector's decoded fields
  (dtype, shape, name, values / bits, blockSize, scales), not from the frame bytes; the frame this program writes
  for that tensor must equal the vector's frame, or it refuses to write anything;
- boundary tensors (a 1024-byte name, the largest int8 scale, an empty name, a signalling NaN) with their frames;
- one refusal per row of the encoder's error table.

    python3 encoding.py           # writes encoding.json next to this file
"""
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import tensor_frame as TF  # noqa: E402


def f32(x):
    if x == 'NaN':
        return struct.pack('<I', 0x7fc00000)   # the quiet NaN of float32-special (README "Test vectors")
    if x == 'Infinity':
        return struct.pack('<f', math.inf)
    if x == '-Infinity':
        return struct.pack('<f', -math.inf)
    if x == '-0':
        return struct.pack('<f', -0.0)
    return struct.pack('<f', x)


def tensor_of(v):
    """the tensor a valid vector describes, as the adapter operation takes it"""
    dt = v['dtype']
    if dt == 'float32':
        data = b''.join(f32(x) for x in v['values'])
    elif dt in ('float16', 'bfloat16'):
        data = struct.pack(f'<{len(v["bits"])}H', *v['bits'])
    elif dt == 'int32':
        data = struct.pack(f'<{len(v["values"])}i', *v['values'])
    elif dt == 'int64':
        data = struct.pack(f'<{len(v["values"])}q', *[int(x) for x in v['values']])
    else:
        data = struct.pack(f'<{len(v["values"])}b', *v['values'])
    t = {'dtype': dt, 'shape': v['shape'], 'dataHex': data.hex()}
    if v.get('name') is not None:
        t['name'] = v['name']
    if dt == 'int8':
        t['blockSize'] = v['blockSize']
        t['scalesHex'] = b''.join(f32(x) for x in v['scales']).hex()
    return t


def encode(t):
    return TF.encode(t['dtype'], t['shape'], t.get('name'), bytes.fromhex(t['dataHex']), t.get('blockSize', 0),
                     bytes.fromhex(t.get('scalesHex', '')))


def u32(*bits):
    return struct.pack(f'<{len(bits)}I', *bits).hex()


def main():
    cases = []
    for f in sorted(os.listdir(HERE)):
        if not f.endswith('.json') or f.startswith(('convert-', 'encoding')):
            continue
        with open(os.path.join(HERE, f), encoding='utf-8') as fh:
            v = json.load(fh)
        if 'error' in v:
            continue
        t = tensor_of(v)
        frame = encode(t).hex()
        if frame != v['frame']:
            sys.exit(f'{f}: the frame written from the spec differs from the vector\'s frame')
        cases.append({'name': f'{f} (re-encodes to its frame)', 'tensor': t, 'frame': frame})

    one = u32(0x3f800000)
    valid = [
        ('a name of exactly 1024 UTF-8 bytes (512 × "é", 2 bytes each)', {'dtype': 'float32', 'shape': [1], 'name': 'é' * 512, 'dataHex': one}),
        ('an empty name is no name (nameLength 0)', {'dtype': 'float32', 'shape': [1], 'name': '', 'dataHex': one}),
        ('a signalling NaN keeps its bits (0x7fa00001)', {'dtype': 'float32', 'shape': [2], 'dataHex': u32(0x7fa00001, 0xffc00000)}),
        ('int8: the largest scale MAX_INT8_SCALE (0x7c010203) and +0 are valid', {'dtype': 'int8', 'shape': [3], 'blockSize': 2, 'dataHex': '7f8100', 'scalesHex': u32(0x7c010203, 0)}),
        ('int8: blockSize 2^24', {'dtype': 'int8', 'shape': [1], 'blockSize': 2 ** 24, 'dataHex': '01', 'scalesHex': u32(0x3c010204)}),
        ('rank 8, a zero dim: no elements', {'dtype': 'int32', 'shape': [1, 2, 3, 4, 5, 6, 7, 0], 'dataHex': ''}),
        ('rank 0: one element', {'dtype': 'int64', 'shape': [], 'dataHex': struct.pack('<q', -2).hex()}),
    ]
    for why, t in valid:
        cases.append({'name': why, 'tensor': t, 'frame': encode(t).hex()})

    refusals = [
        ('dtype "float64" is not in the table (rule 4)', {'dtype': 'float64', 'shape': [1], 'dataHex': '00' * 8}, 'UnknownDtypeError'),
        ('9 dims (rule 5)', {'dtype': 'float32', 'shape': [1] * 9, 'dataHex': one}, 'InvalidShapeError'),
        ('a dim of 2^53 (rule 9)', {'dtype': 'int8', 'shape': [2 ** 53], 'blockSize': 1, 'dataHex': '', 'scalesHex': ''}, 'InvalidShapeError'),
        ('dims whose product is 2^54 (rule 9)', {'dtype': 'float32', 'shape': [2 ** 27, 2 ** 27], 'dataHex': ''}, 'InvalidShapeError'),
        ('a negative dim', {'dtype': 'float32', 'shape': [-1], 'dataHex': ''}, 'InvalidShapeError'),
        ('5 elements for shape [2, 3]', {'dtype': 'float32', 'shape': [2, 3], 'dataHex': one * 5}, 'InvalidShapeError'),
        ('7 elements for shape [2, 3]', {'dtype': 'int32', 'shape': [2, 3], 'dataHex': one * 7}, 'InvalidShapeError'),
        ('int8: 1 scale for 3 values in blocks of 2', {'dtype': 'int8', 'shape': [3], 'blockSize': 2, 'dataHex': '010203', 'scalesHex': u32(0x3f800000)}, 'InvalidShapeError'),
        ('int8: 3 scales for 3 values in blocks of 2', {'dtype': 'int8', 'shape': [3], 'blockSize': 2, 'dataHex': '010203', 'scalesHex': u32(0x3f800000) * 3}, 'InvalidShapeError'),
        ('int8: blockSize 0 (rule 6)', {'dtype': 'int8', 'shape': [1], 'blockSize': 0, 'dataHex': '01', 'scalesHex': u32(0x3f800000)}, 'InvalidParametersError'),
        ('int8: blockSize 2^24 + 1 (rule 6)', {'dtype': 'int8', 'shape': [1], 'blockSize': 2 ** 24 + 1, 'dataHex': '01', 'scalesHex': u32(0x3f800000)}, 'InvalidParametersError'),
        ('int8: a negative scale -0.5 (rule 14)', {'dtype': 'int8', 'shape': [2], 'blockSize': 1, 'dataHex': '0101', 'scalesHex': u32(0x3f800000, 0xbf000000)}, 'MalformedFrameError'),
        ('int8: a scale of -0 (rule 14: the sign bit)', {'dtype': 'int8', 'shape': [1], 'blockSize': 1, 'dataHex': '00', 'scalesHex': u32(0x80000000)}, 'MalformedFrameError'),
        ('int8: a NaN scale (rule 14)', {'dtype': 'int8', 'shape': [1], 'blockSize': 1, 'dataHex': '01', 'scalesHex': u32(0x7fc00000)}, 'MalformedFrameError'),
        ('int8: an infinite scale (rule 14)', {'dtype': 'int8', 'shape': [1], 'blockSize': 1, 'dataHex': '01', 'scalesHex': u32(0x7f800000)}, 'MalformedFrameError'),
        ('int8: a scale one ulp above MAX_INT8_SCALE (0x7c010204, rule 14)', {'dtype': 'int8', 'shape': [1], 'blockSize': 1, 'dataHex': '01', 'scalesHex': u32(0x7c010204)}, 'MalformedFrameError'),
        ('int8: the value -128 (rule 14)', {'dtype': 'int8', 'shape': [3], 'blockSize': 4, 'dataHex': '017f80', 'scalesHex': u32(0x3f800000)}, 'MalformedFrameError'),
        ('a name of 1025 bytes (rule 7)', {'dtype': 'float32', 'shape': [1], 'name': 'a' * 1025, 'dataHex': one}, 'InvalidNameError'),
        ('a name of 513 characters but 1026 UTF-8 bytes (rule 7 counts bytes)', {'dtype': 'float32', 'shape': [1], 'name': 'é' * 513, 'dataHex': one}, 'InvalidNameError'),
        ('a name holding a lone surrogate U+D800 (no UTF-8 encoding, rule 12)', {'dtype': 'float32', 'shape': [1], 'name': 'x\ud800', 'dataHex': one}, 'InvalidNameError'),
    ]
    for why, t, err in refusals:
        try:
            encode(t)
        except TF.FrameError as e:
            if e.name != err:
                sys.exit(f'{why}: the spec\'s encoder says {e.name}, the case says {err}')
        else:
            sys.exit(f'{why}: the spec\'s encoder wrote a frame')
        cases.append({'name': why, 'tensor': t, 'error': err})

    out = {'description': 'tensor-frame "Encoding rules": tensors (dtype, shape, name, element bytes little-endian row-major as dataHex, '
                          'int8 blockSize and scale bytes as scalesHex) and the one frame each has, or the encoder\'s refusal. Written by encoding.py.',
           'cases': cases}
    with open(os.path.join(HERE, 'encoding.json'), 'w', encoding='utf-8') as fh:
        fh.write(json.dumps(out, indent=1) + '\n')
    print(f'wrote encoding.json: {len(cases)} cases')


if __name__ == '__main__':
    main()

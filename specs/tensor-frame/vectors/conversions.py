#!/usr/bin/env python3
"""Writes the convert-*.json vectors (float32 → float16 / bfloat16 conversion, NaN and overflow; int8
refusing non-finite input) from the spec text, in Python with only the standard library: float16 through
struct's IEEE binary16 'e' format, bfloat16 by exact rational rounding.
Run: python3 specs/tensor-frame/vectors/conversions.py [--write]   (without --write: check the files)"""
import sys
import json, math, os, struct
from fractions import Fraction

here = os.path.dirname(os.path.abspath(__file__))

def f32(bits):
    return struct.unpack('<f', struct.pack('<I', bits))[0]

def f16(bits32):
    """(bits, overflow): float16 bits of a float32, round to nearest even; None for NaN (any quiet NaN)"""
    x = f32(bits32)
    if math.isnan(x):
        return None, False
    try:
        return struct.unpack('<H', struct.pack('<e', x))[0], False
    except OverflowError:
        return (0xfc00 if x < 0 else 0x7c00), True

def bf16_value(b16):
    return f32(b16 << 16)

def bf16(bits32):
    if (bits32 & 0x7fffffff) > 0x7f800000:
        return (bits32 >> 16) | 0x0040, False       # NaN: top bits, quiet bit forced (normative)
    x = f32(bits32)
    if math.isinf(x):
        return bits32 >> 16, False
    lo = bits32 >> 16
    hi = lo + 1
    fx = Fraction(x)
    vl = Fraction(bf16_value(lo))
    vh = bf16_value(hi)
    if math.isinf(vh):                              # the next pattern up is ±Infinity
        top = Fraction(2) ** 128                    # where Infinity would sit if the exponent went on
        vh = top if x > 0 else -top
    vh = Fraction(vh)
    dl, dh = abs(fx - vl), abs(fx - vh)
    o = lo if dl < dh or (dl == dh and lo % 2 == 0) else hi
    overflow = (o & 0x7fff) == 0x7f80
    return o, overflow

CASES = [
    ('max-finite', 0x477fe000), ('just-below-overflow', 0x477fefff), ('overflow-65520', 0x477ff000), ('overflow-negative', 0xc77ff000),
    ('float32-max', 0x7f7fffff), ('infinity', 0x7f800000), ('negative-infinity', 0xff800000), ('quiet-nan', 0x7fc00000),
    ('signaling-nan-low-payload', 0x7f800001), ('negative-nan', 0xffc00000), ('negative-zero', 0x80000000),
    ('smallest-subnormal', 0x33800000), ('half-smallest-subnormal-ties-to-zero', 0x33000000), ('three-quarters-subnormal', 0x33400000),
    ('tie-to-even-down', 0x3f801000), ('tie-to-even-up', 0x3f803000), ('bf16-tie-down', 0x3f808000), ('bf16-tie-up', 0x3f818000),
    ('bf16-overflow-boundary', 0x7f7f8000), ('bf16-below-overflow', 0x7f7f7fff), ('one', 0x3f800000),
]

WRITE = '--write' in sys.argv

def emit(name, v):
    path = os.path.join(here, name)
    if WRITE:
        with open(path, 'w') as fh:
            json.dump(v, fh, indent=2, ensure_ascii=False)
            fh.write('\n')
    else:
        assert json.load(open(path, encoding='utf-8')) == v, name

def main():
    n = 0
    for name, b in CASES:
        for fmt in ('float16', 'bfloat16'):
            bits, over = f16(b) if fmt == 'float16' else bf16(b)
            v = {'description': f'float32 0x{b:08x} → {fmt}: {name.replace("-", " ")}', 'format': fmt, 'float32Bits': f'{b:08x}'}
            if over:
                v['error'] = 'NonFiniteValueError'
                v['bitsWithInfinity'] = bits
            elif bits is None:
                v['bits'] = 'NaN'
            else:
                v['bits'] = bits
            emit(f'convert-{fmt}-{name}.json', v)
            n += 1
    for name, value in (('nan', 'NaN'), ('infinity', 'Infinity'), ('negative-infinity', '-Infinity')):
        emit(f'convert-int8-{name}.json', {'description': f'int8 quantization refuses {value}', 'format': 'int8', 'source': [1.5, value, -2], 'blockSize': 64, 'error': 'NonFiniteValueError'})
        n += 1
    print(f'{"wrote" if WRITE else "checked"} {n} conversion vectors')

main()

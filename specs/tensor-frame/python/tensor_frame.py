"""Tensor frames (specs/tensor-frame/README.md) in Python, stdlib only, written from the spec text: the decoding
rules 1-14 in their normative order, the content hash, and int8 quantization. Used by the conformance runner's
Python adapter (specs/conformance/adapters/python.py)."""
import hashlib
import math
import struct

DTYPES = {1: ('float32', 4), 2: ('float16', 2), 3: ('bfloat16', 2), 4: ('int8', None), 5: ('int32', 4), 6: ('int64', 8)}
MAX_SAFE = 2 ** 53 - 1
MAX_INT8_SCALE = struct.unpack('<f', struct.pack('<I', 0x7c010203))[0]
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class FrameError(Exception):
    def __init__(self, name, message):
        super().__init__(message)
        self.name = name


def align8(n):
    return (n + 7) // 8 * 8


def fround(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def decode(b: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    if len(b) < 16:
        raise FrameError('FrameLengthError', 'shorter than the fixed header')
    if b[:4] != b'NSTF':
        raise FrameError('InvalidMagicError', 'magic is not NSTF')
    if b[4] != 1:
        raise FrameError('UnsupportedProtocolVersionError', f'version {b[4]}')
    if b[5] not in DTYPES:
        raise FrameError('UnknownDtypeError', f'dtype code {b[5]}')
    dtype, size = DTYPES[b[5]]
    rank, flags = b[6], b[7]
    if rank > 8:
        raise FrameError('InvalidShapeError', f'rank {rank}')
    name_len, reserved, block = struct.unpack('<HHI', b[8:16])
    if flags or reserved or (dtype == 'int8' and not 1 <= block <= 2 ** 24) or (dtype != 'int8' and block != 0):
        raise FrameError('MalformedFrameError', 'flags, reserved or blockSize')
    if name_len > 1024:
        raise FrameError('InvalidNameError', 'name longer than 1024 bytes')
    head = 16 + 8 * rank + name_len
    offset = align8(head)
    if len(b) < offset:
        raise FrameError('FrameLengthError', 'shorter than its header')
    dims = list(struct.unpack(f'<{rank}Q', b[16:16 + 8 * rank]))
    numel = 1
    for d in dims:
        if d > MAX_SAFE:
            raise FrameError('InvalidShapeError', 'a dim above 2^53 - 1')
        numel *= d
    if numel > MAX_SAFE:
        raise FrameError('InvalidShapeError', 'more than 2^53 - 1 elements')
    n_blocks = -(-numel // block) if dtype == 'int8' else 0
    payload = 4 * n_blocks + numel if dtype == 'int8' else size * numel
    if offset + payload > max_bytes:
        raise FrameError('FrameTooLargeError', 'frame larger than maxBytes')
    if any(b[head:offset]):
        raise FrameError('MalformedFrameError', 'non-zero padding')
    try:
        name = b[16 + 8 * rank:head].decode('utf-8') if name_len else None
    except UnicodeDecodeError:
        raise FrameError('InvalidNameError', 'name is not UTF-8')
    if len(b) != offset + payload:
        raise FrameError('FrameLengthError', 'truncated or trailing bytes')
    p = b[offset:]
    out = {'dtype': dtype, 'shape': dims, 'name': name, 'hash': hashlib.sha256(b).hexdigest()}
    if dtype == 'float32':
        out['values'] = list(struct.unpack(f'<{numel}f', p))
    elif dtype in ('float16', 'bfloat16'):
        out['bits'] = list(struct.unpack(f'<{numel}H', p))
    elif dtype == 'int32':
        out['values'] = list(struct.unpack(f'<{numel}i', p))
    elif dtype == 'int64':
        out['values'] = [str(x) for x in struct.unpack(f'<{numel}q', p)]
    else:
        scales = list(struct.unpack(f'<{n_blocks}f', p[:4 * n_blocks]))
        for s, bits in zip(scales, struct.unpack(f'<{n_blocks}I', p[:4 * n_blocks])):
            if bits >> 31 or math.isnan(s) or math.isinf(s) or s > MAX_INT8_SCALE:
                raise FrameError('MalformedFrameError', 'invalid int8 scale')
        values = list(struct.unpack(f'<{numel}b', p[4 * n_blocks:]))
        if -128 in values:
            raise FrameError('MalformedFrameError', 'int8 value -128')
        out.update(values=values, scales=scales, blockSize=block)
    return out


CODES = {name: code for code, (name, _) in DTYPES.items()}


def encode(dtype, shape, name, data: bytes, block_size=0, scales: bytes = b''):
    """§ Encoding rules: the one frame of a tensor given by dtype name, dims, name (str or None), the element
    bytes (little-endian, row-major) and for int8 blockSize and the scales' bytes; or the table's refusal"""
    if dtype not in CODES:
        raise FrameError('UnknownDtypeError', f'dtype {dtype!r}')
    if len(shape) > 8:
        raise FrameError('InvalidShapeError', f'rank {len(shape)}')
    numel = 1
    for d in shape:
        if not isinstance(d, int) or d < 0 or d > MAX_SAFE:
            raise FrameError('InvalidShapeError', f'dim {d}')
        numel *= d
    if numel > MAX_SAFE:
        raise FrameError('InvalidShapeError', 'more than 2^53 - 1 elements')
    size = DTYPES[CODES[dtype]][1] or 1
    if len(data) != size * numel:
        raise FrameError('InvalidShapeError', f'{len(data)} bytes of elements for {numel} elements')
    if dtype == 'int8':
        if not 1 <= block_size <= 2 ** 24:
            raise FrameError('InvalidParametersError', f'block size {block_size}')
        n_blocks = -(-numel // block_size)
        if len(scales) != 4 * n_blocks:
            raise FrameError('InvalidShapeError', f'{len(scales) // 4} scales for {n_blocks} blocks')
        for bits in struct.unpack(f'<{n_blocks}I', scales):
            s = struct.unpack('<f', struct.pack('<I', bits))[0]
            if bits >> 31 or math.isnan(s) or math.isinf(s) or s > MAX_INT8_SCALE:
                raise FrameError('MalformedFrameError', 'invalid int8 scale')
        if 0x80 in data:
            raise FrameError('MalformedFrameError', 'int8 value -128')
    else:
        block_size, scales = 0, b''
    try:
        name_bytes = (name or '').encode('utf-8')
    except UnicodeEncodeError:
        raise FrameError('InvalidNameError', 'name has no UTF-8 encoding')
    if len(name_bytes) > 1024:
        raise FrameError('InvalidNameError', 'name longer than 1024 bytes')
    head = struct.pack('<4sBBBBHHI', b'NSTF', 1, CODES[dtype], len(shape), 0, len(name_bytes), 0, block_size)
    head += b''.join(struct.pack('<Q', d) for d in shape) + name_bytes
    return head + bytes(align8(len(head)) - len(head)) + scales + data


def quantize_int8(xs, block_size: int):
    """§ int8 quantization: (values, scales)"""
    xs = [fround(x) for x in xs]
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        raise FrameError('NonFiniteValueError', 'int8 quantization of a non-finite value')
    values, scales = [], []
    for start in range(0, len(xs), block_size):
        block = xs[start:start + block_size]
        absmax = max(abs(x) for x in block)
        scale = min(fround(absmax / 127), MAX_INT8_SCALE)
        scales.append(scale)
        if scale == 0:
            values += [0] * len(block)
        else:
            r = 1 / scale
            values += [max(-127, min(127, round(x * r))) for x in block]
    return values, scales


def json_float(x):
    """a float as the vectors write it: a number, or "NaN", "Infinity", "-Infinity", "-0\""""
    if math.isnan(x):
        return 'NaN'
    if math.isinf(x):
        return 'Infinity' if x > 0 else '-Infinity'
    if x == 0 and math.copysign(1, x) < 0:
        return '-0'
    return x


# ---- float32 -> float16 / bfloat16 (round to nearest, ties to even) ----
def to_float16(bits32, overflow='error'):
    """float16 bits of a binary32 (given as bits); a finite value that rounds to ±Infinity is NonFiniteValueError
    unless overflow='infinity'; NaN gives a quiet NaN"""
    x = struct.unpack('<f', struct.pack('<I', bits32))[0]
    if math.isnan(x):
        return 0x7e00 | ((bits32 >> 16) & 0x8000)
    try:
        return struct.unpack('<H', struct.pack('<e', x))[0]
    except OverflowError:
        if overflow != 'infinity':
            raise FrameError('NonFiniteValueError', 'float16 overflow')
        return 0xfc00 if x < 0 else 0x7c00


def to_bfloat16(bits32, overflow='error'):
    """bfloat16 bits of a binary32: NaN keeps its top 16 bits with the quiet bit set; otherwise the upper half rounded
    to nearest, ties to even, on the bit pattern (the carry goes into the exponent)"""
    if (bits32 & 0x7fffffff) > 0x7f800000:
        return (bits32 >> 16) | 0x0040
    if (bits32 & 0x7fffffff) == 0x7f800000:
        return bits32 >> 16
    lo, rest = bits32 >> 16, bits32 & 0xffff
    out = lo + 1 if rest > 0x8000 or (rest == 0x8000 and lo & 1) else lo
    if (out & 0x7fff) == 0x7f80 and overflow != 'infinity':
        raise FrameError('NonFiniteValueError', 'bfloat16 overflow')
    return out


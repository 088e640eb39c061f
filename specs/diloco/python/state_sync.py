"""A client's checks of a state download, specs/diloco/README.md §4 (1.2.1), written from the spec text: the header
answer, the ranges in order, then the blob `u64le(round) ‖ θ (f32le × n) ‖ momentum (f32le × n)`."""
import hashlib
import math
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'layer-pool', 'python'))
import layer_pool as LP  # noqa: E402  (model §hash contentHash)


class StateSyncError(Exception):
    name = 'StateSyncError'


def weights_hash(layout, theta_bytes):
    """contentHash of θ cut into the span's parameters (`layout`: [{name, shape}] in flat order)"""
    tensors, at = [], 0
    for p in layout:
        n = 4 * math.prod(p['shape'])
        tensors.append((p['name'], 'F32', p['shape'], theta_bytes[at:at + n]))
        at += n
    return LP.content_hash(tensors)


def download(n, layout, range_bytes, answers):
    """`answers`: the header answer, then one per range asked ({status, data (bytes), total, round, baseHash, stateHash}).
    Returns {'round', 'theta', 'momentum' (bytes), 'baseHash'} or {'restart': True}; raises StateSyncError"""
    it = iter(answers)
    head = next(it)
    if head['status'] != 'OK':
        raise StateSyncError('no state')
    if head['total'] != 8 + 8 * n:
        raise StateSyncError('total is not 8 + 8n')
    blob, off = bytearray(), 0
    while off < head['total']:
        length = min(range_bytes, head['total'] - off)
        r = next(it)
        if r['status'] != 'OK' or len(r['data']) != length:
            raise StateSyncError('a bad range')
        if r['stateHash'] != head['stateHash']:
            return {'restart': True}
        blob += r['data']
        off += length
    if hashlib.sha256(bytes(blob)).digest() != head['stateHash']:
        raise StateSyncError('sha256(blob) is not state_hash')
    rnd = struct.unpack_from('<Q', blob, 0)[0]
    values = struct.unpack_from(f'<{2 * n}f', blob, 8)
    if rnd > 2 ** 53 - 1 or not all(math.isfinite(v) for v in values):
        raise StateSyncError('a round above 2^53 - 1 or a value not finite')
    if rnd != head['round']:
        raise StateSyncError('the blob\'s round is not the answer\'s')
    theta = bytes(blob[8:8 + 4 * n])
    if weights_hash(layout, theta) != head['baseHash'].hex():
        raise StateSyncError('contentHash(θ) is not base_hash')
    return {'round': rnd, 'theta': theta, 'momentum': bytes(blob[8 + 4 * n:]), 'baseHash': head['baseHash']}

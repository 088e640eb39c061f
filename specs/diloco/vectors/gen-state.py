#!/usr/bin/env python3
"""Writes specs/diloco/vectors/state.json: a client's state downloads (README §4, 1.2.1): the answers a server gives
to the header request and to each range, and what the client makes of them — the state, a restart, or
StateSyncError. Standard library only.

Every expected outcome below is written by hand from the spec text; the state of a valid download is the θ and
momentum the case wrote into the blob. The script checks every case with the Python client written from the spec
(../python/state_sync.py) and writes nothing if they disagree.

    python3 specs/diloco/vectors/gen-state.py
"""
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import state_sync as S  # noqa: E402

LAYOUT = [{'name': 'a.weight', 'shape': [2, 2]}, {'name': 'b.bias', 'shape': [2]}]   # flat order (byte-wise names)
N = 6
RANGE = 16   # the blob is 8 + 48 = 56 bytes: ranges of 16, 16, 16 and 8
THETA = [0.5, -1.25, 2.0, 0.0, 3.5, -0.125]
MOMENTUM = [0.25, 0.0, -0.5, 1.0, -2.0, 0.75]


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def blob(rnd=7, theta=THETA, momentum=MOMENTUM):
    return struct.pack('<Q', rnd) + struct.pack(f'<{N}f', *theta) + struct.pack(f'<{N}f', *momentum)


def base_hash(theta=THETA):
    return bytes.fromhex(S.weights_hash(LAYOUT, struct.pack(f'<{N}f', *theta)))


def answers(b=None, head=None, ranges=None, rnd=7, theta=THETA):
    """the header answer and the ranges of blob `b` as an honest server writes them; `head` and `ranges` (index -> fields)
    override fields"""
    b = blob() if b is None else b
    state_hash = hashlib.sha256(b).digest()
    h = {'status': 'OK', 'data': b'', 'total': len(b), 'round': rnd, 'baseHash': base_hash(theta), 'stateHash': state_hash}
    h.update(head or {})
    out = [h]
    for i, off in enumerate(range(0, len(b), RANGE)):
        r = {'status': 'OK', 'data': b[off:off + RANGE], 'total': len(b), 'round': rnd, 'baseHash': h['baseHash'], 'stateHash': state_hash}
        r.update((ranges or {}).get(i, {}))
        out.append(r)
    return out


OTHER = hashlib.sha256(b'another state').digest()
NAN = float('nan')
ERR = 'StateSyncError'
STATE = {'round': 7, 'theta': bits(THETA), 'momentum': bits(MOMENTUM)}
CASES = [
    ('an honest server: the round, θ and momentum of the blob', answers(), STATE),
    ('the header answer NOT_FOUND', answers(head={'status': 'NOT_FOUND'}), ERR),
    ('the header\'s total is 48, not 8 + 8n = 56', answers(head={'total': 48}), ERR),
    ('order (1.3.1): a header of total 48 is refused before any range is asked (its range 1 would carry another state_hash: restart)',
     answers(head={'total': 48}, ranges={1: {'stateHash': OTHER}}), ERR),
    ('a range of 15 bytes where 16 were asked', answers(ranges={1: {'data': blob()[16:31]}}), ERR),
    ('the last range of 16 bytes where 8 were asked (padded)', answers(ranges={3: {'data': blob()[48:56] + bytes(8)}}), ERR),
    ('a range answered BAD_REQUEST', answers(ranges={2: {'status': 'BAD_REQUEST', 'data': b''}}), ERR),
    ('a range with another state_hash: a round was applied meanwhile, start again', answers(ranges={1: {'stateHash': OTHER}}), 'restart'),
    ('the last range with another state_hash: start again', answers(ranges={3: {'stateHash': OTHER}}), 'restart'),
    ('order: a short range with another state_hash is refused (the range checks come first)', answers(ranges={1: {'stateHash': OTHER, 'data': blob()[16:30]}}), ERR),
    ('order: a changed state_hash restarts before a later bad range is read', answers(ranges={1: {'stateHash': OTHER}, 2: {'data': b''}}), 'restart'),
    ('one byte of θ changed in a range: sha256(blob) is not state_hash', answers(ranges={1: {'data': bytes([blob()[16] ^ 1]) + blob()[17:32]}}), ERR),
    ('θ holds a NaN (hashes consistent)', answers(blob(theta=[NAN] + THETA[1:]), theta=THETA), ERR),
    ('the momentum holds -Infinity (hashes consistent)', answers(blob(momentum=MOMENTUM[:5] + [float('-inf')])), ERR),
    ('the blob\'s round (7) is not the header\'s (8)', answers(rnd=8, ranges={i: {'round': 8} for i in range(4)}), ERR),
    ('the header\'s base_hash is another θ\'s', answers(head={'baseHash': base_hash([1.0] * N)}), ERR),
    ('a round of 2^53 (blob and header)', answers(blob(rnd=2 ** 53), rnd=2 ** 53), ERR),
    ('round 2^53 - 1 (blob and header) is a state', answers(blob(rnd=2 ** 53 - 1), rnd=2 ** 53 - 1), {**STATE, 'round': 2 ** 53 - 1}),
]


def js(a):
    return {**a, 'data': a['data'].hex(), 'baseHash': a['baseHash'].hex(), 'stateHash': a['stateHash'].hex()}


def main():
    out = {'description': 'README §4 (1.2.1): a client downloading a span\'s state (layout `layout`, n = `elements`, ranges of `rangeBytes`): '
                          '`answers` = the header answer, then one per range asked in order (FetchResponse fields: status by name, data hex, '
                          'total, round, baseHash, stateHash); outcome: `state` (round, θ and momentum as float32 bit patterns), `restart` '
                          '(a changed state_hash), or `error` (StateSyncError)',
           'layout': LAYOUT, 'elements': N, 'rangeBytes': RANGE, 'cases': []}
    bad = []
    for name, ans, expect in CASES:
        try:
            got = S.download(N, LAYOUT, RANGE, ans)
            got = 'restart' if got.get('restart') else {'round': got['round'], 'theta': list(struct.unpack(f'<{N}I', got['theta'])),
                                                         'momentum': list(struct.unpack(f'<{N}I', got['momentum']))}
        except S.StateSyncError:
            got = ERR
        if got != expect:
            bad.append(f'{name}: the Python client says {got}, the spec {expect}')
        c = {'name': name, 'answers': [js(a) for a in ans]}
        if expect == ERR:
            c['error'] = ERR
        elif expect == 'restart':
            c['restart'] = True
        else:
            c['state'] = expect
        out['cases'].append(c)
    if bad:
        print('\n'.join(bad), file=sys.stderr)
        return 1
    with open(os.path.join(HERE, 'state.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'state.json: {len(CASES)} downloads')
    return 0


if __name__ == '__main__':
    sys.exit(main())

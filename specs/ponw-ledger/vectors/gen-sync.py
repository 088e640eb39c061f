#!/usr/bin/env python3
"""Writes specs/ponw-ledger/vectors/sync.json: sync sessions (README §10, §6.3 "Sync", 1.1.0). A requester that knows
some final messages asks `SyncRequest{from: 0, limit: 2}`; a responder serves the pages listed; per page read the
requester adds certificates, refuses the page, or ends the session. Standard library only.

Every expected outcome below is written by hand from the spec text. The script checks every case with the Python
requester written from the spec (../python/neuroshard_ledger/sync.py) and writes nothing if they disagree.

    python3 specs/ponw-ledger/vectors/gen-sync.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
from neuroshard_ledger import Chain, State, Wallet, encode_certificate, parse_certificate, parse_signed_tx  # noqa: E402
from neuroshard_ledger.sync import session  # noqa: E402

with open(os.path.join(HERE, 'genesis.json'), encoding='utf-8') as f:
    chain = Chain(json.load(f))
NEURO = 10 ** 18
V = [Wallet.from_seed(f'validator-{i}') for i in range(4)]
ALICE, BOB = Wallet.from_seed('alice'), Wallet.from_seed('bob')
LIMIT = 2


def cert(signed, validators=(0, 1, 2)):
    t = parse_signed_tx(chain, signed)
    return encode_certificate(signed, [V[i].sign_vote(chain, i, t.id) for i in validators])


# alice's transfers 0..4 to bob, each final with the votes of validators 0, 1, 2
C = [cert(ALICE.sign_tx(chain, s, 10, 'transfer', to=BOB.address, amount=NEURO)) for s in range(5)]
forged = bytearray(cert(BOB.sign_tx(chain, 0, 10, 'transfer', to=ALICE.address, amount=2 * NEURO)))
forged[-1] ^= 1   # the last vote's signature no longer verifies
BAD = bytes(forged)


def page(certs, nxt, done=False):
    return {'certificates': certs, 'next': nxt, 'done': done}


def added(n, end=False):
    return {'added': n, 'end': end}


MAL = {'error': 'MalformedMessageError'}
# (name, certificates the requester knows, pages served, expected outcome per page read)
CASES = [
    ('the whole log in three pages: 2, 2, then 1 with done', [], [page(C[:2], 2), page(C[2:4], 4), page(C[4:], 5, True)],
     [added(2), added(2), added(1, True)]),
    ('already-known certificates are not added again', [C[0]], [page(C[:2], 2), page(C[2:4], 4, True)], [added(1), added(2, True)]),
    ('an empty page ends the session', [], [page(C[:2], 2), page([], 2)], [added(2), added(0, True)]),
    ('next short of from + n: MalformedMessageError, the session ends', [], [page(C[:2], 1), page(C[2:4], 3)], [MAL]),
    ('next jumping over a pruned gap is accepted (next >= from + n)', [], [page(C[:1], 3), page(C[1:3], 5, True)], [added(1), added(2, True)]),
    ('an empty page whose next is not from: MalformedMessageError', [], [page(C[:2], 2), page([], 3)], [added(2), MAL]),
    ('more certificates than the limit (3 for 2): MalformedMessageError', [], [page(C[:3], 3)], [MAL]),
    ('§6.3: the requester knows 3; served 2 known, then 2 more known (4 > 3): the session ends', C[:3],
     [page(C[:2], 2), page([C[2], C[0]], 4), page(C[3:5], 6, True)], [added(0), added(0, True)]),
    ('§6.3: known certificates up to what the requester knows keep the session going', C[:2],
     [page(C[:2], 2), page(C[2:4], 4), page(C[4:], 5, True)], [added(0), added(2), added(1, True)]),
    ('a certificate whose vote signature does not verify fails its page: nothing of it applied, the session ends', [],
     [page([C[0], BAD], 2), page(C[2:4], 4)], [{'error': 'InvalidSignatureError'}]),
]


def main():
    out = {'description': 'README §10 (1.1.0) sync sessions: `known` = the certificates the requester holds final before; it asks from 0 with '
                          'limit `limit`; `pages` as the responder serves them ({certificates hex, next, done}); per page read: `added` (certificates '
                          'that became known) and `end` (the session ends after it), or `error` (the session ends). Pages after the end are not read.',
           'limit': LIMIT, 'cases': []}
    bad = []
    for name, known, pages, expect in CASES:
        st = State(chain)
        for c in known:
            st.add_final([parse_certificate(chain, c)[0]])
        got = session(st, 0, LIMIT, pages)
        if got != expect:
            bad.append(f'{name}: the Python requester says {got}, the spec {expect}')
        out['cases'].append({'name': name, 'known': [c.hex() for c in known],
                             'pages': [{**p, 'certificates': [c.hex() for c in p['certificates']]} for p in pages], 'expect': expect})
    if bad:
        print('\n'.join(bad), file=sys.stderr)
        return 1
    with open(os.path.join(HERE, 'sync.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'sync.json: {len(CASES)} sessions')
    return 0


if __name__ == '__main__':
    sys.exit(main())

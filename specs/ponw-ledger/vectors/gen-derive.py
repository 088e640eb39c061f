#!/usr/bin/env python3
"""Writes specs/ponw-ledger/vectors/derive.json: checkpoint proposals a validator re-derives before it signs
(checkpoints.md C1, C4, §4.2): the proposal's base, frontier rules, messages it lacks (CheckpointNotReadyError), the
derived snapshot's height and hash, in that order. The node's final messages are the certificates of checkpoints.json.

Every outcome below is written by hand from the spec text; snapshot hashes of valid proposals are those of the Python
client written from the spec (neuroshard_ledger/checkpoint.py, `snapshot`), and the full frontier's equals the
certified snapshot of checkpoints.json. The script checks every case with `derive_checkpoint` of that client and writes
nothing if they disagree. Standard library only.

    python3 specs/ponw-ledger/vectors/gen-derive.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
from neuroshard_ledger import checkpoint as CP  # noqa: E402
from neuroshard_ledger import ledger as L  # noqa: E402

GENESIS = json.load(open(os.path.join(HERE, 'genesis.json'), encoding='utf-8'))
CHAIN = L.Chain(GENESIS)
CK = json.load(open(os.path.join(HERE, 'checkpoints.json'), encoding='utf-8'))
CERTS = CK['certificates']
TXS = [L.parse_certificate(CHAIN, bytes.fromhex(c))[0] for c in CERTS]
WHO = {}
for i, tx in enumerate(TXS):
    WHO.setdefault(tx.sender, []).append((tx.sequence, i))
ALICE = next(a for a, s in WHO.items() if [q for q, _ in s] == [0, 1] and TXS[s[0][1]].kind == 'transfer')
BOB = next(a for a, s in WHO.items() if sorted(q for q, _ in s) == [0, 1, 3])
CAROL = next(a for a, s in WHO.items() if TXS[s[0][1]].kind == 'stake' and len(s) == 1)
VAL = next(a for a, s in WHO.items() if TXS[s[0][1]].kind == 'slash')
FULL = {ALICE: 2, BOB: 2, CAROL: 1, VAL: 1}
BASE = {'certificate': CK['expected']['certificate'], 'snapshot': CK['expected']['snapshot']}


def snap(frontier, txs=TXS):
    """the snapshot hash and height of applying exactly the messages behind `frontier` to the genesis state (§4.2)"""
    st = L.State(CHAIN)
    st.add_final([t for t in txs if t.sender in frontier and t.sequence < frontier[t.sender]])
    s = CP.snapshot(st)
    return CP.snapshot_hash(s).hex(), sum(a['nextSeq'] for a in st.accounts.values())


def proposal(frontier, height=None, snapshot_hash=None, base_height=0, base_hash=''):
    h, n = snap(dict(frontier)) if isinstance(frontier, dict) else (None, None)
    entries = sorted(frontier.items()) if isinstance(frontier, dict) else frontier
    return {'height': str(n if height is None else height), 'snapshotHash': h if snapshot_hash is None else snapshot_hash,
            'baseHeight': str(base_height), 'baseHash': base_hash, 'frontier': [{'address': a, 'nextSeq': str(s)} for a, s in entries]}


FULL_HASH, FULL_HEIGHT = snap(FULL)
assert (FULL_HASH, str(FULL_HEIGHT)) == (CK['expected']['snapshotHash'], CK['expected']['height']), 'the full frontier gives the certified snapshot'
ALL = list(range(len(CERTS)))
MISMATCH, NOT_READY = {'error': 'CheckpointMismatchError'}, {'error': 'CheckpointNotReadyError'}


def valid(frontier):
    return {'snapshotHash': snap(frontier)[0]}


many = sorted([(f'{i:040x}', 1) for i in range(2049)])
cases = [
    ('every account that moved, at its next sequence: the certified snapshot of checkpoints.json', ALL, None, proposal(FULL), valid(FULL)),
    ('one account (alice, both messages): a checkpoint of height 2', ALL, None, proposal({ALICE: 2}), valid({ALICE: 2})),
    ('alice\'s first message only (her second is not behind the frontier and stays out)', ALL, None, proposal({ALICE: 1}), valid({ALICE: 1})),
    ('bob below the gap (sequence 3 waits for 2 and is not behind {bob: 2})', ALL, None, proposal({BOB: 2, CAROL: 1}), valid({BOB: 2, CAROL: 1})),
    ('the validator\'s slash report alone does not apply on its own (it waits for the messages it names): CheckpointMismatchError',
     ALL, None, proposal([(VAL, 1)], height=1, snapshot_hash=FULL_HASH), MISMATCH),
    ('the full frontier with the hash of another state: CheckpointMismatchError', ALL, None, proposal(FULL, snapshot_hash=snap({ALICE: 2})[0]), MISMATCH),
    ('the full frontier with the right hash and height + 1: CheckpointMismatchError', ALL, None, proposal(FULL, height=FULL_HEIGHT + 1), MISMATCH),
    ('a proposal on a base this node does not hold (height 6): CheckpointMismatchError', ALL, None, proposal(FULL, base_height=6, base_hash=FULL_HASH), MISMATCH),
    ('an empty frontier: CheckpointMismatchError', ALL, None, proposal([], height=0, snapshot_hash=snap({})[0]), MISMATCH),
    ('a frontier not sorted by address: CheckpointMismatchError', ALL, None,
     proposal(list(reversed(sorted(FULL.items()))), height=FULL_HEIGHT, snapshot_hash=FULL_HASH), MISMATCH),
    ('an address twice: CheckpointMismatchError', ALL, None, proposal(sorted(FULL.items()) + [sorted(FULL.items())[-1]], height=FULL_HEIGHT, snapshot_hash=FULL_HASH), MISMATCH),
    ('a next sequence of 0 (not above the base): CheckpointMismatchError', ALL, None,
     proposal(sorted({**FULL, CAROL: 0}.items()), height=FULL_HEIGHT - 1, snapshot_hash=FULL_HASH), MISMATCH),
    ('2 049 entries (the limit is 2 048): CheckpointMismatchError', ALL, None, proposal(many, height=2049, snapshot_hash=FULL_HASH), MISMATCH),
    ('bob at 4: his sequence 2 is not final here: CheckpointNotReadyError', ALL, None, proposal([(BOB, 4)], height=4, snapshot_hash=FULL_HASH), NOT_READY),
    ('order: a missing message before a wrong hash: CheckpointNotReadyError', ALL, None, proposal(sorted({**FULL, BOB: 4}.items()), height=8, snapshot_hash='00' * 32), NOT_READY),
    ('order: an unsorted frontier before a missing message: CheckpointMismatchError', ALL, None, proposal([(ALICE, 2), (BOB, 4)], height=6, snapshot_hash=FULL_HASH), MISMATCH),
    ('a node that holds alice\'s first message only: the full frontier is not ready', [i for i in ALL if not (TXS[i].sender == ALICE and TXS[i].sequence == 1)], None,
     proposal(FULL), NOT_READY),
    ('on a base: the node installed the certified checkpoint; bob at 4 needs his sequence 2, which it lacks: CheckpointNotReadyError', ALL, BASE,
     proposal([(BOB, 4)], height=8, snapshot_hash=FULL_HASH, base_height=FULL_HEIGHT, base_hash=FULL_HASH), NOT_READY),
    ('on a base: bob at 2 is not above the base: CheckpointMismatchError', ALL, BASE,
     proposal([(BOB, 2)], height=FULL_HEIGHT, snapshot_hash=FULL_HASH, base_height=FULL_HEIGHT, base_hash=FULL_HASH), MISMATCH),
    ('on a base: a proposal on genesis: CheckpointMismatchError', ALL, BASE, proposal(FULL), MISMATCH),
]

out = {
    'description': 'a node that applied the final messages `applied` (indexes into checkpoints.json `certificates`, in this order; with `base`, '
                   'after installing the certified checkpoint checkpoints.json `expected` gives) re-derives `proposal` (checkpoints.md C1, C4, §4.2: decimal heights and sequences, '
                   'hashes hex, baseHash empty for genesis): `snapshotHash` of the state it would sign, or the error. Genesis: genesis.json.',
    'cases': [{'name': n, 'applied': a, **({'base': 'expected'} if b else {}), 'proposal': p, **o} for n, a, b, p, o in cases],
}

bad = 0
for c in out['cases']:
    finals = [TXS[i] for i in c['applied']]
    base = None
    if 'base' in c:
        s = CP.check_install(CHAIN, 0, {}, bytes.fromhex(BASE['certificate']), BASE['snapshot'].encode('utf-8'))
        base = {'height': int(s['height']), 'hash': CP.snapshot_hash(BASE['snapshot'].encode('utf-8')), 'snapshot': s}
    p = c['proposal']
    try:
        got = {'snapshotHash': CP.snapshot_hash(CP.derive_checkpoint(CHAIN, base, finals, {
            'height': int(p['height']), 'snapshotHash': bytes.fromhex(p['snapshotHash']), 'baseHeight': int(p['baseHeight']),
            'baseHash': bytes.fromhex(p['baseHash']), 'frontier': [(e['address'], int(e['nextSeq'])) for e in p['frontier']]})).hex()}
    except L.LedgerError as e:
        got = {'error': e.name}
    want = {k: c[k] for k in ('snapshotHash', 'error') if k in c}
    if got != want:
        bad += 1
        print(f'"{c["name"]}": the Python client says {got}, the spec {want}', file=sys.stderr)
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'derive.json'), 'w', encoding='utf-8') as f:
    # one line per case (the 2 049-entry frontier stays on one line)
    f.write('{\n "description": ' + json.dumps(out['description']) + ',\n "cases": [\n  ' + ',\n  '.join(json.dumps(c) for c in out['cases']) + '\n ]\n}\n')
print(f'derive.json: {len(out["cases"])} proposals')

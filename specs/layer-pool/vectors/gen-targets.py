#!/usr/bin/env python3
"""Writes specs/layer-pool/vectors/targets.json: which weights a node takes for a slot (README §6: the votes of the
records, the target, where a slot's weights come from, the re-check after the span loaded; §6.1: catching up, as
sequences of heartbeats). Standard library only.

Every expected outcome below is written by hand from the spec text (the comment of each case says which rule
decides it). The script checks every case with the Python rules written from the spec (../python/targets.py) and
writes nothing if they disagree.

    python3 specs/layer-pool/vectors/gen-targets.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import targets as T  # noqa: E402


def h(c):
    """a 32-byte hash written as 64 times one hex digit"""
    return c * 64


ZERO = h('0')
G1, G2, G3 = h('1'), h('2'), h('3')          # the genesis weights hashes of slots 1, 2, 3
R1, R2, R3 = h('4'), h('5'), h('6')          # their genesis chunks roots
X, Y = h('c'), h('b')                         # trained weights hashes (Y < X as lowercase hex)
RX, RY = h('d'), h('e')                       # their chunks roots


def rec(peer, status='live', state='serving', start=1, end=2, step=0, slots=None):
    """a record: one span [start, end) whose slots list (weights hash, chunks root[, own step])"""
    entries = []
    for e in slots:
        d = {'weightsHash': e[0], 'chunksRoot': e[1]}
        if len(e) > 2:
            d['weightsStep'] = e[2]
        entries.append(d)
    assert len(entries) == end - start
    return {'peer': peer, 'status': status, 'spans': [{'start': start, 'end': end, 'state': state, 'weightsStep': step, 'slots': entries}]}


GEN, TR, WAIT = 'genesis', 'transfer', 'wait'


def tgt(w, r, step, votes):
    return {'weightsHash': w, 'chunksRoot': r, 'step': step, 'votes': votes}


# ---- §6: where slot 1's weights come from (its genesis hash G1) ----
# (name, records, avoid, source, target or None, replicas)
SOURCES = [
    ('no record lists the slot: the genesis, no target', [], [], GEN, None, []),
    ('only loading spans list it (a loading span gets no vote): the genesis',
     [rec('A', state='loading', slots=[(X, RX)]), rec('B', state='loading', slots=[(X, RX)])], [], GEN, None, []),
    ('a leaving span gets no vote: the genesis', [rec('A', state='leaving', step=4, slots=[(X, RX)])], [], GEN, None, []),
    ('an all-zero weights hash (a slot not loaded yet) gets no vote: the genesis', [rec('A', step=3, slots=[(ZERO, ZERO)])], [], GEN, None, []),
    ('the target is the genesis hash at step 5: the genesis, no transfer, whatever the step',
     [rec('A', step=5, slots=[(G1, R1)]), rec('B', step=5, slots=[(G1, R1)])], [], GEN, tgt(G1, R1, 5, 2), []),
    ('two live replicas list X: a transfer from both', [rec('A', step=3, slots=[(X, RX)]), rec('B', step=3, slots=[(X, RX)])], [], TR, tgt(X, RX, 3, 2), ['A', 'B']),
    ('a training span votes like a serving one', [rec('A', state='training', step=2, slots=[(X, RX)])], [], TR, tgt(X, RX, 2, 1), ['A']),
    ('most votes win over a larger step: X (2 votes, step 3) over Y (1 vote, step 7)',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', step=3, slots=[(X, RX)]), rec('C', step=7, slots=[(Y, RY)])], [], TR, tgt(X, RX, 3, 2), ['A', 'B']),
    ('a tie in votes goes to the larger step: Y (step 4) over X (step 3)',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', step=4, slots=[(Y, RY)])], [], TR, tgt(Y, RY, 4, 1), ['B']),
    ('a tie in votes and step goes to the smaller weights hash as lowercase hex: bb… over cc…',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', step=3, slots=[(Y, RY)])], [], TR, tgt(Y, RY, 3, 1), ['B']),
    ('the same weights hash under two chunks roots: two votes, the smaller root wins the tie',
     [rec('A', step=3, slots=[(X, RY)]), rec('B', step=3, slots=[(X, RX)])], [], TR, tgt(X, RX, 3, 1), ['B']),
    ('1.6.0: a slot\'s own weights_step (2) counts, not its span\'s (8): Y at step 5 wins the tie',
     [rec('A', step=8, slots=[(X, RX, 2)]), rec('B', step=5, slots=[(Y, RY)])], [], TR, tgt(Y, RY, 5, 1), ['B']),
    ('a vote\'s step is the largest of its voters\': X (steps 2 and 6) over Y (steps 5 and 4)',
     [rec('A', step=2, slots=[(X, RX)]), rec('B', step=6, slots=[(X, RX)]), rec('C', step=5, slots=[(Y, RY)]), rec('D', step=4, slots=[(Y, RY)])],
     [], TR, tgt(X, RX, 6, 2), ['A', 'B']),
    ('holders known unreachable vote but serve nothing: Y (2 unreachable votes) is the target, no live holder: wait, not the genesis',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', 'unreachable', step=3, slots=[(Y, RY)]), rec('C', 'unreachable', step=3, slots=[(Y, RY)])],
     [], WAIT, tgt(Y, RY, 3, 2), []),
    ('an unreachable and a live holder of the target: a transfer from the live one only',
     [rec('A', 'unreachable', step=3, slots=[(Y, RY)]), rec('B', step=3, slots=[(Y, RY)]), rec('C', step=3, slots=[(X, RX)])],
     [], TR, tgt(Y, RY, 3, 2), ['B']),
    ('lapsed records do not vote when a counted record lists the slot (1.4.1): X from A, not Y',
     [rec('A', step=1, slots=[(X, RX)]), rec('B', 'lapsed', step=9, slots=[(Y, RY)]), rec('C', 'lapsed', step=9, slots=[(Y, RY)])],
     [], TR, tgt(X, RX, 1, 1), ['A']),
    ('lapsed records vote when no counted record lists the slot: Y, no live holder: wait (never the genesis)',
     [rec('A', state='loading', slots=[(X, RX)]), rec('B', 'lapsed', step=9, slots=[(Y, RY)]), rec('C', 'lapsed', step=9, slots=[(Y, RY)])],
     [], WAIT, tgt(Y, RY, 9, 2), []),
    ('a counted record listing the slot with an all-zero hash gives no vote, so lapsed records vote: wait for Y',
     [rec('A', step=0, slots=[(ZERO, ZERO)]), rec('B', 'lapsed', step=9, slots=[(Y, RY)])], [], WAIT, tgt(Y, RY, 9, 1), []),
    ('lapsed records naming the genesis hash: the genesis', [rec('B', 'lapsed', step=2, slots=[(G1, R1)])], [], GEN, tgt(G1, R1, 2, 1), []),
    ('a holder that served bad data is avoided: a transfer from B only',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', step=3, slots=[(X, RX)])], ['A'], TR, tgt(X, RX, 3, 2), ['B']),
    ('every live holder of the target served bad data: wait, never the genesis',
     [rec('A', step=3, slots=[(X, RX)]), rec('B', step=3, slots=[(X, RX)]), rec('C', step=3, slots=[(G1, R1)])], ['A', 'B'], WAIT, tgt(X, RX, 3, 2), []),
    ('a record whose span [0, 3) lists slot 1 in its second entry', [rec('A', start=0, end=3, step=4, slots=[(h('7'), h('8')), (X, RX), (h('9'), h('a'))])],
     [], TR, tgt(X, RX, 4, 1), ['A']),
]

# ---- §6: loading the span [1, 4): each slot on the records of its moment, then the re-check of genesis slots ----
GENESIS = {'1': G1, '2': G2, '3': G3}
LOADS = [
    ('nothing listed, nothing arrives: three genesis slots, nothing to fetch again',
     {'1': [], '2': [], '3': []}, [], ['genesis', 'genesis', 'genesis'], []),
    ('slot 2 taken from the genesis, then a live record of trained slot-2 weights arrives: slot 2 is fetched before the span serves',
     {'1': [], '2': [], '3': []}, [rec('A', start=2, end=3, step=4, slots=[(X, RX)])], ['genesis', 'genesis', 'genesis'], [2]),
    ('only slots taken from the genesis are checked again: slot 1 (transferred) is not, slot 2\'s target is its genesis hash',
     {'1': [rec('A', step=3, slots=[(X, RX)])], '2': [], '3': []},
     [rec('A', step=5, slots=[(Y, RY)]), rec('B', start=2, end=3, step=4, slots=[(G2, R2)])], ['transfer', 'genesis', 'genesis'], []),
    ('slot 2\'s target has no live holder (lapsed records only): the load stops there, the span stays loading',
     {'1': [], '2': [rec('B', 'lapsed', start=2, end=3, step=9, slots=[(Y, RY)])], '3': []}, [], ['genesis', 'wait'], None),
    ('at the re-check slot 3\'s target is other weights with no live holder: fetched again all the same (it will wait)',
     {'1': [], '2': [], '3': []}, [rec('B', 'unreachable', start=3, end=4, step=2, slots=[(X, RX)])], ['genesis', 'genesis', 'genesis'], [3]),
    ('at the re-check a lapsed record names other weights, but a counted one lists slot 1 at its genesis: nothing to fetch',
     {'1': [], '2': [], '3': []}, [rec('A', step=0, slots=[(G1, R1)]), rec('B', 'lapsed', step=9, slots=[(X, RX)])], ['genesis', 'genesis', 'genesis'], []),
]

# ---- §6.1: catching up, the node serving slots 1 and 2 (grace 1000 ms) ----
GRACE = 1000
OWN0 = {'1': {'weightsHash': G1, 'chunksRoot': R1, 'step': 0}, '2': {'weightsHash': G2, 'chunksRoot': R2, 'step': 0}}
OWN1X = {**OWN0, '1': {'weightsHash': X, 'chunksRoot': RX, 'step': 5}}
OWN2X = {**OWN1X, '2': {'weightsHash': X, 'chunksRoot': RX, 'step': 5}}
AB_X1 = [rec('A', step=5, slots=[(X, RX)]), rec('B', step=5, slots=[(X, RX)])]           # two replicas list X for slot 1
AB_X12 = [rec('A', start=1, end=3, step=5, slots=[(X, RX), (X, RX)]), rec('B', start=1, end=3, step=5, slots=[(X, RX), (X, RX)])]


def hb(now, records, own=OWN0, serving=(1, 2)):
    return {'nowMs': now, 'records': records, 'own': own, 'serving': list(serving)}


# (name, [(heartbeat, behind, fetch)])
CATCH_UP = [
    ('two replicas list X at step 5, the node G1 at step 0: behind from t 0, fetched at t 1000 (the grace), caught up after',
     [(hb(0, AB_X1), [1], None), (hb(500, AB_X1), [1], None), (hb(1000, AB_X1), [1], 1), (hb(1500, AB_X1, OWN1X), [], None)]),
    ('one replica lists X: not behind (1 vote is not more than the node\'s own 1): a single replica moves nobody',
     [(hb(0, [rec('A', step=5, slots=[(X, RX)])]), [], None), (hb(2000, [rec('A', step=5, slots=[(X, RX)])]), [], None)]),
    ('two list X, one other lists the node\'s own G1: a tie (2 against 1 + 1) keeps the node\'s weights',
     [(hb(0, AB_X1 + [rec('C', slots=[(G1, R1)])]), [], None), (hb(1500, AB_X1 + [rec('C', slots=[(G1, R1)])]), [], None)]),
    ('the target\'s step must be larger than the node\'s own: X at step 5 against own weights at step 5',
     [(hb(0, AB_X1, {**OWN0, '1': {'weightsHash': Y, 'chunksRoot': RY, 'step': 5}}), [], None),
      (hb(1500, AB_X1, {**OWN0, '1': {'weightsHash': Y, 'chunksRoot': RY, 'step': 5}}), [], None)]),
    ('1.6.0: the target\'s step is its slot\'s own (2, span at 9), not larger than the node\'s 2: not behind',
     [(hb(0, [rec('A', step=9, slots=[(X, RX, 2)]), rec('B', step=9, slots=[(X, RX, 2)])], {**OWN0, '1': {'weightsHash': Y, 'chunksRoot': RY, 'step': 2}}), [], None)]),
    ('the target needs a live holder: two unreachable holders of X do not make the slot behind',
     [(hb(0, [rec('A', 'unreachable', step=5, slots=[(X, RX)]), rec('B', 'unreachable', step=5, slots=[(X, RX)])]), [], None)]),
    ('lapsed records alone never make a slot behind (no live holder)',
     [(hb(0, [rec('A', 'lapsed', step=5, slots=[(X, RX)]), rec('B', 'lapsed', step=5, slots=[(X, RX)])]), [], None)]),
    ('a check that finds the slot not behind ends its grace: behind at 0, not at 600, behind again from 1200, fetched at 2200',
     [(hb(0, AB_X1), [1], None), (hb(600, AB_X1[:1]), [], None), (hb(1200, AB_X1), [1], None), (hb(2000, AB_X1), [1], None),
      (hb(2200, AB_X1), [1], 1)]),
    ('a failed fetch leaves the old weights and is tried again at the next check (the grace is not restarted)',
     [(hb(0, AB_X1), [1], None), (hb(1000, AB_X1), [1], 1), (hb(1500, AB_X1), [1], 1), (hb(2000, AB_X1, OWN1X), [], None)]),
    ('two slots due at once: the smaller first (the node lists its serving slots as 2, 1), then the other',
     [(hb(0, AB_X12, serving=(2, 1)), [1, 2], None), (hb(1000, AB_X12, serving=(2, 1)), [1, 2], 1), (hb(1500, AB_X12, OWN1X, serving=(2, 1)), [2], 2),
      (hb(2000, AB_X12, OWN2X, serving=(2, 1)), [], None)]),
    ('a slot in no serving span is not checked and its grace ends: slot 2 leaves at 500, is back at 1000, fetched at 2000',
     [(hb(0, AB_X12, OWN1X), [2], None), (hb(500, AB_X12, OWN1X, serving=(1,)), [], None), (hb(1000, AB_X12, OWN1X), [2], None),
      (hb(1500, AB_X12, OWN1X), [2], None), (hb(2000, AB_X12, OWN1X), [2], 2)]),
]


def main():
    out = {
        'description': 'layer-pool README §6 (votes, target, source of a slot\'s weights, the re-check after loading) and §6.1 (catching up). '
                       'Records: {peer, status (live: counted and reachable; unreachable: counted, holder known unreachable (§4); lapsed: stopped '
                       'counting less than loading_grace_ms ago), spans: [{start, end, state, weightsStep, slots: [{weightsHash, chunksRoot, weightsStep?}]}]}. '
                       '`sources`: slot 1 (genesis hash `genesisHash`), `avoid` = holders that served bad data; `replicas` compared as a set. '
                       '`loads`: the span [1, 4) loaded slot by slot, `resolve[slot]` = the records when that slot is taken, `recheck` = the records '
                       'once every slot is loaded; `sources` per slot taken (the load stops at a wait), `fetchAgain` = the genesis slots to fetch '
                       'before the span serves (null: the span did not load). `catchUp`: heartbeats of a node serving `serving` with own weights '
                       '`own` (no fetch running at any of them; a fetch completes before the next heartbeat, whose `own` shows its result); '
                       'per heartbeat `behind` (slots, ascending) and `fetch` (the slot whose fetch starts, or null).',
        'genesisHash': G1,
        'sources': [], 'loads': {'genesis': GENESIS, 'cases': []}, 'catchUp': {'graceMs': GRACE, 'cases': []},
    }
    bad = []
    for name, records, avoid, source, target, replicas in SOURCES:
        kind, t, reps = T.source(records, 1, G1, avoid)
        got_t = None if t is None else tgt(t['weightsHash'], t['chunksRoot'], t['step'], t['votes'])
        if (kind, got_t, sorted(reps)) != (source, target, sorted(replicas)):
            bad.append((name, (kind, got_t, reps)))
        out['sources'].append({'name': name, 'records': records, 'avoid': avoid, 'source': source, 'target': target, 'replicas': replicas})
    for name, resolve, recheck, sources, again in LOADS:
        got = T.load_span([1, 2, 3], GENESIS, resolve, recheck)
        if got != (sources, again):
            bad.append((name, got))
        out['loads']['cases'].append({'name': name, 'resolve': resolve, 'recheck': recheck, 'sources': sources, 'fetchAgain': again})
    for name, beats in CATCH_UP:
        got = T.catch_up(GRACE, [b for b, _, _ in beats])
        want = [{'behind': bh, 'fetch': f} for _, bh, f in beats]
        if got != want:
            bad.append((name, got))
        out['catchUp']['cases'].append({'name': name, 'heartbeats': [{**b, 'expect': {'behind': bh, 'fetch': f}} for b, bh, f in beats]})
    if bad:
        for name, got in bad:
            print(f'the Python rules disagree with the case written by hand: {name}: {got}', file=sys.stderr)
        return 1
    with open(os.path.join(HERE, 'targets.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'targets.json: {len(SOURCES)} sources, {len(LOADS)} loads, {len(CATCH_UP)} catch-up sequences')
    return 0


if __name__ == '__main__':
    sys.exit(main())

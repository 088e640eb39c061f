#!/usr/bin/env python3
"""Writes specs/pipeline/vectors/tied.json: a tied Validator across a training step (pipeline §4.3 rule 4, §4.4 rules
1-3; layer-pool §8): the head's share H of the `embed.weight` gradient accumulated per micro-batch, taken early at the
step's last micro-batch or not, more accumulated after that, TAKE_TIED (which must answer all of it), and the STEP
that adds the Driver's rows to H and steps the replica (model §3.1 AdamW), answering the stepped matrix's hash.

Every gradient value is a small multiple of 1/16, so each float32 sum is exact and H does not depend on the order of
additions. The `replica` flags and which gradients make H are written by hand from the text; `tied` is their sum and
`tiedHash` comes from specs/pipeline/python/pipeline.py (`adamw`, model §3.1), which also replays every sequence; the
script writes nothing if a hand-written outcome disagrees with it.

    python3 specs/pipeline/vectors/gen-tied.py
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import pipeline as PL  # noqa: E402

V, D, STEP = 4, 2, 5
N = V * D


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def floats(bs):
    return [struct.unpack('<f', struct.pack('<I', b))[0] for b in bs]


def grad(k):
    return [((i * 3 + k * 5) % 11 - 5) / 16 for i in range(N)]


def add(*gs):
    return [sum(x) for x in zip(*gs)]  # exact: multiples of 1/16 far below 2^20


G1, G2, G3, G4 = grad(1), grad(2), grad(3), grad(4)
P = [(i % 5 - 2) / 8 for i in range(N)]
REPLICA = {'step': STEP, 'p': P, 'm': [(i % 3) / 64 for i in range(N)], 'v': [(i % 4) / 256 for i in range(N)]}
ADAMW = {'lr': 0.0625, 'beta1': 0.5, 'beta2': 0.75, 'eps': 2 ** -10, 'weightDecay': 0.125, 'clipScale': 1, 't': STEP + 1}
ROWS = {'ids': [0, 2], 'rows': [0.25, -0.5, 0.125, 1.0]}


def acc(g, mb=None):
    return {'op': 'accumulate', 'g': g, **({'microBatch': mb} if mb is not None else {})}


def head_input(mb, s=STEP, want_replica=True):
    """HEAD_INPUT (§4.4 rule 6, 1.7.0) for an accumulated micro-batch"""
    want = {'replica': True, 'headMicroBatches': [mb], 'headInputs': 1} if want_replica else {'replica': False}
    return {'op': 'headInput', 'step': s, 'microBatch': mb}, want


def take_r(recomputed, want_list, want_inputs, step=STEP, want_h=None, want_replica=True):
    """TAKE_TIED {tied_replica, tied_recompute, recomputed} (§4.4 rules 5-6)"""
    return ({'op': 'takeTied', 'step': step, 'tiedReplica': True, 'tiedRecompute': True, 'recomputed': recomputed},
            {'tied': want_h, 'replica': want_replica, 'headMicroBatches': want_list, 'headInputs': want_inputs})


LAST = {'op': 'lastMicroBatch'}


def take(step=STEP, replica=True, want_h=None, want_replica=True):
    return {'op': 'takeTied', 'step': step, 'tiedReplica': replica}, {'tied': want_h, 'replica': want_replica}


def step(s=STEP, adamw=ADAMW, rows=ROWS, want_replica=True):
    return {'op': 'step', 'step': s, **rows, 'adamw': {**adamw, 't': s + 1}}, {'replica': want_replica}


P2 = [(i % 7 - 3) / 16 for i in range(N)]
M2 = [((i * 5) % 7 - 3) / 128 for i in range(N)]
V2 = [(i % 5 + 1) / 512 for i in range(N)]


def set_tied(s=STEP, tied=None, m=None, v=None, want_replica=False):
    return {'op': 'setTied', 'step': s, **{k: x for k, x in (('tied', tied), ('m', m), ('v', v)) if x is not None}}, {'replica': want_replica}


def plain(op):
    return op, {}


sequences = [
    ('two micro-batches, TAKE_TIED (nothing taken early): H = their sum, the replica keeps it; STEP adds the rows and steps it', REPLICA,
     [plain(acc(G1)), plain(acc(G2)), take(want_h=add(G1, G2)), step()]),
    ('taken early at the last micro-batch, then one more micro-batch accumulated (a re-sent one): TAKE_TIED answers all three', REPLICA,
     [plain(acc(G1)), plain(acc(G2)), plain(LAST), plain(acc(G3)), take(want_h=add(G1, G2, G3)), step()]),
    ('taken early, two more accumulated after it: all four', REPLICA,
     [plain(acc(G1)), plain(LAST), plain(acc(G2)), plain(acc(G3)), plain(acc(G4)), take(want_h=add(G1, G2, G3, G4)), step()]),
    ('taken early, nothing after it: H = what was taken', REPLICA,
     [plain(acc(G1)), plain(acc(G2)), plain(LAST), take(want_h=add(G1, G2)), step()]),
    ('two steps: the second step\'s H holds only its own micro-batches, its STEP steps the matrix the first left', REPLICA,
     [plain(acc(G1)), plain(LAST), take(want_h=G1), step(), plain(acc(G2)), plain(acc(G3)), plain(LAST), plain(acc(G4)),
      take(step=STEP + 1, want_h=add(G2, G3, G4)), step(s=STEP + 1, rows={'ids': [1, 3], 'rows': [-0.25, 0.5, 0.75, -1.0]})]),
    ('clip scale 0.5 and no weight decay', REPLICA,
     [plain(acc(G1)), plain(acc(G3)), take(want_h=add(G1, G3)), step(adamw={**ADAMW, 'clipScale': 0.5, 'weightDecay': 0})]),
    ('every row from the Driver', REPLICA,
     [plain(acc(G2)), take(want_h=G2), step(rows={'ids': [0, 1, 2, 3], 'rows': [0.5, -0.25, 0.125, -0.125, 1.0, 0.0, -1.0, 0.25]})]),
    ('no replica: TAKE_TIED answers H without replica, STEP without replica', None,
     [plain(acc(G1)), plain(LAST), plain(acc(G2)), take(want_h=add(G1, G2), want_replica=False), step(want_replica=False)]),
    ('a replica one step behind the head: not used (dropped), STEP without replica', {**REPLICA, 'step': STEP - 1},
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False)]),
    ('TAKE_TIED without tied_replica: H without replica, the replica dropped; the next step has none either', REPLICA,
     [plain(acc(G1)), take(replica=False, want_h=G1, want_replica=False), step(want_replica=False),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2, want_replica=False), step(s=STEP + 1, want_replica=False)]),
    ('STEP with rows when no TAKE_TIED took H this step: without replica, and the replica is gone at the next step', REPLICA,
     [step(want_replica=False), plain(acc(G1)), take(step=STEP + 1, want_h=G1, want_replica=False), step(s=STEP + 1, want_replica=False)]),
    ('TAKE_TIED for another step than the span\'s: PipelineRequestError, H stays for the right one', REPLICA,
     [plain(acc(G1)), ({'op': 'takeTied', 'step': STEP + 1, 'tiedReplica': True}, {'error': 'PipelineRequestError'}),
      plain(acc(G2)), take(want_h=add(G1, G2)), step()]),
    # §4.4 rule 4: SET_TIED re-seeds a replica (three parts of one step count, in any order)
    ('no replica: STEP without replica, then SET_TIED {tied}, {tied_m}, {tied_v}: the third seeds the replica; the next step keeps H and steps it', None,
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False),
      set_tied(tied=P2), set_tied(m=M2), set_tied(v=V2, want_replica=True),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2), step(s=STEP + 1)]),
    ('the parts in another order (v, m, then the matrix): the matrix completes the seed', None,
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False),
      set_tied(v=V2), set_tied(m=M2), set_tied(tied=P2, want_replica=True),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2), step(s=STEP + 1)]),
    ('SET_TIED {tied} alone: the head\'s copy replaced, no replica; the next step has none', None,
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False), set_tied(tied=P2),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2, want_replica=False), step(s=STEP + 1, want_replica=False)]),
    ('a replica stepped (its hash not the Driver\'s, say), then SET_TIED {tied}: the matrix replaces it, the replica is dropped', REPLICA,
     [plain(acc(G1)), take(want_h=G1), step(), set_tied(tied=P2),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2, want_replica=False), step(s=STEP + 1, want_replica=False)]),
    ('parts of two step counts (the matrix and m after step 5, v after step 6): not a replica', None,
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False), set_tied(tied=P2), set_tied(m=M2),
      plain(acc(G2)), take(step=STEP + 1, want_h=G2, want_replica=False), step(s=STEP + 1, want_replica=False), set_tied(s=STEP + 1, v=V2),
      plain(acc(G3)), take(step=STEP + 2, want_h=G3, want_replica=False)]),
    # §4.4 rule 6 (1.7.0): HEAD_INPUT and TAKE_TIED with `recomputed`
    ('1.7.0: HEAD_INPUT answers each accumulated micro-batch; TAKE_TIED with recomputed = the head\'s order answers the list alone; STEP steps the replica with H = G1 + G2 (the first sequence\'s hash)', REPLICA,
     [plain(acc(G1, 0)), head_input(0), plain(acc(G2, 1)), head_input(1), take_r([0, 1], [0, 1], 0), step()]),
    ('1.7.0: recomputed in another order than the head accumulated: every input (1.6.0), the replica still steps', REPLICA,
     [plain(acc(G1, 0)), plain(acc(G2, 1)), take_r([1, 0], [0, 1], 2), step()]),
    ('1.7.0: recomputed missing a micro-batch (taken early, a re-sent one after it): every input', REPLICA,
     [plain(acc(G1, 0)), plain(LAST), plain(acc(G2, 1)), take_r([0], [0, 1], 2), step()]),
    ('1.7.0: no replica: HEAD_INPUT without an input, TAKE_TIED answers H without replica', None,
     [plain(acc(G1, 0)), head_input(0, want_replica=False), take_r([0], [], 0, want_h=G1, want_replica=False), step(want_replica=False)]),
    ('1.7.0: a replica one step behind: HEAD_INPUT without an input', {**REPLICA, 'step': STEP - 1},
     [plain(acc(G1, 0)), head_input(0, want_replica=False)]),
    ('1.7.0: HEAD_INPUT for another step: PipelineRequestError', REPLICA,
     [plain(acc(G1, 0)), ({'op': 'headInput', 'step': STEP + 1, 'microBatch': 0}, {'error': 'PipelineRequestError'}), take_r([0], [0], 0), step()]),
    ('1.7.0: two steps: the second step\'s order is its own (one micro-batch), recomputed [0] is the list, [0, 1] is not', REPLICA,
     [plain(acc(G1, 0)), plain(acc(G2, 1)), take_r([0, 1], [0, 1], 0), step(),
      plain(acc(G3, 0)), head_input(0, s=STEP + 1), take_r([0, 1], [0], 1, step=STEP + 1), step(s=STEP + 1, rows={'ids': [1, 3], 'rows': [-0.25, 0.5, 0.75, -1.0]}),
      plain(acc(G4, 0)), take_r([0], [0], 0, step=STEP + 2), step(s=STEP + 2)]),
    ('SET_TIED for the step before the last one, and one without a tensor: PipelineRequestError', None,
     [plain(acc(G1)), take(want_h=G1, want_replica=False), step(want_replica=False),
      ({'op': 'setTied', 'step': STEP - 1, 'tied': P2}, {'error': 'PipelineRequestError'}),
      ({'op': 'setTied', 'step': STEP}, {'error': 'PipelineRequestError'})]),
]

out = {'description': 'pipeline §4.3 rule 4, §4.4 rules 1-4 and 6: a tied Validator (vocab `vocabSize`, d `dModel`, its spans at step `headStep`, '
                      'its replica `replica` ({step, p, m, v}, float32 bit patterns) or null) given `ops` in order: `accumulate` (its head\'s '
                      'backward of a micro-batch left `g` as its share of the embed.weight gradient), `lastMicroBatch` (the step\'s last '
                      'micro-batch: the Validator takes and encodes H now, §4.3 rule 4 MAY), `takeTied` (TAKE_TIED {step, tied_replica}: '
                      '`tied` = H, every value accumulated since the last TAKE_TIED, or null when none was; `replica`), `step` (STEP '
                      '{step} with the Driver\'s rows `rows` at `ids` and `adamw` (tied_adamw); `replica`, and `tiedHash` when replica: the '
                      'sha256 of the stepped matrix, float32 little-endian), `setTied` (SET_TIED {step} with the stepped matrix `tied` and/or '
                      'its moments `m`, `v`, §4.4 rule 4: `replica` true on the message completing the three parts of one step count) or '
                      '`error`. Values are float32 bit patterns. 1.7.0 (§4.4 rule 6): `accumulate` may name its `microBatch` (the head '
                      'keeps the order of the micro-batches it accumulated this step); `headInput` (HEAD_INPUT {step, micro_batch} for an '
                      'accumulated micro-batch: `replica`, `headMicroBatches` [that one], `headInputs` 1 (the count of inputs answered), '
                      'or `replica` false without an input); `takeTied` with `tiedRecompute` and `recomputed` also answers '
                      '`headMicroBatches` and `headInputs` (the count of head inputs: 0 with the bare list when `recomputed` is exactly '
                      'the head\'s order).',
       'vocabSize': V, 'dModel': D, 'headStep': STEP, 'cases': []}
bad = 0
for name, replica, seq in sequences:
    ops = [op for op, _ in seq]
    got = PL.tied_sequence(V, D, STEP, replica, ops)
    written = []
    for i, ((op, want), g) in enumerate(zip(seq, got)):
        if op['op'] == 'step' and want.get('replica'):
            want = {**want, 'tiedHash': g.get('tiedHash')}
        w = dict(want)
        if 'tied' in w and w['tied'] is not None:
            w['tied'] = bits(w['tied'])
        gg = dict(g)
        if gg.get('tied') is not None:
            gg['tied'] = bits(gg['tied'])
        if gg != w:
            bad += 1
            print(f'"{name}" op {i}: the Python Validator says {gg}, the text {w}', file=sys.stderr)
        o = dict(op)
        for k in ('g', 'rows', 'tied', 'm', 'v'):
            if k in o:
                o[k] = bits(o[k])
        written.append({**o, 'expect': w})
    out['cases'].append({'name': name, 'replica': None if replica is None else {k: (bits(x) if k != 'step' else x) for k, x in replica.items()},
                         'ops': written})
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'tied.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'tied.json: {len(out["cases"])} sequences')

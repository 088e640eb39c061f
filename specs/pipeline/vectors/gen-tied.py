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


# (1.8.0, §4.4 rule 7) the Validator owns the matrix
def offer(s=STEP, rows=ROWS, want_owner=True):
    """STEP with the Driver's rows and `tied_owner`: the offer"""
    return {'op': 'step', 'step': s, **rows, 'adamw': {**ADAMW, 't': s + 1}, 'tiedOwner': True}, {'replica': True, 'tiedOwner': want_owner}


def owned_step(s=STEP + 1, want_replica=True):
    """STEP {tied_owner, tied_adamw} without rows"""
    return {'op': 'step', 'step': s, 'ids': [], 'rows': [], 'adamw': {**ADAMW, 't': s + 1}, 'tiedOwner': True}, {'replica': want_replica, 'tiedOwner': want_replica}


def sumsq(g):
    t = 0.0
    for x in g:
        t += x * x  # exact: multiples of 1/256
    return t


def with_rows(h, rows):
    g = list(h)
    for k, i in enumerate(rows['ids']):
        for j in range(D):
            g[i * D + j] += rows['rows'][k * D + j]
    return g


def take_owned(h, s=STEP + 1, rows=ROWS):
    """TAKE_TIED {tied_replica, tied_owner} with the Driver's rows: Σ g² of H + E"""
    return ({'op': 'takeTied', 'step': s, 'tiedReplica': True, 'tiedOwner': True, **rows},
            {'replica': True, 'tiedOwner': True, 'tiedNormSq': sumsq(with_rows(h, rows))})


def take_owned_bad(rows, error='InvalidActivationError', s=STEP + 1):
    return {'op': 'takeTied', 'step': s, 'tiedReplica': True, 'tiedOwner': True, **rows}, {'error': error}


def targets(ids, s=STEP + 1, want_owner=True):
    """TARGETS {tied_owner, tied_ids}: `tied` (the owner's rows) is filled from the reference below"""
    return {'op': 'targets', 'step': s, 'ids': ids}, {'tiedOwner': want_owner, 'tied': None}


def get_tied(part, s=STEP + 1, error=None):
    return {'op': 'getTied', 'step': s, 'part': part}, ({'error': error} if error else {'tiedOwner': True, 'tied': None})


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
    # §4.4 rule 7 (1.8.0): the Validator owns the matrix
    ('1.8.0: the offer (STEP with rows and tied_owner) taken; the next step is the owner\'s: TARGETS answers its rows, TAKE_TIED {tied_owner} adds the Driver\'s rows to H and answers their sum of squares, STEP without rows steps it; GET_TIED answers the matrix and both moments', REPLICA,
     [plain(acc(G1)), take(want_h=G1), offer(), targets([1, 3]), targets([]), plain(acc(G2)), plain(acc(G3)), take_owned(add(G2, G3)), owned_step(),
      get_tied(0, s=STEP + 2), get_tied(1, s=STEP + 2), get_tied(2, s=STEP + 2), targets([0, 2], s=STEP + 2)]),
    ('1.8.0: a Validator that does not take the matrix (before 1.8.0): the offer answered without tied_owner; TARGETS and TAKE_TIED {tied_owner} answered as 1.7.0', REPLICA,
     [plain(acc(G1)), take(want_h=G1), offer(want_owner=False), targets([0], want_owner=False), plain(acc(G2)),
      ({'op': 'takeTied', 'step': STEP + 1, 'tiedReplica': True, 'tiedOwner': True, **ROWS}, {'tied': G2, 'replica': True, 'tiedOwner': False}),
      step(s=STEP + 1, rows={'ids': [1, 3], 'rows': [-0.25, 0.5, 0.75, -1.0]})]),
    ('1.8.0: an owner\'s STEP without a TAKE_TIED that summed the rows: the replica is dropped; the next TARGETS is not the owner\'s', REPLICA,
     [plain(acc(G1)), take(want_h=G1), offer(), owned_step(want_replica=False), targets([], s=STEP + 2, want_owner=False)]),
    ('1.8.0: bad rows at TAKE_TIED {tied_owner} (not increasing, out of range, too few values, none): InvalidActivationError, H kept for the good one', REPLICA,
     [plain(acc(G1)), take(want_h=G1), offer(), plain(acc(G2)),
      take_owned_bad({'ids': [2, 1], 'rows': [0.25, -0.5, 0.125, 1.0]}), take_owned_bad({'ids': [0, 4], 'rows': [0.25, -0.5, 0.125, 1.0]}),
      take_owned_bad({'ids': [0, 2], 'rows': [0.25, -0.5, 0.125]}), take_owned_bad({'ids': [], 'rows': []}),
      take_owned(G2), owned_step()]),
    ('1.8.0: TARGETS with ids not increasing: InvalidActivationError; GET_TIED from a Validator that does not own, of part 3, or of another step: PipelineRequestError', REPLICA,
     [plain(acc(G1)), take(want_h=G1), get_tied(0, s=STEP, error='PipelineRequestError'), offer(),
      ({'op': 'targets', 'step': STEP + 1, 'ids': [3, 3]}, {'error': 'InvalidActivationError'}),
      get_tied(3, error='PipelineRequestError'), get_tied(0, s=STEP, error='PipelineRequestError'), get_tied(2)]),
    ('1.8.0: an owner given a STEP with rows (a Driver no longer in owner mode): not stepped, the replica dropped', REPLICA,
     [plain(acc(G1)), take(want_h=G1), offer(), plain(acc(G2)), take(step=STEP + 1, want_h=G2),
      step(s=STEP + 1, want_replica=False)]),
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
                      'the head\'s order). 1.8.0 (§4.4 rule 7, the Validator owns the matrix): `step` with `tiedOwner` (the Driver\'s offer with its rows, or '
                      'an owner\'s STEP without rows) also answers `tiedOwner`; `targets` (TARGETS {step, tied_owner, tied_ids `ids`}: `tiedOwner` and '
                      '`tied`, the owner\'s rows of those ids, null for none or without tied_owner); `takeTied` with `tiedOwner`, `ids` and `rows` (the '
                      'Driver\'s rows of E): `replica`, `tiedOwner` and `tiedNormSq` (Σ g² of H + E, binary64 in element order) when the Validator owns '
                      'the matrix, else answered as before with `tiedOwner` false; `getTied` (GET_TIED {step, tied_part `part`}): `tiedOwner` and `tied` '
                      '(the matrix, m or v). A Validator that does not take the matrix is a case with `acceptOwner` false.',
       'vocabSize': V, 'dModel': D, 'headStep': STEP, 'cases': []}
bad = 0
for name, replica, seq in sequences:
    ops = [op for op, _ in seq]
    accept = 'does not take the matrix' not in name
    got = PL.tied_sequence(V, D, STEP, replica, ops, accept)
    written = []
    for i, ((op, want), g) in enumerate(zip(seq, got)):
        if op['op'] == 'step' and want.get('replica'):
            want = {**want, 'tiedHash': g.get('tiedHash')}
        # (1.8.0) the owner's rows and GET_TIED's parts after AdamW steps: from the reference, as the hashes
        if op['op'] in ('targets', 'getTied') and want.get('tiedOwner') and (op['op'] == 'getTied' or op['ids']):
            want = {**want, 'tied': g.get('tied')}
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
    out['cases'].append({**({} if accept else {'acceptOwner': False}), 'name': name, 'replica': None if replica is None else {k: (bits(x) if k != 'step' else x) for k, x in replica.items()},
                         'ops': written})
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'tied.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'tied.json: {len(out["cases"])} sequences')

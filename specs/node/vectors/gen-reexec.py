#!/usr/bin/env python3
"""Writes specs/node/vectors/reexec.json: node/ponw.md §2 re-execution rules 2 and 5, the checks of a validator that
need no model run.

- `steps` (rule 2): a witness and the inner step `index` a validator is about to replay from it: one state and one ops
  list per executor of the span's roles, every state at step `opsFrom + index`, each executor's ops of that step ending
  with its only optimizer step, every parameter of its role in `parameters`, `m` and `v` with its size and nothing
  else — or `ReExecutionMismatchError`;
- `final` (rules 4-5, the ledger's checks of the final checkpoint in order): the final witness's pseudo-gradient hash
  equals the claim's, and sha256 of the final witness's bytes is not `model_hash` (sha256 of checkpoint 0's bytes).

Standard library only. Outcomes by hand from the text; the script checks every case with specs/node/python/ponw.py
and writes nothing if they disagree.

    python3 specs/node/vectors/gen-reexec.py
"""
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'diloco', 'python'))
import diloco as DL  # noqa: E402
import ponw as NP  # noqa: E402

CONFIG = {'vocabSize': 16, 'dModel': 4, 'nLayers': 2, 'nHeads': 2, 'nKvHeads': 1, 'ffnHidden': 8, 'maxSeqLen': 16, 'ropeTheta': 10000,
          'normEps': 1e-5, 'tieEmbeddings': False}
M = NP._model_reference()


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def values(n, k):
    return [((i * 7 + k) % 13 - 6) / 16 for i in range(n)]


def state(role, step, k=0, drop=None, extra=None, resize=None):
    """a state holding every parameter of `role` (weights, m, v); `drop` (part, name), `extra` (part, name, n) and
    `resize` (part, name, n) break it"""
    out = {'step': step}
    for part, off in (('parameters', 0), ('m', 1), ('v', 2)):
        t = {name: bits(values(M.numel(shape), k + off)) for name, shape in M.shard_params(CONFIG, role)}
        if drop and drop[0] == part:
            del t[drop[1]]
        if extra and extra[0] == part:
            t[extra[1]] = bits(values(extra[2], 5))
        if resize and resize[0] == part:
            t[resize[1]] = bits(values(resize[2], 3))
        out[part] = t
    return out


EMBED, HEAD = {'kind': 'embed'}, {'kind': 'head'}
BLOCKS = {'kind': 'blocks', 'start': 0, 'end': 2}  # slots [1, 3)
FEED = {'hidden': {'type': 'float32', 'dims': [1, 2, 4], 'data': bits(values(8, 1))}, 'grad': {'type': 'float32', 'dims': [1, 2, 4], 'data': bits(values(8, 2))}}
BACKWARD = {'kind': 'backward', 'feeds': FEED}
ZERO, STEP, STEPN = {'kind': 'zero'}, {'kind': 'step', 'gradNorm': None}, {'kind': 'step', 'gradNorm': 0.5}
H2 = [[BACKWARD, STEPN], [ZERO, BACKWARD, BACKWARD, STEP]]  # two inner steps of one executor


def witness(start, end, states, ops, opsFrom=0):
    return {'start': start, 'end': end, 'opsFrom': opsFrom, 'states': states, 'ops': ops, 'evidence': [], 'payloads': []}


OK, BAD = 'valid', 'ReExecutionMismatchError'
blocks = lambda step=0, **kw: [state(BLOCKS, step, **kw)]  # noqa: E731
steps = [
    ('one executor (blocks of slots [1, 3)), step 0 of 2', witness(1, 3, blocks(), [H2]), 0, OK),
    ('step 1 of 2 from a state at step 1', witness(1, 3, blocks(1), [H2]), 1, OK),
    ('opsFrom 40 (round 20 of H 2): a state at step 41 replays step 1', witness(1, 3, blocks(41), [H2], opsFrom=40), 1, OK),
    ('the whole model [0, 4): embed, blocks, head at one step', witness(0, 4, [state(EMBED, 3), state(BLOCKS, 3), state(HEAD, 3)], [[[STEP]], [[BACKWARD, STEP]], [[ZERO, STEP]]], opsFrom=3), 0, OK),
    ('step 1 asked of a state at step 0', witness(1, 3, blocks(0), [H2]), 1, BAD),
    ('step 0 asked of a state at step 1', witness(1, 3, blocks(1), [H2]), 0, BAD),
    ('states at two steps (embed at 3, blocks at 4)', witness(0, 2, [state(EMBED, 3), state({'kind': 'blocks', 'start': 0, 'end': 1}, 4)], [[[STEP]], [[STEP]]], opsFrom=3), 0, BAD),
    ('the step\'s ops end with a gradient reset after the optimizer step', witness(1, 3, blocks(), [[[BACKWARD, STEP, ZERO]]]), 0, BAD),
    ('two optimizer steps in one inner step', witness(1, 3, blocks(), [[[BACKWARD, STEP, BACKWARD, STEP]]]), 0, BAD),
    ('no optimizer step (backward only)', witness(1, 3, blocks(), [[[BACKWARD, BACKWARD]]]), 0, BAD),
    ('an inner step with no ops', witness(1, 3, blocks(), [[[]]]), 0, BAD),
    ('step 2 of a witness with the ops of 2 inner steps', witness(1, 3, blocks(2), [H2]), 2, BAD),
    ('two states for a one-executor span', witness(1, 3, blocks() + blocks(), [H2, H2]), 0, BAD),
    ('one state and two ops lists', witness(1, 3, blocks(), [H2, H2]), 0, BAD),
    ('[0, 2) with the blocks state only (the embed executor missing)', witness(0, 2, [state({'kind': 'blocks', 'start': 0, 'end': 1}, 0)], [H2]), 0, BAD),
    ('a span past slot L + 2 ([1, 5))', witness(1, 5, blocks(), [H2]), 0, BAD),
    ('an empty span ([2, 2))', witness(2, 2, blocks(), [H2]), 0, BAD),
    ('blocks.1.mlp.w_down missing from m', witness(1, 3, blocks(drop=('m', 'blocks.1.mlp.w_down')), [H2]), 0, BAD),
    ('blocks.0.attn.wq missing from the weights', witness(1, 3, blocks(drop=('parameters', 'blocks.0.attn.wq')), [H2]), 0, BAD),
    ('blocks.0.ffn_norm.weight of 5 values in v (4 expected)', witness(1, 3, blocks(resize=('v', 'blocks.0.ffn_norm.weight', 5)), [H2]), 0, BAD),
    ('an extra weight (embed.weight) in a blocks state', witness(1, 3, blocks(extra=('parameters', 'embed.weight', 64)), [H2]), 0, BAD),
]

# ---- (1.1.0) rule 2's tied checks: a tied model (vocab 16, d 4: the matrix 64 floats) ----
TIED = {**CONFIG, 'tieEmbeddings': True}
N = TIED['vocabSize'] * TIED['dModel']


def tstate(role, replica=None, config=TIED):
    out = {'step': 0}
    for part, off in (('parameters', 0), ('m', 1), ('v', 2)):
        out[part] = {name: bits(values(M.numel(shape), off)) for name, shape in M.shard_params(config, role)}
    if replica is not None:
        out['replica'] = {'m': {'embed.weight': bits(values(replica, 3))}, 'v': {'embed.weight': bits(values(replica, 4))}}
    return out


def tied_step(grad_ids=(1, 3), ids=(2,), per_row=4, name='embed.weight'):
    return {'kind': 'tiedStep', 'name': name, 'gradIds': list(grad_ids), 'gradRows': bits(values(len(grad_ids) * per_row, 5)), 'ids': list(ids),
            'rows': bits(values(len(ids) * 4, 6)), 'adamw': {'lr': 0.001, 'beta1': 0.9, 'beta2': 0.95, 'eps': 1e-8, 'weightDecay': 0.1, 't': 1, 'gradScale': 1}}


TAKE = {'kind': 'take'}
HEAD_FEED = {'kind': 'backward', 'feeds': {'hidden': FEED['hidden']}}
MATRIX = {'embed.weight': bits(values(N, 7))}
SET = {'kind': 'set', 'parameters': MATRIX}
SEED = {'kind': 'seed', 'name': 'embed.weight', 'm': bits(values(N, 8)), 'v': bits(values(N, 9))}
ADD = {'kind': 'add', 'gradients': MATRIX}
ROWS = {'kind': 'rows', 'name': 'embed.weight', 'ids': [5, 2], 'data': bits(values(8, 10))}
MOMENTS = {'kind': 'moments', 'm': MATRIX, 'v': MATRIX}
SKIP = {'kind': 'step', 'gradNorm': 0.5, 'skip': ['embed.weight']}
head = lambda ops, replica=N, config=TIED: witness(3, 4, [tstate(HEAD, replica, config)], [[ops]])  # noqa: E731
embed = lambda ops, replica=None, config=TIED: witness(0, 1, [tstate(EMBED, replica, config)], [[ops]])  # noqa: E731
tied_steps = [
    ('(1.1.0) tied head: backward, take, step, then the replica\'s step (gradient rows 1, 3; added row 2)', head([HEAD_FEED, TAKE, STEPN, tied_step()]), 0, OK),
    ('(1.1.0) tied head: SET_TIED\'s matrix and seed before the step, no replica yet', head([SET, SEED, STEPN], replica=None), 0, OK),
    ('(1.1.0) tied embedding: the head\'s gradient added, GET_TIED\'s matrix and moments, owner rows, a step skipping the matrix', embed([ADD, MOMENTS, SET, ROWS, SKIP]), 0, OK),
    ('(1.1.0) the replica\'s step before the optimizer step', head([TAKE, tied_step(), STEPN]), 0, BAD),
    ('(1.1.0) two replica steps after the optimizer step', head([TAKE, STEPN, tied_step(), tied_step()]), 0, BAD),
    ('(1.1.0) a take after the optimizer step', head([STEPN, TAKE]), 0, BAD),
    ('(1.1.0) a set after the optimizer step', head([STEPN, SET]), 0, BAD),
    ('(1.1.0) the replica\'s gradient rows not increasing (3, 1)', head([TAKE, STEPN, tied_step(grad_ids=(3, 1))]), 0, BAD),
    ('(1.1.0) the replica\'s added row 16 (the vocabulary is 16)', head([TAKE, STEPN, tied_step(ids=(16,))]), 0, BAD),
    ('(1.1.0) the replica\'s gradient rows of 3 floats (d is 4)', head([TAKE, STEPN, tied_step(per_row=3)]), 0, BAD),
    ('(1.1.0) a replica step of final_norm.weight', head([TAKE, STEPN, tied_step(name='final_norm.weight')]), 0, BAD),
    ('(1.1.0) owner rows on the head', head([ROWS, STEPN]), 0, BAD),
    ('(1.1.0) an added gradient on the head', head([ADD, STEPN]), 0, BAD),
    ('(1.1.0) moments on the head', head([MOMENTS, STEPN]), 0, BAD),
    ('(1.1.0) a step of the head that skips the matrix', head([{**SKIP}]), 0, BAD),
    ('(1.1.0) a take on the embedding', embed([TAKE, STEPN]), 0, BAD),
    ('(1.1.0) a seed on the embedding', embed([SEED, STEPN]), 0, BAD),
    ('(1.1.0) a replica on the embedding', embed([STEPN], replica=N), 0, BAD),
    ('(1.1.0) a head replica of 63 floats', head([STEPN], replica=N - 1), 0, BAD),
    ('(1.1.0) a set of final_norm.weight on the head', head([{'kind': 'set', 'parameters': {'final_norm.weight': bits(values(4, 1))}}, STEPN]), 0, BAD),
    ('(1.1.0) a set of the matrix with 63 floats', head([{'kind': 'set', 'parameters': {'embed.weight': bits(values(N - 1, 1))}}, STEPN]), 0, BAD),
    ('(1.1.0) a step of the embedding that skips final_norm.weight', embed([{**SKIP, 'skip': ['final_norm.weight']}]), 0, BAD),
]
steps = [(*c, CONFIG) for c in steps] + [(*c, TIED) for c in tied_steps] + [
    ('(1.1.0) an added gradient on an untied model\'s embedding', embed([ADD, STEPN], config=CONFIG), 0, BAD, CONFIG),
]

# ---- rules 4-5: the final checkpoint ----
START, END = 1, 3
BASE = {name: values(M.numel(shape), 0) for name, shape in M.shard_params(CONFIG, BLOCKS)}
FINAL = {name: [DL.fround(x - 0.0625 * ((i % 3) - 1)) for i, x in enumerate(v)] for name, v in BASE.items()}


def w_of(params, payloads=(), ops=None):
    st = {'step': 0 if ops is not None else 2, 'parameters': {n: bits(v) for n, v in params.items()}, 'm': {}, 'v': {}}
    return witness(START, END, [st], ops if ops is not None else [[]]) | {'payloads': list(payloads)}


def payload(slot, base, final):
    d = [DL.fround(base[n][i] - final[n][i]) for n, _ in NP._slot_parameters(CONFIG, slot) for i in range(len(base[n]))]
    return {'slot': slot, 'codec': {'codec': 1, 'blockSize': 0, 'chunk': 0, 'topK': 0, 'bits': 0}, 'bytes': DL.encode(d, {'codec': 'fp32'}).hex()}


def pg(final):
    return NP.stage_pseudo_gradient_hash([{'slot': p['slot'], 'payloadHash': hashlib.sha256(bytes.fromhex(p['bytes'])).hexdigest(), 'codec': p['codec']}
                                         for p in final['payloads']])


base = w_of(BASE, ops=[H2])
base_hash = hashlib.sha256(NP.encode_witness(base)).hexdigest()
trained = w_of(FINAL, [payload(s, BASE, FINAL) for s in (START, END - 1)])
zeros = [payload(s, BASE, BASE) for s in (START, END - 1)]
base_with_zeros = w_of(BASE, zeros, ops=[H2])  # checkpoint 0 with zero payloads, as its own final checkpoint
untrained = w_of(BASE, zeros)  # the base's weights at step 2 without ops, zero payloads
finals = [
    ('trained weights, fp32 payloads of base − final, the claim\'s hash', base, trained, base_hash, pg(trained), OK),
    ('trained weights, another pseudo-gradient hash claimed', base, trained, base_hash, pg(untrained), BAD),
    ('the final checkpoint is checkpoint 0 byte for byte (zero payloads in both): final = base', base_with_zeros, base_with_zeros,
     hashlib.sha256(NP.encode_witness(base_with_zeros)).hexdigest(), pg(base_with_zeros), BAD),
    ('order: final = base and another pseudo-gradient hash claimed', base_with_zeros, base_with_zeros,
     hashlib.sha256(NP.encode_witness(base_with_zeros)).hexdigest(), pg(trained), BAD),
    ('the base\'s weights in a final checkpoint of other bytes (step 2, no ops): not refused here (rule 3\'s re-execution is)', base, untrained,
     base_hash, pg(untrained), OK),
]

out = {'description': 'node/ponw.md §2 re-execution rules 2 and 5 (witnesses as witness.json describes them; `config` the model). `steps`: '
                      'the witness checks before inner step `index` is replayed from `witness` (rule 2; 1.1.0: the tied cases carry their own `config`): '
                      '`valid`, or `error`. `final`: the '
                      'ledger\'s checks of the final checkpoint with this model, in order — the stage pseudo-gradient hash of `base` and '
                      '`final` (rule 4) equals the claim\'s `pseudoGradientHash`, and sha256 of the final witness\'s bytes is not the '
                      'claim\'s `modelHash` (rule 5; `modelHash` is sha256 of checkpoint 0\'s bytes, `base`): `valid`, or `error`.',
       'config': CONFIG, 'steps': [], 'final': []}
bad = 0


def outcome(fn):
    try:
        fn()
        return OK
    except NP.ReExecutionMismatch:
        return BAD


for name, w, index, want, config in steps:
    got = outcome(lambda: NP.check_stage_step(config, w, index))
    if got != want:
        bad += 1
        print(f'"{name}": the Python check says {got}, the spec {want}', file=sys.stderr)
    out['steps'].append({'name': name, **({'config': config} if config is not CONFIG else {}), 'witness': w, 'index': index,
                         **({'valid': True} if want == OK else {'error': want})})
for name, b, f, mh, ph, want in finals:
    got = outcome(lambda: NP.check_final_weights(CONFIG, b, f, mh, ph))
    if got != want:
        bad += 1
        print(f'"{name}": the Python check says {got}, the spec {want}', file=sys.stderr)
    out['final'].append({'name': name, 'base': b, 'final': f, 'modelHash': mh, 'pseudoGradientHash': ph, **({'valid': True} if want == OK else {'error': want})})
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'reexec.json'), 'w', encoding='utf-8') as fh:
    fh.write('{\n "description": ' + json.dumps(out['description']) + ',\n "config": ' + json.dumps(CONFIG) +
             ',\n "steps": [\n  ' + ',\n  '.join(json.dumps(c) for c in out['steps']) +
             '\n ],\n "final": [\n  ' + ',\n  '.join(json.dumps(c) for c in out['final']) + '\n ]\n}\n')
print(f'reexec.json: {len(out["steps"])} step checks, {len(out["final"])} final checks')

#!/usr/bin/env python3
"""Writes specs/node/vectors/replay.json: node/ponw.md §2 re-execution rule 3, a stage witness's inner steps replayed.

A whole-model stage [0, 4) of a tiny config (embed, blocks [0, 2), head: three executors), checkpoint 0 at step 2
(round 1 of H = 2, moments already non-zero) with the ops of two inner steps per executor — step 0: two backward calls
then an optimizer step with no norm (the executor's own), step 1: a backward, a reset, another backward, then an
optimizer step with the chain's norm 3 (above the network's maxGradNorm 1: the update is scaled). The feeds are
arbitrary (a replay runs each executor on its own feeds). The final checkpoint of the honest case is the replay of
specs/node/python/ponw.py (specs/model/python's float64 backward, specs/model §3.1's AdamW); every other case changes
the final state, the claim's step count or the data, with its outcome written by hand from rule 3 (max |Δ| over weights
and first moments, √ of the max |Δ| over second moments, within 1e-4). The script replays every case with ponw.py and
writes nothing if an outcome disagrees.

    python3 specs/node/vectors/gen-replay.py
"""
import copy
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import ponw as NP  # noqa: E402

CONFIG = {'vocabSize': 16, 'dModel': 4, 'nLayers': 2, 'nHeads': 2, 'nKvHeads': 1, 'ffnHidden': 8, 'maxSeqLen': 16, 'ropeTheta': 10000,
          'normEps': 1e-5, 'tieEmbeddings': False}
OPTIMIZER = {'lr': 0.001, 'beta1': 0.9, 'beta2': 0.95, 'eps': 1e-8, 'weightDecay': 0.1, 'maxGradNorm': 1.0}
M = NP._model_reference()
EMBED, BLOCKS, HEAD = {'kind': 'embed'}, {'kind': 'blocks', 'start': 0, 'end': 2}, {'kind': 'head'}
OPS_FROM = 2


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def floats(b):
    return [struct.unpack('<f', struct.pack('<I', x))[0] for x in b]


def values(n, k, scale):
    return [scale * (((i * 7 + k * 5) % 23) - 11) / 11 for i in range(n)]


def state(role, k):
    out = {'step': OPS_FROM, 'parameters': {}, 'm': {}, 'v': {}}
    for j, (name, shape) in enumerate(M.shard_params(CONFIG, role)):
        n = M.numel(shape)
        w = values(n, k + j, 0.4)
        out['parameters'][name] = bits([1 + x / 4 for x in w] if len(shape) == 1 else w)   # norm weights near 1
        out['m'][name] = bits(values(n, k + j + 1, 1e-3))
        out['v'][name] = bits([abs(x) + 1e-6 for x in values(n, k + j + 2, 1e-5)])
    return out


def f(dims, k, scale=0.5):
    n = 1
    for x in dims:
        n *= x
    return {'type': 'float32', 'dims': dims, 'data': bits(values(n, k, scale) if dims else [scale])}


def ids(dims, k):
    return {'type': 'int64', 'dims': dims, 'data': [str((i * 5 + k * 3) % CONFIG['vocabSize']) for i in range(dims[0] * dims[1])]}


def back(**feeds):
    return {'kind': 'backward', 'feeds': feeds}


ZERO = {'kind': 'zero'}
NOSTEP, CLIPPED = {'kind': 'step', 'gradNorm': None}, {'kind': 'step', 'gradNorm': 3}


def ops_of(feeds):   # feeds(k) -> one backward call's feeds; the two inner steps' ops
    return [[back(**feeds(1)), back(**feeds(2)), NOSTEP], [back(**feeds(3)), ZERO, back(**feeds(4)), CLIPPED]]


EMBED_FEEDS = lambda k: {'input_ids': ids([2, 3], k), 'grad_hidden': f([2, 3, 4], k)}  # noqa: E731
BLOCK_FEEDS = lambda k: {'hidden_in': f([1, 3, 4], k, 1.0), 'grad_hidden_out': f([1, 3, 4], k + 10, 0.3)}  # noqa: E731
HEAD_FEEDS = lambda k: {'hidden': f([2, 3, 4], k, 1.0), 'targets': ids([2, 3], k + 1), 'grad_loss': f([], k, 0.5)}  # noqa: E731

BASE = {'start': 0, 'end': 4, 'opsFrom': OPS_FROM, 'states': [state(EMBED, 0), state(BLOCKS, 3), state(HEAD, 7)],
        'ops': [ops_of(EMBED_FEEDS), ops_of(BLOCK_FEEDS), ops_of(HEAD_FEEDS)], 'evidence': [], 'payloads': []}
HONEST = NP.replay_stage(CONFIG, OPTIMIZER, BASE, 2)


def final_of(states):
    return {'start': 0, 'end': 4, 'opsFrom': OPS_FROM, 'states': states, 'ops': [[], [], []], 'evidence': [], 'payloads': []}


def perturbed(e, part, name, index, delta):
    s = copy.deepcopy(HONEST)
    x = floats(s[e][part][name])
    x[index] = f32(x[index] + delta)
    s[e][part][name] = bits(x)
    return final_of(s)


def base_with(e, step, op, feed, index, value):
    w = copy.deepcopy(BASE)
    t = w['ops'][e][step][op]['feeds'][feed]
    if t['type'] == 'int64':
        t['data'][index] = str(value)
    else:
        t['data'][index] = bits([value])[0]
    return w


def base_norm(norm):
    w = copy.deepcopy(BASE)
    for e in range(3):
        w['ops'][e][1][-1] = {'kind': 'step', 'gradNorm': norm}
    return w


def base_step(i, ops):   # every executor's step i replaced by `ops(feeds)` (§2 rule 2, 1.0.6: which parameters a step moves)
    w = copy.deepcopy(BASE)
    for e, feeds in enumerate((EMBED_FEEDS, BLOCK_FEEDS, HEAD_FEEDS)):
        w['ops'][e][i] = ops(feeds)
    return w


# the replay's executors are built once, at checkpoint 0: step 0 without a backward moves nothing (no gradient yet);
# step 1 without one steps every parameter at gradient 0 (step 0's backward reached them), as a reset before it does
NO_BACKWARD_0 = base_step(0, lambda feeds: [NOSTEP])
NO_BACKWARD_1 = base_step(1, lambda feeds: [NOSTEP])
ZERO_AFTER_1 = base_step(1, lambda feeds: [back(**feeds(3)), ZERO, NOSTEP])
NO_BACKWARD_0_FINAL = final_of(NP.replay_stage(CONFIG, OPTIMIZER, NO_BACKWARD_0, 2))
NO_BACKWARD_1_FINAL = final_of(NP.replay_stage(CONFIG, OPTIMIZER, NO_BACKWARD_1, 2))
AFTER_STEP_0 = NP.replay_stage(CONFIG, OPTIMIZER, BASE, 1)   # step 1 moving nothing: as after step 0, one step on
UNMOVED_1_FINAL = final_of([{**x, 'step': x['step'] + 1} for x in AFTER_STEP_0])


OK, BAD = 'valid', 'ReExecutionMismatchError'
FINAL = final_of(HONEST)
cases = [
    ('honest: the final checkpoint is the replay of both inner steps', BASE, FINAL, 2, OK),
    ('a weight (blocks.1.mlp.w_up[5]) off by 5e-5: within 1e-4', BASE, perturbed(1, 'parameters', 'blocks.1.mlp.w_up', 5, 5e-5), 2, OK),
    ('a weight (blocks.1.mlp.w_up[5]) off by 2e-4: beyond 1e-4', BASE, perturbed(1, 'parameters', 'blocks.1.mlp.w_up', 5, 2e-4), 2, BAD),
    ('a head weight (lm_head.weight[17]) off by -2e-4', BASE, perturbed(2, 'parameters', 'lm_head.weight', 17, -2e-4), 2, BAD),
    ('an embed row of a token that was never fed (embed.weight[4·1 + 2]) off by 2e-4', BASE, perturbed(0, 'parameters', 'embed.weight', 6, 2e-4), 2, BAD),
    ('a first moment (blocks.0.attn.wq m[3]) off by 2e-4', BASE, perturbed(1, 'm', 'blocks.0.attn.wq', 3, 2e-4), 2, BAD),
    ('a second moment (final_norm.weight v[1]) off by 1e-6: √ 1e-3 beyond 1e-4', BASE, perturbed(2, 'v', 'final_norm.weight', 1, 1e-6), 2, BAD),
    ('a second moment (final_norm.weight v[1]) off by 1e-9: √ 3.2e-5 within 1e-4', BASE, perturbed(2, 'v', 'final_norm.weight', 1, 1e-9), 2, OK),
    ('the claim counts 1 inner step (the final checkpoint is 2 steps on)', BASE, FINAL, 1, BAD),
    ('the claim counts 3 inner steps (the witness has the ops of 2)', BASE, FINAL, 3, BAD),
    ('the final checkpoint is checkpoint 0 (no step replayed lands there)', BASE, final_of(BASE['states']), 2, BAD),
    ('other data: a token id of the embed executor\'s step 0 (3 -> 9)', base_with(0, 0, 0, 'input_ids', 0 if BASE['ops'][0][0][0]['feeds']['input_ids']['data'][0] == '3' else 1, 9), FINAL, 2, BAD),
    ('other data: a target of the head\'s step 1 (its last backward)', base_with(2, 1, 2, 'targets', 2, 15), FINAL, 2, BAD),
    ('other data: a gradient from the next stage (blocks\' grad_hidden_out[4] of step 0) = 0.9', base_with(1, 0, 1, 'grad_hidden_out', 4, 0.9), FINAL, 2, BAD),
    ('other data in the backward that the reset discards (blocks\' step 1, first call): still the same training', base_with(1, 1, 0, 'hidden_in', 0, 0.9), FINAL, 2, OK),
    ('the chain\'s norm of step 1 left out (the executors\' own norms, not clipped by 3)', base_norm(None), FINAL, 2, BAD),
    ('step 0 without a backward: nothing moves at it (no gradient yet), step 1 as usual', NO_BACKWARD_0, NO_BACKWARD_0_FINAL, 2, OK),
    ('step 1 without a backward: every parameter stepped at gradient 0 (step 0\'s backward reached it)', NO_BACKWARD_1, NO_BACKWARD_1_FINAL, 2, OK),
    ('step 1 without a backward, the final left as after step 0: not the replay', NO_BACKWARD_1, UNMOVED_1_FINAL, 2, BAD),
    ('step 1 a backward then a reset: the same as no backward (gradient 0)', ZERO_AFTER_1, NO_BACKWARD_1_FINAL, 2, OK),
]

# ---- (1.1.0) tied embeddings: a Validator's head with its replica, a Driver's embedding (§2 rule 2's tied calls) ----
TIED = {**CONFIG, 'tieEmbeddings': True}
V, D = TIED['vocabSize'], TIED['dModel']
TAKE = {'kind': 'take'}


def tied_state(role, k, replica):
    out = {'step': OPS_FROM, 'parameters': {}, 'm': {}, 'v': {}}
    for j, (name, shape) in enumerate(M.shard_params(TIED, role)):
        n = M.numel(shape)
        w = values(n, k + j, 0.4)
        out['parameters'][name] = bits([1 + x / 4 for x in w] if len(shape) == 1 else w)
        # a head does not step its tied parameter: its own moments of it stay zero
        out['m'][name] = bits([0.0] * n if role == HEAD and name == 'embed.weight' else values(n, k + j + 1, 1e-3))
        out['v'][name] = bits([0.0] * n if role == HEAD and name == 'embed.weight' else [abs(x) + 1e-6 for x in values(n, k + j + 2, 1e-5)])
    if replica:
        out['replica'] = {'m': {'embed.weight': bits(values(V * D, k + 5, 1e-3))}, 'v': {'embed.weight': bits([abs(x) + 1e-6 for x in values(V * D, k + 6, 1e-5)])}}
    return out


def adamw(t, scale, **over):
    return {'lr': OPTIMIZER['lr'], 'beta1': OPTIMIZER['beta1'], 'beta2': OPTIMIZER['beta2'], 'eps': OPTIMIZER['eps'], 'weightDecay': OPTIMIZER['weightDecay'],
            't': t, 'gradScale': scale, **over}


def rows(k, n):
    return bits(values(n * D, k, 0.05))


CLIP3 = OPTIMIZER['maxGradNorm'] / (3 + 1e-6)   # the clip scale of a step at the chain's norm 3
TIED_HEAD_FEEDS = lambda k: {'hidden': f([2, 3, 4], k, 1.0), 'targets': ids([2, 3], k + 1), 'grad_loss': f([], k, 0.5)}  # noqa: E731


def tied_step(t, scale, grad_ids, grad_k, add_ids, add_k, **over):
    return {'kind': 'tiedStep', 'name': 'embed.weight', 'gradIds': grad_ids, 'gradRows': rows(grad_k, len(grad_ids)), 'ids': add_ids,
            'rows': rows(add_k, len(add_ids)), 'adamw': adamw(t, scale, **over)}


# the head: step 0 a backward, its tied gradient taken, the chain's norm 3 (clipped), the replica stepped with the Driver's
# rows summed in (owner: gradIds); step 1 two backward calls and takes, SET_TIED's matrix and moments, a step at norm 0.5,
# the replica stepped with the Driver's rows added (replica: ids)
def head_ops(step0_tied=None, first_take=True):
    return [[[back(**TIED_HEAD_FEEDS(1)), *([TAKE] if first_take else []), CLIPPED, step0_tied or tied_step(OPS_FROM + 1, CLIP3, [1, 5], 21, [], 0)],
             [back(**TIED_HEAD_FEEDS(2)), TAKE, back(**TIED_HEAD_FEEDS(3)), TAKE,
              {'kind': 'set', 'parameters': {'embed.weight': bits(values(V * D, 31, 0.3))}},
              {'kind': 'seed', 'name': 'embed.weight', 'm': bits(values(V * D, 32, 1e-3)), 'v': bits([abs(x) + 1e-7 for x in values(V * D, 33, 1e-5)])},
              {'kind': 'step', 'gradNorm': 0.5}, tied_step(OPS_FROM + 2, 1, [], 0, [2, 9], 22)]]]


def tied_base(start, end, state, ops):
    return {'start': start, 'end': end, 'opsFrom': OPS_FROM, 'states': [state], 'ops': ops, 'evidence': [], 'payloads': []}


HEAD_BASE = tied_base(3, 4, tied_state(HEAD, 7, True), head_ops())
HEAD_FINAL = final_of(NP.replay_stage(TIED, OPTIMIZER, HEAD_BASE, 2))
HEAD_FINAL = {**HEAD_FINAL, 'start': 3, 'end': 4, 'ops': [[]]}


def driver_ops(add_k=41, rows_k=42, skip=('embed.weight',)):
    return [[[back(**EMBED_FEEDS(1)), {'kind': 'add', 'gradients': {'embed.weight': bits(values(V * D, add_k, 0.2))}}, CLIPPED],
             [{'kind': 'set', 'parameters': {'embed.weight': bits(values(V * D, 43, 0.3))}},
              {'kind': 'moments', 'm': {'embed.weight': bits(values(V * D, 44, 1e-3))}, 'v': {'embed.weight': bits([abs(x) + 1e-7 for x in values(V * D, 45, 1e-5)])}},
              {'kind': 'rows', 'name': 'embed.weight', 'ids': [3, 7], 'data': rows(rows_k, 2)}, back(**EMBED_FEEDS(2)),
              {'kind': 'step', 'gradNorm': 0.5, **({'skip': list(skip)} if skip else {})}]]]


DRIVER_BASE = tied_base(0, 1, tied_state(EMBED, 0, False), driver_ops())
DRIVER_FINAL = {**final_of(NP.replay_stage(TIED, OPTIMIZER, DRIVER_BASE, 2)), 'start': 0, 'end': 1, 'ops': [[]]}


def tied_perturbed(final, path, index, delta):
    s = copy.deepcopy(final)
    at = s['states'][0]
    for key in path[:-1]:
        at = at[key]
    x = floats(at[path[-1]])
    x[index] = f32(x[index] + delta)
    at[path[-1]] = bits(x)
    return s


def tied_ops(base, change):
    w = copy.deepcopy(base)
    change(w['ops'][0])
    return w


TIED_CASES = [
    ('(1.1.0) tied head, honest: takes, the replica stepped twice (owner rows, replica rows), SET_TIED between', HEAD_BASE, HEAD_FINAL, 2, OK, TIED),
    ('(1.1.0) tied head: the tied matrix (embed.weight[9]) off by 2e-4', HEAD_BASE, tied_perturbed(HEAD_FINAL, ['parameters', 'embed.weight'], 9, 2e-4), 2, BAD, TIED),
    ('(1.1.0) tied head: a replica first moment off by 2e-4', HEAD_BASE, tied_perturbed(HEAD_FINAL, ['replica', 'm', 'embed.weight'], 4, 2e-4), 2, BAD, TIED),
    ('(1.1.0) tied head: the final checkpoint without its replica', HEAD_BASE, {**HEAD_FINAL, 'states': [{k: x for k, x in HEAD_FINAL['states'][0].items() if k != 'replica'}]}, 2, BAD, TIED),
    ('(1.1.0) tied head: other data, an owner row summed into the replica\'s gradient (gradRows)', tied_ops(HEAD_BASE, lambda o: o[0][3].update(gradRows=rows(23, 2))), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: other data, the seeded moments', tied_ops(HEAD_BASE, lambda o: o[1][5].update(m=bits(values(V * D, 34, 1e-3)))), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: a replica step with another lr than the network\'s', tied_ops(HEAD_BASE, lambda o: o[0][3]['adamw'].update(lr=0.002)), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: a replica step not clipped at a clipped step (gradScale 1)', tied_ops(HEAD_BASE, lambda o: o[0][3]['adamw'].update(gradScale=1)), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: a replica step at another t', tied_ops(HEAD_BASE, lambda o: o[0][3]['adamw'].update(t=OPS_FROM + 2)), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: another beta2 than the network\'s', tied_ops(HEAD_BASE, lambda o: o[0][3]['adamw'].update(beta2=0.999)), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied head: the step before its tied gradient was taken', tied_base(3, 4, tied_state(HEAD, 7, True), head_ops(first_take=False)), HEAD_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied Driver, honest: the head\'s gradient added, GET_TIED\'s matrix and moments, owner rows, a step skipping the matrix', DRIVER_BASE, DRIVER_FINAL, 2, OK, TIED),
    ('(1.1.0) tied Driver: other data, an owner row written before the skipped step', tied_base(0, 1, tied_state(EMBED, 0, False), driver_ops(rows_k=46)), DRIVER_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied Driver: other data in the added gradient, replaced by the set after it: still the same training', tied_base(0, 1, tied_state(EMBED, 0, False), driver_ops(add_k=47)), DRIVER_FINAL, 2, OK, TIED),
    ('(1.1.0) tied Driver: the step skips final_norm.weight (not the tied matrix)', tied_base(0, 1, tied_state(EMBED, 0, False), driver_ops(skip=('final_norm.weight',))), DRIVER_FINAL, 2, BAD, TIED),
    ('(1.1.0) tied Driver: the same witness on an untied model (no tied call allowed)', DRIVER_BASE, DRIVER_FINAL, 2, BAD, {**TIED, 'tieEmbeddings': False}),
    ('(1.1.0) tied Driver: the step does not skip the owned matrix (it steps it)', tied_base(0, 1, tied_state(EMBED, 0, False), driver_ops(skip=())), DRIVER_FINAL, 2, BAD, TIED),
]
cases = [(*c, CONFIG) for c in cases] + TIED_CASES

out = {'description': 'node/ponw.md §2 re-execution rule 3 (witnesses as witness.json describes them; `config` the model, `optimizer` the '
                      'network\'s AdamW numbers of specs/model §3.1 with a constant lr; weight decay not on rank-1 parameters). Each case: replay '
                      'inner steps 0 .. `batches` − 1 from checkpoint 0 `base` (rule 2\'s checks before each), as the ledger\'s one segment '
                      '(checkpoint_interval 0), and compare with the states of the final checkpoint `final`: `valid` when max |Δ| over weights '
                      'and first moments and √ of the max |Δ| over second moments (1.1.0: a replica\'s moments as moments) is within 1e-4, '
                      'else `error`. A case without `config`, `base` or `final` uses the top-level one (`final`: the honest final '
                      'checkpoint). (1.1.0) The tied cases (their own `config`, tieEmbeddings on) replay §2 rule 2\'s tied calls.',
       'config': CONFIG, 'optimizer': OPTIMIZER, 'base': BASE, 'final': FINAL, 'cases': []}
bad = 0
for name, base, final, batches, outcome, config in cases:
    try:
        d = NP.check_replay(config, OPTIMIZER, base, final, batches)
        got = OK
    except NP.ReExecutionMismatch as e:
        d, got = str(e), BAD
    if got != outcome:
        print(f'MISMATCH {name}: by hand {outcome}, ponw.py {got} ({d})', file=sys.stderr)
        bad += 1
    else:
        print(f'ok {name}: {outcome} ({d})')
    c = {'name': name, **({'config': config} if config is not CONFIG else {}), **({'base': base} if base is not BASE else {}),
         **({'final': final} if final is not FINAL else {}), 'batches': batches}
    if outcome == OK:
        c['valid'] = True
    else:
        c['error'] = outcome
    out['cases'].append(c)
if bad:
    sys.exit(f'{bad} case(s) disagree: nothing written')
with open(os.path.join(HERE, 'replay.json'), 'w') as fh:
    fh.write('{\n' + ',\n'.join(f' {json.dumps(k)}: {json.dumps(out[k])}' for k in ('description', 'config', 'optimizer', 'base', 'final')) +
             ',\n "cases": [\n  ' + ',\n  '.join(json.dumps(c) for c in out['cases']) + '\n ]\n}\n')
print(f'wrote replay.json: {len(cases)} cases')

#!/usr/bin/env python3
"""Writes specs/node/vectors/pseudo.json: the re-execution's rule 4 of node/ponw.md §2 — a stage's final payloads
checked against Δ = base − final of each slot and hashed (the stage pseudo-gradient hash), or refused
(ReExecutionMismatchError): one payload per slot of the span in order, a dense codec, each within its codec's
error-feedback bound. Standard library only; the payloads are written with specs/diloco/python (§5 codecs).

Outcomes by hand from the text; hashes of accepted cases by `stage_pseudo_gradient_hash` (witness.json checks it);
the script checks every case with `pseudo_gradient_hash` of specs/node/python/ponw.py and writes nothing if they
disagree.

    python3 specs/node/vectors/gen-pseudo.py
"""
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
START, END = 1, 3  # the two block slots: one executor (blocks [0, 2))

seed = 12345


def rnd():
    global seed
    seed = (seed * 6364136223846793005 + 1442695040888963407) % 2 ** 64
    return DL.fround(((seed >> 11) / 2 ** 53) * 2 - 1)


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def slot_names(slot):
    return NP._slot_parameters(CONFIG, slot)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


BASE = {n: [rnd() for _ in range(numel(s))] for slot in range(START, END) for n, s in slot_names(slot)}
FINAL = {n: [DL.fround(x - 0.01 * rnd()) for x in v] for n, v in BASE.items()}


def delta(slot):
    return [DL.fround(BASE[n][i] - FINAL[n][i]) for n, _ in slot_names(slot) for i in range(len(BASE[n]))]


CODEC = {'fp32': {'codec': 1, 'blockSize': 0, 'chunk': 0, 'topK': 0, 'bits': 0}, 'fp16': {'codec': 2, 'blockSize': 0, 'chunk': 0, 'topK': 0, 'bits': 0},
         'int8': {'codec': 3, 'blockSize': 4, 'chunk': 0, 'topK': 0, 'bits': 0}, 'sparse': {'codec': 4, 'blockSize': 0, 'chunk': 8, 'topK': 8, 'bits': 8}}


def payload(slot, codec, values=None):
    values = delta(slot) if values is None else values
    c = {'codec': codec, **({'blockSize': 4} if codec == 'int8' else {}), **({'chunk': 8, 'topK': 8, 'bits': 8} if codec == 'sparse' else {})}
    return {'slot': slot, 'codec': CODEC[codec], 'bytes': DL.encode(values, c).hex()}


def witness(params, payloads=()):
    return {'start': START, 'end': END, 'opsFrom': 0, 'states': [{'step': 0, 'parameters': {n: bits(v) for n, v in params.items()}, 'm': {}, 'v': {}}],
            'ops': [[]], 'evidence': [], 'payloads': list(payloads)}


def nudged(slot, at, by):
    """Δ of the slot with element `at` moved by `by` × max|Δ|"""
    d = delta(slot)
    top = max(abs(x) for x in d)
    return [DL.fround(x + by * top) if i == at else x for i, x in enumerate(d)]


OK, BAD = 'hash', {'error': 'ReExecutionMismatchError'}
cases = [
    ('fp32 payloads of both slots, exactly base − final', [payload(1, 'fp32'), payload(2, 'fp32')], OK),
    ('int8 payloads (block size 4): within 8·max|decoded|/127', [payload(1, 'int8'), payload(2, 'int8')], OK),
    ('fp16 payloads: within 8·max|decoded|·2^-10', [payload(1, 'fp16'), payload(2, 'fp16')], OK),
    ('one codec per slot (fp32, int8)', [payload(1, 'fp32'), payload(2, 'int8')], OK),
    ('fp16, one element off by max|Δ|/256 (inside the bound, max/128)', [payload(1, 'fp16', nudged(1, 5, 1 / 256)), payload(2, 'fp16')], OK),
    ('fp16, one element off by max|Δ|/32 (outside the bound)', [payload(1, 'fp16', nudged(1, 5, 1 / 32)), payload(2, 'fp16')], BAD),
    ('fp32, one element off by 1e-3·max|Δ| (the bound is 1e-6·max + 1e-9)', [payload(1, 'fp32'), payload(2, 'fp32', nudged(2, 7, 1e-3))], BAD),
    ('int8 of 1.1 × Δ (a scaled pseudo-gradient)', [payload(1, 'int8', [DL.fround(1.1 * x) for x in delta(1)]), payload(2, 'int8')], BAD),
    ('the payload of slot 1 only', [payload(1, 'fp32')], BAD),
    ('the slots in the wrong order', [payload(2, 'fp32'), payload(1, 'fp32')], BAD),
    ('a third payload for a slot the span does not hold', [payload(1, 'fp32'), payload(2, 'fp32'), {**payload(2, 'fp32'), 'slot': 3}], BAD),
    ('a sparse payload (stage proofs need a dense codec)', [payload(1, 'sparse'), payload(2, 'fp32')], BAD),
    ('an fp32 payload one element short', [payload(1, 'fp32'), {**payload(2, 'fp32'), 'bytes': payload(2, 'fp32')['bytes'][:-8]}], BAD),
    ('each slot\'s payload under the other slot (same sizes, other values)', [{**payload(2, 'fp32'), 'slot': 1}, {**payload(1, 'fp32'), 'slot': 2}], BAD),
]

base = witness(BASE)
out = {
    'description': 'node/ponw.md §2 re-execution rule 4: `config`, the committed base witness `base` and, per case, the final witness: '
                   '`final` with the case\'s `payloads` (witnesses as witness.json describes them; only the states\' parameters and the final '
                   'payloads matter here); `hash`: the stage pseudo-gradient hash the check gives, or `error`.',
    'config': CONFIG, 'base': base, 'final': witness(FINAL), 'cases': [],
}
bad = 0
for name, payloads, want in cases:
    final = witness(FINAL, payloads)
    try:
        got = {'hash': NP.pseudo_gradient_hash(CONFIG, base, final)}
    except NP.ReExecutionMismatch:
        got = {'error': 'ReExecutionMismatchError'}
    if want == OK:
        want = {'hash': NP.stage_pseudo_gradient_hash([{'slot': p['slot'], 'payloadHash': __import__('hashlib').sha256(bytes.fromhex(p['bytes'])).hexdigest(),
                                                        'codec': p['codec']} for p in payloads])}
    if got != want:
        bad += 1
        print(f'"{name}": the Python check says {got}, the spec {want}', file=sys.stderr)
    out['cases'].append({'name': name, 'payloads': payloads, **want})
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'pseudo.json'), 'w', encoding='utf-8') as f:
    f.write('{\n "description": ' + json.dumps(out['description']) + ',\n "config": ' + json.dumps(CONFIG) + ',\n "base": ' + json.dumps(base) + ',\n "final": ' + json.dumps(out['final']) +
            ',\n "cases": [\n  ' + ',\n  '.join(json.dumps(c) for c in out['cases']) + '\n ]\n}\n')
print(f'pseudo.json: {len(out["cases"])} cases')

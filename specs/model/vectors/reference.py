#!/usr/bin/env python3
"""Writes the scaling-*, config-*, checkpoint-* and graph-io vectors of specs/model in Python (stdlib
only), from the spec text (README.md §1, §3, §5, §6, §7), independently of the TypeScript, and re-derives
the init values, the test-vector weights of tiny.*.safetensors and their content hashes (§4, §7):

    python3 specs/model/vectors/reference.py            # check the files against this implementation
    python3 specs/model/vectors/reference.py --write    # (re)write them
    python3 specs/model/vectors/reference.py --write --grads   # also recompute tiny-grads.json (about 5 s of CPU; CI re-runs it: specs/regenerate.py)"""
import copy, hashlib, json, math, operator, os, struct, sys
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'ffnHidden', 'maxSeqLen', 'ropeTheta', 'normEps', 'tieEmbeddings']

# ---- §1 configuration ----
def valid_config(c):
    if not isinstance(c, dict):
        return False
    for k in KEYS[:7]:
        v = c.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > 2**53 - 1:
            return False
    if c['dModel'] % c['nHeads'] or c['nHeads'] % c['nKvHeads'] or (c['dModel'] // c['nHeads']) % 2:
        return False
    for k in ('ropeTheta', 'normEps'):
        v = c.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            return False
    return isinstance(c.get('tieEmbeddings'), bool)

# ---- §3 parameters ----
def block_params(c, i):
    d, hd = c['dModel'], c['dModel'] // c['nHeads']
    H, K, F = c['nHeads'], c['nKvHeads'], c['ffnHidden']
    p = f'blocks.{i}.'
    return [(p + 'attn_norm.weight', [d]), (p + 'attn.wq', [d, H * hd]), (p + 'attn.wk', [d, K * hd]), (p + 'attn.wv', [d, K * hd]),
            (p + 'attn.wo', [H * hd, d]), (p + 'mlp_norm.weight', [d]), (p + 'mlp.w_gate', [d, F]), (p + 'mlp.w_up', [d, F]), (p + 'mlp.w_down', [F, d])]

def shard_params(c, role):
    if role['kind'] == 'embed':
        return [('embed.weight', [c['vocabSize'], c['dModel']])]
    if role['kind'] == 'head':
        # tied: the head shard holds (a copy of) embed.weight instead of lm_head.weight
        return [('final_norm.weight', [c['dModel']])] + ([('embed.weight', [c['vocabSize'], c['dModel']])] if c['tieEmbeddings'] else [('lm_head.weight', [c['dModel'], c['vocabSize']])])
    return [p for i in range(role['start'], role['end']) for p in block_params(c, i)]

def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n

def count(c):
    every = dict(shard_params(c, {'kind': 'embed'}) + shard_params(c, {'kind': 'blocks', 'start': 0, 'end': c['nLayers']}) + shard_params(c, {'kind': 'head'}))
    return sum(numel(s) for s in every.values())  # each name once

# ---- §1 scaling rule ----
def round_half_up(x):
    return math.floor(x + 0.5)

def scaled_config(L, d, V, S):
    H = d // 128
    K = max(k for k in range(1, -(-H // 4) + 1) if H % k == 0)
    return {'vocabSize': V, 'dModel': d, 'nLayers': L, 'nHeads': H, 'nKvHeads': K, 'ffnHidden': 256 * -(-d // 96),
            'maxSeqLen': S, 'ropeTheta': 10000, 'normEps': 1e-5, 'tieEmbeddings': True}

def scale(nodes, mem, V=32000, S=2048):
    if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes <= 0 or nodes > 2**53 - 1:
        return None
    if not isinstance(mem, (int, float)) or isinstance(mem, bool) or not math.isfinite(mem) or mem <= 0:
        return None
    B = 48 / 0.42
    P = mem / B
    L = max(2, 4 * round_half_up(16 * (P / 3.5e8) ** 0.27 / 4))
    per_node = mem / nodes
    d, w = 256, 512
    while True:
        c = scaled_config(L, w, V, S)
        if count(c) > P or sum(numel(s) for _, s in block_params(c, 0)) * 24 > per_node:
            break
        d, w = w, w + 512
    return scaled_config(L, d, V, S)

# ---- §6 checkpoints: canonical writer ----
def js_number(x):
    """ECMAScript Number::toString (shortest round-trip digits), as JSON.stringify writes numbers"""
    if isinstance(x, bool):
        raise TypeError
    # an integral value below 2^53 prints as itself; above, the shortest digits padded with zeros (2^60 → 1152921504606847000)
    if isinstance(x, int) or x == int(x) and abs(x) < 2 ** 53:
        return str(int(x))
    sign, digits, exp = Decimal(repr(float(x))).normalize().as_tuple()
    s = ''.join(map(str, digits))
    k, n = len(s), exp + len(s)
    out = '-' if sign else ''
    if k <= n <= 21:
        return out + s + '0' * (n - k)
    if 0 < n <= 21:
        return out + s[:n] + '.' + s[n:]
    if -6 < n <= 0:
        return out + '0.' + '0' * -n + s
    e = n - 1
    return out + s[0] + ('.' + s[1:] if k > 1 else '') + 'e' + ('+' if e >= 0 else '-') + str(abs(e))

def js_json(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float)):
        return js_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return '[' + ','.join(js_json(x) for x in v) + ']'
    return '{' + ','.join(json.dumps(k, ensure_ascii=False) + ':' + js_json(x) for k, x in v.items()) + '}'

def content_hash(tensors):
    h = hashlib.sha256(b'neuroshard/weights/v1\x00')
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0].encode('utf-8')):
        n, dt = name.encode('utf-8'), dtype.encode('utf-8')
        h.update(struct.pack('<I', len(n)) + n + struct.pack('<I', len(dt)) + dt + struct.pack('<I', len(shape)))
        for d in shape:
            h.update(struct.pack('<Q', d))
        h.update(struct.pack('<Q', len(data)) + data)
    return h.hexdigest()

def role_json(role):
    return js_json({'kind': role['kind'], 'start': role['start'], 'end': role['end']} if role['kind'] == 'blocks' else {'kind': role['kind']})

def encode(c, role, params, step=0, extra=None, mutate=None):
    """params: name -> bytes; the canonical file of §6 (mutate(header) lets a vector break one rule)"""
    names = sorted(params, key=lambda s: s.encode('utf-8'))
    specs = dict(shard_params(c, role))
    tensors = [(nm, 'F32', specs.get(nm, [len(params[nm]) // 4]), params[nm]) for nm in names]
    meta = dict(extra or {})
    meta.update({'format': 'neuroshard-checkpoint/1', 'architecture': js_json({k: c[k] for k in KEYS}),
                 'role': role_json(role), 'step': str(step), 'content_hash': content_hash(tensors)})
    header = {'__metadata__': meta}
    off = 0
    for nm, dt, shape, data in tensors:
        header[nm] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(data)]}
        off += len(data)
    data = b''.join(t[3] for t in tensors)
    if mutate:
        r = mutate(header, data)
        if isinstance(r, tuple):
            header, data = r
    hj = (header if isinstance(header, bytes) else js_json(header).encode('utf-8'))
    hj += b' ' * ((8 - len(hj) % 8) % 8)
    return struct.pack('<Q', len(hj)) + hj + data

def f32(values):
    return b''.join(struct.pack('<f', v) for v in values)

SMALL = {'vocabSize': 8, 'dModel': 4, 'nLayers': 2, 'nHeads': 2, 'nKvHeads': 1, 'ffnHidden': 6, 'maxSeqLen': 16,
         'ropeTheta': 10000, 'normEps': 1e-5, 'tieEmbeddings': False}

def params_for(c, role, scale=1.0):
    out, k = {}, 0
    for nm, shape in shard_params(c, role):
        out[nm] = f32([scale * ((k + i) % 7 - 3) / 4 for i in range(numel(shape))])
        k += numel(shape)
    return out

def checkpoint_cases():
    c, E, H, B = SMALL, {'kind': 'embed'}, {'kind': 'head'}, {'kind': 'blocks', 'start': 0, 'end': 2}
    pe, ph, pb = params_for(c, E), params_for(c, H), params_for(c, B)
    odd = dict(c, ropeTheta=500000.5, normEps=1e-7, tieEmbeddings=True)
    cases = {
        'valid-embed': dict(file=encode(c, E, pe, 7, {'note': 'test vector'}), role=E, step=7, metadata={'note': 'test vector'}),
        'valid-blocks': dict(file=encode(c, B, pb, 0), role=B, step=0),
        'valid-head': dict(file=encode(c, H, ph, 123456789), role=H, step=123456789),
        'valid-numbers': dict(file=encode(odd, H, params_for(odd, H), 1), config=odd, role=H, step=1),
        'truncated-prefix': dict(file=b'\x10\x00\x00\x00\x00\x00\x00', error='CheckpointTruncatedError'),
        'truncated-data': dict(file=encode(c, E, pe)[:-1], error='CheckpointTruncatedError'),
        'header-past-end': dict(file=struct.pack('<Q', 1000) + b'{}      ', error='CheckpointHeaderError'),
        'header-over-cap': dict(file=struct.pack('<Q', 100_000_001) + b'{}      ', error='CheckpointHeaderError'),
        'header-not-json': dict(file=encode(c, E, pe, mutate=lambda h, d: (b'{"__metadata__":', d)), error='CheckpointHeaderError'),
        'header-not-utf8': dict(file=encode(c, E, pe, mutate=lambda h, d: (js_json(h).encode()[:-1] + b',"\xff":1}', d)), error='CheckpointHeaderError'),
        'header-array': dict(file=encode(c, E, pe, mutate=lambda h, d: (b'[]', b'')), error='CheckpointHeaderError'),
        'unknown-dtype': dict(file=encode(c, E, pe, mutate=lambda h, d: h['embed.weight'].update(dtype='F31')), error='CheckpointHeaderError'),
        'bad-shape': dict(file=encode(c, E, pe, mutate=lambda h, d: h['embed.weight'].update(shape=[8, -4])), error='CheckpointHeaderError'),
        'metadata-not-strings': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(note=1)), error='CheckpointHeaderError'),
        'no-format': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].pop('format')), error='CheckpointHeaderError'),
        'other-format': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(format='neuroshard-checkpoint/2')), error='CheckpointHeaderError'),
        'invalid-architecture': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(architecture=js_json(dict(c, nHeads=3)))), error='CheckpointHeaderError'),
        'role-out-of-range': dict(file=encode(c, B, pb, mutate=lambda h, d: h['__metadata__'].update(role='{"kind":"blocks","start":0,"end":3}')), error='CheckpointHeaderError'),
        'step-leading-zero': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(step='07')), error='CheckpointHeaderError'),
        'hash-uppercase': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(content_hash=h['__metadata__']['content_hash'].upper())), error='CheckpointHeaderError'),
        'offsets-reversed': dict(file=encode(c, E, pe, mutate=lambda h, d: h['embed.weight'].update(data_offsets=[128, 0])), error='CheckpointOffsetsError'),
        'offsets-wrong-span': dict(file=encode(c, E, pe, mutate=lambda h, d: (h['embed.weight'].update(data_offsets=[0, 124]), (h, d[:124]))[1]), error='CheckpointOffsetsError'),
        'offsets-overlap': dict(file=encode(c, H, ph, mutate=lambda h, d: h['lm_head.weight'].update(data_offsets=[12, 140])), error='CheckpointOffsetsError'),
        'offsets-hole': dict(file=encode(c, H, ph, mutate=lambda h, d: (h['lm_head.weight'].update(data_offsets=[20, 148]), (h, d[:16] + b'\0\0\0\0' + d[16:]))[1]), error='CheckpointOffsetsError'),
        'trailing-bytes': dict(file=encode(c, E, pe) + b'\0\0\0\0', error='CheckpointOffsetsError'),
        'missing-tensor': dict(file=encode(c, H, {'final_norm.weight': ph['final_norm.weight']}), role=H, error='CheckpointMismatchError'),
        'unexpected-tensor': dict(file=encode(c, E, dict(pe, extra=f32([1]))), error='CheckpointMismatchError'),
        'dtype-f16': dict(file=encode(c, H, ph, mutate=lambda h, d: (h['final_norm.weight'].update(dtype='F16', data_offsets=[0, 8]), [h['lm_head.weight'].update(data_offsets=[8, 136])], (h, d[:8] + d[16:]))[2]), error='CheckpointMismatchError'),
        'shape-transposed': dict(file=encode(c, E, pe, mutate=lambda h, d: h['embed.weight'].update(shape=[4, 8])), error='CheckpointMismatchError'),
        'expected-other-architecture': dict(file=encode(c, E, pe), config=c, expectConfig=dict(c, normEps=1e-6), error='CheckpointMismatchError'),
        'expected-other-role': dict(file=encode(c, E, pe), expectRole=H, error='CheckpointMismatchError'),
        'hash-mismatch': dict(file=encode(c, E, pe, mutate=lambda h, d: h['__metadata__'].update(content_hash='0' * 64)), error='CheckpointHashMismatchError'),
        'expected-other-hash': dict(file=encode(c, E, pe), expectContentHash='1' * 64, error='CheckpointHashMismatchError'),
    }
    return cases

# ---- §5 graph inputs and outputs ----
def graph_io(c, role, variant):
    d, V, K, hd = c['dModel'], c['vocabSize'], c['nKvHeads'], c['dModel'] // c['nHeads']
    f = lambda n, s: {'name': n, 'dtype': 'float32', 'shape': s}
    i64 = lambda n, s: {'name': n, 'dtype': 'int64', 'shape': s}
    params = [f(n, s) for n, s in shard_params(c, role)]
    grads = [f('grad.' + n, s) for n, s in shard_params(c, role)]
    h = ['batch', 'seq', d]
    if role['kind'] == 'embed':
        if variant == 'backward':
            return [i64('input_ids', ['batch', 'seq']), f('grad_hidden', h)], [f('grad.embed.weight', [V, d])]
        return [i64('input_ids', ['batch', 'seq'])] + params, [f('hidden', h)]
    if role['kind'] == 'head':
        head, hgrads = params, grads
        if variant == 'forward':
            return [f('hidden', h), i64('targets', ['batch', 'seq'])] + head, [f('loss', [])]
        if variant == 'backward':
            return [f('hidden', h), i64('targets', ['batch', 'seq'])] + head + [f('grad_loss', [])], [f('grad_hidden', h)] + hgrads + [f('loss', [])]
        return [f('hidden', h)] + head, [f('logits', ['batch', 'seq', V])]
    ks = range(role['start'], role['end'])
    if variant == 'forward':
        return [f('hidden_in', h)] + params, [f('hidden_out', h)]
    if variant == 'backward':
        return [f('hidden_in', h)] + params + [f('grad_hidden_out', h)], [f('grad_hidden_in', h)] + grads
    past = [f(f'past_{kv}.{k}', ['batch', K, 'past', hd]) for k in ks for kv in ('key', 'value')]
    present = [f(f'present_{kv}.{k}', ['batch', K, 'past+seq', hd]) for k in ks for kv in ('key', 'value')]
    return [f('hidden_in', h)] + params + past + [i64('position_offset', [])], [f('hidden_out', h)] + present

TINY = {'vocabSize': 256, 'dModel': 64, 'nLayers': 2, 'nHeads': 4, 'nKvHeads': 2, 'ffnHidden': 176, 'maxSeqLen': 128,
        'ropeTheta': 10000, 'normEps': 1e-5, 'tieEmbeddings': False}

def graph_cases():
    out = []
    for c in (TINY, dict(TINY, tieEmbeddings=True)):
        for role in ({'kind': 'embed'}, {'kind': 'blocks', 'start': 0, 'end': 2}, {'kind': 'blocks', 'start': 1, 'end': 2}, {'kind': 'head'}):
            for variant in ('forward', 'backward', 'inference'):
                i, o = graph_io(c, role, variant)
                out.append({'tieEmbeddings': c['tieEmbeddings'], 'role': role, 'variant': variant, 'inputs': i, 'outputs': o})
    return out

# ---- cases ----
SCALING = {
    'table-10-nodes': (10, 40e9), 'table-100-nodes': (100, 800e9), 'table-1000-nodes': (1000, 8e12),
    'one-laptop': (1, 16e9), 'width-256': (4, 2e9), 'gib-not-gb': (1000, 8 * 2**40), 'gib-deeper': (50, 400 * 2**30), 'deep-narrow-nodes': (2000, 8e12),
    'error-zero-nodes': (0, 1e9), 'error-fractional-nodes': (1.5, 1e9), 'error-zero-memory': (2, 0), 'error-negative-memory': (2, -1e9),
}
CONFIGS = {
    'valid-tiny': TINY, 'valid-tied-odd-numbers': dict(TINY, tieEmbeddings=True, ropeTheta=500000.5, normEps=1e-7),
    'width-not-divisible': dict(TINY, nHeads=3), 'heads-not-divisible': dict(TINY, nKvHeads=3), 'odd-head-dim': dict(TINY, dModel=60, nHeads=4),
    'zero-vocab': dict(TINY, vocabSize=0), 'fractional-layers': dict(TINY, nLayers=1.5), 'negative-ffn': dict(TINY, ffnHidden=-176),
    'zero-eps': dict(TINY, normEps=0), 'negative-theta': dict(TINY, ropeTheta=-10000), 'string-width': dict(TINY, dModel='64'),
    'tie-not-bool': dict(TINY, tieEmbeddings=1), 'missing-field': {k: v for k, v in TINY.items() if k != 'maxSeqLen'},
}

def build():
    files = {}
    for name, (n, m) in SCALING.items():
        r = scale(n, m)
        files[f'scaling-{name}.json'] = {'description': f'scaling rule: {name.replace("-", " ")}', 'nodes': n, 'totalMemoryBytes': m,
                                        **({'error': 'InvalidConfigError'} if r is None else {'architecture': r, 'parameters': count(r)})}
    for name, c in CONFIGS.items():
        ok = valid_config(c)
        files[f'config-{name}.json'] = {'description': f'architecture: {name.replace("-", " ")}', 'config': c, **({} if ok else {'error': 'InvalidConfigError'})}
    for name, c in checkpoint_cases().items():
        v = {'description': f'checkpoint: {name.replace("-", " ")}', 'fileHex': c['file'].hex()}
        for k in ('expectConfig', 'expectRole', 'expectContentHash'):
            if k in c:
                v[k] = c[k]
        if 'error' in c:
            v['error'] = c['error']
        else:
            cfg = c.get('config', SMALL)
            v.update(config=cfg, role=c['role'], step=c['step'], metadata=c.get('metadata', {}),
                     contentHash=json.loads(c['file'][8:8 + struct.unpack('<Q', c['file'][:8])[0]])['__metadata__']['content_hash'])
        files[f'checkpoint-{name}.json'] = v
    files['graph-io.json'] = {'description': 'inputs and outputs (name, dtype, shape; symbolic dims as strings) of every shard graph of the tiny preset, untied and tied (§5)',
                              'config': TINY, 'graphs': graph_cases()}
    return files

# ---- §4 initialisation and the test-vector weights, checked against tiny-logits.json and tiny.*.safetensors ----
M32 = 0xffffffff

def rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M32

class Rng:
    def __init__(self, seed, name):
        D = hashlib.sha256(b'neuroshard/init/v1\x00' + struct.pack('<Q', seed) + name.encode('utf-8')).digest()
        self.s = list(struct.unpack('<4I', D[:16]))

    def next(self):
        s0, s1, s2, s3 = self.s
        r = (rotl((s1 * 5) & M32, 7) * 9) & M32
        t = (s1 << 9) & M32
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
        self.s = [s0, s1, s2, s3]
        return r

    def uniform(self):
        a, b = self.next(), self.next()
        return ((a >> 5) * 2**26 + (b >> 6) + 0.5) / 2**53

def fround(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]

def init(c, name, n, seed):
    if name.endswith('norm.weight'):
        return [1.0] * n
    std = 0.02 / math.sqrt(2 * c['nLayers']) if name.endswith(('attn.wo', 'mlp.w_down')) else 0.02
    r, out = Rng(seed, name), []
    while len(out) < n:
        u1, u2 = r.uniform(), r.uniform()
        rr, th = math.sqrt(-2 * math.log(u1)), 2 * math.pi * u2
        out += [fround(std * rr * math.cos(th)), fround(std * rr * math.sin(th))]
    return out[:n]

def vector_weights(c, name, n, seed):
    if name.endswith('norm.weight'):
        r, out = Rng(seed, name), []
        for _ in range(n):
            u1, u2 = r.uniform(), r.uniform()
            out.append(fround(1 + 0.1 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)))
        return out
    return [fround(x * 10) for x in init(c, name, n, seed)]

def check_tiny():
    v = json.load(open(os.path.join(HERE, 'tiny-logits.json')))
    c = v['config']
    for it in v['init']:
        assert init(c, it['name'], len(it['first']), it['seed']) == it['first'], it['name']
    for t in v['contentHashes']:
        assert content_hash([(x['name'], x['dtype'], x['shape'], bytes.fromhex(x['dataHex'])) for x in t['tensors']]) == t['contentHash']
    for ck in v['checkpoints']:
        b = open(os.path.join(HERE, ck['file']), 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        header = json.loads(b[8:8 + n])
        tensors = []
        for name, e in header.items():
            if name == '__metadata__':
                continue
            data = b[8 + n + e['data_offsets'][0]:8 + n + e['data_offsets'][1]]
            want = vector_weights(c, name, numel(e['shape']), v['weightSeed'])
            assert data == b''.join(struct.pack('<f', x) for x in want), name
            tensors.append((name, e['dtype'], e['shape'], data))
        assert content_hash(tensors) == ck['contentHash'] == header['__metadata__']['content_hash'], ck['file']
        assert sorted(nm for nm, _ in shard_params(c, ck['role'])) == sorted(t[0] for t in tensors), ck['file']

def load_tiny():
    v = json.load(open(os.path.join(HERE, 'tiny-logits.json')))
    W = {}
    for ck in v['checkpoints']:
        b = open(os.path.join(HERE, ck['file']), 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        for name, e in json.loads(b[8:8 + n]).items():
            if name != '__metadata__':
                data = b[8 + n + e['data_offsets'][0]:8 + n + e['data_offsets'][1]]
                W[name] = (list(struct.unpack(f'<{len(data) // 4}f', data)), e['shape'])
    return v, v['config'], W

def forward(c, W, ids, resume=None, trace=None):
    """§2 in float64: logits [seq][V] for one sequence. `trace` (a list) receives the hidden state entering each block and
    the head; `resume` = (l, that state at block l) starts there (the same arithmetic: blocks before l are not re-run)"""
    def mat(name):
        flat, shape = W[name]
        cc = shape[1]
        return [flat[i * cc:(i + 1) * cc] for i in range(shape[0])]
    def matmul(x, w):
        wt = list(zip(*w))
        # sum(map(mul, …)): the same additions in the same order as sum(a * b for …), without a generator frame per term
        return [[sum(map(operator.mul, row, col)) for col in wt] for row in x]
    def rms(x, w, eps):
        return [[xi * wi / math.sqrt(sum(t * t for t in row) / len(row) + eps) for xi, wi in zip(row, w)] for row in x]
    d, H, K, L = c['dModel'], c['nHeads'], c['nKvHeads'], c['nLayers']
    hd, eps, th, S = d // H, c['normEps'], c['ropeTheta'], len(ids)
    def rope(x, p):
        half, out = hd // 2, [0.0] * hd
        for i in range(half):
            f = th ** (-2 * i / hd)
            cs, sn = math.cos(p * f), math.sin(p * f)
            out[i] = x[i] * cs - x[i + half] * sn
            out[i + half] = x[i + half] * cs + x[i] * sn
        return out
    if resume is None:
        emb = mat('embed.weight')
        h, first = [emb[i][:] for i in ids], 0
    else:
        first, h = resume
    for l in range(first, L):
        if trace is not None:
            trace.append(h)
        pre = f'blocks.{l}.'
        a = rms(h, W[pre + 'attn_norm.weight'][0], eps)
        q, k, vv = matmul(a, mat(pre + 'attn.wq')), matmul(a, mat(pre + 'attn.wk')), matmul(a, mat(pre + 'attn.wv'))
        o = [[0.0] * (H * hd) for _ in range(S)]
        for j in range(H):
            kv = j // (H // K)
            qs = [rope(q[p][j * hd:(j + 1) * hd], p) for p in range(S)]
            ks = [rope(k[p][kv * hd:(kv + 1) * hd], p) for p in range(S)]
            vs = [vv[p][kv * hd:(kv + 1) * hd] for p in range(S)]
            for p in range(S):
                sc = [sum(x * y for x, y in zip(qs[p], ks[t])) / math.sqrt(hd) if t <= p else -1e9 for t in range(S)]
                m = max(sc)
                e = [math.exp(x - m) for x in sc]
                z = sum(e)
                for i in range(hd):
                    o[p][j * hd + i] = sum(e[t] / z * vs[t][i] for t in range(S))
        o = matmul(o, mat(pre + 'attn.wo'))
        h = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(h, o)]
        m = rms(h, W[pre + 'mlp_norm.weight'][0], eps)
        g, u = matmul(m, mat(pre + 'mlp.w_gate')), matmul(m, mat(pre + 'mlp.w_up'))
        act = [[(x / (1 + math.exp(-x))) * y for x, y in zip(r1, r2)] for r1, r2 in zip(g, u)]
        dn = matmul(act, mat(pre + 'mlp.w_down'))
        h = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(h, dn)]
    if trace is not None:
        trace.append(h)
    hn = rms(h, W['final_norm.weight'][0], eps)
    w_out = [list(col) for col in zip(*mat('embed.weight'))] if c['tieEmbeddings'] else mat('lm_head.weight')
    return matmul(hn, w_out)

def mean_loss(logits, targets):
    total = 0.0
    for row, t in zip(logits, targets):
        m = max(row)
        total -= row[t] - (m + math.log(sum(math.exp(x - m) for x in row)))
    return total / len(targets)

def check_forward():
    """§2 in float64 on the tiny checkpoints: the logits and loss of tiny-logits.json within 1e-4"""
    v, c, W = load_tiny()
    logits = forward(c, W, v['prompt'])
    diff = max(abs(a - b) for a, b in zip([x for row in logits for x in row], v['logits']))
    assert diff < 1e-4, f'logits differ by {diff}'
    loss = mean_loss(logits, v['targets'])
    assert abs(loss - v['loss']) < 1e-4, f'loss {loss} vs {v["loss"]}'
    return diff

def gradient_vectors():
    """d loss / d parameter for two elements of every parameter, by 4-point central differences of §2 (slow)"""
    v, c, W = load_tiny()
    out = []
    hstep = 1e-3
    # a parameter of block l changes nothing before it: each evaluation resumes from the unperturbed hidden state
    # entering block l (the head's parameters: entering the head); embed.weight (used first, and by a tied head) re-runs all
    trace = []
    forward(c, W, v['prompt'], trace=trace)
    for name in sorted(W):
        at = int(name.split('.')[1]) if name.startswith('blocks.') else c['nLayers'] if name in ('final_norm.weight', 'lm_head.weight') else None
        flat, shape = W[name]
        # embed.weight: row 0 (no prompt token: gradient 0) and an element of the first prompt token's row
        second = v['prompt'][0] * c['dModel'] + 1 if name == 'embed.weight' else len(flat) // 2 + 1
        for idx in (0, second):
            def f(delta):
                w2 = dict(W)
                g = flat[:]
                g[idx] += delta
                w2[name] = (g, shape)
                return mean_loss(forward(c, w2, v['prompt'], resume=None if at is None else (at, trace[at])), v['targets'])
            grad = (8 * (f(hstep) - f(-hstep)) - (f(2 * hstep) - f(-2 * hstep))) / (12 * hstep)
            out.append({'name': name, 'index': idx, 'grad': float(f'{grad:.9g}')})
    return {'description': 'gradients of the tiny vector model\'s mean loss (prompt, targets of tiny-logits.json, grad_loss 1) at two elements of every parameter, by 4-point central differences of the §2 forward pass in float64 (step 1e-3); the pipeline of backward graphs (§5) must match within 1e-4 + 2e-3·|grad|', 'gradients': out}

if __name__ == '__main__':
    files = build()
    if '--grads' in sys.argv:
        files['tiny-grads.json'] = gradient_vectors()
    elif os.path.exists(os.path.join(HERE, 'tiny-grads.json')):
        files['tiny-grads.json'] = json.load(open(os.path.join(HERE, 'tiny-grads.json')))
    if '--write' in sys.argv:
        for name, v in files.items():
            with open(os.path.join(HERE, name), 'w', encoding='utf-8') as fh:
                json.dump(v, fh, indent=1 if name == 'graph-io.json' else 2)
                fh.write('\n')
    for name, v in files.items():
        assert json.load(open(os.path.join(HERE, name), encoding='utf-8')) == json.loads(json.dumps(v)), name
    check_tiny()
    logit_diff = check_forward()
    print(f'model vectors: {len(files)} files match the Python implementation; tiny init, weights (the test-vector recipe) and content hashes re-derived; forward pass (§2) matches the logits within {logit_diff:.1e}')

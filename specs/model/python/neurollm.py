"""NeuroLLM written from specs/model/README.md alone, Python standard library only, float64 throughout:

- §3 parameter names and shapes, §5 the shard graphs' inputs and outputs (names, dtypes, shapes);
- §6 checkpoint reader with every rejection of the table (typed errors), §7 content hash;
- §2 forward pass as shards (embed → blocks [s, e) → head), with a KV cache (positions absolute);
- §5 backward pipeline (head backward → blocks backward → embed backward) by hand-written reverse-mode
  derivatives of §2 — not finite differences, which is how the gradient vectors were made (vectors/reference.py).

Lists of lists, no numpy: the tiny model (125k parameters, 11 tokens) runs forward and backward in about a second.

    python3 specs/model/python/neurollm.py     # checks tiny-logits.json and tiny-grads.json, prints the largest errors
"""
import hashlib
import json
import math
import os
import re
import struct
import sys
from operator import mul

KEYS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'ffnHidden', 'maxSeqLen', 'ropeTheta', 'normEps', 'tieEmbeddings']
BLOCK = ['attn_norm.weight', 'attn.wq', 'attn.wk', 'attn.wv', 'attn.wo', 'mlp_norm.weight', 'mlp.w_gate', 'mlp.w_up', 'mlp.w_down']


class ModelError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


# ---- §1, §3 ----
def check_config(c):
    def bad(why):
        raise ModelError('InvalidConfigError', why)
    if not isinstance(c, dict):
        bad('not an object')
    for k in KEYS[:7]:
        v = c.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not 1 <= v <= 2 ** 53 - 1:
            bad(k)
    for k in ('ropeTheta', 'normEps'):
        v = c.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            bad(k)
    if not isinstance(c.get('tieEmbeddings'), bool):
        bad('tieEmbeddings')
    d, H, K = int(c['dModel']), int(c['nHeads']), int(c['nKvHeads'])
    if d % H or H % K or (d // H) % 2:
        bad('head layout')
    return c


def shard_parameters(c, role):
    """§3: [(name, shape)] of a shard; the tied head holds embed.weight instead of lm_head.weight"""
    d, V, F = c['dModel'], c['vocabSize'], c['ffnHidden']
    hd = d // c['nHeads']
    if role['kind'] == 'embed':
        return [('embed.weight', [V, d])]
    if role['kind'] == 'head':
        return [('final_norm.weight', [d]), ('embed.weight', [V, d]) if c['tieEmbeddings'] else ('lm_head.weight', [d, V])]
    if not (isinstance(role.get('start'), int) and isinstance(role.get('end'), int) and 0 <= role['start'] < role['end'] <= c['nLayers']):
        raise ModelError('InvalidConfigError', f'block range {role}')
    shapes = [[d], [d, c['nHeads'] * hd], [d, c['nKvHeads'] * hd], [d, c['nKvHeads'] * hd], [c['nHeads'] * hd, d], [d], [d, F], [d, F], [F, d]]
    return [(f'blocks.{i}.{n}', s) for i in range(role['start'], role['end']) for n, s in zip(BLOCK, shapes)]


def graph_io(c, role, variant):
    """§5 table: (inputs, outputs) as [{name, dtype, shape}]"""
    d, V, K, hd = c['dModel'], c['vocabSize'], c['nKvHeads'], c['dModel'] // c['nHeads']
    act = ['batch', 'seq', d]

    def t(name, shape, dtype='float32'):
        return {'name': name, 'dtype': dtype, 'shape': shape}
    params = [t(n, s) for n, s in shard_parameters(c, role)]
    grads = [t('grad.' + n, s) for n, s in shard_parameters(c, role)]
    ids = lambda name: t(name, ['batch', 'seq'], 'int64')  # noqa: E731
    kind = role['kind']
    if kind == 'embed':
        if variant == 'backward':
            return [ids('input_ids'), t('grad_hidden', act)], [t('grad.embed.weight', [V, d])]
        return [ids('input_ids')] + params, [t('hidden', act)]
    if kind == 'head':
        if variant == 'forward':
            return [t('hidden', act), ids('targets')] + params, [t('loss', [])]
        if variant == 'backward':
            return [t('hidden', act), ids('targets'), t('grad_loss', [])] + params, [t('grad_hidden', act), t('loss', [])] + grads
        return [t('hidden', act)] + params, [t('logits', ['batch', 'seq', V])]
    if variant == 'forward':
        return [t('hidden_in', act)] + params, [t('hidden_out', act)]
    if variant == 'backward':
        return [t('hidden_in', act), t('grad_hidden_out', act)] + params, [t('grad_hidden_in', act)] + grads
    layers = range(role['start'], role['end'])
    past = [t(f'past_{x}.{k}', ['batch', K, 'past', hd]) for k in layers for x in ('key', 'value')]
    present = [t(f'present_{x}.{k}', ['batch', K, 'past+seq', hd]) for k in layers for x in ('key', 'value')]
    return [t('hidden_in', act), t('position_offset', [], 'int64')] + params + past, [t('hidden_out', act)] + present


# ---- §7, §6 ----
def content_hash(tensors):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    h = hashlib.sha256(b'neuroshard/weights/v1\x00')
    for name, dtype, shape, data in sorted(tensors, key=lambda x: x[0].encode('utf-8')):
        n, t = name.encode('utf-8'), dtype.encode('utf-8')
        h.update(struct.pack('<I', len(n)) + n + struct.pack('<I', len(t)) + t + struct.pack('<I', len(shape)))
        h.update(b''.join(struct.pack('<Q', x) for x in shape) + struct.pack('<Q', len(data)) + data)
    return h.hexdigest()


DTYPE_SIZE = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1, 'U16': 2, 'U32': 4, 'U64': 8,
              'F8_E4M3': 1, 'F8_E5M2': 1}


def read_checkpoint(data, expect_config=None, expect_role=None, expect_hash=None):
    """§6: {config, role, step, metadata (the extra keys), contentHash, parameters: name -> (floats, shape)}"""
    def fail(name, why):
        raise ModelError(name, why)
    if len(data) < 8:
        fail('CheckpointTruncatedError', 'no header length')
    n = struct.unpack('<Q', data[:8])[0]
    if n > 100_000_000 or 8 + n > len(data):
        fail('CheckpointHeaderError', 'header length past the end or over the cap')
    try:
        header = json.loads(data[8:8 + n].decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        fail('CheckpointHeaderError', f'header: {e}')
    if not isinstance(header, dict):
        fail('CheckpointHeaderError', 'header is not an object')
    meta = header.pop('__metadata__', {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        fail('CheckpointHeaderError', '__metadata__ is not a string map')
    entries = []
    for name, e in header.items():
        if not isinstance(e, dict) or e.get('dtype') not in DTYPE_SIZE:
            fail('CheckpointHeaderError', f'{name}: dtype')
        shape, offs = e.get('shape'), e.get('data_offsets')
        if not isinstance(shape, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape):
            fail('CheckpointHeaderError', f'{name}: shape')
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in offs)):
            fail('CheckpointOffsetsError', f'{name}: data_offsets')
        entries.append((name, e['dtype'], shape, offs))
    # metadata: format, architecture, role, step, content_hash
    if meta.get('format') != 'neuroshard-checkpoint/1':
        fail('CheckpointHeaderError', 'format')
    try:
        config = check_config(json.loads(meta['architecture']))
        role = json.loads(meta['role'])
        shard_parameters(config, role) if isinstance(role, dict) and role.get('kind') in ('embed', 'blocks', 'head') else fail('CheckpointHeaderError', 'role')
    except (KeyError, ValueError, ModelError) as e:
        fail('CheckpointHeaderError', f'architecture or role: {e}')
    step = meta.get('step', '')
    if not re.fullmatch(r'0|[1-9][0-9]*', step) or int(step) > 2 ** 53 - 1:
        fail('CheckpointHeaderError', 'step')
    if not re.fullmatch(r'[0-9a-f]{64}', meta.get('content_hash', '')):
        fail('CheckpointHeaderError', 'content_hash')
    # offsets: begin ≤ end, span = numel·size, contiguous from 0 without overlap or hole, nothing after
    body = data[8 + n:]
    pos = 0
    for name, dtype, shape, (b, e) in sorted(entries, key=lambda x: (x[3][0], x[3][1])):
        numel = 1
        for x in shape:
            numel *= x
        if b > e or e - b != numel * DTYPE_SIZE[dtype] or b != pos:
            fail('CheckpointOffsetsError', f'{name}: offsets {b}, {e}')
        pos = e
    if pos > len(body):
        fail('CheckpointTruncatedError', 'data ends before the last tensor')
    if pos < len(body):
        fail('CheckpointOffsetsError', 'bytes after the last tensor')
    want = dict(shard_parameters(config, role))
    names = {x[0] for x in entries}
    if names != set(want):
        fail('CheckpointMismatchError', f'tensors {sorted(names ^ set(want))}')
    for name, dtype, shape, _ in entries:
        if dtype != 'F32' or shape != want[name]:
            fail('CheckpointMismatchError', f'{name}: {dtype} {shape}')
    if expect_config is not None and any(config[k] != expect_config[k] for k in KEYS):
        fail('CheckpointMismatchError', 'another architecture')
    if expect_role is not None and role != expect_role:
        fail('CheckpointMismatchError', 'another role')
    raw = [(name, dtype, shape, body[b:e]) for name, dtype, shape, (b, e) in entries]
    h = content_hash(raw)
    if h != meta['content_hash'] or (expect_hash is not None and h != expect_hash):
        fail('CheckpointHashMismatchError', f'content hash {h}')
    extra = {k: v for k, v in meta.items() if k not in ('format', 'architecture', 'role', 'step', 'content_hash')}
    params = {name: (list(struct.unpack(f'<{len(b) // 4}f', b)), shape) for name, _, shape, b in raw}
    return {'config': config, 'role': role, 'step': int(step), 'metadata': extra, 'contentHash': h, 'parameters': params}


# ---- §2 forward, §5 backward ----
def rows(flat, shape):
    n = shape[1]
    return [flat[i * n:(i + 1) * n] for i in range(shape[0])]


def cols(flat, shape):
    """columns of a [in, out] matrix: x · W is [dot(x, col) for col in cols]"""
    return [list(c) for c in zip(*rows(flat, shape))]


def matvec(x, wcols):
    return [sum(map(mul, x, c)) for c in wcols]


def matmul(X, wcols):
    return [matvec(x, wcols) for x in X]


def add_outer(G, xs, ys):
    """G += Σ_p xs[p]ᵀ · ys[p] for G [in][out]"""
    for x, y in zip(xs, ys):
        for i, xi in enumerate(x):
            if xi:
                g = G[i]
                for j, yj in enumerate(y):
                    g[j] += xi * yj


class Model:
    """the parameters of every shard (name -> (floats, shape)) and the §2 computation as shards"""

    def __init__(self, config, params):
        self.c = check_config(config)
        self.p = params
        c = config
        self.d, self.H, self.K = c['dModel'], c['nHeads'], c['nKvHeads']
        self.hd, self.eps, self.theta = self.d // self.H, c['normEps'], c['ropeTheta']
        self._cols, self._rows = {}, {}

    def W(self, name):   # columns of x · W
        if name not in self._cols:
            self._cols[name] = cols(*self.p[name])
        return self._cols[name]

    def Wt(self, name):  # rows of W, i.e. columns of y · Wᵀ
        if name not in self._rows:
            self._rows[name] = rows(*self.p[name])
        return self._rows[name]

    def rms(self, x, w):
        r = 1 / math.sqrt(sum(v * v for v in x) / len(x) + self.eps)
        return [v * r * g for v, g in zip(x, w)], r

    def rms_back(self, x, r, w, dy, dw):
        n = len(x)
        s = sum(a * b * c for a, b, c in zip(dy, w, x))
        for i in range(n):
            dw[i] += dy[i] * x[i] * r
        return [r * dy[i] * w[i] - x[i] * r ** 3 * s / n for i in range(n)]

    def rope(self, x, p, inverse=False):
        half, out = self.hd // 2, list(x)
        for i in range(half):
            f = p * self.theta ** (-2 * i / self.hd)
            c, s = math.cos(f), math.sin(f)
            if inverse:
                s = -s
            out[i] = x[i] * c - x[i + half] * s
            out[i + half] = x[i + half] * c + x[i] * s
        return out

    # embed
    def embed(self, ids):
        flat, (V, d) = self.p['embed.weight']
        return [flat[t * d:(t + 1) * d] for t in ids]

    def embed_back(self, ids, dh, grads):
        V, d = self.p['embed.weight'][1]
        g = grads.setdefault('embed.weight', [0.0] * (V * d))
        for t, row in zip(ids, dh):
            for j, v in enumerate(row):
                g[t * d + j] += v

    # one block; cache (for inference): {'k': [kv head][pos] roped keys, 'v': [kv head][pos] values}
    def block(self, i, h, pos0=0, cache=None, keep=False):
        pre, hd, H, K = f'blocks.{i}.', self.hd, self.H, self.K
        a_r = [self.rms(x, self.p[pre + 'attn_norm.weight'][0]) for x in h]
        a = [x for x, _ in a_r]
        q, k, v = matmul(a, self.W(pre + 'attn.wq')), matmul(a, self.W(pre + 'attn.wk')), matmul(a, self.W(pre + 'attn.wv'))
        S = len(h)
        qs = [[self.rope(q[p][j * hd:(j + 1) * hd], pos0 + p) for p in range(S)] for j in range(H)]
        ks = [[self.rope(k[p][j * hd:(j + 1) * hd], pos0 + p) for p in range(S)] for j in range(K)]
        vs = [[v[p][j * hd:(j + 1) * hd] for p in range(S)] for j in range(K)]
        if cache is not None:
            for j in range(K):
                cache['k'][j] += ks[j]
                cache['v'][j] += vs[j]
            ks, vs = cache['k'], cache['v']
        past = len(ks[0]) - S
        scale = 1 / math.sqrt(hd)
        merged = [[0.0] * (H * hd) for _ in range(S)]
        probs = []
        for j in range(H):
            kv = j // (H // K)
            P = []
            for p in range(S):
                sc = [sum(map(mul, qs[j][p], kk)) * scale if t <= past + p else -1e9 for t, kk in enumerate(ks[kv])]
                m = max(sc)
                e = [math.exp(x - m) for x in sc]
                z = sum(e)
                pr = [x / z for x in e]
                P.append(pr)
                o = merged[p]
                for t, w in enumerate(pr):
                    if w:
                        for u, val in enumerate(vs[kv][t]):
                            o[j * hd + u] += w * val
            probs.append(P)
        att = matmul(merged, self.W(pre + 'attn.wo'))
        h1 = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(h, att)]
        m_r = [self.rms(x, self.p[pre + 'mlp_norm.weight'][0]) for x in h1]
        m = [x for x, _ in m_r]
        g, u = matmul(m, self.W(pre + 'mlp.w_gate')), matmul(m, self.W(pre + 'mlp.w_up'))
        act = [[gi / (1 + math.exp(-gi)) * ui for gi, ui in zip(gr, ur)] for gr, ur in zip(g, u)]
        out = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(h1, matmul(act, self.W(pre + 'mlp.w_down')))]
        if keep:
            self.saved = dict(h=h, a=a, a_r=a_r, qs=qs, ks=ks, vs=vs, probs=probs, merged=merged, h1=h1, m=m, m_r=m_r, g=g, u=u, act=act)
        return out

    def block_back(self, i, dout, grads):
        """after block(i, h, keep=True): dL/dh; adds dL/dW of the block's parameters to grads"""
        s, pre, hd, H, K = self.saved, f'blocks.{i}.', self.hd, self.H, self.K
        G = {n: grads.setdefault(pre + n, [0.0] * len(self.p[pre + n][0])) for n in BLOCK}
        S = len(dout)

        def mat_grad(name, xs, ys):
            r, c = self.p[pre + name][1]
            tmp = [[0.0] * c for _ in range(r)]
            add_outer(tmp, xs, ys)
            flat = G[name]
            for a in range(r):
                for b in range(c):
                    flat[a * c + b] += tmp[a][b]
        # MLP
        dact = matmul(dout, self.Wt(pre + 'mlp.w_down'))
        mat_grad('mlp.w_down', s['act'], dout)
        dg, du = [], []
        for gr, ur, dr in zip(s['g'], s['u'], dact):
            sig = [1 / (1 + math.exp(-x)) for x in gr]
            dg.append([d * u * sg * (1 + x * (1 - sg)) for d, u, sg, x in zip(dr, ur, sig, gr)])
            du.append([d * x * sg for d, x, sg in zip(dr, gr, sig)])
        mat_grad('mlp.w_gate', s['m'], dg)
        mat_grad('mlp.w_up', s['m'], du)
        dm = [[x + y for x, y in zip(r1, r2)] for r1, r2 in zip(matmul(dg, self.Wt(pre + 'mlp.w_gate')), matmul(du, self.Wt(pre + 'mlp.w_up')))]
        w = self.p[pre + 'mlp_norm.weight'][0]
        dh1 = [[a + b for a, b in zip(do, self.rms_back(x, r, w, dmm, G['mlp_norm.weight']))] for do, x, (_, r), dmm in zip(dout, s['h1'], s['m_r'], dm)]
        # attention
        dmerged = matmul(dh1, self.Wt(pre + 'attn.wo'))
        mat_grad('attn.wo', s['merged'], dh1)
        scale = 1 / math.sqrt(hd)
        dq = [[0.0] * (H * hd) for _ in range(S)]
        dk = [[[0.0] * hd for _ in range(S)] for _ in range(K)]
        dv = [[[0.0] * hd for _ in range(S)] for _ in range(K)]
        for j in range(H):
            kv = j // (H // K)
            for p in range(S):
                do = dmerged[p][j * hd:(j + 1) * hd]
                pr = s['probs'][j][p]
                dp = [sum(map(mul, do, vv)) for vv in s['vs'][kv]]
                dot = sum(map(mul, pr, dp))
                dsc = [w_ * (x - dot) * scale for w_, x in zip(pr, dp)]
                qrow = [0.0] * hd
                for t, (w_, ds) in enumerate(zip(pr, dsc)):
                    if w_:
                        dvt, dkt, kt, qp = dv[kv][t], dk[kv][t], s['ks'][kv][t], s['qs'][j][p]
                        for u in range(hd):
                            dvt[u] += w_ * do[u]
                            dkt[u] += ds * qp[u]
                            qrow[u] += ds * kt[u]
                dq[p][j * hd:(j + 1) * hd] = self.rope(qrow, p, inverse=True)
        dkf = [[x for j in range(K) for x in self.rope(dk[j][p], p, inverse=True)] for p in range(S)]
        dvf = [[x for j in range(K) for x in dv[j][p]] for p in range(S)]
        mat_grad('attn.wq', s['a'], dq)
        mat_grad('attn.wk', s['a'], dkf)
        mat_grad('attn.wv', s['a'], dvf)
        da = [[x + y + z for x, y, z in zip(r1, r2, r3)] for r1, r2, r3 in
              zip(matmul(dq, self.Wt(pre + 'attn.wq')), matmul(dkf, self.Wt(pre + 'attn.wk')), matmul(dvf, self.Wt(pre + 'attn.wv')))]
        w = self.p[pre + 'attn_norm.weight'][0]
        return [[a + b for a, b in zip(d1, self.rms_back(x, r, w, dd, G['attn_norm.weight']))] for d1, x, (_, r), dd in zip(dh1, s['h'], s['a_r'], da)]

    # head
    def out_cols(self):
        if self.c['tieEmbeddings']:
            return self.Wt('embed.weight')   # W_out = embed.weightᵀ: its columns are embed.weight's rows
        return self.W('lm_head.weight')

    def logits(self, h):
        return matmul([self.rms(x, self.p['final_norm.weight'][0])[0] for x in h], self.out_cols())

    def head_back(self, h, targets, n_total, grad_loss, grads):
        """loss terms of these rows and dL/dh; adds the head's parameter gradients (the mean is over n_total positions)"""
        wf = self.p['final_norm.weight'][0]
        gf = grads.setdefault('final_norm.weight', [0.0] * len(wf))
        tied = self.c['tieEmbeddings']
        wname = 'embed.weight' if tied else 'lm_head.weight'
        gw = grads.setdefault(wname, [0.0] * len(self.p[wname][0]))
        V = self.c['vocabSize']
        loss, dh = 0.0, []
        for x, t in zip(h, targets):
            hn, r = self.rms(x, wf)
            z = matvec(hn, self.out_cols())
            m = max(z)
            e = [math.exp(v - m) for v in z]
            zs = sum(e)
            loss -= z[t] - m - math.log(zs)
            dz = [v / zs * grad_loss / n_total for v in e]
            dz[t] -= grad_loss / n_total
            d = len(hn)
            for a in range(d):
                if tied:   # grad of embed.weight [V, d]: dz ⊗ hn
                    for b in range(V):
                        gw[b * d + a] += dz[b] * hn[a]
                else:      # lm_head [d, V]
                    row = a * V
                    for b in range(V):
                        gw[row + b] += hn[a] * dz[b]
            dhn = [sum(map(mul, dz, col)) for col in (self.W(wname) if tied else self.Wt(wname))]
            dh.append(self.rms_back(x, r, wf, dhn, gf))
        return loss, dh


def load(config, checkpoints):
    """checkpoints: [(file bytes, role, content hash)] -> Model (each file read and checked by §6)"""
    params = {}
    for data, role, h in checkpoints:
        params.update(read_checkpoint(data, config, role, h)['parameters'])
    return Model(config, params)


def forward(model, ids_batch, targets_batch=None):
    """§2 over embed → blocks 0..L → head: (logits [batch][seq][V], mean loss or None)"""
    L = model.c['nLayers']
    out, loss, n = [], 0.0, sum(len(x) for x in ids_batch)
    for b, ids in enumerate(ids_batch):
        h = model.embed(ids)
        for i in range(L):
            h = model.block(i, h)
        z = model.logits(h)
        out.append(z)
        if targets_batch is not None:
            for row, t in zip(z, targets_batch[b]):
                m = max(row)
                loss -= row[t] - m - math.log(sum(math.exp(v - m) for v in row))
    return out, (loss / n if targets_batch is not None else None)


def decode(model, ids, steps):
    """KV-cache inference: each step [from, to) of ids runs with the cache of the earlier steps; the logits rows"""
    K, L = model.K, model.c['nLayers']
    caches = [{'k': [[] for _ in range(K)], 'v': [[] for _ in range(K)]} for _ in range(L)]
    rows_out, pos = [], 0
    for a, b in steps:
        h = model.embed(ids[a:b])
        for i in range(L):
            h = model.block(i, h, pos0=pos, cache=caches[i])
        rows_out += model.logits(h)
        pos = b
    return rows_out


def gradients(model, ids_batch, targets_batch, grad_loss=1.0):
    """§5 pipeline: embed forward → blocks forward → head backward → blocks backward → embed backward;
    (mean loss, name -> flat gradient)"""
    L = model.c['nLayers']
    n = sum(len(x) for x in ids_batch)
    grads, loss = {}, 0.0
    for ids, targets in zip(ids_batch, targets_batch):
        hs = [model.embed(ids)]
        for i in range(L):
            hs.append(model.block(i, hs[-1]))
        part, dh = model.head_back(hs[-1], targets, n, grad_loss, grads)
        loss += part
        for i in reversed(range(L)):
            model.block(i, hs[i], keep=True)   # a backward graph recomputes its forward (§5)
            dh = model.block_back(i, dh, grads)
        model.embed_back(ids, dh, grads)
    return loss / n, grads


if __name__ == '__main__':
    import time
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'vectors')
    v = json.load(open(os.path.join(here, 'tiny-logits.json')))
    t0 = time.time()
    model = load(v['config'], [(open(os.path.join(here, c['file']), 'rb').read(), c['role'], c['contentHash']) for c in v['checkpoints']])
    logits, loss = forward(model, [v['prompt']], [v['targets']])
    d_logits = max(abs(a - b) for a, b in zip([x for r in logits[0] for x in r], v['logits']))
    steps = [[0, 5]] + [[i, i + 1] for i in range(5, len(v['prompt']))]
    d_cache = max(abs(a - b) for a, b in zip([x for r in decode(model, v['prompt'], steps) for x in r], v['logits']))
    g_loss, grads = gradients(model, [v['prompt']], [v['targets']])
    gv = json.load(open(os.path.join(here, 'tiny-grads.json')))['gradients']
    worst = max((abs(grads[e['name']][e['index']] - e['grad']) - (1e-4 + 2e-3 * abs(e['grad'])), e['name'], e['index']) for e in gv)
    ok = d_logits < 1e-4 and d_cache < 1e-4 and abs(loss - v['loss']) < 1e-4 and abs(g_loss - v['loss']) < 1e-4 and worst[0] <= 0
    print(f'logits max |Δ| {d_logits:.1e}, KV-cache decode {d_cache:.1e}, loss |Δ| {abs(loss - v["loss"]):.1e}; '
          f'{len(gv)} gradients within 1e-4 + 2e-3·|g|: {"yes" if worst[0] <= 0 else "no, worst " + str(worst)} ({time.time() - t0:.1f} s)')
    sys.exit(0 if ok else 1)

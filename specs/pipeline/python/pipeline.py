"""The pipeline's byte-level rules (specs/pipeline/README.md §3 messages, §6 sampling), written from the spec text
alone, standard library only: a schema-driven proto3 encoder/decoder for Request and Response, splitmix64 and the
token choice."""
import hashlib
import math
import struct

M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def draw(seed, position):
    """u = (splitmix64((s + pos) mod 2^64) >> 11) / 2^53"""
    return (splitmix64((seed + position) & M64) >> 11) / 2.0 ** 53


def kept(logits, temperature, top_k, top_p):
    """§6's kept ids (descending z, ties by ascending id; top-k; nucleus cut) and their weights exp((z − z_max)/T)"""
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    if top_k > 0:
        order = order[:top_k]
    zmax = logits[order[0]]
    w = [math.exp((logits[i] - zmax) / temperature) for i in order]
    if 0 < top_p < 1:
        total, run = sum(w), 0.0
        for n, x in enumerate(w):
            run += x / total
            if run >= top_p:
                return order[:n + 1], w[:n + 1]
    return order, w


def pick(order, w, u):
    """walk the ids accumulating w; the first whose running sum exceeds u · Σ w (the last when rounding leaves none)"""
    target = u * sum(w)
    run = 0.0
    for i, x in zip(order, w):
        run += x
        if x > 0 and run > target:
            return i
    return [i for i, x in zip(order, w) if x > 0][-1]


def sample(logits, temperature, top_k, top_p, seed, position):
    """§6: greedy at T = 0 (lowest id on ties); else top-k, weights exp((z − z_max)/T), nucleus cut, one draw"""
    if temperature == 0:
        return min(range(len(logits)), key=lambda i: (-logits[i], i))
    order, w = kept(logits, temperature, top_k, top_p)
    return pick(order, w, draw(seed, position))


def accept_draw(seed, position):
    """§6.1: a = (splitmix64(((s + t) mod 2^64) XOR 0x5bd1e9955bd1e995) >> 11) / 2^53"""
    return (splitmix64(((seed + position) & M64) ^ 0x5BD1E9955BD1E995) >> 11) / 2.0 ** 53


def verify_draft(rows, draft, temperature, top_k, top_p, seed, first):
    """§6.1: the tokens a Validator answers for a draft (the kept draft tokens, then one of its own); rows[i] are the
    logits that predict position first + i"""
    out = []
    for i, d in enumerate(draft):
        t = first + i
        if temperature == 0 or not d['ids']:
            x = sample(rows[i], temperature, top_k, top_p, seed, t)
            out.append(x)
            if x != d['token']:
                return out
            continue
        order, w = kept(rows[i], temperature, top_k, top_p)
        p = {j: x / sum(w) for j, x in zip(order, w)}
        qs = sum(d['probs'])
        q = {j: x / qs for j, x in zip(d['ids'], d['probs'])}
        if accept_draw(seed, t) * q.get(d['token'], 0.0) < p.get(d['token'], 0.0):
            out.append(d['token'])
            continue
        r = [max(0.0, p[j] - q.get(j, 0.0)) for j in order]
        out.append(pick(order, r, draw(seed, t)) if sum(r) > 0 else sample(rows[i], temperature, top_k, top_p, seed, t))
        return out
    out.append(sample(rows[len(draft)], temperature, top_k, top_p, seed, first + len(draft)))
    return out


# ---- §3 messages: (field number, name, type, repeated); names as the vectors write them (camelCase) ----
KINDS = {'KIND_UNSPECIFIED': 0, 'INFER': 1, 'TRAIN_FORWARD': 2, 'TARGETS': 3, 'GRAD_NORM': 4, 'STEP': 5, 'TAKE_TIED': 6, 'SET_TIED': 7, 'CLOSE': 8,
         'WARM': 9, 'TOKENS': 10, 'HEAD_INPUT': 11, 'TRUNCATE': 12, 'DRAFT': 13}
KIND_NAMES = {v: k for k, v in KINDS.items()}
SCHEMA = {
    'Hop': [(1, 'peer', 'bytes', False), (2, 'start', 'uint32', False), (3, 'end', 'uint32', False)],
    'Sampling': [(1, 'temperature', 'float', False), (2, 'topK', 'uint32', False), (3, 'topP', 'float', False),
                 (4, 'seed', 'uint64', False), (5, 'returnLogits', 'bool', False)],
    'TiedAdamW': [(1, 'lr', 'double', False), (2, 'beta1', 'double', False), (3, 'beta2', 'double', False), (4, 'eps', 'double', False),
                  (5, 'weightDecay', 'double', False), (6, 'clipScale', 'double', False), (7, 't', 'uint64', False)],
    'Request': [(1, 'kind', 'Kind', False), (2, 'session', 'bytes', False), (3, 'position', 'uint32', False), (4, 'hop', 'uint32', False),
                (5, 'route', 'Hop', True), (6, 'hidden', 'bytes', False), (7, 'sampling', 'Sampling', False), (8, 'microBatch', 'uint64', False),
                (9, 'targets', 'bytes', False), (10, 'step', 'uint64', False), (11, 'gradNorm', 'double', False), (12, 'compress', 'bool', False),
                (13, 'tied', 'bytes', False), (14, 'lossScale', 'float', False), (15, 'tiedReplica', 'bool', False), (16, 'tiedIds', 'bytes', False),
                (17, 'tiedAdamw', 'TiedAdamW', False), (18, 'tiedM', 'bytes', False), (19, 'tiedV', 'bytes', False), (20, 'deflate', 'bool', False),
                (21, 'lastMicroBatch', 'bool', False), (22, 'direct', 'bool', False), (23, 'mirror', 'bool', False),
                (24, 'standbys', 'bytes', True), (25, 'quiet', 'bool', False), (26, 'tiedRecompute', 'bool', False), (27, 'recomputed', 'uint32', True), (30, 'rollback', 'bool', False), (31, 'draftCount', 'uint32', False),
                (32, 'draft', 'DraftToken', True)],
    'DraftToken': [(1, 'token', 'uint32', False), (2, 'ids', 'uint32', True), (3, 'probs', 'float', True)],
    'Response': [(1, 'error', 'string', False), (2, 'message', 'string', False), (3, 'failedHop', 'uint32', False), (4, 'token', 'uint32', False),
                 (5, 'logits', 'bytes', False), (6, 'grad', 'bytes', False), (7, 'loss', 'double', False), (8, 'normSq', 'double', False),
                 (9, 'tied', 'bytes', False), (10, 'position', 'uint64', False), (11, 'replica', 'bool', False), (12, 'tiedHash', 'bytes', False),
                 (13, 'direct', 'bool', False), (14, 'quiet', 'bool', False), (15, 'headInputs', 'bytes', True), (16, 'headMicroBatches', 'uint32', True),
                 (17, 'headNorm', 'bytes', False), (20, 'tokens', 'uint32', True)],
}
WIRE = {'uint32': 0, 'uint64': 0, 'bool': 0, 'Kind': 0, 'double': 1, 'float': 5, 'bytes': 2, 'string': 2}


class DecodeError(Exception):
    pass


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _default(t):
    return {'bytes': '', 'string': '', 'bool': False, 'float': 0.0, 'double': 0.0, 'Kind': 'KIND_UNSPECIFIED'}.get(t, 0)


def encode(name, msg):
    """proto3 canonical as this spec's vectors write it: fields in number order, defaults (and absent messages) not
    written, repeated scalars one field each (not packed)"""
    out = b''
    for num, field, t, rep in SCHEMA[name]:
        if field not in msg:
            continue
        for v in (msg[field] if rep else [msg[field]]):
            if t in SCHEMA:
                b = encode(t, v)
                out += varint(num << 3 | 2) + varint(len(b)) + b
                continue
            if not rep and v == _default(t):
                continue
            if t == 'Kind':
                out += varint(num << 3) + varint(KINDS[v])
            elif t in ('uint32', 'uint64'):
                out += varint(num << 3) + varint(int(v))
            elif t == 'bool':
                out += varint(num << 3) + b'\x01'
            elif t == 'double':
                out += varint(num << 3 | 1) + struct.pack('<d', v)
            elif t == 'float':
                out += varint(num << 3 | 5) + struct.pack('<f', v)
            else:
                b = bytes.fromhex(v) if t == 'bytes' else v.encode('utf-8')
                out += varint(num << 3 | 2) + varint(len(b)) + b
    return out


def decode(name, data):
    """a dict with the fields present on the wire (bytes as hex); unknown fields skipped"""
    fields = {num: (f, t, rep) for num, f, t, rep in SCHEMA[name]}
    msg, i = {}, 0

    def read_varint():
        nonlocal i
        n, shift = 0, 0
        while True:
            if i >= len(data) or shift > 63:
                raise DecodeError('truncated varint')
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = read_varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            raw = read_varint()
        elif wt == 1:
            raw, i = data[i:i + 8], i + 8
        elif wt == 5:
            raw, i = data[i:i + 4], i + 4
        elif wt == 2:
            n = read_varint()
            raw, i = data[i:i + n], i + n
        else:
            raise DecodeError(f'wire type {wt}')
        if i > len(data):
            raise DecodeError('truncated field')
        if num not in fields:
            continue
        f, t, rep = fields[num]
        if rep and wt == 2 and t not in SCHEMA and WIRE[t] != 2:
            # a packed run of scalars (proto3 parsers accept both forms)
            if t == 'float':
                msg.setdefault(f, []).extend(struct.unpack(f'<{len(raw) // 4}f', raw[:len(raw) // 4 * 4]))
                continue
            i_ = 0
            vals = []
            while i_ < len(raw):
                n, shift = 0, 0
                while True:
                    if i_ >= len(raw):
                        raise DecodeError('truncated packed varint')
                    b = raw[i_]
                    i_ += 1
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                vals.append(n & 0xFFFFFFFF if t == 'uint32' else n)
            msg.setdefault(f, []).extend(vals)
            continue
        if WIRE.get(t, 2) != wt:
            raise DecodeError(f'{name}.{f}: wire type {wt}')
        if t in SCHEMA:
            v = decode(t, raw)
        elif t == 'Kind':
            v = KIND_NAMES.get(raw, raw)
        elif t == 'uint32':
            v = raw & 0xFFFFFFFF
        elif t == 'uint64':
            v = raw
        elif t == 'bool':
            v = raw != 0
        elif t == 'double':
            v = struct.unpack('<d', raw)[0]
        elif t == 'float':
            v = struct.unpack('<f', raw)[0]
        elif t == 'bytes':
            v = raw.hex()
        else:
            v = raw.decode('utf-8')
        if rep:
            msg.setdefault(f, []).append(v)
        else:
            msg[f] = v
    return msg


# ---- §5 rules 1-2: routes, activation and targets frames (§3: zlib streams with `deflate`) ----
class PipelineError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


def check_route(session, route, hop, kind, self_peer, serves, n_layers, standbys=()):
    """§5 rule 1 in order: the session id (PipelineRequestError), then the route (InvalidRouteError); then rule 15: an
    INFER's standbys none or one per hop (InvalidRouteError); then a hop over part of a served span only for INFER,
    CLOSE, TRUNCATE, DRAFT, WARM and TOKENS (PipelineRequestError); returns 'span' or 'sub-span'"""
    if len(session) != 16:
        raise PipelineError('PipelineRequestError', 'session id is not 16 bytes')
    bad = lambda why: PipelineError('InvalidRouteError', why)  # noqa: E731
    if not 2 <= len(route) <= 64 or not 1 <= hop < len(route):
        raise bad('hop count or hop index')
    me = route[hop]
    at = 0
    for h in route:
        if h['start'] != at or h['end'] <= h['start']:
            raise bad('the route does not tile [0, L + 2)')
        at = h['end']
    if at != n_layers + 2 or me['peer'] != self_peer:
        raise bad('the route does not end at L + 2, or route[hop] is another peer')
    if not any(s <= me['start'] and me['end'] <= e for s, e in serves):
        raise bad('a span this node does not serve')
    if kind == 'INFER' and len(standbys) not in (0, len(route)):
        raise bad(f'{len(standbys)} standbys for a {len(route)}-hop route (none or one per hop)')
    if [me['start'], me['end']] in serves:
        return 'span'
    if kind not in ('INFER', 'CLOSE', 'TRUNCATE', 'DRAFT', 'WARM', 'TOKENS'):
        raise PipelineError('PipelineRequestError', 'training kinds run whole spans')
    return 'sub-span'


def inflate(data, max_bytes):
    """§3: a complete zlib stream (RFC 1950, Adler-32 checked) of at most max_bytes, never inflating further"""
    import zlib
    d = zlib.decompressobj(wbits=15)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise PipelineError('InvalidActivationError', f'not a zlib stream: {e}')
    if len(out) > max_bytes or not d.eof:
        raise PipelineError('InvalidActivationError', 'inflates past the cap, or the stream is incomplete')
    return out


def _frame(data, limits):
    import tensor_frame as TF
    if limits.get('deflate'):
        data = inflate(data, limits['maxBytes'])
    try:
        return TF.decode(data, limits['maxBytes'])
    except TF.FrameError as e:
        raise PipelineError('InvalidActivationError', f'{e.name}: {e}')


def decode_activation(data, limits):
    """§5 rule 2: dtype float32 (int8 exactly when compress), rank 3, last dim d, 1 ≤ batch ≤ max, 1 ≤ seq ≤ max;
    int8 values dequantized x̂ = fround(q · scale) (tensor-frame). Returns (shape, float32 values)"""
    t = _frame(data, limits)
    if t['dtype'] != ('int8' if limits['compress'] else 'float32') or len(t['shape']) != 3:
        raise PipelineError('InvalidActivationError', 'dtype or rank')
    b, s, d = t['shape']
    if d != limits['dModel'] or not 1 <= b <= limits['maxBatch'] or not 1 <= s <= limits['maxSeq']:
        raise PipelineError('InvalidActivationError', 'dims')
    if t['dtype'] == 'int8':
        f32 = lambda x: struct.unpack('<f', struct.pack('<f', x))[0]  # noqa: E731
        return t['shape'], [f32(q * t['scales'][i // t['blockSize']]) for i, q in enumerate(t['values'])]
    return t['shape'], t['values']


def decode_ids(data, limits):
    """§5 rule 2 for TARGETS' `targets`: int64, rank 2, 1 ≤ batch ≤ max, 1 ≤ seq ≤ max"""
    t = _frame(data, limits)
    if t['dtype'] != 'int64' or len(t['shape']) != 2:
        raise PipelineError('InvalidActivationError', 'dtype or rank')
    b, s = t['shape']
    if not 1 <= b <= limits['maxBatch'] or not 1 <= s <= limits['maxSeq']:
        raise PipelineError('InvalidActivationError', 'dims')
    return t['shape'], t['values']


# ---- §5 rules 3, 4, 5, 13: the inference sessions of one server ----

class Sessions:
    """KV caches per session under a session cap and a byte cap; every refused step changes nothing"""

    def __init__(self, blocks, n_kv_heads, head_dim, max_sessions, max_kv_bytes):
        self.per_token = 2 * blocks * n_kv_heads * head_dim * 4   # rule 4, batch 1 (INFER carries batch 1)
        self.max_sessions, self.max_kv_bytes = max_sessions, max_kv_bytes
        self.held = {}   # session -> tokens its cache holds

    def bytes(self):
        return sum(self.held.values()) * self.per_token

    def infer(self, session, position, seq, rollback=False, fail_run=None):
        held = self.held.get(session)
        if held is None and position != 0:
            raise PipelineError('UnknownSessionError', 'position > 0 for a session not held')
        if held is not None and position != 0 and (held < position if rollback else held != position):
            raise PipelineError('SessionPositionError', f'the cache holds {held} tokens, not {position}')
        after = dict(self.held)
        after[session] = position + seq   # position 0 opens or restarts; a rollback keeps the first `position`
        if len(after) > self.max_sessions or sum(after.values()) * self.per_token > self.max_kv_bytes:
            raise PipelineError('KvCacheFullError', 'the chunk does not fit')
        if fail_run:
            if rollback and held is not None and position > 0:
                self.held[session] = position   # rule 13: refused after the truncation, the cache stays at position
            raise PipelineError(fail_run, 'the run failed')
        self.held = after

    def truncate(self, session, position):
        if session not in self.held:
            raise PipelineError('UnknownSessionError', 'TRUNCATE of a session not held')
        if position > self.held[session]:
            raise PipelineError('SessionPositionError', 'TRUNCATE past the cache')
        self.held[session] = position

    def close(self, session):
        self.held.pop(session, None)


# ---- §5 rule 7: the training requests of one server's span ----

class Training:
    """TRAIN_FORWARD and STEP on one span that is not the last hop: `downstream()` is the next hop's answer (its loss)"""

    def __init__(self, step, max_micro_batches, downstream):
        self.step, self.max, self.downstream = step, max_micro_batches, downstream
        self.done = {}          # (session, step, micro_batch) -> the response given (its loss), this step only
        self.accumulated = 0    # micro-batch gradients added to the span's

    def forward(self, session, step, micro_batch):
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}, the span is at {self.step}')
        key = (session, step, micro_batch)
        if key in self.done:    # a repeat: the first response, nothing accumulated
            return self.done[key]
        if len(self.done) >= self.max:
            raise PipelineError('PipelineRequestError', 'more micro-batches in this step than the server remembers')
        self.done[key] = self.downstream()
        self.accumulated += 1
        return self.done[key]

    def step_to(self, step):
        if step < self.step:    # a re-sent STEP: success, nothing
            return
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'STEP {step}, the span is at {self.step}')
        self.step += 1
        self.done = {}


# ---- §5 rule 14: a DRAFT the Validator receives ----

def check_draft(position, draft, vocab, max_seq_len, head=True):
    """raises the rule's error for a DRAFT a Validator must refuse"""
    if not head:
        raise PipelineError('InvalidRouteError', 'a DRAFT to a hop without the head')
    bad = None
    if not 1 <= len(draft) <= 32:
        bad = 'a draft of 0 or more than 32 tokens'
    elif position < 1 or position + len(draft) > max_seq_len:
        bad = 'the draft does not fit in [1, maxSeqLen]'
    elif sum(len(d['ids']) for d in draft) > 16384:
        bad = 'more than 16384 q ids in all'
    for d in draft:
        ids, probs = d['ids'], d['probs']
        if bad:
            break
        if not 0 <= d['token'] < vocab:
            bad = 'a token outside the vocabulary'
        elif len(ids) != len(probs):
            bad = 'ids and probs of different lengths'
        elif ids and (len(ids) > 4096 or len(set(ids)) != len(ids) or any(not 0 <= i < vocab for i in ids)):
            bad = 'q ids: too many, repeated or outside the vocabulary'
        elif ids and (any(not (math.isfinite(p) and p >= 0) for p in probs) or abs(sum(probs) - 1) > 1e-3
                      or not dict(zip(ids, probs)).get(d['token'], 0) > 0):
            bad = 'q probabilities: not finite and >= 0, not summing to 1, or q(token) = 0'
    if bad:
        raise PipelineError('InvalidDraftError', bad)


# ---- §5 rule 12: a STEP's tied rows for a Validator's replica ----

def check_tied_step(tied_ids, tied, adamw, step, vocab, d_model, has_tied=True, max_bytes=1 << 20):
    """raises the rule's error; returns the row ids"""
    import tensor_frame as TF
    if not has_tied:
        raise PipelineError('InvalidRouteError', 'this hop holds no tied parameter')
    try:
        ids = TF.decode(tied_ids, max_bytes)
        rows = TF.decode(tied, max_bytes)
    except TF.FrameError as e:
        raise PipelineError('InvalidActivationError', f'{e.name}: {e}')
    k = len(ids['values']) if ids['dtype'] == 'int64' and len(ids['shape']) == 1 else -1
    values = [int(x) for x in ids['values']] if k > 0 else []
    if not 1 <= k <= vocab or any(not 0 <= x < vocab for x in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise PipelineError('InvalidActivationError', 'tied_ids: int64 [k], 1 ≤ k ≤ vocab, strictly increasing in [0, vocab)')
    if rows['dtype'] != 'float32' or rows.get('name') != 'embed.weight' or len(rows['values']) != k * d_model \
            or not all(math.isfinite(x) for x in rows['values']):
        raise PipelineError('InvalidActivationError', 'tied: float32 named embed.weight, k·d finite values')
    o = adamw
    if o is None or not all(isinstance(o.get(n), (int, float)) and math.isfinite(o[n]) for n in ('lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'clipScale')) \
            or not (o['lr'] >= 0 and 0 <= o['beta1'] < 1 and 0 <= o['beta2'] < 1 and o['eps'] > 0 and o['weightDecay'] >= 0
                    and 0 < o['clipScale'] <= 1 and o.get('t') == step + 1):
        raise PipelineError('PipelineRequestError', 'tied_adamw missing or out of range')
    return values


# ---- §4.3 rule 4, §4.4: a tied Validator's head gradient H and its replica across a step (vectors tied.json) ----

def _f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def adamw(p, g, m, v, lr, beta1, beta2, eps, weight_decay, t, clip_scale):
    """model §3.1: one AdamW step of float32 arrays (lists of Python floats holding float32 values), in place: binary64
    arithmetic on each element, m, v and p stored as float32 (the update uses m and v before that rounding)"""
    c1 = 1 / (1 - beta1 ** t)
    c2 = 1 / (1 - beta2 ** t)
    decay = 1 - lr * weight_decay
    for i in range(len(p)):
        gi = g[i] * clip_scale
        mi = beta1 * m[i] + (1 - beta1) * gi
        vi = beta2 * v[i] + (1 - beta2) * gi * gi
        m[i], v[i] = _f32(mi), _f32(vi)
        p[i] = _f32(p[i] * decay - lr * (mi * c1) / (math.sqrt(vi * c2) + eps))


class TiedValidator:
    """The Validator of a tied model between its head's backward and its STEP (§4.3 rule 4, §4.4 rules 1-3): the head's
    share H of the `embed.weight` gradient accumulates per micro-batch (float32, in order) until TAKE_TIED takes it —
    all of it, also what the head accumulated after it took it early at the step's last micro-batch —; a replica in
    step (its step = the head's) keeps H when TAKE_TIED sets `tied_replica`, and STEP adds the Driver's rows to it and
    steps the replica's matrix with the STEP's AdamW numbers (model §3.1); a replica that missed the step is dropped.
    (1.7.0, §4.4 rule 6) The micro-batches whose head backward accumulated this step are kept in order (`order`, when the
    accumulation names its micro-batch): HEAD_INPUT answers one of them with a replica in step, and TAKE_TIED with
    `tied_recompute` answers the list alone when the Driver's `recomputed` is exactly it, else (1.6.0) every input.
    (1.8.0, §4.4 rule 7) With `accept_owner` a STEP with rows and `tied_owner` makes the replica owned: the owner answers
    TARGETS with rows of its matrix, adds the Driver's rows at TAKE_TIED {tied_owner} and answers Σ g², steps at a STEP
    {tied_owner} without rows, and answers GET_TIED."""

    def __init__(self, vocab, d_model, head_step, replica, accept_owner=True):
        self.vocab, self.accept_owner = vocab, accept_owner
        self.n, self.d, self.step = vocab * d_model, d_model, head_step
        self.pending = None   # what the head accumulated and nobody took
        self.prepared = None  # (step, H) taken at the step's last micro-batch
        self.replica = None if replica is None else {'step': replica['step'], 'p': list(replica['p']), 'm': list(replica['m']),
                                                     'v': list(replica['v']), 'grad': None, 'owner': False}
        self.seed = None      # SET_TIED parts of a replica being seeded: {step, p, m, v}
        self.order = []       # micro-batches whose head backward accumulated this step, in order (1.7.0)

    def accumulate(self, g, micro_batch=None):
        self.pending = list(g) if self.pending is None else [_f32(a + b) for a, b in zip(self.pending, g)]
        if micro_batch is not None:
            self.order.append(micro_batch)

    def head_input(self, step, micro_batch):
        """HEAD_INPUT (§4.4 rule 6): answered with the micro-batch's input when a replica is in step and its head backward
        accumulated; without an input when no replica is in step. (One not accumulated yet waits: not a sequence outcome.)"""
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}; the span is at step {self.step}')
        r = self.replica
        if r is None or r['step'] != self.step:
            return {'replica': False}
        if micro_batch not in self.order:
            raise ValueError('HEAD_INPUT before its micro-batch accumulated waits for it (no outcome in a sequence)')
        return {'replica': True, 'headMicroBatches': [micro_batch], 'headInputs': 1}

    def last_micro_batch(self):
        self.prepared, self.pending = (self.step, self.pending), None

    def owns(self):
        r = self.replica
        return self.accept_owner and r is not None and r['owner'] and r['step'] == self.step

    def check_ids(self, ids):
        """§5 rule 12's `tied_ids`: 1 to vocab ids, strictly increasing in [0, vocab)"""
        if not 1 <= len(ids) <= self.vocab or any(not 0 <= i < self.vocab for i in ids) or any(b <= a for a, b in zip(ids, ids[1:])):
            raise PipelineError('InvalidActivationError', 'tied_ids')

    def check_rows(self, ids, rows):
        self.check_ids(ids)
        if len(rows) != len(ids) * self.d or any(not math.isfinite(x) for x in rows):
            raise PipelineError('InvalidActivationError', 'tied rows')

    def targets(self, step, ids):
        """(1.8.0) TARGETS {tied_owner, tied_ids?}: an owner answers those rows of its matrix; a hop that does not own one
        answers without tied_owner"""
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}; the span is at step {self.step}')
        if ids:
            self.check_ids(ids)
        if not self.owns():
            return {'tiedOwner': False, 'tied': None}
        p = self.replica['p']
        return {'tiedOwner': True, 'tied': [p[i * self.d + j] for i in ids for j in range(self.d)] if ids else None}

    def get_tied(self, step, part):
        """(1.8.0) GET_TIED {step, tied_part}"""
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}; the span is at step {self.step}')
        if part > 2 or not self.owns():
            raise PipelineError('PipelineRequestError', f'no owned tied matrix part {part} at step {step}')
        return {'tiedOwner': True, 'tied': list(self.replica['pmv'[part]])}

    def take_tied(self, step, tied_replica, tied_recompute=None, recomputed=(), tied_owner=None, ids=(), rows=()):
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}; the span is at step {self.step}')
        owned = bool(tied_owner) and self.owns()
        if owned:
            self.check_rows(ids, rows)  # before anything is taken
        h = self.prepared[1] if self.prepared is not None and self.prepared[0] == step else None
        self.prepared = None
        if self.pending is not None:
            h = self.pending if h is None else [_f32(a + b) for a, b in zip(h, self.pending)]
            self.pending = None
        r = self.replica
        if owned:
            # (1.8.0) H[id] + E[id] in float32, then Σ g² in binary64, element order
            g = list(h) if h is not None else [0.0] * self.n
            for k, i in enumerate(ids):
                for j in range(self.d):
                    g[i * self.d + j] = _f32(g[i * self.d + j] + rows[k * self.d + j])
            r['grad'] = (step, g, True)
            norm = 0.0
            for x in g:
                norm += x * x
            return {'replica': True, 'tiedOwner': True, 'tiedNormSq': norm}
        extra = {} if tied_recompute is None else {'headMicroBatches': [], 'headInputs': 0}
        if tied_owner is not None:
            extra['tiedOwner'] = False
        if r is not None and tied_replica and r['step'] == self.step:
            r['grad'] = (step, list(h) if h is not None else [0.0] * self.n)
            if tied_recompute and h is not None and self.order:
                # 1.7.0: the Driver recomputed exactly what the head accumulated, in its order: the list alone
                if list(recomputed) == self.order:
                    return {'tied': None, 'replica': True, 'headMicroBatches': list(self.order), 'headInputs': 0}
                # 1.6.0: every input the head ran on, in its order
                return {'tied': None, 'replica': True, 'headMicroBatches': list(self.order), 'headInputs': len(self.order)}
            return {'tied': h, 'replica': True, **extra}
        self.replica = None
        return {'tied': h, 'replica': False, **extra}

    def step_(self, step, ids, rows, o, tied_owner=None):
        if step != self.step:
            raise PipelineError('PipelineRequestError', f'step {step}; the span is at step {self.step}')
        owned = bool(tied_owner) and not ids  # (1.8.0) an owner's STEP: AdamW numbers alone
        was_owner = self.owns()
        self.step += 1  # the Validator's own spans step
        self.order = []
        r = self.replica
        extra = {} if tied_owner is None else {'tiedOwner': False}
        if r is None or r['step'] != step or r['grad'] is None or r['grad'][0] != step or owned != (len(r['grad']) > 2) or owned != was_owner:
            self.replica = None
            return {'replica': False, **extra}
        g = r['grad'][1]
        for k, i in enumerate(ids):
            for j in range(self.d):
                g[i * self.d + j] = _f32(g[i * self.d + j] + rows[k * self.d + j])
        adamw(r['p'], g, r['m'], r['v'], o['lr'], o['beta1'], o['beta2'], o['eps'], o['weightDecay'], o['t'], o['clipScale'])
        r['grad'], r['step'] = None, step + 1
        if tied_owner is not None:
            r['owner'] = bool(tied_owner) and self.accept_owner
            extra['tiedOwner'] = r['owner']
        return {'replica': True, 'tiedHash': hashlib.sha256(struct.pack(f'<{len(r["p"])}f', *r['p'])).hexdigest(), **extra}


    def set_tied(self, step, p, m, v):
        """§4.4 rule 4: SET_TIED for STEP `step` (the head is at step + 1) with the stepped matrix `p` and/or its moments `m`,
        `v` (None when absent): a matrix replaces the head's copy and drops the replica; the three parts of one step count,
        in any order and messages, become the replica (the message completing them answers replica: true)"""
        if step + 1 != self.step:
            raise PipelineError('PipelineRequestError', f'SET_TIED for step {step}; the span is at step {self.step}')
        if p is None and m is None and v is None:
            raise PipelineError('PipelineRequestError', 'SET_TIED without a tensor')
        if p is not None:
            self.replica = None
        seed = self.seed if self.seed is not None and self.seed['step'] == self.step else {'step': self.step}
        for k, x in (('p', p), ('m', m), ('v', v)):
            if x is not None:
                seed[k] = list(x)
        if all(k in seed for k in ('p', 'm', 'v')):
            self.seed = None
            self.replica = {'step': self.step, 'p': seed['p'], 'm': seed['m'], 'v': seed['v'], 'grad': None, 'owner': False}
            return {'replica': True}
        self.seed = seed
        return {'replica': False}


def tied_sequence(vocab, d_model, head_step, replica, ops, accept_owner=True):
    """tied.json: the outcome of each op (`accumulate` {g, microBatch?}, `lastMicroBatch`, `headInput` {step, microBatch}, `takeTied` {step, tiedReplica, tiedRecompute?, recomputed?}, `step`
    {step, ids, rows, adamw}); float32 values as Python floats"""
    t = TiedValidator(vocab, d_model, head_step, replica, accept_owner)
    out = []
    for op in ops:
        try:
            if op['op'] == 'accumulate':
                t.accumulate(op['g'], op.get('microBatch'))
                out.append({})
            elif op['op'] == 'headInput':
                out.append(t.head_input(op['step'], op['microBatch']))
            elif op['op'] == 'lastMicroBatch':
                t.last_micro_batch()
                out.append({})
            elif op['op'] == 'takeTied':
                out.append(t.take_tied(op['step'], op['tiedReplica'], op.get('tiedRecompute'), op.get('recomputed', ()),
                                       op.get('tiedOwner'), op.get('ids', ()), op.get('rows', ())))
            elif op['op'] == 'targets':
                out.append(t.targets(op['step'], op.get('ids', [])))
            elif op['op'] == 'getTied':
                out.append(t.get_tied(op['step'], op['part']))
            elif op['op'] == 'setTied':
                out.append(t.set_tied(op['step'], op.get('tied'), op.get('m'), op.get('v')))
            else:
                out.append(t.step_(op['step'], op['ids'], op['rows'], op['adamw'], op.get('tiedOwner')))
        except PipelineError as e:
            out.append({'error': e.name})
    return out


# ---- §5 rule 15: a mirror INFER at a standby (vectors mirror.json) ----

def serve_mirror(stage, req):
    """what a server does with an INFER (`mirror`, `direct`, `draftCount`, `standbys` count, `position`, `seq`) on a Worker's
    (`worker`) or Validator's (`validator`) stage after rule 1: a mirror with direct, draft_count or standbys is
    PipelineRequestError; a mirror runs only its blocks and is answered with position + seq; others are forwarded (a
    Worker) or sampled (a Validator)"""
    if req['mirror']:
        if req['direct'] or req['draftCount'] > 0 or req['standbys'] > 0:
            raise PipelineError('PipelineRequestError', 'a mirror INFER has no direct, draft_count or standbys')
        return {'error': '', 'position': req['position'] + req['seq'], 'ran': 'blocks'}
    return {'error': '', 'position': req['position'] + req['seq'], 'ran': 'forwarded' if stage == 'worker' else 'sampled'}


# ---- §5 rule 6: what a server hop answers when it forwards to hop + 1 (vectors relay.json) ----

def relay(hop, next_hop):
    """the answer of server hop `hop` after forwarding: HopFailedError with failed_hop = hop + 1 when hop + 1 cannot be
    reached; an error response of hop + 1 passed back unchanged; otherwise its own answer (here: the downstream loss)"""
    if next_hop.get('unreachable'):
        return {'error': 'HopFailedError', 'failedHop': hop + 1}
    a = next_hop['answer']
    if a['error'] != '':
        return {'error': a['error'], 'message': a['message'], 'failedHop': a['failedHop']}
    return {'error': '', 'loss': a['loss']}


# ---- §5 rule 17: what a node writes back on a session stream (vectors quiet.json) ----

def session_answers(requests):
    """the answers a node writes on an upstream's session stream, in order, for requests whose outcome at this hop is
    given: a quiet, direct INFER gets none when it goes through (forwarded by a Worker, or its token written on the
    Driver's tokens stream) and, when it fails, the error marked `quiet` with the request's position; every other
    request its ordinary answer"""
    out = []
    for q in requests:
        quiet = q['kind'] == 'INFER' and q['quiet'] and q['direct']
        o = q['outcome']
        if 'error' in o:
            out.append({'error': o['error'], 'quiet': quiet, **({'position': q['position']} if quiet else {})})
        elif quiet and (o.get('forwarded') or o.get('token')):
            continue
        else:
            out.append({'error': '', 'quiet': False})
    return out

#!/usr/bin/env python3
"""Independent generator of specs/pipeline/vectors/*.json (sampling draws and decisions, draft verification, request bytes).
Pure Python, no NeuroShard code: splitmix64, the sampling rule of README §6, and hand-rolled protobuf."""
import json, math, struct

M = (1 << 64) - 1

def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)

def draw(seed, position):
    return (splitmix64((seed + position) & M) >> 11) / 2.0 ** 53

def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]

def sample(logits, t, k, p, seed, position):
    if t == 0:
        best = 0
        for i, v in enumerate(logits):
            if v > logits[best]:
                best = i
        return best
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    k = min(k, len(order)) if k > 0 else len(order)
    mx = logits[order[0]]
    probs = [math.exp((logits[order[i]] - mx) / t) for i in range(k)]
    s = sum(probs)
    n = k
    if 0 < p < 1:
        acc = 0.0
        for i in range(k):
            acc += probs[i] / s
            if acc >= p:
                n = i + 1
                break
    total = sum(probs[:n])
    u = draw(seed, position) * total
    acc = 0.0
    for i in range(n):
        acc += probs[i]
        if u < acc:
            return order[i]
    return order[n - 1]

# --- sampling vectors
draws = [{'seed': s, 'position': p, 'u': draw(s, p), 'splitmix64': str(splitmix64((s + p) & M))}
         for s, p in [(0, 0), (0, 1), (1, 0), (1234, 19), (2**53 - 1, 7), (42, 127)]]
logits = [f32(x) for x in [0.5, 2.0, -1.0, 2.0, 1.5, 0.0, -3.0, 1.0]]
cases = []
for t, k, p, seed, pos in [(0, 0, 1, 0, 0), (1.0, 0, 1, 0, 3), (1.0, 0, 1, 5, 3), (0.7, 3, 1, 9, 11), (1.3, 0, 0.6, 77, 2),
                           (2.0, 5, 0.9, 1234, 40), (0.5, 1, 1, 3, 1), (1.0, 0, 1, 2**53 - 1, 100)]:
    cases.append({'temperature': t, 'topK': k, 'topP': p, 'seed': seed, 'position': pos, 'token': sample(logits, t, k, p, seed, pos)})
json.dump({'description': 'splitmix64 draws and token choices of README §6; logits are float32 values',
           'draws': draws, 'logits': logits, 'cases': cases}, open('sampling.json', 'w'), indent=2)

# --- speculative verification (README §6.1), independent of the reference code
ACCEPT_SALT = 0x5BD1E9955BD1E995

def accept_draw(seed, position):
    return (splitmix64(((seed + position) & M) ^ ACCEPT_SALT) >> 11) / 2.0 ** 53

def dist(logits, t, k, p):
    if t == 0:
        best = 0
        for i, v in enumerate(logits):
            if v > logits[best]:
                best = i
        return [best], [1.0]
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    k = min(k, len(order)) if k > 0 else len(order)
    mx = logits[order[0]]
    w = [math.exp((logits[order[i]] - mx) / t) for i in range(k)]
    s = sum(w)
    n = k
    if 0 < p < 1:
        acc = 0.0
        for i in range(k):
            acc += w[i] / s
            if acc >= p:
                n = i + 1
                break
    total = sum(w[:n])
    return order[:n], [x / total for x in w[:n]]

def verify(rows, draft, t, k, p, seed, first):
    tokens = []
    for i, d in enumerate(draft):
        pos = first + i
        if t == 0 or not d['ids']:
            x = sample(rows[i], t, k, p, seed, pos)
            tokens.append(x)
            if x != d['token']:
                return tokens
            continue
        ids, probs = dist(rows[i], t, k, p)
        qs = sum(d['probs'])
        q = {a: b / qs for a, b in zip(d['ids'], d['probs'])}
        pd = probs[ids.index(d['token'])] if d['token'] in ids else 0.0
        if accept_draw(seed, pos) * q.get(d['token'], 0.0) < pd:
            tokens.append(d['token'])
            continue
        r = [max(0.0, probs[j] - q.get(ids[j], 0.0)) for j in range(len(ids))]
        tot = sum(r)
        if not tot > 0:
            tokens.append(sample(rows[i], t, k, p, seed, pos))
            return tokens
        u = draw(seed, pos) * tot
        acc = 0.0
        for j in range(len(ids)):
            acc += r[j]
            if r[j] > 0 and u < acc:
                tokens.append(ids[j])
                return tokens
        tokens.append([ids[j] for j in range(len(ids)) if r[j] > 0][-1])
        return tokens
    tokens.append(sample(rows[len(draft)], t, k, p, seed, first + len(draft)))
    return tokens

rows = [[f32(math.sin(1.7 * r + 0.9 * v) * 2.5) for v in range(8)] for r in range(4)]
q_a = {'ids': [0, 1, 2, 3], 'probs': [f32(x) for x in [0.5, 0.25, 0.125, 0.125]]}
q_b = {'ids': [4, 5, 6], 'probs': [f32(x) for x in [0.625, 0.25, 0.125]]}
spec_cases = []
for (t, k, p, seed, first, draft) in [
        (0, 0, 1, 0, 10, [{'token': t_, 'ids': [], 'probs': []} for t_ in [2, 5, 0]]),
        (0, 0, 1, 0, 10, [{'token': sample(rows[0], 0, 0, 1, 0, 10), 'ids': [], 'probs': []}, {'token': sample(rows[1], 0, 0, 1, 0, 11), 'ids': [], 'probs': []}, {'token': 7, 'ids': [], 'probs': []}]),
        (0.9, 0, 1, 3, 20, [{'token': t_, 'ids': [], 'probs': []} for t_ in [1, 4, 4]]),
        (1.0, 5, 0.95, 11, 7, [{'token': sample(rows[0], 1.0, 5, 0.95, 11, 7), 'ids': [], 'probs': []}, {'token': 3, 'ids': [], 'probs': []}]),
        (1.0, 0, 1, 5, 30, [dict(q_a, token=0), dict(q_b, token=4), dict(q_a, token=1)]),
        (0.8, 6, 1, 77, 3, [dict(q_b, token=5), dict(q_a, token=2), dict(q_b, token=6)]),
        (1.2, 0, 0.9, 2**40 + 3, 50, [dict(q_a, token=3), dict(q_a, token=0), dict(q_b, token=4)])]:
    for s in range(6):
        spec_cases.append({'temperature': t, 'topK': k, 'topP': p, 'seed': seed + s, 'first': first,
                           'draft': draft, 'tokens': verify(rows[:len(draft) + 1], draft, t, k, p, seed + s, first)})
json.dump({'description': 'Verification of drafts (README §6.1): rows[i] are the float32 logits that predict the token at first + i; '
           'tokens = the accepted draft tokens then the Validator\'s own token',
           'accept_draws': [{'seed': s, 'position': q, 'a': accept_draw(s, q)} for s, q in [(0, 0), (5, 30), (2**53 - 1, 7)]],
           'rows': rows, 'cases': spec_cases}, open('speculative.json', 'w'), indent=2)

# --- request bytes (proto3, fields in number order, defaults omitted)
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

def key(field, wt):
    return varint(field << 3 | wt)

def ld(field, b):
    return key(field, 2) + varint(len(b)) + b

def hop(peer, start, end):
    # proto3: a field holding its default (0) is not written
    return ld(1, peer) + (key(2, 0) + varint(start) if start else b'') + key(3, 0) + varint(end)

peer_a = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(32))  # identity multihash of an Ed25519 key
peer_b = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(32, 64))
peer_c = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(64, 96))
session = bytes(range(16))
# a tensor frame is opaque to the request encoding: use a fixed byte string
hidden = b'\x01\x02\x03'
sampling = key(1, 5) + struct.pack('<f', 0.75) + key(2, 0) + varint(40) + key(3, 5) + struct.pack('<f', 0.875) + key(4, 0) + varint(1234) + key(5, 0) + varint(1)
infer = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(5) + key(4, 0) + varint(1)
         + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden) + ld(7, sampling))
step = (key(1, 0) + varint(5) + ld(2, session) + key(4, 0) + varint(2)
        + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4))
        + key(10, 0) + varint(7) + key(11, 1) + struct.pack('<d', 0.5))
train = (key(1, 0) + varint(2) + ld(2, session) + key(4, 0) + varint(1)
         + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden)
         + key(8, 0) + varint(3) + key(10, 0) + varint(7) + key(12, 0) + varint(1) + key(14, 5) + struct.pack('<f', 0.25) + key(20, 0) + varint(1) + key(21, 0) + varint(1))
# STEP with the Driver's tied rows for the Validator's replica (README §4.4): tied (rows), tied_ids, tied_adamw
adamw = (key(1, 1) + struct.pack('<d', 3e-4) + key(2, 1) + struct.pack('<d', 0.9) + key(3, 1) + struct.pack('<d', 0.95)
         + key(4, 1) + struct.pack('<d', 1e-8) + key(5, 1) + struct.pack('<d', 0.1) + key(6, 1) + struct.pack('<d', 0.5) + key(7, 0) + varint(8))
rows, ids = b'\x04\x05', b'\x06\x07'
step_tied = (key(1, 0) + varint(5) + ld(2, session) + key(4, 0) + varint(2)
             + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4))
             + key(10, 0) + varint(7) + key(11, 1) + struct.pack('<d', 0.5) + ld(13, rows) + ld(16, ids) + ld(17, adamw))
take_tied = (key(1, 0) + varint(6) + ld(2, session) + key(4, 0) + varint(2)
             + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + key(10, 0) + varint(7) + key(15, 0) + varint(1))
resp_replica = ld(9, rows) + key(11, 0) + varint(1)
step_hash = bytes(range(32))  # a SHA-256 digest is opaque to the encoding
resp_step_replica = key(11, 0) + varint(1) + ld(12, step_hash)
resp = ld(1, b'KvCacheFullError') + ld(2, b'full') + key(3, 0) + varint(2)
resp_tok = key(4, 0) + varint(200) + key(10, 0) + varint(6)
# speculative decoding (README §4.5): TRUNCATE, DRAFT (repeated fields unpacked: one key per element), INFER with
# rollback and draft_count, a response with tokens
truncate = (key(1, 0) + varint(12) + ld(2, session) + key(3, 0) + varint(9) + key(4, 0) + varint(2)
            + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)))
draft_tok = lambda tok, ids, probs: ((key(1, 0) + varint(tok) if tok else b'') + b''.join(key(2, 0) + varint(i) for i in ids)
                                     + b''.join(key(3, 5) + struct.pack('<f', x) for x in probs))
draft_req = (key(1, 0) + varint(13) + ld(2, session) + key(3, 0) + varint(12) + key(4, 0) + varint(2)
             + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(7, sampling)
             + ld(32, draft_tok(65, [], [])) + ld(32, draft_tok(66, [66, 0, 300], [0.5, 0.25, 0.25])))
infer_spec = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(9) + key(4, 0) + varint(1)
              + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden)
              + key(30, 0) + varint(1) + key(31, 0) + varint(2))
resp_tokens = key(4, 0) + varint(300) + key(10, 0) + varint(12) + key(20, 0) + varint(65) + key(20, 0) + varint(300)
# revision 1.2.0: a direct INFER (the token comes on the Driver's tokens stream), WARM for a standby, TOKENS, the acknowledgement
infer_direct = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(5) + key(4, 0) + varint(1)
                + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden) + key(22, 0) + varint(1))
warm = key(1, 0) + varint(9) + ld(2, session) + key(4, 0) + varint(1) + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4))
tokens = key(1, 0) + varint(10) + ld(2, session) + key(4, 0) + varint(2) + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4))
resp_direct = key(10, 0) + varint(6) + key(13, 0) + varint(1)
# revision 1.4.0: an INFER naming the standbys (one entry per hop, empty bytes for none; repeated bytes, one key each)
# and the mirror hop 1 sends to hop 2's standby (route[2] replaced, `mirror`, no standbys)
peer_d = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(96, 128))
infer_standbys = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(5) + key(4, 0) + varint(1)
                  + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden)
                  + ld(24, b'') + ld(24, peer_d) + ld(24, b''))
mirror = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(5) + key(4, 0) + varint(1)
          + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_d, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden) + key(23, 0) + varint(1))
# revision 1.5.0: a quiet direct INFER (answered only when it fails) and the failure's answer (marked, with the request's position)
infer_quiet = (key(1, 0) + varint(1) + ld(2, session) + key(3, 0) + varint(5) + key(4, 0) + varint(1)
               + ld(5, hop(peer_a, 0, 1)) + ld(5, hop(peer_b, 1, 3)) + ld(5, hop(peer_c, 3, 4)) + ld(6, hidden)
               + key(22, 0) + varint(1) + key(25, 0) + varint(1))
resp_quiet = (ld(1, b'HopFailedError') + ld(2, b'unreachable') + key(3, 0) + varint(2) + key(10, 0) + varint(5)
              + key(14, 0) + varint(1))
# revision 1.6.0: TAKE_TIED asking for the head's inputs (tied_recompute), and the answer: two micro-batches' inputs in the
# order the head ran them (repeated bytes and unpacked uint32: one key per element) and the final norm
take_tied_recompute = take_tied + key(26, 0) + varint(1)
head_a, head_b, head_norm = b'\x08\x09', b'\x0a', b'\x0b\x0c'
resp_recompute = key(11, 0) + varint(1) + ld(15, head_a) + ld(15, head_b) + key(16, 0) + varint(2) + key(16, 0) + varint(0) + ld(17, head_norm)
route = [{'peer': peer_a.hex(), 'start': 0, 'end': 1}, {'peer': peer_b.hex(), 'start': 1, 'end': 3}, {'peer': peer_c.hex(), 'start': 3, 'end': 4}]
json.dump({'description': 'Request/Response encodings (proto3, fields in number order, defaults omitted)', 'requests': [
    {'name': 'infer', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 5, 'hop': 1, 'route': route, 'hidden': hidden.hex(),
                                 'sampling': {'temperature': 0.75, 'topK': 40, 'topP': 0.875, 'seed': 1234, 'returnLogits': True}}, 'bytes': infer.hex()},
    {'name': 'step', 'fields': {'kind': 'STEP', 'session': session.hex(), 'hop': 2, 'route': route, 'step': 7, 'gradNorm': 0.5}, 'bytes': step.hex()},
    {'name': 'train-forward', 'fields': {'kind': 'TRAIN_FORWARD', 'session': session.hex(), 'hop': 1, 'route': route, 'hidden': hidden.hex(), 'microBatch': 3, 'step': 7, 'compress': True, 'lossScale': 0.25, 'deflate': True, 'lastMicroBatch': True}, 'bytes': train.hex()},
    {'name': 'take-tied-replica', 'fields': {'kind': 'TAKE_TIED', 'session': session.hex(), 'hop': 2, 'route': route, 'step': 7, 'tiedReplica': True}, 'bytes': take_tied.hex()},
    {'name': 'take-tied-recompute', 'fields': {'kind': 'TAKE_TIED', 'session': session.hex(), 'hop': 2, 'route': route, 'step': 7, 'tiedReplica': True, 'tiedRecompute': True}, 'bytes': take_tied_recompute.hex()},
    {'name': 'step-tied-rows', 'fields': {'kind': 'STEP', 'session': session.hex(), 'hop': 2, 'route': route, 'step': 7, 'gradNorm': 0.5, 'tied': rows.hex(), 'tiedIds': ids.hex(),
                                         'tiedAdamw': {'lr': 3e-4, 'beta1': 0.9, 'beta2': 0.95, 'eps': 1e-8, 'weightDecay': 0.1, 'clipScale': 0.5, 't': 8}}, 'bytes': step_tied.hex()},
    {'name': 'truncate', 'fields': {'kind': 'TRUNCATE', 'session': session.hex(), 'position': 9, 'hop': 2, 'route': route}, 'bytes': truncate.hex()},
    {'name': 'draft', 'fields': {'kind': 'DRAFT', 'session': session.hex(), 'position': 12, 'hop': 2, 'route': route,
                                 'sampling': {'temperature': 0.75, 'topK': 40, 'topP': 0.875, 'seed': 1234, 'returnLogits': True},
                                 'draft': [{'token': 65, 'ids': [], 'probs': []}, {'token': 66, 'ids': [66, 0, 300], 'probs': [0.5, 0.25, 0.25]}]}, 'bytes': draft_req.hex()},
    {'name': 'infer-speculative', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 9, 'hop': 1, 'route': route, 'hidden': hidden.hex(),
                                             'rollback': True, 'draftCount': 2}, 'bytes': infer_spec.hex()},
    {'name': 'infer-direct', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 5, 'hop': 1, 'route': route, 'hidden': hidden.hex(), 'direct': True}, 'bytes': infer_direct.hex()},
    {'name': 'warm', 'fields': {'kind': 'WARM', 'session': session.hex(), 'hop': 1, 'route': route}, 'bytes': warm.hex()},
    {'name': 'tokens', 'fields': {'kind': 'TOKENS', 'session': session.hex(), 'hop': 2, 'route': route}, 'bytes': tokens.hex()},
    {'name': 'infer-standbys', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 5, 'hop': 1, 'route': route, 'hidden': hidden.hex(),
                                          'standbys': ['', peer_d.hex(), '']}, 'bytes': infer_standbys.hex()},
    {'name': 'mirror', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 5, 'hop': 1,
                                  'route': [route[0], {'peer': peer_d.hex(), 'start': 1, 'end': 3}, route[2]], 'hidden': hidden.hex(), 'mirror': True}, 'bytes': mirror.hex()},
    {'name': 'infer-quiet', 'fields': {'kind': 'INFER', 'session': session.hex(), 'position': 5, 'hop': 1, 'route': route, 'hidden': hidden.hex(),
                                       'direct': True, 'quiet': True}, 'bytes': infer_quiet.hex()}],
    'responses': [
    {'name': 'error', 'fields': {'error': 'KvCacheFullError', 'message': 'full', 'failedHop': 2}, 'bytes': resp.hex()},
    {'name': 'token', 'fields': {'token': 200, 'position': 6}, 'bytes': resp_tok.hex()},
    {'name': 'take-tied-replica', 'fields': {'tied': rows.hex(), 'replica': True}, 'bytes': resp_replica.hex()},
    {'name': 'take-tied-recompute', 'fields': {'replica': True, 'headInputs': [head_a.hex(), head_b.hex()], 'headMicroBatches': [2, 0], 'headNorm': head_norm.hex()}, 'bytes': resp_recompute.hex()},
    {'name': 'step-replica', 'fields': {'replica': True, 'tiedHash': step_hash.hex()}, 'bytes': resp_step_replica.hex()},
    {'name': 'tokens', 'fields': {'token': 300, 'position': 12, 'tokens': [65, 300]}, 'bytes': resp_tokens.hex()},
    {'name': 'direct-ack', 'fields': {'position': 6, 'direct': True}, 'bytes': resp_direct.hex()},
    {'name': 'quiet-error', 'fields': {'error': 'HopFailedError', 'message': 'unreachable', 'failedHop': 2, 'position': 5, 'quiet': True}, 'bytes': resp_quiet.hex()}]}, open('messages.json', 'w'), indent=2)
print('ok')

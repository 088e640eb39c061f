"""DiLoCo's signed announces and commits (specs/diloco/README.md §2, §3), the receiver's round checks (§6 step 3),
aggregation with its accept/reject rule and round records (§7), written from the spec text alone, standard library
only. Signatures: Ed25519 keys (libp2p KeyType 1), the only key type this client verifies (others are refused as
InvalidSignatureError); Ed25519 itself from specs/layer-pool/python/ed25519.py (RFC 8032)."""
import hashlib
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'layer-pool', 'python'))
import diloco as DL  # noqa: E402
import ed25519  # noqa: E402

ANNOUNCE_DOMAIN = b'neuroshard/diloco/announce/v1'
COMMIT_DOMAIN = b'neuroshard/diloco/commit/v1'
MAX_ANNOUNCE, MAX_COMMIT, MAX_SENDERS, MAX_SHARDS = 16384, 1048576, 256, 64
CODECS = {1: 'fp32', 2: 'fp16', 3: 'int8', 4: 'sparse'}


class DiLoCoError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


# ---- protobuf (§9): (number, name, type, repeated) ----
SCHEMA = {
    'Announce': [(1, 'group', 'string', False), (2, 'span', 'string', False), (3, 'round', 'uint64', False), (4, 'sender', 'bytes', False),
                 (5, 'base_hash', 'bytes', False), (6, 'codec', 'enum', False), (7, 'block_size', 'uint32', False), (8, 'chunk', 'uint32', False),
                 (9, 'top_k', 'uint32', False), (10, 'bits', 'uint32', False), (11, 'elements', 'uint64', False), (12, 'payload_size', 'uint64', False),
                 (13, 'payload_hash', 'bytes', False), (14, 'gossip_chunk', 'uint32', False), (15, 'data_shards', 'string', True),
                 (16, 'inner_steps', 'uint32', False), (17, 'tokens', 'uint64', False), (18, 'timestamp_ms', 'uint64', False)],
    'Commit': [(1, 'group', 'string', False), (2, 'span', 'string', False), (3, 'round', 'uint64', False), (4, 'leader', 'bytes', False),
               (5, 'base_hash', 'bytes', False), (6, 'announces', 'Signed', True), (7, 'timestamp_ms', 'uint64', False),
               (8, 'members', 'uint64', False)],
    'Signed': [(1, 'body', 'bytes', False), (2, 'public_key', 'bytes', False), (3, 'signature', 'bytes', False)],
    'PublicKey': [(1, 'type', 'enum', False), (2, 'data', 'bytes', False)],
}


def pb_decode(name, data, limits=None):
    fields = {num: (f, t, rep) for num, f, t, rep in SCHEMA[name]}
    msg = {f: ([] if rep else (b'' if t == 'bytes' else '' if t == 'string' else 0)) for _, f, t, rep in SCHEMA[name]}
    i = 0

    def rv():
        nonlocal i
        n = shift = 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError('truncated varint')
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = rv()
        num, wt = key >> 3, key & 7
        if wt == 0:
            v = rv()
        elif wt in (1, 2, 5):
            n = rv() if wt == 2 else (8 if wt == 1 else 4)
            if i + n > len(data):
                raise ValueError('truncated field')
            v, i = data[i:i + n], i + n
        else:
            raise ValueError(f'wire type {wt}')
        if num not in fields:
            continue
        f, t, rep = fields[num]
        if (wt == 2) != (t in SCHEMA or t in ('bytes', 'string')):
            raise ValueError(f'{name}.{f}: wire type {wt}')
        if t in SCHEMA:
            v = pb_decode(t, v)
        elif t == 'string':
            v = v.decode('utf-8')
        elif t == 'uint32' and v > 0xFFFFFFFF:
            raise ValueError(f'{name}.{f}: over 32 bits')
        if rep:
            msg[f].append(v)
            if limits and f in limits and len(msg[f]) > limits[f]:
                raise ValueError(f'more than {limits[f]} {f}')
        else:
            msg[f] = v
    return msg


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def peer_id_string(b):
    n, out = int.from_bytes(b, 'big'), ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return '1' * (len(b) - len(b.lstrip(b'\0'))) + out


# ---- §2 signed bodies ----
def open_signed(domain, s):
    """verify utf8(domain) ‖ 0x00 ‖ body; returns the signer's peer id bytes (identity multihash of the protobuf key)"""
    try:
        key = pb_decode('PublicKey', s['public_key'])
    except (ValueError, UnicodeDecodeError):
        raise DiLoCoError('InvalidSignatureError', 'public_key is not a libp2p public key')
    if key['type'] != 1 or len(key['data']) != 32:
        raise DiLoCoError('InvalidSignatureError', 'not an Ed25519 key (the only type this client verifies)')
    if not ed25519.verify(key['data'], domain + b'\x00' + s['body'], s['signature']):
        raise DiLoCoError('InvalidSignatureError', 'signature does not verify')
    return b'\x00' + varint(len(s['public_key'])) + s['public_key']


def codec_of(a):
    """the announce's codec (§5 parameter ranges), as diloco.py's codec dict"""
    c = CODECS.get(a['codec'])
    if c == 'int8' and 1 <= a['block_size'] <= 65536:
        return {'codec': c, 'blockSize': a['block_size']}
    if c == 'sparse' and 1 <= a['chunk'] <= 65536 and 1 <= a['top_k'] <= a['chunk'] and 1 <= a['bits'] <= 8:
        return {'codec': c, 'chunk': a['chunk'], 'topK': a['top_k'], 'bits': a['bits']}
    if c in ('fp32', 'fp16'):
        return {'codec': c}
    raise DiLoCoError('MalformedPseudoGradientError', f'codec {a["codec"]} or its parameters')


def payload_size(n, codec):
    c = codec['codec']
    if c == 'fp32':
        return 4 * n
    if c == 'fp16':
        return 2 * n
    if c == 'int8':
        return 4 * -(-n // codec['blockSize']) + n
    size = 0
    for start in range(0, n, codec['chunk']):
        k = min(codec['topK'], n - start)
        size += 4 + 2 * k + -(-k * codec['bits'] // 8)
    return size


def open_announce(s):
    """§2-§3 rules in order; returns (announce dict, sender peer id string, codec)"""
    if len(s['body']) > MAX_ANNOUNCE:
        raise DiLoCoError('OversizedPseudoGradientError', 'announce body over 16 384 bytes')
    try:
        a = pb_decode('Announce', s['body'], {'data_shards': MAX_SHARDS})
    except (ValueError, UnicodeDecodeError) as e:
        raise DiLoCoError('MalformedPseudoGradientError', f'announce: {e}')
    if open_signed(ANNOUNCE_DOMAIN, s) != a['sender']:
        raise DiLoCoError('InvalidSignatureError', 'announce names another sender than its signer')

    def bad(why):
        raise DiLoCoError('MalformedPseudoGradientError', why)
    if any(len(x.encode('utf-8')) > 128 for x in [a['group'], a['span']] + a['data_shards']):
        bad('a string over 128 bytes')
    if len(a['base_hash']) != 32 or len(a['payload_hash']) != 32:
        bad('hash length')
    codec = codec_of(a)
    if not 1 <= a['elements'] <= 2 ** 53 - 1 or a['round'] > 2 ** 53 - 1:
        bad('elements or round')
    if a['payload_size'] != payload_size(a['elements'], codec):
        bad('payload_size')
    return a, peer_id_string(a['sender']), codec


def check_announce(a, e):
    """§6 step 3, in order"""
    if a['group'] != e['group'] or a['span'] != e['span'] or a['elements'] != e['elements']:
        raise DiLoCoError('WrongSpanError', 'group, span or elements')
    if a['payload_size'] > e['maxPayloadBytes']:
        raise DiLoCoError('OversizedPseudoGradientError', 'payload over the limit')
    if a['round'] != e['round']:
        raise DiLoCoError('WrongRoundError', 'round')
    if a['base_hash'] != bytes.fromhex(e['baseHash']):
        raise DiLoCoError('BaseHashMismatchError', 'base hash')


class Round:
    """§6 step 3 after check_announce, against what a receiver holds for the round it collects (§8: bounded)"""

    def __init__(self, expect, max_contributions):
        self.expect, self.max = expect, max_contributions
        self.senders, self.seen, self.committed = set(), set(), False

    def announce(self, a, sender):
        check_announce(a, self.expect)
        if sender in self.senders or a['payload_hash'] in self.seen:
            raise DiLoCoError('ReplayedPseudoGradientError', 'a second announce of this sender, or a payload hash seen before')
        if len(self.senders) >= self.max:
            raise DiLoCoError('OversizedPseudoGradientError', 'the round holds its maximum of contributions')
        if self.committed:
            raise DiLoCoError('WrongRoundError', 'the round is already committed')
        self.senders.add(sender)
        self.seen.add(a['payload_hash'])


def open_commit(s):
    """§2 and §6 step 6; returns (commit dict, leader peer id string, [(announce, sender, codec)])"""
    if len(s['body']) > MAX_COMMIT:
        raise DiLoCoError('OversizedPseudoGradientError', 'commit body over 1 MiB')
    try:
        c = pb_decode('Commit', s['body'], {'announces': MAX_SENDERS})
    except (ValueError, UnicodeDecodeError) as e:
        raise DiLoCoError('InvalidCommitError', f'commit: {e}')
    if open_signed(COMMIT_DOMAIN, s) != c['leader']:
        raise DiLoCoError('InvalidSignatureError', 'commit names another leader than its signer')
    if not c['announces']:
        raise DiLoCoError('InvalidCommitError', 'no announces')
    out = []
    for x in c['announces']:
        a, sender, codec = open_announce(x)
        if (a['group'], a['span'], a['round'], a['base_hash']) != (c['group'], c['span'], c['round'], c['base_hash']):
            raise DiLoCoError('InvalidCommitError', 'an announce of another group, span, round or base')
        if out and out[-1][0]['sender'] >= a['sender']:
            raise DiLoCoError('InvalidCommitError', 'senders not distinct and in byte-wise order')
        out.append((a, sender, codec))
    return c, peer_id_string(c['leader']), out


# ---- §7 aggregation ----
def _median(v):
    v = sorted(v)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def _mean(xs):
    return [DL.fround(math.fsum(col) / len(xs)) for col in zip(*xs)]


def _dist(x, g):
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(x, g)))


def _geometric_median(xs, nu=1e-6, iterations=50, tolerance=1e-6):
    """§7 geometric-median: the smoothed Weiszfeld iteration in binary64 from the mean"""
    n = len(xs)
    dim = range(len(xs[0]))

    def sq(z):
        return [math.fsum((x[t] - z[t]) ** 2 for t in dim) for x in xs]
    z = [math.fsum(x[t] for x in xs) / n for t in dim]
    d2 = sq(z)
    for _ in range(iterations):
        beta = [(1 / n) / max(nu, math.sqrt(q)) for q in d2]
        total = math.fsum(beta)
        z2 = [math.fsum(b * x[t] for b, x in zip(beta, xs)) / total for t in dim]
        step = math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(z2, z)))
        z, d2 = z2, sq(z2)
        if step <= tolerance * max(nu, math.sqrt(_median(d2))):
            break
    return z


def min_inputs(name, f):
    """§7: fewest inputs a robust aggregate of a group that may hold f Byzantine members needs (the mean: 1)"""
    return 1 if name == 'mean' else 2 * f + 1


def aggregate(xs, name, reject_factor=2.5, members=0):
    """returns (value, accepted, distances); f = ⌊(g − 1)/3⌋, g = max(members, n) (1.1.0)"""
    n = len(xs)
    f = (max(n, members) - 1) // 3
    if n < min_inputs(name, f):
        raise DiLoCoError('InvalidCommitError', f'{n} inputs cannot be aggregated robustly with f = {f}')
    if name == 'multi-krum':
        fk = f if n >= 2 * f + 3 else 0
        if fk > 0:
            k = n - fk - 2
            scores = [sum(sorted(_dist(x, y) ** 2 for j, y in enumerate(xs) if j != i)[:k]) for i, x in enumerate(xs)]
            chosen = sorted(sorted(range(n), key=lambda i: (scores[i], i))[:n - fk])
            value = _mean([xs[i] for i in chosen])
            return value, [i in chosen for i in range(n)], [_dist(x, value) for x in xs]
        name = 'trimmed-mean'  # below 2f + 3 inputs (the mean when f = 0)
    if name in ('trimmed-mean', 'nnm-trimmed-mean') and f == 0:
        name = 'mean'
    if name == 'mean':
        value = _mean(xs)
        return value, [True] * n, [_dist(x, value) for x in xs]
    if name == 'median':
        value = [DL.fround(_median(col)) for col in zip(*xs)]
    elif name == 'trimmed-mean':
        value = [DL.fround(math.fsum(sorted(col)[f:n - f]) / (n - 2 * f)) for col in zip(*xs)]
    elif name == 'nnm-trimmed-mean':
        # each input replaced by the mean of its n − f nearest (itself first, then by squared distance, ties by index),
        # kept in binary64, then the trimmed mean with f
        d2 = [[math.fsum((a - b) ** 2 for a, b in zip(x, y)) for y in xs] for x in xs]
        mixed = []
        for i in range(n):
            near = [i] + sorted((j for j in range(n) if j != i), key=lambda j: (d2[i][j], j))[:n - f - 1]
            mixed.append([math.fsum(xs[j][t] for j in near) / (n - f) for t in range(len(xs[0]))])
        value = [DL.fround(math.fsum(sorted(col)[f:n - f]) / (n - 2 * f)) for col in zip(*mixed)]
    elif name == 'geometric-median':
        value = [DL.fround(v) for v in _geometric_median(xs)]
    else:
        raise ValueError(f'aggregator {name} is not implemented here')
    d = [_dist(x, value) for x in xs]
    m = _median(d)
    return value, [x <= reject_factor * m for x in d], d


# ---- §7 round records ----
def verify_round_record(record, payloads=None, elements=None, aggregator='nnm-trimmed-mean'):
    c, leader, announces = open_commit(pb_decode('Signed', bytes.fromhex(record['commit'])))

    def bad(why):
        raise DiLoCoError('InvalidCommitError', why)
    if (c['round'], c['group'], c['span'], c['base_hash'].hex(), leader) != (record['round'], record['group'], record['span'], record['baseHash'], record['leader']):
        bad('record does not match its commit')
    if len(announces) != len(record['contributions']):
        bad('record and commit list different senders')
    for (a, sender, _), r in zip(announces, record['contributions']):
        if (sender, a['payload_hash'].hex(), a['data_shards'], a['inner_steps'], a['tokens']) != (r['sender'], r['payloadHash'], r['dataShards'], r['innerSteps'], r['tokens']):
            bad(f'entry of {sender} does not match its signed announce')
    if payloads is None:
        return
    inputs = []
    for a, sender, codec in announces:
        p = payloads.get(a['payload_hash'].hex())
        if p is None or hashlib.sha256(p).digest() != a['payload_hash']:
            bad(f'payload of {sender} missing or not matching its hash')
        inputs.append(DL.decode(p, elements or a['elements'], codec))
    _, accepted, _ = aggregate(inputs, aggregator, members=c['members'])
    if accepted != [r['accepted'] for r in record['contributions']]:
        bad('accept/reject does not follow from the payloads')


# ---- §6 steps 6, 8, 9 and §8: the commits a node receives (which it applies, once and in round order) ----
def better_commit(theirs, ours):
    """§6 step 9 fork choice between two opened commits of one round (open_commit's results with the signed body):
    more announces wins, then the lower leader key, then the lower sha256 of the commit body"""
    (c1, _, a1, body1), (c2, _, a2, body2) = theirs, ours
    if len(a1) != len(a2):
        return len(a1) > len(a2)
    k1, k2 = DL.leader_key(c1['round'], c1['leader']), DL.leader_key(c2['round'], c2['leader'])
    if k1 != k2:
        return k1 < k2
    return hashlib.sha256(body1).hexdigest() < hashlib.sha256(body2).hexdigest()


class Receiver:
    """A node at round `round` on base `base_hash` (hex) that sees a group of `members` (§6 step 4; no replica set: the
    topic view) and takes commits in turn. receive() returns ('applied',), ('ignored',) or ('catchUp', leader) or raises
    the error. Applying round r moves the node to round r + 1 on base `bases[r]` (the outer step's result: not computed
    here), with the applied commit's group g as the floor under the group it sees in round r + 1 (1.4.0)."""

    def __init__(self, group, span, rnd, base_hash, members, aggregator, bases, stalled=None):
        self.group, self.span, self.round, self.base = group, span, rnd, base_hash
        self.members, self.aggregator, self.bases = members, aggregator, bases
        # 1.3.0 §6 step 5a: None, or the number of members that announced the round to this node when it stalled
        self.stalled = stalled
        # 1.4.0 §6 step 4: the group g of the commit applied for the previous round (0: none applied yet)
        self.floor = 0
        self.applied = {}  # round -> opened commit (with its body)

    def receive(self, s):
        c, leader, announces = open_commit(s)
        opened = (c, leader, announces, s['body'])
        if c['group'] != self.group or c['span'] != self.span:
            raise DiLoCoError('WrongSpanError', 'a commit of another group or span')
        if c['round'] < self.round:
            mine = self.applied.get(c['round'])
            if c['round'] == self.round - 1 and mine is not None and mine[3] != s['body'] and better_commit(opened, mine):
                return ('catchUp', leader)
            return ('ignored',)
        if c['round'] > self.round:
            return ('catchUp', leader)
        if c['base_hash'].hex() != self.base:
            return ('catchUp', leader)
        g = max(c['members'], len(announces))
        f = (g - 1) // 3
        # the group this node sees: its members and, until the round stalls, the previous round's group (1.4.0)
        seen = self.members if self.stalled is not None else max(self.members, self.floor)
        if f < (seen - 1) // 3:
            if self.stalled is None:
                raise DiLoCoError('InvalidCommitError', f'a group of {g} hides members: this node sees {seen}')
            # a stalled round (§6 step 5a): the group is the members that announced it, at least half of the group
            if f < (self.stalled - 1) // 3:
                raise DiLoCoError('InvalidCommitError', f'a group of {g} hides members: {self.stalled} announced the stalled round')
            if len(announces) < (self.members + 1) // 2:
                raise DiLoCoError('InvalidCommitError', f'{len(announces)} announces: fewer than half of the group of {self.members}')
        if len(announces) < min_inputs(self.aggregator, f):
            raise DiLoCoError('InvalidCommitError', f'{len(announces)} announces; a group of {g} needs {min_inputs(self.aggregator, f)}')
        self.applied[c['round']] = opened
        self.base = self.bases[str(c['round'])]
        self.round += 1
        self.stalled = None  # silence is per round
        self.floor = g
        return ('applied',)

#!/usr/bin/env python3
"""Writes specs/diloco/vectors/commits.json: sequences of signed commits given to one receiver (README §6 steps 6, 8
and 9, §8: a commit is applied once, in round order, only when it is robust for the group the node sees; a later
round or another base makes the node catch up; a competing commit of the round it just applied is weighed by the
fork choice). Standard library only: the Announce / Commit / Signed protobufs are written here (§9, canonical proto3),
signed with Ed25519 (specs/layer-pool/python/ed25519.py, RFC 8032) from fixed seeds.

Every expected outcome is written below by hand from the spec text; the script checks each one with the Python
client written from the spec (specs/diloco/python/messages.py, `Receiver`) and writes nothing if they disagree.

    python3 specs/diloco/vectors/gen-commits.py
"""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import diloco as DL  # noqa: E402
import messages as DM  # noqa: E402
from messages import ed25519  # noqa: E402


def varint(n):
    return DM.varint(n)


def pb_encode(name, msg):
    """canonical proto3: fields in number order, defaults (0, '', b'', []) left out, repeated strings/messages unpacked"""
    out = b''
    for num, f, t, rep in DM.SCHEMA[name]:
        vals = msg.get(f, [] if rep else None)
        for v in (vals if rep else [vals]):
            if v in (None, 0, '', b'') and not rep:
                continue
            if t in DM.SCHEMA:
                b = pb_encode(t, v)
                out += varint(num << 3 | 2) + varint(len(b)) + b
            elif t in ('bytes', 'string'):
                b = v.encode('utf-8') if t == 'string' else v
                out += varint(num << 3 | 2) + varint(len(b)) + b
            else:
                out += varint(num << 3) + varint(v)
    return out


SEEDS = [hashlib.sha256(f'neuroshard diloco commits key {i}'.encode()).digest() for i in range(8)]
PUBS = [pb_encode('PublicKey', {'type': 1, 'data': ed25519.public_key(s)}) for s in SEEDS]
IDS = [b'\x00' + varint(len(p)) + p for p in PUBS]  # identity multihash of the protobuf key (the peer id bytes)
GROUP, SPAN, N = 'devnet/full', 'full', 8
B = {r: hashlib.sha256(f'base of round {r}'.encode()).digest() for r in range(3, 10)}
OTHER_BASE = hashlib.sha256(b'another base').digest()


def signed(domain, body, i):
    return {'body': body, 'public_key': PUBS[i], 'signature': ed25519.sign(SEEDS[i], domain + b'\x00' + body)}


def announce(i, rnd, base, group=GROUP, tag=''):
    payload_hash = hashlib.sha256(f'payload of {i} in round {rnd}{tag}'.encode()).digest()
    body = pb_encode('Announce', {'group': group, 'span': SPAN, 'round': rnd, 'sender': IDS[i], 'base_hash': base, 'codec': 1,
                                  'elements': N, 'payload_size': 4 * N, 'payload_hash': payload_hash, 'data_shards': [f'shard-{i}'],
                                  'inner_steps': 50, 'tokens': 1000, 'timestamp_ms': 1_800_000_000_000 + i})
    return signed(DM.ANNOUNCE_DOMAIN, body, i)


def commit(leader, rnd, senders, base=None, members=4, group=GROUP, ts=0, tag=''):
    base = B[rnd] if base is None else base
    order = sorted(senders, key=lambda i: IDS[i])
    body = pb_encode('Commit', {'group': group, 'span': SPAN, 'round': rnd, 'leader': IDS[leader], 'base_hash': base,
                                'announces': [announce(i, rnd, base, group, tag) for i in order], 'timestamp_ms': 1_800_000_001_000 + ts,
                                'members': members})
    return pb_encode('Signed', signed(DM.COMMIT_DOMAIN, body, leader))


def key(leader, rnd):
    return DL.leader_key(rnd, IDS[leader])


def by_key(rnd, among):
    """the given key indexes in ascending leader key of round rnd (the fork choice's second criterion)"""
    return sorted(among, key=lambda i: key(i, rnd))


APPLIED, IGNORED = {'outcome': 'applied'}, {'outcome': 'ignored'}


def catch_up(leader):
    return {'outcome': 'catchUp', 'from': DM.peer_id_string(IDS[leader])}


def sha(b):
    return hashlib.sha256(DM.pb_decode('Signed', b)['body']).hexdigest()


cases = []

# ---- 1. round order, once, fork choice by the number of announces; a group of 4 (f = 1: 3 announces needed) ----
lo5, hi5 = by_key(5, [1, 2])
HIGHER = next(i for i in by_key(5, range(3, 8)) if key(i, 5) > key(hi5, 5))  # a leader whose key of round 5 is above hi5's
ops = [
    ('a commit of a later round (6) before round 5 is applied, on this node\'s base hash (as after a round that left the weights unchanged): not applied, '
     'the node catches up from its leader (§6 step 8, §8 round order)', commit(0, 6, [0, 1, 2], base=B[5]), catch_up(0)),
    ('the first valid commit of round 5: applied (the node moves to round 6)', commit(hi5, 5, [0, 1, 2]), APPLIED),
    ('the same commit again (gossip re-delivery): ignored, never applied twice (§8)', commit(hi5, 5, [0, 1, 2]), IGNORED),
    ('a competing commit of round 5 with as many announces and a higher leader key (another leader: a lower key would win): ignored',
     commit(HIGHER, 5, [1, 2, HIGHER]), IGNORED),
    ('a competing commit of round 5 with fewer announces but the lowest leader key: ignored (more announces wins first)',
     commit(by_key(5, range(8))[0], 5, [0, 1], members=4), IGNORED),
    ('a competing commit of round 5 with more announces (4): the fork choice prefers it, the node catches up from its leader (§6 step 9)',
     commit(5, 5, [0, 1, 2, 3]), catch_up(5)),
    ('a commit of round 4 (older than the one just applied): ignored', commit(0, 4, [0, 1, 2]), IGNORED),
    ('the first valid commit of round 6: applied (round order)', commit(0, 6, [0, 1, 2]), APPLIED),
    ('round 5 again after round 6 was applied, even a better one: ignored (only the round just applied is weighed)',
     commit(6, 5, [0, 1, 2, 3, 4]), IGNORED),
    ('a commit of round 9 (two rounds ahead) on this node\'s base hash: the node catches up', commit(1, 9, [0, 1, 2], base=B[7]), catch_up(1)),
]
cases.append({'name': 'round order and once (a group of 4)', 'round': 5, 'baseHash': B[5].hex(), 'members': 4, 'aggregator': 'nnm-trimmed-mean', 'ops': ops})

# ---- 2. §6 step 6 refusals and the remaining fork-choice criteria; a group of 7 (f = 2: 5 announces needed) ----
first = by_key(5, range(8))
top, low = first[-1], first[0]
c_a = commit(3, 5, [0, 1, 2, 3, 4], members=7, ts=1)
c_b = commit(3, 5, [0, 1, 2, 3, 4], members=7, ts=2)
c_lo, c_hi = (c_a, c_b) if sha(c_a) < sha(c_b) else (c_b, c_a)
ops = [
    ('a commit declaring a group of 4 (f = 1) with 4 announces while this node sees 7 (f = 2): InvalidCommitError', commit(0, 5, [0, 1, 2, 3], members=4),
     {'error': 'InvalidCommitError'}),
    ('members absent (0): g = 5 announces, f = 1 below the 2 of the 7 this node sees: InvalidCommitError', commit(0, 5, [0, 1, 2, 3, 4], members=0),
     {'error': 'InvalidCommitError'}),
    ('members 7 but only 4 announces (2f + 1 = 5 needed): InvalidCommitError', commit(0, 5, [0, 1, 2, 3], members=7), {'error': 'InvalidCommitError'}),
    ('a commit of another group: WrongSpanError', commit(0, 5, [0, 1, 2, 3, 4], members=7, group='devnet/other'), {'error': 'WrongSpanError'}),
    ('a commit of round 5 on another base hash: not applied, the node catches up from its leader', commit(1, 5, [0, 1, 2, 3, 4], base=OTHER_BASE, members=7),
     catch_up(1)),
    ('members 10 (f = 3) with 5 announces: below 2f + 1 = 7: InvalidCommitError', commit(0, 5, [0, 1, 2, 3, 4], members=10), {'error': 'InvalidCommitError'}),
    ('5 announces, members 7: applied (every refusal before changed nothing)', c_hi, APPLIED),
    ('a competing commit of round 5, same leader and announces (another time stamp) with a lower sha256 of its body: the node catches up',
     c_lo, catch_up(3)),
]
cases.append({'name': 'commit refusals and fork-choice ties (a group of 7)', 'round': 5, 'baseHash': B[5].hex(), 'members': 7, 'aggregator': 'nnm-trimmed-mean', 'ops': ops})

# ---- 3. fork choice by the leader key (same number of announces) ----
ops = [
    ('round 5 applied from the leader with the higher key of two', commit(top, 5, [0, 1, 2]), APPLIED),
    ('a competing commit of round 5, as many announces, the lowest leader key: the node catches up from it', commit(low, 5, [3, 4, 5], tag='b'), catch_up(low)),
    ('a competing commit with fewer announces (2, a group of 4 as declared): ignored', commit(low, 5, [6, 7], members=4), IGNORED),
]
cases.append({'name': 'fork choice by the leader key (a group of 4)', 'round': 5, 'baseHash': B[5].hex(), 'members': 4, 'aggregator': 'nnm-trimmed-mean', 'ops': ops})

# ---- 4. the mean needs one input ----
ops = [
    ('the mean (no robustness claimed): one announce of a group of 4 is enough', commit(2, 5, [2], members=4), APPLIED),
]
cases.append({'name': 'the mean takes one input (a group of 4)', 'round': 5, 'baseHash': B[5].hex(), 'members': 4, 'aggregator': 'mean', 'ops': ops})

# ---- 5. a receiver whose round stalled (§6 step 5a, 1.3.0): `stalled` = the members that announced the round to it ----
ops = [
    ('stalled, 2 of a group of 4 announced: a commit of 1 announce (a group of 1) is fewer than half of the group: InvalidCommitError',
     commit(0, 5, [0], members=1), {'error': 'InvalidCommitError'}),
    ('the 2 announcers as a group of 2 (f = 0, half of 4): applied', commit(1, 5, [0, 1], members=2), APPLIED),
    ('round 6 has not stalled (silence is per round): a group of 2 hides members of the 4: InvalidCommitError',
     commit(1, 6, [0, 1], members=2), {'error': 'InvalidCommitError'}),
]
cases.append({'name': 'a stalled round (a group of 4, 2 announced)', 'round': 5, 'baseHash': B[5].hex(), 'members': 4, 'stalled': 2,
              'aggregator': 'nnm-trimmed-mean', 'ops': ops})
ops = [
    ('stalled, 4 of a group of 7 announced: a group of 3 (f = 0) hides announcers (f = 1 for 4): InvalidCommitError',
     commit(0, 5, [0, 1, 2], members=3), {'error': 'InvalidCommitError'}),
    ('4 announces as a group of 4 (f = 1, 2f + 1 = 3, half of 7 = 4): applied', commit(0, 5, [0, 1, 2, 3], members=4), APPLIED),
]
cases.append({'name': 'a stalled round (a group of 7, 4 announced)', 'round': 5, 'baseHash': B[5].hex(), 'members': 7, 'stalled': 4,
              'aggregator': 'nnm-trimmed-mean', 'ops': ops})

# ---- 6. the previous round's group is a floor (§6 step 4, 1.4.0; no replica set: `members` is the topic view) ----
ops = [
    ('a commit of round 5 declaring a group of 7 with 5 announces while this node sees 4: applied (f = 2 is not below the 1 of 4)',
     commit(0, 5, [0, 1, 2, 3, 4], members=7), APPLIED),
    ('round 6, a group of 4 with 3 announces (f = 1): this node still sees 4 members, but the group of 7 it applied for round 5 is a '
     'floor (f = 2): InvalidCommitError', commit(1, 6, [0, 1, 2], members=4), {'error': 'InvalidCommitError'}),
    ('round 6, members absent (0) and 5 announces: g = 5, f = 1 below the floor\'s 2: InvalidCommitError',
     commit(1, 6, [0, 1, 2, 3, 4], members=0), {'error': 'InvalidCommitError'}),
    ('round 6, 5 announces as a group of 7: applied', commit(1, 6, [0, 1, 2, 3, 4], members=7), APPLIED),
]
cases.append({'name': 'the previous round\'s group is a floor (a topic view of 4 after a commit of 7)', 'round': 5, 'baseHash': B[5].hex(), 'members': 4,
              'aggregator': 'nnm-trimmed-mean', 'ops': ops})

out = {
    'description': 'sequences of signed commits given to one receiver at `round` on base `baseHash` that sees a group of `members` (§6 step 4) and '
                   'aggregates with `aggregator`; `bases`: the base a node holds after applying round r (the outer step\'s result, an input here). '
                   'Each op\'s outcome: `applied` (the node moves to the next round), `ignored`, `catchUp` from a peer (`from`: the commit\'s leader; '
                   'nothing applied), or the error. §6 steps 6, 8, 9 and §8 (applied once and in round order). `stalled` (1.3.0, §6 step 5a): the '
                   'receiver\'s round has stalled and that many members announced it to the receiver (absent: not stalled; the next round is not). '
                   'The receiver has no replica set (1.4.0, §6 step 4): after applying a commit of group g = max(members, announces) it sees a '
                   'group of at least g in the next round until that round stalls.',
    'group': GROUP, 'span': SPAN, 'elements': N,
    'bases': {str(r): B[r + 1].hex() for r in range(3, 9)},
    'keys': [{'ed25519_seed': s.hex(), 'peer_id': DM.peer_id_string(i)} for s, i in zip(SEEDS, IDS)],
    'cases': [{**c, 'ops': [{'name': n, 'signed': s.hex(), **o} for n, s, o in c['ops']]} for c in cases],
}

# the spec's expectations against the Python client
bad = 0
for c in out['cases']:
    r = DM.Receiver(GROUP, SPAN, c['round'], c['baseHash'], c['members'], c['aggregator'], out['bases'], c.get('stalled'))
    for o in c['ops']:
        try:
            got = r.receive(DM.pb_decode('Signed', bytes.fromhex(o['signed'])))
            got = {'outcome': got[0], **({'from': got[1]} if len(got) > 1 else {})}
        except DM.DiLoCoError as e:
            got = {'error': e.name}
        want = {k: v for k, v in o.items() if k in ('outcome', 'from', 'error')}
        if got != want:
            bad += 1
            print(f'{c["name"]}: "{o["name"]}": the Python client says {got}, the spec {want}', file=sys.stderr)
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'commits.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'commits.json: {sum(len(c["ops"]) for c in out["cases"])} ops in {len(out["cases"])} sequences')

#!/usr/bin/env python3
"""Writes specs/node/vectors/records.json: the round-record check of node/ponw.md §3 — a training proof of a stage
holding slots 1 and 2, its checkpoint 0 with one piece of evidence per slot (a DiLoCo round record with the leader's
signed commit and the payloads), and whether a validator accepts it (`accepted`). Standard library only: announces and
commits are written and signed here (specs/diloco §2, §9; Ed25519 of specs/layer-pool/python), accept/reject by
specs/diloco/python/messages.py (§7).

Outcomes by hand from §3; the script checks each with `accepted_pseudo_gradient` of specs/node/python/ponw.py and
writes nothing if they disagree.

    python3 specs/node/vectors/gen-records.py
"""
import copy
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for sub in (('..', 'python'), ('..', '..', 'diloco', 'python'), ('..', '..', 'layer-pool', 'python')):
    sys.path.insert(0, os.path.join(HERE, *sub))
import diloco as DL  # noqa: E402
import layer_pool as LP  # noqa: E402
import messages as DM  # noqa: E402
import ponw as NP  # noqa: E402
from messages import ed25519  # noqa: E402

CONFIG = {'vocabSize': 16, 'dModel': 4, 'nLayers': 2, 'nHeads': 2, 'nKvHeads': 1, 'ffnHidden': 8, 'maxSeqLen': 16, 'ropeTheta': 10000,
          'normEps': 1e-5, 'tieEmbeddings': False}
MODEL, START, END, ROUND = 'devnet', 1, 3, 4
PROVER = '00112233445566778899aabbccddeeff00112233'  # the prover's wallet address


def pb_encode(name, msg):
    out = b''
    for num, f, t, rep in DM.SCHEMA[name]:
        vals = msg.get(f, [] if rep else None)
        for v in (vals if rep else [vals]):
            if v in (None, 0, '', b'') and not rep:
                continue
            if t in DM.SCHEMA or t in ('bytes', 'string'):
                b = pb_encode(t, v) if t in DM.SCHEMA else v.encode('utf-8') if t == 'string' else v
                out += DM.varint(num << 3 | 2) + DM.varint(len(b)) + b
            else:
                out += DM.varint(num << 3) + DM.varint(v)
    return out


SEEDS = [hashlib.sha256(f'neuroshard node records key {i}'.encode()).digest() for i in range(5)]
PUBS = [pb_encode('PublicKey', {'type': 1, 'data': ed25519.public_key(s)}) for s in SEEDS]
IDS = [b'\x00' + DM.varint(len(p)) + p for p in PUBS]
PEERS = [DM.peer_id_string(i) for i in IDS]


def signed(domain, body, i):
    return {'body': body, 'public_key': PUBS[i], 'signature': ed25519.sign(SEEDS[i], domain + b'\x00' + body)}


def bits(xs):
    return [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]


def slot_tensors(params, slot):
    return [(n, 'F32', shape, b''.join(struct.pack('<f', x) for x in params[n])) for n, shape in NP._slot_parameters(CONFIG, slot)]


PARAMS = {}
k = 0
for slot in range(START, END):
    for n, shape in NP._slot_parameters(CONFIG, slot):
        size = 1
        for d in shape:
            size *= d
        PARAMS[n] = [DL.fround(((k + i) * 29 % 97 - 48) / 32) for i in range(size)]
        k += size


def evidence(slot, senders=(0, 1, 2), members=3, aggregator='mean', base=None, group=None, outlier=None, codec=None, leader=3):
    """a round of slot `slot`: fp32 payloads of `senders` (the prover is sender 0; `outlier` sends a far one), the
    leader's signed commit, the record with the aggregator's accept/reject"""
    tensors = slot_tensors(PARAMS, slot)
    n = sum(len(t[3]) // 4 for t in tensors)
    base = bytes.fromhex(LP.content_hash(tensors)) if base is None else base
    group = f'{MODEL}/slot-{slot}' if group is None else group
    payloads, announces, contributions, inputs = {}, [], [], []
    for i in sorted(senders, key=lambda i: IDS[i]):
        values = [DL.fround((40.0 if i == outlier else 0.01) * ((j * (i + 3)) % 7 - 3)) for j in range(n)]
        c = codec if (codec and i == 0) else {'codec': 'fp32'}
        p = DL.encode(values, c)
        num = {'fp32': 1, 'fp16': 2, 'int8': 3}[c['codec']]
        body = pb_encode('Announce', {'group': group, 'span': f'slot-{slot}', 'round': ROUND, 'sender': IDS[i], 'base_hash': base, 'codec': num,
                                      'block_size': c.get('blockSize', 0), 'elements': n, 'payload_size': len(p),
                                      'payload_hash': hashlib.sha256(p).digest(), 'data_shards': [f'shard-{i}'], 'inner_steps': 8, 'tokens': 512,
                                      'timestamp_ms': 1_800_000_000_000 + i})
        announces.append(signed(DM.ANNOUNCE_DOMAIN, body, i))
        payloads[hashlib.sha256(p).hexdigest()] = p.hex()
        inputs.append(DL.decode(p, n, c))
        contributions.append({'sender': PEERS[i], 'payloadHash': hashlib.sha256(p).hexdigest(), 'dataShards': [f'shard-{i}'], 'innerSteps': 8, 'tokens': 512})
    body = pb_encode('Commit', {'group': group, 'span': f'slot-{slot}', 'round': ROUND, 'leader': IDS[leader], 'base_hash': base, 'announces': announces,
                                'timestamp_ms': 1_800_000_001_000, 'members': members})
    commit = pb_encode('Signed', signed(DM.COMMIT_DOMAIN, body, leader))
    _, accepted, distances = DM.aggregate(inputs, aggregator, members=members)
    for c, a, d in zip(contributions, accepted, distances):
        c.update(accepted=a, distance=round(d, 6))
    record = {'group': group, 'span': f'slot-{slot}', 'round': ROUND, 'baseHash': base.hex(), 'leader': PEERS[leader], 'commit': commit.hex(),
              'aggregator': aggregator, 'contributions': contributions, 'resultHash': '00' * 32}
    return {'slot': slot, 'record': record, 'payloads': payloads}


def witness(evidences):
    return {'start': START, 'end': END, 'opsFrom': 0, 'states': [{'step': 0, 'parameters': {n: bits(v) for n, v in PARAMS.items()}, 'm': {}, 'v': {}}],
            'ops': [[]], 'evidence': evidences, 'payloads': []}


def claim(w, peer_of=None, sender=PROVER):
    entries = []
    for e in w['evidence']:
        mine = [c for c in e['record']['contributions'] if c['sender'] == PEERS[0]]
        if mine:
            _, _, anns = DM.open_commit(DM.pb_decode('Signed', bytes.fromhex(e['record']['commit'])))
            a = [x for x, s, _ in anns if s == PEERS[0]][0]
            entries.append({'slot': e['slot'], 'payloadHash': mine[0]['payloadHash'],
                            'codec': NP.codec_tuple({'codec': a['codec'], 'blockSize': a['block_size'], 'chunk': a['chunk'], 'topK': a['top_k'], 'bits': a['bits']})})
    return {'sender': sender, 'modelHash': hashlib.sha256(NP.encode_witness(w)).hexdigest(), 'pseudoGradientHash': NP.stage_pseudo_gradient_hash(entries)}


GOOD = [evidence(1), evidence(2)]
W = witness(GOOD)
Q = claim(W)
cases = []


def case(name, w, q, accepted, aggregator='mean', peer_of=None):
    cases.append({'name': name, 'aggregator': aggregator, 'witness': w, 'query': q, 'peerOf': {PROVER: PEERS[0]} if peer_of is None else peer_of, 'accepted': accepted})


case('both slots\' records accept the prover\'s peer (mean), and the claim is their stage pseudo-gradient hash', W, Q, True)
case('another pseudo-gradient hash in the claim', W, {**Q, 'pseudoGradientHash': '00' * 32}, False)
case('another model hash in the claim (checkpoint 0 must hash to it)', W, {**Q, 'modelHash': '00' * 32}, False)
case('the sender\'s wallet is bound to no peer', W, Q, False, peer_of={})
case('the sender\'s wallet is bound to another contributor\'s peer (whose payload the claim does not name)', W, Q, False, peer_of={PROVER: PEERS[1]})
w = witness([evidence(1, outlier=0, senders=(0, 1, 2, 4), members=4, aggregator='nnm-trimmed-mean'), evidence(2, aggregator='nnm-trimmed-mean', senders=(0, 1, 2, 4), members=4)])
case('nnm-trimmed-mean rejects the prover\'s far pseudo-gradient in slot 1', w, claim(w), False, aggregator='nnm-trimmed-mean')
w = witness([evidence(1, outlier=4, senders=(0, 1, 2, 4), members=4, aggregator='nnm-trimmed-mean'), evidence(2, aggregator='nnm-trimmed-mean', senders=(0, 1, 2, 4), members=4)])
case('nnm-trimmed-mean rejects another sender and accepts the prover in both slots', w, claim(w), True, aggregator='nnm-trimmed-mean')
case('the records were aggregated with the mean, the network runs nnm-trimmed-mean (accept/reject recomputed: the outlier\'s flag differs)',
     *(lambda w: (w, claim(w)))(witness([evidence(1, outlier=4, senders=(0, 1, 2, 4), members=4), evidence(2, senders=(0, 1, 2, 4), members=4)])), False,
     aggregator='nnm-trimmed-mean')
w = witness([GOOD[0]])
case('evidence for slot 1 only', w, claim(w), False)
w = witness([GOOD[0], GOOD[1], copy.deepcopy(GOOD[1])])
case('two pieces of evidence for slot 2', w, claim(w), False)
w = witness([evidence(1, group=f'{MODEL}/slot-9'), GOOD[1]])
case('a record of another group', w, claim(w), False)
w = witness([evidence(1, base=hashlib.sha256(b'other').digest()), GOOD[1]])
case('a round on another base than checkpoint 0\'s weights of the slot', w, claim(w), False)
bad = copy.deepcopy(GOOD[0])
first = sorted(bad['payloads'])[0]
bad['payloads'][first] = bad['payloads'][first][:-2] + ('00' if bad['payloads'][first][-2:] != '00' else '01')
w = witness([bad, GOOD[1]])
case('a payload that does not hash to its announce', w, claim(w), False)
bad = copy.deepcopy(GOOD[0])
bad['record']['contributions'][0]['accepted'] = False
w = witness([bad, GOOD[1]])
case('a record whose accepted flags do not follow from the payloads', w, claim(w), False)
w = witness([evidence(1, codec={'codec': 'int8', 'blockSize': 4}), GOOD[1]])
case('the prover announced int8 (block size 4) in slot 1: the codec tuple is part of the hash', w, claim(w), True)
q = claim(w)
q2 = {**q, 'pseudoGradientHash': NP.stage_pseudo_gradient_hash([{'slot': 1, 'payloadHash': [c for c in w['evidence'][0]['record']['contributions'] if c['sender'] == PEERS[0]][0]['payloadHash'],
                                                                  'codec': NP.codec_tuple({'codec': 3, 'blockSize': 64, 'chunk': 0, 'topK': 0, 'bits': 0})},
                                                                 {'slot': 2, 'payloadHash': [c for c in GOOD[1]['record']['contributions'] if c['sender'] == PEERS[0]][0]['payloadHash'],
                                                                  'codec': NP.codec_tuple({'codec': 1, 'blockSize': 0, 'chunk': 0, 'topK': 0, 'bits': 0})}])}
case('the same, claimed with another int8 block size (64)', w, q2, False)

bad_n = 0
for c in cases:
    got = NP.accepted_pseudo_gradient(CONFIG, MODEL, c['aggregator'], c['witness'], c['query'], c['peerOf'])
    if got != c['accepted']:
        bad_n += 1
        print(f'"{c["name"]}": the Python check says {got}, the spec {c["accepted"]}', file=sys.stderr)
if bad_n:
    sys.exit(1)
out = {'description': 'node/ponw.md §3: `config`, `modelId`; per case the network\'s `aggregator`, checkpoint 0 (`witness`, as witness.json describes '
                      'witnesses), the proof\'s `query` ({sender address, modelHash, pseudoGradientHash}), `peerOf` (address -> bound peer id) and '
                      'whether a validator accepts it', 'config': CONFIG, 'modelId': MODEL, 'cases': cases}
with open(os.path.join(HERE, 'records.json'), 'w', encoding='utf-8') as f:
    f.write('{\n "description": ' + json.dumps(out['description']) + ',\n "config": ' + json.dumps(CONFIG) + ',\n "modelId": ' + json.dumps(MODEL) +
            ',\n "cases": [\n  ' + ',\n  '.join(json.dumps(c) for c in cases) + '\n ]\n}\n')
print(f'records.json: {len(cases)} cases')

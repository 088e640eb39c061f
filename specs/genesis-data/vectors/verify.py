#!/usr/bin/env python3
"""Independent check of vectors.json against the spec (README.md), in Python with only hashlib:
document split, shard bytes and hashes, manifest hash, assignment and shuffle stream.
It takes documentTokens as given: specs/tokenizer/vectors/reference.py re-derives them from the tokenizer spec.
Run: python3 specs/genesis-data/vectors/verify.py"""
import hashlib, json, struct, os

here = os.path.dirname(os.path.abspath(__file__))
v = json.load(open(os.path.join(here, 'vectors.json')))
docs = [json.loads(l)['text'] for l in open(os.path.join(here, 'corpus.jsonl'), encoding='utf-8') if l.strip()]
m = v['manifest']
threshold = m['settings']['validationThreshold']
assert threshold == int(v['settings']['validationFraction'] * 2**32)

def split_of(doc):
    h = hashlib.sha256(b'neuroshard-genesis-split/v1\x00' + doc.encode('utf-8')).digest()
    return 'validation' if struct.unpack('>I', h[:4])[0] < threshold else 'train'

splits = [split_of(d) for d in docs]
assert splits == v['documentSplits'], splits

eos, n, bpt = m['tokenizer']['eosId'], m['settings']['shardTokens'], m['settings']['bytesPerToken']
shards = []
for split in ('train', 'validation'):
    stream = [t for d, s, toks in zip(docs, splits, v['documentTokens']) if s == split for t in toks + [eos]]
    for i in range(0, len(stream), n):
        toks = stream[i:i + n]
        body = b'NSGD' + bytes([1, bpt]) + b'\x00\x00' + struct.pack('<I', len(toks)) + b''.join(struct.pack('<H' if bpt == 2 else '<I', t) for t in toks)
        shards.append({'hash': hashlib.sha256(body).hexdigest(), 'split': split, 'tokens': len(toks), 'bytes': len(body)})
assert shards == m['shards'], 'shards differ'

tok_json = open(os.path.join(here, 'tokenizer.json'), 'rb').read()
assert hashlib.sha256(tok_json).hexdigest() == m['tokenizer']['sha256']
src = hashlib.sha256(b''.join(struct.pack('<I', len(d.encode())) + d.encode() for d in docs)).hexdigest()
assert src == m['source']['sha256']

body = {k: val for k, val in m.items() if k != 'manifestHash'}
canon = json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
assert hashlib.sha256(canon).hexdigest() == m['manifestHash'], 'manifest hash differs'

def score(peer, rnd, shard):
    p = peer.encode()
    return hashlib.sha256(b'neuroshard-genesis-assign/v1\x00' + struct.pack('>I', len(p)) + p + struct.pack('>Q', rnd) + bytes.fromhex(shard)).digest()

for a in v['assignments']:
    train = [s['hash'] for s in m['shards'] if s['split'] == 'train']
    got = sorted(train, key=lambda h: (score(a['peerId'], int(a['round']), h), h))[:a['k']]
    assert got == a['shards'], a

def stream(seed):
    block = 0
    while True:
        h = hashlib.sha256(b'neuroshard-genesis-shuffle/v1\x00' + struct.pack('>QQ', seed, block)).digest()
        block += 1
        for i in range(8):
            yield struct.unpack('>I', h[4 * i:4 * i + 4])[0]

sh = v['shuffle']
g = stream(int(sh['seed']))
assert [next(g) for _ in range(10)] == sh['firstU32']
wo = sh['windowOrder']
order = [[s, j * wo['seqLen']] for s, L in enumerate(wo['shardLengths']) for j in range((L - 1) // wo['seqLen'])]
g = stream(int(sh['seed']))
for i in range(len(order) - 1, 0, -1):
    m_ = i + 1
    limit = 2**32 - (2**32 % m_)
    while True:
        x = next(g)
        if x < limit:
            break
    j = x % m_
    order[i], order[j] = order[j], order[i]
assert order == wo['order'], order
print('genesis-data vectors: all checks pass')

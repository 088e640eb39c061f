#!/usr/bin/env python3
"""Writes the manifest-*.json and shard-*.json rejection vectors from vectors.json, in Python with only
hashlib, following README.md ("Manifest", "Loading a shard"). Each bad case breaks one rule and keeps
everything else valid (a schema-breaking manifest gets a recomputed manifestHash), so the expected error
does not depend on the order of checks except where the spec makes it normative.
Run: python3 specs/genesis-data/vectors/rejections.py [--write]   (without --write: check the files)"""
import sys
import copy, hashlib, json, os, struct

here = os.path.dirname(os.path.abspath(__file__))
v = json.load(open(os.path.join(here, 'vectors.json'), encoding='utf-8'))
docs = [json.loads(l)['text'] for l in open(os.path.join(here, 'corpus.jsonl'), encoding='utf-8') if l.strip()]
M = v['manifest']

def manifest_hash(m):
    body = {k: x for k, x in m.items() if k != 'manifestHash'}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')).hexdigest()

def rehashed(fn):
    m = copy.deepcopy(M)
    fn(m)
    m['manifestHash'] = manifest_hash(m)
    return m

WRITE = '--write' in sys.argv

def dump(name, obj):
    path = os.path.join(here, name)
    if WRITE:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(obj, f, indent=2)
            f.write('\n')
    else:
        assert json.load(open(path, encoding='utf-8')) == json.loads(json.dumps(obj)), name

def shard(tokens, magic=b'NSGD', version=1, width=2, reserved=0, count=None, extra=b''):
    body = b''.join(struct.pack('<H' if width == 2 else '<I', t) for t in tokens) if width in (2, 4) else b'\x00' * (3 * len(tokens))
    return magic + bytes([version, width]) + struct.pack('<H', reserved) + struct.pack('<I', len(tokens) if count is None else count) + body + extra

def sha(b):
    return hashlib.sha256(b).hexdigest()

# the first train shard, rebuilt from the corpus tokens (as verify.py does)
eos, n = M['tokenizer']['eosId'], M['settings']['shardTokens']
splits = v['documentSplits']
stream = [t for s, toks in zip(splits, v['documentTokens']) if s == 'train' for t in toks + [eos]]
first = shard(stream[:n])
assert sha(first) == M['shards'][0]['hash']

manifests = {
    'valid': (M, None),
    'wrong-format': (rehashed(lambda m: m.update(format='neuroshard-genesis')), 'ManifestError'),
    'unknown-version': (rehashed(lambda m: m.update(version=2)), 'ManifestError'),
    'bytes-mismatch': (rehashed(lambda m: m['shards'][0].update(bytes=m['shards'][0]['bytes'] + 2)), 'ManifestError'),
    'tokens-over-shard-size': (rehashed(lambda m: m['shards'][0].update(tokens=n + 1, bytes=12 + 2 * (n + 1))), 'ManifestError'),
    'duplicate-shard': (rehashed(lambda m: m['shards'].append(dict(m['shards'][0]))), 'ManifestError'),
    'uppercase-shard-hash': (rehashed(lambda m: m['shards'][0].update(hash=m['shards'][0]['hash'].upper())), 'ManifestError'),
    'bad-split': (rehashed(lambda m: m['shards'][0].update(split='test')), 'ManifestError'),
    'non-integer-tokens': (rehashed(lambda m: m['shards'][0].update(tokens=63.5)), 'ManifestError'),
    'eos-outside-vocab': (rehashed(lambda m: m['tokenizer'].update(eosId=m['tokenizer']['vocabSize'])), 'ManifestError'),
    'width-too-small': (rehashed(lambda m: m['tokenizer'].update(vocabSize=65537)), 'ManifestError'),
    'other-tokenizer-file': (rehashed(lambda m: m['tokenizer'].update(file='../tokenizer.json')), 'ManifestError'),
    'no-manifest-hash': ({k: x for k, x in M.items() if k != 'manifestHash'}, 'ManifestError'),
    'manifest-hash-mismatch': (dict(M, manifestHash=M['manifestHash'][:-1] + ('0' if M['manifestHash'][-1] != '0' else '1')), 'ManifestIntegrityError'),
    'edited-without-rehash': (dict(M, settings=dict(M['settings'], validationThreshold=M['settings']['validationThreshold'] + 1)), 'ManifestIntegrityError'),
    'schema-and-hash-wrong': (dict(M, version=2), 'ManifestError'),
}
for name, case in manifests.items():
    m, err = case
    out = {'description': f'manifest: {name.replace("-", " ")}', 'manifest': m}
    if err:
        out['error'] = err
    if name == 'schema-and-hash-wrong':
        out['description'] += ' (schema checks come before the hash check: ManifestError)'
    dump(f'manifest-{name}.json', out)

bad_vocab = shard([1, 2, M['tokenizer']['vocabSize']])
with_bad_vocab = rehashed(lambda m: m['shards'].append({'hash': sha(bad_vocab), 'split': 'train', 'tokens': 3, 'bytes': len(bad_vocab)}))
tampered = bytearray(first)
tampered[20] ^= 1
shards = {
    'valid': dict(name=sha(first), data=first, manifest=True, tokens=stream[:n]),
    'valid-without-manifest': dict(name=sha(first), data=first, manifest=False, tokens=stream[:n]),
    'tampered': dict(name=sha(first), data=bytes(tampered), manifest=False, error='ShardIntegrityError'),
    'tampered-listed': dict(name=sha(first), data=bytes(tampered), manifest=True, error='ShardIntegrityError'),
    'bad-magic': dict(data=shard([1, 2], magic=b'NSGE'), manifest=False, error='ShardFormatError'),
    'unknown-version': dict(data=shard([1, 2], version=2), manifest=False, error='ShardFormatError'),
    'width-3': dict(data=shard([1, 2], width=3), manifest=False, error='ShardFormatError'),
    'reserved-not-zero': dict(data=shard([1, 2], reserved=1), manifest=False, error='ShardFormatError'),
    'count-too-large': dict(data=shard([1, 2], count=3), manifest=False, error='ShardFormatError'),
    'trailing-byte': dict(data=shard([1, 2], extra=b'\x00'), manifest=False, error='ShardFormatError'),
    'shorter-than-header': dict(data=b'NSGD\x01\x02\x00\x00\x00', manifest=False, error='ShardFormatError'),
    'empty-width-4': dict(data=shard([], width=4), manifest=False, tokens=[]),
    'not-listed': dict(data=shard([1, 2]), manifest=True, error='ShardNotFoundError'),
    'token-outside-vocab': dict(data=bad_vocab, manifest=with_bad_vocab, error='ShardFormatError'),
    'uppercase-name': dict(name=sha(first).upper(), data=first, manifest=False, error='InvalidParametersError'),
    'short-name': dict(name=sha(first)[:63], data=first, manifest=False, error='InvalidParametersError'),
}
for name, c in shards.items():
    out = {'description': f'shard: {name.replace("-", " ")}', 'name': c.get('name', sha(c['data'])), 'shardHex': c['data'].hex()}
    if c['manifest'] is True:
        out['manifest'] = 'manifest-valid.json'
    elif c['manifest']:
        out['manifest'] = c['manifest']
    if 'error' in c:
        out['error'] = c['error']
    else:
        out['tokens'] = c['tokens']
    dump(f'shard-{name}.json', out)
print(f'{"wrote" if WRITE else "checked"} {len(manifests)} manifest and {len(shards)} shard vectors')

# ---- manifest hash over non-ASCII strings: canonical JSON escaping (JSON.stringify = Python ensure_ascii=False) ----
def files_source(m):
    m['source'] = {'kind': 'files', 'files': [{'name': 'caf\u00e9 "quoted" \\ back\tslash\u2028\u0001\U0001F600.jsonl', 'sha256': '0' * 64}],
                   'documents': m['source']['documents'], 'sha256': m['source']['sha256']}
dump('manifest-unicode-file-name.json', {'description': 'manifest: a files source whose name needs escaping (quote, backslash, tab, U+0001) and non-ASCII text written as is (é, U+2028, an astral emoji); the manifest hash covers the canonical bytes', 'manifest': rehashed(files_source)})

# ---- assignment (README "Assignment") ----
def score(peer, rnd, h):
    p = peer.encode('utf-8')
    return hashlib.sha256(b'neuroshard-genesis-assign/v1\x00' + struct.pack('>I', len(p)) + p + struct.pack('>Q', rnd) + bytes.fromhex(h)).digest()

def assign(peer, rnd, k, split):
    cand = [s['hash'] for s in M['shards'] if s['split'] == split]
    return sorted(cand, key=lambda h: (score(peer, rnd, h), h))[:k]

assigns = {
    'validation-split': dict(peerId='12D3KooWGenesisPeerA', round='5', k=2, split='validation'),
    'non-ascii-peer': dict(peerId='p\u00e9er-\u4e2d', round='1', k=3, split='train'),
    'k-above-shard-count': dict(peerId='peer-d', round='4294967296', k=50, split='validation'),
    'error-empty-peer': dict(peerId='', round='0', k=1, split='train', error='InvalidParametersError'),
    'error-k-zero': dict(peerId='peer-d', round='0', k=0, split='train', error='InvalidParametersError'),
    'error-round-2-64': dict(peerId='peer-d', round='18446744073709551616', k=1, split='train', error='InvalidParametersError'),
}
for name, a in assigns.items():
    out = {'description': f'assignment: {name.replace("-", " ")} (manifest of vectors.json)', **a}
    if 'error' not in a:
        out['shards'] = assign(a['peerId'], int(a['round']), a['k'], a['split'])
    dump(f'assign-{name}.json', out)
print(f'{"wrote" if WRITE else "checked"} 1 more manifest and {len(assigns)} assignment vectors')

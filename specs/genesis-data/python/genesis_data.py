"""The genesis dataset's reader rules (specs/genesis-data/README.md: Manifest, Loading a shard, Assignment), written
from the spec text alone, standard library only."""
import hashlib
import json
import re
import struct


class GenesisDataError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


HEX64 = re.compile(r'[0-9a-f]{64}')


def _integral(x):
    """a JSON number with no fraction (a parser may give 3.0 for 3: the same number)"""
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _canonical(x):
    """canonical JSON: sorted keys, no whitespace, ECMAScript JSON.stringify escaping, integers in decimal"""
    def norm(v):
        if isinstance(v, dict):
            return {k: norm(w) for k, w in v.items()}
        if isinstance(v, list):
            return [norm(w) for w in v]
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v
    return json.dumps(norm(x), sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def manifest_hash(m):
    return hashlib.sha256(_canonical({k: v for k, v in m.items() if k != 'manifestHash'}).encode('utf-8')).hexdigest()


def validate_manifest(m):
    """every schema rule (ManifestError), then, only once they all hold, the manifest hash (ManifestIntegrityError)"""
    def bad(why):
        raise GenesisDataError('ManifestError', why)

    def count(x, lo=0, hi=None):
        return _integral(x) and x >= lo and (hi is None or x <= hi)
    if not isinstance(m, dict) or m.get('format') != 'neuroshard-genesis-dataset' or m.get('version') != 1 or isinstance(m.get('version'), bool):
        bad('format or version')
    t, src, st, shards = m.get('tokenizer'), m.get('source'), m.get('settings'), m.get('shards')
    if not all(isinstance(x, dict) for x in (t, src, st)) or not isinstance(shards, list) or not all(isinstance(s, dict) for s in shards):
        bad('structure')
    hexes = [t.get('sha256'), src.get('sha256'), m.get('manifestHash')] + [s.get('hash') for s in shards]
    if t.get('file') != 'tokenizer.json' or not all(isinstance(h, str) and HEX64.fullmatch(h) for h in hexes):
        bad('tokenizer file or a hash')
    vocab, eos, tokens = t.get('vocabSize'), t.get('eosId'), st.get('shardTokens')
    if not (count(vocab, 0, 2 ** 32) and count(eos) and eos < vocab and count(src.get('documents')) and count(tokens, 1, 2 ** 32 - 1)
            and count(st.get('validationThreshold'), 0, 2 ** 32) and all(count(s.get('tokens'), 0, tokens) for s in shards)):
        bad('a count')
    bpt = st.get('bytesPerToken')
    if src.get('kind') not in ('nlp-corpus', 'files') or bpt not in (2, 4) or isinstance(bpt, bool) or (bpt == 2 and vocab > 65536):
        bad('source kind or bytes per token')
    seen = set()
    for s in shards:
        if s.get('split') not in ('train', 'validation') or not _integral(s.get('bytes')) or s['bytes'] != 12 + s['tokens'] * bpt or s['hash'] in seen:
            bad('a shard listing')
        seen.add(s['hash'])
    if manifest_hash(m) != m['manifestHash']:
        raise GenesisDataError('ManifestIntegrityError', 'manifestHash is not the hash of the contents')
    return m


def load_shard(name, data, manifest=None):
    """the five checks in their normative order; returns the token ids"""
    if not isinstance(name, str) or not HEX64.fullmatch(name):
        raise GenesisDataError('InvalidParametersError', 'a shard name is 64 lowercase hex digits')
    listing = None
    if manifest is not None:
        listing = next((s for s in manifest['shards'] if s['hash'] == name), None)
        if listing is None:
            raise GenesisDataError('ShardNotFoundError', 'not listed in the manifest')
    if hashlib.sha256(data).hexdigest() != name:
        raise GenesisDataError('ShardIntegrityError', 'sha256 is not the name')
    if len(data) < 12 or data[:4] != b'NSGD' or data[4] != 1 or data[5] not in (2, 4) or data[6:8] != b'\0\0':
        raise GenesisDataError('ShardFormatError', 'header')
    width, n = data[5], struct.unpack('<I', data[8:12])[0]
    if len(data) != 12 + n * width:
        raise GenesisDataError('ShardFormatError', 'length')
    ids = list(struct.unpack(f'<{n}{"H" if width == 2 else "I"}', data[12:]))
    if listing is not None:
        if (listing['tokens'], listing['bytes']) != (n, len(data)):
            raise GenesisDataError('ShardIntegrityError', 'size differs from the listing')
        if width != manifest['settings']['bytesPerToken'] or any(i >= manifest['tokenizer']['vocabSize'] for i in ids):
            raise GenesisDataError('ShardFormatError', 'width or an id outside the vocabulary')
    return ids


def assign_shards(manifest, peer, rnd, k, split='train'):
    """the k shards of `split` with the lowest score(P, r, h), by score then hash hex"""
    if not isinstance(peer, str) or peer == '' or not 0 <= rnd < 2 ** 64 or not _integral(k) or k < 1:
        raise GenesisDataError('InvalidParametersError', 'empty peer id, round outside [0, 2^64) or k < 1')
    p = peer.encode('utf-8')
    prefix = b'neuroshard-genesis-assign/v1\0' + struct.pack('>I', len(p)) + p + struct.pack('>Q', rnd)
    hs = [s['hash'] for s in manifest['shards'] if s['split'] == split]
    return sorted(hs, key=lambda h: (hashlib.sha256(prefix + bytes.fromhex(h)).digest(), h))[:int(k)]

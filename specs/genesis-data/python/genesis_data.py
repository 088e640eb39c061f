"""The genesis dataset's rules (specs/genesis-data/README.md: Definitions (nlp-corpus source), Building (split),
Manifest, Loading a shard, Assignment, Batches), written from the spec text alone, standard library only."""
import glob
import hashlib
import json
import os
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


def document_split(doc, threshold):
    """Building 1: validation iff u32BE(sha256("neuroshard-genesis-split/v1" ‖ 0x00 ‖ utf8(d))[:4]) < threshold"""
    h = hashlib.sha256(b'neuroshard-genesis-split/v1\0' + doc.encode('utf-8')).digest()
    return 'validation' if struct.unpack('>I', h[:4])[0] < threshold else 'train'


def shuffle_words(seed):
    """Batches: u32BE words of sha256("neuroshard-genesis-shuffle/v1" ‖ 0x00 ‖ u64BE(seed) ‖ u64BE(b)), b = 0, 1, …"""
    b = 0
    while True:
        h = hashlib.sha256(b'neuroshard-genesis-shuffle/v1\0' + struct.pack('>QQ', seed, b)).digest()
        b += 1
        yield from struct.unpack('>8I', h)


def window_order(shard_lengths, seq_len, seed):
    """Batches: windows (i, j·L) listed by shard then offset, Fisher–Yates with uniform(m) on the word stream"""
    order = [[i, j * seq_len] for i, n in enumerate(shard_lengths) for j in range((n - 1) // seq_len)]
    words = shuffle_words(seed)
    for n in range(len(order) - 1, 0, -1):
        m = n + 1
        x = next(words)
        while x >= 2 ** 32 - 2 ** 32 % m:
            x = next(words)
        j = x % m
        order[n], order[j] = order[j], order[n]
    return order


def nlp_corpus(package_dir):
    """Definitions: the documents of the nlp-corpus package (builds/doc-<n>.json in numeric order, each array in order)
    and their source hash sha256(‖ u32LE(len(utf8(d))) ‖ utf8(d))"""
    files = sorted(glob.glob(os.path.join(package_dir, 'builds', 'doc-*.json')), key=lambda f: int(re.search(r'doc-(\d+)\.json$', f).group(1)))
    docs = [d for f in files for d in json.load(open(f, encoding='utf-8'))]
    h = hashlib.sha256()
    for d in docs:
        b = d.encode('utf-8')
        h.update(struct.pack('<I', len(b)) + b)
    return {'documents': len(docs), 'sha256': h.hexdigest(), 'first': docs[0], 'document1000': docs[1000], 'last': docs[-1]}

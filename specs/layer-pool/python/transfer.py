"""The weight-transfer server's answers (specs/layer-pool/transfer.md §3, R4-R8), written from the spec text alone,
standard library only: a request's bytes and what the server holds -> the stream reset, or the WeightsResponse and the
Chunk messages it writes."""
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_pool as LP  # noqa: E402

STATUS = {1: 'OK', 2: 'NOT_FOUND', 3: 'BAD_REQUEST', 4: 'BUSY', 5: 'INTERNAL_ERROR'}
PARTS = {0: 'weights', 1: 'optimizer'}
MAX_MODEL_ID = 256

# (number, name, type, repeated); repeated scalars are written unpacked (§3); decode() also reads them packed
SCHEMA = {
    'WeightsRequest': [(1, 'model_id', 'string', False), (2, 'version', 'uint64', False), (3, 'start', 'uint32', False), (4, 'end', 'uint32', False),
                       (5, 'part', 'enum', False), (6, 'chunks_root', 'bytes', False), (7, 'want_manifest', 'bool', False), (8, 'chunks', 'uint32', True)],
    'TensorInfo': [(1, 'name', 'string', False), (2, 'shape', 'uint64', True)],
    'Manifest': [(1, 'tensors', 'TensorInfo', True), (2, 'total_bytes', 'uint64', False), (3, 'chunk_size', 'uint32', False),
                 (4, 'chunk_hashes', 'bytes', True), (5, 'optimizer_step', 'uint64', False)],
    'WeightsResponse': [(1, 'status', 'enum', False), (2, 'message', 'string', False), (3, 'manifest', 'Manifest', False), (4, 'chunk_count', 'uint32', False)],
    'Chunk': [(1, 'index', 'uint32', False), (2, 'data', 'bytes', False)],
}
SCALAR = ('uint64', 'uint32', 'enum', 'bool')


def encode(name, msg):
    """fields in number order, defaults left out, repeated scalars unpacked (one key per element, §3 encoding notes)"""
    out = b''
    for num, f, t, rep in SCHEMA[name]:
        v = msg.get(f)
        if rep and t in SCALAR:
            out += b''.join(LP.varint(num << 3) + LP.varint(x) for x in v or [])
            continue
        for x in (v or []) if rep else [v]:
            if x is None or (not rep and x in (0, '', b'', False)):
                continue
            if t in SCHEMA:
                b = encode(t, x)
            elif t in ('bytes', 'string'):
                b = x.encode('utf-8') if t == 'string' else x
            else:
                out += LP.varint(num << 3) + LP.varint(int(x))
                continue
            out += LP.varint(num << 3 | 2) + LP.varint(len(b)) + b
    return out


def decode(name, data):
    """raises ValueError on bytes that are not the message (truncation, wire-type mismatch, a uint32 over 32 bits); repeated
    scalars are read unpacked or packed (§3 encoding notes): layer_pool.pb_decode with this schema"""
    return LP.pb_decode(name, data, SCHEMA, packed=True)


def serve(request, holds, chunk_size, max_chunks):
    """request: the WeightsRequest body bytes; holds: [{modelId, version, start, end, part, optimizerStep?, tensors: [{name, shape,
    values}]}]. Returns {'reset': True} (R4: a malformed request) or {'response': WeightsResponse dict, 'chunks': [(index, bytes)]}"""
    try:
        r = decode('WeightsRequest', request)
        if r['part'] not in PARTS or r['version'] >= 2 ** 53:
            raise ValueError('§3: an enum value the enum does not name, or a uint64 of 2^53 or more')
    except (ValueError, UnicodeDecodeError):
        return {'reset': True}

    def answer(status):
        return {'response': {'status': status, 'message': f'{status.lower()}', 'manifest': None, 'chunk_count': 0}, 'chunks': []}
    # R5, in order: the request's own fields
    if len(r['model_id'].encode('utf-8')) > MAX_MODEL_ID or r['end'] <= r['start'] or len(r['chunks_root']) != 32 or len(r['chunks']) > max_chunks:
        return answer('BAD_REQUEST')
    # R6: content for (model id, version, span, part) whose chunks root is the requested one
    part = PARTS[r['part']]
    found = None
    for h in holds:
        if (h['modelId'], h['version'], h['start'], h['end'], h['part']) == (r['model_id'], r['version'], r['start'], r['end'], part):
            c = LP.chunks(h['tensors'], chunk_size)
            if c['chunksRoot'] == r['chunks_root'].hex():
                found = (h, c)
    if found is None:
        return answer('NOT_FOUND')
    h, c = found
    # R5: the chunk indices, against the content's chunk count
    count = len(c['chunkHashes'])
    if any(i >= count for i in r['chunks']) or len(set(r['chunks'])) != len(r['chunks']):
        return answer('BAD_REQUEST')
    # R8
    stream = bytes.fromhex(c['stream'])
    order = sorted(h['tensors'], key=lambda t: t['name'].encode('utf-8'))
    manifest = {'tensors': [{'name': t['name'], 'shape': list(t['shape'])} for t in order], 'total_bytes': c['totalBytes'], 'chunk_size': chunk_size,
                'chunk_hashes': [bytes.fromhex(x) for x in c['chunkHashes']], 'optimizer_step': h.get('optimizerStep', 0) if part == 'optimizer' else 0}
    return {'response': {'status': 'OK', 'message': '', 'manifest': manifest if r['want_manifest'] else None, 'chunk_count': len(r['chunks'])},
            'chunks': [(i, stream[i * chunk_size:(i + 1) * chunk_size]) for i in r['chunks']]}


# ---- the requester (R10-R14) against one replica whose answers a vector describes ----

def _model_reference():
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'model', 'vectors', 'reference.py')
    spec = importlib.util.spec_from_file_location('neuroshard_model_reference', path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def span_layout(config, start, end, part):
    """§1: the span's tensors (name, shape) in canonical order; OPTIMIZER: adam.m.<p> and adam.v.<p> of each"""
    M = _model_reference()
    L = config['nLayers']
    roles = ([{'kind': 'embed'}] if start == 0 else []) + \
        ([{'kind': 'blocks', 'start': max(start, 1) - 1, 'end': min(end, L + 1) - 1}] if max(start, 1) < min(end, L + 1) else []) + \
        ([{'kind': 'head'}] if end == L + 2 else [])
    params = {}
    for r in roles:
        for name, shape in M.shard_params(config, r):
            params.setdefault(name, shape)
    if part == 'optimizer':
        params = {f'adam.{k}.{n}': s for n, s in params.items() for k in ('m', 'v')}
    return sorted(params.items(), key=lambda p: p[0].encode('utf-8'))


def r1_problem(request, count):
    """R1, as the replicas the vectors describe check each request (BAD_REQUEST otherwise): a 32-byte chunks_root,
    start < end, a model id of at most 256 UTF-8 bytes, at most 64 distinct chunk indices below the chunk count"""
    if len(request['chunks_root']) != 32:
        return 'chunks_root is not 32 bytes'
    if not request['start'] < request['end']:
        return 'start >= end'
    if len(request['model_id'].encode('utf-8')) > MAX_MODEL_ID:
        return 'model id over 256 bytes'
    if len(request['chunks']) > 64 or len(set(request['chunks'])) != len(request['chunks']) or any(i >= count for i in request['chunks']):
        return 'chunk indices'
    return None


def requests_of(expected, count, kept=(), per_request=16, manifest=True):
    """the requests this requester sends one replica (R1): the manifest request, then the chunks it lacks in order,
    `per_request` at a time"""
    base = {'model_id': expected['modelId'], 'version': expected['version'], 'start': expected['start'], 'end': expected['end'],
            'part': 1 if expected['part'] == 'optimizer' else 0, 'chunks_root': bytes.fromhex(expected['chunksRoot'])}
    lacking = [i for i in range(count) if i not in kept]
    out = [dict(base, want_manifest=True, chunks=[])] if manifest else []
    return out + [dict(base, want_manifest=False, chunks=lacking[i:i + per_request]) for i in range(0, len(lacking), per_request)]


MISBEHAVED = {'chunk-hash': True, 'manifest': True, 'protocol': True, 'timeout': True, 'not-found': False, 'rejected': False, 'unreachable': False}


def fetch(expected, config, chunk_size, replica, resume=None):
    """fetch_one (below), with `misbehaved` for a dropped replica: R13, §6 — NOT_FOUND, BUSY (R3) and unreachable
    replicas are not misbehaviour; wrong manifests or chunks, protocol breaks and timeouts are"""
    out = fetch_one(expected, config, chunk_size, replica, resume)
    if 'fault' in out:
        out['misbehaved'] = MISBEHAVED[out['fault']]
    return out


def fetch_one(expected, config, chunk_size, replica, resume=None):
    """A requester fetching (start, end, part) with `expected` chunksRoot, weightsHash (and optimizerStep) from one replica:
    `replica['manifest']` is its answer (WeightsResponse bytes) to the manifest request; to a chunk request it answers OK with
    chunk_count = the chunks asked and, per asked index i in order, Chunk{i, replica['chunks'][i]}, except as `mode` says:
    'index-out-of-range' (Chunk{count, chunks[i]}: an index no request names), 'count-plus-one' (chunk_count one more).
    Returns {'weightsHash': hex} or {'error': name, 'fault': the §6 kind of the replica's drop}"""
    import hashlib
    import struct
    layout = span_layout(config, expected['start'], expected['end'], expected['part'])
    total = 4 * sum(_numel(s) for _, s in layout)
    count = -(-total // chunk_size)

    def dropped(kind):
        return {'error': 'NoReplicaError', 'fault': kind}

    def root_of(hashes):
        return hashlib.sha256(b'neuroshard/layer-pool/chunks/v1\x00' + struct.pack('<IQ', chunk_size, total) + b''.join(hashes)).hexdigest()
    # R15: a resume state is taken over only for the same chunks root, with a manifest that passes R10, and each chunk
    # it holds only if its sha256 is the manifest's hash for it (the others are fetched again)
    kept = {}
    if resume is not None and resume['chunksRoot'] == expected['chunksRoot']:
        rm = resume['manifest']
        hashes = [bytes.fromhex(x) for x in rm['chunkHashes']]
        if rm['chunkSize'] == chunk_size and [(t['name'], list(t['shape'])) for t in rm['tensors']] == [(n, list(sh)) for n, sh in layout] \
                and rm['totalBytes'] == total and len(hashes) == count and all(len(h) == 32 for h in hashes) and root_of(hashes) == expected['chunksRoot']:
            rstream = bytes.fromhex(resume['stream'])
            for i in resume['verified']:
                data = rstream[i * chunk_size:min((i + 1) * chunk_size, total)]
                if 0 <= i < count and hashlib.sha256(data).digest() == hashes[i]:
                    kept[i] = data
            replica = dict(replica, manifest=encode('WeightsResponse', {'status': 1, 'message': '', 'chunk_count': 0, 'manifest': {
                'tensors': rm['tensors'], 'total_bytes': total, 'chunk_size': chunk_size, 'chunk_hashes': hashes, 'optimizer_step': rm.get('optimizerStep', 0)}}).hex())
    if any(r1_problem(q, len(replica['chunks'])) for q in requests_of(expected, count, kept)):
        return dropped('rejected')
    m, outcome = _manifest(expected, chunk_size, replica, layout, total, count, root_of, dropped)
    if outcome is not None:
        return outcome
    # R11, R12 (any split of the indexes into requests gives these outcomes for the replica behaviours above)
    mode = replica.get('mode', 'honest')
    stream = bytearray(total)
    for i in range(count):
        if i in kept:
            stream[i * chunk_size:i * chunk_size + len(kept[i])] = kept[i]
            continue
        if mode in ('count-plus-one', 'index-out-of-range'):
            return dropped('protocol')
        data = bytes.fromhex(replica['chunks'][i])
        if len(data) != min(chunk_size, total - i * chunk_size):
            return dropped('protocol')
        if hashlib.sha256(data).digest() != m['chunk_hashes'][i]:
            return dropped('chunk-hash')
        stream[i * chunk_size:i * chunk_size + len(data)] = data
    # R14
    tensors, at = [], 0
    for name, shape in layout:
        n = 4 * _numel(shape)
        tensors.append((name, 'F32', shape, bytes(stream[at:at + n])))
        at += n
    got = LP.content_hash(tensors)
    if got != expected['weightsHash']:
        return {'error': 'WeightsHashMismatchError'}
    return {'weightsHash': got}


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n



def _manifest(expected, chunk_size, replica, layout, total, count, root_of, dropped):
    """R10: the replica's answer to the manifest request -> (manifest, None), or (None, the outcome of its drop)"""
    try:
        r = decode('WeightsResponse', bytes.fromhex(replica['manifest']))
        if r['status'] not in STATUS:
            raise ValueError('status')
    except (ValueError, UnicodeDecodeError):
        return None, dropped('protocol')
    status = STATUS[r['status']]
    if status == 'NOT_FOUND':
        return None, {'error': 'WeightsNotFoundError', 'fault': 'not-found'}
    if status != 'OK':
        return None, dropped('rejected')
    m = r['manifest']
    if m is None:
        return None, dropped('protocol')
    # R10
    if m['chunk_size'] != chunk_size or [(t['name'], list(t['shape'])) for t in m['tensors']] != [(n, list(s)) for n, s in layout] \
            or m['total_bytes'] != total or len(m['chunk_hashes']) != count or any(len(h) != 32 for h in m['chunk_hashes']):
        return None, dropped('manifest')
    root = hashlib.sha256(b'neuroshard/layer-pool/chunks/v1\x00' + struct.pack('<IQ', chunk_size, total) + b''.join(m['chunk_hashes'])).hexdigest()
    if root != expected['chunksRoot']:
        return None, dropped('manifest')
    if expected['part'] == 'optimizer' and expected.get('optimizerStep') is not None and m['optimizer_step'] != expected['optimizerStep']:
        return None, dropped('manifest')
    return m, None


def fetch_many(expected, config, chunk_size, replicas):
    """R13 with several replicas at once (each answering as `fetch` describes one): whatever the schedule, a replica that
    answers wrongly is dropped and the chunks it did not deliver are fetched from the others, so the fetch ends with
    the record's weights hash when some replica serves a right manifest and every chunk is served right by some
    replica, else NoReplicaError. Returns {'weightsHash'} or {'error'} (which replicas are dropped depends on the
    schedule, so no fault is stated)"""
    layout = span_layout(config, expected['start'], expected['end'], expected['part'])
    total = 4 * sum(_numel(s) for _, s in layout)
    count = -(-total // chunk_size)

    def root_of(hashes):
        return hashlib.sha256(b'neuroshard/layer-pool/chunks/v1\x00' + struct.pack('<IQ', chunk_size, total) + b''.join(hashes)).hexdigest()

    def dropped(kind):
        return {'error': 'NoReplicaError', 'fault': kind}
    manifests = [m for m, _ in (_manifest(expected, chunk_size, r, layout, total, count, root_of, dropped) for r in replicas) if m is not None]
    if not manifests:
        return {'error': 'NoReplicaError'}
    hashes = manifests[0]['chunk_hashes']   # every passing manifest has these hashes: they hash to the expected root
    stream = bytearray()
    for i in range(count):
        want = min(chunk_size, total - i * chunk_size)
        right = [r for r in replicas if r.get('mode', 'honest') == 'honest' and _manifest(expected, chunk_size, r, layout, total, count, root_of, dropped)[1] is None
                 and len(bytes.fromhex(r['chunks'][i])) == want and hashlib.sha256(bytes.fromhex(r['chunks'][i])).digest() == hashes[i]]
        if not right:
            return {'error': 'NoReplicaError'}
        stream += bytes.fromhex(right[0]['chunks'][i])
    tensors, at = [], 0
    for name, shape in layout:
        n = 4 * _numel(shape)
        tensors.append((name, 'F32', shape, bytes(stream[at:at + n])))
        at += n
    got = LP.content_hash(tensors)
    return {'weightsHash': got} if got == expected['weightsHash'] else {'error': 'WeightsHashMismatchError'}

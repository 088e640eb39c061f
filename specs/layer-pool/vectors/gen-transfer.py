#!/usr/bin/env python3
"""Writes specs/layer-pool/vectors/transfer.json: requests to a weight-transfer server and what it answers
(transfer.md §3, R4-R8: the stream reset on a malformed request; BAD_REQUEST, NOT_FOUND in that order; on OK the
manifest iff asked, `chunk_count` and exactly the chunks asked for, in request order). Standard library only.

The status of every case is written below by hand from the spec text; the manifest and chunk bytes of OK answers
follow from transfer §1 (chunks.json checks those functions). The script checks every case with the Python server
written from the spec (specs/layer-pool/python/transfer.py) and writes nothing if they disagree.

    python3 specs/layer-pool/vectors/gen-transfer.py
"""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import layer_pool as LP  # noqa: E402
import transfer as T  # noqa: E402

CHUNK, CAP = 16, 64
W = [{'name': 'blocks.0.mlp.w_up', 'shape': [2, 3], 'values': [1.5, -2.0, 0.25, 3.0, 0.0, -0.5]},
     {'name': 'blocks.0.attn_norm.weight', 'shape': [4], 'values': [1.0, 0.5, -0.25, 2.0]},
     {'name': 'blocks.0.attn.wq', 'shape': [3], 'values': [0.125, -1.0, 2.0]}]
O = [{'name': 'adam.m.' + t['name'], 'shape': t['shape'], 'values': [v / 8 for v in t['values']]} for t in W] + \
    [{'name': 'adam.v.' + t['name'], 'shape': t['shape'], 'values': [v * v / 64 for v in t['values']]} for t in W]
HOLDS = [{'modelId': 'tiny', 'version': 3, 'start': 1, 'end': 2, 'part': 'weights', 'tensors': W},
         {'modelId': 'tiny', 'version': 3, 'start': 1, 'end': 2, 'part': 'optimizer', 'optimizerStep': 7, 'tensors': O}]
ROOT = bytes.fromhex(LP.chunks(W, CHUNK)['chunksRoot'])
OROOT = bytes.fromhex(LP.chunks(O, CHUNK)['chunksRoot'])
COUNT = len(LP.chunks(W, CHUNK)['chunkHashes'])  # 52 bytes: chunks of 16, 16, 16, 4
assert COUNT == 4


def req(**over):
    r = {'model_id': 'tiny', 'version': 3, 'start': 1, 'end': 2, 'part': 0, 'chunks_root': ROOT, 'want_manifest': False, 'chunks': []}
    r.update(over)
    return T.encode('WeightsRequest', r)


OK, BAD, NF, RESET = 'OK', 'BAD_REQUEST', 'NOT_FOUND', 'reset'
cases = [
    ('the manifest alone (want_manifest, no chunks): OK, manifest, chunk_count 0', req(want_manifest=True), OK),
    ('chunks [3, 0, 2] without the manifest: exactly those, in request order, the last one 4 bytes', req(chunks=[3, 0, 2]), OK),
    ('the manifest and chunk 1', req(want_manifest=True, chunks=[1]), OK),
    ('every chunk in order', req(chunks=[0, 1, 2, 3]), OK),
    ('OPTIMIZER: the manifest carries the step count (7)', req(part=1, chunks_root=OROOT, want_manifest=True, chunks=[0]), OK),
    ('a part the enum does not name (2): malformed, the stream is reset (§3 encoding notes)', req(part=2), RESET),
    ('a model id of 257 bytes: BAD_REQUEST', req(model_id='m' * 257), BAD),
    ('a model id of 256 bytes (allowed) that the server does not hold: NOT_FOUND', req(model_id='m' * 256), NF),
    ('version 2^53: malformed, the stream is reset (§3: uint64 values below 2^53)', req(version=2 ** 53), RESET),
    ('version 2^53 - 1 (allowed), not held: NOT_FOUND', req(version=2 ** 53 - 1), NF),
    ('end = start: BAD_REQUEST', req(start=1, end=1), BAD),
    ('end < start: BAD_REQUEST', req(start=2, end=1), BAD),
    ('chunks_root of 31 bytes: BAD_REQUEST', req(chunks_root=ROOT[:31]), BAD),
    ('no chunks_root: BAD_REQUEST', req(chunks_root=b''), BAD),
    ('65 chunks (the cap is 64): BAD_REQUEST', req(chunks=list(range(65))), BAD),
    ('64 chunks, within the cap but most beyond chunkCount: BAD_REQUEST', req(chunks=list(range(64))), BAD),
    ('chunk index 4 = chunkCount: BAD_REQUEST', req(chunks=[0, 4]), BAD),
    ('chunk 1 named twice: BAD_REQUEST', req(chunks=[1, 2, 1]), BAD),
    ('the optimizer\'s chunks root asked for as WEIGHTS: NOT_FOUND (never other content under a root it does not match)', req(chunks_root=OROOT, want_manifest=True), NF),
    ('another version (2): NOT_FOUND', req(version=2, want_manifest=True), NF),
    ('another span [1, 3): NOT_FOUND', req(end=3, want_manifest=True), NF),
    ('another model id: NOT_FOUND', req(model_id='tiny2', want_manifest=True), NF),
    ('a chunks root of 32 bytes the server has no content for: NOT_FOUND', req(chunks_root=hashlib.sha256(b'other').digest(), want_manifest=True), NF),
    ('order: an index beyond chunkCount under a root the server does not hold: NOT_FOUND (R6 before the index checks)',
     req(chunks_root=hashlib.sha256(b'other').digest(), chunks=[9]), NF),
    ('order: 65 chunks under a root the server does not hold: BAD_REQUEST (the field rules first)', req(chunks_root=hashlib.sha256(b'other').digest(), chunks=list(range(65))), BAD),
    ('order: end = start and a 31-byte root under another model id: BAD_REQUEST', req(model_id='x', start=1, end=1, chunks_root=ROOT[:31]), BAD),
    ('an unknown field (15, a varint) is ignored: OK', req(chunks=[2]) + bytes([15 << 3, 1]), OK),
    ('malformed: a truncated varint (the stream is reset, nothing answered)', req(chunks=[2]) + bytes([0x40, 0x80]), RESET),
    ('malformed: chunks_root\'s length runs past the end of the request', req()[:-5], RESET),
]

out = {
    'description': 'requests (the WeightsRequest body, hex) to a weight-transfer server holding `holds` (tensors in any order; chunk size '
                   '`chunkSize`, at most `maxChunksPerRequest` chunks a request) and its answer: `reset` (R4: the stream is reset, nothing written) or '
                   'the WeightsResponse (`status`, `manifest` or null, `chunkCount`; `message` is free text, non-empty unless OK) and the Chunk '
                   'messages that follow (`index`, `data` hex), transfer.md §3, R4-R8.',
    'chunkSize': CHUNK, 'maxChunksPerRequest': CAP, 'holds': HOLDS, 'cases': [],
}
bad = 0
for name, body, status in cases:
    got = T.serve(body, HOLDS, CHUNK, CAP)
    got_status = RESET if got.get('reset') else got['response']['status']
    if got_status != status:
        bad += 1
        print(f'"{name}": the Python server says {got_status}, the spec {status}', file=sys.stderr)
        continue
    c = {'name': name, 'request': body.hex()}
    if status == RESET:
        c['reset'] = True
    else:
        m = got['response']['manifest']
        c['status'] = status
        c['manifest'] = None if m is None else {'tensors': m['tensors'], 'totalBytes': m['total_bytes'], 'chunkSize': m['chunk_size'],
                                                'chunkHashes': [h.hex() for h in m['chunk_hashes']], 'optimizerStep': m['optimizer_step']}
        c['chunkCount'] = got['response']['chunk_count']
        c['chunks'] = [{'index': i, 'data': d.hex()} for i, d in got['chunks']]
    out['cases'].append(c)
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'transfer.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'transfer.json: {len(out["cases"])} requests')

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

# ---- R9: one server answering across content changes (what it holds at each step; statuses by hand) ----
WS = [dict(t) for t in W]
WS[0] = {**W[0], 'values': W[0]['values'][:5] + [-0.75]}  # the last value of the last tensor in canonical order: only chunk 3 differs
OS = [{**t, 'values': [v + 0.125 for v in t['values']]} for t in O]
ROOT2 = bytes.fromhex(LP.chunks(WS, CHUNK)['chunksRoot'])
OROOT2 = bytes.fromhex(LP.chunks(OS, CHUNK)['chunksRoot'])
H_W, H_O = HOLDS
H_WS = {**H_W, 'tensors': WS}
H_OS = {**H_O, 'optimizerStep': 8, 'tensors': OS}
sequences = [
    ('new weights under the same version (a training step): the old chunks root is NOT_FOUND, the new one served, and back', [
        ([H_W, H_O], req(want_manifest=True, chunks=[3]), OK),
        ([H_WS, H_O], req(want_manifest=True, chunks=[3]), NF),
        ([H_WS, H_O], req(chunks_root=ROOT2, want_manifest=True, chunks=[3]), OK),
        ([H_WS, H_O], req(chunks_root=ROOT2, chunks=[0, 3]), OK),
        ([H_W, H_O], req(chunks_root=ROOT2, want_manifest=True), NF),
        ([H_W, H_O], req(want_manifest=True, chunks=[3, 2]), OK)]),
    ('chunks asked for without the manifest right after a change: the new content\'s bytes under its root', [
        ([H_W, H_O], req(want_manifest=True), OK),
        ([H_WS, H_O], req(chunks_root=ROOT2, chunks=[3, 1]), OK),
        ([H_WS, H_O], req(chunks=[3]), NF)]),
    ('content unchanged between requests: the same answers', [
        ([H_W, H_O], req(want_manifest=True, chunks=[0]), OK),
        ([H_W, H_O], req(want_manifest=True, chunks=[0]), OK),
        ([H_W, H_O], req(chunks=[3, 0]), OK)]),
    ('the optimizer state stepped (new moments, step 8): its manifest carries step 8, the old root is NOT_FOUND', [
        ([H_W, H_O], req(part=1, chunks_root=OROOT, want_manifest=True, chunks=[0]), OK),
        ([H_W, H_OS], req(part=1, chunks_root=OROOT, want_manifest=True), NF),
        ([H_W, H_OS], req(part=1, chunks_root=OROOT2, want_manifest=True, chunks=[0]), OK),
        ([H_W, H_OS], req(want_manifest=True), OK)]),
    ('a new version replaces the old one: the old version NOT_FOUND, the new version under its own root only', [
        ([H_W], req(want_manifest=True), OK),
        ([{**H_WS, 'version': 4}], req(want_manifest=True), NF),
        ([{**H_WS, 'version': 4}], req(version=4, want_manifest=True), NF),
        ([{**H_WS, 'version': 4}], req(version=4, chunks_root=ROOT2, want_manifest=True, chunks=[3]), OK)]),
]

# ---- the requester (R10-R14): one replica answering as described, the transfer's outcome ----
import struct  # noqa: E402
CONFIG = {'vocabSize': 16, 'dModel': 4, 'nLayers': 2, 'nHeads': 2, 'nKvHeads': 1, 'ffnHidden': 8, 'maxSeqLen': 16, 'ropeTheta': 10000,
          'normEps': 1e-5, 'tieEmbeddings': False}
FCHUNK = 64


def span_content(start, end, part, salt):
    tensors, k = [], 0
    for name, shape in T.span_layout(CONFIG, start, end, part):
        n = T._numel(shape)
        tensors.append({'name': name, 'shape': shape, 'values': [((k + i) * 37 % 101 - 50) / 64 + salt for i in range(n)]})
        k += n
    return tensors


def replica_for(tensors, part='weights', step=0, **over):
    c = LP.chunks(tensors, FCHUNK)
    stream = bytes.fromhex(c['stream'])
    order = sorted(tensors, key=lambda t: t['name'].encode('utf-8'))
    manifest = {'tensors': [{'name': t['name'], 'shape': t['shape']} for t in order], 'total_bytes': c['totalBytes'], 'chunk_size': FCHUNK,
                'chunk_hashes': [bytes.fromhex(h) for h in c['chunkHashes']], 'optimizer_step': step}
    manifest.update(over.pop('manifest', {}))
    response = {'status': 1, 'manifest': manifest, 'chunk_count': 0}
    response.update(over.pop('response', {}))
    rep = {'manifest': T.encode('WeightsResponse', response).hex(), 'chunks': [stream[i:i + FCHUNK].hex() for i in range(0, len(stream), FCHUNK)]}
    rep.update(over)
    return rep, c


W1 = span_content(1, 2, 'weights', 0)
R1, C1 = replica_for(W1)
O1 = span_content(1, 2, 'optimizer', 0.5)
EXP = {'modelId': 'tiny', 'version': 3, 'start': 1, 'end': 2, 'part': 'weights', 'chunksRoot': C1['chunksRoot'], 'weightsHash': C1['weightsHash']}
OC = LP.chunks(O1, FCHUNK)
EXPO = {**EXP, 'part': 'optimizer', 'chunksRoot': OC['chunksRoot'], 'weightsHash': OC['weightsHash']}
NCH = len(R1['chunks'])
assert NCH == 10, NCH  # 152 floats of one block: 608 bytes in chunks of 64 (the last 32)
other_hashes = [bytes.fromhex(h) for h in LP.chunks(span_content(1, 2, 'weights', 1), FCHUNK)['chunkHashes']]
flipped = list(R1['chunks'])
flipped[3] = ('%02x' % (int(flipped[3][:2], 16) ^ 1)) + flipped[3][2:]
layout = [{'name': t['name'], 'shape': t['shape']} for t in sorted(W1, key=lambda t: t['name'].encode('utf-8'))]
DONE = {'weightsHash': C1['weightsHash']}


def drop(kind):
    # §6 / R13: wrong manifests and chunks and protocol breaks are misbehaviour; NOT_FOUND, BUSY (R3), BAD_REQUEST are not
    return {'error': 'NoReplicaError', 'fault': kind, 'misbehaved': kind in ('manifest', 'chunk-hash', 'protocol')}


def resume_of(chunks, verified, root=None, rc=C1):
    """a resume state (R15): the stream with `chunks` (index -> hex) written in, the indices it says were verified"""
    stream = bytearray(rc['totalBytes'])
    for i, x in chunks.items():
        stream[i * FCHUNK:i * FCHUNK + len(x) // 2] = bytes.fromhex(x)
    return {'chunksRoot': root or rc['chunksRoot'], 'manifest': {'tensors': layout, 'totalBytes': rc['totalBytes'], 'chunkSize': FCHUNK,
                                                                 'chunkHashes': rc['chunkHashes'], 'optimizerStep': 0},
            'stream': stream.hex(), 'verified': verified}


W2 = span_content(1, 2, 'weights', 1)
C2 = LP.chunks(W2, FCHUNK)
R2C = replica_for(W2)[0]['chunks']


fetches = [
    ('an honest replica: every chunk verified, the weights hash of the record', EXP, R1, DONE),
    ('R15: resumed with chunks 0-4 verified before: the rest from the replica, the weights hash of the record', EXP,
     {**R1, 'resume': resume_of({i: R1['chunks'][i] for i in range(5)}, [0, 1, 2, 3, 4])}, DONE),
    ('R15: a resume state listing chunk 2 as verified with other bytes: re-verified, fetched again, the record\'s weights', EXP,
     {**R1, 'resume': resume_of({**{i: R1['chunks'][i] for i in range(5)}, 2: flipped[3]}, [0, 1, 2, 3, 4])}, DONE),
    ('R15: a resume state listing every chunk, one of them wrong: that one fetched again', EXP,
     {**R1, 'resume': resume_of({**{i: R1['chunks'][i] for i in range(NCH)}, 7: R2C[7]}, list(range(NCH)))}, DONE),
    ('R15: the resume state of another chunks root (other content) is not taken over: every chunk from the replica', EXP,
     {**R1, 'resume': resume_of({i: R2C[i] for i in range(NCH)}, list(range(NCH)), rc=C2)}, DONE),
    ('OPTIMIZER with the record\'s step count (7) in the manifest', {**EXPO, 'optimizerStep': 7}, replica_for(O1, 'optimizer', 7)[0], {'weightsHash': OC['weightsHash']}),
    ('OPTIMIZER, the record states no step count: the manifest\'s is taken', EXPO, replica_for(O1, 'optimizer', 6)[0], {'weightsHash': OC['weightsHash']}),
    ('R10: OPTIMIZER step 6 where the record states 7', {**EXPO, 'optimizerStep': 7}, replica_for(O1, 'optimizer', 6)[0], drop('manifest')),
    ('R10: chunk_size 32 in the manifest', EXP, replica_for(W1, manifest={'chunk_size': 32})[0], drop('manifest')),
    ('R10: a tensor\'s shape differs from the config\'s', EXP, replica_for(W1, manifest={'tensors': layout[:1] + [{**layout[1], 'shape': [layout[1]['shape'][0] * 2]}] + layout[2:]})[0], drop('manifest')),
    ('R10: the tensors out of canonical order', EXP, replica_for(W1, manifest={'tensors': [layout[1], layout[0]] + layout[2:]})[0], drop('manifest')),
    ('R10: a tensor missing', EXP, replica_for(W1, manifest={'tensors': layout[:-1]})[0], drop('manifest')),
    ('R10: total_bytes 4 more', EXP, replica_for(W1, manifest={'total_bytes': C1['totalBytes'] + 4})[0], drop('manifest')),
    ('R10: one chunk hash short of chunkCount', EXP, replica_for(W1, manifest={'chunk_hashes': [bytes.fromhex(h) for h in C1['chunkHashes']][:-1]})[0], drop('manifest')),
    ('R10: a chunk hash of 31 bytes', EXP, replica_for(W1, manifest={'chunk_hashes': [bytes.fromhex(h) for h in C1['chunkHashes']][:-1] + [bytes.fromhex(C1['chunkHashes'][-1])[:31]]})[0], drop('manifest')),
    ('R10: the chunk hashes of other content (they do not hash to the expected chunks root)', EXP, replica_for(W1, manifest={'chunk_hashes': other_hashes})[0], drop('manifest')),
    ('R10: an OK answer without the manifest asked for', EXP, replica_for(W1, response={'manifest': None})[0], drop('protocol')),
    ('R12: chunk 3 with one bit flipped: ChunkHashMismatchError drops the replica', EXP, {**R1, 'chunks': flipped}, drop('chunk-hash')),
    ('R11: the last chunk padded to the full chunk size', EXP, {**R1, 'chunks': R1['chunks'][:-1] + [R1['chunks'][-1] + '00' * 32]}, drop('protocol')),
    ('R11: chunk 0 one byte short', EXP, {**R1, 'chunks': [R1['chunks'][0][:-2]] + R1['chunks'][1:]}, drop('protocol')),
    ('R11: a Chunk whose index no request named (chunkCount)', EXP, {**R1, 'mode': 'index-out-of-range'}, drop('protocol')),
    ('R11: chunk_count one more than the chunks asked for', EXP, {**R1, 'mode': 'count-plus-one'}, drop('protocol')),
    ('§6: NOT_FOUND (not misbehaviour): WeightsNotFoundError', EXP, replica_for(W1, response={'status': 2, 'manifest': None})[0],
     {'error': 'WeightsNotFoundError', 'fault': 'not-found', 'misbehaved': False}),
    ('R3: BUSY is "not now", never misbehaviour: the replica (no retries left) is dropped as rejected, not misbehaved', EXP,
     replica_for(W1, response={'status': 4, 'manifest': None})[0], drop('rejected')),
    ('§6: INTERNAL_ERROR: dropped as rejected, not misbehaved', EXP, replica_for(W1, response={'status': 5, 'manifest': None})[0], drop('rejected')),
    ('§6: BAD_REQUEST: the replica is dropped as rejected', EXP, replica_for(W1, response={'status': 3, 'manifest': None})[0], drop('rejected')),
    ('§6 / R14: the chunks match the root but the record\'s weights hash is another: WeightsHashMismatchError', {**EXP, 'weightsHash': OC['weightsHash']}, R1,
     {'error': 'WeightsHashMismatchError'}),
]

# ---- R13: several replicas at once: a dropped replica's undelivered chunks are fetched from the others ----
flipped7 = list(R1['chunks'])
flipped7[7] = ('%02x' % (int(flipped7[7][:2], 16) ^ 1)) + flipped7[7][2:]
many = [
    ('R13: the first replica corrupts chunk 3, the second is honest: the record\'s weights (its undelivered chunks re-queued)', EXP,
     [{**R1, 'chunks': flipped}, R1], DONE),
    ('R13: the second replica corrupts chunk 3, the first is honest: the record\'s weights', EXP, [R1, {**R1, 'chunks': flipped}], DONE),
    ('R13: both replicas corrupt chunk 3: no replica left (NoReplicaError)', EXP, [{**R1, 'chunks': flipped}, {**R1, 'chunks': flipped}],
     {'error': 'NoReplicaError'}),
    ('R13: two replicas corrupt chunk 3, a third is honest: the record\'s weights', EXP, [{**R1, 'chunks': flipped}, {**R1, 'chunks': flipped}, R1], DONE),
    ('R13: the first replica sends a short chunk 0 (protocol), the second is honest: the record\'s weights', EXP,
     [{**R1, 'chunks': [R1['chunks'][0][:-2]] + R1['chunks'][1:]}, R1], DONE),
    ('R13: the first replica answers NOT_FOUND, the second serves: the record\'s weights', EXP,
     [replica_for(W1, response={'status': 2, 'manifest': None})[0], R1], DONE),
    ('R13: the first replica\'s manifest has another chunk size, the second serves: the record\'s weights', EXP,
     [replica_for(W1, manifest={'chunk_size': 32})[0], R1], DONE),
]

out = {
    'description': 'requests (the WeightsRequest body, hex) to a weight-transfer server holding `holds` (tensors in any order; chunk size '
                   '`chunkSize`, at most `maxChunksPerRequest` chunks a request) and its answer: `reset` (R4: the stream is reset, nothing written) or '
                   'the WeightsResponse (`status`, `manifest` or null, `chunkCount`; `message` is free text, non-empty unless OK) and the Chunk '
                   'messages that follow (`index`, `data` hex), transfer.md §3, R4-R8.',
    'chunkSize': CHUNK, 'maxChunksPerRequest': CAP, 'holds': HOLDS, 'cases': [],
    'fetch': {'description': 'a requester (R10-R14) fetching `expected` (a span of `config`, chunk size `chunkSize`) from one replica: `manifest` is '
                             'its answer to the manifest request (WeightsResponse hex); to a chunk request it answers OK, chunk_count = the chunks asked '
                             'and, per asked index i in order, Chunk{i, chunks[i]}, except as `mode` says (index-out-of-range: Chunk{chunkCount, chunks[i]}; '
                             'count-plus-one: chunk_count one more); with `resume` (R15: `chunksRoot`, `manifest`, `stream` hex, `verified` indices) the requester '
                             'starts from that state. Every replica first checks each request against R1 (a 32-byte chunks_root, start < end, a model id of '
                             'at most 256 bytes, at most 64 distinct chunk indices below its number of chunks) and answers BAD_REQUEST to one that '
                             'breaks it, so a requester whose requests break R1 loses the replica. Outcome: `weightsHash`, or `error` with the dropped replica\'s `fault` (§6 kinds) and whether '
                             'it counts as `misbehaved` (R3, R13)',
              'config': CONFIG, 'chunkSize': FCHUNK, 'cases': []},
}
bad = 0


def answer(got, status):
    """a case's expected answer: `reset`, or the status (by hand) and the Python server's manifest and chunks"""
    if status == RESET:
        return {'reset': True}
    m = got['response']['manifest']
    return {'status': status,
            'manifest': None if m is None else {'tensors': m['tensors'], 'totalBytes': m['total_bytes'], 'chunkSize': m['chunk_size'],
                                                'chunkHashes': [h.hex() for h in m['chunk_hashes']], 'optimizerStep': m['optimizer_step']},
            'chunkCount': got['response']['chunk_count'], 'chunks': [{'index': i, 'data': d.hex()} for i, d in got['chunks']]}


for name, body, status in cases:
    got = T.serve(body, HOLDS, CHUNK, CAP)
    got_status = RESET if got.get('reset') else got['response']['status']
    if got_status != status:
        bad += 1
        print(f'"{name}": the Python server says {got_status}, the spec {status}', file=sys.stderr)
        continue
    out['cases'].append({'name': name, 'request': body.hex(), **answer(got, status)})
out['serveSequences'] = {'description': 'R9: one server (chunk size `chunkSize`, at most `maxChunksPerRequest` chunks a request, as for `cases`) '
                                        'answering `steps` in order, each request while it holds that step\'s `holds` (its content may change between '
                                        'requests; a content equal to an earlier step\'s is the same content); each step\'s answer as in `cases`', 'cases': []}
for name, steps in sequences:
    seq = []
    for i, (holds, body, status) in enumerate(steps):
        got = T.serve(body, holds, CHUNK, CAP)
        got_status = RESET if got.get('reset') else got['response']['status']
        if got_status != status:
            bad += 1
            print(f'"{name}" step {i}: the Python server says {got_status}, the spec {status}', file=sys.stderr)
        seq.append({'holds': holds, 'request': body.hex(), **answer(got, status)})
    out['serveSequences']['cases'].append({'name': name, 'steps': seq})
for name, expected, replica, want in fetches:
    got = T.fetch(expected, CONFIG, FCHUNK, {k: x for k, x in replica.items() if k != 'resume'}, replica.get('resume'))
    if got != want:
        bad += 1
        print(f'"{name}": the Python requester says {got}, the spec {want}', file=sys.stderr)
    out['fetch']['cases'].append({'name': name, 'expected': expected, 'replica': replica, **want})
out['fetchMany'] = {'description': 'R13: a requester fetching `expected` from several replicas at once, each answering as in `fetch`; outcome '
                                    '`weightsHash` or `error` (which replicas get dropped depends on the schedule, so no fault is stated)', 'cases': []}
for name, expected, replicas, want in many:
    got = T.fetch_many(expected, CONFIG, FCHUNK, replicas)
    if got != want:
        bad += 1
        print(f'"{name}": the Python requester says {got}, the spec {want}', file=sys.stderr)
    out['fetchMany']['cases'].append({'name': name, 'expected': expected, 'replicas': replicas, **want})
if bad:
    sys.exit(1)
with open(os.path.join(HERE, 'transfer.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'transfer.json: {len(out["cases"])} requests, {len(out["serveSequences"]["cases"])} serve sequences, {len(out["fetch"]["cases"])} fetches')

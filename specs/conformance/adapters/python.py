#!/usr/bin/env python3
"""Conformance adapter of the Python client (specs/ponw-ledger/python), JSON lines on stdin/stdout.
With --break=<what> it answers wrongly on purpose (the runner's own test shows that it then fails):
  high-s      accept high-S signatures          packed      re-encode repeated scalars packed
  state-hash  hash the state without 'queued'   reporter    rank reporters on the public key, not the address
  and, each one line of the implementation changed:
  record-skew     layer-pool: no clock-skew rule for issued_at_ms       chunks-root  layer-pool: root without totalBytes
  greedy-ties     pipeline: greedy picks the highest id on ties         ban-forget   swarm-router: the forget window is 0
  sparse-padding  diloco: SPARSE padding bits not checked               rope-positions  model: RoPE at chunk positions, not absolute
  causal-mask     model: a query does not attend to its own position
  dht-endian      layer-pool: the DHT value's sequence read big-endian   commit-order  diloco: commit senders need not be sorted
  int8-dequant    pipeline: int8 scales taken round-robin, not per block route-session  pipeline: no session-id length rule
  shard-hash      genesis-data: a shard's sha256 is not checked against its name
  select-ties     host: DHT record selection ignores the bytes on equal sequences
  bf16-ties       tensor-frame: bfloat16 rounds ties away from zero
  join-half-up    host: join delays rounded ties-to-even, not half up
  encode-name-chars  tensor-frame: the encoder counts a name's characters, not its UTF-8 bytes"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'ponw-ledger', 'python'))
import neuroshard_ledger as L  # noqa: E402
from neuroshard_ledger import pb, secp256k1  # noqa: E402
from neuroshard_ledger.ledger import _Fail, digest, reporter_for  # noqa: E402
from neuroshard_ledger.keystore import decrypt_keystore  # noqa: E402
from neuroshard_ledger.binding import verify_binding  # noqa: E402
from neuroshard_ledger import checkpoint as CP  # noqa: E402
from neuroshard_ledger.validator import Validator as LedgerValidator, check_training  # noqa: E402  (README §6.1, §8)
from neuroshard_ledger import sync as LedgerSync  # noqa: E402  (README §10)

sys.path.insert(0, os.path.join(HERE, '..', '..', 'tensor-frame', 'python'))
import tensor_frame as TF  # noqa: E402
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tokenizer', 'vectors'))
import reference as TOK  # noqa: E402  (specs/tokenizer/vectors/reference.py: the tokenizer written from its spec)

for sub in (('layer-pool', 'python'), ('pipeline', 'python'), ('swarm-router', 'python'), ('diloco', 'python')):
    sys.path.insert(0, os.path.join(HERE, '..', '..', *sub))
import layer_pool as LP  # noqa: E402  (specs/layer-pool/python: records, assignment, chunks)
import transfer as LPT  # noqa: E402  (specs/layer-pool/python/transfer.py: the weight-transfer server, R4-R8)
import targets as LPG  # noqa: E402  (specs/layer-pool/python/targets.py: §6 targets, §6.1 catching up)
import quant as LPQ  # noqa: E402  (specs/layer-pool/python/quant.py: §2.4 the weights a quantized span multiplies)
import pipeline as PL  # noqa: E402  (specs/pipeline/python: sampling, messages)
import swarm_router as SR  # noqa: E402  (specs/swarm-router/python)
import diloco as DL  # noqa: E402  (specs/diloco/python)
import messages as DM  # noqa: E402  (specs/diloco/python/messages.py: signed announces/commits, aggregation, round records)
import state_sync as DS  # noqa: E402  (specs/diloco/python/state_sync.py: §4 state downloads)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'host', 'python'))
import host as HOST  # noqa: E402  (specs/host/python: DHT record keys, values, selection; identity key files)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'genesis-data', 'python'))
import genesis_data as GD  # noqa: E402  (specs/genesis-data/python: manifest, shard and assignment rules)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'node', 'python'))
import ponw as NP  # noqa: E402  (specs/node/python: stage witnesses, codec tuples, stage pseudo-gradient hashes)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'model', 'python'))
import neurollm as NL  # noqa: E402  (specs/model/python: checkpoints, forward, KV cache, backward, graph inputs/outputs)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'model', 'vectors'))
import importlib.util  # noqa: E402
_spec = importlib.util.spec_from_file_location('model_reference', os.path.join(HERE, '..', '..', 'model', 'vectors', 'reference.py'))
MREF = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(MREF)  # specs/model/vectors/reference.py: scaling rule and the canonical checkpoint writer

BREAK = next((a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--break=')), None)
BREAKS = set((BREAK or '').split(','))  # several at once: --break=a,b

if 'high-s' in BREAKS:
    _verify = secp256k1.verify

    def verify(signature, d, pub):
        if len(signature) == 64 and int.from_bytes(signature[32:], 'big') > secp256k1.HALF_N:
            signature = signature[:32] + (secp256k1.N - int.from_bytes(signature[32:], 'big')).to_bytes(32, 'big')
        return _verify(signature, d, pub)
    secp256k1.verify = verify
if 'packed' in BREAKS:
    _encode = pb.encode

    def encode(name, msg):
        out = _encode(name, msg)
        if name == 'TrainingProof' and msg.get('shard_ids'):
            ids = b''.join(pb.varint(x) for x in msg['shard_ids'])
            unpacked = b''.join(b'\x18' + pb.varint(x) for x in msg['shard_ids'])
            out = out.replace(unpacked, b'\x1a' + pb.varint(len(ids)) + ids)
        return out
    pb.encode = encode
if 'state-hash' in BREAKS:
    _canonical = L.State.canonical

    def canonical(self):
        d = json.loads(_canonical(self))
        del d['queued']
        return L.canonical_json(d)
    L.State.canonical = canonical
if 'reporter' in BREAKS:
    def designated(chain, key, epoch, offender=None):
        if key.startswith('account/'):
            addr = key[len('account/'):]
            pub = next((k for k in chain.validator_keys if L.address_of(k) == addr), None)
            key = 'account/' + (pub.hex() if pub else addr)
        return _designated(chain, key, epoch, offender)
    _designated = L.ledger.designated_reporter
    L.ledger.designated_reporter = designated

# one line of an implementation changed: (module, the line as written, the broken line)
ONE_LINE = {
    'record-skew': (LP, "if r['issued_at_ms'] > now_ms + 30000:", "if False:"),
    'chunks-root': (LP, "struct.pack('<IQ', chunk_size, len(stream))", "struct.pack('<I', chunk_size)"),
    'greedy-ties': (PL, "return min(range(len(logits)), key=lambda i: (-logits[i], i))", "return min(range(len(logits)), key=lambda i: (-logits[i], -i))"),
    'ban-forget': (SR, "now < prev[1] + self.forget", "now < prev[1]"),
    'sparse-padding': (DL, "if value >> (kc * bits):", "if False:"),
    'rope-positions': (NL, "pos0 + p)", "p)"),
    'causal-mask': (NL, "if t <= past + p else -1e9", "if t < past + p else -1e9"),
    'dht-endian': (LP, "int.from_bytes(value[:8], 'little')", "int.from_bytes(value[:8], 'big')"),
    'fork-choice': (DM, "return k1 < k2", "return k1 > k2"),
    'commit-order': (DM, "if out and out[-1][0]['sender'] >= a['sender']:", "if out and out[-1][0]['sender'] == a['sender']:"),
    'int8-dequant': (PL, "f32(q * t['scales'][i // t['blockSize']])", "f32(q * t['scales'][i % len(t['scales'])])"),
    'route-session': (PL, "if len(session) != 16:", "if False:"),
    'shard-hash': (GD, "if hashlib.sha256(data).hexdigest() != name:", "if False:"),
    'select-ties': (HOST, "if best < 0 or (seq, v) > (record_value(values[best])[0], values[best]):", "if best < 0 or seq > record_value(values[best])[0]:"),
    'bf16-ties': (TF, "rest > 0x8000 or (rest == 0x8000 and lo & 1)", "rest >= 0x8000"),
    'join-half-up': (HOST, "return math.floor(d / 2 + u * d / 2 + 0.5)", "return round(d / 2 + u * d / 2)"),
    'encode-name-chars': (TF, "if len(name_bytes) > 1024:", "if len(name or '') > 1024:"),
}
# --break=a,b,… applies several of these at once (each in another module)
_one_line = [m for m in (BREAK or '').split(',') if m in ONE_LINE]
assert len({ONE_LINE[m][0].__name__ for m in _one_line}) == len(_one_line), 'one break per module'
for mode in _one_line:
    mod, old, new = ONE_LINE[mode]
    with open(mod.__file__, encoding='utf-8') as f:
        src = f.read()
    assert old in src, f'{mode}: {old!r} not in {mod.__file__}'
    exec(compile(src.replace(old, new), mod.__file__, 'exec'), mod.__dict__)

chains = {}
parsed = {}


def chain_of(g):
    k = json.dumps(g, sort_keys=True)
    if k not in chains:
        chains[k] = L.Chain(g)
    return chains[k]


def unhex(v):
    return bytes.fromhex(v)


def decoded_to_pb(name, d):
    """encoding.json's `decoded` (hex bytes, decimal or number integers, defaults left out) to a pb dict"""
    msg = pb.default(name)
    types = {f: (t, rep) for _, f, t, rep in pb.SCHEMA[name]}
    for k, v in d.items():
        t, rep = types[k]
        conv = (lambda x: decoded_to_pb(t, x)) if t in pb.SCHEMA else (unhex if t == 'bytes' else int)
        msg[k] = [conv(x) for x in v] if rep else conv(v)
    return msg


def handle(req):
    op = req['op']
    if op == 'ledger.chainId':
        return {'chainId': chain_of(req['genesis']).chain_id_hex}
    if op == 'ledger.keys':
        w = L.Wallet(unhex(req['secretKey']))
        return {'publicKey': w.public_key.hex(), 'address': w.address}
    if op == 'ledger.txId':
        return {'txId': L.tx_id(chain_of(req['genesis']).chain_id, unhex(req['txBytes'])).hex()}
    if op == 'ledger.voteDigest':
        return {'voteDigest': L.vote_digest(chain_of(req['genesis']).chain_id, unhex(req['txId'])).hex()}
    if op == 'ledger.sign':
        return {'signature': secp256k1.sign(unhex(req['secretKey']), unhex(req['digest'])).hex()}
    if op == 'ledger.verify':
        return {'valid': secp256k1.verify(unhex(req['signature']), unhex(req['digest']), unhex(req['publicKey']))}
    if op == 'ledger.amount':
        return {'bytes': L.encode_amount(int(req['value'])).hex()}
    if op == 'ledger.amountDecode':
        return {'value': str(L.decode_amount(unhex(req['bytes'])))}
    if op == 'ledger.encodeTx':
        return {'txBytes': pb.encode('Tx', decoded_to_pb('Tx', req['decoded'])).hex()}
    if op == 'ledger.parseSignedTx':
        t = L.parse_signed_tx(chain_of(req['genesis']), unhex(req['signedTx']))
        return {'txId': t.id_hex, 'kind': t.kind, 'sender': t.sender, 'sequence': str(t.sequence), 'epoch': str(t.epoch)}
    if op == 'ledger.parseCertificate':
        t, votes = L.parse_certificate(chain_of(req['genesis']), unhex(req['certificate']))
        return {'txId': t.id_hex, 'validators': [v['validator'] for v in votes]}
    if op == 'ledger.evidence':
        body = {'kind': req['kind'], 'signed_tx_a': unhex(req['signedTxA']), 'signed_tx_b': unhex(req['signedTxB']),
                'validator': req.get('validator', 0), 'vote_sig_a': unhex(req.get('voteSigA', '')), 'vote_sig_b': unhex(req.get('voteSigB', ''))}
        try:
            e = L.check_evidence(chain_of(req['genesis']), body)
        except _Fail as f:
            return {'key': None, 'reason': str(f)}
        return {'key': e['key'], 'offender': e['offender']}
    if op == 'ledger.reporter':
        return {'reporter': L.ledger.designated_reporter(chain_of(req['genesis']), req['key'], int(req['epoch']), req['offender'])}
    if op == 'ledger.assignShards':
        return {'shards': L.assign_shards(chain_of(req['genesis']), req['address'], int(req['round']))}
    if op == 'ledger.state':
        chain = chain_of(req['genesis'])
        st = L.State(chain)
        for c in req['certificates']:
            # parsed once per run (signature checks are slow in pure Python); the same bytes give the same message
            if (chain.chain_id, c) not in parsed:
                parsed[(chain.chain_id, c)] = L.parse_certificate(chain, unhex(c))[0]
            st.add_final([parsed[(chain.chain_id, c)]])
        canon = st.canonical()
        return {'stateHash': digest('neuroshard/ledger/v1/state', canon.encode('utf-8')).hex(), 'canonical': canon,
                'accounts': {a: json.loads(L.canonical_json(st.get(a))) for a in req.get('addresses', [])},
                'totals': {k: str(v) for k, v in st.totals.items()}}
    if op == 'ledger.checkpoint':
        chain = chain_of(req['genesis'])
        st = L.State(chain)
        for c in req['certificates']:
            st.add_final([L.parse_certificate(chain, unhex(c))[0]])
        snap = CP.snapshot(st)
        h = CP.snapshot_hash(snap)
        height = int(json.loads(snap)['height'])
        return {'snapshot': snap.decode('utf-8'), 'snapshotHash': h.hex(), 'height': str(height), 'checkpointDigest': CP.checkpoint_digest(chain, height, h).hex()}
    if op == 'ledger.verifyCheckpoint':
        CP.verify_checkpoint(chain_of(req['genesis']), unhex(req['certificate']), req['snapshot'].encode('utf-8'))
        votes = pb.decode('CheckpointCertificate', unhex(req['certificate']))['votes']
        return {'validators': [v['validator'] for v in votes]}
    if op == 'ledger.installCheckpoint':
        chain = chain_of(req['genesis'])
        st, base, out = L.State(chain), 0, []
        for c in req['applied']:
            st.add_final([L.parse_certificate(chain, unhex(c))[0]])

        def frontier():
            return {a: x['nextSeq'] for a, x in st.accounts.items() if x['nextSeq']}
        first = frontier()
        for x in req['installs']:
            o = {}
            try:
                s = CP.check_install(chain, base, frontier(), unhex(x['certificate']), x['snapshot'].encode('utf-8'))
                st, base = CP.state_from_snapshot(chain, s), int(s['height'])
            except L.LedgerError as e:
                o['error'] = e.name
            out.append(dict(o, frontier=frontier()))
        st.add_final([L.parse_certificate(chain, unhex(c))[0] for c in req.get('after', [])])
        return {'frontier': first, 'outcomes': out, 'snapshotHash': CP.snapshot_hash(CP.snapshot(st)).hex()}
    if op == 'ledger.validator':
        chain = chain_of(req['genesis'])
        val, out = LedgerValidator(chain, 0, L.Wallet(unhex(req['secretKey']))), []
        val.index = chain.validator_keys.index(val.wallet.public_key)
        for s in req['steps']:
            if s['op'] == 'final':
                val.final(unhex(s['certificate']))
                out.append({})
                continue
            try:
                val.vote(unhex(s['signedTx']), s['nowMs'], [{'validator': e['validator'], 'signature': unhex(e['signature'])} for e in s.get('endorsements', [])])
                out.append({'signed': True})
            except L.LedgerError as e:
                out.append({'error': e.name})
        return {'outcomes': out}
    if op == 'ledger.trainingCheck':
        chain = chain_of(req['genesis'])
        st = L.State(chain)
        for c in req['final']:
            st.add_final([L.parse_certificate(chain, unhex(c))[0]])
        check_training(st, L.parse_signed_tx(chain, unhex(req['proof'])), req['nowMs'], req['accepted'], req['verdict'])
        return {'valid': True}
    if op == 'ledger.sync':
        chain = chain_of(req['genesis'])
        st = L.State(chain)
        for c in req['known']:
            st.add_final([L.parse_certificate(chain, unhex(c))[0]])
        pages = [{**p, 'certificates': [unhex(c) for c in p['certificates']]} for p in req['pages']]
        return {'outcomes': LedgerSync.session(st, 0, req['limit'], pages)}
    if op == 'ledger.deriveCheckpoint':
        chain = chain_of(req['genesis'])
        base = None
        if req.get('base'):
            s = CP.check_install(chain, 0, {}, unhex(req['base']['certificate']), req['base']['snapshot'].encode('utf-8'))
            base = {'height': int(s['height']), 'hash': CP.snapshot_hash(req['base']['snapshot'].encode('utf-8')), 'snapshot': s}
        p = req['proposal']
        snap = CP.derive_checkpoint(chain, base, [L.parse_certificate(chain, unhex(c))[0] for c in req['applied']], {
            'height': int(p['height']), 'snapshotHash': unhex(p['snapshotHash']), 'baseHeight': int(p['baseHeight']), 'baseHash': unhex(p['baseHash']),
            'frontier': [(e['address'], int(e['nextSeq'])) for e in p['frontier']]})
        return {'snapshotHash': CP.snapshot_hash(snap).hex()}
    if op == 'ledger.merkleRoot':
        return {'root': L.merkle_root([unhex(x) for x in req['samples']]).hex()}
    if op == 'ledger.merkleProof':
        return {'path': [x.hex() for x in L.merkle_proof([unhex(x) for x in req['samples']], req['index'])]}
    if op == 'ledger.verifyMerkleProof':
        return {'valid': L.verify_merkle_proof(unhex(req['root']), req['count'], req['index'], unhex(req['sample']), [unhex(x) for x in req['path']])}
    if op == 'ledger.manifestHash':
        return {'manifestHash': L.shard_manifest_hash([(unhex(x['hash']), int(x['samples'])) for x in req['shards']]).hex()}
    if op == 'ledger.challengeIndexes':
        return {'indexes': L.challenge_indexes(req['proofId'], unhex(req['secret']), req['count'], req['k'])}
    if op == 'ledger.sampleBatches':
        return {'indexes': L.sample_batches(req['proofId'], req['batches'], req['samples'], unhex(req['salt']))}
    if op == 'ledger.sampleSegments':
        return {'indexes': L.sample_segments(req['proofId'], req['segments'], req['count'], unhex(req['salt']))}
    if op == 'ledger.keystoreDecrypt':
        return {'address': decrypt_keystore(req['file'], req['passphrase']).address}
    if op == 'ledger.verifyBinding':
        return {'address': verify_binding(req['binding'])}
    if op == 'ledger.decodeMessage':
        from vectors import normalize
        msg = pb.decode(req['message'], unhex(req['bytes']))
        return {'decoded': normalize(req['message'], msg), 'reencoded': pb.encode(req['message'], msg).hex()}
    if op == 'tensor.decode':
        try:
            t = TF.decode(unhex(req['frame']), req.get('maxBytes', TF.DEFAULT_MAX_BYTES))
        except TF.FrameError as e:
            return {'error': e.name, 'message': str(e)}
        if t['dtype'] in ('float32', 'int8'):
            t['values'] = [TF.json_float(x) if isinstance(x, float) else x for x in t['values']]
        if 'scales' in t:
            t['scales'] = [TF.json_float(x) for x in t['scales']]
        return t
    if op == 'tensor.encode':
        t = req['tensor']
        try:
            return {'frame': TF.encode(t['dtype'], t['shape'], t.get('name'), unhex(t['dataHex']), t.get('blockSize', 0), unhex(t.get('scalesHex', ''))).hex()}
        except TF.FrameError as e:
            return {'error': e.name, 'message': str(e)}
    if op == 'tensor.quantizeInt8':
        try:
            values, scales = TF.quantize_int8([float(x) for x in req['values']], req['blockSize'])
        except TF.FrameError as e:
            return {'error': e.name, 'message': str(e)}
        return {'values': values, 'scales': [TF.json_float(x) for x in scales]}
    if op.startswith('tokenizer.'):
        return tokenizer_op(op, req)
    if op.startswith('host.') and op != 'host.swarmKey':
        try:
            if op == 'host.identity':
                return {'peerId': HOST.identity(unhex(req['fileHex']), int(req['mode'], 8))}
            if op == 'host.recordKey':
                ns, rid = HOST.record_key(unhex(req['keyHex']))
                return {'namespace': ns, 'recordId': rid}
            if op == 'host.recordValue':
                seq, payload = HOST.record_value(unhex(req['valueHex']))
                return {'sequence': str(seq), 'payloadHex': payload.hex()}
            if op == 'host.encodeRecordValue':
                return {'valueHex': HOST.encode_record_value(int(req['sequence']), unhex(req['payloadHex'])).hex()}
            if op == 'host.recordSelect':
                return {'best': HOST.select([unhex(x) for x in req['valuesHex']])}
            if op == 'host.p6':
                return {'penalty': HOST.p6(req['ip'], req['peers'], req['privateSwarm'])}
            if op == 'host.dhtAddresses':
                return {'kept': HOST.dht_addresses(req['filter'], req['addrs'])}
            if op == 'host.gossipMessage':
                return HOST.gossip_message(unhex(req['message']))
            if op == 'host.profile':
                return {'profile': HOST.profile(req['options'])}
            if op == 'host.joinDelay':
                return {'delayMs': HOST.join_delay(req['attempt'], req['u'])}
            if op == 'host.joinRounds':
                return {'states': HOST.join_rounds(req['target'], req['events'])}
        except HOST.HostError as e:
            return {'error': e.name, 'message': str(e)}
        return None
    if op == 'tensor.convert':
        try:
            f = TF.to_float16 if req['format'] == 'float16' else TF.to_bfloat16
            return {'bits': f(int(req['float32Bits'], 16), req['overflow'])}
        except TF.FrameError as e:
            return {'error': e.name, 'message': str(e)}
    if op == 'host.swarmKey':
        canonical = parse_swarm_key(req['input'].encode('utf-8', 'surrogatepass'))
        return {'canonical': canonical} if canonical is not None else {'error': 'InvalidSwarmKeyError'}
    if op == 'framing.read':
        return framing_read(unhex(req['stream']), req['eof'], req['maxMessageSize'], req['count'])
    if op == 'framing.readMessage':
        return framing_read_message(req['message'], unhex(req['body']))
    if op == 'framing.write':
        return framing_write([unhex(m) for m in req['messages']], req['maxMessageSize'])
    if op.startswith('layerPool.'):
        return layer_pool_op(op, req)
    if op.startswith('pipeline.'):
        return pipeline_op(op, req)
    if op.startswith('router.'):
        return router_op(op, req)
    if op.startswith('diloco.'):
        return diloco_op(op, req)
    if op.startswith('model.'):
        return model_op(op, req)
    if op == 'node.encodeWitness':
        return {'bytes': NP.encode_witness(req['witness']).hex()}
    if op == 'node.decodeWitness':
        try:
            return {'witness': NP.decode_witness(bytes.fromhex(req['bytes']))}
        except NP.Refused:
            return {'refused': True}
    if op == 'node.codecTuple':
        return {'tuple': NP.codec_tuple(req['announced'])}
    if op == 'node.pseudoGradientHash':
        try:
            return {'hash': NP.pseudo_gradient_hash(req['config'], req['base'], req['final'])}
        except NP.ReExecutionMismatch as e:
            return {'error': 'ReExecutionMismatchError', 'message': str(e)}
    if op in ('node.checkStageStep', 'node.finalWeights'):
        try:
            if op == 'node.checkStageStep':
                NP.check_stage_step(req['config'], req['witness'], req['index'])
            else:
                NP.check_final_weights(req['config'], req['base'], req['final'], req['modelHash'], req['pseudoGradientHash'])
            return {'valid': True}
        except NP.ReExecutionMismatch as e:
            return {'error': 'ReExecutionMismatchError', 'message': str(e)}
    if op == 'node.replayStage':
        try:
            return {'valid': True, 'distance': NP.check_replay(req['config'], req['optimizer'], req['base'], req['final'], req['batches'])}
        except NP.ReExecutionMismatch as e:
            return {'error': 'ReExecutionMismatchError', 'message': str(e)}
    if op == 'node.acceptedPseudoGradient':
        return {'accepted': NP.accepted_pseudo_gradient(req['config'], req['modelId'], req['aggregator'], req['witness'], req['query'], req['peerOf'])}
    if op == 'node.stagePseudoGradientHash':
        return {'hash': NP.stage_pseudo_gradient_hash(req['entries'])}
    if op.startswith('genesisData.'):
        try:
            if op == 'genesisData.validateManifest':
                return {'manifest': GD.validate_manifest(req['manifest'])}
            if op == 'genesisData.loadShard':
                return {'tokens': GD.load_shard(req['name'], unhex(req['shardHex']), req.get('manifest'))}
            if op == 'genesisData.assignShards':
                return {'shards': GD.assign_shards(req['manifest'], req['peerId'], int(req['round']), req['k'], req.get('split') or 'train')}
            if op == 'genesisData.documentSplit':
                return {'split': GD.document_split(req['document'], req['validationThreshold'])}
            if op == 'genesisData.shuffleWords':
                words = GD.shuffle_words(int(req['seed']))
                return {'words': [next(words) for _ in range(req['count'])]}
            if op == 'genesisData.windowOrder':
                return {'order': GD.window_order(req['shardLengths'], req['seqLen'], int(req['seed']))}
            if op == 'genesisData.nlpCorpus':
                # the package as installed for packages/genesis-data (pnpm); the text is the spec's, the files the package's
                pkg = os.path.join(HERE, '..', '..', '..', 'packages', 'genesis-data', 'node_modules', 'nlp-corpus')
                return {'unsupported': True} if not os.path.isdir(pkg) else GD.nlp_corpus(pkg)
        except GD.GenesisDataError as e:
            return {'error': e.name, 'message': str(e)}
    return None


models = {}


def model_of(req):
    key = (json.dumps(req['config'], sort_keys=True), tuple(c['contentHash'] for c in req['checkpoints']))
    if key not in models:
        models[key] = NL.load(req['config'], [(unhex(c['fileHex']), c['role'], c['contentHash']) for c in req['checkpoints']])
    return models[key]


def model_op(op, req):
    try:
        if op == 'model.scaling':
            c = MREF.scale(req['nodes'], req['totalMemoryBytes'])
            if c is None:
                return {'error': 'InvalidConfigError'}
            return {'architecture': c, 'parameters': MREF.count(c)}
        if op == 'model.validateConfig':
            return {'config': NL.check_config(req['config'])}
        if op == 'model.decodeCheckpoint':
            ck = NL.read_checkpoint(unhex(req['fileHex']), req.get('expectConfig'), req.get('expectRole'), req.get('expectContentHash'))
            raw = {n: struct.pack(f'<{len(v)}f', *v) for n, (v, _) in ck['parameters'].items()}
            again = MREF.encode(ck['config'], ck['role'], raw, ck['step'], ck['metadata'])
            return {k: ck[k] for k in ('config', 'role', 'step', 'metadata', 'contentHash')} | {'reencoded': again.hex()}
        if op == 'model.forward':
            logits, loss = NL.forward(model_of(req), req['ids'], req['targets'])
            return {'logits': [x for seq in logits for row in seq for x in row], 'logitsShape': [len(logits), len(logits[0]), len(logits[0][0])], 'loss': loss}
        if op == 'model.decode':
            return {'logits': [x for row in NL.decode(model_of(req), req['ids'], req['steps']) for x in row]}
        if op == 'model.gradients':
            loss, grads = NL.gradients(model_of(req), req['ids'], req['targets'], req['gradLoss'])
            return {'loss': loss, 'gradients': [grads[a['name']][a['index']] for a in req['at']]}
        if op == 'model.init':
            spec = dict(MREF.shard_params(req['config'], {'kind': 'embed'}) + MREF.shard_params(req['config'], {'kind': 'blocks', 'start': 0, 'end': req['config']['nLayers']}) + MREF.shard_params(req['config'], {'kind': 'head'}))
            return {'shape': list(spec[req['name']]), 'first': MREF.init(req['config'], req['name'], req['count'], req['seed'])}
        if op == 'model.contentHash':
            return {'contentHash': MREF.content_hash([(t['name'], t['dtype'], t['shape'], unhex(t['dataHex'])) for t in req['tensors']])}
        if op == 'model.graphIO':
            inputs, outputs = NL.graph_io(req['config'], req['role'], req['variant'])
            return {'inputs': inputs, 'outputs': outputs}
    except NL.ModelError as e:
        return {'error': e.name, 'message': str(e)}
    return None


def serve_answer(got):
    """layerPool.serve's result from transfer.serve's answer"""
    if got.get('reset'):
        return {'reset': True}
    res, m = got['response'], got['response']['manifest']
    return {'status': res['status'], 'message': res['message'], 'chunkCount': res['chunk_count'], 'chunks': [{'index': i, 'data': d.hex()} for i, d in got['chunks']],
            'manifest': None if m is None else {'tensors': m['tensors'], 'totalBytes': m['total_bytes'], 'chunkSize': m['chunk_size'],
                                                'chunkHashes': [h.hex() for h in m['chunk_hashes']], 'optimizerStep': m['optimizer_step']}}


def layer_pool_op(op, req):
    try:
        if op == 'layerPool.view':
            v = LP.view(req['holdings'], req['slots'], req['nowMs'], req['loadingGraceMs'])
            return {'view': v, 'underReplicated': LP.under_replicated(v, req['minReplicas'])}
        if op == 'layerPool.chooseSpan':
            v = LP.view(req['holdings'], req['slots'], req['nowMs'], req['loadingGraceMs'])
            return {'span': LP.choose_span(v, req['costs'], req['budget'], req['minReplicas'])}
        if op == 'layerPool.chunks':
            return LP.chunks(req['tensors'], req['chunkSize'])
        if op == 'layerPool.serve':
            return serve_answer(LPT.serve(unhex(req['request']), req['holds'], req['chunkSize'], req['maxChunksPerRequest']))
        if op == 'layerPool.dequantized':
            v = [struct.unpack('<f', struct.pack('<I', b))[0] for b in req['values']]
            d = LPQ.dequantized(v, req['rows'], req['cols'], req['format'], req['blockSize'], req['groupsAlong'])
            return {'dequantized': [struct.unpack('<I', struct.pack('<f', x))[0] for x in d]}
        if op == 'layerPool.serveSequence':
            # transfer R9: this server keeps no chunk hashes, so each answer is computed from the content it then holds
            return {'answers': [serve_answer(LPT.serve(unhex(s['request']), s['holds'], req['chunkSize'], req['maxChunksPerRequest'])) for s in req['steps']]}
        if op == 'layerPool.fetch':
            return LPT.fetch(req['expected'], req['config'], req['chunkSize'], {k: x for k, x in req['replica'].items() if k != 'resume'}, req['replica'].get('resume'))
        if op == 'layerPool.slotSource':
            kind, t, replicas = LPG.source(req['records'], req['slot'], req['genesisHash'], req['avoid'])
            return {'source': kind, 'replicas': replicas,
                    'target': None if t is None else {'weightsHash': t['weightsHash'], 'chunksRoot': t['chunksRoot'], 'step': t['step'], 'votes': t['votes']}}
        if op == 'layerPool.loadSpan':
            sources, again = LPG.load_span(req['slots'], req['genesis'], req['resolve'], req['recheck'], req['avoid'])
            return {'sources': sources, 'fetchAgain': again}
        if op == 'layerPool.catchUp':
            return {'outcomes': LPG.catch_up(req['graceMs'], req['heartbeats'])}
        if op == 'layerPool.fetchMany':
            return LPT.fetch_many(req['expected'], req['config'], req['chunkSize'], req['replicas'])
        if op == 'layerPool.peerId':
            pub = LP.public_key_protobuf(LP.ed25519.public_key(unhex(req['ed25519Seed'])))
            return {'peerId': LP.peer_id_string(LP.peer_id_bytes(pub)), 'publicKeyProtobuf': pub.hex()}
        if op == 'layerPool.signRecord':
            env, key = LP.sign_record(unhex(req['ed25519Seed']), req['fields'])
            return {'envelope': env.hex(), 'dhtKey': key}
        if op == 'layerPool.openRecord':
            slots = req.get('slotCount')
            peer, fields = LP.open_record(unhex(req['envelope']), req['nowMs'], None if slots is None else slots - 2)
            return {'peerId': peer, 'fields': fields}
        if op == 'layerPool.openArchitecture':
            return {'fields': LP.open_architecture(unhex(req['envelope']), req['authorities'], req['parent'], req.get('limits'), MREF.count)}
        if op == 'layerPool.validateDhtRecord':
            LP.validate_dht_record(req['key'].encode('utf-8'), unhex(req['value']), req['nowMs'])
            return {'valid': True}
    except LP.LayerPoolError as e:
        return {'error': e.name, 'message': str(e)}
    return None


def pipeline_op(op, req):
    if op == 'pipeline.draw':
        x = (int(req['seed']) + req['position']) % 2 ** 64
        return {'splitmix64': str(PL.splitmix64(x)), 'u': PL.draw(int(req['seed']), req['position'])}
    if op == 'pipeline.sample':
        logits = [TF.fround(x) for x in req['logits']]
        return {'token': PL.sample(logits, req['temperature'], req['topK'], req['topP'], int(req['seed']), req['position'])}
    if op == 'pipeline.sessions':
        st, lim = req['stage'], req['limits']
        t = PL.Sessions(st['blocks'], st['nKvHeads'], st['dModel'] // st['nHeads'], lim['maxSessions'], lim['maxKvBytes'])
        out = []
        for x in req['steps']:
            o = {}
            try:
                if x['op'] == 'infer':
                    t.infer(x['session'], x['position'], x['seq'], x.get('rollback', False), x.get('failRun'))
                elif x['op'] == 'truncate':
                    t.truncate(x['session'], x['position'])
                else:
                    t.close(x['session'])
            except PL.PipelineError as e:
                o['error'] = e.name
            out.append(dict(o, holds=dict(t.held), bytes=t.bytes()))
        return {'outcomes': out}
    if op == 'pipeline.training':
        reached = [0]

        def downstream():   # the next hop's answer: its loss is how many TRAIN_FORWARDs reached it
            reached[0] += 1
            return reached[0]
        t = PL.Training(req['step'], req['maxMicroBatches'], downstream)
        out = []
        for x in req['ops']:
            o = {}
            try:
                if x['op'] == 'forward':
                    o['loss'] = t.forward(x['session'], x['step'], x['microBatch'])
                else:
                    t.step_to(x['step'])
            except PL.PipelineError as e:
                o['error'] = e.name
            out.append(dict(o, accumulated=t.accumulated, step=t.step))
        return {'outcomes': out}
    if op == 'pipeline.tiedStep':
        try:
            ids = PL.check_tied_step(unhex(req['tiedIds']), unhex(req['tied']), req['adamw'], req['step'], req['vocabSize'], req['dModel'], req['hasTied'])
        except PL.PipelineError as e:
            return {'error': e.name, 'message': str(e)}
        return {'ids': ids}
    if op == 'pipeline.draft':
        try:
            PL.check_draft(req['position'], req['draft'], req['vocabSize'], req['maxSeqLen'], req.get('head', True))
        except PL.PipelineError as e:
            return {'error': e.name, 'message': str(e)}
        return {'valid': True}
    if op == 'pipeline.acceptDraw':
        return {'a': PL.accept_draw(int(req['seed']), req['position'])}
    if op == 'pipeline.verifyDraft':
        rows = [[TF.fround(x) for x in row] for row in req['rows']]
        return {'tokens': PL.verify_draft(rows, req['draft'], req['temperature'], req['topK'], req['topP'], int(req['seed']), req['first'])}
    try:
        if op == 'pipeline.decodeActivation':
            shape, values = PL.decode_activation(unhex(req['bytes']), req['limits'])
            return {'shape': shape, 'values': DL.to_bits(values)}
        if op == 'pipeline.decodeTargets':
            shape, ids = PL.decode_ids(unhex(req['bytes']), req['limits'])
            return {'shape': shape, 'ids': ids}
        if op == 'pipeline.sessionStream':
            return {'answers': PL.session_answers(req['requests'])}
        if op == 'pipeline.mirror':
            return PL.serve_mirror(req['stage'], req['request'])
        if op == 'pipeline.relay':
            return PL.relay(req['hop'], req['next'])
        if op == 'pipeline.tiedSequence':
            f = lambda bs: [struct.unpack('<f', struct.pack('<I', b))[0] for b in bs]  # noqa: E731
            b = lambda xs: [struct.unpack('<I', struct.pack('<f', x))[0] for x in xs]  # noqa: E731
            rep = req['replica']
            rep = None if rep is None else {'step': rep['step'], 'p': f(rep['p']), 'm': f(rep['m']), 'v': f(rep['v'])}
            ops = [{**o, **{k: f(o[k]) for k in ('g', 'rows', 'tied', 'm', 'v') if k in o}} for o in req['ops']]
            out = PL.tied_sequence(req['vocabSize'], req['dModel'], req['headStep'], rep, ops, req.get('acceptOwner', True))
            return {'outcomes': [{**o, **({'tied': b(o['tied'])} if o.get('tied') is not None else {})} for o in out]}
        if op == 'pipeline.checkRoute':
            route = [{'peer': unhex(h['peer']), 'start': h['start'], 'end': h['end']} for h in req['route']]
            PL.check_route(unhex(req['session']), route, req['hop'], req['kind'], unhex(req['node']), req['serves'], req['nLayers'], [unhex(x) for x in req.get('standbys', [])])
            return {'valid': True}
    except PL.PipelineError as e:
        return {'error': e.name, 'message': str(e)}
    if op == 'pipeline.encodeRequest':
        return {'bytes': PL.encode('Request', req['fields']).hex()}
    if op == 'pipeline.decodeRequest':
        return {'fields': PL.decode('Request', unhex(req['bytes']))}
    if op == 'pipeline.decodeResponse':
        m = PL.decode('Response', unhex(req['bytes']))
        return {'fields': m, 'reencoded': PL.encode('Response', m).hex()}
    return None


def router_op(op, req):
    if op == 'router.chain':
        best = SR.least_cost_chain(req['candidates'], req['from'], req['to'], req['cost'], req['excluded'])
        if best is None:
            return {'chain': None}
        chain, cost = best
        return {'chain': [list(h) for h in chain], 'chainCost': cost, 'standbys': SR.standbys(chain, req['candidates'], req['cost'], req['excluded'])}
    if op == 'router.weightedPick':
        return {'index': SR.weighted_pick(req['weights'], req['u'])}
    if op == 'router.bans':
        bans = SR.Bans(req['baseMs'], req['maxMs'], req['forgetMs'])
        return {'events': [dict(zip(('bannedUntil', 'failures'), bans.fail(e['peer'], e['failAt']))) for e in req['events']]}
    return None


def diloco_op(op, req):
    try:
        if op == 'diloco.stateDownload':
            answers = [{**a, 'data': unhex(a['data']), 'baseHash': unhex(a['baseHash']), 'stateHash': unhex(a['stateHash'])} for a in req['answers']]
            try:
                got = DS.download(req['elements'], req['layout'], req['rangeBytes'], answers)
            except DS.StateSyncError as e:
                return {'error': e.name, 'message': str(e)}
            if got.get('restart'):
                return {'restart': True}
            n = req['elements']
            return {'state': {'round': got['round'], 'theta': list(struct.unpack(f'<{n}I', got['theta'])), 'momentum': list(struct.unpack(f'<{n}I', got['momentum']))}}
        if op == 'diloco.outerStep':
            t, b = DL.outer_step(DL.from_bits(req['theta']), DL.from_bits(req['momentum']), DL.from_bits(req['g']), req['lr'], req['mu'])
            return {'theta': DL.to_bits(t), 'momentum': DL.to_bits(b)}
        if op == 'diloco.encode':
            return {'payload': DL.encode(DL.from_bits(req['input']), req['codec']).hex()}
        if op == 'diloco.decode':
            return {'decoded': DL.to_bits(DL.decode(unhex(req['payload']), req['elements'], req['codec']))}
        if op == 'diloco.errorFeedback':
            rounds = DL.error_feedback([DL.from_bits(d) for d in req['deltas']], req['codec'], req['decay'])
            return {'rounds': [{'payload': p.hex(), 'residual': DL.to_bits(e)} for p, e in rounds]}
        if op == 'diloco.leaderKey':
            return {'key': DL.leader_key(int(req['round']), unhex(req['peer']))}
        if op == 'diloco.openAnnounce':
            _, sender, _ = DM.open_announce(DM.pb_decode('Signed', unhex(req['signed'])))
            return {'sender': sender, 'payloadHash': DM.pb_decode('Announce', DM.pb_decode('Signed', unhex(req['signed']))['body'])['payload_hash'].hex()}
        if op == 'diloco.checkAnnounce':
            a, _, _ = DM.open_announce(DM.pb_decode('Signed', unhex(req['signed'])))
            DM.check_announce(a, req['expect'])
            return {'valid': True}
        if op == 'diloco.round':
            rnd, out = DM.Round(req['expect'], req['maxContributions']), []
            for x in req['ops']:
                if x['op'] == 'commit':
                    rnd.committed = True
                    out.append({})
                    continue
                try:
                    a, sender, _ = DM.open_announce(DM.pb_decode('Signed', unhex(x['signed'])))
                    rnd.announce(a, sender)
                    out.append({})
                except DM.DiLoCoError as e:
                    out.append({'error': e.name})
            return {'outcomes': out}
        if op == 'diloco.commits':
            rcv, out = DM.Receiver(req['group'], req['span'], req['round'], req['baseHash'], req['members'], req['aggregator'], req['bases'], req.get('stalled')), []
            for x in req['ops']:
                try:
                    got = rcv.receive(DM.pb_decode('Signed', unhex(x['signed'])))
                    out.append({'outcome': got[0], **({'from': got[1]} if len(got) > 1 else {})})
                except DM.DiLoCoError as e:
                    out.append({'error': e.name})
            return {'outcomes': out}
        if op == 'diloco.openCommit':
            _, leader, announces = DM.open_commit(DM.pb_decode('Signed', unhex(req['signed'])))
            return {'leader': leader, 'senders': [s for _, s, _ in announces]}
        if op == 'diloco.aggregate':
            value, accepted, distances = DM.aggregate([DL.from_bits(x) for x in req['inputs']], req['aggregator'])
            return {'value': DL.to_bits(value), 'accepted': accepted, 'distances': distances}
        if op == 'diloco.verifyRoundRecord':
            payloads = None if req['payloads'] is None else {h: unhex(p) for h, p in req['payloads'].items()}
            DM.verify_round_record(req['record'], payloads, req['elements'], req['aggregator'])
            return {'valid': True}
        if op == 'diloco.privacyEpsilon':
            return {'epsilon': DL.privacy_epsilon(req['rounds'], req['noiseMultiplier'], req['delta'])}
    except (DL.MalformedPseudoGradientError, DM.DiLoCoError) as e:
        return {'error': e.name, 'message': str(e)}
    return None


tokenizers = {}


def tokenizer_op(op, req):
    if op == 'tokenizer.pretokenize':
        return {'pieces': TOK.pretokenize(req['text'])}
    try:
        if req['tokenizerJson'] not in tokenizers:
            tokenizers[req['tokenizerJson']] = TOK.Tokenizer(json.loads(req['tokenizerJson']))
        tok = tokenizers[req['tokenizerJson']]
    except TOK.FormatError as e:
        return {'error': 'TokenizerFormatError', 'message': str(e)}
    if op == 'tokenizer.load':
        return {'ok': True}
    if op == 'tokenizer.encode':
        return {'ids': tok.encode(req['text'], req['allowSpecial'], req['addBos'], req['addEos'])}
    if op == 'tokenizer.decode':
        try:
            b = tok.decode_bytes(req['ids'], req['skipSpecialTokens'])
        except KeyError as e:
            return {'error': 'UnknownTokenIdError', 'message': str(e)}
        return {'bytesHex': b.hex(), 'text': b.decode('utf-8', 'replace')}
    return None


# specs/host/README.md "Private swarms (pnet)": trim (ECMAScript String.prototype.trim's set), CRLF -> LF, three
# lines, the two headers, 64 hex digits; canonical form with lower-case hex (as specs/host/vectors/check.py)
TRIM = set('\t\n\x0b\x0c\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff') | {chr(c) for c in range(0x2000, 0x200b)}


def _strip(s):
    i, j = 0, len(s)
    while i < j and s[i] in TRIM:
        i += 1
    while j > i and s[j - 1] in TRIM:
        j -= 1
    return s[i:j]


def parse_swarm_key(data: bytes):
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        return None
    lines = [_strip(x) for x in _strip(text.replace('\r\n', '\n')).split('\n')]
    if len(lines) != 3 or lines[0] != '/key/swarm/psk/1.0.0/' or lines[1] != '/base16/':
        return None
    if len(lines[2]) != 64 or any(c not in '0123456789abcdefABCDEF' for c in lines[2]):
        return None
    return '/key/swarm/psk/1.0.0/\n/base16/\n' + lines[2].lower()


def framing_read(stream, eof, cap, count):
    """specs/README.md "Framing", receiver rules 3-7 in their normative order, over a stream that holds `stream`
    and then ends (eof) or stays open and silent (the message timeout passes); rule 8: any of them resets the stream"""
    ended = 'StreamClosedError' if eof else 'TimeoutError'
    cap_len = len(pb.varint(cap))
    pos, out = 0, []

    def fail(name):
        return {'messages': out, 'error': name, 'reset': True}
    for _ in range(count):
        prefix = []
        while True:
            if pos >= len(stream):
                return fail(ended)
            prefix.append(stream[pos])
            pos += 1
            if not prefix[-1] & 0x80:
                break
            if len(prefix) >= cap_len:   # rule 3, checked after every prefix byte
                return fail('MessageTooLargeError')
        if len(prefix) > 1 and prefix[-1] == 0:   # rule 4
            return fail('MalformedMessageError')
        n = sum((b & 0x7F) << (7 * i) for i, b in enumerate(prefix))
        if n > cap:   # rule 3
            return fail('MessageTooLargeError')
        if pos + n > len(stream):   # rule 5 (or 7 while the stream stays open)
            return fail(ended)
        out.append(stream[pos:pos + n].hex())
        pos += n
    return {'messages': out, 'error': None, 'reset': False}


def framing_read_message(message, body):
    """rule 6: the body of a complete message decoded as `message` (EchoRequest {string text = 1; bytes payload = 2;},
    framing/README.md): unknown fields skipped, absent fields at their defaults, the last of a repeated non-repeated
    field kept; a varint, length or fixed-width value cut short, or wire type 6 or 7: MalformedMessageError (and rule 8)"""
    assert message == 'EchoRequest'

    class Cut(Exception):
        pass

    def varint(pos):
        n, shift = 0, 0
        while True:
            if pos >= len(body):
                raise Cut()
            b = body[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n, pos
    fields, pos = {1: b'', 2: b''}, 0
    try:
        while pos < len(body):
            tag, pos = varint(pos)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = varint(pos)
            elif wire == 2:
                n, pos = varint(pos)
                if pos + n > len(body):
                    raise Cut()
                if number in fields:
                    fields[number] = body[pos:pos + n]
                pos += n
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > len(body):
                    raise Cut()
            else:
                raise Cut()
    except Cut:
        return {'error': 'MalformedMessageError', 'reset': True}
    return {'decoded': {'text': fields[1].decode('utf-8'), 'payload': fields[2].hex()}, 'reset': False}


def framing_write(messages, cap):
    """rules 1-2: each body after its minimal unsigned-varint length; a body over the cap is refused before any byte
    of it is written, and the writer stops there"""
    out = b''
    for m in messages:
        if len(m) > cap:
            return {'written': out.hex(), 'error': 'MessageTooLargeError'}
        out += pb.varint(len(m)) + m
    return {'written': out.hex(), 'error': None}


for line in sys.stdin:
    if not line.strip():
        continue
    req = json.loads(line)
    try:
        res = handle(req)
        out = {'unsupported': True} if res is None else res
    except L.LedgerError as e:
        out = {'error': e.name, 'message': str(e)}
    out['id'] = req['id']
    sys.stdout.write(json.dumps(out) + '\n')
    sys.stdout.flush()

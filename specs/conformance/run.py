#!/usr/bin/env python3
"""Conformance runner: replays the spec vectors against an implementation through an adapter (a program that
speaks JSON lines on stdin/stdout, README.md in this folder), and reports pass/fail per spec point.

    python3 specs/conformance/run.py -- node specs/conformance/adapters/typescript.mjs
    python3 specs/conformance/run.py -- python3 specs/conformance/adapters/python.py
    python3 specs/conformance/run.py --json out.json --require-all -- <adapter command...>
    python3 specs/conformance/run.py --specs /tmp/specs -- <adapter command...>   # vectors from another specs/ tree

Exit status 0 when every check passed (and, with --require-all, none was skipped as unsupported), 1 otherwise.
The runner compares the adapter's answers with the vector files only: it computes nothing itself.
"""
import json
import os
import random
import struct
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
SPECS = os.path.join(ROOT, 'specs')


# every vector file a check read (spec folder/vectors/name): the runner fails a spec folder with a file no check read
READ = set()


def vec_path(spec, name):
    READ.add(f'{spec}/vectors/{name}')
    return os.path.join(SPECS, spec, 'vectors', name)


def vec(spec, name):
    with open(vec_path(spec, name), encoding='utf-8') as f:
        return json.load(f)


def vec_text(spec, name):
    with open(vec_path(spec, name), encoding='utf-8') as f:
        return f.read()


class Unsupported(Exception):
    pass


class Adapter:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding='utf-8', cwd=ROOT, bufsize=1)
        self.n = 0

    def __call__(self, op, **args):
        self.n += 1
        self.p.stdin.write(json.dumps({'id': self.n, 'op': op, **args}) + '\n')
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f'adapter exited (status {self.p.wait()}) during {op}')
        r = json.loads(line)
        if r.get('id') != self.n:
            raise RuntimeError(f'adapter answered id {r.get("id")} to request {self.n}')
        if r.get('unsupported'):
            raise Unsupported(op)
        return r

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


# ---- checks: each yields (spec point, case name, ok, detail) ----

def expect_error(r, name):
    return r.get('error') == name, f'expected error {name}, got {r}'


def ledger_checks(call):
    spec = 'ponw-ledger'
    genesis = vec(spec, 'genesis.json')

    # §2 keys, addresses, chain id, amounts; header: signatures
    r = call('ledger.chainId', genesis=genesis)
    cid = vec(spec, 'ledger.json')['chainId']
    yield '§2 chain id', 'genesis.json', r.get('chainId') == cid, r
    for name, w in vec(spec, 'keys.json')['wallets'].items():
        r = call('ledger.keys', secretKey=w['secretKey'])
        yield '§2 address', f'keys.json {name}', (r.get('publicKey'), r.get('address')) == (w['publicKey'], w['address']), r
    p = vec(spec, 'preimage.json')
    alice = vec(spec, 'keys.json')['wallets']['alice']['secretKey']
    r = call('ledger.txId', genesis=genesis, txBytes=p['txBytes'])
    yield '§2 message id', 'preimage.json digest', r.get('txId') == p['digest'], r
    r = call('ledger.voteDigest', genesis=genesis, txId=p['digest'])
    yield '§2 vote digest', 'preimage.json voteDigest', r.get('voteDigest') == p['voteDigest'], r
    r = call('ledger.sign', secretKey=alice, digest=p['digest'])
    yield 'signatures (RFC 6979, ECDSA hash sha256(d), low S)', 'preimage.json signature', r.get('signature') == p['signature'], r
    r = call('ledger.verify', signature=p['signature'], digest=p['digest'], publicKey=p['publicKey'])
    yield 'signatures (RFC 6979, ECDSA hash sha256(d), low S)', 'preimage.json verify', r.get('valid') is True, r
    for a in p['amounts']:
        r = call('ledger.amount', value=a['value'])
        yield '§2 amount', f'encode {a["value"]}', r.get('bytes') == a['bytes'], r
        r = call('ledger.amountDecode', bytes=a['bytes'])
        yield '§2 amount', f'decode {a["bytes"] or "(empty)"}', r.get('value') == a['value'], r
    for bad in ['0001', '01' + '00' * 16]:
        r = call('ledger.amountDecode', bytes=bad)
        yield '§2 amount', f'decode {bad} rejected', *expect_error(r, 'InvalidAmountError')

    # §5.1 canonical form
    e = vec(spec, 'encoding.json')
    for m in e['messages']:
        r = call('ledger.encodeTx', decoded=m['decoded'])
        yield '§5.1 canonical encoding', f'encode: {m["description"]}', r.get('txBytes') == m['txBytes'], r
        r = call('ledger.parseSignedTx', genesis=genesis, signedTx=m['signedTx'])
        yield '§5.1 canonical encoding', f'decode: {m["description"]}', (r.get('txId'), r.get('kind')) == (m['txId'], next(k for k in m['decoded'] if k not in ('version', 'chain_id', 'sender', 'sequence', 'epoch'))), r
    r = call('ledger.parseCertificate', genesis=genesis, certificate=e['certificate']['bytes'])
    yield '§5.1 canonical encoding', 'certificate votes sorted', r.get('validators') == [0, 1, 2], r

    # §5.2 / §5.3 rejections
    for c in vec(spec, 'invalid.json')['cases']:
        if 'signedTx' in c:
            r = call('ledger.parseSignedTx', genesis=genesis, signedTx=c['signedTx'])
        else:
            r = call('ledger.parseCertificate', genesis=genesis, certificate=c['certificate'])
        yield '§5.2 message rules (errors, §5.3 order)', c['description'], *expect_error(r, c['error'])

    # §6.2 evidence keys and designated reporters; §8 assignShards
    ev = vec(spec, 'evidence.json')
    for c in ev['evidence']:
        args = {k: c[k] for k in ('kind', 'validator', 'signedTxA', 'signedTxB', 'voteSigA', 'voteSigB') if k in c}
        r = call('ledger.evidence', genesis=genesis, **args)
        want = {'key': c['key'], 'offender': c.get('offender')} if c['key'] else {'key': None}
        got = {'key': r.get('key'), 'offender': r.get('offender')} if r.get('key') else {'key': None}
        yield '§6.2 evidence key', c['description'], got == want, r
    for c in ev['reporters']:
        r = call('ledger.reporter', genesis=genesis, key=c['key'], epoch=c['epoch'], offender=c['offender'])
        yield '§6.2 designated reporter', f'{c["key"][:20]}… @ {c["epoch"]}', r.get('reporter') == c['reporter'], r
    for c in ev['assignShards']:
        r = call('ledger.assignShards', genesis=genesis, address=c['address'], round=str(c['round']))
        yield '§8 assignShards', f'{c["address"][:8]}… round {c["round"]}', r.get('shards') == c['shards'], r

    # §7 state transition and §7.2 state hash, in several orders
    for f in ('ledger.json', 'state.json'):
        v = vec(spec, f)
        certs = [m['certificate'] for m in v['messages']]
        orders = [('given', certs), ('reversed', certs[::-1])] + [(f'shuffle {s}', random.Random(s).sample(certs, len(certs))) for s in range(3)]
        exp = v['expected']
        for oname, order in orders:
            r = call('ledger.state', genesis=genesis, certificates=order, addresses=sorted(exp['accounts']))
            accounts_ok = all({k: r.get('accounts', {}).get(addr, {}).get(k) for k in acc} == acc for addr, acc in exp['accounts'].items())
            yield '§7 state transition', f'{f} {oname}: accounts', accounts_ok, r.get('accounts')
            yield '§7 state transition', f'{f} {oname}: totals', r.get('totals') == exp['totals'], r.get('totals')
            if 'canonical' in exp:
                yield '§7.2 state hash', f'{f} {oname}: canonical state', r.get('canonical') == exp['canonical'], (r.get('canonical') or '')[:300]
            yield '§7.2 state hash', f'{f} {oname}: state hash', r.get('stateHash') == exp['stateHash'], r.get('stateHash')


def files(spec, prefix=''):
    d = os.path.join(SPECS, spec, 'vectors')
    return sorted(f for f in os.listdir(d) if f.endswith('.json') and f.startswith(prefix))


def framing_checks(call):
    # specs/README.md "Framing": a receiver reads `count` messages (the vector's, plus one when it names an error); rule 8:
    # whether it reset the stream
    for f in files('framing'):
        if f.startswith(('write-', 'body-')):
            continue
        v = vec('framing', f)
        count = len(v.get('messages', [])) + (1 if v.get('error') else 0)
        r = call('framing.read', stream=v['stream'], eof=v['eof'], maxMessageSize=v['maxMessageSize'], count=count, timeoutMs=v.get('timeoutMs', 5000))
        ok = r.get('messages') == v.get('messages', []) and r.get('error') == v.get('error')
        yield 'framing rules 1-8 (order of checks)', f, ok, r
        yield 'framing rule 8 (reset after a framing error)', f, r.get('reset') == v['reset'], r
    # rules 1-2: a sender writes the bodies in order, each after its minimal prefix, and stops at the first over the cap
    for f in files('framing', 'write-'):
        v = vec('framing', f)
        r = call('framing.write', messages=v['write'], maxMessageSize=v['maxMessageSize'])
        yield 'framing rules 1-2 (senders)', f, (r.get('written'), r.get('error')) == (v['written'], v['error']), r
    # rule 6: a complete message whose body is decoded as the vector's message (framing/README.md: EchoRequest)
    for f in files('framing', 'body-'):
        v = vec('framing', f)
        r = call('framing.readMessage', message=v['message'], body=v['body'])
        ok = r.get('error') == v['error'] if 'error' in v else r.get('decoded') == v['decoded']
        yield 'framing rule 6 (bodies: unknown fields, defaults, malformed)', f, ok and r.get('reset') == v['reset'], r


def host_checks(call):
    for f in files('host', 'swarm-key-'):
        v = vec('host', f)
        r = call('host.swarmKey', input=v['input'])
        if 'error' in v:
            yield 'host private swarms (swarm key)', f, *expect_error(r, v['error'])
        else:
            yield 'host private swarms (swarm key)', f, r.get('canonical') == v['canonical'], r
    for f in files('host', 'identity-'):
        v = vec('host', f)
        r = call('host.identity', fileHex=v['fileHex'], mode=v['mode'])
        if 'error' in v:
            yield 'host R3 identity key file', f, *expect_error(r, v['error'])
        else:
            yield 'host R3 identity key file', f, r.get('peerId') == v['peerId'], r
    for f in files('host', 'record-key-'):
        v = vec('host', f)
        r = call('host.recordKey', keyHex=v['keyHex'] if 'keyHex' in v else v['key'].encode('utf-8').hex())
        if 'error' in v:
            yield 'host DHT record keys', f, *expect_error(r, v['error'])
        else:
            yield 'host DHT record keys', f, (r.get('namespace'), r.get('recordId')) == (v['namespace'], v['id']), r
    for f in files('host', 'record-value-'):
        v = vec('host', f)
        r = call('host.recordValue', valueHex=v['valueHex'])
        if 'error' in v:
            yield 'host DHT record values', f, *expect_error(r, v['error'])
            continue
        yield 'host DHT record values', f'{f} (decode)', (r.get('sequence'), r.get('payloadHex')) == (v['sequence'], v['payloadHex']), r
        r = call('host.encodeRecordValue', sequence=v['sequence'], payloadHex=v['payloadHex'])
        yield 'host DHT record values', f'{f} (encode)', r.get('valueHex') == v['valueHex'], r
    for f in files('host', 'record-select-'):
        v = vec('host', f)
        r = call('host.recordSelect', key=v['key'], valuesHex=v['valuesHex'])
        yield 'host DHT record selection', f, r.get('best') == int(v['best']), r
    # decision rules (host 1.4.0): P6, R9 address filter, R22 delays, R21 join state
    for c in vec('host', 'gossip-messages.json')['cases']:
        r = call('host.gossipMessage', message=c['message'])
        want = {k: v for k, v in c.items() if k not in ('description', 'message')}
        yield 'host R13 StrictSign messages (checks in order, message id)', c['description'], {k: r.get(k) for k in want} == want, r
    for c in vec('host', 'p6-colocation.json')['cases']:
        r = call('host.p6', ip=c['ip'], peers=c['peers'], privateSwarm=c['privateSwarm'])
        yield 'host R20 P6 co-location penalty', c['description'], r.get('penalty') == c['penalty'], r
    for c in vec('host', 'dht-addresses.json')['cases']:
        r = call('host.dhtAddresses', filter=c['filter'], addrs=c['addrs'])
        yield 'host R9 DHT peer addresses kept', c['description'], r.get('kept') == c['kept'], r
    for c in vec('host', 'profile.json')['cases']:
        r = call('host.profile', options=c['options'])
        if 'error' in c:
            yield 'host profile (Protocol ids, R1, R2, R4, R6, R7, R13-R16, R18, R19)', c['description'], *expect_error(r, c['error'])
        else:
            p = r.get('profile') or {}
            yield 'host profile (Protocol ids, R1, R2, R4, R6, R7, R13-R16, R18, R19)', c['description'], {k: p.get(k) for k in c['expect']} == c['expect'], r
    for c in vec('host', 'join-delay.json')['cases']:
        r = call('host.joinDelay', attempt=c['attempt'], u=c['u'])
        yield 'host R22 join retry delay', c['description'], r.get('delayMs') == c['delayMs'], r
    for c in vec('host', 'join-rounds.json')['cases']:
        r = call('host.joinRounds', target=c['target'], events=[e['input'] for e in c['events']])
        got = r.get('states') or []
        for i, e in enumerate(c['events']):
            g = got[i] if i < len(got) else r
            yield 'host R21 join state (sequences)', f'{c["description"]}: event {i} ({e["input"]["event"]})', g == e['expect'] and len(got) == len(c['events']), g


def same_numbers(a, b):
    """element-wise equal, NaN equal to NaN, -0 distinct from 0 (numbers or "NaN"/"Infinity"/"-Infinity"/"-0")"""
    import math

    def num(x):
        return {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf, '-0': -0.0}.get(x, x) if isinstance(x, str) else float(x)
    if a is None or b is None or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = num(x), num(y)
        if not ((math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))):
            return False
    return True


def tensor_checks(call):
    for f in files('tensor-frame', 'convert-'):
        v = vec('tensor-frame', f)
        if v['format'] == 'int8':
            r = call('tensor.quantizeInt8', values=v['source'], blockSize=v['blockSize'])
            yield 'tensor-frame conversions (float16, bfloat16, int8 refusals)', f, *expect_error(r, v['error'])
            continue
        r = call('tensor.convert', format=v['format'], float32Bits=v['float32Bits'], overflow='error')
        if 'error' in v:
            yield 'tensor-frame conversions (float16, bfloat16, int8 refusals)', f, *expect_error(r, v['error'])
            r = call('tensor.convert', format=v['format'], float32Bits=v['float32Bits'], overflow='infinity')
            yield 'tensor-frame conversions (float16, bfloat16, int8 refusals)', f'{f} (overflow to infinity)', r.get('bits') == v['bitsWithInfinity'], r
        elif v['bits'] == 'NaN':
            b = r.get('bits')
            # "any quiet NaN": exponent all ones, the mantissa's top bit set
            yield 'tensor-frame conversions (float16, bfloat16, int8 refusals)', f, isinstance(b, int) and (b & 0x7e00) == 0x7e00, r
        else:
            yield 'tensor-frame conversions (float16, bfloat16, int8 refusals)', f, r.get('bits') == v['bits'], r
    for f in files('tensor-frame'):
        if f.startswith('convert-') or f == 'encoding.json':
            continue
        v = vec('tensor-frame', f)
        args = {'frame': v['frame']}
        if 'maxBytes' in v:
            args['maxBytes'] = int(v['maxBytes'])
        r = call('tensor.decode', **args)
        if 'error' in v:
            yield 'tensor-frame rejections', f, *expect_error(r, v['error'])
            continue
        ok = (r.get('dtype'), r.get('shape'), r.get('name'), r.get('hash')) == (v['dtype'], v['shape'], v.get('name'), v['hash'])
        if v['dtype'] in ('float16', 'bfloat16'):
            ok = ok and r.get('bits') == v['bits']
        elif v['dtype'] == 'int64':
            ok = ok and [str(x) for x in r.get('values', [])] == [str(x) for x in v['values']]
        else:
            ok = ok and same_numbers(r.get('values'), v.get('values', []))
        if v['dtype'] == 'int8':
            ok = ok and r.get('blockSize') == v['blockSize'] and same_numbers(r.get('scales'), v['scales'])
        yield 'tensor-frame decoding and content hash', f, ok, r
        if v['dtype'] == 'int8' and 'source' in v:
            r = call('tensor.quantizeInt8', values=v['source'], blockSize=v['blockSize'])
            yield 'tensor-frame int8 quantization', f, r.get('values') == v['values'] and same_numbers(r.get('scales'), v['scales']), r
    # encoding.json (encoding.py): "Encoding rules", the one frame of a tensor, or the encoder's refusal
    for c in vec('tensor-frame', 'encoding.json')['cases']:
        r = call('tensor.encode', tensor=c['tensor'])
        if 'error' in c:
            yield 'tensor-frame encoding (one frame per tensor, refusals)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'tensor-frame encoding (one frame per tensor, refusals)', c['name'], r.get('frame') == c['frame'], r


def tokenizer_checks(call):
    tj = vec_text('tokenizer', 'tokenizer.json')
    for f in files('tokenizer', 'pretokenize-'):
        v = vec('tokenizer', f)
        r = call('tokenizer.pretokenize', text=v['text'])
        yield 'tokenizer pre-tokenization', f, r.get('pieces') == v['pieces'], r
    for f in files('tokenizer', 'encode-'):
        v = vec('tokenizer', f)
        r = call('tokenizer.encode', tokenizerJson=tj, text=v['text'], allowSpecial=v.get('allowSpecial', False), addBos=v.get('addBos', False), addEos=v.get('addEos', False))
        yield 'tokenizer encoding (merges, special tokens)', f, r.get('ids') == v['ids'], r
    for f in files('tokenizer', 'decode-'):
        v = vec('tokenizer', f)
        r = call('tokenizer.decode', tokenizerJson=tj, ids=v['ids'], skipSpecialTokens=v.get('skipSpecialTokens', False))
        if 'error' in v:
            yield 'tokenizer decoding', f, *expect_error(r, v['error'])
        else:
            yield 'tokenizer decoding', f, (r.get('bytesHex'), r.get('text')) == (v['bytesHex'], v['text']), r
    for f in files('tokenizer', 'invalid-'):
        v = vec('tokenizer', f)
        r = call('tokenizer.load', tokenizerJson=json.dumps(v['tokenizerJson']))
        yield 'tokenizer.json subset (refusals)', f, *expect_error(r, v['error'])


def ledger_conflict_checks(call):
    genesis = vec('ponw-ledger', 'genesis.json')
    v = vec('ponw-ledger', 'conflict.json')
    for c in v['cases']:
        r = call('ledger.state', genesis=genesis, certificates=[v['messages'][k]['certificate'] for k in c['order']], addresses=[])
        yield '§7 two final messages for one slot', ' → '.join(c['order']), (r.get('canonical'), r.get('stateHash')) == (c['expected']['canonical'], c['expected']['stateHash']), r.get('canonical')


def ledger_proof_checks(call):
    v = vec('ponw-ledger', 'proofs.json')
    shards = []
    for i, sh in enumerate(v['shards']):
        samples = [x.encode('utf-8').hex() for x in sh['samples']]
        r = call('ledger.merkleRoot', samples=samples)
        yield '§8 data Merkle tree', f'shard {i} root ({len(samples)} samples)', r.get('root') == sh['root'], r
        for p in sh['paths']:
            r = call('ledger.merkleProof', samples=samples, index=p['index'])
            yield '§8 data Merkle tree', f'shard {i} path of leaf {p["index"]}', r.get('path') == p['path'], r
            r = call('ledger.verifyMerkleProof', root=sh['root'], count=len(samples), index=p['index'], sample=samples[p['index']], path=p['path'])
            yield '§8 data Merkle tree', f'shard {i} opening of leaf {p["index"]} verifies', r.get('valid') is True, r
            r = call('ledger.verifyMerkleProof', root=sh['root'], count=len(samples), index=p['index'], sample=samples[p['index']] + '00', path=p['path'])
            yield '§8 data Merkle tree', f'shard {i} opening of leaf {p["index"]} with a changed sample fails', r.get('valid') is False, r
        shards.append({'hash': sh['root'], 'samples': str(len(samples))})
    r = call('ledger.manifestHash', shards=shards)
    yield '§8 data manifest hash', 'proofs.json manifestHash', r.get('manifestHash') == v['manifestHash'], r
    for c in v['challenges']:
        r = call('ledger.challengeIndexes', proofId=c['proofId'], secret=c['secret'], count=c['count'], k=c['k'])
        yield '§8 data challenge indexes', f'count {c["count"]}, k {c["k"]}', r.get('indexes') == c['indexes'], r
    for c in v['batchSamples']:
        r = call('ledger.sampleBatches', proofId=c['proofId'], salt=c['salt'], batches=c['batches'], samples=c['samples'])
        yield '§8 re-execution sampling', f'batches {c["batches"]}, samples {c["samples"]}, salt {c["salt"][:8] or "(empty)"}', r.get('indexes') == c['indexes'], r
    for c in v['segmentSamples']:
        r = call('ledger.sampleSegments', proofId=c['proofId'], salt=c['salt'], segments=c['segments'], count=c['count'])
        yield '§8 re-execution sampling', f'segments {c["segments"]}, count {c["count"]}', r.get('indexes') == c['indexes'], r


def ledger_identity_checks(call):
    v = vec('ponw-ledger', 'identity.json')
    for c in v['keystores']:
        r = call('ledger.keystoreDecrypt', file=c['file'], passphrase=c['passphrase'])
        if 'error' in c:
            yield '§4 keystore', c['description'], *expect_error(r, c['error'])
        else:
            yield '§4 keystore', c['description'], r.get('address') == c['address'], r
    for c in v['bindings']:
        r = call('ledger.verifyBinding', binding=c['binding'])
        if 'error' in c:
            yield '§3 identity binding', c['description'], *expect_error(r, c['error'])
        else:
            yield '§3 identity binding', c['description'], r.get('address') == c['address'], r


def ledger_wire_checks(call):
    for m in vec('ponw-ledger', 'wire.json')['messages']:
        r = call('ledger.decodeMessage', message=m['message'], bytes=m['bytes'])
        ok = r.get('decoded') == m['decoded'] and r.get('reencoded') == m['bytes']
        yield '§9-§10 gossip, sync, challenge and weights messages', f'{m["message"]}: {m["description"]}', ok, r


def ledger_genesis_checks(call):
    for c in vec('ponw-ledger', 'genesis-cases.json')['cases']:
        r = call('ledger.chainId', genesis=c['genesis'])
        if 'error' in c:
            yield '§12 genesis validation', c['description'], *expect_error(r, c['error'])
        else:
            yield '§2 chain id', c['description'], r.get('chainId') == c['chainId'], r


def ledger_checkpoint_checks(call):
    """checkpoints.md §2 (snapshot, snapshot hash, height, checkpoint digest; any order of the final messages) and C2"""
    genesis = vec('ponw-ledger', 'genesis.json')
    v = vec('ponw-ledger', 'checkpoints.json')
    e = v['expected']
    certs = v['certificates']
    for oname, order in [('given', certs), ('reversed', certs[::-1]), ('shuffle 0', random.Random(0).sample(certs, len(certs)))]:
        r = call('ledger.checkpoint', genesis=genesis, certificates=order)
        ok = (r.get('snapshot'), r.get('snapshotHash'), r.get('height'), r.get('checkpointDigest')) == (e['snapshot'], e['snapshotHash'], e['height'], e['checkpointDigest'])
        yield 'checkpoints §2 snapshot, hash, height, digest', f'checkpoints.json {oname}', ok, {k: str(x)[:200] for k, x in r.items()}
    r = call('ledger.verifyCheckpoint', genesis=genesis, certificate=e['certificate'], snapshot=e['snapshot'])
    yield 'checkpoints C2 certified checkpoint (errors, in order)', 'the certificate over the snapshot verifies', r.get('validators') == [0, 1, 2], r
    for c in v['invalid']['cases']:
        r = call('ledger.verifyCheckpoint', genesis=genesis, certificate=c['certificate'], snapshot=c['snapshot'])
        yield 'checkpoints C2 certified checkpoint (errors, in order)', c['description'], *expect_error(r, c['error'])
    # C3: an install refused leaves the node's frontier as it was; an install gives the snapshot's frontier (the
    # snapshot's accounts with nextSeq > 0, read off the vector's text)
    pairs = {'expected': (e['certificate'], e['snapshot'])}
    for c in v['install']['cases']:
        r = call('ledger.installCheckpoint', genesis=genesis, applied=c['applied'], installs=[{'certificate': pairs[n][0], 'snapshot': pairs[n][1]} for n in c['installs']],
                 after=c.get('after', []))
        got, before = r.get('outcomes') or [], r.get('frontier')
        for i, (n, err) in enumerate(zip(c['installs'], c['errors'])):
            g = got[i] if i < len(got) else {}
            after = before if err else {a: int(x['nextSeq']) for a, x in json.loads(pairs[n][1])['accounts'].items() if int(x['nextSeq'])}
            yield 'checkpoints C3 installing a checkpoint (conflicts)', f'{c["description"]} (install {i})', (g.get('error'), g.get('frontier')) == (err, after) and before is not None, g
            before = g.get('frontier')
        if 'after' in c:
            yield 'checkpoints C5 final messages after an install', c['description'], r.get('snapshotHash') == c['afterSnapshotHash'], r

    # derive.json (gen-derive.py): C1/C4, what a validator re-derives before it signs a proposed checkpoint
    d = vec('ponw-ledger', 'derive.json')
    for c in d['cases']:
        r = call('ledger.deriveCheckpoint', genesis=genesis, applied=[certs[i] for i in c['applied']], base=({'certificate': e['certificate'], 'snapshot': e['snapshot']} if c.get('base') == 'expected' else None), proposal=c['proposal'])
        if 'error' in c:
            yield 'checkpoints C1, C4 deriving a proposal (errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'checkpoints C1, C4 deriving a proposal (errors, in order)', c['name'], r.get('snapshotHash') == c['snapshotHash'], r


def ledger_validator_checks(call):
    # validator.json (gen-validator.py): README §6.1 as sequences (signed, or the refusal in the order of 1.1.0)
    v = vec('ponw-ledger', 'validator.json')
    genesis = vec('ponw-ledger', 'genesis.json')
    for q in v['sequences']:
        r = call('ledger.validator', genesis=genesis, secretKey=v['secretKey'], steps=without_expect(q['steps']))
        yield from sequence_checks('§6.1 validator rule (signed or refused, in order)', q, 'steps', r, ('signed', 'error'),
                                   lambda i, s: f'step {i} ({s["op"]})')
    s = vec('ponw-ledger', 'sync.json')
    for q in s['cases']:
        r = call('ledger.sync', genesis=genesis, known=q['known'], limit=s['limit'], pages=q['pages'])
        got = r.get('outcomes')
        yield '§10 sync sessions (page checks, §6.3 bound)', q['name'], got == q['expect'], r
    t = v['training']
    for c in t['cases']:
        r = call('ledger.trainingCheck', genesis=genesis, final=c['final'], proof=c['proof'], nowMs=t['nowMs'], accepted=c['accepted'], verdict=c['verdict'])
        if 'error' in c:
            yield '§8 training checks (rules 1, 3, 4; errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§8 training checks (rules 1, 3, 4; errors, in order)', c['name'], r.get('valid') is True, r


def ledger_all(call):
    yield from ledger_genesis_checks(call)
    yield from ledger_checks(call)
    yield from ledger_conflict_checks(call)
    yield from ledger_proof_checks(call)
    yield from ledger_identity_checks(call)
    yield from ledger_wire_checks(call)
    yield from ledger_checkpoint_checks(call)
    yield from ledger_validator_checks(call)


def model_checks(call):
    for f in files('model', 'scaling-'):
        v = vec('model', f)
        r = call('model.scaling', nodes=v['nodes'], totalMemoryBytes=v['totalMemoryBytes'])
        if 'error' in v:
            yield 'model scaling rule', f, *expect_error(r, v['error'])
        else:
            yield 'model scaling rule', f, (r.get('architecture'), r.get('parameters')) == (v['architecture'], v['parameters']), r
    for f in files('model', 'config-'):
        v = vec('model', f)
        r = call('model.validateConfig', config=v['config'])
        if 'error' in v:
            yield 'model configuration', f, *expect_error(r, v['error'])
        else:
            yield 'model configuration', f, r.get('config') == v['config'], r
    for f in files('model', 'checkpoint-'):
        v = vec('model', f)
        args = {k: v[k] for k in ('expectConfig', 'expectRole', 'expectContentHash') if k in v}
        r = call('model.decodeCheckpoint', fileHex=v['fileHex'], **args)
        if 'error' in v:
            yield 'model checkpoints (rejections)', f, *expect_error(r, v['error'])
        else:
            want = {k: v[k] for k in ('config', 'role', 'step', 'metadata', 'contentHash')}
            got = {k: r.get(k) for k in want}
            yield 'model checkpoints (decode, re-encode byte for byte)', f, got == want and r.get('reencoded') == v['fileHex'], r


def genesis_data_checks(call):
    manifest = vec('genesis-data', 'vectors.json')['manifest']
    for f in files('genesis-data', 'manifest-'):
        v = vec('genesis-data', f)
        r = call('genesisData.validateManifest', manifest=v['manifest'])
        if 'error' in v:
            yield 'genesis-data manifest', f, *expect_error(r, v['error'])
        else:
            yield 'genesis-data manifest', f, r.get('manifest') == v['manifest'], r
    for f in files('genesis-data', 'shard-'):
        v = vec('genesis-data', f)
        m = vec('genesis-data', v['manifest'])['manifest'] if isinstance(v.get('manifest'), str) else v.get('manifest')
        r = call('genesisData.loadShard', name=v['name'], shardHex=v['shardHex'], **({} if m is None else {'manifest': m}))
        if 'error' in v:
            yield 'genesis-data shard files', f, *expect_error(r, v['error'])
        else:
            yield 'genesis-data shard files', f, r.get('tokens') == v['tokens'], r
    for f in files('genesis-data', 'assign-'):
        v = vec('genesis-data', f)
        r = call('genesisData.assignShards', manifest=manifest, peerId=v['peerId'], round=str(v['round']), k=v['k'], split=v.get('split'))
        if 'error' in v:
            yield 'genesis-data assignment', f, *expect_error(r, v['error'])
        else:
            yield 'genesis-data assignment', f, r.get('shards') == v['shards'], r
    yield from genesis_data_build_checks(call)


def genesis_data_build_checks(call):
    """vectors.json: corpus.jsonl + tokenizer.json built with its settings (Building 1-2), the assignments, the shuffle
    stream and a window order (Batches); nlp-corpus.json: the nlp-corpus source (Definitions)"""
    v = vec('genesis-data', 'vectors.json')
    docs = [json.loads(line)['text'] for line in vec_text('genesis-data', 'corpus.jsonl').split('\n') if line.strip()]
    tj = vec_text('genesis-data', 'tokenizer.json')
    threshold = v['manifest']['settings']['validationThreshold']
    for i, d in enumerate(docs):
        r = call('genesisData.documentSplit', document=d, validationThreshold=threshold)
        yield 'genesis-data build (split, tokens)', f'corpus.jsonl document {i}: split', r.get('split') == v['documentSplits'][i], r
        r = call('tokenizer.encode', tokenizerJson=tj, text=d, allowSpecial=False, addBos=False, addEos=False)
        yield 'genesis-data build (split, tokens)', f'corpus.jsonl document {i}: tokens (vectors/tokenizer.json)', r.get('ids') == v['documentTokens'][i], r
    for a in v['assignments']:
        r = call('genesisData.assignShards', manifest=v['manifest'], peerId=a['peerId'], round=str(a['round']), k=a['k'])
        yield 'genesis-data assignment', f'vectors.json {a["peerId"]} round {a["round"]} k {a["k"]}', r.get('shards') == a['shards'], r
    sh = v['shuffle']
    r = call('genesisData.shuffleWords', seed=sh['seed'], count=len(sh['firstU32']))
    yield 'genesis-data batches (shuffle)', f'first words of seed {sh["seed"]}', r.get('words') == sh['firstU32'], r
    wo = sh['windowOrder']
    r = call('genesisData.windowOrder', shardLengths=wo['shardLengths'], seqLen=wo['seqLen'], seed=sh['seed'])
    yield 'genesis-data batches (shuffle)', f'window order of {wo["shardLengths"]}, L {wo["seqLen"]}', r.get('order') == wo['order'], r
    n = vec('genesis-data', 'nlp-corpus.json')
    r = call('genesisData.nlpCorpus')
    want = {k: n[k] for k in ('documents', 'sha256', 'first', 'document1000', 'last')}
    yield 'genesis-data nlp-corpus source', f'{n["package"]}@{n["version"]}', {k: r.get(k) for k in want} == want, {k: r.get(k) for k in want}


# ---- layer-pool, pipeline, swarm-router, diloco ----

def holdings_of(c):
    return [{'peer': p, 'start': s, 'end': e, 'state': st, 'throughput': t, 'claimedAt': ca} for p, s, e, st, t, ca in c['holdings']]


def layer_pool_checks(call):
    spec = 'layer-pool'
    for c in vec(spec, 'assignment.json')['cases']:
        args = dict(holdings=holdings_of(c), slots=c['slots'], nowMs=c['now_ms'], loadingGraceMs=c['loading_grace_ms'], minReplicas=c['min_replicas'])
        if 'view' in c or 'under_replicated' in c:
            r = call('layerPool.view', **args)
            ok = ('view' not in c or r.get('view') == c['view']) and ('under_replicated' not in c or r.get('underReplicated') == c['under_replicated'])
            yield '§5.1 view (live, pending, throughput)', c['name'], ok, r
        if 'choose' in c:
            r = call('layerPool.chooseSpan', **args, costs=c['costs'], budget=c['budget'])
            yield '§5.3-§5.4 span choice (candidates, order)', c['name'], 'span' in r and r['span'] == c['choose'], r
    ch = vec(spec, 'chunks.json')
    for c in ch['cases']:
        r = call('layerPool.chunks', tensors=c['tensors'], chunkSize=c['chunkSize'])
        ok = (r.get('canonicalOrder'), r.get('stream'), r.get('totalBytes')) == (c['canonicalOrder'], c['stream'], c['totalBytes'])
        yield 'transfer §1 canonical byte stream', c['name'], ok, r
        yield 'transfer §1 chunk hashes and chunks root', c['name'], (r.get('chunkHashes'), r.get('chunksRoot')) == (c['chunkHashes'], c['chunksRoot']), r
        yield 'transfer §1 weights hash', c['name'], r.get('weightsHash') == c['weightsHash'], r
    # quant.json (gen-quant.py): the weights a quantized span multiplies (§2.4 rules 2-3)
    for c in vec(spec, 'quant.json')['cases']:
        r = call('layerPool.dequantized', **{k: c[k] for k in ('format', 'blockSize', 'rows', 'cols', 'groupsAlong', 'values')})
        yield '§2.4 quantized weights (groups, int4 Q4_0 and int8 rules)', c['name'], r.get('dequantized') == c['dequantized'], {k: v for k, v in r.items() if k != 'dequantized'}
    # transfer.json (gen-transfer.py): a weight-transfer server's answers (R4 reset, R5 BAD_REQUEST, R6 NOT_FOUND, R8 OK)
    tr = vec(spec, 'transfer.json')
    for c in tr['cases']:
        r = call('layerPool.serve', request=c['request'], holds=tr['holds'], chunkSize=tr['chunkSize'], maxChunksPerRequest=tr['maxChunksPerRequest'])
        if c.get('reset'):
            ok = r.get('reset') is True
        else:
            ok = (not r.get('reset') and (r.get('status'), r.get('manifest'), r.get('chunkCount'), r.get('chunks')) == (c['status'], c['manifest'], c['chunkCount'], c['chunks'])
                  and (c['status'] == 'OK') != bool(r.get('message')))
        yield 'transfer §3, R4-R8 server answers (reset, BAD_REQUEST, NOT_FOUND, OK: manifest and chunks)', c['name'], ok, r
    for q in tr['serveSequences']['cases']:
        r = call('layerPool.serveSequence', steps=[{'holds': st['holds'], 'request': st['request']} for st in q['steps']], chunkSize=tr['chunkSize'],
                 maxChunksPerRequest=tr['maxChunksPerRequest'])
        got = r.get('answers') if isinstance(r.get('answers'), list) and len(r['answers']) == len(q['steps']) else None
        for i, st in enumerate(q['steps']):
            a = got[i] if got is not None else r
            ok = got is not None and (not a.get('reset') and (a.get('status'), a.get('manifest'), a.get('chunkCount'), a.get('chunks')) == (st['status'], st['manifest'], st['chunkCount'], st['chunks'])
                                      and (st['status'] == 'OK') != bool(a.get('message')))
            yield 'transfer R9 a server across content changes (sequences)', f'{q["name"]}: step {i}', ok, a
    f = tr['fetch']
    for c in f['cases']:
        r = call('layerPool.fetch', expected=c['expected'], config=f['config'], chunkSize=f['chunkSize'], replica=c['replica'])
        keys = ('weightsHash', 'error', 'fault', 'misbehaved')
        want = {k: c[k] for k in keys if k in c}
        point = 'transfer R10-R14 requester (manifest, chunks, weights hash; the dropped replica\'s fault)'
        if 'resume' in c['replica']:
            point = 'transfer R15 resuming (chunks taken over re-verified, same chunks root only)'
        elif c.get('fault') == 'rejected':
            point = 'transfer R3, R13 BUSY and other refusals are not misbehaviour'
        yield point, c['name'], {k: r[k] for k in keys if k in r} == want, r
    for c in tr['fetchMany']['cases']:
        r = call('layerPool.fetchMany', expected=c['expected'], config=f['config'], chunkSize=f['chunkSize'], replicas=c['replicas'])
        want = {k: c[k] for k in ('weightsHash', 'error') if k in c}
        yield 'transfer R13 several replicas (a dropped replica\'s chunks fetched from the others)', c['name'], {k: r[k] for k in ('weightsHash', 'error') if k in r} == want, r
    # targets.json (gen-targets.py): §6 votes, target and the source of a slot's weights; the re-check after loading; §6.1 catching up
    tg = vec(spec, 'targets.json')
    for c in tg['sources']:
        r = call('layerPool.slotSource', records=c['records'], slot=1, genesisHash=tg['genesisHash'], avoid=c['avoid'])
        ok = (r.get('source'), r.get('target'), sorted(r.get('replicas') or [])) == (c['source'], c['target'], sorted(c['replicas']))
        yield '§6 loading a slot (votes, target, genesis / transfer / wait)', c['name'], ok, r
    for c in tg['loads']['cases']:
        r = call('layerPool.loadSpan', slots=[1, 2, 3], genesis=tg['loads']['genesis'], resolve=c['resolve'], recheck=c['recheck'], avoid=[])
        yield '§6 loading a span (the re-check of genesis slots)', c['name'], (r.get('sources'), r.get('fetchAgain', 'absent')) == (c['sources'], c['fetchAgain']), r
    for q in tg['catchUp']['cases']:
        r = call('layerPool.catchUp', graceMs=tg['catchUp']['graceMs'], heartbeats=without_expect(q['heartbeats']))
        yield from sequence_checks('§6.1 catching up (sequences)', q, 'heartbeats', r, ('behind', 'fetch'), lambda i, b: f'heartbeat {i} (t {b["nowMs"]})')
    v = vec(spec, 'records.json')
    r = call('layerPool.peerId', ed25519Seed=v['key']['ed25519_seed'])
    yield '§2.1 signed envelope (RFC 0002)', 'key: peer id of the seed', (r.get('peerId'), r.get('publicKeyProtobuf')) == (v['key']['peer_id'], v['key']['public_key_protobuf']), r
    rec = v['record']
    r = call('layerPool.signRecord', ed25519Seed=v['key']['ed25519_seed'], peerId=v['key']['peer_id'], fields=rec['fields'])
    yield '§2.1 signed envelope (RFC 0002)', 'record signed from its fields (canonical payload, deterministic signature)', r.get('envelope') == rec['envelope_hex'], r
    yield '§2.3 DHT key', 'record DHT key', r.get('dhtKey') == rec['dht_key'], r
    r = call('layerPool.openRecord', envelope=rec['envelope_hex'], nowMs=v['now_ms'])
    yield '§2.2 record rules (errors, in order)', 'the valid record opens to its fields', (r.get('peerId'), r.get('fields')) == (v['key']['peer_id'], rec['fields']), r
    for c in v['invalid']:
        r = call('layerPool.openRecord', envelope=c['envelope_hex'], nowMs=c.get('now_ms', v['now_ms']))
        yield '§2.2 record rules (errors, in order)', c['name'], *expect_error(r, c['error'])
    a = v['architecture']
    r = call('layerPool.openArchitecture', envelope=a['envelope_hex'], authorities=[a['authority_peer_id']], parent=a['parent'])
    yield '§7 architecture versions', 'a signed growth of the parent opens to its fields', r.get('fields') == a['fields'], r
    for c in a.get('invalid', []):
        r = call('layerPool.openArchitecture', envelope=c['envelope_hex'], authorities=c.get('authorities', [a['authority_peer_id']]), parent=c.get('parent', a['parent']))
        yield '§7 architecture versions', c['name'], *expect_error(r, c['error'])
    # rules.json: one case per MUST rule (gen-rules.mjs)
    v = vec(spec, 'rules.json')
    for c in v['records']:
        r = call('layerPool.openRecord', envelope=c['envelope_hex'], nowMs=c['now_ms'], **({'slotCount': c['slot_count']} if 'slot_count' in c else {}))
        if 'error' in c:
            yield '§2.2 record rules (errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§2.2 record rules (errors, in order)', c['name'], (r.get('peerId'), r.get('fields')) == (v['key']['peer_id'], c['fields']), r
    for c in v['dht']:
        r = call('layerPool.validateDhtRecord', key=c['key'], value=c['value_hex'], nowMs=c['now_ms'])
        if 'error' in c:
            yield '§2.3 DHT value and key', c['name'], *expect_error(r, c['error'])
        else:
            yield '§2.3 DHT value and key', c['name'], r.get('valid') is True, r
    arch = v['architecture']
    for c in arch['cases']:
        r = call('layerPool.openArchitecture', envelope=c['envelope_hex'], authorities=c['authorities'], parent=arch['parent'], **({'limits': c['limits']} if 'limits' in c else {}))
        if 'error' in c:
            yield '§7 architecture versions', c['name'], *expect_error(r, c['error'])
        else:
            yield '§7 architecture versions', c['name'], r.get('fields') == c['fields'], r


def without_defaults(v):
    """a decoded message with its proto3 default values (0, false, '', empty lists and messages) left out, so that
    adapters may list them or not"""
    if isinstance(v, dict):
        out = {k: without_defaults(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in (0, False, '', [], {}, None) or isinstance(x, float) and x != 0}
    if isinstance(v, list):
        return [without_defaults(x) for x in v]
    return v


def without_expect(steps):
    return [{k: x for k, x in s.items() if k != 'expect'} for s in steps]


def sequence_checks(point, q, key, r, fields, label):
    """one check per step of a sequence: the adapter's outcome after the step (`fields`, absent = None) equals `expect`"""
    got = r.get('outcomes') or []
    for i, s in enumerate(q[key]):
        g = got[i] if i < len(got) else {}
        ok = {k: g.get(k) for k in fields} == {k: s['expect'].get(k) for k in fields}
        yield point, f'{q["name"][:60]}… {label(i, s)}', ok, g


def pipeline_checks(call):
    s = vec('pipeline', 'sampling.json')
    for d in s['draws']:
        r = call('pipeline.draw', seed=str(d['seed']), position=d['position'])
        yield '§6 splitmix64 draw', f'seed {d["seed"]} position {d["position"]}', (r.get('splitmix64'), r.get('u')) == (d['splitmix64'], d['u']), r
    for c in s['cases']:
        r = call('pipeline.sample', logits=s['logits'], temperature=c['temperature'], topK=c['topK'], topP=c['topP'], seed=str(c['seed']), position=c['position'])
        yield '§6 sampling (greedy, temperature, top-k, top-p)', f'T {c["temperature"]} k {c["topK"]} p {c["topP"]} seed {c["seed"]} pos {c["position"]}', r.get('token') == c['token'], r
    sp = vec('pipeline', 'speculative.json')
    for d in sp['accept_draws']:
        r = call('pipeline.acceptDraw', seed=str(d['seed']), position=d['position'])
        yield '§6.1 draft acceptance draw', f'seed {d["seed"]} position {d["position"]}', r.get('a') == d['a'], r
    for c in sp['cases']:
        r = call('pipeline.verifyDraft', rows=sp['rows'][:len(c['draft']) + 1], draft=c['draft'], temperature=c['temperature'], topK=c['topK'],
                 topP=c['topP'], seed=str(c['seed']), first=c['first'])
        name = f'T {c["temperature"]} k {c["topK"]} p {c["topP"]} seed {c["seed"]} first {c["first"]} draft {[d["token"] for d in c["draft"]]}{" sampled" if c["draft"][0]["ids"] else ""}'
        yield '§6.1 draft verification (accepted prefix, own token)', name, r.get('tokens') == c['tokens'], r
    se = vec('pipeline', 'sessions.json')
    for q in se['sequences']:
        r = call('pipeline.sessions', stage=se['stage'], limits=se['limits'], steps=without_expect(q['steps']))
        yield from sequence_checks('§5 rules 3-5, 13 sessions (sequences)', q, 'steps', r, ('error', 'holds', 'bytes'),
                                   lambda i, s: f'step {i} ({s["op"]} {s["session"]} {s.get("position", "")})')
    tr = vec('pipeline', 'training.json')
    for q in tr['sequences']:
        r = call('pipeline.training', step=q['step'], maxMicroBatches=q['maxMicroBatches'], ops=without_expect(q['ops']))
        yield from sequence_checks('§5 rule 7 training requests (sequences)', q, 'ops', r, ('error', 'loss', 'accumulated', 'step'),
                                   lambda i, o: f'op {i} ({o["op"]} step {o["step"]} {o.get("microBatch", "")})')
    dr = vec('pipeline', 'drafts.json')
    for c in dr['cases']:
        # {"token": t, "uniformIds": n}: ids 0 … n − 1, each with probability 1/n
        draft = [{'token': d['token'], 'ids': list(range(d['uniformIds'])), 'probs': [1 / d['uniformIds']] * d['uniformIds']} if 'uniformIds' in d else d for d in c['draft']]
        r = call('pipeline.draft', position=c['position'], draft=draft, vocabSize=c['vocabSize'], maxSeqLen=dr['maxSeqLen'], head=c.get('head', True))
        if 'error' in c:
            yield '§5 rule 14 drafts (refusals)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§5 rule 14 drafts (refusals)', c['name'], r.get('valid') is True, r
    m = vec('pipeline', 'messages.json')
    for c in m['requests']:
        r = call('pipeline.encodeRequest', fields=c['fields'])
        yield '§3 Request encoding (canonical proto3)', f'encode {c["name"]}', r.get('bytes') == c['bytes'], r
        r = call('pipeline.decodeRequest', bytes=c['bytes'])
        yield '§3 Request encoding (canonical proto3)', f'decode {c["name"]}', without_defaults(r.get('fields')) == without_defaults(c['fields']), r
    for c in m['responses']:
        r = call('pipeline.decodeResponse', bytes=c['bytes'])
        yield '§3 Response encoding (canonical proto3)', f'decode {c["name"]}', without_defaults(r.get('fields')) == without_defaults(c['fields']) and r.get('reencoded') == c['bytes'], r
    # rules.json (gen-rules.mjs): §5 rule 1 routes, rule 2 activation and targets frames (§3 zlib streams)
    v = vec('pipeline', 'rules.json')
    for c in v['activations']:
        r = call('pipeline.decodeActivation', bytes=c['bytes'], limits=c['limits'])
        if 'error' in c:
            yield '§5 rule 2 activation frames (§3 deflate)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§5 rule 2 activation frames (§3 deflate)', c['name'], (r.get('shape'), r.get('values')) == (c['shape'], c['values']), r
    for c in v['targets']:
        r = call('pipeline.decodeTargets', bytes=c['bytes'], limits=c['limits'])
        if 'error' in c:
            yield '§5 rule 2 targets frames', c['name'], *expect_error(r, c['error'])
        else:
            yield '§5 rule 2 targets frames', c['name'], (r.get('shape'), r.get('ids')) == (c['shape'], c['ids']), r
    ts = v['tiedSteps']
    for c in ts['cases']:
        r = call('pipeline.tiedStep', tiedIds=c['tiedIds'], tied=c['tied'], adamw=c['adamw'], step=ts['step'], vocabSize=ts['vocabSize'], dModel=ts['dModel'],
                 hasTied=not c.get('noTiedParameter', False))
        if 'error' in c:
            yield '§5 rule 12 tied STEP rows (refusals)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§5 rule 12 tied STEP rows (refusals)', c['name'], r.get('ids') == c['ids'], r
    # relay.json (by hand): §5 rule 6, a server hop whose hop + 1 cannot be reached or answers an error
    rl = vec('pipeline', 'relay.json')
    for c in rl['cases']:
        r = call('pipeline.relay', hops=c['hops'], hop=c['hop'], next=c['next'])
        keys = ('error', 'message', 'failedHop') if c['answer']['error'] != '' and 'message' in c['answer'] else ('error', 'failedHop') if c['answer']['error'] != '' else ('error', 'loss')
        yield '§5 rule 6 hop failures and downstream errors (passed back unchanged)', c['name'], {k: r.get(k) for k in keys} == {k: c['answer'][k] for k in keys}, r
    # mirror.json (by hand): §5 rule 15, a mirror INFER at a standby (refused with direct, draft_count or standbys; blocks only)
    mr = vec('pipeline', 'mirror.json')
    for c in mr['cases']:
        r = call('pipeline.mirror', stage=c['stage'], request=c['request'])
        yield '§5 rule 15 mirror INFERs (refusals, blocks only)', c['name'], {k: r.get(k) for k in c['answer']} == c['answer'], r
    # quiet.json (by hand): §5 rule 17, what a node writes back on a session stream
    qt = vec('pipeline', 'quiet.json')
    for c in qt['cases']:
        r = call('pipeline.sessionStream', requests=c['requests'])
        yield '§5 rule 17 quiet INFERs (no answer when through, failures marked)', c['name'], r.get('answers') == c['answers'], r
    # tied.json (gen-tied.py): a tied Validator's H and replica across a step (§4.3 rule 4, §4.4 rules 1-3 and 6; layer-pool §8)
    td = vec('pipeline', 'tied.json')
    for q in td['cases']:
        # (1.8.0) `acceptOwner` false: a Validator that does not take the matrix (§4.4 rule 7)
        r = call('pipeline.tiedSequence', vocabSize=td['vocabSize'], dModel=td['dModel'], headStep=td['headStep'], replica=q['replica'], ops=without_expect(q['ops']),
                 **({'acceptOwner': False} if q.get('acceptOwner') is False else {}))
        yield from sequence_checks('§4.3 rule 4, §4.4 tied Validator (H taken whole, replica stepped; sequences)', q, 'ops', r,
                                   ('tied', 'replica', 'tiedHash', 'error', 'headMicroBatches', 'headInputs', 'tiedOwner', 'tiedNormSq'), lambda i, o: f'op {i} ({o["op"]})')
    rt = v['routes']
    for c in rt['cases']:
        # a case with `standbys` is an INFER carrying them (rule 15, checked after rule 1's checks)
        point = '§5 rule 15 standbys (none or one per hop)' if 'standbys' in c else '§5 rule 1 routes (errors, in order)'
        r = call('pipeline.checkRoute', session=c['session'], route=c['route'], hop=c['hop'], kind=c['kind'], node=rt['self'], serves=rt['serves'], nLayers=rt['nLayers'],
                 **({'standbys': c['standbys']} if 'standbys' in c else {}))
        if 'error' in c:
            yield point, c['name'], *expect_error(r, c['error'])
        else:
            yield point, c['name'], r.get('valid') is True, r


def swarm_router_checks(call):
    v = vec('swarm-router', 'routing.json')
    for c in v['chains']:
        r = call('router.chain', candidates=c['candidates'], **{'from': c['from']}, to=c['to'], cost=c['cost'], excluded=c['excluded'])
        if c['chain'] is None:
            yield '§3 least-cost chain', c['name'], 'chain' in r and r['chain'] is None, r
            continue
        cost_ok = isinstance(r.get('chainCost'), (int, float)) and abs(r['chainCost'] - c['chainCost']) <= 1e-9 * max(1, abs(c['chainCost']))
        yield '§3 least-cost chain', c['name'], r.get('chain') == c['chain'] and cost_ok, r
        yield '§4 standbys', c['name'], r.get('standbys') == c['standbys'], r
    w = v['weightedPick']
    for d in w['draws']:
        r = call('router.weightedPick', weights=w['weights'], u=d['u'])
        yield '§5 weighted pick', f'u {d["u"]}', r.get('index') == d['index'], r
    b = v['bans']
    r = call('router.bans', baseMs=b['baseMs'], maxMs=b['maxMs'], forgetMs=b['forgetMs'], events=[{'peer': e['peer'], 'failAt': e['failAt']} for e in b['events']])
    got = r.get('events') or []
    for i, e in enumerate(b['events']):
        g = got[i] if i < len(got) else {}
        yield '§6 bans (backoff, forget)', f'{e["peer"]} fails at {e["failAt"]}', (g.get('bannedUntil'), g.get('failures')) == (e['bannedUntil'], e['failures']), g


def diloco_checks(call):
    # state.json (gen-state.py): §4 a client's state downloads (the state, a restart, or StateSyncError)
    st = vec('diloco', 'state.json')
    for c in st['cases']:
        r = call('diloco.stateDownload', layout=st['layout'], elements=st['elements'], rangeBytes=st['rangeBytes'], answers=c['answers'])
        if 'error' in c:
            yield '§4 state downloads (checks in order, restart)', c['name'], *expect_error(r, c['error'])
        elif c.get('restart'):
            yield '§4 state downloads (checks in order, restart)', c['name'], r.get('restart') is True and 'state' not in r, r
        else:
            yield '§4 state downloads (checks in order, restart)', c['name'], r.get('state') == c['state'], r
    v = vec('diloco', 'vectors.json')
    for i, c in enumerate(v['outer']):
        r = call('diloco.outerStep', theta=c['theta'], momentum=c['momentum'], g=c['g'], lr=c['lr'], mu=c['mu'])
        yield '§6 outer Nesterov step (float32, bit for bit)', f'step {i}', (r.get('theta'), r.get('momentum')) == (c['theta_out'], c['momentum_out']), r
    for c in v['codecs']:
        name = json.dumps(c['codec'], sort_keys=True)
        r = call('diloco.encode', codec=c['codec'], input=c['input'])
        yield '§5 payload codecs (encode)', name, r.get('payload') == c['payload'], r
        r = call('diloco.decode', codec=c['codec'], payload=c['payload'], elements=len(c['input']))
        yield '§5 payload codecs (decode)', name, r.get('decoded') == c['decoded'], r
    ef = v['errorFeedback']
    r = call('diloco.errorFeedback', codec=ef['codec'], decay=ef['decay'], elements=len(ef['rounds'][0]['delta']), deltas=[x['delta'] for x in ef['rounds']])
    got = r.get('rounds') or []
    for i, x in enumerate(ef['rounds']):
        g = got[i] if i < len(got) else {}
        yield '§5 error feedback', f'round {i}', (g.get('payload'), g.get('residual')) == (x['payload'], x['residual_after']), g
    for c in v['malformed']:
        r = call('diloco.decode', codec=c['codec'], payload=c['payload'], elements=c['elements'])
        yield '§5 malformed payloads (refused)', c['why'], *expect_error(r, c['error'])
    for c in v['leader']:
        r = call('diloco.leaderKey', round=str(c['round']), peer=c['peer'])
        yield '§1 leader order key', f'round {c["round"]}', r.get('key') == c['key'], r
    for c in v['privacy']:
        r = call('diloco.privacyEpsilon', rounds=c['rounds'], noiseMultiplier=c['noiseMultiplier'], delta=c['delta'])
        e = r.get('epsilon')
        yield '§5 privacy accountant (zCDP ε)', f'T {c["rounds"]} z {c["noiseMultiplier"]} δ {c["delta"]}', isinstance(e, (int, float)) and abs(e - c['epsilon']) <= 1e-12 * max(1, abs(c['epsilon'])), r
    # messages.json (gen-messages.mjs): signed announces and commits, round checks, aggregation, round records
    m = vec('diloco', 'messages.json')
    for c in m['announces']:
        r = call('diloco.openAnnounce', signed=c['signed'])
        if 'error' in c:
            yield '§2-§3 signed announces (errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§2-§3 signed announces (errors, in order)', c['name'], (r.get('sender'), r.get('payloadHash')) == (c['sender'], c['payloadHash']), r
    for c in m['checks']:
        r = call('diloco.checkAnnounce', signed=c['signed'], expect=c['expect'])
        if 'error' in c:
            yield '§6 step 3 round checks (errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§6 step 3 round checks (errors, in order)', c['name'], r.get('valid') is True, r
    for c in m['rounds']['cases']:
        r = call('diloco.round', expect=m['rounds']['expect'], maxContributions=c['maxContributions'], ops=c['ops'])
        got = r.get('outcomes') or []
        for i, (o, err) in enumerate(zip(c['ops'], c['errors'])):
            g = got[i] if i < len(got) else {}
            yield '§6 step 3, §8 a round\'s replays, maximum and commit (sequences)', f'{c["name"][:60]}… op {i} ({o["op"]})', g.get('error') == err and len(got) == len(c['ops']), g
    # commits.json (gen-commits.py): which commits a receiver applies, once and in round order; catch-up; fork choice
    cm = vec('diloco', 'commits.json')
    for c in cm['cases']:
        r = call('diloco.commits', group=cm['group'], span=cm['span'], elements=cm['elements'], bases=cm['bases'], round=c['round'],
                 baseHash=c['baseHash'], members=c['members'], aggregator=c['aggregator'], stalled=c.get('stalled'), ops=[{'signed': o['signed']} for o in c['ops']])
        got = r.get('outcomes') or []
        for i, o in enumerate(c['ops']):
            g = got[i] if i < len(got) else {}
            want = {k: v for k, v in o.items() if k in ('outcome', 'from', 'error')}
            yield '§6 steps 6, 8, 9, §8 commits received (applied once, round order, catch-up, fork choice)', f'{c["name"]}: op {i}: {o["name"][:70]}', \
                {k: v for k, v in g.items() if k in ('outcome', 'from', 'error')} == want and len(got) == len(c['ops']), g
    for c in m['commits']:
        r = call('diloco.openCommit', signed=c['signed'])
        if 'error' in c:
            yield '§2, §6 step 6 signed commits (errors, in order)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§2, §6 step 6 signed commits (errors, in order)', c['name'], (r.get('leader'), r.get('senders')) == (c['leader'], c['senders']), r
    for c in m['aggregation']:
        r = call('diloco.aggregate', aggregator=c['aggregator'], inputs=c['inputs'])
        want = [struct.unpack('<f', struct.pack('<I', b))[0] for b in c['value']]
        got = [struct.unpack('<f', struct.pack('<I', b))[0] for b in (r.get('value') or [])]
        close = len(got) == len(want) and all(abs(x - y) <= 1e-6 * max(1, abs(y)) for x, y in zip(got, want))
        yield '§7 aggregation (value, accept/reject)', c['name'], close and r.get('accepted') == c['accepted'], r
    for c in m['records']:
        r = call('diloco.verifyRoundRecord', record=c['record'], payloads=c['payloads'], elements=c['elements'], aggregator=c['aggregator'])
        if 'error' in c:
            yield '§7 round record (verifyRoundRecord)', c['name'], *expect_error(r, c['error'])
        else:
            yield '§7 round record (verifyRoundRecord)', c['name'], r.get('valid') is True, r


def node_ponw_checks(call):
    """specs/node/ponw.md §2: witnesses written byte for byte, decoded, refused; codec tuples; stage pseudo-gradient hashes"""
    v = vec('node', 'witness.json')
    for c in v['witnesses']:
        r = call('node.encodeWitness', witness=c['witness'])
        yield 'node/ponw §2 witness encoding (written byte for byte)', c['name'], r.get('bytes') == c['bytes'], {k: str(x)[:200] for k, x in r.items()}
        r = call('node.decodeWitness', bytes=c['bytes'])
        yield 'node/ponw §2 witness decoding (limits, refusals)', f'{c["name"]} (decodes to itself)', r.get('witness') == c['witness'], {k: str(x)[:200] for k, x in r.items()}
    for c in v['decoding']:
        r = call('node.decodeWitness', bytes=c['bytes'])
        ok = r.get('refused') is True if c['refused'] else r.get('witness') == c['witness']
        yield 'node/ponw §2 witness decoding (limits, refusals)', c['name'], ok, {k: str(x)[:200] for k, x in r.items()}
    for c in v['codecTuples']:
        r = call('node.codecTuple', announced=c['announced'])
        yield 'node/ponw §2 codec tuple', json.dumps(c['announced']), r.get('tuple') == c['tuple'], r
    for c in v['stagePseudoGradientHashes']:
        r = call('node.stagePseudoGradientHash', entries=c['entries'])
        yield 'node/ponw §2 stage pseudo-gradient hash', c['name'], r.get('hash') == c['hash'], r
    # records.json (gen-records.py): §3, the round-record check of a stage's training proof
    rc = vec('node', 'records.json')
    for c in rc['cases']:
        r = call('node.acceptedPseudoGradient', config=rc['config'], modelId=rc['modelId'], aggregator=c['aggregator'], witness=c['witness'], query=c['query'], peerOf=c['peerOf'])
        yield 'node/ponw §3 round-record check (accepted or not)', c['name'], r.get('accepted') is c['accepted'], r
    # reexec.json (gen-reexec.py): re-execution rule 2 (the witness checks before a step is replayed), rules 4-5 (the final checkpoint)
    rx = vec('node', 'reexec.json')
    for c in rx['steps']:
        r = call('node.checkStageStep', config=c.get('config', rx['config']), witness=c['witness'], index=c['index'])
        if 'error' in c:
            yield 'node/ponw §2 re-execution rule 2 (witness checks before a step)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'node/ponw §2 re-execution rule 2 (witness checks before a step)', c['name'], r.get('valid') is True, r
    for c in rx['final']:
        r = call('node.finalWeights', config=rx['config'], base=c['base'], final=c['final'], modelHash=c['modelHash'], pseudoGradientHash=c['pseudoGradientHash'])
        if 'error' in c:
            yield 'node/ponw §2 re-execution rules 4-5 (the final checkpoint, final ≠ base)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'node/ponw §2 re-execution rules 4-5 (the final checkpoint, final ≠ base)', c['name'], r.get('valid') is True, r
    # replay.json (gen-replay.py): re-execution rule 3, a witness's inner steps replayed and compared with the final checkpoint
    rp = vec('node', 'replay.json')
    for c in rp['cases']:
        r = call('node.replayStage', config=c.get('config', rp['config']), optimizer=rp['optimizer'], base=c.get('base', rp['base']), final=c.get('final', rp['final']), batches=c['batches'])
        if 'error' in c:
            yield 'node/ponw §2 re-execution rule 3 (replayed steps within 1e-4)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'node/ponw §2 re-execution rule 3 (replayed steps within 1e-4)', c['name'], r.get('valid') is True, r
    # pseudo.json (gen-pseudo.py): re-execution rule 4, the final payloads against base − final
    ps = vec('node', 'pseudo.json')
    for c in ps['cases']:
        r = call('node.pseudoGradientHash', config=ps['config'], base=ps['base'], final={**ps['final'], 'payloads': c['payloads']})
        if 'error' in c:
            yield 'node/ponw §2 re-execution rule 4 (final payloads)', c['name'], *expect_error(r, c['error'])
        else:
            yield 'node/ponw §2 re-execution rule 4 (final payloads)', c['name'], r.get('hash') == c['hash'], r


# ---- model forward / backward / graph inputs and outputs (specs/model §2, §5, §9) ----

def tiny_model():
    t = vec('model', 'tiny-logits.json')
    cks = []
    for c in t['checkpoints']:
        with open(vec_path('model', c['file']), 'rb') as f:
            cks.append({'fileHex': f.read().hex(), 'role': c['role'], 'contentHash': c['contentHash']})
    return t, cks


def max_abs_diff(a, b):
    if not isinstance(a, list) or len(a) != len(b) or not all(isinstance(x, (int, float)) for x in a):
        return float('inf')
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def model_compute_checks(call):
    t, cks = tiny_model()
    for it in t['init']:
        r = call('model.init', config=t['config'], name=it['name'], seed=it['seed'], count=len(it['first']))
        yield '§4 parameter init (first values, bit for bit)', f'{it["name"]} seed {it["seed"]}', (r.get('shape'), r.get('first')) == (it['shape'], it['first']), r
    for i, c in enumerate(t['contentHashes']):
        r = call('model.contentHash', tensors=c['tensors'])
        yield '§7 content hash', f'{len(c["tensors"])} tensors', r.get('contentHash') == c['contentHash'], r
    V = t['config']['vocabSize']
    r = call('model.forward', config=t['config'], checkpoints=cks, ids=[t['prompt']], targets=[t['targets']])
    d = max_abs_diff(r.get('logits'), t['logits'])
    yield '§2 forward pass (logits within 1e-4)', f'embed → blocks → head on "{t["promptText"]}": max |Δ| {d:.2g}', d < 1e-4 and r.get('logitsShape') == t['logitsShape'], {k: r.get(k) for k in ('logitsShape', 'loss', 'error', 'message')}
    loss = r.get('loss')
    yield '§2 forward pass (loss within 1e-4)', 'mean cross-entropy of the targets', isinstance(loss, (int, float)) and abs(loss - t['loss']) < 1e-4, {'loss': loss}
    for name, steps in (('prefill the whole prompt from an empty cache', [[0, len(t['prompt'])]]),
                        ('prefill 5 tokens, then decode one at a time', [[0, 5]] + [[i, i + 1] for i in range(5, len(t['prompt']))])):
        r = call('model.decode', config=t['config'], checkpoints=cks, ids=t['prompt'], steps=steps)
        d = max_abs_diff(r.get('logits'), t['logits'])
        yield '§2, §5 KV-cache inference (logits within 1e-4)', f'{name}: max |Δ| {d:.2g}', d < 1e-4, {k: r.get(k) for k in ('error', 'message')}
    g = vec('model', 'tiny-grads.json')
    at = [{'name': e['name'], 'index': e['index']} for e in g['gradients']]
    r = call('model.gradients', config=t['config'], checkpoints=cks, ids=[t['prompt']], targets=[t['targets']], gradLoss=1, at=at)
    got = r.get('gradients') or []
    for i, e in enumerate(g['gradients']):
        x = got[i] if i < len(got) else None
        ok = isinstance(x, (int, float)) and abs(x - e['grad']) <= 1e-4 + 2e-3 * abs(e['grad'])
        yield '§5 backward pipeline (gradients)', f'{e["name"]}[{e["index"]}]', ok, {'got': x, 'want': e['grad'], 'error': r.get('error')}
    gi = vec('model', 'graph-io.json')

    def norm(xs):
        return sorted(({'name': x['name'], 'dtype': x['dtype'], 'shape': [d if isinstance(d, int) else str(d) for d in x['shape']]} for x in xs), key=lambda x: x['name']) if isinstance(xs, list) else None
    for c in gi['graphs']:
        r = call('model.graphIO', config=dict(gi['config'], tieEmbeddings=c['tieEmbeddings']), role=c['role'], variant=c['variant'])
        ok = norm(r.get('inputs')) == norm(c['inputs']) and norm(r.get('outputs')) == norm(c['outputs'])
        yield '§5 graph inputs and outputs', f'{json.dumps(c["role"])} {c["variant"]} tied={c["tieEmbeddings"]}', ok, r


SUITES = {'ponw-ledger': ledger_all, 'framing': framing_checks, 'host': host_checks, 'tensor-frame': tensor_checks,
          'tokenizer': tokenizer_checks, 'model': model_checks, 'genesis-data': genesis_data_checks,
          'layer-pool': layer_pool_checks, 'pipeline': pipeline_checks, 'swarm-router': swarm_router_checks, 'diloco': diloco_checks,
          'model-compute': model_compute_checks, 'node-ponw': node_ponw_checks}


# the spec folders whose vectors/ each suite replays; a folder is checked for unread files when all its suites ran
SUITE_FOLDERS = {'ponw-ledger': ['ponw-ledger'], 'framing': ['framing'], 'host': ['host'], 'tensor-frame': ['tensor-frame'],
                 'tokenizer': ['tokenizer'], 'model': ['model'], 'model-compute': ['model'], 'genesis-data': ['genesis-data'],
                 'layer-pool': ['layer-pool'], 'pipeline': ['pipeline'], 'swarm-router': ['swarm-router'], 'diloco': ['diloco'],
                 'node-ponw': ['node']}
SCRIPTS = ('.py', '.mjs', '.ts', '.md')


def unreplayed(ran):
    """{folder: [vector files (not generator scripts) no check read]} for every spec folder whose suites all ran"""
    out = {}
    for folder in sorted({f for s in ran for f in SUITE_FOLDERS[s]}):
        if all(s in ran for s, fs in SUITE_FOLDERS.items() if folder in fs):
            d = os.path.join(SPECS, folder, 'vectors')
            out[folder] = [name for name in sorted(os.listdir(d))
                           if os.path.isfile(os.path.join(d, name)) and not name.endswith(SCRIPTS) and f'{folder}/vectors/{name}' not in READ]
    return out


def main(argv):
    if '--' not in argv:
        print(__doc__)
        return 2
    i = argv.index('--')
    opts, cmd = argv[:i], argv[i + 1:]
    json_out = opts[opts.index('--json') + 1] if '--json' in opts else None
    require_all = '--require-all' in opts
    only = opts[opts.index('--only') + 1].split(',') if '--only' in opts else list(SUITES)
    if '--specs' in opts:
        global SPECS
        SPECS = os.path.abspath(opts[opts.index('--specs') + 1])
    adapter = Adapter(cmd)
    results = []
    t0 = time.time()
    try:
        for suite in only:
            try:
                for point, case, ok, detail in SUITES[suite](adapter):
                    results.append({'spec': suite, 'point': point, 'case': case, 'status': 'pass' if ok else 'fail',
                                    'detail': None if ok else json.dumps(detail)[:400]})
            except Unsupported as u:
                results.append({'spec': suite, 'point': '(adapter)', 'case': str(u), 'status': 'unsupported', 'detail': None})
    finally:
        adapter.close()
    ran = [s for s in only if not any(r['spec'] == s and r['status'] == 'unsupported' for r in results)]
    for folder, missing in unreplayed(ran).items():
        results += [{'spec': folder, 'point': 'every vector file replayed', 'case': name, 'status': 'fail',
                     'detail': json.dumps(f'specs/{folder}/vectors/{name} is read by no check of the runner')} for name in missing] or \
                   [{'spec': folder, 'point': 'every vector file replayed', 'case': f'specs/{folder}/vectors', 'status': 'pass', 'detail': None}]
    points = {}
    for r in results:
        points.setdefault((r['spec'], r['point']), []).append(r)
    failed = 0
    for (spec, point), rs in points.items():
        n_fail = sum(r['status'] == 'fail' for r in rs)
        n_uns = sum(r['status'] == 'unsupported' for r in rs)
        status = 'FAIL' if n_fail else ('UNSUPPORTED' if n_uns else 'PASS')
        print(f'{status:12} {spec} {point}: {len(rs) - n_fail - n_uns}/{len(rs)}')
        for r in rs:
            if r['status'] == 'fail':
                print(f'             ✗ {r["case"]}: {r["detail"]}')
        failed += n_fail + (n_uns if require_all else 0)
    print(f'conformance: {sum(r["status"] == "pass" for r in results)} passed, {sum(r["status"] == "fail" for r in results)} failed, '
          f'{sum(r["status"] == "unsupported" for r in results)} unsupported ({time.time() - t0:.1f} s)')
    if json_out:
        with open(json_out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    return 1 if failed or not results else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

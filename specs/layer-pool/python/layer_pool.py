"""The layer pool's rules (specs/layer-pool/README.md §2 records, §5 assignment, §7 architecture versions;
transfer.md §1 chunks), written from the spec text alone, standard library only (Ed25519 in ed25519.py)."""
import hashlib
import ipaddress
import json
import math
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ed25519  # noqa: E402

MAX_RECORD = 8192
RECORD_DOMAIN, RECORD_TYPE = b'neuroshard-layer-pool', b'\x03\x50'
ARCH_DOMAIN, ARCH_TYPE = b'neuroshard-layer-pool-arch', b'\x03\x51'
STATES = ['loading', 'serving', 'training', 'leaving']
WEIGHT_FORMATS = ['fp32', 'int8', 'int4']   # §2.4 enum WeightFormat
QUANT_BLOCK_SIZES = (64, 128)   # §2.4 (1.7.0) quant_block_size when present (absent: 32)
CONFIG_KEYS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'ffnHidden', 'maxSeqLen', 'ropeTheta', 'normEps', 'tieEmbeddings']


class LayerPoolError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


# ---- protobuf (proto3, canonical: fields in number order, defaults omitted) ----
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# (number, name, type, repeated); 'optional uint64' / 'optional uint32' are proto3 `optional`: None when absent, written
# when set (even 0)
SCHEMA = {
    'Envelope': [(1, 'public_key', 'bytes', False), (2, 'payload_type', 'bytes', False), (3, 'payload', 'bytes', False), (5, 'signature', 'bytes', False)],
    'SlotState': [(1, 'weights_hash', 'bytes', False), (2, 'chunks_root', 'bytes', False), (3, 'optimizer_root', 'bytes', False),
                  (4, 'weights_step', 'optional uint64', False)],
    'SpanEntry': [(1, 'start', 'uint32', False), (2, 'end', 'uint32', False), (3, 'state', 'enum', False), (4, 'throughput_milli', 'uint64', False),
                  (5, 'slots', 'SlotState', True), (6, 'weights_step', 'uint64', False), (7, 'claimed_at_ms', 'uint64', False),
                  (8, 'weight_format', 'enum', False), (9, 'kv_tokens_left', 'optional uint64', False),
                  (10, 'quant_block_size', 'optional uint32', False)],
    'LayerRecord': [(1, 'model_id', 'string', False), (2, 'version', 'uint32', False), (3, 'peer_id', 'bytes', False), (4, 'sequence', 'uint64', False),
                    (5, 'issued_at_ms', 'uint64', False), (6, 'expires_at_ms', 'uint64', False), (7, 'memory_bytes', 'uint64', False),
                    (8, 'addresses', 'bytes', True), (9, 'spans', 'SpanEntry', True)],
    'ArchitectureRecord': [(1, 'model_id', 'string', False), (2, 'version', 'uint32', False), (3, 'config_json', 'string', False), (4, 'init_seed', 'uint64', False),
                           (5, 'parent_version', 'uint32', False), (6, 'issued_at_ms', 'uint64', False)],
    'PublicKey': [(1, 'type', 'enum', False), (2, 'data', 'bytes', False)],
}


def pb_default(name, schema=None):
    schema = schema or SCHEMA
    return {f: ([] if rep else (b'' if t == 'bytes' else '' if t == 'string' else None if t.startswith('optional') or t in schema else 0))
            for _, f, t, rep in schema[name]}


def pb_encode(name, msg):
    out = b''
    for num, f, t, rep in SCHEMA[name]:
        for v in (msg[f] if rep else [msg[f]]):
            if t in SCHEMA:
                b = pb_encode(t, v)
                out += varint(num << 3 | 2) + varint(len(b)) + b
            elif t in ('bytes', 'string'):
                b = v.encode('utf-8') if t == 'string' else v
                if b or rep:
                    out += varint(num << 3 | 2) + varint(len(b)) + b
            elif v or (t.startswith('optional') and v is not None):
                out += varint(num << 3) + varint(v)
    return out


def _varint_at(buf, at):
    n = shift = 0
    while True:
        if at >= len(buf) or shift > 63:
            raise ValueError('truncated varint')
        b = buf[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, at


def pb_decode(name, data, schema=None, packed=False):
    """proto3 bytes -> fields (defaults for absent ones; unknown fields skipped). Raises ValueError on bytes that are not
    the message: truncation, a wire type other than the field's, a uint32 over 32 bits. `packed`: repeated scalars may
    also come packed (one length-delimited field of varints; transfer.md §3 readers accept both), else only unpacked"""
    schema = schema or SCHEMA
    fields = {num: (f, t, rep) for num, f, t, rep in schema[name]}
    msg, i = pb_default(name, schema), 0
    while i < len(data):
        key, i = _varint_at(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint_at(data, i)
        elif wt == 2:
            n, i = _varint_at(data, i)
            if i + n > len(data):
                raise ValueError('truncated field')
            v, i = data[i:i + n], i + n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if i + n > len(data):
                raise ValueError('truncated field')
            v, i = data[i:i + n], i + n
        else:
            raise ValueError(f'wire type {wt}')
        if num not in fields:
            continue
        f, t, rep = fields[num]
        if t not in schema and t not in ('bytes', 'string'):   # a varint scalar: uint32, uint64, enum, bool, optional uint64
            if wt == 0:
                vals = [v]
            elif wt == 2 and rep and packed:
                vals, j = [], 0
                while j < len(v):
                    x, j = _varint_at(v, j)
                    vals.append(x)
            else:
                raise ValueError(f'{name}.{f}: wire type {wt}')
            if t in ('uint32', 'optional uint32') and any(x > 0xFFFFFFFF for x in vals):
                raise ValueError(f'{name}.{f}: over 32 bits')
            if rep:
                msg[f].extend(vals)
            else:
                msg[f] = vals[0]
            continue
        if wt != 2:
            raise ValueError(f'{name}.{f}: wire type {wt}')
        if t in schema:
            v = pb_decode(t, v, schema, packed)
        elif t == 'string':
            v = v.decode('utf-8')
        if rep:
            msg[f].append(v)
        else:
            msg[f] = v
    return msg


# ---- libp2p keys, peer ids (identity multihash of the protobuf public key), base58btc, RFC 0002 envelopes ----
B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def b58encode(b):
    n = int.from_bytes(b, 'big')
    out = ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return '1' * (len(b) - len(b.lstrip(b'\0'))) + out


def b58decode(s):
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return b'\0' * (len(s) - len(s.lstrip('1'))) + body


def public_key_protobuf(raw32):
    return pb_encode('PublicKey', {'type': 1, 'data': raw32})   # KeyType Ed25519 = 1


def peer_id_bytes(pub_protobuf):
    return b'\x00' + varint(len(pub_protobuf)) + pub_protobuf   # identity multihash (the key is ≤ 42 bytes)


def peer_id_string(pid):
    return b58encode(pid)


def signing_preimage(domain, payload_type, payload):
    return varint(len(domain)) + domain + varint(len(payload_type)) + payload_type + varint(len(payload)) + payload


def seal(seed, domain, payload_type, payload):
    pub = public_key_protobuf(ed25519.public_key(seed))
    sig = ed25519.sign(seed, signing_preimage(domain, payload_type, payload))
    return pb_encode('Envelope', {'public_key': pub, 'payload_type': payload_type, 'payload': payload, 'signature': sig})


def open_envelope(data, domain, payload_type, what):
    """rules 2-3: an envelope, canonical, of this payload type, whose signature verifies for `domain`"""
    try:
        env = pb_decode('Envelope', data)
        key = pb_decode('PublicKey', env['public_key'])
    except (ValueError, UnicodeDecodeError) as e:
        raise LayerPoolError('InvalidLayerRecordError', f'not an envelope: {e}')
    if pb_encode('Envelope', env) != data:
        raise LayerPoolError('InvalidLayerRecordError', 'the envelope is not canonically encoded')
    if env['payload_type'] != payload_type:
        raise LayerPoolError('InvalidLayerRecordError', f'not a {what}')
    if key['type'] != 1 or len(key['data']) != 32 or not ed25519.verify(key['data'], signing_preimage(domain, env['payload_type'], env['payload']), env['signature']):
        raise LayerPoolError('ForgedLayerRecordError', 'the signature does not verify')
    return env, peer_id_bytes(env['public_key'])


# ---- multiaddrs (binary form): the protocols a node publishes ----
# code: (name, size in bytes; 0 none, -1 varint-prefixed)
PROTOCOLS = {4: ('ip4', 4), 6: ('tcp', 2), 273: ('udp', 2), 41: ('ip6', 16), 53: ('dns', -1), 54: ('dns4', -1), 55: ('dns6', -1), 56: ('dnsaddr', -1),
             460: ('quic', 0), 461: ('quic-v1', 0), 280: ('webrtc-direct', 0), 281: ('webrtc', 0), 290: ('p2p-circuit', 0), 421: ('p2p', -1),
             477: ('ws', 0), 478: ('wss', 0), 448: ('tls', 0)}


def multiaddr_string(b):
    out, i = '', 0
    while i < len(b):
        code, shift = 0, 0
        while True:
            if i >= len(b):
                raise ValueError('truncated multiaddr')
            c = b[i]
            i += 1
            code |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
        if code not in PROTOCOLS:
            raise ValueError(f'unknown multiaddr protocol {code}')
        name, size = PROTOCOLS[code]
        if size == -1:
            n, shift = 0, 0
            while True:
                if i >= len(b):
                    raise ValueError('truncated multiaddr')
                c = b[i]
                i += 1
                n |= (c & 0x7F) << shift
                shift += 7
                if not c & 0x80:
                    break
            size = n
        if i + size > len(b):
            raise ValueError('truncated multiaddr')
        v = b[i:i + size]
        i += size
        if name in ('ip4', 'ip6'):
            out += f'/{name}/{ipaddress.ip_address(v)}'
        elif name in ('tcp', 'udp'):
            out += f'/{name}/{int.from_bytes(v, "big")}'
        elif name == 'p2p':
            out += f'/p2p/{b58encode(v)}'
        elif size:
            out += f'/{name}/{v.decode("utf-8")}'
        else:
            out += f'/{name}'
    if not out:
        raise ValueError('empty multiaddr')
    return out


def multiaddr_bytes(s):
    names = {n: (c, size) for c, (n, size) in PROTOCOLS.items()}
    parts, out, i = s.split('/')[1:], b'', 0
    while i < len(parts):
        code, size = names[parts[i]]
        out += varint(code)
        if size == 0:
            i += 1
            continue
        v = parts[i + 1]
        if parts[i] in ('ip4', 'ip6'):
            b = ipaddress.ip_address(v).packed
        elif parts[i] in ('tcp', 'udp'):
            b = int(v).to_bytes(2, 'big')
        elif parts[i] == 'p2p':
            b = b58decode(v)
        else:
            b = v.encode('utf-8')
        out += (varint(len(b)) if size == -1 else b'') + b
        i += 2
    return out


# ---- §2 layer records ----
def encode_record(fields, peer_id):
    """the record's fields as the vectors write them (spans with state names, throughput in tokens/s) to LayerRecord"""
    return pb_encode('LayerRecord', {
        'model_id': fields['model_id'], 'version': fields['version'], 'peer_id': peer_id, 'sequence': int(fields['sequence']),
        'issued_at_ms': fields['issued_at_ms'], 'expires_at_ms': fields['expires_at_ms'], 'memory_bytes': fields['memory_bytes'],
        'addresses': [multiaddr_bytes(a) for a in fields['addresses']],
        'spans': [{'start': s['start'], 'end': s['end'], 'state': STATES.index(s['state']), 'throughput_milli': round_half_up(s['throughput'] * 1000),
                   'slots': [{'weights_hash': bytes.fromhex(x['weightsHash']), 'chunks_root': bytes.fromhex(x['chunksRoot']),
                              'optimizer_root': bytes.fromhex(x.get('optimizerRoot', '')),
                              'weights_step': int(x['weightsStep']) if 'weightsStep' in x else None} for x in s['slots']],
                   'weights_step': s['weightsStep'], 'claimed_at_ms': s['claimedAt'],
                   'weight_format': WEIGHT_FORMATS.index(s.get('quantization', 'fp32')),
                   'kv_tokens_left': int(s['kvTokensLeft']) if 'kvTokensLeft' in s else None,
                   'quant_block_size': s.get('quantBlockSize')} for s in fields['spans']]})


def round_half_up(x):
    return math.floor(x + 0.5)


def sign_record(seed, fields):
    pid = peer_id_bytes(public_key_protobuf(ed25519.public_key(seed)))
    env = seal(seed, RECORD_DOMAIN, RECORD_TYPE, encode_record(fields, pid))
    if len(env) > MAX_RECORD:
        raise LayerPoolError('OversizedLayerRecordError', f'{len(env)} bytes')
    return env, f'/neuroshard/layer-pool/1/{fields["model_id"]}/{fields["version"]}/{peer_id_string(pid)}'


def is_peer_id(b):
    """a libp2p peer id multihash: identity (0x00) of a protobuf public key, or sha2-256 (0x12) of 32 bytes"""
    try:
        if b[:1] == b'\x12':
            return b[1:2] == b'\x20' and len(b) == 34
        if b[:1] == b'\x00' and len(b) >= 2 and b[1] < 0x80 and len(b) == 2 + b[1]:
            k = pb_decode('PublicKey', b[2:])
            return k['type'] in (0, 1, 2, 3) and len(k['data']) > 0
    except (ValueError, UnicodeDecodeError):
        pass
    return False


def open_record(data, now_ms, n_layers=None):
    """§2.2 rules 1-7 in order; returns (peer id string, fields as the vectors write them)"""
    if len(data) > MAX_RECORD:   # rule 1
        raise LayerPoolError('OversizedLayerRecordError', f'{len(data)} bytes')
    env, signer = open_envelope(data, RECORD_DOMAIN, RECORD_TYPE, 'layer record')   # rules 2-3

    def invalid(why):
        raise LayerPoolError('InvalidLayerRecordError', why)
    try:   # rule 4: the payload decodes to a LayerRecord and is its canonical encoding
        r = pb_decode('LayerRecord', env['payload'])
    except (ValueError, UnicodeDecodeError) as e:
        invalid(f'payload: {e}')
    if pb_encode('LayerRecord', r) != env['payload']:
        invalid('the payload is not canonically encoded')
    if not is_peer_id(r['peer_id']):
        invalid('peer_id is not a peer id')
    if len(r['addresses']) > 16 or len(r['spans']) > 8:
        invalid('too many addresses or spans')
    try:
        addresses = [multiaddr_string(a) for a in r['addresses']]
    except (ValueError, UnicodeDecodeError) as e:
        invalid(f'address: {e}')
    js_safe = 2 ** 53 - 1
    if max([r['issued_at_ms'], r['expires_at_ms'], r['memory_bytes']] + [s[k] or 0 for s in r['spans'] for k in ('throughput_milli', 'weights_step', 'claimed_at_ms', 'kv_tokens_left')]
           + [x['weights_step'] or 0 for s in r['spans'] for x in s['slots']]) > js_safe:
        invalid('a uint64 field (other than sequence) over 2^53 - 1')
    for s in r['spans']:
        if s['state'] >= len(STATES):
            invalid('unknown span state')
        if s['weight_format'] >= len(WEIGHT_FORMATS):
            invalid('unknown weight format (§2.4)')
        if any(len(x['weights_hash']) != 32 or len(x['chunks_root']) != 32 or len(x['optimizer_root']) not in (0, 32) for x in s['slots']):
            invalid('slot hashes')
    if r['peer_id'] != signer:   # rule 5
        raise LayerPoolError('ForgedLayerRecordError', 'signed by another peer than peer_id')
    # rule 6: field rules
    if not re.fullmatch(r'[a-z0-9][a-z0-9-]{0,63}', r['model_id']):
        invalid('model_id')
    if r['version'] < 1 or r['sequence'] < 1:
        invalid('version or sequence')
    if not (r['issued_at_ms'] < r['expires_at_ms'] <= r['issued_at_ms'] + 300000):
        invalid('lifetime')
    if r['issued_at_ms'] > now_ms + 30000:
        invalid('issued in the future')
    prev_end = 0
    for s in r['spans']:
        if not s['start'] < s['end'] or s['start'] < prev_end or len(s['slots']) != s['end'] - s['start']:
            invalid('span')
        if s['claimed_at_ms'] > r['issued_at_ms'] or (n_layers is not None and s['end'] > n_layers + 2):
            invalid('span claim or range')
        if any(x['weights_step'] is not None and x['weights_step'] >= s['weights_step'] for x in s['slots']):
            invalid('a slot weights_step not below its span\'s (1.6.0)')
        if s['quant_block_size'] is not None and (s['quant_block_size'] not in QUANT_BLOCK_SIZES or s['weight_format'] == 0):
            invalid('quant_block_size other than 64 or 128, or on a float32 span (§2.4, 1.7.0)')
        prev_end = s['end']
    if r['expires_at_ms'] <= now_ms:   # rule 7
        raise LayerPoolError('ExpiredLayerRecordError', 'expired')

    def slot(x):
        out = {'weightsHash': x['weights_hash'].hex(), 'chunksRoot': x['chunks_root'].hex()}
        if x['optimizer_root']:
            out['optimizerRoot'] = x['optimizer_root'].hex()
        if x['weights_step'] is not None:
            out['weightsStep'] = x['weights_step']
        return out
    return peer_id_string(r['peer_id']), {
        'model_id': r['model_id'], 'version': r['version'], 'sequence': str(r['sequence']), 'issued_at_ms': r['issued_at_ms'],
        'expires_at_ms': r['expires_at_ms'], 'memory_bytes': r['memory_bytes'], 'addresses': addresses,
        'spans': [{'start': s['start'], 'end': s['end'], 'state': STATES[s['state']], 'throughput': s['throughput_milli'] / 1000,
                   'weightsStep': s['weights_step'], 'claimedAt': s['claimed_at_ms'], 'slots': [slot(x) for x in s['slots']],
                   **({'quantization': WEIGHT_FORMATS[s['weight_format']]} if s['weight_format'] else {}),
                   **({'quantBlockSize': s['quant_block_size']} if s['quant_block_size'] is not None else {}),
                   **({'kvTokensLeft': s['kv_tokens_left']} if s['kv_tokens_left'] is not None else {})} for s in r['spans']]}


def validate_dht_record(key, value, now_ms):
    """§2.3: a DHT value under /neuroshard/layer-pool/<id> (host "DHT records": key grammar, uint64le(sequence) ‖ payload)"""
    try:
        text = key.decode('utf-8')
    except UnicodeDecodeError:
        raise LayerPoolError('InvalidRecordError', 'key not UTF-8')
    m = re.fullmatch(r'/neuroshard/([a-z0-9][a-z0-9-]{0,63})/(.+)', text, re.S)
    if len(key) > 512 or not m:
        raise LayerPoolError('InvalidRecordError', 'not a /neuroshard/<namespace>/<id> key')
    if len(value) < 8 or len(value) > 16384:
        raise LayerPoolError('InvalidRecordError', 'value size')
    if m.group(1) != 'layer-pool':
        return
    peer, fields = open_record(value[8:], now_ms)
    if m.group(2) != f"1/{fields['model_id']}/{fields['version']}/{peer}":
        raise LayerPoolError('InvalidLayerRecordError', 'stored under another key than the record names')
    if int.from_bytes(value[:8], 'little') != int(fields['sequence']):
        raise LayerPoolError('InvalidLayerRecordError', 'DHT sequence differs from the record sequence')


# ---- §7 architecture versions ----
def js_number(x):
    """ECMAScript Number.prototype.toString for the finite values of a config (model §6)"""
    if isinstance(x, bool):
        raise ValueError('bool')
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e21):
        return str(int(x))
    r = repr(float(x))
    mant, _, exp = r.partition('e')
    digits = mant.replace('.', '').replace('-', '').lstrip('0')
    point = (mant.lstrip('-').index('.') if '.' in mant else len(mant.lstrip('-'))) + (int(exp) if exp else 0)
    lead = len(mant.lstrip('-').split('.')[0]) - len(mant.lstrip('-').split('.')[0].lstrip('0'))
    n = point - lead   # value = 0.d1d2… × 10^n
    digits = digits.rstrip('0') or '0'
    sign = '-' if x < 0 else ''
    if -5 <= n <= 21:
        if n <= 0:
            return sign + '0.' + '0' * -n + digits
        return sign + (digits[:n] + ('.' + digits[n:] if len(digits) > n else '') if len(digits) >= n else digits + '0' * (n - len(digits)))
    e = n - 1
    return sign + digits[0] + ('.' + digits[1:] if len(digits) > 1 else '') + 'e' + ('+' if e > 0 else '-') + str(abs(e))


def canonical_config_json(c):
    return '{' + ','.join(f'"{k}":' + (('true' if c[k] else 'false') if k == 'tieEmbeddings' else js_number(c[k])) for k in CONFIG_KEYS) + '}'


def valid_config(c):
    """model §1"""
    if not isinstance(c, dict):
        return False
    for k in CONFIG_KEYS[:7]:
        v = c.get(k)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 2 ** 53 - 1:
            return False
    for k in ('ropeTheta', 'normEps'):
        v = c.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            return False
    if not isinstance(c.get('tieEmbeddings'), bool):
        return False
    d, H, K = int(c['dModel']), int(c['nHeads']), int(c['nKvHeads'])
    return d % H == 0 and H % K == 0 and (d // H) % 2 == 0


def sign_architecture(seed, fields):
    payload = pb_encode('ArchitectureRecord', {'model_id': fields['model_id'], 'version': fields['version'], 'config_json': canonical_config_json(fields['config']),
                                               'init_seed': int(fields['init_seed']), 'parent_version': fields['parent_version'], 'issued_at_ms': fields['issued_at_ms']})
    return seal(seed, ARCH_DOMAIN, ARCH_TYPE, payload)


def open_architecture(data, authorities, parent, limits=None, count_parameters=None):
    """§7: size, envelope, signature, an authority's, a valid canonical config, and a growth of `parent`"""
    if len(data) > MAX_RECORD:
        raise LayerPoolError('OversizedLayerRecordError', f'{len(data)} bytes')
    env, signer = open_envelope(data, ARCH_DOMAIN, ARCH_TYPE, 'architecture record')
    if peer_id_string(signer) not in authorities:
        raise LayerPoolError('ForgedLayerRecordError', 'not signed by an architecture authority')
    try:
        a = pb_decode('ArchitectureRecord', env['payload'])
        config = json.loads(a['config_json'])
    except (ValueError, UnicodeDecodeError) as e:
        raise LayerPoolError('InvalidLayerRecordError', f'payload: {e}')
    if not valid_config(config) or canonical_config_json(config) != a['config_json'] or pb_encode('ArchitectureRecord', a) != env['payload']:
        raise LayerPoolError('InvalidLayerRecordError', 'config or encoding not canonical')
    pc = parent['config']
    grows = (a['model_id'] == parent['model_id'] and int(parent['init_seed']) == a['init_seed'] and a['version'] == parent['version'] + 1
             and a['parent_version'] == parent['version'] and config['nLayers'] > pc['nLayers']
             and all(config[k] == pc[k] for k in CONFIG_KEYS if k != 'nLayers'))
    if not grows:
        raise LayerPoolError('UnsupportedArchitectureError', 'not a growth of the parent version')
    limits = limits or {}
    if 'maxParameters' in limits and count_parameters(config) > limits['maxParameters']:
        raise LayerPoolError('UnsupportedArchitectureError', 'more parameters than this node runs')
    if 'maxSeqLen' in limits and config['maxSeqLen'] > limits['maxSeqLen']:
        raise LayerPoolError('UnsupportedArchitectureError', 'a longer context than this node runs')
    return {'model_id': a['model_id'], 'version': a['version'], 'config': config, 'init_seed': str(a['init_seed']),
            'parent_version': a['parent_version'], 'issued_at_ms': a['issued_at_ms']}


# ---- §5 assignment ----
def view(holdings, slots, now_ms, grace_ms):
    """per slot [live, pending, throughput]; a live holder with throughput 0 counts 1"""
    out = [[0, 0, 0] for _ in range(slots)]
    for h in holdings:
        live = h['state'] in ('serving', 'training')
        pending = h['state'] == 'loading' and now_ms - h['claimedAt'] <= grace_ms
        for s in range(max(0, h['start']), min(slots, h['end'])):
            if live:
                out[s][0] += 1
                out[s][2] += h['throughput'] if h['throughput'] > 0 else 1
            elif pending:
                out[s][1] += 1
    return out


def under_replicated(v, min_replicas):
    return [s for s, (live, pending, _) in enumerate(v) if live + pending < min_replicas]


def choose_span(v, costs, budget, min_replicas, random=lambda: 0.5, held=()):
    """§5 steps 3-4: per start the longest span that fits; best by deficit, fewest replicas, lowest throughput,
    longest, then random"""
    def cmp_common(a, b):
        for x, y in zip(a, b):
            if x != y:
                return -1 if x < y else 1
        return 0
    best = None
    for start in range(len(v)):
        end, used = start, 0
        while end < len(v) and end not in held and used + costs[end] <= budget:
            used += costs[end]
            end += 1
        if end == start:
            continue
        deficit = sum(max(0, min_replicas - (v[s][0] + v[s][1])) for s in range(start, end))
        cand = (start, end, deficit, sorted(v[s][0] + v[s][1] for s in range(start, end)), sorted(v[s][2] for s in range(start, end)), random())
        if best is None:
            best = cand
            continue
        order = [cand[2] - best[2], -cmp_common(cand[3], best[3]), -cmp_common(cand[4], best[4]), (cand[1] - cand[0]) - (best[1] - best[0]), best[5] - cand[5]]
        if next((x for x in order if x != 0), 0) > 0:
            best = cand
    return None if best is None else {'start': best[0], 'end': best[1], 'deficit': best[2]}


# ---- transfer.md §1 chunks; model §7 content hash ----
def content_hash(tensors):
    h = hashlib.sha256(b'neuroshard/weights/v1\x00')
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0].encode('utf-8')):
        n, d = name.encode('utf-8'), dtype.encode('utf-8')
        h.update(struct.pack('<I', len(n)) + n + struct.pack('<I', len(d)) + d + struct.pack('<I', len(shape)))
        h.update(b''.join(struct.pack('<Q', x) for x in shape) + struct.pack('<Q', len(data)) + data)
    return h.hexdigest()


def chunks(tensors, chunk_size=1 << 20):
    """tensors: [{name, shape, values}] -> canonical order, stream, chunk hashes, chunks root, weights hash"""
    order = sorted(tensors, key=lambda t: t['name'].encode('utf-8'))
    datas = [b''.join(struct.pack('<f', x) for x in t['values']) for t in order]
    stream = b''.join(datas)
    hashes = [hashlib.sha256(stream[i:i + chunk_size]).digest() for i in range(0, len(stream), chunk_size)]
    root = hashlib.sha256(b'neuroshard/layer-pool/chunks/v1\x00' + struct.pack('<IQ', chunk_size, len(stream)) + b''.join(hashes)).hexdigest()
    return {'canonicalOrder': [t['name'] for t in order], 'stream': stream.hex(), 'totalBytes': len(stream), 'chunkHashes': [x.hex() for x in hashes],
            'chunksRoot': root, 'weightsHash': content_hash([(t['name'], 'F32', t['shape'], d) for t, d in zip(order, datas)])}

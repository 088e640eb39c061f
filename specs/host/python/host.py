"""The host profile's byte-level rules other than swarm keys (specs/host/README.md "DHT records": key grammar, value
format, selection; R3: the identity key file), written from the spec text alone, standard library only."""
import re
import struct


class HostError(Exception):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


def record_key(key):
    """`/neuroshard/<namespace>/<id>` (UTF-8, at most 512 bytes) -> (namespace, id)"""
    if len(key) > 512:
        raise HostError('InvalidRecordError', 'key over 512 bytes')
    try:
        text = key.decode('utf-8')
    except UnicodeDecodeError:
        raise HostError('InvalidRecordError', 'key not UTF-8')
    m = re.fullmatch(r'/neuroshard/([a-z0-9][a-z0-9-]{0,63})/(.+)', text, re.S)
    if not m:
        raise HostError('InvalidRecordError', 'not /neuroshard/<namespace>/<id>')
    return m.group(1), m.group(2)


def record_value(value):
    """uint64le(sequence) ‖ payload, 8..16 384 bytes -> (sequence, payload)"""
    if not 8 <= len(value) <= 16384:
        raise HostError('InvalidRecordError', 'value size')
    return struct.unpack('<Q', value[:8])[0], value[8:]


def encode_record_value(sequence, payload):
    if not 0 <= sequence < 2 ** 64 or len(payload) > 16384 - 8:
        raise HostError('InvalidRecordError', 'sequence or size')
    return struct.pack('<Q', sequence) + payload


def select(values):
    """index of the best value: highest sequence, then bytewise-greatest; undecodable values never win (-1: none)"""
    best = -1
    for i, v in enumerate(values):
        try:
            seq, _ = record_value(v)
        except HostError:
            continue
        if best < 0 or (seq, v) > (record_value(values[best])[0], values[best]):
            best = i
    return best


B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def _b58(b):
    n, out = int.from_bytes(b, 'big'), ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return '1' * (len(b) - len(b.lstrip(b'\0'))) + out


def identity(data, mode):
    """R3: an identity.key file (libp2p PrivateKey protobuf: Type = 1 Ed25519, Data = seed ‖ public key) with this
    POSIX mode -> the host's peer id (identity multihash of the PublicKey protobuf, base58btc)"""
    if mode & 0o077:
        raise HostError('InsecureIdentityKeyError', 'the file grants access to group or others')
    fields, i = {}, 0
    try:
        while i < len(data):
            key = data[i]
            i += 1
            if key == 0x08 and i < len(data) and data[i] < 0x80:
                fields[1], i = data[i], i + 1
            elif key == 0x12 and i < len(data) and data[i] < 0x80 and i + 1 + data[i] <= len(data):
                fields[2], i = data[i + 1:i + 1 + data[i]], i + 1 + data[i]
            else:
                raise ValueError('not a PrivateKey protobuf')
    except ValueError as e:
        raise HostError('MalformedIdentityKeyError', str(e))
    if fields.get(1) != 1 or len(fields.get(2, b'')) != 64:
        raise HostError('MalformedIdentityKeyError', 'not an Ed25519 private key')
    pub = bytes([0x08, 1, 0x12, 32]) + fields[2][32:]
    return _b58(bytes([0x00, len(pub)]) + pub)


# ---- decision rules (README "Co-located peers (P6)", R9, R21, R22) ----
import ipaddress  # noqa: E402
import math  # noqa: E402

# "Gossipsub" table: P6 exempt ranges; Definitions: loopback and private addresses
EXEMPT = [ipaddress.ip_network(n) for n in ('127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16',
                                            '169.254.0.0/16', 'fc00::/7', 'fe80::/10')]


def _in(ranges, ip):
    a = ipaddress.ip_address(ip)
    return any(a.version == n.version and a in n for n in ranges)


def p6(ip, peers, private_swarm):
    """the P6 term of a peer on address `ip` that carries `peers` peers"""
    if private_swarm or _in(EXEMPT, ip):
        return 0
    return -5 * (peers - 10) ** 2 if peers > 10 else 0


def dht_addresses(filter_, addrs):
    """R9: the addresses of a peer record kept ('all': every one; 'public': loopback and private IP addresses dropped)"""
    if filter_ == 'all':
        return list(addrs)
    kept = []
    for a in addrs:
        parts = a.split('/')
        if len(parts) > 2 and parts[1] in ('ip4', 'ip6') and _in(EXEMPT, parts[2]):
            continue
        kept.append(a)
    return kept


def join_delay(attempt, u):
    """R22: roundHalfUp(d/2 + u*d/2) ms, d = min(30000, 500 * 2^(attempt-1))"""
    d = min(30000.0, 500.0 * 2.0 ** (attempt - 1))
    return math.floor(d / 2 + u * d / 2 + 0.5)


def join_rounds(target, events):
    """R21 join state: events [{event: start|round|connect|disconnect, peers, u}] -> per event
    {pendingMs (the pending round's delay, or None), attempt, joined (the event made the host join)}"""
    attempt, pending, out = 0, None, []
    for e in events:
        joined = False
        kind, peers = e['event'], e.get('peers', 0)
        if kind == 'start':
            attempt, pending = 0, 0
        elif kind == 'round':
            if pending is None:
                raise HostError('InvalidParametersError', 'no round pending')
            pending = None
            if peers >= target:
                attempt, joined = 0, True
            else:
                attempt += 1
                pending = join_delay(attempt, e['u'])
        elif kind == 'connect':
            if pending is not None and peers >= target:
                pending, attempt, joined = None, 0, True
        elif kind == 'disconnect':
            if pending is None and peers < target:
                attempt, pending = 0, join_delay(1, e['u'])
            elif pending is not None and peers == 0 and pending > join_delay(1, e['u']):
                pending = join_delay(1, e['u'])  # rule 6: alone, no long wait; attempt unchanged
        out.append({'pendingMs': pending, 'attempt': attempt, 'joined': joined})
    return out


def profile(options):
    """What a host configured with `options` runs (Protocol ids, the Kad-DHT and Gossipsub tables, R1, R2, R4, R6, R7,
    R13-R16, R18, R19), as the runner's `host.profile` reports it; InvalidParametersError for a configuration R4 refuses"""
    private = bool(options.get('swarmKey'))
    tr = options.get('transports', {})
    if private and (tr.get('quic') is True or tr.get('webrtcDirect') is True):
        raise HostError('InvalidParametersError', 'QUIC and WebRTC-direct bypass the pnet protector')
    quic = not private and tr.get('quic', True)
    webrtc = not private and tr.get('webrtcDirect', True)
    listen = options.get('listen')
    if listen is None:   # R2: loopback only; one address per transport (walk-through step 1)
        listen = ['/ip4/127.0.0.1/tcp/0'] + (['/ip4/127.0.0.1/udp/0/quic-v1'] if quic else []) + (['/ip4/127.0.0.1/udp/0/webrtc-direct'] if webrtc else [])
    for a in listen:
        if private and ('/tcp/' not in a or '/quic' in a or '/webrtc' in a or '/ws' in a):
            raise HostError('InvalidParametersError', f'{a} is not TCP: a private swarm runs over TCP only')
    return {
        'listenHosts': sorted({a.split('/')[2] for a in listen}),
        'tcpListen': any('/tcp/' in a for a in listen),
        'quic': quic, 'webrtcDirect': webrtc, 'noise': True, 'yamux': True,
        'protector': '/key/swarm/psk/1.0.0/' if private else None, 'pnetNonceTimeoutMs': 5000 if private else None,
        'identify': '/ipfs/id/1.0.0', 'ping': '/ipfs/ping/1.0.0', 'kadProtocol': '/neuroshard/kad/1.0.0', 'kadK': 20,
        'gossipsub': {'protocols': ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0'], 'D': 6, 'Dlo': 4, 'Dhi': 12, 'heartbeatMs': 1000,
                      'floodsub': False, 'signaturePolicy': 'StrictSign', 'maxRpcBytes': 4194304, 'maxOutboundBufferBytes': 64 * 1024 * 1024},
        'mdns': options.get('mdns') is True, 'upnp': options.get('upnp') is True, 'relayHop': options.get('relayServer') is True,
    }


# ---- README "Gossipsub", Signed messages (StrictSign) ----
import os as _os  # noqa: E402
import sys as _sys  # noqa: E402
_sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), '..', '..', 'layer-pool', 'python'))
import ed25519  # noqa: E402  (RFC 8032 in pure Python, specs/layer-pool/python/ed25519.py)

SIGN_PREFIX = b'libp2p-pubsub:'
MESSAGE_FIELDS = {1: 'from', 2: 'data', 3: 'seqno', 4: 'topic', 5: 'signature', 6: 'key'}


def _varint(n):
    out = b''
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def _read_varint(b, i):
    n, shift = 0, 0
    while True:
        if i >= len(b):
            raise ValueError('varint cut short')
        n |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


def _fields(b):
    """a protobuf message of length-delimited fields -> {field number: bytes} (last wins; other wire types skipped)"""
    out, i = {}, 0
    while i < len(b):
        tag, i = _read_varint(b, i)
        wire = tag & 7
        if wire == 2:
            n, i = _read_varint(b, i)
            if i + n > len(b):
                raise ValueError('length past the end')
            out[tag >> 3] = b[i:i + n]
            i += n
        elif wire == 0:
            v, i = _read_varint(b, i)
            out[tag >> 3] = v
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError('wire type')
    return out


def encode_gossip_message(m):
    """the protobuf encoding of a Message {from, data, seqno, topic, signature, key} (fields present, topic if not empty)"""
    out = b''
    for number, name in MESSAGE_FIELDS.items():
        v = m.get(name)
        if v is None or (name == 'topic' and v == ''):
            continue
        v = v.encode('utf-8') if name == 'topic' else v
        out += bytes([number << 3 | 2]) + _varint(len(v)) + v
    return out


def signed_bytes(m):
    return SIGN_PREFIX + encode_gossip_message({k: m.get(k) for k in ('from', 'data', 'seqno', 'topic')})


def _ed25519_public(key_protobuf):
    """a libp2p PublicKey protobuf (Type = 1 Ed25519, Data = 32 bytes) -> the 32 key bytes; ValueError otherwise"""
    f = _fields(key_protobuf)
    if f.get(1) != 1 or not isinstance(f.get(2), bytes) or len(f[2]) != 32:
        raise ValueError('not an Ed25519 PublicKey protobuf')
    return f[2]


def gossip_message(raw):
    """Signed messages: a received Message protobuf -> {valid, from, seqno, topic, data, messageId} or {valid: False, reason}"""
    f = _fields(raw)
    m = {name: f.get(number) for number, name in MESSAGE_FIELDS.items()}
    m['topic'] = (m['topic'] or b'').decode('utf-8')
    if m['seqno'] is None or len(m['seqno']) != 8:
        return {'valid': False, 'reason': 'invalid_seqno'}
    if m['signature'] is None:
        return {'valid': False, 'reason': 'invalid_signature'}
    frm, inline = m['from'], None
    try:
        if frm is None:
            raise ValueError('no from')
        code, i = _read_varint(frm, 0)
        n, i = _read_varint(frm, i)
        if len(frm) != i + n or code not in (0x00, 0x12) or (code == 0x12 and n != 32):
            raise ValueError('not a peer id multihash')
        if code == 0x00:
            inline = frm[i:]
            _ed25519_public(inline)
    except ValueError:
        return {'valid': False, 'reason': 'invalid_peerid'}
    key = m['key'] if m['key'] is not None else inline
    try:
        if key is None:
            raise ValueError('no key')
        pub = _ed25519_public(key)
        if m['key'] is not None and frm != b'\x00' + _varint(len(key)) + key:
            raise ValueError('key is not from\'s')
    except ValueError:
        return {'valid': False, 'reason': 'invalid_peerid'}
    if not ed25519.verify(pub, signed_bytes(m), m['signature']):
        return {'valid': False, 'reason': 'invalid_signature'}
    return {'valid': True, 'from': _b58(frm), 'seqno': m['seqno'].hex(), 'topic': m['topic'], 'data': (m['data'] or b'').hex(),
            'messageId': (key + m['seqno']).hex()}

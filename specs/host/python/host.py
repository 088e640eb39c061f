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

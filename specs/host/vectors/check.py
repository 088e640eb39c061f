#!/usr/bin/env python3
"""Checks the swarm-key-*.json and identity-*.json vectors against the spec text (README.md "Private swarms",
R3, "Vectors"), in Python with only the standard library:
- swarm keys: the parsing steps and canonical form of "Private swarms (pnet)";
- identity keys: the RFC 8032 §7.1 test-1 key's libp2p protobuf encoding and peer id (identity multihash of
  the public key protobuf, base58btc), and that the other files are refused by R3 (mode or content).
Run: python3 specs/host/vectors/check.py"""
import glob, json, os

here = os.path.dirname(os.path.abspath(__file__))

# ---- swarm keys ----
TRIM = set('\t\n\x0b\x0c\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff') | {chr(c) for c in range(0x2000, 0x200b)}

def strip(s):
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
    lines = [strip(l) for l in strip(text.replace('\r\n', '\n')).split('\n')]
    if len(lines) != 3 or lines[0] != '/key/swarm/psk/1.0.0/' or lines[1] != '/base16/':
        return None
    if len(lines[2]) != 64 or any(c not in '0123456789abcdefABCDEF' for c in lines[2]):
        return None
    return '/key/swarm/psk/1.0.0/\n/base16/\n' + lines[2].lower()

n = 0
for f in sorted(glob.glob(os.path.join(here, 'swarm-key-*.json'))):
    v = json.load(open(f, encoding='utf-8'))
    got = parse_swarm_key(v['input'].encode('utf-8', 'surrogatepass'))
    assert got == v.get('canonical'), f
    assert (got is None) == ('error' in v), f
    n += 1

# ---- identity keys ----
SEED = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')   # RFC 8032 §7.1 test 1
PUB = bytes.fromhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

def b58(b):
    x, s = int.from_bytes(b, 'big'), ''
    while x:
        x, r = divmod(x, 58)
        s = B58[r] + s
    return '1' * (len(b) - len(b.lstrip(b'\0'))) + s

def key_pb(key_type, data):   # libp2p crypto.proto: { KeyType Type = 1; bytes Data = 2; }
    return bytes([0x08, key_type, 0x12, len(data)]) + data

good = key_pb(1, SEED + PUB)
peer = b58(bytes([0x00, 36]) + key_pb(1, PUB))
for f in sorted(glob.glob(os.path.join(here, 'identity-*.json'))):
    v = json.load(open(f, encoding='utf-8'))
    data, mode = bytes.fromhex(v['fileHex']), int(v['mode'], 8)
    if mode & 0o077:
        assert v.get('error') == 'InsecureIdentityKeyError', f
    elif data != good:
        assert v.get('error') == 'MalformedIdentityKeyError', f
    else:
        assert v.get('peerId') == peer, f
    n += 1
print(f'host vectors: {n} swarm-key and identity files check out')

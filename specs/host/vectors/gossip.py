#!/usr/bin/env python3
"""Writes gossip-messages.json: gossipsub messages as a host receives them, with the outcome README "Gossipsub",
Signed messages, gives each (StrictSign: the checks in their order, the signed bytes, the message id). Python standard
library only; Ed25519 from specs/layer-pool/python/ed25519.py (RFC 8032), the RFC 8032 §7.1 test keys 1 and 2.

Each case states its expected outcome by hand (`valid`, or the `reason` of the check that fails first); this program
builds the bytes, fills in the fields of a valid outcome (peer id, message id) from the spec's definitions, and refuses
to write anything when specs/host/python/host.py (written from the same text) disagrees with a case.

    python3 gossip.py           # writes gossip-messages.json next to this file
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
import host as H  # noqa: E402
from host import ed25519  # noqa: E402

SEED1 = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')   # RFC 8032 §7.1 test 1
SEED2 = bytes.fromhex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb')   # test 2


def key_protobuf(seed):
    return bytes([0x08, 0x01, 0x12, 0x20]) + ed25519.public_key(seed)   # PublicKey { Type = 1 (Ed25519), Data }


def peer_id(seed):
    k = key_protobuf(seed)
    return bytes([0x00, len(k)]) + k   # identity multihash of the PublicKey protobuf


SEQNO = bytes.fromhex('0000018c2f5e3a01')
TOPIC = '/neuroshard/test/1/chat'
DATA = b'hello, swarm'


def signed(seed=SEED1, drop=(), **over):
    """a message signed by `seed` over its from/data/seqno/topic; `over` replaces fields after signing
    (`None` removes one), `drop` leaves fields out before signing"""
    m = {'from': peer_id(seed), 'data': DATA, 'seqno': SEQNO, 'topic': TOPIC}
    for k in drop:
        m.pop(k, None)
    m['signature'] = ed25519.sign(seed, H.signed_bytes(m))
    m['key'] = key_protobuf(seed)
    for k, v in over.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


def main():
    sig_no_prefix = ed25519.sign(SEED1, H.encode_gossip_message({'from': peer_id(SEED1), 'data': DATA, 'seqno': SEQNO, 'topic': TOPIC}))
    seven = {'from': peer_id(SEED1), 'data': DATA, 'seqno': SEQNO[:7], 'topic': TOPIC}
    seven_sig = ed25519.sign(SEED1, H.signed_bytes(seven))
    cases = [
        ('signed by test key 1, with its key', signed(), True),
        ('signed, key left out: the Ed25519 key is read from `from` (an identity multihash)', signed(key=None), True),
        ('signed with no data field (absent, not empty)', signed(drop=('data',)), True),
        ('seqno absent (check 1)', signed(seqno=None), 'invalid_seqno'),
        ('seqno of 7 bytes, signed as such (check 1)', {**seven, 'signature': seven_sig, 'key': key_protobuf(SEED1)}, 'invalid_seqno'),
        ('seqno and signature both absent: check 1 comes first', signed(seqno=None, signature=None), 'invalid_seqno'),
        ('signature absent (check 2)', signed(signature=None), 'invalid_signature'),
        ('signature and from both absent: check 2 comes first', signed(signature=None, **{'from': None}), 'invalid_signature'),
        ('from absent (check 3)', signed(**{'from': None}), 'invalid_peerid'),
        ('from is not a multihash (check 3)', signed(**{'from': b'\xff\x01'}), 'invalid_peerid'),
        ('key is test key 2\'s, from is test key 1\'s peer id (check 4)', signed(key=key_protobuf(SEED2)), 'invalid_peerid'),
        ('key is not a PublicKey protobuf (check 4)', signed(key=b'\x00\x00'), 'invalid_peerid'),
        ('from is a sha2-256 peer id and key is absent: no key to verify with (check 4)', signed(key=None, **{'from': bytes([0x12, 0x20]) + bytes(range(32))}), 'invalid_peerid'),
        ('data changed after signing (check 5)', signed(data=b'hello, swarm!'), 'invalid_signature'),
        ('topic changed after signing (check 5)', signed(topic='/neuroshard/test/1/other'), 'invalid_signature'),
        ('seqno changed after signing (check 5)', signed(seqno=bytes.fromhex('0000018c2f5e3a02')), 'invalid_signature'),
        ('signature of 63 bytes (check 5)', signed(signature=signed()['signature'][:63]), 'invalid_signature'),
        ('signed without the "libp2p-pubsub:" prefix (check 5)', signed(signature=sig_no_prefix), 'invalid_signature'),
        ('signed by test key 2, from and key test key 1\'s (check 5)', signed(signature=signed(SEED2)['signature']), 'invalid_signature'),
    ]
    out = []
    for why, m, want in cases:
        raw = H.encode_gossip_message(m)
        c = {'description': why, 'message': raw.hex()}
        if want is True:
            key = m.get('key') or key_protobuf(SEED1)
            c.update(valid=True, **{'from': H._b58(m['from'])}, seqno=m['seqno'].hex(), topic=m['topic'], data=(m.get('data') or b'').hex(),
                     messageId=(key + m['seqno']).hex())
        else:
            c.update(valid=False, reason=want)
        got = H.gossip_message(raw)
        if got != {k: v for k, v in c.items() if k not in ('description', 'message')}:
            sys.exit(f'{why}: host.py says {got}')
        out.append(c)
    doc = {'description': 'host README "Gossipsub", Signed messages: gossipsub Message protobufs as received, and the outcome (StrictSign '
                          'checks 1-5 in order, the message id). Written by gossip.py (RFC 8032 §7.1 test keys 1 and 2).',
           'cases': out}
    with open(os.path.join(HERE, 'gossip-messages.json'), 'w', encoding='utf-8') as f:
        f.write(json.dumps(doc, indent=1) + '\n')
    print(f'wrote gossip-messages.json: {len(out)} cases')


if __name__ == '__main__':
    main()

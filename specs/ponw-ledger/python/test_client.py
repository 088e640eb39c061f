"""Unit tests of the Python ledger client (python3 -m unittest discover -s specs/ponw-ledger/python).
Expected values come from outside the client: published secp256k1 / RFC 6979 vectors, the spec text's arithmetic,
or properties (round trips, order independence, the supply invariant)."""
import hashlib
import json
import os
import random
import unittest

from neuroshard_ledger import (Chain, InsufficientQuorumError, InvalidGenesisError, InvalidMessageError,
                               InvalidSignatureError, State, Wallet, canonical_json, decode_amount, encode_amount,
                               encode_certificate, parse_certificate, parse_signed_tx)
from neuroshard_ledger import pb, secp256k1

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, '..', 'vectors', 'genesis.json'), encoding='utf-8') as f:
    GENESIS = json.load(f)
NEURO = 10 ** 18


class Secp256k1(unittest.TestCase):
    def test_published_rfc6979_vector(self):
        # secp256k1 + RFC 6979 (HMAC-SHA256) vector used by trezor-crypto and python-ecdsa: key 1, sha256("Satoshi Nakamoto")
        sig = secp256k1.sign_hash((1).to_bytes(32, 'big'), hashlib.sha256(b'Satoshi Nakamoto').digest())
        self.assertEqual(sig.hex(), '934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8'
                                    '2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5')

    def test_generator_public_key(self):
        self.assertEqual(secp256k1.public_key((1).to_bytes(32, 'big')).hex(),
                         '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798')

    def test_sign_verify_low_s_only(self):
        w = Wallet.from_seed('test')
        for i in range(8):
            d = hashlib.sha256(bytes([i])).digest()
            sig = w.sign_digest(d)
            self.assertLessEqual(int.from_bytes(sig[32:], 'big'), secp256k1.HALF_N)
            self.assertTrue(secp256k1.verify(sig, d, w.public_key))
            high = sig[:32] + (secp256k1.N - int.from_bytes(sig[32:], 'big')).to_bytes(32, 'big')
            self.assertFalse(secp256k1.verify(high, d, w.public_key))
            self.assertFalse(secp256k1.verify(sig, hashlib.sha256(d).digest(), w.public_key))

    def test_not_a_point(self):
        x = next(x for x in range(1, 100) if secp256k1.decompress(b'\x02' + x.to_bytes(32, 'big')) is None)
        self.assertFalse(secp256k1.verify(b'\x01' * 64, bytes(32), b'\x02' + x.to_bytes(32, 'big')))

    @unittest.skipUnless(__import__('importlib').util.find_spec('cryptography'), 'cryptography (OpenSSL) not installed')
    def test_openssl_agrees(self):
        # OpenSSL's ecdsa-with-SHA256 over the digest d is the spec's scheme
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        w = Wallet.from_seed('openssl')
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), w.public_key)
        d = hashlib.sha256(b'x').digest()
        sig = w.sign_digest(d)
        key.verify(encode_dss_signature(int.from_bytes(sig[:32], 'big'), int.from_bytes(sig[32:], 'big')), d, ec.ECDSA(hashes.SHA256()))


class Encoding(unittest.TestCase):
    def test_amounts(self):
        for v, b in [(0, ''), (1, '01'), (256, '0100'), (2 ** 128 - 1, 'ff' * 16)]:
            self.assertEqual(encode_amount(v).hex(), b)
            self.assertEqual(decode_amount(bytes.fromhex(b)), v)
        for bad in [b'\x00\x01', b'\x01' * 17]:
            with self.assertRaises(Exception) as e:
                decode_amount(bad)
            self.assertEqual(e.exception.name, 'InvalidAmountError')

    def test_protobuf_rules(self):
        self.assertEqual(pb.encode('Tx', {'withdraw': {}}).hex(), '6a00')
        self.assertEqual(pb.encode('TrainingProof', {'shard_ids': [0, 513]}).hex(), '1800188104')
        with self.assertRaises(pb.PbError):
            pb.decode('TrainingProof', bytes.fromhex('1a03008104'))
        with self.assertRaises(pb.PbError):
            pb.decode('Tx', bytes.fromhex('980601'))

    def test_canonical_json(self):
        self.assertEqual(canonical_json({'b': [1, -1], 'a': 'x"\n\x01é', 'c': None, 'B': True}), '{"B":true,"a":"x\\"\\n\\u0001é","b":["1","-1"]}')


class Messages(unittest.TestCase):
    chain = Chain(GENESIS)
    validators = [Wallet.from_seed(f'validator-{i}') for i in range(4)]
    alice = Wallet.from_seed('alice')

    def test_round_trip_and_errors(self):
        s = self.alice.sign_tx(self.chain, 3, 1, 'stake', amount=NEURO)
        t = parse_signed_tx(self.chain, s)
        self.assertEqual((t.kind, t.sequence, t.epoch, t.sender), ('stake', 3, 1, self.alice.address))
        bad = bytearray(s)
        bad[-1] ^= 1
        with self.assertRaises(InvalidSignatureError):
            parse_signed_tx(self.chain, bytes(bad))
        with self.assertRaises(InvalidMessageError):
            parse_signed_tx(self.chain, s + b'\x00')

    def test_quorum(self):
        s = self.alice.sign_tx(self.chain, 0, 0, 'stake', amount=NEURO)
        t = parse_signed_tx(self.chain, s)
        votes = [w.sign_vote(self.chain, i, t.id) for i, w in enumerate(self.validators)]
        parse_certificate(self.chain, encode_certificate(s, votes[:3]))
        with self.assertRaises(InsufficientQuorumError):
            parse_certificate(self.chain, encode_certificate(s, votes[:2]))
        # voting powers of §6.2: with validator 0 slashed to nothing, 1, 2 and 3 are needed
        with self.assertRaises(InsufficientQuorumError):
            parse_certificate(self.chain, encode_certificate(s, votes[:3]), powers=[0, 1000, 1000, 1000])

    def test_genesis_refused(self):
        g = json.loads(json.dumps(GENESIS))
        g['params']['slashFraction'] = {'num': '3', 'den': '2'}
        with self.assertRaises(InvalidGenesisError):
            Chain(g)


class StateMachine(unittest.TestCase):
    chain = Chain(GENESIS)
    v = [Wallet.from_seed(f'validator-{i}') for i in range(4)]
    w = [Wallet.from_seed(n) for n in ('alice', 'bob', 'carol', 'dave', 'erin')]

    def final(self, signed):
        t = parse_signed_tx(self.chain, signed)
        return parse_certificate(self.chain, encode_certificate(signed, [x.sign_vote(self.chain, i, t.id) for i, x in enumerate(self.v[:3])]))[0]

    def test_worked_examples(self):
        a, b = self.w[0], self.w[1]
        txs = [self.final(a.sign_tx(self.chain, 0, 0, 'transfer', to=b.address, amount=3 * NEURO // 2)),
               self.final(b.sign_tx(self.chain, 0, 0, 'stake', amount=50 * NEURO)),
               # uptime: 0.1 NEURO/min · 60 min · (1 + 0.1 · 50/1000) = 6.03 NEURO (spec §7, §12 defaults)
               self.final(b.sign_tx(self.chain, 1, 0, 'uptime', epoch=0, heartbeats=60, stake_claim=50 * NEURO))]
        s = State(self.chain)
        s.add_final(txs)
        self.assertEqual(s.get(a.address)['balance'], 1000 * NEURO - 3 * NEURO // 2)
        self.assertEqual(s.get(b.address)['balance'], 100 * NEURO + 3 * NEURO // 2 - 50 * NEURO + 603 * NEURO // 100)
        self.assertEqual(s.totals['minted'], 603 * NEURO // 100)

    def test_random_histories_are_order_independent(self):
        rnd = random.Random(7)
        for trial in range(3):
            seqs = {x.address: 0 for x in self.w}
            txs = []
            for _ in range(25):
                x = rnd.choice(self.w)
                kind = rnd.choice(['transfer', 'transfer', 'stake', 'unbond', 'withdraw', 'uptime'])
                fields = {'transfer': lambda: dict(to=rnd.choice(self.w).address, amount=rnd.randint(1, 60) * NEURO),
                          'stake': lambda: dict(amount=rnd.randint(1, 30) * NEURO),
                          'unbond': lambda: dict(amount=rnd.randint(1, 20) * NEURO),
                          'withdraw': lambda: dict(max_entries=rnd.randint(0, 2)),
                          'uptime': lambda: dict(epoch=rnd.randint(0, 3), heartbeats=rnd.randint(1, 60))}[kind]()
                txs.append(self.final(x.sign_tx(self.chain, seqs[x.address], rnd.randint(0, 12), kind, **fields)))
                seqs[x.address] += 1
            hashes = set()
            for _ in range(4):
                s = State(self.chain)
                for t in rnd.sample(txs, len(txs)):
                    s.add_final([t])
                t = s.totals
                self.assertEqual(s.holdings(), t['genesisSupply'] + t['minted'] - t['burned'])
                self.assertTrue(all(a['balance'] >= 0 for a in s.accounts.values()))
                hashes.add(s.state_hash())
            self.assertEqual(len(hashes), 1)

    def test_waiting_and_gap_are_queued(self):
        d = self.w[3]  # dave: nothing at genesis
        t0 = self.final(d.sign_tx(self.chain, 0, 0, 'transfer', to=self.w[0].address, amount=1))
        t2 = self.final(d.sign_tx(self.chain, 2, 0, 'stake', amount=1))
        s = State(self.chain)
        s.add_final([t0, t2])
        self.assertEqual(json.loads(s.canonical())['queued'], sorted([t0.id_hex, t2.id_hex]))
        self.assertEqual(json.loads(s.canonical())['outcomes'], [])


class KeystoreAndBinding(unittest.TestCase):
    def test_published_primitive_vectors(self):
        from neuroshard_ledger.keystore import aead_chacha20_poly1305, hchacha20
        from neuroshard_ledger.binding import ed25519_public_key, ed25519_sign, peer_id_of_ed25519
        # draft-irtf-cfrg-xchacha-03 §2.2.1
        self.assertEqual(hchacha20(bytes(range(32)), bytes.fromhex('000000090000004a0000000031415927')).hex(),
                         '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc')
        # RFC 8439 §2.8.2 (tag)
        pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
        out = aead_chacha20_poly1305(bytes(range(0x80, 0xa0)), bytes.fromhex('070000004041424344454647'), pt, bytes.fromhex('50515253c0c1c2c3c4c5c6c7'))
        self.assertEqual(out[-16:].hex(), '1ae10b594f09e26a7e902ecbd0600691')
        # RFC 8032 §7.1 test 1; its libp2p peer id is specs/host/vectors/identity-valid.json's
        sk = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
        self.assertEqual(ed25519_sign(sk, b'').hex(), 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b')
        with open(os.path.join(HERE, '..', '..', 'host', 'vectors', 'identity-valid.json'), encoding='utf-8') as f:
            self.assertEqual(peer_id_of_ed25519(ed25519_public_key(sk)), json.load(f)['peerId'])

    def test_keystore_file_mode_and_round_trip(self):
        import stat
        import tempfile
        from neuroshard_ledger.keystore import decrypt_keystore, save_keystore, KeystoreError
        w = Wallet.from_seed('keystore')
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'wallet.json')
            save_keystore(path, w, 'pass', n=1024)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path, encoding='utf-8') as f:
                ks = json.load(f)
        self.assertEqual(decrypt_keystore(ks, 'pass').address, w.address)
        with self.assertRaises(KeystoreError):
            decrypt_keystore(ks, 'Pass')


class Readme(unittest.TestCase):
    def test_example_runs_and_matches_the_vectors(self):
        import contextlib
        import io
        import re
        with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
            code = re.search(r'```python\n(.*?)```', f.read(), re.S).group(1)
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(os.path.join(HERE, '..', '..', '..'))
        try:
            with contextlib.redirect_stdout(out):
                exec(code, {})
        finally:
            os.chdir(cwd)
        with open(os.path.join(HERE, '..', 'vectors', 'preimage.json'), encoding='utf-8') as f:
            digest = json.load(f)['digest']
        self.assertEqual(out.getvalue().split()[:2], [digest, str(101500000000000000000)])


if __name__ == '__main__':
    unittest.main()

"""The ledger rules of specs/ponw-ledger/README.md (§2, §5, §5.1, §5.2, §6.2, §7, §7.2, §8 assignShards, §12),
written from the spec text. Money is Python int (arbitrary precision) in base units; `floor` is the only rounding.
"""
import hashlib
import json
import re
from fractions import Fraction

from . import pb
from . import secp256k1

__all__ = [
    'LedgerError', 'InvalidMessageError', 'InvalidSignatureError', 'InvalidAmountError', 'WrongChainError',
    'InsufficientQuorumError', 'InvalidGenesisError',
    'digest', 'address_of', 'encode_amount', 'decode_amount', 'canonical_json', 'Chain', 'Wallet', 'LedgerTx',
    'tx_id', 'vote_digest', 'parse_signed_tx', 'parse_certificate', 'encode_certificate', 'verify_vote',
    'assign_shards', 'designated_reporter', 'check_evidence', 'State', 'KINDS',
    'MAX_SIGNED_TX_BYTES', 'MAX_CERTIFICATE_BYTES', 'shard_manifest_hash', 'data_leaf', 'merkle_root', 'merkle_proof',
    'verify_merkle_proof', 'challenge_indexes', 'sample_batches', 'sample_segments',
]

MAX_SIGNED_TX_BYTES = 16 * 1024
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_AMOUNT = (1 << 128) - 1
KINDS = ['transfer', 'stake', 'unbond', 'withdraw', 'training', 'inference', 'uptime', 'data', 'payment', 'slash']
ACCOUNT_EQUIVOCATION = 1
VALIDATOR_EQUIVOCATION = 2


class LedgerError(Exception):
    name = 'LedgerError'


class InvalidMessageError(LedgerError):
    name = 'InvalidMessageError'


class InvalidSignatureError(LedgerError):
    name = 'InvalidSignatureError'


class InvalidAmountError(LedgerError):
    name = 'InvalidAmountError'


class WrongChainError(LedgerError):
    name = 'WrongChainError'


class InsufficientQuorumError(LedgerError):
    name = 'InsufficientQuorumError'


class InvalidGenesisError(LedgerError):
    name = 'InvalidGenesisError'


# ---- §2 definitions ----

def digest(domain: str, *parts: bytes) -> bytes:
    """sha256(utf8(domain) || 0x00 || parts...)"""
    h = hashlib.sha256(domain.encode('utf-8') + b'\x00')
    for p in parts:
        h.update(p)
    return h.digest()


def address_of(public_key: bytes) -> str:
    if len(public_key) != 33:
        raise ValueError('public key must be 33 bytes')
    return digest('neuroshard/ledger/v1/address', public_key)[:20].hex()


def encode_amount(v: int) -> bytes:
    if not isinstance(v, int) or v < 0 or v > MAX_AMOUNT:
        raise InvalidAmountError('amount out of range')
    return b'' if v == 0 else v.to_bytes((v.bit_length() + 7) // 8, 'big')


def decode_amount(b: bytes) -> int:
    if len(b) > 16:
        raise InvalidAmountError('amount longer than 16 bytes')
    if len(b) > 0 and b[0] == 0:
        raise InvalidAmountError('amount has a leading zero byte')
    return int.from_bytes(b, 'big')


def _json_string(s: str) -> str:
    # JSON.stringify's escaping: " \\ \b \f \n \r \t, other code points below 0x20 as \u00xx, the rest verbatim
    return json.dumps(s, ensure_ascii=False)


def canonical_json(v) -> str:
    """§2 canonical JSON: keys sorted by UTF-16 code unit, no whitespace, integers as decimal strings, None omitted
    from objects"""
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return '"' + str(v) + '"'
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(canonical_json(x) for x in v) + ']'
    if isinstance(v, dict):
        keys = sorted((k for k in v if v[k] is not None), key=lambda k: k.encode('utf-16-be'))
        return '{' + ','.join(_json_string(k) + ':' + canonical_json(v[k]) for k in keys) + '}'
    raise TypeError(f'cannot canonicalise {type(v).__name__}')


# ---- §12 genesis ----

RATIONALS = ['uptimeRewardPerMinute', 'inferenceRewardPerMillionTokens', 'computeRewardPerBatch', 'dataRewardPerSample',
             'qualityBonus', 'stakingBeta', 'stakingMultiplierCap', 'slashFraction', 'reporterShare', 'inferenceFeeBurn']
INTEGERS = ['qualityLossThresholdMicro', 'stakingUnit', 'unbondingEpochs', 'epochMs', 'roundMs', 'epochWindow',
            'roundWindow', 'heartbeatSeconds', 'maxInferenceTokensPerSecond', 'maxTrainingTokensPerProof',
            'maxBatchesPerProof', 'maxSamplesPerProof', 'totalShards', 'shardsPerAssignment']


def _int(v, what):
    if isinstance(v, bool):
        raise InvalidGenesisError(f'{what} is not an integer')
    if isinstance(v, int) and abs(v) <= 2 ** 53 - 1:   # a JSON number: exact only below 2^53
        return v
    if isinstance(v, str) and re.fullmatch(r'-?[0-9]+', v):
        return int(v)
    raise InvalidGenesisError(f'{what} is not an integer')


def _hex(s, n=None):
    if not isinstance(s, str) or not re.fullmatch(r'(?:[0-9a-f]{2})*', s) or (n is not None and len(s) != 2 * n):
        raise ValueError('not lowercase hex')
    return bytes.fromhex(s)


class Chain:
    """A genesis (§12) and what follows from it: the chain id (§2), validator keys, addresses and stakes"""

    def __init__(self, raw: dict):
        try:
            g = {
                'network': raw['network'],
                'genesisTimeMs': _int(raw['genesisTimeMs'], 'genesisTimeMs'),
                'validators': [{'publicKey': v['publicKey'], 'stake': _int(v['stake'], 'stake')} for v in raw['validators']],
                'allocations': [{'address': a['address'], 'balance': _int(a['balance'], 'balance')} for a in raw['allocations']],
                'params': {},
            }
            for k in RATIONALS:
                r = raw['params'][k]
                g['params'][k] = {'num': _int(r['num'], k), 'den': _int(r['den'], k)}
            for k in INTEGERS:
                g['params'][k] = _int(raw['params'][k], k)
            if raw.get('dataManifestHash') is not None:
                g['dataManifestHash'] = raw['dataManifestHash']
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidGenesisError(f'genesis field missing or mistyped: {e}')
        self.genesis = g
        self._validate()
        self.chain_id = digest('neuroshard/ledger/v1/genesis', canonical_json(g).encode('utf-8'))
        self.validator_keys = [bytes.fromhex(v['publicKey']) for v in g['validators']]
        self.validator_addresses = [address_of(k) for k in self.validator_keys]
        self.stakes = [v['stake'] for v in g['validators']]
        self.total_stake = sum(self.stakes)
        p = g['params']
        self.params = {k: Fraction(p[k]['num'], p[k]['den']) for k in RATIONALS}
        self.params.update({k: p[k] for k in INTEGERS})

    def _validate(self):
        g = self.genesis
        p = g['params']
        vs = g['validators']
        if not 1 <= len(vs) <= 1000:
            raise InvalidGenesisError('genesis needs 1..1000 validators')
        seen = set()
        for v in vs:
            try:
                key = _hex(v['publicKey'], 33)
            except ValueError:
                raise InvalidGenesisError('validator key is not 33 bytes of lowercase hex')
            if secp256k1.decompress(key) is None or v['publicKey'] in seen:
                raise InvalidGenesisError('validator keys must be distinct compressed secp256k1 points')
            seen.add(v['publicKey'])
            if not 0 < v['stake'] <= MAX_AMOUNT:
                raise InvalidGenesisError('validator stake must be positive and < 2^128')
        for a in g['allocations']:
            if not isinstance(a['address'], str) or not re.fullmatch(r'[0-9a-f]{40}', a['address']):
                raise InvalidGenesisError('allocation address is not 20 bytes of lowercase hex')
            if not 0 <= a['balance'] <= MAX_AMOUNT:
                raise InvalidGenesisError('allocation out of range')
        if 'dataManifestHash' in g and (not isinstance(g['dataManifestHash'], str) or not re.fullmatch(r'[0-9a-f]{64}', g['dataManifestHash'])):
            raise InvalidGenesisError('dataManifestHash must be 32 bytes of lowercase hex')
        if not isinstance(g['network'], str) or len(g['network'].encode('utf-16-le')) // 2 > 256:
            raise InvalidGenesisError('network must be a string of at most 256 characters')
        if not 0 <= g['genesisTimeMs'] <= 2 ** 53 - 1:
            raise InvalidGenesisError('genesisTimeMs must be a non-negative safe integer')
        for k in ['epochMs', 'roundMs', 'heartbeatSeconds', 'maxInferenceTokensPerSecond', 'maxBatchesPerProof', 'totalShards', 'shardsPerAssignment']:
            if not 0 < p[k] <= 2 ** 53 - 1:
                raise InvalidGenesisError(f'params.{k} must be a positive integer')
        for k in ['epochWindow', 'roundWindow']:
            if not 0 <= p[k] <= 1000:
                raise InvalidGenesisError(f'params.{k} must be in [0, 1000]')
        if p['heartbeatSeconds'] * 1000 > p['epochMs']:
            raise InvalidGenesisError('heartbeatSeconds must fit in an epoch')
        if p['maxBatchesPerProof'] > 10 ** 6 or p['totalShards'] > 0xFFFFFFFF:
            raise InvalidGenesisError('maxBatchesPerProof <= 10^6 and totalShards < 2^32')
        for k in ['unbondingEpochs', 'stakingUnit', 'maxTrainingTokensPerProof', 'maxSamplesPerProof']:
            if p[k] <= 0:
                raise InvalidGenesisError(f'params.{k} must be positive')
        if p['qualityLossThresholdMicro'] < 0:
            raise InvalidGenesisError('qualityLossThresholdMicro must be >= 0')
        for k in RATIONALS:
            if p[k]['den'] <= 0 or p[k]['num'] < 0:
                raise InvalidGenesisError(f'params.{k} must be a non-negative rational with a positive denominator')
        for k in ['qualityBonus', 'stakingMultiplierCap']:
            if p[k]['num'] < p[k]['den']:
                raise InvalidGenesisError(f'params.{k} must be at least 1')
        if p['shardsPerAssignment'] > p['totalShards']:
            raise InvalidGenesisError('shardsPerAssignment > totalShards')
        for k in ['slashFraction', 'reporterShare', 'inferenceFeeBurn']:
            if p[k]['num'] > p[k]['den']:
                raise InvalidGenesisError(f'params.{k} must be in [0, 1]')

    @property
    def chain_id_hex(self) -> str:
        return self.chain_id.hex()

    def locked_stake(self, address: str) -> int:
        return self.stakes[self.validator_addresses.index(address)] if address in self.validator_addresses else 0


# ---- keys and signing (header "Signatures") ----

AMOUNT_FIELDS = {('transfer', 'amount'), ('stake', 'amount'), ('unbond', 'amount'), ('training', 'stake_claim'),
                 ('inference', 'stake_claim'), ('uptime', 'stake_claim'), ('data', 'stake_claim'), ('payment', 'price_per_token')}
BODY_TYPES = {'transfer': 'Transfer', 'stake': 'Stake', 'unbond': 'Unbond', 'withdraw': 'Withdraw', 'training': 'TrainingProof',
              'inference': 'InferenceProof', 'uptime': 'UptimeProof', 'data': 'DataProof', 'payment': 'InferencePayment',
              'slash': 'SlashReport'}


class Wallet:
    def __init__(self, secret: bytes):
        self.secret = bytes(secret)
        self.public_key = secp256k1.public_key(self.secret)
        self.address = address_of(self.public_key)

    @staticmethod
    def from_seed(seed: str) -> 'Wallet':
        """Test keys of vectors/keys.json: secret = digest("neuroshard/ledger/v1/test-key", utf8(seed))"""
        return Wallet(digest('neuroshard/ledger/v1/test-key', seed.encode('utf-8')))

    def sign_digest(self, d: bytes) -> bytes:
        return secp256k1.sign(self.secret, d)

    def build_tx(self, chain: Chain, sequence: int, epoch: int, kind: str, /, **fields) -> bytes:
        """Canonical Tx bytes; amount fields may be given as int, addresses and hashes as hex or bytes"""
        body = pb.default(BODY_TYPES[kind])
        for k, v in fields.items():
            if k not in body:
                raise ValueError(f'{kind} has no field {k}')
            if (kind, k) in AMOUNT_FIELDS and isinstance(v, int):
                v = encode_amount(v)
            elif isinstance(v, str):
                v = bytes.fromhex(v)
            body[k] = v
        tx = {'version': 1, 'chain_id': chain.chain_id, 'sender': self.public_key, 'sequence': sequence, 'epoch': epoch, kind: body}
        return pb.encode('Tx', tx)

    def sign_tx(self, chain: Chain, sequence: int, epoch: int, kind: str, /, **fields) -> bytes:
        """SignedTx bytes"""
        tx = self.build_tx(chain, sequence, epoch, kind, **fields)
        return pb.encode('SignedTx', {'tx': tx, 'signature': self.sign_digest(tx_id(chain.chain_id, tx))})

    def sign_vote(self, chain: Chain, validator: int, txid: bytes) -> dict:
        return {'validator': validator, 'signature': self.sign_digest(vote_digest(chain.chain_id, txid))}


def tx_id(chain_id: bytes, tx_bytes: bytes) -> bytes:
    return digest('neuroshard/ledger/v1/tx', chain_id, tx_bytes)


def vote_digest(chain_id: bytes, txid: bytes) -> bytes:
    return digest('neuroshard/ledger/v1/vote', chain_id, txid)


def verify_vote(chain: Chain, txid: bytes, validator: int, signature: bytes) -> bool:
    return 0 <= validator < len(chain.validator_keys) and secp256k1.verify(signature, vote_digest(chain.chain_id, txid), chain.validator_keys[validator])


# ---- §5.2 stateless checks ----

class LedgerTx:
    def __init__(self, signed, tx_bytes, signature, tx, txid, kind):
        self.signed = signed
        self.tx_bytes = tx_bytes
        self.signature = signature
        self.tx = tx
        self.id = txid
        self.id_hex = txid.hex()
        self.sender_key = tx['sender']
        self.sender = address_of(tx['sender'])
        self.sequence = tx['sequence']
        self.epoch = tx['epoch']
        self.kind = kind
        self.body = tx[kind]


def _len(b, n, what):
    if len(b) != n:
        raise InvalidMessageError(f'{what} must be {n} bytes')


def _max_len(b, n, what):
    if len(b) > n:
        raise InvalidMessageError(f'{what} must be at most {n} bytes')


def _positive(b, what):
    if decode_amount(b) == 0:
        raise InvalidAmountError(f'{what} must be positive')


def _check_body(kind, b):
    if kind == 'transfer':
        _len(b['to'], 20, 'transfer.to'); _positive(b['amount'], 'transfer.amount'); _max_len(b['memo'], 64, 'transfer.memo')
    elif kind in ('stake', 'unbond'):
        _positive(b['amount'], f'{kind}.amount')
    elif kind == 'training':
        _len(b['model_hash'], 32, 'model_hash'); _len(b['pseudo_gradient_hash'], 32, 'pseudo_gradient_hash')
        decode_amount(b['stake_claim'])
        if not 1 <= len(b['shard_ids']) <= 64:
            raise InvalidMessageError('shard_ids must hold 1..64 ids')
        if b['batches'] == 0 or len(b['batch_loss_micro']) != b['batches']:
            raise InvalidMessageError('batch_loss_micro must hold one loss per batch')
        if b['checkpoint_interval'] > b['batches']:
            raise InvalidMessageError('checkpoint_interval exceeds batches')
        k = b['checkpoint_interval'] or b['batches']
        if len(b['checkpoint_hashes']) != -(-b['batches'] // k) - 1:
            raise InvalidMessageError('checkpoint_hashes must hold ceil(batches / k) - 1 hashes')
        for h in b['checkpoint_hashes']:
            _len(h, 32, 'checkpoint hash')
        if not any(b['pseudo_gradient_hash']):
            raise InvalidMessageError('pseudo_gradient_hash is all zero')
    elif kind == 'inference':
        _max_len(b['session_id'], 32, 'session_id'); _len(b['output_hash'], 32, 'output_hash'); decode_amount(b['stake_claim'])
        if b['tokens'] == 0 or b['ended_ms'] <= b['started_ms']:
            raise InvalidMessageError('inference proof needs tokens > 0 and ended_ms > started_ms')
    elif kind == 'uptime':
        decode_amount(b['stake_claim'])
        if b['heartbeats'] == 0:
            raise InvalidMessageError('heartbeats must be positive')
    elif kind == 'data':
        _len(b['data_hash'], 32, 'data_hash'); decode_amount(b['stake_claim'])
        if b['samples'] == 0:
            raise InvalidMessageError('samples must be positive')
    elif kind == 'payment':
        _len(b['provider'], 20, 'provider'); _positive(b['price_per_token'], 'price_per_token'); _max_len(b['session_id'], 32, 'session_id')
        if b['tokens'] == 0:
            raise InvalidMessageError('tokens must be positive')
    elif kind == 'slash':
        if b['kind'] not in (ACCOUNT_EQUIVOCATION, VALIDATOR_EQUIVOCATION):
            raise InvalidMessageError('unknown evidence kind')


def _canonical(name, data):
    try:
        msg = pb.decode(name, data)
    except pb.PbError as e:
        raise InvalidMessageError(f'malformed {name}: {e}')
    if pb.encode(name, msg) != data:
        raise InvalidMessageError(f'{name} is not in canonical form')
    return msg


def parse_signed_tx(chain: Chain, signed: bytes, verify_signature=True) -> LedgerTx:
    """§5.2 in its normative order; raises the first failing check's error"""
    if len(signed) > MAX_SIGNED_TX_BYTES:
        raise InvalidMessageError('SignedTx larger than 16 KiB')
    st = _canonical('SignedTx', signed)
    tx = _canonical('Tx', st['tx'])
    if tx['version'] != 1:
        raise InvalidMessageError('unsupported version')
    if tx['chain_id'] != chain.chain_id:
        raise WrongChainError('message signed for another chain')
    if len(tx['sender']) != 33 or tx['sender'][0] not in (2, 3):
        raise InvalidMessageError('sender must be a 33-byte compressed key')
    kinds = [k for k in KINDS if tx[k] is not None]
    if len(kinds) != 1:
        raise InvalidMessageError(f'a Tx must carry exactly one body, found {len(kinds)}')
    _check_body(kinds[0], tx[kinds[0]])
    txid = tx_id(chain.chain_id, st['tx'])
    if len(st['signature']) != 64:
        raise InvalidSignatureError('signature must be 64 bytes')
    if verify_signature and not secp256k1.verify(st['signature'], txid, tx['sender']):
        raise InvalidSignatureError('signature does not verify')
    return LedgerTx(signed, st['tx'], st['signature'], tx, txid, kinds[0])


def has_quorum(chain: Chain, indexes, powers=None) -> bool:
    powers = powers if powers is not None else chain.stakes
    return 3 * sum(powers[i] for i in set(indexes)) > 2 * sum(powers)


def parse_certificate(chain: Chain, data: bytes, powers=None):
    """§5.2 certificates; returns (LedgerTx, votes). `powers`: the voting powers of §6.2 (default: genesis stakes)"""
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise InvalidMessageError('Certificate larger than 64 KiB')
    c = _canonical('Certificate', data)
    if len(c['votes']) > len(chain.validator_keys):
        raise InvalidMessageError('more votes than validators')
    tx = parse_signed_tx(chain, c['signed_tx'])
    last = -1
    for v in c['votes']:
        if v['validator'] <= last:
            raise InvalidMessageError('votes must be sorted by strictly increasing validator index')
        last = v['validator']
        if v['validator'] >= len(chain.validator_keys):
            raise InvalidMessageError('vote of an unknown validator')
        if not verify_vote(chain, tx.id, v['validator'], v['signature']):
            raise InvalidSignatureError(f'vote of validator {v["validator"]} does not verify')
    if not has_quorum(chain, [v['validator'] for v in c['votes']], powers):
        raise InsufficientQuorumError('votes do not hold more than 2/3 of the voting power')
    return tx, c['votes']


def encode_certificate(signed: bytes, votes) -> bytes:
    return pb.encode('Certificate', {'signed_tx': signed, 'votes': sorted(votes, key=lambda v: v['validator'])})


# ---- §8 shard assignment, §6.2 evidence and designated reporter ----

def assign_shards(chain: Chain, address: str, round_: int):
    p = chain.params
    out = []
    counter = 0
    while len(out) < p['shardsPerAssignment']:
        h = digest('neuroshard/ledger/v1/shards', chain.chain_id, bytes.fromhex(address), round_.to_bytes(8, 'big'), counter.to_bytes(4, 'big'))
        idx = int.from_bytes(h[:4], 'big') % p['totalShards']
        if idx not in out:
            out.append(idx)
        counter += 1
    return out


def designated_reporter(chain: Chain, key: str, epoch: int, offender=None) -> int:
    best, best_score = -1, None
    k = f'{key}@{epoch}'.encode('utf-8')
    for i in range(len(chain.validator_keys)):
        if i == offender:
            continue
        score = digest('neuroshard/ledger/v1/reporter', k, i.to_bytes(4, 'big'))
        if best_score is None or score < best_score:
            best, best_score = i, score
    return best


class _Fail(Exception):
    pass


def check_evidence(chain: Chain, report: dict) -> dict:
    """§6.2: {offender, sequence, key, validator?} or raises _Fail"""
    try:
        a = parse_signed_tx(chain, report['signed_tx_a'])
        b = parse_signed_tx(chain, report['signed_tx_b'])
    except LedgerError as e:
        raise _Fail(f'evidence message invalid: {e.name}')
    if a.sender != b.sender or a.sequence != b.sequence or a.tx_bytes == b.tx_bytes:
        raise _Fail('evidence messages do not conflict')
    if report['kind'] == ACCOUNT_EQUIVOCATION:
        if abs(a.epoch - b.epoch) > 2 * chain.params['epochWindow'] + 1:
            raise _Fail('never votable at the same time')
        return {'offender': a.sender, 'sequence': a.sequence, 'key': f'account/{a.sender}', 'validator': None}
    if report['kind'] == VALIDATOR_EQUIVOCATION:
        v = report['validator']
        if v >= len(chain.validator_keys):
            raise _Fail('unknown validator')
        if not verify_vote(chain, a.id, v, report['vote_sig_a']) or not verify_vote(chain, b.id, v, report['vote_sig_b']):
            raise _Fail('evidence votes do not verify')
        return {'offender': chain.validator_addresses[v], 'sequence': a.sequence, 'key': f'validator/{v}', 'validator': v}
    raise _Fail('unknown evidence kind')


def reporter_for(chain: Chain, evidence: dict, epoch: int) -> int:
    off = evidence['validator']
    if off is None and evidence['offender'] in chain.validator_addresses:
        off = chain.validator_addresses.index(evidence['offender'])
    return designated_reporter(chain, evidence['key'], epoch, off)


# ---- §8 proof checks: data manifest, Merkle tree of a shard, challenges, re-execution sampling ----

def shard_manifest_hash(shards) -> bytes:
    """shards: [(32-byte root, samples)] for shard 0, 1, ..."""
    return digest('neuroshard/ledger/v1/shard-manifest', *[h + n.to_bytes(8, 'big') for h, n in shards])


def data_leaf(sample: bytes) -> bytes:
    return digest('neuroshard/ledger/v1/data-leaf', sample)


def _node(a, b):
    return digest('neuroshard/ledger/v1/data-node', a, b)


def _levels(samples):
    level = [data_leaf(x) for x in samples]
    out = [level]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        out.append(level)
    return out


def merkle_root(samples) -> bytes:
    if not samples:
        raise ValueError('a shard has at least one sample')
    return _levels(samples)[-1][0]


def merkle_proof(samples, index: int):
    """sibling hashes from the leaf up, levels where the node has no sibling skipped"""
    path = []
    for level in _levels(samples)[:-1]:
        if index ^ 1 < len(level):
            path.append(level[index ^ 1])
        index >>= 1
    return path


def verify_merkle_proof(root: bytes, count: int, index: int, sample: bytes, path) -> bool:
    if not 0 <= index < count:
        return False
    h, used, width = data_leaf(sample), 0, count
    while width > 1:
        if index ^ 1 < width:
            if used >= len(path) or len(path[used]) != 32:
                return False
            h = _node(h, path[used]) if index % 2 == 0 else _node(path[used], h)
            used += 1
        index >>= 1
        width = (width + 1) // 2
    return used == len(path) and h == root


def challenge_indexes(proof_id: str, secret: bytes, count: int, k: int):
    return [int.from_bytes(digest('neuroshard/ledger/v1/data-challenge', proof_id.encode(), secret, j.to_bytes(4, 'big'))[:4], 'big') % count
            for j in range(k)]


def sample_batches(proof_id: str, batches: int, samples: int, salt: bytes = b''):
    picked = []
    h = digest('neuroshard/ledger/v1/reexec-sample', proof_id.encode(), salt)
    while len(picked) < min(batches, samples):
        i = int.from_bytes(h[:4], 'big') % batches
        if i not in picked:
            picked.append(i)
        h = digest('neuroshard/ledger/v1/reexec-sample', h)
    return picked


def sample_segments(proof_id: str, segments: int, count: int, salt: bytes = b''):
    """the segments a training-proof verifier re-executes, ascending: `count` sampled, and always the last"""
    return sorted(set(sample_batches(proof_id + '/segments', segments, count, salt)) | {segments - 1})


# ---- §7 state transition ----

class _Hold(Exception):
    pass


def _account():
    return {'balance': 0, 'bonded': 0, 'unbonding': [], 'slashed': 0, 'nextSeq': 0, 'bondHistory': []}


class State:
    """The state of §7 as a function of the SET of final messages (add them in any order)"""

    def __init__(self, chain: Chain):
        self.chain = chain
        self.accounts = {}
        self.queued = {}        # sender -> {sequence: LedgerTx} (the lowest id per slot)
        self.losers = {}        # (sender, sequence) -> [LedgerTx]: other final messages for a slot not yet passed
        self.known = set()
        self.proof_keys = set()
        self.payments = {}      # payment id hex -> (provider, tokens, burned)
        self.outcomes = {}      # id hex -> 'applied' | 'failed'
        supply = 0
        for a in chain.genesis['allocations']:
            self.account(a['address'])['balance'] += a['balance']
            supply += a['balance']
        for i, v in enumerate(chain.genesis['validators']):
            acc = self.account(chain.validator_addresses[i])
            acc['bonded'] += v['stake']
            acc['bondHistory'].append([-1, acc['bonded']])
            supply += v['stake']
        self.totals = {'genesisSupply': supply, 'minted': 0, 'burned': 0, 'slashed': 0}

    def account(self, addr):
        return self.accounts.setdefault(addr, _account())

    def get(self, addr):
        return self.accounts.get(addr) or _account()

    def add_final(self, txs):
        for tx in txs:
            if tx.id_hex in self.known:
                continue
            self.known.add(tx.id_hex)
            if tx.sequence < self.get(tx.sender)['nextSeq']:
                self.outcomes[tx.id_hex] = 'failed'   # its slot was passed already
                continue
            q = self.queued.setdefault(tx.sender, {})
            held = q.get(tx.sequence)
            if held is None:
                q[tx.sequence] = tx
            else:
                win, lose = (tx, held) if tx.id_hex < held.id_hex else (held, tx)
                q[tx.sequence] = win
                self.losers.setdefault((tx.sender, tx.sequence), []).append(lose)
        progress = True
        while progress:
            progress = False
            for sender in sorted(self.queued):
                q = self.queued[sender]
                while True:
                    nxt = self.get(sender)['nextSeq']
                    tx = q.get(nxt)
                    if tx is None:
                        break
                    try:
                        self.outcomes[tx.id_hex] = 'applied' if self._execute(tx) else 'failed'
                    except _Hold:
                        break
                    del q[nxt]
                    self.account(sender)['nextSeq'] = nxt + 1
                    for t in self.losers.pop((sender, nxt), []):
                        self.outcomes[t.id_hex] = 'failed'
                    progress = True
            for sender in [s for s, q in self.queued.items() if not q]:
                del self.queued[sender]

    # rewards (§7): floor(base * min(cap, 1 + beta * stake / unit))
    def _reward(self, base: Fraction, stake: int) -> int:
        p = self.chain.params
        mult = min(p['stakingMultiplierCap'], 1 + p['stakingBeta'] * Fraction(stake, p['stakingUnit']))
        return (base * mult).numerator // (base * mult).denominator

    @staticmethod
    def _floor(x: Fraction) -> int:
        return x.numerator // x.denominator

    def _stake_for(self, acc, claim: bytes) -> int:
        return min(decode_amount(claim), acc['bonded'])

    def _mint(self, addr, amount, key):
        self.proof_keys.add(key)
        self.account(addr)['balance'] += amount
        self.totals['minted'] += amount

    def _execute(self, tx: LedgerTx) -> bool:
        """Applies tx; returns False when it fails (no effect), raises _Hold when it waits"""
        p = self.chain.params
        addr = tx.sender
        acc = self.get(addr)
        b = tx.body
        k = tx.kind
        if k == 'transfer':
            amount = decode_amount(b['amount'])
            if acc['balance'] < amount:
                raise _Hold()
            self.account(addr)['balance'] -= amount
            self.account(b['to'].hex())['balance'] += amount
        elif k == 'stake':
            amount = decode_amount(b['amount'])
            if acc['balance'] < amount:
                raise _Hold()
            a = self.account(addr)
            a['balance'] -= amount
            a['bonded'] += amount
            a['bondHistory'].append([tx.sequence, a['bonded']])
        elif k == 'unbond':
            amount = decode_amount(b['amount'])
            if amount > acc['bonded'] - self.chain.locked_stake(addr):
                return False
            a = self.account(addr)
            a['bonded'] -= amount
            a['unbonding'].append({'amount': amount, 'releaseEpoch': tx.epoch + p['unbondingEpochs'] + 2 * p['epochWindow']})
            a['bondHistory'].append([tx.sequence, a['bonded']])
        elif k == 'withdraw':
            limit = b['max_entries'] or None
            taken, kept = [], []
            for e in acc['unbonding']:
                if e['releaseEpoch'] <= tx.epoch and (limit is None or len(taken) < limit):
                    taken.append(e)
                else:
                    kept.append(e)
            if not taken:
                return False
            a = self.account(addr)
            a['unbonding'] = kept
            a['balance'] += sum(e['amount'] for e in taken)
        elif k == 'uptime':
            seconds = b['heartbeats'] * p['heartbeatSeconds']
            key = f'uptime/{addr}/{b["epoch"]}'
            if seconds * 1000 > p['epochMs'] or key in self.proof_keys:
                return False
            self._mint(addr, self._reward(p['uptimeRewardPerMinute'] * Fraction(seconds, 60), self._stake_for(acc, b['stake_claim'])), key)
        elif k == 'inference':
            if b['tokens'] * 1000 > p['maxInferenceTokensPerSecond'] * (b['ended_ms'] - b['started_ms']):
                return False
            session = b['session_id'].hex()
            paid = self.payments.get(session)
            if paid is None:
                raise _Hold()
            provider, tokens, burned = paid
            key = f'inference/{addr}/{session}'
            if provider != addr or b['tokens'] > tokens or key in self.proof_keys:
                return False
            r = self._reward(p['inferenceRewardPerMillionTokens'] * Fraction(b['tokens'], 10 ** 6), self._stake_for(acc, b['stake_claim']))
            self._mint(addr, min(r, burned), key)
        elif k == 'training':
            if b['tokens'] > p['maxTrainingTokensPerProof'] or b['batches'] > p['maxBatchesPerProof']:
                return False
            key = f'training/{addr}/{b["round"]}'
            if key in self.proof_keys:
                return False
            base = p['computeRewardPerBatch'] * b['batches']
            if b['loss_after_micro'] < b['loss_before_micro'] and b['loss_after_micro'] <= p['qualityLossThresholdMicro']:
                base *= p['qualityBonus']
            self._mint(addr, self._reward(base, self._stake_for(acc, b['stake_claim'])), key)
        elif k == 'data':
            if b['samples'] > p['maxSamplesPerProof'] or b['shard_id'] >= p['totalShards']:
                return False
            key = f'data/{addr}/{b["round"]}/{b["shard_id"]}'
            if b['shard_id'] not in assign_shards(self.chain, addr, b['round']) or key in self.proof_keys:
                return False
            self._mint(addr, self._reward(p['dataRewardPerSample'] * b['samples'], self._stake_for(acc, b['stake_claim'])), key)
        elif k == 'payment':
            fee = b['tokens'] * decode_amount(b['price_per_token'])
            if acc['balance'] < fee:
                raise _Hold()
            burned = self._floor(fee * p['inferenceFeeBurn'])
            provider = b['provider'].hex()
            self.account(addr)['balance'] -= fee
            self.account(provider)['balance'] += fee - burned
            self.totals['burned'] += burned
            self.proof_keys.add(f'paid/{tx.id_hex}/{provider}/{b["tokens"]}/{burned}')
            self.payments[tx.id_hex] = (provider, b['tokens'], burned)
        elif k == 'slash':
            try:
                ev = check_evidence(self.chain, b)
            except _Fail:
                return False
            key = 'slash/' + ev['key']
            if key in self.proof_keys:
                return False
            if ev['validator'] is not None:
                base = self.chain.stakes[ev['validator']]
            else:
                off = self.get(ev['offender'])
                if off['nextSeq'] < ev['sequence']:
                    raise _Hold()
                base = 0
                for seq, after in off['bondHistory']:
                    if seq >= ev['sequence']:
                        break
                    base = after
            penalty = self._floor(base * p['slashFraction'])
            if penalty == 0:
                return False
            to_reporter = self._floor(penalty * p['reporterShare'])
            self.proof_keys.add(key)
            self.account(ev['offender'])['slashed'] += penalty
            self.account(addr)['balance'] += to_reporter
            self.totals['burned'] += penalty - to_reporter
            self.totals['slashed'] += penalty
        return True

    def holdings(self) -> int:
        return sum(a['balance'] + a['bonded'] + sum(e['amount'] for e in a['unbonding']) - a['slashed'] for a in self.accounts.values())

    def canonical(self) -> str:
        """§7.2: the canonical JSON the state hash covers"""
        accounts = {addr: a for addr, a in self.accounts.items()
                    if a['balance'] or a['bonded'] or a['unbonding'] or a['slashed'] or a['nextSeq']}
        return canonical_json({
            'accounts': accounts,
            'totals': self.totals,
            'proofKeys': sorted(self.proof_keys),
            'outcomes': sorted(f'{i}:{s}' for i, s in self.outcomes.items()),
            'queued': sorted(t.id_hex for q in self.queued.values() for t in q.values()),
        })

    def state_hash(self) -> str:
        return digest('neuroshard/ledger/v1/state', self.canonical().encode('utf-8')).hex()

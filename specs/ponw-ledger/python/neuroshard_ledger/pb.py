"""Canonical protobuf encoding of the ledger messages (specs/ponw-ledger/README.md §5, §5.1), stdlib only.

Messages are dicts keyed by the .proto field names. Canonical form (§5.1):
- fields in field-number order; integers as minimal varints;
- a scalar (uint32, uint64, bool, enum) is written only when it is not 0, a bytes/string field only when it is
  not empty;
- an embedded message field is written whenever it is present (None = absent), even when all its fields are
  defaults (`Withdraw{}` is the two bytes 0x6a 0x00 inside a Tx);
- repeated scalars are NOT packed: one tag and value per element, zeros included; repeated bytes and messages
  likewise one element per tag, empty elements included.
`decode` reads the wire format strictly against the schema (unknown fields, wrong wire types, out-of-range values
and truncation raise PbError); callers then check canonical form by re-encoding.
"""


class PbError(Exception):
    pass


# name -> [(field number, field name, type, repeated)]; types: uint32 uint64 bool enum bytes string or a message name
SCHEMA = {
    'Transfer': [(1, 'to', 'bytes', False), (2, 'amount', 'bytes', False), (3, 'memo', 'bytes', False)],
    'Stake': [(1, 'amount', 'bytes', False)],
    'Unbond': [(1, 'amount', 'bytes', False)],
    'Withdraw': [(1, 'max_entries', 'uint32', False)],
    'TrainingProof': [
        (1, 'round', 'uint64', False), (2, 'model_hash', 'bytes', False), (3, 'shard_ids', 'uint32', True),
        (4, 'tokens', 'uint64', False), (5, 'batches', 'uint64', False), (6, 'loss_before_micro', 'uint64', False),
        (7, 'loss_after_micro', 'uint64', False), (8, 'pseudo_gradient_hash', 'bytes', False),
        (9, 'batch_loss_micro', 'uint64', True), (10, 'stake_claim', 'bytes', False),
        (11, 'checkpoint_interval', 'uint32', False), (12, 'checkpoint_hashes', 'bytes', True)],
    'InferenceProof': [
        (1, 'session_id', 'bytes', False), (2, 'tokens', 'uint64', False), (3, 'output_hash', 'bytes', False),
        (4, 'started_ms', 'uint64', False), (5, 'ended_ms', 'uint64', False), (6, 'stake_claim', 'bytes', False)],
    'UptimeProof': [(1, 'epoch', 'uint64', False), (2, 'heartbeats', 'uint32', False), (3, 'stake_claim', 'bytes', False)],
    'DataProof': [
        (1, 'shard_id', 'uint32', False), (2, 'samples', 'uint64', False), (3, 'data_hash', 'bytes', False),
        (4, 'round', 'uint64', False), (5, 'stake_claim', 'bytes', False)],
    'InferencePayment': [
        (1, 'provider', 'bytes', False), (2, 'tokens', 'uint64', False), (3, 'price_per_token', 'bytes', False),
        (4, 'session_id', 'bytes', False)],
    'SlashReport': [
        (1, 'kind', 'enum', False), (2, 'signed_tx_a', 'bytes', False), (3, 'signed_tx_b', 'bytes', False),
        (4, 'validator', 'uint32', False), (5, 'vote_sig_a', 'bytes', False), (6, 'vote_sig_b', 'bytes', False)],
    'Tx': [
        (1, 'version', 'uint32', False), (2, 'chain_id', 'bytes', False), (3, 'sender', 'bytes', False),
        (4, 'sequence', 'uint64', False), (5, 'epoch', 'uint64', False),
        (10, 'transfer', 'Transfer', False), (11, 'stake', 'Stake', False), (12, 'unbond', 'Unbond', False),
        (13, 'withdraw', 'Withdraw', False), (14, 'training', 'TrainingProof', False),
        (15, 'inference', 'InferenceProof', False), (16, 'uptime', 'UptimeProof', False),
        (17, 'data', 'DataProof', False), (18, 'payment', 'InferencePayment', False),
        (19, 'slash', 'SlashReport', False)],
    'SignedTx': [(1, 'tx', 'bytes', False), (2, 'signature', 'bytes', False)],
    'VoteSig': [(1, 'validator', 'uint32', False), (2, 'signature', 'bytes', False)],
    'Certificate': [(1, 'signed_tx', 'bytes', False), (2, 'votes', 'VoteSig', True)],
    'Vote': [(1, 'signed_tx', 'bytes', False), (2, 'vote', 'VoteSig', False)],
    'Heartbeat': [(1, 'peer_id', 'string', False), (2, 'wallet_public_key', 'bytes', False), (3, 'issued_at_ms', 'uint64', False),
                  (4, 'wallet_signature', 'bytes', False), (5, 'peer_signature', 'bytes', False)],
    'GossipMessage': [(1, 'signed_tx', 'bytes', False), (2, 'vote', 'Vote', False), (3, 'certificate', 'Certificate', False),
                      (4, 'heartbeat', 'Heartbeat', False)],
    'SyncRequest': [(1, 'from', 'uint64', False), (2, 'limit', 'uint32', False)],
    'SyncResponse': [(1, 'certificates', 'bytes', True), (2, 'next', 'uint64', False), (3, 'done', 'bool', False)],
    'DataChallengeRequest': [(1, 'proof_id', 'bytes', False), (2, 'shard_id', 'uint32', False), (3, 'indexes', 'uint32', True),
                             (4, 'round', 'uint64', False)],
    'DataOpening': [(1, 'sample', 'bytes', False), (2, 'path', 'bytes', True)],
    'DataChallengeResponse': [(1, 'openings', 'DataOpening', True)],
    'WeightsRequest': [(1, 'proof_id', 'bytes', False), (2, 'checkpoint', 'uint32', False)],
    'WeightsChunk': [(1, 'data', 'bytes', False), (2, 'last', 'bool', False)],
}

MAX = {'uint32': (1 << 32) - 1, 'uint64': (1 << 64) - 1, 'enum': (1 << 31) - 1, 'bool': 1}


def varint(n: int) -> bytes:
    if n < 0:
        raise PbError('negative varint')
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int):
    shift = 0
    value = 0
    while True:
        if pos >= len(buf):
            raise PbError('truncated varint')
        if shift >= 70:
            raise PbError('varint too long')
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def default(name: str) -> dict:
    return {f: ([] if rep else (None if t in SCHEMA else (b'' if t == 'bytes' else ('' if t == 'string' else 0))))
            for _, f, t, rep in SCHEMA[name]}


def encode(name: str, msg: dict) -> bytes:
    out = bytearray()
    for num, field, typ, rep in SCHEMA[name]:
        v = msg.get(field)
        values = (v or []) if rep else [v]
        for x in values:
            if typ in SCHEMA:
                if x is None:
                    continue
                body = encode(typ, x)
                out += varint(num << 3 | 2) + varint(len(body)) + body
            elif typ in ('bytes', 'string'):
                b = (x or '').encode('utf-8') if typ == 'string' else bytes(x or b'')
                if not rep and len(b) == 0:
                    continue
                out += varint(num << 3 | 2) + varint(len(b)) + b
            else:
                n = int(x or 0)
                if not 0 <= n <= MAX[typ]:
                    raise PbError(f'{name}.{field} out of range')
                if not rep and n == 0:
                    continue
                out += varint(num << 3 | 0) + varint(n)
    return bytes(out)


def decode(name: str, buf: bytes) -> dict:
    fields = {num: (field, typ, rep) for num, field, typ, rep in SCHEMA[name]}
    msg = default(name)
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if num not in fields:
            raise PbError(f'unknown field {num} in {name}')
        field, typ, rep = fields[num]
        if typ in SCHEMA or typ in ('bytes', 'string'):
            if wire != 2:
                raise PbError(f'{name}.{field}: wire type {wire}, expected 2')
            n, pos = _read_varint(buf, pos)
            if pos + n > len(buf):
                raise PbError(f'{name}.{field}: truncated')
            raw = buf[pos:pos + n]
            pos += n
            if typ in SCHEMA:
                value = decode(typ, raw)
            elif typ == 'string':
                try:
                    value = raw.decode('utf-8')
                except UnicodeDecodeError:
                    raise PbError(f'{name}.{field}: not UTF-8')
            else:
                value = bytes(raw)
        else:
            if wire != 0:
                raise PbError(f'{name}.{field}: wire type {wire}, expected 0 (repeated scalars are not packed)')
            value, pos = _read_varint(buf, pos)
            if value > MAX[typ]:
                raise PbError(f'{name}.{field}: value out of range')
        if rep:
            msg[field].append(value)
        else:
            msg[field] = value
    return msg

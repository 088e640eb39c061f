"""Certified checkpoints (specs/ponw-ledger/checkpoints.md §2 definitions, rule C2), written from the spec text:
the snapshot of a state, its hash, the checkpoint digest, and the check of a certificate with its snapshot."""
import json
import struct

from . import pb, secp256k1
from .ledger import InsufficientQuorumError, InvalidSignatureError, LedgerError, State, canonical_json, digest, has_quorum

# checkpoints.md §3 (protobuf field numbers)
pb.SCHEMA.setdefault('CheckpointCertificate', [(1, 'height', 'uint64', False), (2, 'snapshot_hash', 'bytes', False), (3, 'votes', 'VoteSig', True)])


class InvalidCheckpointError(LedgerError):
    name = 'InvalidCheckpointError'


class CheckpointConflictError(LedgerError):
    name = 'CheckpointConflictError'


def _empty(a):
    return not (a['balance'] or a['bonded'] or a['slashed'] or a['nextSeq'] or a['unbonding'])


def snapshot(state) -> bytes:
    """§2: canonical JSON of version, chain id, height, the non-empty accounts, the totals and the sorted proof keys"""
    accounts = {k: a for k, a in state.accounts.items() if not _empty(a)}
    return canonical_json({'version': 1, 'chainId': state.chain.chain_id.hex(), 'height': sum(a['nextSeq'] for a in accounts.values()),
                           'accounts': accounts, 'totals': state.totals, 'proofKeys': sorted(state.proof_keys)}).encode('utf-8')


def snapshot_hash(snapshot_bytes: bytes) -> bytes:
    return digest('neuroshard/ledger/v1/snapshot', snapshot_bytes)


def checkpoint_digest(chain, height: int, snap_hash: bytes) -> bytes:
    return digest('neuroshard/ledger/v1/checkpoint', chain.chain_id + struct.pack('>Q', height) + snap_hash)


def _dec(x, what):
    if not isinstance(x, str) or not x.isdigit() or (len(x) > 1 and x[0] == '0'):
        raise InvalidCheckpointError(f'{what} is not a decimal string')
    return int(x)


def verify_checkpoint(chain, certificate: bytes, snapshot_bytes: bytes) -> dict:
    """C2, in its order: the certificate (canonical, distinct known validators sorted, every vote, genesis-stake
    quorum), the snapshot bytes against the certified hash before parsing, its form, its height, and the quorum
    by the voting power the snapshot gives. Returns the parsed snapshot."""
    try:
        c = pb.decode('CheckpointCertificate', certificate)
    except pb.PbError as e:
        raise InvalidCheckpointError(f'certificate does not decode: {e}')
    if pb.encode('CheckpointCertificate', c) != certificate or len(c['snapshot_hash']) != 32:
        raise InvalidCheckpointError('certificate is not canonical')
    last = -1
    for v in c['votes']:
        if v['validator'] <= last or v['validator'] >= len(chain.validator_keys):
            raise InvalidCheckpointError('votes of distinct known validators, sorted')
        last = v['validator']
        if not secp256k1.verify(v['signature'], checkpoint_digest(chain, c['height'], c['snapshot_hash']), chain.validator_keys[v['validator']]):
            raise InvalidSignatureError(f'checkpoint vote of validator {v["validator"]} does not verify')
    voters = [v['validator'] for v in c['votes']]
    if not has_quorum(chain, voters):
        raise InsufficientQuorumError('votes hold no more than 2/3 of the genesis stake')
    if snapshot_hash(snapshot_bytes) != c['snapshot_hash']:
        raise InvalidCheckpointError('snapshot does not hash to the certified hash')
    try:
        s = json.loads(snapshot_bytes.decode('utf-8'))
        if canonical_json(s).encode('utf-8') != snapshot_bytes:
            raise InvalidCheckpointError('snapshot is not canonical')
        if s['chainId'] != chain.chain_id.hex() or s['version'] != '1':
            raise InvalidCheckpointError('snapshot of another chain or version')
        accounts = {k: {f: _dec(a[f], f) for f in ('balance', 'bonded', 'slashed', 'nextSeq')} | {'unbonding': [_dec(e['amount'], 'amount') for e in a['unbonding']]}
                    for k, a in s['accounts'].items()}
        totals = {k: _dec(s['totals'][k], k) for k in ('genesisSupply', 'minted', 'burned', 'slashed')}
        height = _dec(s['height'], 'height')
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InvalidCheckpointError(f'snapshot does not parse: {e}')
    if height != sum(a['nextSeq'] for a in accounts.values()) or height != c['height']:
        raise InvalidCheckpointError('height is not the sum of nextSeq, or not the certified height')
    if totals['genesisSupply'] != sum(chain.stakes) + sum(a['balance'] for a in chain.genesis['allocations']):
        raise InvalidCheckpointError('genesis supply differs from the genesis')
    if sum(a['balance'] + a['bonded'] + sum(a['unbonding']) - a['slashed'] for a in accounts.values()) != totals['genesisSupply'] + totals['minted'] - totals['burned']:
        raise InvalidCheckpointError('snapshot does not conserve the supply')
    powers = [max(0, st - accounts.get(addr, {'slashed': 0})['slashed']) for st, addr in zip(chain.stakes, chain.validator_addresses)]
    if not has_quorum(chain, voters, powers):
        raise InsufficientQuorumError('votes hold no more than 2/3 of the voting power the snapshot gives')
    return s


def check_install(chain, base_height: int, next_seqs: dict, certificate: bytes, snapshot_bytes: bytes) -> dict:
    """C3 after C2: a checkpoint higher than the node's base, over a state ahead of the node for no account
    (`next_seqs`: address -> the node's nextSeq). Returns the parsed snapshot (the node's new base)."""
    s = verify_checkpoint(chain, certificate, snapshot_bytes)
    if int(s['height']) <= base_height:
        raise CheckpointConflictError(f'checkpoint {s["height"]} is not higher than the base ({base_height})')
    for addr, n in next_seqs.items():
        if n > int(s['accounts'].get(addr, {'nextSeq': '0'})['nextSeq']):
            raise CheckpointConflictError(f'the node is ahead of the checkpoint for {addr}')
    return s


def state_from_snapshot(chain, s: dict) -> State:
    """the state a node holds after installing a checkpoint (§2: accounts, totals, proof keys); final messages behind
    an account's nextSeq (the floor, C5) are then ignored by State.add_final like any passed slot"""
    st = State(chain)
    st.accounts = {k: {'balance': int(a['balance']), 'bonded': int(a['bonded']), 'slashed': int(a['slashed']), 'nextSeq': int(a['nextSeq']),
                       'unbonding': [{'amount': int(e['amount']), 'releaseEpoch': int(e['releaseEpoch'])} for e in a['unbonding']],
                       'bondHistory': [[int(x) for x in h] for h in a['bondHistory']]} for k, a in s['accounts'].items()}
    st.totals = {k: int(v) for k, v in s['totals'].items()}
    st.proof_keys = set(s['proofKeys'])
    return st


class CheckpointMismatchError(LedgerError):
    name = 'CheckpointMismatchError'


class CheckpointNotReadyError(LedgerError):
    name = 'CheckpointNotReadyError'


MAX_FRONTIER = 2048


def derive_checkpoint(chain, base, finals, proposal) -> bytes:
    """C4 and §4.2 (what a validator checks before it signs, C1), in this order: the proposal's base is the node's base
    (`base`: None for genesis, else {'height', 'hash', 'snapshot' (parsed)}); its frontier has 1..2048 entries, sorted by
    address, distinct, each next sequence above the base's; the node holds every final message behind the frontier and
    not behind the base (else CheckpointNotReadyError); applying exactly those to the base state reaches the frontier;
    the snapshot's height and hash are the proposal's. `finals`: the node's final messages (LedgerTx). Returns the
    snapshot bytes."""
    base_height, base_hash = (base['height'], base['hash']) if base else (0, b'')
    if proposal['baseHeight'] != base_height or proposal['baseHash'] != base_hash:
        raise CheckpointMismatchError(f'the proposal extends checkpoint {proposal["baseHeight"]}, this node is at {base_height}')
    frontier = proposal['frontier']
    if not 1 <= len(frontier) <= MAX_FRONTIER:
        raise CheckpointMismatchError('the frontier is empty or longer than 2048 entries')
    floor = {a: int(x['nextSeq']) for a, x in base['snapshot']['accounts'].items()} if base else {}
    target, last = {}, ''
    for address, next_seq in frontier:
        if address <= last or next_seq <= floor.get(address, 0):
            raise CheckpointMismatchError('the frontier is not sorted, distinct and above the base')
        last = address
        target[address] = next_seq
    behind = [tx for tx in finals if tx.sender in target and floor.get(tx.sender, 0) <= tx.sequence < target[tx.sender]]
    for address, t in target.items():
        if len({tx.sequence for tx in behind if tx.sender == address}) < t - floor.get(address, 0):
            raise CheckpointNotReadyError(f'messages of {address} below {t} are not all final here')
    st = state_from_snapshot(chain, base['snapshot']) if base else State(chain)
    st.add_final(behind)
    for address, t in target.items():
        if st.get(address)['nextSeq'] != t:
            raise CheckpointMismatchError(f'the messages of {address} below {t} do not all apply on their own')
    snap = snapshot(st)
    if sum(a['nextSeq'] for a in st.accounts.values()) != proposal['height'] or snapshot_hash(snap) != proposal['snapshotHash']:
        raise CheckpointMismatchError('this node\'s final messages give another snapshot at that frontier')
    return snap

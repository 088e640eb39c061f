#!/usr/bin/env python3
"""Writes specs/ponw-ledger/vectors/validator.json: the validator rule of README §6.1 as sequences. Validator 0 (key
`validator-0`) starts from genesis; each step either makes a certificate final on its node or offers it a message at a
clock time (with catch-up votes), and the expected outcome — signed, or the refusal of §6.1 "Refusals, in order" — is
written by hand below from the spec text. Standard library only.

The script checks every sequence with the Python validator written from the spec (../python/neuroshard_ledger/
validator.py) and writes nothing if they disagree. Signatures are RFC 6979, so the file is reproducible.

    python3 specs/ponw-ledger/vectors/gen-validator.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'python'))
from neuroshard_ledger import Chain, Wallet, encode_certificate, parse_signed_tx  # noqa: E402
from neuroshard_ledger.validator import Validator  # noqa: E402

with open(os.path.join(HERE, 'genesis.json'), encoding='utf-8') as f:
    GENESIS = json.load(f)
chain = Chain(GENESIS)
NEURO = 10 ** 18
EPOCH = chain.params['epochMs']   # 1 h; epochWindow 1
W = {n: Wallet.from_seed(n) for n in ['alice', 'bob', 'carol', 'dave']}   # alice 1000 NEURO, bob 100, carol 10, dave nothing
V = [Wallet.from_seed(f'validator-{i}') for i in range(4)]                # 1000 NEURO of stake each, all locked
BOB = W['bob'].address
NOW = 10 * EPOCH + 5   # the validator's clock: epoch 10


def msg(who, seq, epoch, kind, **fields):
    w = V[int(who[1:])] if who.startswith('v') else W[who]
    return w.sign_tx(chain, seq, epoch, kind, **fields)


def cert(signed, validators=(1, 2, 3)):
    t = parse_signed_tx(chain, signed)
    return encode_certificate(signed, [V[i].sign_vote(chain, i, t.id) for i in validators])


def votes_of(signed, validators):
    t = parse_signed_tx(chain, signed)
    return [V[i].sign_vote(chain, i, t.id) for i in validators]


SIGNED = 'signed'


def final(signed):
    return ('final', cert(signed), None)


def offer(signed, expect, now=NOW, endorse=None):
    return ('vote', signed, expect, now, endorse)


t0 = msg('alice', 0, 10, 'transfer', to=BOB, amount=NEURO)
t0b = msg('alice', 0, 10, 'transfer', to=BOB, amount=2 * NEURO)
t0_old = msg('alice', 0, 3, 'transfer', to=BOB, amount=3 * NEURO)
t0_e8 = msg('alice', 0, 8, 'transfer', to=BOB, amount=NEURO)
stake = msg('alice', 0, 0, 'stake', amount=100 * NEURO)
unbond = msg('alice', 1, 0, 'unbond', amount=40 * NEURO)         # release epoch 0 + 7 + 2 = 9
a2 = msg('alice', 2, 10, 'transfer', to=BOB, amount=NEURO)
a2b = msg('alice', 2, 10, 'transfer', to=BOB, amount=5 * NEURO)
withdraw3 = msg('alice', 3, 10, 'withdraw')
forged = {'validator': 2, 'signature': votes_of(t0_e8, [1])[0]['signature']}   # validator 1's signature presented as validator 2's

SEQUENCES = [
    ('a fresh transfer is signed; another message for the same slot is refused (EquivocationError), as is a third',
     [offer(t0, SIGNED), offer(t0b, 'EquivocationError'), offer(t0_old, 'EquivocationError')]),
    ('step 2 comes before step 3: another message for a voted slot is EquivocationError even when it is out of the window',
     [offer(t0, SIGNED), offer(msg('alice', 0, 20, 'transfer', to=BOB, amount=NEURO), 'EquivocationError')]),
    ('step 3: a message whose slot is final is a replay (ReplayError), also one this validator never saw',
     [final(t0), offer(t0b, 'ReplayError'), offer(t0, 'ReplayError')]),
    ('step 3: a sequence above the next one is not ready (SequenceGapError); it is signed once the gap is final',
     [offer(msg('alice', 1, 10, 'transfer', to=BOB, amount=NEURO), 'SequenceGapError'), final(t0),
      offer(msg('alice', 1, 10, 'transfer', to=BOB, amount=NEURO), SIGNED)]),
    ('the epoch window (clock at epoch 10, window 1): epoch 12 is too new (ImplausibleProofError)',
     [offer(msg('alice', 0, 12, 'transfer', to=BOB, amount=NEURO), 'ImplausibleProofError')]),
    ('the epoch window: epoch 11 is signed', [offer(msg('alice', 0, 11, 'transfer', to=BOB, amount=NEURO), SIGNED)]),
    ('the epoch window: epoch 9 is signed', [offer(msg('alice', 0, 9, 'transfer', to=BOB, amount=NEURO), SIGNED)]),
    ('the epoch window: epoch 8 without votes is too old (ImplausibleProofError)', [offer(t0_e8, 'ImplausibleProofError')]),
    ('the clock decides: the same epoch-8 message is signed at epoch 9', [offer(t0_e8, SIGNED, now=9 * EPOCH)]),
    ('catch-up: epoch 8 with the votes of validators 1 and 2 (half the voting power, at least a third) is signed',
     [offer(t0_e8, SIGNED, endorse=votes_of(t0_e8, [1, 2]))]),
    ('catch-up: the votes of validator 1 alone (a quarter) do not suffice', [offer(t0_e8, 'ImplausibleProofError', endorse=votes_of(t0_e8, [1]))]),
    ('catch-up: validator 1\'s vote shown twice counts once', [offer(t0_e8, 'ImplausibleProofError', endorse=votes_of(t0_e8, [1]) + votes_of(t0_e8, [1]))]),
    ('catch-up: the validator\'s own vote does not count (0 and 1: a quarter)', [offer(t0_e8, 'ImplausibleProofError', endorse=votes_of(t0_e8, [0, 1]))]),
    ('catch-up: a vote whose signature does not verify for its validator does not count', [offer(t0_e8, 'ImplausibleProofError', endorse=votes_of(t0_e8, [1]) + [forged])]),
    ('catch-up: votes for another message do not count', [offer(t0_e8, 'ImplausibleProofError', endorse=votes_of(t0, [1, 2]))]),
    ('catch-up is not for an unbond: an epoch-8 unbond with the votes of validators 1 and 2 is refused',
     [final(stake), offer(msg('alice', 1, 8, 'unbond', amount=NEURO), 'ImplausibleProofError', endorse=votes_of(msg('alice', 1, 8, 'unbond', amount=NEURO), [1, 2]))]),
    ('funds: dave holds nothing (InsufficientFundsError); carol cannot send 11 NEURO, then sends her 10 (a refused message is not recorded)',
     [offer(msg('dave', 0, 10, 'transfer', to=BOB, amount=1), 'InsufficientFundsError'),
      offer(msg('carol', 0, 10, 'transfer', to=BOB, amount=11 * NEURO), 'InsufficientFundsError'),
      offer(msg('carol', 0, 10, 'transfer', to=BOB, amount=10 * NEURO), SIGNED)]),
    ('funds: a stake of more than the balance is refused', [offer(msg('carol', 0, 10, 'stake', amount=11 * NEURO), 'InsufficientFundsError')]),
    ('the unbond bound: alice (100 NEURO bonded) may not unbond 101, may unbond 100',
     [final(stake), offer(msg('alice', 1, 10, 'unbond', amount=101 * NEURO), 'InsufficientFundsError'), offer(msg('alice', 1, 10, 'unbond', amount=100 * NEURO), SIGNED)]),
    ('the unbond bound: a genesis validator\'s stake is locked (validator 1 unbonding 1 NEURO)', [offer(msg('v1', 0, 10, 'unbond', amount=NEURO), 'InsufficientFundsError')]),
    ('withdraw: no unbonding entry (InsufficientFundsError)', [final(stake), offer(msg('alice', 1, 10, 'withdraw'), 'InsufficientFundsError')]),
    ('withdraw: the entry releases at epoch 9 (0 + 7 + 2): a withdraw stamped epoch 8 is refused, one stamped 9 signed',
     [final(stake), final(unbond), offer(msg('alice', 2, 8, 'withdraw'), 'InsufficientFundsError', now=9 * EPOCH),
      offer(msg('alice', 2, 9, 'withdraw'), SIGNED, now=9 * EPOCH)]),
    ('step 4: after alice equivocated at sequence 2 (seen in step 2), her withdrawal at 3 is refused (EvidenceConflictError)',
     [final(stake), final(unbond), offer(a2, SIGNED), offer(a2b, 'EquivocationError'), final(a2), offer(withdraw3, 'EvidenceConflictError')]),
    ('step 4, control: the same withdrawal without the equivocation is signed',
     [final(stake), final(unbond), offer(a2, SIGNED), final(a2), offer(withdraw3, SIGNED)]),
    ('step 4: two messages for one slot whose epochs differ by more than 2·epochWindow + 1 (3) are no evidence: the withdrawal is signed',
     [final(stake), final(unbond), offer(msg('alice', 2, 14, 'transfer', to=BOB, amount=NEURO), SIGNED, now=14 * EPOCH),
      offer(msg('alice', 2, 10, 'transfer', to=BOB, amount=NEURO), 'EquivocationError', now=10 * EPOCH),
      final(msg('alice', 2, 14, 'transfer', to=BOB, amount=NEURO)), offer(msg('alice', 3, 14, 'withdraw'), SIGNED, now=14 * EPOCH)]),
    ('step 3 before step 4: a withdrawal without a matured entry after evidence is InsufficientFundsError',
     [final(stake), offer(msg('alice', 1, 10, 'transfer', to=BOB, amount=NEURO), SIGNED),
      offer(msg('alice', 1, 10, 'transfer', to=BOB, amount=7 * NEURO), 'EquivocationError'),
      final(msg('alice', 1, 10, 'transfer', to=BOB, amount=NEURO)), offer(msg('alice', 2, 10, 'withdraw'), 'InsufficientFundsError')]),
]


def vote_json(v):
    return {'validator': v['validator'], 'signature': v['signature'].hex()}


def main():
    out = {'description': 'README §6.1 as sequences for validator 0 (secretKey: the key of seed validator-0) of genesis.json: each step is '
                          '`final` (a certificate the node makes final) or `vote` (a SignedTx offered at clock `nowMs`, with catch-up `endorsements`); '
                          'expect: `signed` true (the validator signs its vote) or `error` (the §6.1 refusal, in the order of "Refusals, in order")',
           'validator': 0, 'secretKey': V[0].secret.hex(), 'sequences': []}
    bad = []
    for name, steps in SEQUENCES:
        val = Validator(chain, 0, V[0])
        js = []
        for st in steps:
            if st[0] == 'final':
                val.final(st[1])
                js.append({'op': 'final', 'certificate': st[1].hex(), 'expect': {}})
                continue
            _, signed, expect, now, endorse = st
            try:
                val.vote(signed, now, endorse or ())
                got = SIGNED
            except Exception as e:  # noqa: BLE001
                got = getattr(e, 'name', type(e).__name__)
            if got != expect:
                bad.append(f'{name}: step {len(js)} the Python validator says {got}, the spec {expect}')
            step = {'op': 'vote', 'signedTx': signed.hex(), 'nowMs': now}
            if endorse:
                step['endorsements'] = [vote_json(v) for v in endorse]
            step['expect'] = {'signed': True} if expect == SIGNED else {'error': expect}
            js.append(step)
        out['sequences'].append({'name': name, 'steps': js})
    if bad:
        print('\n'.join(bad), file=sys.stderr)
        return 1
    with open(os.path.join(HERE, 'validator.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'validator.json: {len(SEQUENCES)} sequences')
    return 0


if __name__ == '__main__':
    sys.exit(main())

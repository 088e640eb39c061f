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
import hashlib  # noqa: E402
from neuroshard_ledger import Chain, State, Wallet, assign_shards, encode_certificate, parse_certificate, parse_signed_tx  # noqa: E402
from neuroshard_ledger.validator import Validator, check_training  # noqa: E402

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

# ---- §8 training checks in order: alice's training proof at clock NOW (round 60; roundWindow 2) ----
ROUND_MS = chain.params['roundMs']
R = NOW // ROUND_MS


def training(round_=R, shards=None, tokens=4096, batch_loss=(2000000, 2000000, 2000001), before=None, after=2500000, claim=0, seq=0):
    shards = assign_shards(chain, W['alice'].address, round_) if shards is None else shards
    before = sum(batch_loss) // len(batch_loss) if before is None else before
    h = lambda x: hashlib.sha256(x.encode()).digest()  # noqa: E731
    return msg('alice', seq, 10, 'training', round=round_, model_hash=h('base'), shard_ids=shards, tokens=tokens, batches=len(batch_loss),
               loss_before_micro=before, loss_after_micro=after, pseudo_gradient_hash=h('delta'), batch_loss_micro=list(batch_loss),
               stake_claim=claim, checkpoint_interval=2, checkpoint_hashes=[h('after 2 steps')])


FULL = {'segmentsChecked': 1, 'pseudoGradientVerified': True, 'lossAfterVerified': True}
NO_LOSS = {**FULL, 'lossAfterVerified': False}
OK = None
ASSIGNED = assign_shards(chain, W['alice'].address, R)
# (name, final messages first, the proof, accepted (rule 1; None: no round records), verdict (None: no re-executor), expected error or OK)
TRAINING = [
    ('no bonus claimed (loss_after 2.5M above loss_before 2M): signed without loss_after verified', [], training(), True, NO_LOSS, OK),
    ('the bonus claimed (1.5M < 2M, <= the 3M threshold) and loss_after verified: signed', [], training(after=1500000), True, FULL, OK),
    ('rule 4: the bonus claimed, loss_after not verified: ReExecutionMismatchError', [], training(after=1500000), True, NO_LOSS, 'ReExecutionMismatchError'),
    ('rule 4 boundary: loss_after = the threshold (3M) below loss_before (4M) earns the bonus: not verified, refused',
     [], training(batch_loss=(4000000, 4000000, 4000000), after=3000000), True, NO_LOSS, 'ReExecutionMismatchError'),
    ('rule 4 boundary: loss_after one above the threshold earns no bonus: signed without it',
     [], training(batch_loss=(4000000, 4000000, 4000000), after=3000001), True, NO_LOSS, OK),
    ('rule 4 boundary: loss_after equal to loss_before earns no bonus: signed without it', [], training(after=2000000), True, NO_LOSS, OK),
    ('rule 1: the round record did not accept the pseudo-gradient: PseudoGradientNotAcceptedError', [], training(), False, FULL, 'PseudoGradientNotAcceptedError'),
    ('rule 1 before rule 4', [], training(after=1500000), False, NO_LOSS, 'PseudoGradientNotAcceptedError'),
    ('rule 3: no segment re-executed: ReExecutionMismatchError', [], training(), True, {**FULL, 'segmentsChecked': 0}, 'ReExecutionMismatchError'),
    ('rule 3: the pseudo-gradient not verified: ReExecutionMismatchError', [], training(), True, {**FULL, 'pseudoGradientVerified': False}, 'ReExecutionMismatchError'),
    ('fail closed: no re-executor: NoVerifierError', [], training(), True, None, 'NoVerifierError'),
    ('fail closed: no round records: NoVerifierError', [], training(), None, FULL, 'NoVerifierError'),
    ('fail closed first: no re-executor and shards not the assignment: NoVerifierError', [], training(shards=[0, 1, 2, 3]), True, None, 'NoVerifierError'),
    ('the round window: round r - 2 is signed', [], training(round_=R - 2), True, FULL, OK),
    ('the round window: round r - 3 is too old: ImplausibleProofError', [], training(round_=R - 3), True, FULL, 'ImplausibleProofError'),
    ('the round window: round r + 1 is in the future: ImplausibleProofError', [], training(round_=R + 1), True, FULL, 'ImplausibleProofError'),
    ('tokens above maxTrainingTokensPerProof (10M): ImplausibleProofError', [], training(tokens=10000001), True, FULL, 'ImplausibleProofError'),
    ('shard_ids other than the assignment: ShardAssignmentError', [], training(shards=list(reversed(ASSIGNED))), True, FULL, 'ShardAssignmentError'),
    ('the shard assignment before rule 1', [], training(shards=list(reversed(ASSIGNED))), False, FULL, 'ShardAssignmentError'),
    ('loss_before not the floor of the mean (2000001 for 2000000.33): ImplausibleProofError', [], training(before=2000001), True, FULL, 'ImplausibleProofError'),
    ('a stake claim without stake: ImplausibleProofError', [], training(claim=NEURO), True, FULL, 'ImplausibleProofError'),
    ('a stake claim within the bonded stake: signed', [stake], training(claim=100 * NEURO, seq=1), True, FULL, OK),
    ('a stake claim above the bonded stake: ImplausibleProofError', [stake], training(claim=100 * NEURO + 1, seq=1), True, FULL, 'ImplausibleProofError'),
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
    out['training'] = {'description': 'README §8 training checks in order: `final` certificates made final first, then `proof` (a SignedTx) '
                                      'checked at clock `nowMs` with a round record that answers `accepted` (null: no round records) and a re-executor '
                                      'that reports `verdict` (null: none); expect `valid` or the error', 'nowMs': NOW, 'cases': []}
    for name, finals, proof, accepted, verdict, expect in TRAINING:
        st = State(chain)
        certs = [cert(f) for f in finals]
        for c in certs:
            st.add_final([parse_certificate(chain, c)[0]])
        try:
            check_training(st, parse_signed_tx(chain, proof), NOW, accepted, verdict)
            got = OK
        except Exception as e:  # noqa: BLE001
            got = getattr(e, 'name', type(e).__name__)
        if got != expect:
            bad.append(f'training: {name}: the Python checks say {got}, the spec {expect}')
        c = {'name': name, 'final': [x.hex() for x in certs], 'proof': proof.hex(), 'accepted': accepted, 'verdict': verdict}
        c.update({'valid': True} if expect is OK else {'error': expect})
        out['training']['cases'].append(c)
    if bad:
        print('\n'.join(bad), file=sys.stderr)
        return 1
    with open(os.path.join(HERE, 'validator.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'validator.json: {len(SEQUENCES)} sequences, {len(TRAINING)} training checks')
    return 0


if __name__ == '__main__':
    sys.exit(main())

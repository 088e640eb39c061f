"""The validator rule of specs/ponw-ledger/README.md §6.1 (signing) with its refusals in the order of 1.1.0, written
from the spec text: steps 2 (one message per slot), 3 (the state checks for transfer, stake, payment, unbond and
withdraw; catch-up votes), 4 (no withdrawal after evidence seen in step 2) and 5 (record before signing). Slash
reports and proofs (§6.2, §8 checks) are not implemented here: `vote` refuses them with NotImplementedError."""
from .ledger import LedgerError, State, decode_amount, parse_certificate, parse_signed_tx, verify_vote


class ValidatorRefusal(LedgerError):
    def __init__(self, name, message=''):
        super().__init__(message)
        self.name = name


def voting_powers(state: State):
    """§6.2: genesis stake less the account's `slashed`, never below 0"""
    ch = state.chain
    return [max(0, v['stake'] - state.get(ch.validator_addresses[i])['slashed']) for i, v in enumerate(ch.genesis['validators'])]


class Validator:
    def __init__(self, chain, index, wallet):
        self.chain, self.index, self.wallet = chain, index, wallet
        self.state = State(chain)
        self.voted = {}          # (sender, sequence) -> LedgerTx (step 5)
        self.evidence = set()    # senders it holds account-equivocation evidence against (step 2)

    def final(self, certificate: bytes):
        self.state.add_final([parse_certificate(self.chain, certificate, voting_powers(self.state))[0]])

    def epoch(self, now_ms):
        g = self.chain.genesis
        return max(0, (now_ms - g['genesisTimeMs']) // self.chain.params['epochMs'])

    def vote(self, signed: bytes, now_ms: int, endorsements=()):
        tx = parse_signed_tx(self.chain, signed)                              # step 1 (§5.3 errors)
        slot = (tx.sender, tx.sequence)
        prev = self.voted.get(slot)
        if prev is not None:                                                  # step 2
            if prev.id == tx.id:
                return self.wallet.sign_vote(self.chain, self.index, tx.id)
            if abs(prev.epoch - tx.epoch) <= 2 * self.chain.params['epochWindow'] + 1:
                self.evidence.add(tx.sender)
            raise ValidatorRefusal('EquivocationError', 'another message for a slot this validator voted for')
        self._check(tx, now_ms, endorsements)                                 # step 3
        if tx.kind == 'withdraw' and tx.sender in self.evidence:             # step 4
            raise ValidatorRefusal('EvidenceConflictError', 'a withdrawal of an account this validator holds evidence against')
        self.voted[slot] = tx                                                 # step 5
        return self.wallet.sign_vote(self.chain, self.index, tx.id)

    def _check(self, tx, now_ms, endorsements):
        s, p = self.state, self.chain.params
        acc = s.get(tx.sender)
        if tx.id_hex in s.known or tx.sequence < acc['nextSeq'] or tx.sequence in s.queued.get(tx.sender, {}):
            raise ValidatorRefusal('ReplayError', 'final already')
        if tx.sequence > acc['nextSeq']:
            raise ValidatorRefusal('SequenceGapError', 'not ready')
        e, w = self.epoch(now_ms), p['epochWindow']
        if tx.epoch > e + w or (tx.epoch < e - w and not self._caught_up(tx, endorsements)):
            raise ValidatorRefusal('ImplausibleProofError', f'epoch {tx.epoch} outside {e} ± {w}')
        b = tx.body

        def need(amount, have):
            if have < amount:
                raise ValidatorRefusal('InsufficientFundsError', f'needs {amount}, has {have}')
        if tx.kind in ('transfer', 'stake'):
            need(decode_amount(b['amount']), acc['balance'])
        elif tx.kind == 'payment':
            need(b['tokens'] * decode_amount(b['price_per_token']), acc['balance'])
        elif tx.kind == 'unbond':
            need(decode_amount(b['amount']), max(0, acc['bonded'] - max(acc['slashed'], self.chain.locked_stake(tx.sender))))
        elif tx.kind == 'withdraw':
            if acc['slashed'] > 0 or not any(x['releaseEpoch'] <= tx.epoch for x in acc['unbonding']):
                raise ValidatorRefusal('InsufficientFundsError', 'no matured entry, or a slashed account')
        else:
            raise NotImplementedError(tx.kind)

    def _caught_up(self, tx, endorsements):
        if tx.kind == 'unbond':
            return False
        powers = voting_powers(self.state)
        seen = set()
        for v in endorsements:
            i = v['validator']
            if i not in seen and i != self.index and 0 <= i < len(powers) and verify_vote(self.chain, tx.id, i, v['signature']):
                seen.add(i)
        return 3 * sum(powers[i] for i in seen) >= sum(powers)


def check_training(state: State, tx, now_ms, accepted, verdict):
    """§8 training checks in the order of 1.1.0. `accepted`: the round record's answer (rule 1), None = no round
    records; `verdict`: the re-executor's report {segmentsChecked, pseudoGradientVerified, lossAfterVerified}, None = no
    re-executor. Returns None when the validator may sign, else raises ValidatorRefusal"""
    from .ledger import assign_shards
    ch = state.chain
    p, g = ch.params, ch.genesis
    b = tx.body
    if verdict is None or accepted is None:
        raise ValidatorRefusal('NoVerifierError', 'training')
    r = max(0, (now_ms - g['genesisTimeMs']) // p['roundMs'])
    if b['round'] > r or r - b['round'] > p['roundWindow']:
        raise ValidatorRefusal('ImplausibleProofError', 'round outside the window')
    if b['tokens'] > p['maxTrainingTokensPerProof'] or b['batches'] > p['maxBatchesPerProof']:
        raise ValidatorRefusal('ImplausibleProofError', 'implausible amount of work')
    if list(b['shard_ids']) != assign_shards(ch, tx.sender, b['round']):
        raise ValidatorRefusal('ShardAssignmentError', 'not the assignment')
    if sum(b['batch_loss_micro']) // b['batches'] != b['loss_before_micro']:
        raise ValidatorRefusal('ImplausibleProofError', 'loss_before is not the mean')
    acc = state.get(tx.sender)
    if decode_amount(b['stake_claim']) > max(0, acc['bonded'] - acc['slashed']):
        raise ValidatorRefusal('ImplausibleProofError', 'stake claim')
    if f'training/{tx.sender}/{b["round"]}' in state.proof_keys:
        raise ValidatorRefusal('ReplayError', 'proof key used')
    if not accepted:
        raise ValidatorRefusal('PseudoGradientNotAcceptedError', 'rule 1')
    if verdict['segmentsChecked'] < 1 or not verdict['pseudoGradientVerified']:
        raise ValidatorRefusal('ReExecutionMismatchError', 'rule 3')
    bonus = b['loss_after_micro'] < b['loss_before_micro'] and b['loss_after_micro'] <= p['qualityLossThresholdMicro']
    if bonus and not verdict['lossAfterVerified']:
        raise ValidatorRefusal('ReExecutionMismatchError', 'rule 4')

"""A sync requester (specs/ponw-ledger/README.md §10, §6.3 "Sync", 1.1.0), written from the spec text: the checks of
each page, the certificates it adds, and when the session ends."""
from .ledger import LedgerError, parse_certificate
from .validator import voting_powers


class MalformedMessageError(LedgerError):
    name = 'MalformedMessageError'


def session(state, start, limit, pages):
    """`state`: the requester's State (final messages it knows); `pages`: [{certificates: [bytes], next, done}] as the
    responder serves them. Returns one outcome per page read: {'added': n, 'end': bool} or {'error': name} (the session
    ends). Pages after the end are not read"""
    out, frm, known_served = [], start, 0
    for p in pages:
        n = len(p['certificates'])
        if n > limit or p['next'] < frm + n or (n == 0 and p['next'] != frm):
            out.append({'error': 'MalformedMessageError'})
            break
        try:
            txs = []
            for c in p['certificates']:
                try:
                    txs.append(parse_certificate(state.chain, c, voting_powers(state))[0])
                except LedgerError as e:
                    if e.name != 'InsufficientQuorumError':   # short of the quorum by this state: left out, the others apply
                        raise
        except LedgerError as e:
            out.append({'error': e.name})
            break
        before = len(state.known)
        state.add_final(txs)
        fresh = len(state.known) - before
        known_served += n - fresh
        frm = p['next']
        end = p['done'] or n == 0 or known_served > len(state.known)
        out.append({'added': fresh, 'end': end})
        if end:
            break
    return out

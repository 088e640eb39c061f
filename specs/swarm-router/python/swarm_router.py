"""The swarm router's rules (specs/swarm-router/README.md §1, §3-§6), written from the spec text alone, standard
library only. The least-cost chain is a dynamic programme over slot boundaries (the vectors were made by brute
force over every chain, vectors/gen.py), so the two meet only through the rules."""
import math

DEFAULTS = {'unknownRttMs': 50, 'unmeasuredThroughput': 100, 'tokens': 1, 'kvTokens': 0, 'kvPenaltyMs': 20, 'loadPenaltyMs': 5}


def hop_cost(c, o, s, e):
    """§1 hop cost in ms of candidate c running [s, e): ∞ when its known KV headroom is below the session's tokens,
    otherwise kvPenalty · kvTokens / headroom more (1.1.0)"""
    need = o.get('kvTokens', 0)
    kv = 0.0
    if c.get('kvHeadroom') is not None and need > 0:
        if c['kvHeadroom'] < need:
            return math.inf
        kv = o.get('kvPenaltyMs', DEFAULTS['kvPenaltyMs']) * need / c['kvHeadroom']
    tput = c['throughput'] if c['throughput'] > 0 else o['unmeasuredThroughput']
    rtt = c.get('rttMs')
    return (o['unknownRttMs'] if rtt is None else rtt) + 1000 * o['tokens'] / tput * (e - s) / (c['end'] - c['start']) + (c.get('load') or 0) * o['loadPenaltyMs'] + kv


def least_cost_chain(candidates, frm, to, o, excluded=()):
    """§3: [(peer, s, e), ...] and its cost, or None (NoRouteError). Ties: fewer hops, then the lower peer id of the
    hop ending at the later boundary (compared from the last hop backwards)."""
    usable = [c for c in candidates if c['peer'] not in set(excluded)]
    # best[j] = (cost, hops, peers from the last hop backwards, chain) over chains tiling [frm, j)
    best = {frm: (0.0, 0, (), [])}
    for j in range(frm + 1, to + 1):
        options = []
        for i in range(frm, j):
            if i not in best:
                continue
            for c in usable:
                if c['start'] <= i and j <= c['end']:
                    k = hop_cost(c, o, i, j)
                    if math.isinf(k):
                        continue
                    cost, hops, back, chain = best[i]
                    options.append((cost + k, hops + 1, (c['peer'].encode('utf-8'),) + back, chain + [(c['peer'], i, j)]))
        if options:
            best[j] = min(options, key=lambda x: (x[0], x[1], x[2]))
    if to not in best:
        return None
    return best[to][3], best[to][0]


def standbys(chain, candidates, o, excluded=()):
    """§4: per hop the least-cost other candidate covering its range (ties to the lower peer id), or None"""
    out = []
    for peer, s, e in chain:
        alts = [(hop_cost(c, o, s, e), c['peer'].encode('utf-8'), c['peer']) for c in candidates
                if c['peer'] != peer and c['peer'] not in set(excluded) and c['start'] <= s and e <= c['end']]
        alts = [a for a in alts if not math.isinf(a[0])]
        out.append(min(alts)[2] if alts else None)
    return out


def weighted_pick(weights, u):
    """§5: the first i with u·Σw − (w1 + … + wi) < 0 (the last one if rounding leaves none)"""
    total = sum(weights)
    acc = 0
    for i, w in enumerate(weights):
        acc += w
        if u * total - acc < 0:
            return i
    return len(weights) - 1


class Bans:
    """§6: banned until now + min(maxBan, base·2^(f−1)); f = previous + 1 if the failure comes before the previous
    ban's end + forget, else 1; a failure while the peer is still banned changes nothing (1.2.0)"""

    def __init__(self, base_ms, max_ms, forget_ms):
        self.base, self.max, self.forget = base_ms, max_ms, forget_ms
        self.peers = {}

    def fail(self, peer, now):
        prev = self.peers.get(peer)
        if prev is not None and now < prev[1]:
            return prev[1], prev[0]
        f = prev[0] + 1 if prev is not None and now < prev[1] + self.forget else 1
        until = now + min(self.max, self.base * 2 ** (f - 1))
        self.peers[peer] = (f, until)
        return until, f

    def forgive(self, peer):
        """§6 (1.3.0): the peer restarted (see restarted): its ban and count are dropped"""
        self.peers.pop(peer, None)


def restarted(issued_at, failed_expires_at):
    """§6 (1.3.0): a peer's record issued at or after the expiry of the record it last failed under (both on the
    peer's clock) follows a whole record lifetime of silence: it restarted"""
    return failed_expires_at is not None and issued_at is not None and issued_at >= failed_expires_at

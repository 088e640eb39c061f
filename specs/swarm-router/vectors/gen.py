#!/usr/bin/env python3
"""Independent generator of specs/swarm-router/vectors/routing.json (README §3-§6), pure Python:
brute force over every chain of whole or partial spans (not the DAG relaxation the reference implementation uses)."""
import json, itertools

COST = {'unknownRttMs': 50, 'unmeasuredThroughput': 100, 'tokens': 1, 'kvTokens': 0, 'kvPenaltyMs': 20, 'loadPenaltyMs': 5}

def hop_cost(c, o, s=None, e=None):
    s = c['start'] if s is None else s
    e = c['end'] if e is None else e
    kv = 0.0
    if c.get('kvHeadroom') is not None and o['kvTokens'] > 0:
        if c['kvHeadroom'] < o['kvTokens']:
            return float('inf')
        kv = o['kvPenaltyMs'] * o['kvTokens'] / c['kvHeadroom']
    t = c['throughput'] if c['throughput'] > 0 else o['unmeasuredThroughput']
    rtt = c.get('rttMs')
    return (o['unknownRttMs'] if rtt is None else rtt) + 1000 * o['tokens'] / t * (e - s) / (c['end'] - c['start']) + c.get('load', 0) * o['loadPenaltyMs'] + kv

def chains(cands, frm, to, excluded):
    """every chain of hops (candidate, s, e) with c.start <= s < e <= c.end tiling [frm, to)"""
    usable = [c for c in cands if c['peer'] not in excluded]
    out = []
    def walk(at, acc):
        if at == to:
            out.append(list(acc)); return
        for c in usable:
            if c['start'] <= at < c['end']:
                for e in range(at + 1, min(c['end'], to) + 1):
                    acc.append((c, at, e)); walk(e, acc); acc.pop()
    walk(frm, [])
    return out

def best(cands, frm, to, o, excluded=()):
    opts = []
    for ch in chains(cands, frm, to, set(excluded)):
        cost = sum(hop_cost(c, o, s, e) for c, s, e in ch)
        if cost == float('inf'):
            continue
        opts.append((cost, len(ch), [[c['peer'], s, e] for c, s, e in ch], ch))
    if not opts:
        return None
    opts.sort(key=lambda x: (x[0], x[1]))
    if len(opts) > 1 and abs(opts[1][0] - opts[0][0]) < 1e-9 and opts[1][1] == opts[0][1]:
        raise SystemExit('tie in a vector: make the best chain unique')
    return opts[0]

def c(peer, start, end, rtt=None, tput=1000, **kw):
    d = {'peer': peer, 'start': start, 'end': end, 'throughput': tput}
    if rtt is not None: d['rttMs'] = rtt
    d.update(kw)
    return d

cases = [
    ('two short spans beat one slow long span', [c('long', 1, 5, 30), c('x', 1, 3, 5), c('y', 3, 5, 5)], 1, 5, {}, []),
    ('one fast long span beats two short ones', [c('long', 1, 5, 8), c('x', 1, 3, 5), c('y', 3, 5, 5)], 1, 5, {}, []),
    ('unknown RTT and unmeasured throughput use the defaults', [c('u', 1, 3, None, 0), c('m', 1, 3, 55, 1000), c('v', 3, 4, 1)], 1, 4, {}, []),
    ('load penalty moves a session to the idle replica', [c('a', 1, 3, 5, load=3), c('b', 1, 3, 12), c('v', 3, 4, 1)], 1, 4, {}, []),
    ('KV headroom below the need excludes a hop', [c('full', 1, 3, 1, kvHeadroom=10), c('roomy', 1, 3, 40), c('v', 3, 4, 1)], 1, 4, {'kvTokens': 1000}, []),
    ('a nearly full KV cache loses to a slower replica with room (1.1.0)', [c('tight', 1, 3, 5, kvHeadroom=512), c('roomy', 1, 3, 15, kvHeadroom=51200), c('v', 3, 4, 1)], 1, 4, {'kvTokens': 512}, []),
    ('a short session barely uses the cache: the faster replica wins (1.1.0)', [c('tight', 1, 3, 5, kvHeadroom=512), c('roomy', 1, 3, 15, kvHeadroom=51200), c('v', 3, 4, 1)], 1, 4, {'kvTokens': 16}, []),
    ('KV headroom decides between equal replicas (1.1.0)', [c('a', 1, 3, 5, kvHeadroom=1000), c('b', 1, 3, 5, kvHeadroom=4000), c('v', 3, 4, 1)], 1, 4, {'kvTokens': 100}, []),
    ('a banned peer is routed around', [c('a', 1, 3, 1), c('b', 1, 3, 9), c('v', 3, 4, 1)], 1, 4, {}, ['a']),
    ('no chain when a slot is uncovered', [c('x', 1, 3, 5), c('y', 4, 5, 5)], 1, 5, {}, []),
    ('spans reaching outside [from, to) serve their part inside', [c('z', 0, 3, 1), c('a', 1, 3, 5), c('w', 3, 6, 1), c('t', 3, 4, 1.5)], 1, 4, {}, []),
    ('part of a full-model span serves the blocks after the Driver', [c('full', 0, 4, 3), c('v', 3, 4, 9)], 1, 4, {}, []),
    ('one hop over part of a long span beats two hops', [c('big', 1, 9, 4, 500), c('p', 1, 3, 3), c('q', 3, 5, 3)], 1, 5, {}, []),
    ('§4: a peer excluded for this session (its KV cache full) is left out; the standby is another replica, never the excluded one',
     [c('a', 1, 3, 1), c('b', 1, 3, 9), c('c', 1, 3, 20), c('v', 3, 4, 1)], 1, 4, {}, ['a']),
    ('§4: when the excluded peers are the only ones covering a hop there is no chain', [c('a', 1, 3, 1), c('b', 1, 3, 9), c('v', 3, 4, 1)], 1, 4, {}, ['a', 'b']),
    ('a longer mixed chain', [c('p', 1, 2, 3), c('q', 2, 4, 4), c('r', 1, 4, 12), c('s', 4, 5, 2), c('t', 2, 5, 9), c('v', 5, 6, 1)], 1, 6, {}, []),
]
out = []
for name, cands, frm, to, over, excluded in cases:
    o = dict(COST, **over)
    b = best(cands, frm, to, o, excluded)
    entry = {'name': name, 'candidates': cands, 'from': frm, 'to': to, 'cost': o, 'excluded': excluded}
    if b is None:
        entry['chain'] = None
    else:
        entry['chain'] = b[2]
        entry['chainCost'] = b[0]
        sb = []
        for h, s0, e0 in b[3]:
            alts = [(hop_cost(x, o, s0, e0), x['peer']) for x in cands if x['start'] <= s0 and x['end'] >= e0 and x['peer'] != h['peer'] and x['peer'] not in excluded and hop_cost(x, o, s0, e0) < float('inf')]
            alts.sort()
            sb.append(alts[0][1] if alts else None)
        entry['standbys'] = sb
    out.append(entry)

# weighted pick: items with weights, draws u -> index
picks = []
w = [300, 100, 100]
for u in [0.0, 0.3, 0.59, 0.6, 0.61, 0.79, 0.8, 0.99]:
    total = sum(w); x = u * total; idx = len(w) - 1
    for i, wi in enumerate(w):
        x -= wi
        if x < 0:
            idx = i; break
    picks.append({'u': u, 'index': idx})

# bans: base 1000, max 5000, forget 60000
bans = []
state = {}
def fail(p, now):
    e = state.get(p)
    if e and now < e['until']:
        return e['until'], e['failures']  # still banned: the same outage, nothing changes (1.2.0)
    f = e['failures'] + 1 if e and now < e['until'] + 60000 else 1
    until = now + min(5000, 1000 * 2 ** (f - 1))
    state[p] = {'failures': f, 'until': until}
    return until, f
for p, now in [('a', 0), ('a', 1000), ('a', 3000), ('a', 7000), ('a', 12000 + 60001), ('b', 500), ('b', 600), ('b', 1499), ('b', 1500), ('b', 2000)]:
    until, f = fail(p, now)
    bans.append({'peer': p, 'failAt': now, 'bannedUntil': until, 'failures': f})

json.dump({'description': 'least-cost chains and standbys (README §3-§4), weighted pick (§5), bans (§6)',
           'chains': out, 'weightedPick': {'weights': w, 'draws': picks},
           'bans': {'baseMs': 1000, 'maxMs': 5000, 'forgetMs': 60000, 'events': bans}}, open('routing.json', 'w'), indent=2)
print('ok')

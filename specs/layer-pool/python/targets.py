"""Which weights a node takes for a slot: specs/layer-pool/README.md §6 (loading a span: votes, the target, where a
slot's weights come from, the re-check after loading) and §6.1 (catching up), written from the spec text alone.

Records are given as the vectors write them (vectors/targets.json):
    {"peer": "p1", "status": "live" | "unreachable" | "lapsed",
     "spans": [{"start", "end", "state", "weightsStep", "slots": [{"weightsHash", "chunksRoot", "weightsStep"?}]}]}
"live": a record the node counts (§2.2) of a holder it can reach; "unreachable": counted, but the holder is known
unreachable (§4); "lapsed": stopped counting less than loading_grace_ms ago."""

ZERO = '0' * 64
VOTING = ('serving', 'training')


def votes(records, slot):
    """{(weightsHash, chunksRoot): {'step', 'votes', 'holders'}} — §6 (1.4.0, 1.4.1, 1.6.0, 1.6.1)"""
    def tally(recs):
        out = {}
        for r in recs:
            for s in r['spans']:
                if s['state'] not in VOTING or not s['start'] <= slot < s['end']:
                    continue
                e = s['slots'][slot - s['start']]
                if e['weightsHash'] == ZERO:          # a slot not loaded yet names no weights
                    continue
                step = e['weightsStep'] if e.get('weightsStep') is not None else s['weightsStep']   # 1.6.0: the slot's own step, else its span's
                v = out.setdefault((e['weightsHash'], e['chunksRoot']), {'step': step, 'votes': 0, 'holders': []})
                v['step'] = max(v['step'], step)
                v['votes'] += 1
                if r['status'] == 'live':
                    v['holders'].append(r['peer'])
        return out
    out = tally([r for r in records if r['status'] in ('live', 'unreachable')])
    if not out:   # lapsed records vote only when no counted record lists the slot
        out = tally([r for r in records if r['status'] == 'lapsed'])
    return out


def target(vs):
    """the most votes, then the larger step, then the smaller weights hash, then chunks root (lowercase hex)"""
    if not vs:
        return None
    key = min(vs, key=lambda k: (-vs[k]['votes'], -vs[k]['step'], k[0], k[1]))
    return {'weightsHash': key[0], 'chunksRoot': key[1], **vs[key]}


def source(records, slot, genesis_hash, avoid=()):
    """§6: ('genesis' | 'transfer' | 'wait', the target or None, the replicas to fetch from)"""
    t = target(votes(records, slot))
    if t is None or t['weightsHash'] == genesis_hash:
        return 'genesis', t, []
    replicas = [p for p in t['holders'] if p not in avoid]
    if not replicas:      # no live replica of the target (or each one served bad data): never the genesis instead
        return 'wait', t, []
    return 'transfer', t, replicas


def load_span(slots, genesis, resolve, recheck, avoid=()):
    """§6: each slot resolved on the records of its moment; when every slot is loaded, each slot taken from the genesis
    is checked again on the records of that moment, and those whose target is no longer the genesis are fetched
    before the span serves. Returns ([per slot source], the slots to fetch again or None when some slot waits)"""
    out, from_genesis = [], []
    for slot in slots:
        kind, _, _ = source(resolve[str(slot)], slot, genesis[str(slot)], avoid)
        out.append(kind)
        if kind == 'wait':
            return out, None
        if kind == 'genesis':
            from_genesis.append(slot)
    again = []
    for slot in from_genesis:
        t = target(votes(recheck, slot))
        if t is not None and t['weightsHash'] != genesis[str(slot)]:
            again.append(slot)
    return out, again


def behind(records, slot, own):
    """§6.1: the target (from the other replicas' records) has a live replica, differs from own weights hash, has a
    larger step than own, and more votes than own (weights hash, chunks root) with the node itself counted"""
    vs = votes(records, slot)
    t = target(vs)
    if t is None or not t['holders']:
        return False
    if t['weightsHash'] == own['weightsHash'] or t['step'] <= own['step']:
        return False
    mine = 1 + vs.get((own['weightsHash'], own['chunksRoot']), {'votes': 0})['votes']
    return t['votes'] > mine


def catch_up(grace_ms, heartbeats):
    """§6.1 checks, one per heartbeat ({nowMs, records, own: {slot: weights}, serving: [slots]}, no fetch running at
    any of them): the slots behind and the slot whose fetch starts (the smallest one behind for at least the grace)"""
    since, out = {}, []
    for h in heartbeats:
        now, bh = h['nowMs'], []
        for slot in sorted(h['serving']):
            if behind(h['records'], slot, h['own'][str(slot)]):
                bh.append(slot)
                since.setdefault(slot, now)
        for slot in list(since):
            if slot not in bh:
                del since[slot]
        due = [s for s in sorted(since) if now - since[s] >= grace_ms]
        out.append({'behind': bh, 'fetch': due[0] if due else None})
    return out

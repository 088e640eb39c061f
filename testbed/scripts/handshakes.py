#!/usr/bin/env python3
"""
Connection upgrades (Noise handshake + Yamux) seen by the listeners of a scenario run, from node logs
written with DEBUG=libp2p:tcp:listener* (scenarios/diagnostics/join-storm-24-debug.json):
how many inbound connections were upgraded or failed (by error), and how long the upgraded ones took.

  python3 scripts/handshakes.py /tmp/neuroshard-testbed/<run>/logs [node ...]
"""
import datetime, os, re, sys
from collections import Counter

logdir = sys.argv[1]
names = sys.argv[2:] or sorted(f[:-4] for f in os.listdir(logdir) if f.endswith('.log'))
for name in names:
    starts, ok, errors = {}, [], Counter()
    inbound = 0
    for line in open(os.path.join(logdir, name + '.log'), errors='replace'):
        m = re.match(r'(\S+Z) libp2p:tcp:listener(:error)? (.*)', line)
        if not m:
            continue
        t = datetime.datetime.fromisoformat(m.group(1).replace('Z', '+00:00')).timestamp()
        a = re.search(r'/ip4/([0-9.]+/tcp/[0-9]+)', line)
        if 'new inbound connection' in line and a:
            inbound += 1
            starts[a.group(1)] = t
        elif 'inbound connection upgraded' in line and a and a.group(1) in starts:
            ok.append(t - starts.pop(a.group(1)))
        elif 'upgrade failed' in line:
            errors[re.sub(r'^.*upgrade failed - ', '', m.group(3)).strip()[:80]] += 1
    if inbound == 0:
        continue
    ok.sort()
    q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float('nan')
    print(f'{name}: {inbound} inbound, {len(ok)} upgraded (p50 {q(0.5):.1f} s, p90 {q(0.9):.1f} s, max {max(ok or [float("nan")]):.1f} s), {sum(errors.values())} failed')
    for e, c in errors.most_common():
        print(f'    {c:4d}  {e}')

# the nodes' own view (testbed node.ts stats lines): CPU share, event-loop delay, connections, records
import json
cpu, lag, conns, recs = [], [], [], []
for name in names:
    for line in open(os.path.join(logdir, name + '.log'), errors='replace'):
        if line.startswith('{"event":"stats"') and '"cpuPct"' in line:
            r = json.loads(line)
            cpu.append(r['cpuPct']); lag.append(r['lagMs']['max']); conns.append(r['connections']); recs.append(len(r['recordPeers']))
if cpu:
    pct = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    print(f'stats lines: {len(cpu)}; CPU % of one core per node: p50 {pct(cpu, .5)}, p90 {pct(cpu, .9)}, max {max(cpu)}; '
          f'event-loop delay, max per second: p50 {pct(lag, .5)} ms, p90 {pct(lag, .9)} ms, max {max(lag)} ms; '
          f'connections p50 {pct(conns, .5)}; records counted p50 {pct(recs, .5)}, max {max(recs)}')

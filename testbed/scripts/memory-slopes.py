#!/usr/bin/env python3
"""
Least-squares RSS and heap slopes (MB/min) of every node after each given warm-up, from a results JSON
(rssSeries / heapSeries: [s since the run started, MB]); each warm-up counts from the node's first RSS sample, as
the runner's rss-slope check does. The series are rounded to 1 MB (RSS) / 0.1 MB (heap), so slopes can differ from
the runner's table in the second decimal.

  python3 scripts/memory-slopes.py results/soak-home-links-3.json 300 1200
"""
import json, sys

r = json.load(open(sys.argv[1]))[0]
warmups = [int(x) for x in sys.argv[2:]] or [300]


def slope(samples, t0, warm):
    s = [(t, v) for t, v in samples if t - t0 >= warm]
    if len(s) < 10:
        return None
    mx = sum(t for t, _ in s) / len(s)
    my = sum(v for _, v in s) / len(s)
    den = sum((t - mx) ** 2 for t, _ in s)
    return 0.0 if den == 0 else sum((t - mx) * (v - my) for t, v in s) / den * 60


fmt = lambda x: '–' if x is None else f'{x:.2f}'
print('| node | ' + ' | '.join(f'RSS slope after {w // 60} min | heap slope after {w // 60} min' for w in warmups) + ' |')
print('|---|' + '---|---|' * len(warmups))
for name, rss in r['rssSeries'].items():
    heap = (r.get('heapSeries') or {}).get(name, [])
    t0 = rss[0][0] if rss else (heap[0][0] if heap else 0)
    cells = []
    for w in warmups:
        cells += [fmt(slope(rss, t0, w)), fmt(slope(heap, t0, w))]
    print(f'| {name} | ' + ' | '.join(cells) + ' |')

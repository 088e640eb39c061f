#!/usr/bin/env python3
"""
RSS of every node over a run, from a results JSON (rssSeries: [s since the run started, MB]), at every
`step` seconds (the sample at or before each mark), as a markdown table.

  python3 scripts/rss-series.py results/soak-home-links-2.json [step=300]
"""
import json, sys

r = json.load(open(sys.argv[1]))[0]
step = int(sys.argv[2]) if len(sys.argv) > 2 else 300
series = r['rssSeries']
end = max((s[-1][0] for s in series.values() if s), default=0)
marks = list(range(step, end + 1, step))
print('| node | ' + ' | '.join(f'{m // 60} min' for m in marks) + ' |')
print('|---|' + '---|' * len(marks))
for name, s in series.items():
    row = []
    for m in marks:
        before = [mb for t, mb in s if t <= m]
        row.append(str(before[-1]) if before else '–')
    print(f'| {name} | ' + ' | '.join(row) + ' |')

#!/usr/bin/env python3
"""
RSS and V8 heap (main thread) of every node over a run, from the `{"event":"memory"}` lines that `neuroshard start
--json` prints every 10 s into the node logs (the runner keeps them in <run dir>/logs; the results JSON keeps RSS
and heap used, not heap total): at every `step` seconds after the node's first memory line (the line at or before
each mark), `rss / heapTotal / heapUsed` in MB, as a markdown table. The lines carry no time: a mark is the
line's index times 10 s, which is late where the node's timers were (a loaded machine); a line after the table gives
each node's count of lines. heapTotal is what V8 has committed for the
main thread's heap, its new space (up to 2 x --max-semi-space-size) included.

  python3 scripts/memory-lines.py /tmp/neuroshard-testbed/soak-home-links-7cbf/logs [step=300]
"""
import json, os, sys

logs = sys.argv[1]
step = int(sys.argv[2]) if len(sys.argv) > 2 else 300
series = {}
for f in sorted(os.listdir(logs)):
    if not f.endswith('.log'):
        continue
    rows = []
    for line in open(os.path.join(logs, f)):
        if not line.startswith('{"event":"memory"'):
            continue
        m = json.loads(line)
        rows.append((m['rss'], m['heapTotal'], m['heapUsed']))
    series[f[:-4]] = rows
per = 10  # s between memory lines (MEMORY_LINE_INTERVAL_MS)
end = max((len(r) - 1) * per for r in series.values())
marks = list(range(step, end + 1, step))
print('| node | ' + ' | '.join(f'{m // 60} min' for m in marks) + ' |')
print('|---|' + '---|' * len(marks))
mb = lambda b: f'{b / 2 ** 20:.0f}'
for name, rows in series.items():
    cells = []
    for m in marks:
        i = m // per
        cells.append(' / '.join(mb(x) for x in rows[i]) if i < len(rows) else '–')
    print(f'| {name} | ' + ' | '.join(cells) + ' |')
print()
print('memory lines per node: ' + ', '.join(f'{name} {len(rows)}' for name, rows in series.items()))

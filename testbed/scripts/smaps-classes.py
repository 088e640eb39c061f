#!/usr/bin/env python3
"""
Resident memory of a process by kind of mapping, from copies of /proc/<pid>/smaps (issue #15): glibc's per-thread
malloc arenas (anonymous mappings that start on a 64 MiB boundary, at most 64 MiB: a non-main arena's heap), the
brk heap (the main arena), other anonymous mappings under 1 MiB (V8 heap pages of every isolate, small mmaps),
anonymous 1-64 MiB and larger, shared libraries, other files. One line per file: class: resident MB / mappings.

  cp /proc/<pid>/smaps /tmp/smaps-a; ...; python3 scripts/smaps-classes.py /tmp/smaps-a /tmp/smaps-b
"""
import collections, re, sys


def parse(path):
    out, cur = [], None
    for line in open(path):
        m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$', line)
        if m:
            cur = dict(start=int(m[1], 16), end=int(m[2], 16), name=m[4].strip(), rss=0)
            out.append(cur)
            continue
        m = re.match(r'^Rss:\s+(\d+) kB', line)
        if m and cur is not None:
            cur['rss'] = int(m[1])
    return out


def kind(x):
    size = (x['end'] - x['start']) // 1024
    if x['name'] == '[heap]':
        return 'brk heap'
    if x['name'] == '':
        if x['start'] % (64 << 20) == 0 and size <= 65536:
            return 'malloc arenas'
        return 'anon < 1M' if size < 1024 else 'anon 1-64M' if size <= 65536 else 'anon > 64M'
    if x['name'].startswith('[stack'):
        return 'stacks'
    return 'libraries' if '.so' in x['name'] else 'other files'


for p in sys.argv[1:]:
    rss, n = collections.Counter(), collections.Counter()
    for x in parse(p):
        rss[kind(x)] += x['rss']
        n[kind(x)] += 1
    print(p + ': ' + ', '.join(f'{k} {rss[k] / 1024:.0f} MB / {n[k]}' for k in sorted(rss, key=lambda k: -rss[k]) if rss[k] >= 1024))

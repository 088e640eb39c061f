#!/usr/bin/env python3
"""Lists the MUST / MUST NOT statements of every spec, grouped by spec file, section and rule number, as the keys
that COVERAGE.md maps to vectors and checks (specs/test/coverage.spec.ts fails on a group COVERAGE.md does not name).

    python3 specs/conformance/must.py            # one line per group: key, then the number of MUST lines
    python3 specs/conformance/must.py --lines    # every MUST line with its group key
    python3 specs/conformance/must.py --summary  # COVERAGE.md's rows counted per spec file: vectors, tests only, none
    python3 specs/conformance/must.py --summary --write   # and write that table into COVERAGE.md's Summary section
"""
import glob
import os
import re
import sys

SPECS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


def groups():
    """[(key, line number, text)] where key = '<file> › <section> › <rule>' (rule: R3, C2, 4, … or '' outside a rule)"""
    files = ['README.md'] + sorted(os.path.relpath(f, SPECS) for f in glob.glob(os.path.join(SPECS, '*', '*.md')) if '/conformance/' not in f)
    out = []
    for f in files:
        with open(os.path.join(SPECS, f), encoding='utf-8') as fh:
            lines = fh.read().split('\n')
        section, rule, fence = '', '', False
        for i, line in enumerate(lines):
            if line.startswith('```'):
                fence = not fence
            if fence:
                continue
            m = re.match(r'^#+\s+(.*)', line)
            if m:
                section, rule = re.sub(r'\s*\(.*?\)\s*$', '', m.group(1)).strip(), ''
                continue
            m = re.match(r'^\s*(?:[-*]\s+)?\**(R\d+|C\d+|\d{1,2})\.\**\s', line)
            if m:
                rule = m.group(1)
            elif line.strip() == '' or re.match(r'^\s*[-*] ', line):
                rule = ''
            if re.search(r'\bMUST\b', line) and not re.search(r'key ?words', line):
                out.append((f'{f} › {section}' + (f' › {rule}' if rule else ''), i + 1, line.strip()))
    return out


def coverage_class(cell):
    """V: a vector file replayed by the conformance runner; T: package tests only; none; meta (rules about the specs)"""
    if re.search(r'(^|[;(] ?)V[: ]', cell):
        return 'V'
    if cell.startswith('none'):
        return 'none'
    if re.search(r'\bT[: ]', cell):
        return 'T'
    return 'meta'


def summary():
    """a Markdown table of COVERAGE.md's rows: per spec file, the MUST groups with a vector, with package tests only, none"""
    with open(os.path.join(SPECS, 'conformance', 'COVERAGE.md'), encoding='utf-8') as fh:
        rows = [[c.strip() for c in line.strip().strip('|').split(' | ')] for line in fh.read().split('\n') if line.startswith('| ') and ' › ' in line]
    files, totals = {}, {'V': 0, 'T': 0, 'none': 0, 'meta': 0}
    for key, _kind, cell in rows:
        f = key.split(' › ')[0]
        c = coverage_class(cell)
        files.setdefault(f, {'V': 0, 'T': 0, 'none': 0, 'meta': 0})[c] += 1
        totals[c] += 1
    out = ['| spec file | MUST groups | with vectors (V) | package tests only (T) | none | meta |', '|---|---|---|---|---|---|']
    for f, n in files.items():
        out.append(f'| {f} | {sum(n.values())} | {n["V"]} | {n["T"]} | {n["none"]} | {n["meta"]} |')
    out.append(f'| all | {sum(totals.values())} | {totals["V"]} | {totals["T"]} | {totals["none"]} | {totals["meta"]} |')
    return '\n'.join(out)


def main(argv):
    if '--summary' in argv:
        table = summary()
        if '--write' in argv:
            path = os.path.join(SPECS, 'conformance', 'COVERAGE.md')
            with open(path, encoding='utf-8') as fh:
                text = fh.read()
            a = text.index('| spec file | MUST groups')
            b = text.index('\n\n', a)
            with open(path, 'w', encoding='utf-8') as fh:
                fh.write(text[:a] + table + text[b:])
        print(table)
        return 0
    g = groups()
    if '--lines' in argv:
        for key, n, text in g:
            print(f'{key}\t{n}\t{text}')
        return 0
    counts = {}
    for key, _, _ in g:
        counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        print(f'{key}\t{n}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Runs every Python check of the spec vectors (independent implementations written from the spec texts) and the
conformance runner with the Python ledger client. CI runs it from specs/test/python-checks.spec.ts (one test per check).

    python3 specs/check_all.py              # every check, a summary line each; exit 1 if any failed
    python3 specs/check_all.py --list       # the check names, one per line
    python3 specs/check_all.py --only NAME  # one check, its full output

The generators of vectors run in specs/regenerate.py instead (byte-for-byte comparison in a copy of specs/).
"""
import glob
import os
import subprocess
import sys
import time

SPECS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SPECS)
PY = sys.executable

# name -> ('check', script) | ('cmd', argv). The generators that write vectors (with their own checks in --write mode)
# run in specs/regenerate.py, which compares what they write with the committed files byte for byte.
# model/python/neurollm.py's own check (forward, KV cache, gradients against tiny-logits/tiny-grads.json) is not run
# here: the conformance check's model-compute suite replays the same vectors through it (and more of them).
CHECKS = {
    'host': ('check', 'host/vectors/check.py'),
    'genesis-data': ('check', 'genesis-data/vectors/verify.py'),
    'ponw-ledger python client tests': ('cmd', [PY, '-m', 'unittest', 'discover', '-s', os.path.join(SPECS, 'ponw-ledger', 'python')]),
    'conformance (python adapter: every suite)':
        ('cmd', [PY, os.path.join(SPECS, 'conformance', 'run.py'), '--require-all', '--',
                 PY, os.path.join(SPECS, 'conformance', 'adapters', 'python.py')]),
}


def run(name):
    kind = CHECKS[name]
    if kind[0] == 'check':
        p = subprocess.run([PY, os.path.join(SPECS, kind[1])], cwd=ROOT, capture_output=True, text=True)
        return p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(kind[1], cwd=ROOT, capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


def main(argv):
    if '--list' in argv:
        print('\n'.join(CHECKS))
        return 0
    if '--only' in argv:
        name = argv[argv.index('--only') + 1]
        ok, out = run(name)
        print(out.rstrip())
        print(f'{"PASS" if ok else "FAIL"} {name}')
        return 0 if ok else 1
    known = {os.path.join(SPECS, v[1]) for v in CHECKS.values() if v[0] != 'cmd'}
    sys.path.insert(0, SPECS)
    from regenerate import GENERATORS  # noqa: E402
    known |= {os.path.join(SPECS, g[0], a) for g in GENERATORS.values() for a in g[1] if a.endswith('.py')}
    # libraries that the conformance check's Python adapter imports (directly or through another library) run there
    adapter = ''
    for f in [os.path.join(SPECS, 'conformance', 'adapters', 'python.py')] + glob.glob(os.path.join(SPECS, '*', 'python', '*.py')):
        with open(f, encoding='utf-8') as fh:
            adapter += fh.read()
    for f in sorted(glob.glob(os.path.join(SPECS, '*', 'vectors', '*.py')) + glob.glob(os.path.join(SPECS, '*', 'python', '*.py'))):
        module = os.path.basename(f)[:-3]
        if f not in known and not module.startswith('test_') and f'import {module} ' not in adapter and f'import {module}\n' not in adapter:
            print(f'note: {os.path.relpath(f, ROOT)} is not run by specs/check_all.py')
    failed = 0
    for name in CHECKS:
        t = time.time()
        ok, out = run(name)
        last = (out.strip().splitlines() or [''])[-1]
        print(f'{"PASS" if ok else "FAIL"} {name} ({time.time() - t:.1f} s): {last}')
        if not ok:
            failed += 1
            print('    ' + out.strip().replace('\n', '\n    '))
    print(f'spec checks: {len(CHECKS) - failed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

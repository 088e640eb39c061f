#!/usr/bin/env python3
"""Re-runs every generator of the spec vectors in a temporary copy of specs/ and compares what it writes with the
committed files byte for byte. CI runs it from specs/test/regenerate.spec.ts (one test per generator, and one that
every vector file is written by a generator or listed in HAND_WRITTEN).

    python3 specs/regenerate.py --list                 # the generator names
    python3 specs/regenerate.py --only NAME [--node N]  # one generator: PASS, or the files that differ
    python3 specs/regenerate.py --unowned               # vector files no generator writes and HAND_WRITTEN does not list

The Node generators import packages/*/dist (build first: `tsc -b`); the ones in packages/ write into the tree that
NEUROSHARD_SPECS_DIR names.
"""
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile

SPECS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SPECS)
PY = sys.executable

# name -> (working directory under the copy's specs/ ('.' = the copy's root), argv ('node' is replaced by --node),
#          the files it writes (globs under specs/), files removed from the copy first without being compared,
#          written files it also reads, left in the copy (each must still be rewritten: its time stamp must change))
GENERATORS = {
    'diloco vectors.json (generate.py)': ('diloco/vectors', [PY, 'generate.py'], ['diloco/vectors/vectors.json'], []),
    'diloco messages.json (gen-messages.mjs)': ('.', ['node', 'specs/diloco/vectors/gen-messages.mjs'], ['diloco/vectors/messages.json'], []),
    'diloco state.json (gen-state.py)': ('diloco/vectors', [PY, 'gen-state.py'], ['diloco/vectors/state.json'], []),
    'diloco commits.json (gen-commits.py)': ('diloco/vectors', [PY, 'gen-commits.py'], ['diloco/vectors/commits.json'], []),
    'pipeline (gen.py)': ('pipeline/vectors', [PY, 'gen.py'], ['pipeline/vectors/sampling.json', 'pipeline/vectors/speculative.json', 'pipeline/vectors/messages.json'], []),
    'pipeline rules.json (gen-rules.mjs)': ('.', ['node', 'specs/pipeline/vectors/gen-rules.mjs'], ['pipeline/vectors/rules.json'], []),
    'pipeline tied.json (gen-tied.py)': ('pipeline/vectors', [PY, 'gen-tied.py'], ['pipeline/vectors/tied.json'], []),
    'swarm-router (gen.py)': ('swarm-router/vectors', [PY, 'gen.py'], ['swarm-router/vectors/routing.json'], []),
    'layer-pool rules.json (gen-rules.mjs)': ('.', ['node', 'specs/layer-pool/vectors/gen-rules.mjs'], ['layer-pool/vectors/rules.json'], []),
    'ponw-ledger sync.json (gen-sync.py)': ('ponw-ledger/vectors', [PY, 'gen-sync.py'], ['ponw-ledger/vectors/sync.json'], []),
    'ponw-ledger validator.json (gen-validator.py)': ('ponw-ledger/vectors', [PY, 'gen-validator.py'], ['ponw-ledger/vectors/validator.json'], []),
    'layer-pool targets.json (gen-targets.py)': ('layer-pool/vectors', [PY, 'gen-targets.py'], ['layer-pool/vectors/targets.json'], []),
    'layer-pool transfer.json (gen-transfer.py)': ('layer-pool/vectors', [PY, 'gen-transfer.py'], ['layer-pool/vectors/transfer.json'], []),
    'layer-pool quant.json (gen-quant.py)': ('layer-pool/vectors', [PY, 'gen-quant.py'], ['layer-pool/vectors/quant.json'], []),
    'layer-pool records.json (packages/layer-pool vectors-gen)': ('.', ['node', 'packages/layer-pool/dist/test/vectors-gen.js'], ['layer-pool/vectors/records.json'], []),
    'tokenizer (reference.py --write)': ('tokenizer/vectors', [PY, 'reference.py', '--write'],
                                         ['tokenizer/vectors/tokenizer.json', 'tokenizer/vectors/pretokenize-*.json', 'tokenizer/vectors/encode-*.json',
                                          'tokenizer/vectors/decode-*.json', 'tokenizer/vectors/invalid-*.json'], []),
    # --grads: tiny-grads.json by float64 finite differences of the §2 forward pass (about 5 s of CPU)
    'model (reference.py --write --grads)': ('model/vectors', [PY, 'reference.py', '--write', '--grads'],
                                             ['model/vectors/scaling-*.json', 'model/vectors/config-*.json', 'model/vectors/checkpoint-*.json', 'model/vectors/graph-io.json',
                                              'model/vectors/tiny-grads.json'], []),
    'model tiny (packages/model generate-vectors)': ('.', ['node', 'packages/model/scripts/generate-vectors.mjs'],
                                                     ['model/vectors/tiny-logits.json', 'model/vectors/tiny.*.safetensors'], []),
    'host gossip-messages.json (gossip.py)': ('host/vectors', [PY, 'gossip.py'], ['host/vectors/gossip-messages.json'], []),
    'tensor-frame conversions (conversions.py --write)': ('tensor-frame/vectors', [PY, 'conversions.py', '--write'], ['tensor-frame/vectors/convert-*.json'], []),
    # it reads the frames of the generator below (the tensors it re-encodes), which are left in its copy
    'tensor-frame encoding.json (encoding.py)': ('tensor-frame/vectors', [PY, 'encoding.py'], ['tensor-frame/vectors/encoding.json'], []),
    # it first removes every .json of its folder but convert-*.json and encoding.json: compare only its own
    'tensor-frame frames (packages/tensor generate-vectors)': ('.', ['node', 'packages/tensor/dist/scripts/generate-vectors.js'],
                                                              ['tensor-frame/vectors/[!ce]*.json', 'tensor-frame/vectors/empty.json'], []),
    'genesis-data rejections (rejections.py --write)': ('genesis-data/vectors', [PY, 'rejections.py', '--write'],
                                                        ['genesis-data/vectors/manifest-*.json', 'genesis-data/vectors/shard-*.json', 'genesis-data/vectors/assign-*.json'], []),
    'genesis-data build (generate.mjs)': ('.', ['node', 'specs/genesis-data/vectors/generate.mjs'], ['genesis-data/vectors/tokenizer.json', 'genesis-data/vectors/vectors.json'], []),
    # its own replay of the files (check()) is left out: the conformance runner's Python adapter replays them (check_all.py)
    'ponw-ledger (python/vectors.py --write)': ('ponw-ledger/python', [PY, 'vectors.py', '--write', '--no-check'],
                                                ['ponw-ledger/vectors/conflict.json', 'ponw-ledger/vectors/encoding.json', 'ponw-ledger/vectors/evidence.json',
                                                 'ponw-ledger/vectors/genesis-cases.json', 'ponw-ledger/vectors/identity.json', 'ponw-ledger/vectors/invalid.json',
                                                 'ponw-ledger/vectors/keys.json', 'ponw-ledger/vectors/ledger.json', 'ponw-ledger/vectors/preimage.json',
                                                 'ponw-ledger/vectors/proofs.json', 'ponw-ledger/vectors/state.json', 'ponw-ledger/vectors/wire.json'], [],
                                                ['ponw-ledger/vectors/ledger.json']),
    'ponw-ledger genesis (packages/ponw-ledger vectors-gen)': ('.', ['node', 'packages/ponw-ledger/dist/test/vectors-gen.js'],
                                                              ['ponw-ledger/vectors/genesis.json', 'ponw-ledger/vectors/keys.json', 'ponw-ledger/vectors/ledger.json',
                                                               'ponw-ledger/vectors/preimage.json'], []),
    'ponw-ledger derive.json (gen-derive.py)': ('ponw-ledger/vectors', [PY, 'gen-derive.py'], ['ponw-ledger/vectors/derive.json'], []),
    'node records.json (gen-records.py)': ('node/vectors', [PY, 'gen-records.py'], ['node/vectors/records.json'], []),
    'node pseudo.json (gen-pseudo.py)': ('node/vectors', [PY, 'gen-pseudo.py'], ['node/vectors/pseudo.json'], []),
    'node reexec.json (gen-reexec.py)': ('node/vectors', [PY, 'gen-reexec.py'], ['node/vectors/reexec.json'], []),
    'node replay.json (gen-replay.py)': ('node/vectors', [PY, 'gen-replay.py'], ['node/vectors/replay.json'], []),
    'node witness.json (gen-witness.mjs)': ('.', ['node', 'specs/node/vectors/gen-witness.mjs'], ['node/vectors/witness.json'], []),
    'ponw-ledger checkpoints.json (packages/ponw-ledger checkpoint-vectors-gen)': ('.', ['node', 'packages/ponw-ledger/dist/test/checkpoint-vectors-gen.js'],
                                                                                  ['ponw-ledger/vectors/checkpoints.json'], []),
}

# vector files no generator writes: written by hand from the spec text (or inputs), each checked as said
HAND_WRITTEN = {
    'framing/vectors/*.json': 'by hand from the framing rules; replayed by the Python adapter and packages/utils over libp2p streams',
    'host/vectors/*.json': 'by hand; swarm keys and identities re-derived by host/vectors/check.py, the rest by host/python/host.py (Python, from the spec, through the conformance adapter); replayed by both adapters',
    'layer-pool/vectors/assignment.json': 'by hand (§5 cases); replayed by both adapters',
    'layer-pool/vectors/chunks.json': 'by hand (transfer §1); replayed by both adapters and packages/layer-pool tests',
    'genesis-data/vectors/corpus.jsonl': 'an input (the corpus generate.mjs builds from)',
    'genesis-data/vectors/nlp-corpus.json': 'read off the nlp-corpus package files; replayed by both adapters (genesisData.nlpCorpus)',
    'pipeline/vectors/sessions.json': 'by hand from §5 rules 3, 4, 5, 13; replayed by both adapters',
    'pipeline/vectors/drafts.json': 'by hand from §5 rule 14; replayed by both adapters',
    'pipeline/vectors/training.json': 'by hand from §5 rule 7; replayed by both adapters',
    'pipeline/vectors/relay.json': 'by hand from §5 rule 6; replayed by both adapters',
    'pipeline/vectors/mirror.json': 'by hand from §5 rule 15 (mirrors); replayed by both adapters',
    'pipeline/vectors/quiet.json': 'by hand from §5 rule 17; replayed by both adapters',
}

SCRIPTS = ('.py', '.mjs', '.ts', '.md')


def vector_files():
    out = []
    for spec in sorted(os.listdir(SPECS)):
        d = os.path.join(SPECS, spec, 'vectors')
        if os.path.isdir(d):
            out += [f'{spec}/vectors/{f}' for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f)) and not f.endswith(SCRIPTS)]
    return out


def matches(path, globs):
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def unowned():
    owned = [g for v in GENERATORS.values() for g in v[2]] + list(HAND_WRITTEN)
    return [f for f in vector_files() if not matches(f, owned)]


def run(name, node='node'):
    cwd, argv, outputs, remove, *kept = GENERATORS[name]
    kept = kept[0] if kept else []
    argv = [node if a == 'node' else a for a in argv]
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, 'specs')
        # the spec folders it writes (and runs in) are copied; the others are linked, read-only for it
        own = {p.split('/')[0] for p in outputs + remove + [cwd] if p != '.'}
        os.mkdir(copy)
        for entry in os.listdir(SPECS):
            if entry in own:
                shutil.copytree(os.path.join(SPECS, entry), os.path.join(copy, entry), ignore=shutil.ignore_patterns('__pycache__'))
            elif entry != '__pycache__':
                os.symlink(os.path.join(SPECS, entry), os.path.join(copy, entry))
        # the Node generators under specs/ import ../../../packages/*/dist relative to themselves
        os.symlink(os.path.join(ROOT, 'packages'), os.path.join(tmp, 'packages'))
        os.symlink(os.path.join(ROOT, 'node_modules'), os.path.join(tmp, 'node_modules'))
        written = [f for f in vector_files() if matches(f, outputs)]
        if not written:
            return False, f'{name}: no committed file matches {outputs}'
        for f in written + remove:
            if f not in kept and os.path.exists(os.path.join(copy, f)):
                os.remove(os.path.join(copy, f))
        stamps = {f: os.stat(os.path.join(copy, f)).st_mtime_ns for f in kept}
        p = subprocess.run(argv, cwd=os.path.join(copy, cwd) if cwd != '.' else tmp, capture_output=True, text=True,
                           env=dict(os.environ, NEUROSHARD_SPECS_DIR=copy))
        out = p.stdout + p.stderr
        if p.returncode != 0:
            return False, out + f'\n{name} exited with status {p.returncode}'
        bad = []
        for f in written:
            a = os.path.join(SPECS, f)
            b = os.path.join(copy, f)
            if not os.path.exists(b) or (f in stamps and os.stat(b).st_mtime_ns == stamps[f]):
                bad.append(f'{f}: not written')
                continue
            with open(a, 'rb') as x, open(b, 'rb') as y:
                ca, cb = x.read(), y.read()
            if ca != cb:
                at = next((i for i, (u, v) in enumerate(zip(ca, cb)) if u != v), min(len(ca), len(cb)))
                bad.append(f'{f}: differs from the committed file at byte {at} ({len(cb)} bytes written, {len(ca)} committed)')
        if bad:
            return False, out + '\n' + '\n'.join(bad)
        return True, out + f'\n{len(written)} files regenerated byte for byte: {", ".join(written[:6])}{" …" if len(written) > 6 else ""}'


def main(argv):
    if '--list' in argv:
        print('\n'.join(GENERATORS))
        return 0
    if '--unowned' in argv:
        u = unowned()
        print('\n'.join(u))
        return 1 if u else 0
    node = argv[argv.index('--node') + 1] if '--node' in argv else 'node'
    names = [argv[argv.index('--only') + 1]] if '--only' in argv else list(GENERATORS)
    failed = 0
    for name in names:
        ok, out = run(name, node)
        print(out.rstrip())
        print(f'{"PASS" if ok else "FAIL"} {name}')
        failed += not ok
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

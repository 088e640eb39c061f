// The conformance runner (specs/conformance/run.py) replays the spec vectors through an adapter: the TypeScript
// implementation and the Python client pass every check; deliberately broken implementations and a broken vector
// make it fail, at the spec point concerned.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT, run } from './run.ts'

const RUNNER = 'specs/conformance/run.py'
// Node running this test (>= 22, from node_modules/.bin under `pnpm test`); the adapter imports packages/*/dist (`tsc -b` first)
const TS_ADAPTER = [process.execPath, 'specs/conformance/adapters/typescript.mjs']
const PY_ADAPTER = ['python3', 'specs/conformance/adapters/python.py']

/** the status the runner printed for a spec point ('PASS', 'FAIL', ...) */
function status (out: string, point: string): string | undefined {
  return out.split('\n').find(l => l.includes(` ${point}:`))?.split(/\s+/)[0]
}

/** the spec points of the suites that the one-line breaks below exercise (specs/conformance/run.py) */
const SUITE_POINTS: Record<string, string[]> = {
  'layer-pool': ['§5.1 view (live, pending, throughput)', '§5.3-§5.4 span choice (candidates, order)', 'transfer §1 canonical byte stream',
    'transfer §1 chunk hashes and chunks root', 'transfer §1 weights hash', '§2.1 signed envelope (RFC 0002)', '§2.3 DHT key',
    '§2.2 record rules (errors, in order)', '§7 architecture versions', '§2.3 DHT value and key',
    'transfer §3, R4-R8 server answers (reset, BAD_REQUEST, NOT_FOUND, OK: manifest and chunks)', 'transfer R10-R14 requester (manifest, chunks, weights hash; the dropped replica\'s fault)',
    'transfer R9 a server across content changes (sequences)', '§2.4 quantized weights (groups, int4 Q4_0 and int8 rules)'],
  pipeline: ['§6 splitmix64 draw', '§6 sampling (greedy, temperature, top-k, top-p)', '§3 Request encoding (canonical proto3)', '§3 Response encoding (canonical proto3)',
    '§5 rule 2 activation frames (§3 deflate)', '§5 rule 2 targets frames', '§5 rule 1 routes (errors, in order)', '§5 rules 3-5, 13 sessions (sequences)',
    '§5 rule 14 drafts (refusals)', '§5 rule 12 tied STEP rows (refusals)', '§5 rule 7 training requests (sequences)', '§5 rule 15 standbys (none or one per hop)',
    '§4.3 rule 4, §4.4 tied Validator (H taken whole, replica stepped; sequences)', '§5 rule 6 hop failures and downstream errors (passed back unchanged)',
    '§5 rule 17 quiet INFERs (no answer when through, failures marked)'],
  'swarm-router': ['§3 least-cost chain', '§4 standbys', '§5 weighted pick', '§6 bans (backoff, forget)'],
  diloco: ['§6 outer Nesterov step (float32, bit for bit)', '§5 payload codecs (encode)', '§5 payload codecs (decode)', '§5 error feedback',
    '§5 malformed payloads (refused)', '§1 leader order key', '§5 privacy accountant (zCDP ε)', '§2-§3 signed announces (errors, in order)',
    '§6 step 3 round checks (errors, in order)', '§2, §6 step 6 signed commits (errors, in order)', '§7 aggregation (value, accept/reject)', '§7 round record (verifyRoundRecord)',
    '§6 step 3, §8 a round\'s replays, maximum and commit (sequences)', '§6 steps 6, 8, 9, §8 commits received (applied once, round order, catch-up, fork choice)'],
  'genesis-data': ['genesis-data manifest', 'genesis-data shard files', 'genesis-data assignment'],
  framing: ['framing rules 1-8 (order of checks)', 'framing rule 8 (reset after a framing error)', 'framing rules 1-2 (senders)',
    'framing rule 6 (bodies: unknown fields, defaults, malformed)'],
  host: ['host private swarms (swarm key)', 'host R3 identity key file', 'host DHT record keys', 'host DHT record values', 'host DHT record selection',
    'host R20 P6 co-location penalty', 'host R9 DHT peer addresses kept', 'host R22 join retry delay', 'host R21 join state (sequences)',
    'host profile (Protocol ids, R1, R2, R4, R6, R7, R13-R16, R18, R19)', 'host R13 StrictSign messages (checks in order, message id)'],
  'tensor-frame': ['tensor-frame conversions (float16, bfloat16, int8 refusals)', 'tensor-frame decoding and content hash', 'tensor-frame rejections', 'tensor-frame int8 quantization',
    'tensor-frame encoding (one frame per tensor, refusals)'],
  'model-compute': ['§2 forward pass (logits within 1e-4)', '§2 forward pass (loss within 1e-4)', '§2, §5 KV-cache inference (logits within 1e-4)',
    '§5 backward pipeline (gradients)', '§5 graph inputs and outputs', '§4 parameter init (first values, bit for bit)', '§7 content hash']
}

const points = ['§2 chain id', '§2 address', '§2 amount', '§5.1 canonical encoding', '§5.2 message rules (errors, §5.3 order)', '§6.2 evidence key', '§6.2 designated reporter', '§8 assignShards', '§7 state transition', '§7.2 state hash']

// the tests run side by side: each is its own runner and adapter processes (the project's time on a loaded machine)
describe.concurrent('conformance runner', () => {
  const tmp: string[] = []
  afterAll(async () => { await Promise.all(tmp.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('the TypeScript implementation passes the vectors of every suite', async () => {
    // two runs side by side (each spec folder's suites in one of them, so each checks its folders' files were all read)
    const runs = await Promise.all(['model,model-compute,tokenizer,tensor-frame,genesis-data,framing', 'ponw-ledger,host,layer-pool,pipeline,swarm-router,diloco,node-ponw']
      .map(async only => await run('python3', [RUNNER, '--require-all', '--only', only, '--', ...TS_ADAPTER])))
    const out = runs.map(r => r.out).join('\n')
    for (const r of runs) {
      expect(r.code, r.out).toBe(0)
      expect(r.out).toMatch(/conformance: \d+ passed, 0 failed, 0 unsupported/)
    }
    for (const p of [...points, '§3 identity binding', '§4 keystore', '§12 genesis validation', '§8 data Merkle tree', '§7 two final messages for one slot', 'checkpoints C3 installing a checkpoint (conflicts)', 'checkpoints C5 final messages after an install',
      '§9-§10 gossip, sync, challenge and weights messages', 'host private swarms (swarm key)', 'tensor-frame decoding and content hash',
      'tensor-frame rejections', 'tokenizer encoding (merges, special tokens)', 'tokenizer.json subset (refusals)', 'model scaling rule',
      'model checkpoints (rejections)', 'genesis-data manifest', 'genesis-data shard files', 'checkpoints C1, C4 deriving a proposal (errors, in order)',
      'node/ponw §2 re-execution rule 4 (final payloads)', 'node/ponw §3 round-record check (accepted or not)',
      'node/ponw §2 re-execution rule 2 (witness checks before a step)', 'node/ponw §2 re-execution rules 4-5 (the final checkpoint, final ≠ base)', ...Object.values(SUITE_POINTS).flat()]) {
      expect(status(out, p), `${p}\n${out}`).toBe('PASS')
    }
    // every vector file of every spec folder these suites cover was read by some check
    const replayed = out.split('\n').filter(l => l.includes(' every vector file replayed: '))
    expect(replayed.map(l => l.split(/\s+/).slice(0, 2).join(' ')).sort(), out).toEqual(
      ['diloco', 'framing', 'genesis-data', 'host', 'layer-pool', 'model', 'node', 'pipeline', 'ponw-ledger', 'swarm-router', 'tensor-frame', 'tokenizer'].map(f => `PASS ${f}`))
  }, 300_000) // measured: 50 s run alone and 118 s in a full specs-project run, both at loadavg 20-25

  it('fails a vector file that no check replays (a new vector needs a replay)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neuroshard-specs-'))
    tmp.push(dir)
    await cp(join(ROOT, 'specs', 'host', 'vectors'), join(dir, 'host', 'vectors'), { recursive: true })
    await writeFile(join(dir, 'host', 'vectors', 'record-new-rule.json'), JSON.stringify({ description: 'a new case no check reads' }))
    const { code, out } = await run('python3', [RUNNER, '--specs', dir, '--only', 'host', '--', ...PY_ADAPTER])
    expect(code, out).toBe(1)
    expect(status(out, 'every vector file replayed'), out).toBe('FAIL')
    expect(out).toContain('✗ record-new-rule.json')
    for (const p of SUITE_POINTS.host) expect(status(out, p), out).toBe('PASS')
  })

  it.each([
    // modes, the spec points they must fail (and no other), a case each names in the report. Breaks whose points are
    // disjoint share a run (the unbroken client passes every point, so each failing point is the one break's doing)
    [['high-s', 'reporter', 'state-hash'], ['§5.2 message rules (errors, §5.3 order)', '§6.2 designated reporter', '§7.2 state hash'],
      ['the same signature with high S', 'account/', 'state.json given: state hash']],
    // packed repeated scalars: its own training messages are not canonical, so it also refuses the state vectors' training proof
    [['packed'], ['§5.1 canonical encoding', '§7 state transition', '§7.2 state hash'], ['encode: training proof']]
  ])('fails a Python client broken on purpose (%s)', async (modes, failing, cases) => {
    const { code, out } = await run('python3', [RUNNER, '--only', 'ponw-ledger', '--', ...PY_ADAPTER, `--break=${modes.join(',')}`])
    expect(code, out).toBe(1)
    for (const c of cases) expect(out).toContain(`✗ ${c}`)
    // the report is per spec point: exactly these fail, the others pass
    expect(points.filter(p => status(out, p) === 'FAIL')).toEqual(points.filter(p => failing.includes(p)))
    expect(points.filter(p => status(out, p) === 'PASS')).toEqual(points.filter(p => !failing.includes(p)))
  })

  // The Python implementations of specs/<spec>/python with one line changed (adapters/python.py ONE_LINE): each break
  // fails exactly the spec points named and passes the other points of its suite. Breaks of different suites share a
  // run (one adapter process each run, to keep the project's time down).
  const BREAKS: Record<string, { suite: string, failing: string[], case: string }> = {
    'record-skew': { suite: 'layer-pool', failing: ['§2.2 record rules (errors, in order)'], case: 'issued more than 30 s after now_ms' },
    'greedy-ties': { suite: 'pipeline', failing: ['§6 sampling (greedy, temperature, top-k, top-p)'], case: 'T 0 k 0' },
    'ban-forget': { suite: 'swarm-router', failing: ['§6 bans (backoff, forget)'], case: 'a fails at 1000' },
    'sparse-padding': { suite: 'diloco', failing: ['§5 malformed payloads (refused)'], case: 'sparse padding bits set' },
    'rope-positions': { suite: 'model-compute', failing: ['§2, §5 KV-cache inference (logits within 1e-4)'], case: 'prefill 5 tokens, then decode one at a time' },
    // the server finds its content by the chunks root (transfer R6): with the root broken it answers NOT_FOUND
    'chunks-root': { suite: 'layer-pool', failing: ['transfer §1 chunk hashes and chunks root', 'transfer §3, R4-R8 server answers (reset, BAD_REQUEST, NOT_FOUND, OK: manifest and chunks)', 'transfer R9 a server across content changes (sequences)'], case: 'five tensors' },
    'dht-endian': { suite: 'layer-pool', failing: ['§2.3 DHT value and key'], case: 'valid: uint64le(sequence) ‖ envelope under the record\'s key' },
    'commit-order': { suite: 'diloco', failing: ['§2, §6 step 6 signed commits (errors, in order)'], case: 'announces not in byte-wise sender order' },
    'fork-choice': { suite: 'diloco', failing: ['§6 steps 6, 8, 9, §8 commits received (applied once, round order, catch-up, fork choice)'], case: 'fork choice by the leader key (a group of 4): op 1' },
    'int8-dequant': { suite: 'pipeline', failing: ['§5 rule 2 activation frames (§3 deflate)'], case: 'int8 [1, 2, 4] with compress (dequantized)' },
    // (rule 15's order case: a bad standbys list and a 15-byte session, the session first)
    'route-session': { suite: 'pipeline', failing: ['§5 rule 1 routes (errors, in order)', '§5 rule 15 standbys (none or one per hop)'], case: 'session of 15 bytes' },
    'shard-hash': { suite: 'genesis-data', failing: ['genesis-data shard files'], case: 'shard-tampered.json' },
    'select-ties': { suite: 'host', failing: ['host DHT record selection'], case: 'record-select-tie-greatest-bytes.json' },
    'bf16-ties': { suite: 'tensor-frame', failing: ['tensor-frame conversions (float16, bfloat16, int8 refusals)'], case: 'convert-bfloat16-bf16-tie-down.json' },
    'join-half-up': { suite: 'host', failing: ['host R22 join retry delay', 'host R21 join state (sequences)'], case: 'round 1, u 0.25' },
    'encode-name-chars': { suite: 'tensor-frame', failing: ['tensor-frame encoding (one frame per tensor, refusals)'], case: 'a name of 513 characters but 1026 UTF-8 bytes' },
    'causal-mask': {
      suite: 'model-compute',
      failing: ['§2 forward pass (logits within 1e-4)', '§2 forward pass (loss within 1e-4)', '§2, §5 KV-cache inference (logits within 1e-4)', '§5 backward pipeline (gradients)'],
      case: 'blocks.0.attn.wq'
    }
  }
  it.each([
    [['record-skew', 'greedy-ties', 'ban-forget', 'sparse-padding', 'rope-positions']],
    [['chunks-root', 'causal-mask', 'commit-order', 'int8-dequant']],
    [['dht-endian', 'route-session', 'shard-hash', 'select-ties', 'bf16-ties', 'fork-choice']],
    [['join-half-up', 'encode-name-chars']]
  ])('fails Python implementations with one line broken (%s)', async (modes) => {
    const suites = modes.map(m => BREAKS[m].suite)
    expect(new Set(suites).size).toBe(modes.length)
    const { code, out } = await run('python3', [RUNNER, '--only', suites.join(','), '--', ...PY_ADAPTER, `--break=${modes.join(',')}`])
    expect(code, out).toBe(1)
    for (const m of modes) {
      const { suite, failing, case: case_ } = BREAKS[m]
      expect(out, m).toContain(`✗ ${case_}`)
      const all = SUITE_POINTS[suite]
      expect(all.filter(p => status(out, p) === 'FAIL'), `${m}\n${out}`).toEqual(all.filter(p => failing.includes(p)))
      expect(all.filter(p => status(out, p) === 'PASS'), `${m}\n${out}`).toEqual(all.filter(p => !failing.includes(p)))
    }
  })

  it('fails when a model vector is changed (one gradient of tiny-grads.json)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neuroshard-specs-'))
    tmp.push(dir)
    await cp(join(ROOT, 'specs', 'model', 'vectors'), join(dir, 'model', 'vectors'), { recursive: true })
    const file = join(dir, 'model', 'vectors', 'tiny-grads.json')
    const v = JSON.parse(await readFile(file, 'utf8'))
    v.gradients[5].grad += 0.01
    await writeFile(file, JSON.stringify(v, null, 2))
    // the Python adapter (no onnxruntime to start): the implementation did not change, the vector did
    const { code, out } = await run('python3', [RUNNER, '--specs', dir, '--only', 'model-compute', '--', ...PY_ADAPTER])
    expect(code, out).toBe(1)
    expect(status(out, '§5 backward pipeline (gradients)'), out).toBe('FAIL')
    expect(out).toContain(`✗ ${v.gradients[5].name as string}[${v.gradients[5].index as number}]`)
    expect(status(out, '§2 forward pass (logits within 1e-4)'), out).toBe('PASS')
  })

  it('fails when a vector is changed (a spec change that breaks a vector fails CI)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'neuroshard-specs-'))
    tmp.push(dir)
    await cp(join(ROOT, 'specs', 'ponw-ledger', 'vectors'), join(dir, 'ponw-ledger', 'vectors'), { recursive: true })
    const file = join(dir, 'ponw-ledger', 'vectors', 'state.json')
    const v = JSON.parse(await readFile(file, 'utf8'))
    // one unit more for bob: the spec's arithmetic changed, the implementation did not
    const bob = '6df4f2cb0325104d903bca3e41e6e63f6555dbcf'
    v.expected.accounts[bob].balance = (BigInt(v.expected.accounts[bob].balance) + 1n).toString()
    await writeFile(file, JSON.stringify(v, null, 2))
    const { code, out } = await run('python3', [RUNNER, '--specs', dir, '--only', 'ponw-ledger', '--', ...TS_ADAPTER])
    expect(code, out).toBe(1)
    expect(status(out, '§7 state transition'), out).toBe('FAIL')
    expect(status(out, '§5.1 canonical encoding'), out).toBe('PASS')
  })
})

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

const points = ['§2 chain id', '§2 address', '§2 amount', '§5.1 canonical encoding', '§5.2 message rules (errors, §5.3 order)', '§6.2 evidence key', '§6.2 designated reporter', '§8 assignShards', '§7 state transition', '§7.2 state hash']

describe('conformance runner', () => {
  const tmp: string[] = []
  afterAll(async () => { await Promise.all(tmp.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('the TypeScript implementation passes the ledger, host swarm-key, tensor-frame, tokenizer, model and genesis-data vectors', async () => {
    // framing is replayed over real libp2p streams by packages/utils (test/framing-vectors.spec.ts), not through this adapter
    const { code, out } = await run('python3', [RUNNER, '--require-all', '--only', 'ponw-ledger,host,tensor-frame,tokenizer,model,genesis-data', '--', ...TS_ADAPTER])
    expect(code, out).toBe(0)
    for (const p of [...points, '§3 identity binding', '§4 keystore', '§12 genesis validation', '§8 data Merkle tree', '§7 two final messages for one slot',
      '§9-§10 gossip, sync, challenge and weights messages', 'host private swarms (swarm key)', 'tensor-frame decoding and content hash',
      'tensor-frame rejections', 'tokenizer encoding (merges, special tokens)', 'tokenizer.json subset (refusals)', 'model scaling rule',
      'model checkpoints (rejections)', 'genesis-data manifest', 'genesis-data shard files']) {
      expect(status(out, p), `${p}\n${out}`).toBe('PASS')
    }
    expect(out).toMatch(/conformance: \d+ passed, 0 failed, 0 unsupported/)
  })

  it.each([
    // mode, the spec points it must fail (and no other), a case named in the report
    ['high-s', ['§5.2 message rules (errors, §5.3 order)'], 'the same signature with high S'],
    // packed repeated scalars: its own training messages are not canonical, so it also refuses the state vectors' training proof
    ['packed', ['§5.1 canonical encoding', '§7 state transition', '§7.2 state hash'], 'encode: training proof'],
    ['state-hash', ['§7.2 state hash'], 'state.json given: state hash'],
    ['reporter', ['§6.2 designated reporter'], 'account/']
  ])('fails a Python client broken on purpose (%s)', async (mode, failing, case_) => {
    const { code, out } = await run('python3', [RUNNER, '--only', 'ponw-ledger', '--', ...PY_ADAPTER, `--break=${mode}`])
    expect(code, out).toBe(1)
    expect(out).toContain(`✗ ${case_}`)
    // the report is per spec point: exactly these fail, the others pass
    expect(points.filter(p => status(out, p) === 'FAIL')).toEqual(points.filter(p => failing.includes(p)))
    expect(points.filter(p => status(out, p) === 'PASS')).toEqual(points.filter(p => !failing.includes(p)))
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

/**
 * A stage the node cannot build (here: onnxruntime refuses the thread count) is reported: a `node:error` event and,
 * through the commands' `follow`, an `error` line in `--json` output and a terminal line. It was only a debug log,
 * so `neuroshard start --json` showed a node that took spans and never served them, with nothing said.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { follow } from '../../src/commands/network.js'
import { startTestDevnet, stopTestDevnet } from './test-data.js'
import type { NetworkDevnet } from '../../src/network/devnet.js'

describe('a stage build that fails', () => {
  let dir: string | undefined
  let devnet: NetworkDevnet | undefined

  afterAll(async () => {
    await stopTestDevnet(devnet, dir)
  }, 120_000)

  it('is an error event and an `error` JSON line naming the work and the cause', async () => {
    const lines: Array<Record<string, any>> = []
    const said: string[] = []
    let reported!: () => void
    const seen = new Promise<void>((resolve) => { reported = resolve })
    ;({ dir, devnet } = await startTestDevnet('stage-error', 200, {
      nodes: 2,
      node: { training: false, threads: -1 },
      onCreated: (node, index) => {
        follow(node, index, (obj) => { lines.push(obj); if (obj.event === 'error') reported() }, (line) => { said.push(line) })
      }
    }))
    await Promise.race([seen, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error(`no error line; lines: ${JSON.stringify(lines)}`)) }, 120_000))])
    const error = lines.find(l => l.event === 'error')!
    // either node's stage build may fail first
    expect([0, 1]).toContain(error.node)
    expect(error.what).toMatch(/^(stages|layer-pool:loaded \d+-\d+)$/)
    expect(error.message).toContain('intraOpNumThreads')
    expect(said.some(l => l.includes('failed') && l.includes('intraOpNumThreads'))).toBe(true)
    // nothing was served
    expect(lines.some(l => l.event === 'stage')).toBe(false)
    expect(devnet.nodes[0].heldStages()).toEqual([])
  }, 180_000)
})

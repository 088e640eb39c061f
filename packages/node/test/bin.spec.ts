import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'bin.js')

describe('neuroshard hosts (process)', () => {
  it('converges, prints JSON lines and exits 0 on SIGINT', async () => {
    expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b)`).toBe(true)
    const child = spawn(process.execPath, [BIN, 'hosts', '--nodes', '3', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: any[] = []
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no convergence in 45 s; stderr: ${stderr}`)) }, 45_000)
        let buffer = ''
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString()
          let nl
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + 1)
            const obj = JSON.parse(line)
            lines.push(obj)
            if (obj.event === 'converged') {
              clearTimeout(timer)
              resolve()
            }
          }
        })
        child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited early with ${code}: ${stderr}`)) })
      })
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
      child.kill('SIGINT')
      expect(await exited).toBe(0)
    } finally {
      if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    }
    expect(lines[0].event).toBe('started')
    expect(lines[0].peers).toHaveLength(3)
    const updates = lines.filter(l => l.event === 'update')
    expect(updates.length).toBeGreaterThan(0)
    expect(updates.at(-1).nodes).toHaveLength(3)
    expect(lines.some(l => l.event === 'converged' && l.nodes === 3)).toBe(true)
  })

  it('rejects a bad --nodes value with exit code 2', async () => {
    expect(existsSync(BIN), `${BIN} is missing: build first (tsc -b)`).toBe(true)
    const child = spawn(process.execPath, [BIN, 'hosts', '--nodes', 'zero'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => { resolve(c) }))
    expect(code).toBe(2)
    expect(stderr).toContain('--nodes')
  })
})

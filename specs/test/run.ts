import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** the repository root */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Runs a program to its end (no shell), with its exit status and its stdout + stderr */
export async function run (cmd: string, args: string[]): Promise<{ code: number | null, out: string }> {
  return await new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { out += d.toString() })
    p.on('error', reject)
    p.on('close', (code) => { resolve({ code, out }) })
  })
}

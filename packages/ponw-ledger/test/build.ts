import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Compiles this package (tests that spawn processes or worker threads run the compiled code); serialised with flock */
export function ensureBuilt (): void {
  execFileSync('flock', [join(pkg, '..', '..', 'node_modules', '.ponw-ledger-build.lock'), join(pkg, '..', '..', 'node_modules', '.bin', 'tsc'), '-b', pkg], { stdio: 'inherit' })
}

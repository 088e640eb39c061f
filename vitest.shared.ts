// Test settings shared by the root run (vitest.config.ts → vitest.workspace.ts) and by each package's own
// vitest.config.ts, so `pnpm --filter @neuroshard/<pkg> test` and `vitest run` inside a package directory
// run exactly that package's test/**/*.spec.ts, with the same timeouts as the root run.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'
import type { UserConfig } from 'vitest/config'

export const testDefaults = {
  include: ['test/**/*.spec.ts'],
  // `tsc -b` compiles the specs to dist/test/*.spec.js: never run those
  exclude: [...configDefaults.exclude, '**/dist/**'],
  // multi-node and onnxruntime tests do real work on a 2-core machine
  testTimeout: 120_000,
  hookTimeout: 60_000
}

/** The config of one package or example run on its own: `export default packageConfig(import.meta.url)`. */
export function packageConfig (configUrl: string): UserConfig {
  const root = dirname(fileURLToPath(configUrl))
  const { name } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string }
  return defineConfig({ test: { ...testDefaults, name, root, passWithNoTests: true } })
}

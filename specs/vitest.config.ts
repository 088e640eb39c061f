// Runs specs/test/**/*.spec.ts on its own (`vitest run` in this directory, or `--project @neuroshard/specs` at the
// root): the Python checks of every spec's vectors and the conformance runner. Settings shared with the root run.
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'
import { testDefaults } from '../vitest.shared.ts'

// maxConcurrency: the concurrent tests (generators, runner and adapter processes) wait on child processes, not on this one
export default defineConfig({ test: { ...testDefaults, name: '@neuroshard/specs', root: dirname(fileURLToPath(import.meta.url)), passWithNoTests: true, maxConcurrency: 10 } })

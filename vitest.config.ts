import { defineConfig } from 'vitest/config'
import projects from './vitest.workspace.ts'

export default defineConfig({
  test: {
    projects,
    passWithNoTests: true,
    // the JSON results feed `.ci/summary.mjs`, which prints the `tests: N passed, M failed` line
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]]
  }
})

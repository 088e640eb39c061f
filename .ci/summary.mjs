// Prints the line CI reads, `tests: N passed, M failed`, from vitest's JSON results.
import { readFileSync } from 'node:fs'

const file = process.argv[2] ?? 'test-results/vitest.json'
let passed = 0
let failed = 0
try {
  const results = JSON.parse(readFileSync(file, 'utf8'))
  passed = results.numPassedTests
  failed = results.numFailedTests
  // a suite that failed to load (syntax error, failed import) has no test results of its own
  for (const suite of results.testResults ?? []) {
    if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed++
  }
} catch (err) {
  console.error(`no readable vitest results at ${file}: ${err.message}`)
  failed = 1
}
console.log(`tests: ${passed} passed, ${failed} failed`)

// The one list of test projects. vitest.config.ts reads it; add a package here when it gets tests.
import type { TestProjectInlineConfiguration } from 'vitest/config'

const packages = [
  'interface',
  'utils',
  'tensor',
  'host',
  'node',
  'onnx-graph',
  'model',
  'runtime',
  'robust-agg',
  'ponw-ledger',
  'tokenizer',
  'genesis-data',
  'trainer'
]

const projects: TestProjectInlineConfiguration[] = packages.map((name) => ({
  test: {
    name: `@neuroshard/${name}`,
    root: `packages/${name}`,
    include: ['test/**/*.spec.ts'],
    // multi-node and onnxruntime tests do real work on a 2-core machine
    testTimeout: 120_000,
    hookTimeout: 60_000
  }
}))

export default projects

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
  'ponw-verifier',
  'tokenizer',
  'genesis-data',
  'trainer',
  'layer-pool'
]

// runnable programs under examples/; each test runs the example's main() and checks what it returns
const examples = [
  'host-gossip',
  'request-response',
  'tensor-frames',
  'robust-aggregation',
  'onnx-autodiff',
  'train-tiny',
  'ledger'
]

function project (name: string, root: string): TestProjectInlineConfiguration {
  return {
    test: {
      name,
      root,
      include: ['test/**/*.spec.ts'],
      // multi-node and onnxruntime tests do real work on a 2-core machine
      testTimeout: 120_000,
      hookTimeout: 60_000
    }
  }
}

const projects: TestProjectInlineConfiguration[] = [
  ...packages.map((name) => project(`@neuroshard/${name}`, `packages/${name}`)),
  ...examples.map((name) => project(`@neuroshard/example-${name}`, `examples/${name}`))
]

export default projects

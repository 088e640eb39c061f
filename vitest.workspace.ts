// The one list of test projects. vitest.config.ts reads it; add a package here when it gets tests (and give it
// a vitest.config.ts like its siblings', so it also runs on its own: see vitest.shared.ts).
import type { TestProjectInlineConfiguration } from 'vitest/config'
import { testDefaults } from './vitest.shared.ts'

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
  'layer-pool',
  'diloco',
  'pipeline',
  'swarm-router',
  'gguf'
]

// runnable programs under examples/; each test runs the example's main() and checks what it returns
const examples = [
  'host-gossip',
  'request-response',
  'tensor-frames',
  'robust-aggregation',
  'onnx-autodiff',
  'train-tiny',
  'ledger',
  'diloco',
  'pipeline',
  'layer-pool'
]

function project (name: string, root: string): TestProjectInlineConfiguration {
  return {
    test: {
      ...testDefaults,
      name,
      root
    }
  }
}

const projects: TestProjectInlineConfiguration[] = [
  ...packages.map((name) => project(`@neuroshard/${name}`, `packages/${name}`)),
  ...examples.map((name) => project(`@neuroshard/example-${name}`, `examples/${name}`)),
  // reliability testbed (fuzzing, network namespaces): testbed/README.md
  project('@neuroshard/testbed', 'testbed'),
  // specs/: the Python checks of every spec's vectors and the conformance runner (specs/test/*.spec.ts)
  project('@neuroshard/specs', 'specs')
]

export default projects

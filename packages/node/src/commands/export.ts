import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { exportGguf } from '@neuroshard/gguf'
import { DEFAULT_DATA_DIR, loadTrainedModel } from '../workspace.js'
import type { CliIO } from '../progress.js'
import type { GgufFileType } from '@neuroshard/gguf'

export const EXPORT_USAGE = `Usage: neuroshard export --gguf <file> [options]

Writes the trained NeuroLLM as a llama-architecture GGUF file (llama.cpp, ollama, LM Studio, node-llama-cpp),
with its byte-level BPE tokenizer and merges.

Options:
      --gguf <file>          where to write the GGUF file
      --type <F32|Q4_0>      tensor type of the matrices (norms stay F32; default F32)
      --name <text>          general.name in the file (default NeuroLLM)
  -d, --data-dir <dir>       data directory of a \`neuroshard train\` run (default ${DEFAULT_DATA_DIR})
      --checkpoint <file>    a specific checkpoint (default: the newest in <data-dir>/checkpoints)
      --json                 one JSON line instead of text
  -h, --help                 show this help

Then, for instance: llama-cli -m <file> -p "The river"
`

/** Runs `neuroshard export`; returns the exit code */
export async function exportCommand (argv: string[], io: CliIO): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        gguf: { type: 'string' },
        type: { type: 'string', default: 'F32' },
        name: { type: 'string', default: 'NeuroLLM' },
        'data-dir': { type: 'string', short: 'd' },
        checkpoint: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: false
    }))
    if (values.help === true) {
      io.stdout.write(EXPORT_USAGE)
      return 0
    }
    if (values.gguf === undefined || values.gguf === '') throw new Error('--gguf <file> is required')
    if (values.type !== 'F32' && values.type !== 'Q4_0') throw new Error(`--type must be F32 or Q4_0, got ${values.type}`)
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${EXPORT_USAGE}`)
    return 2
  }
  const out = resolve(values.gguf)
  try {
    const { tokenizer, state, path } = await loadTrainedModel(values['data-dir'] ?? DEFAULT_DATA_DIR, values.checkpoint)
    const t0 = performance.now()
    const { bytes, tensors } = await exportGguf(out, { config: state.settings.config, parameters: state.parameters, tokenizer, type: values.type as GgufFileType, name: values.name })
    const seconds = (performance.now() - t0) / 1000
    if (values.json === true) {
      io.stdout.write(JSON.stringify({ event: 'exported', file: out, type: values.type, bytes, tensors, checkpoint: path, step: state.step, seconds }) + '\n')
    } else {
      io.stdout.write(`wrote ${out}: ${tensors} tensors, ${(bytes / 1e6).toFixed(1)} MB (${values.type}) from ${path} (step ${state.step}) in ${seconds.toFixed(1)} s\n`)
    }
    return 0
  } catch (err: any) {
    io.stderr.write(`export: ${String(err?.message ?? err)}\n`)
    return 1
  }
}

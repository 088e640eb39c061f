import { parseArgs } from 'node:util'
import { createNeuroShardHost } from '@neuroshard/host'
import { layerPool, layerPoolRecordValidator } from '@neuroshard/layer-pool'
import { LocalGenerator } from '../api/local-generator.js'
import { createLocalBackend } from '../api/local-backend.js'
import { DEFAULT_API_HOST, DEFAULT_API_PORT, startApiServer } from '../api/server.js'
import { TrainingRecorder } from '../api/training-recorder.js'
import { DEFAULT_DATA_DIR, loadTrainedModel } from '../workspace.js'
import { bakeWeightsFlag, draftKind, openDrafter } from './generate.js'
import type { WalletIO } from './wallet.js'
import type { LayerPool } from '@neuroshard/layer-pool'

export const SERVE_USAGE = `Usage: neuroshard serve [options]

Serves the HTTP API (OpenAI-compatible /v1, /api/*, /metrics) and the web dashboard for this machine:
completions come from the newest checkpoint of a \`neuroshard train\` run, in this process (the local
fallback, model id neurollm-local, until the node serves through the network's pipeline); a libp2p host
runs the layer pool for the checkpoint's model, so the dashboard's layer map shows this node and the
peers it joins with --bootstrap; the training card shows the run's validation curve.

Options:
  -d, --data-dir <dir>       data directory of a \`neuroshard train\` run (default ${DEFAULT_DATA_DIR})
      --checkpoint <file>    a specific checkpoint (default: the newest)
      --api-host <addr>      address the API binds to (default ${DEFAULT_API_HOST}: this machine only)
      --api-port <n>         API port, 0 = any free port (default ${DEFAULT_API_PORT})
      --api-token <token>    token that completions and wallet actions require (else $NEUROSHARD_API_TOKEN;
                             required when --api-host is not loopback)
      --bootstrap <addrs>    comma-separated multiaddrs of peers to join
      --device <cpu|cuda>    execution provider (default cpu)
      --bake-weights <on|off> the model as one session with its weights baked in (faster decoding, a second copy
                             of the weights in memory) or three with the weights fed as inputs (default on)
      --draft <ngram|self:N> speculative decoding for every completion (same tokens, fewer model runs; see generate)
      --gamma <n>            draft tokens per round (default 4)
      --json                 JSON lines
  -h, --help                 show this help
`

const ARGS = {
  'data-dir': { type: 'string', short: 'd' },
  checkpoint: { type: 'string' },
  'api-host': { type: 'string' },
  'api-port': { type: 'string' },
  'api-token': { type: 'string' },
  bootstrap: { type: 'string' },
  device: { type: 'string' },
  'bake-weights': { type: 'string' },
  draft: { type: 'string' },
  gamma: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} as const

/** Runs `neuroshard serve` until `io.stopSignal`; returns the exit code */
export async function serveCommand (argv: string[], io: WalletIO): Promise<number> {
  const env = io.env ?? process.env
  let values
  let port: number
  try {
    ({ values } = parseArgs({ args: argv, options: ARGS, strict: true, allowPositionals: false }))
    if (values.help === true) {
      io.stdout.write(SERVE_USAGE)
      return 0
    }
    port = values['api-port'] === undefined ? DEFAULT_API_PORT : Number(values['api-port'])
    if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new Error('--api-port must be 0-65535')
    if (values.device !== undefined && values.device !== 'cpu' && values.device !== 'cuda') throw new Error('--device must be cpu or cuda')
    draftKind(values.draft)
    bakeWeightsFlag(values['bake-weights'])
    if (values.gamma !== undefined && !(Number.isSafeInteger(Number(values.gamma)) && Number(values.gamma) >= 1 && Number(values.gamma) <= 32)) throw new Error('--gamma must be an integer in [1, 32]')
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${SERVE_USAGE}`)
    return 2
  }
  const json = values.json === true || (io.stdout as { isTTY?: boolean }).isTTY !== true
  const emit = (o: Record<string, unknown>, text: string): void => { io.stdout.write(json ? JSON.stringify(o) + '\n' : text + '\n') }
  const host = values['api-host'] ?? DEFAULT_API_HOST
  const token = values['api-token'] ?? env.NEUROSHARD_API_TOKEN
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost'
  if (!loopback && (token === undefined || token === '')) {
    io.stderr.write(`serve: --api-host ${host} exposes the API beyond this machine; give an --api-token\n`)
    return 2
  }

  const stops: Array<() => Promise<void>> = []
  try {
    const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR
    const { tokenizer, state, path } = await loadTrainedModel(dataDir, values.checkpoint)
    const kind = draftKind(values.draft, state.settings.config)
    const source = kind !== undefined ? await openDrafter(kind, state.settings.config, state.parameters) : undefined
    if (source !== undefined) stops.push(async () => { await source.close() })
    const generator = await LocalGenerator.create({
      ...(source !== undefined ? { draft: { source, ...(values.gamma !== undefined ? { gamma: Number(values.gamma) } : {}) } } : {}),
      tokenizer,
      config: state.settings.config,
      parameters: state.parameters,
      device: (values.device ?? 'cpu') as 'cpu' | 'cuda',
      bakeWeights: bakeWeightsFlag(values['bake-weights']),
      onWarning: (m) => { io.stderr.write(`warning: ${m}\n`) }
    })
    stops.push(async () => { await generator.close() })
    const recorder = new TrainingRecorder()
    for (const e of state.evals) recorder.recordValidation(e.loss, { step: e.step })
    recorder.setActive(false)

    const node = await createNeuroShardHost<{ layerPool: LayerPool }>({
      bootstrap: values.bootstrap?.split(',').map(a => a.trim()).filter(a => a !== '') ?? [],
      recordValidators: { 'layer-pool': layerPoolRecordValidator() },
      services: { layerPool: layerPool({ modelId: 'local', config: state.settings.config }) }
    })
    stops.unshift(async () => { await node.stop() })
    const backend = createLocalBackend({ host: node, layerPool: node.services.layerPool, generator, training: recorder })
    const server = await startApiServer({ backend, host, port, ...(token !== undefined && token !== '' ? { token } : {}) })
    stops.unshift(async () => { await server.close() })
    emit({ event: 'listening', url: server.url, peerId: node.peerId.toString(), checkpoint: path, step: state.step, model: generator.modelId, tokenRequired: token !== undefined && token !== '' },
      `NeuroShard node ${node.peerId.toString()}\ndashboard and API: ${server.url}/ (OpenAI-compatible at ${server.url}/v1, model ${generator.modelId})\n` +
      `serving ${path} (step ${state.step})${token !== undefined && token !== '' ? '; completions and wallet need the API token' : ''}\nCtrl-C to stop`)
    const signal = await (io.stopSignal ?? new Promise<string>(() => {}))
    emit({ event: 'stopped', signal }, `${signal}: stopping`)
    return 0
  } catch (err: any) {
    io.stderr.write(`serve: ${err?.message ?? err}\n`)
    return 1
  } finally {
    for (const stop of stops) await stop().catch(() => {})
  }
}

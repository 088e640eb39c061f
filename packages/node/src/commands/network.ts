/**
 * The commands that run NeuroShard on a network: `neuroshard devnet` (N nodes on this machine that
 * train and serve together) and `neuroshard start` (one node joining a network). Both build or load
 * the genesis dataset and tokenizer, take spans through the layer pool, train with the pipeline and
 * DiLoCo, serve completions through the pipeline, and open the HTTP API and dashboard.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { availableParallelism, freemem } from 'node:os'
import { parseArgs } from 'node:util'
import { performance, PerformanceObserver } from 'node:perf_hooks'
import type { PerformanceEntry } from 'node:perf_hooks'
import { describeSpan } from '@neuroshard/layer-pool'
import { TINY } from '@neuroshard/model'
import { chainIdOf, genesisFromJSON, genesisToJSON, loadKeystore, toHex } from '@neuroshard/ponw-ledger'
import { constantLr } from '@neuroshard/runtime'
import { DEFAULT_API_HOST, DEFAULT_API_PORT, startApiServer } from '../api/server.js'
import { DEFAULT_NETWORK_DEVNET_NODES, startNetworkDevnet } from '../network/devnet.js'
import { DEFAULT_INNER_STEPS, NetworkNode } from '../network/node.js'
import { pipelineTokenizer } from '../network/tokenizer.js'
import { DEFAULT_DATA_DIR, parseDataSource, prepareData } from '../workspace.js'
import { DEFAULT_TINY_VOCAB } from './train.js'
import { readPassphrase } from './wallet.js'
import { dataManifestHash, ledgerDataShards } from '../ponw/data-shards.js'
import type { ApiServer } from '../api/server.js'
import type { NetworkDevnet } from '../network/devnet.js'
import type { NetworkNodeInit } from '../network/node.js'
import type { CliIO } from '../progress.js'

const COMMON_OPTIONS = `      --data <source>        nlp-corpus (default) or comma-separated .txt / .jsonl files for the genesis data
      --vocab-size <n>       vocabulary of a new tokenizer (default ${DEFAULT_TINY_VOCAB})
      --inner-steps <H>      DiLoCo inner steps per round (default ${DEFAULT_INNER_STEPS}; env NEUROSHARD_DILOCO_STEPS)
      --batch-size <n>       sequences per micro-batch (default 8)
      --seq-len <n>          tokens per sequence (default 64)
      --lr <x>               inner AdamW learning rate (default 3e-3)
      --eval-batches <n>     validation batches (batch size × sequence length each) the network model's validation
                             loss is measured on after each round, 0 = the whole validation split (default 4)
      --training <on|off>    train, or only serve inference (default on)
      --api-host <addr>      address the API binds to (default ${DEFAULT_API_HOST}; env NEUROSHARD_API_HOST)
      --api-port <n>         API port, 0 = any free port (default ${DEFAULT_API_PORT}; env NEUROSHARD_API_PORT)
      --api-token <token>    token that completions and wallet actions require (env NEUROSHARD_API_TOKEN;
                             required when --api-host is not loopback)
      --config <file>        JSON file with any of these options (keys as the long option names)
      --json                 JSON lines (the default when stdout is not a terminal)
  -h, --help                 show this help

Environment: NEUROSHARD_ALLOCATOR_TUNING=off runs the process as started; by default (Linux, glibc) it restarts
itself once at start with MALLOC_ARENA_MAX=2 and --max-semi-space-size=16, each only where not already set`

export const DEVNET_USAGE = `Usage: neuroshard devnet [options]

Starts N NeuroShard nodes on 127.0.0.1 that together hold, train and serve NeuroLLM (tiny): it builds
(or loads) the genesis dataset and tokenizer, every node takes a span of the model through the layer
pool, Drivers train over the pipeline with DiLoCo rounds between the replicas of each slot, and node 0
serves the OpenAI-compatible API and the dashboard (completions run through the pipeline). Ctrl-C stops.

Options:
  -n, --nodes <n>            nodes (default ${DEFAULT_NETWORK_DEVNET_NODES}: two pipelines of two nodes, two replicas of every slot)
  -d, --data-dir <dir>       data (genesis dataset, tokenizer) and node identities (default ${DEFAULT_DATA_DIR})
${COMMON_OPTIONS}
`

export const START_USAGE = `Usage: neuroshard start [options]

Runs one NeuroShard node: joins the network through the bootstrap peers, takes a span of the model
through the layer pool, trains with its pipeline and DiLoCo group, serves completions through the
pipeline, and opens the HTTP API and dashboard. Ctrl-C hands its spans over and stops.

Options:
      --bootstrap <addrs>    comma-separated multiaddrs of peers to join (env NEUROSHARD_BOOTSTRAP)
      --port <n>             libp2p TCP port (default any free port)
      --listen-host <addr>   address libp2p listens on (default 127.0.0.1)
  -d, --data-dir <dir>       data, tokenizer and this node's identity (default ${DEFAULT_DATA_DIR})
      --memory <GB>          memory offered for spans (default a quarter of the free memory)
      --device <cpu|cuda>    execution provider (cuda falls back to cpu; default cpu)
      --swarm-key <file>     private network key (libp2p pnet)
      --model-id <name>      network / model name (default devnet)
      --quantization <q>     fp32 (default), int8 or int4: serve inference with quantized weights (needs --training off)
      --quant-block-size <n> values per quantization group of a quantized node, 32 (default), 64 or 128; its layer
                             record declares it (env NEUROSHARD_QUANT_BLOCK_SIZE)
      --bake-weights <on|off> a float32 serving node (--training off): its spans' inference sessions with the weights
                             baked in, on 2 onnxruntime threads where there are 2 cores (faster decoding of wide
                             spans; each span is held twice, so the layer pool is offered half of --memory; instead
                             of the fused single session small spans get by default) (default off; env
                             NEUROSHARD_BAKE_WEIGHTS)
      --serve-round-weights <on|off> a training node: serve completions from its spans' last finished DiLoCo round
                             (the weights every replica agrees on), baked into inference sessions rebuilt after each
                             round, instead of from the training weights that change every inner step; one more copy
                             of the spans' weights (default on; env NEUROSHARD_SERVE_ROUND_WEIGHTS)
      --genesis <file>       the network's ledger genesis (JSON; \`neuroshard devnet\` writes <data-dir>/devnet/genesis.json):
                             with it the node runs the ledger, signs proofs of its work and earns NEURO
      --keystore <file>      this node's wallet (default <data-dir>/wallet.json; \`neuroshard wallet create\`)
      --passphrase-file <f>  the keystore passphrase (else $NEUROSHARD_WALLET_PASSPHRASE)
${COMMON_OPTIONS}
`

interface NetworkOptions {
  dataDir: string
  source: string
  vocabSize: number
  innerSteps: number
  batchSize: number
  seqLen: number
  lr: number
  evalBatches: number
  training: boolean
  apiHost: string
  apiPort: number
  apiToken?: string
  json: boolean
}

const COMMON_ARGS = {
  'data-dir': { type: 'string', short: 'd' },
  data: { type: 'string' },
  'vocab-size': { type: 'string' },
  'inner-steps': { type: 'string' },
  'batch-size': { type: 'string' },
  'seq-len': { type: 'string' },
  lr: { type: 'string' },
  'eval-batches': { type: 'string' },
  training: { type: 'string' },
  'api-host': { type: 'string' },
  'api-port': { type: 'string' },
  'api-token': { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

class UsageError extends Error {}

function int (name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`)
  return n
}

/** Option values: command line, then the --config file, then NEUROSHARD_* variables */
async function readOptions (values: Record<string, unknown>, env: NodeJS.ProcessEnv, stdoutIsTTY: boolean): Promise<{ get: (name: string) => unknown, common: NetworkOptions }> {
  let file: Record<string, unknown> = {}
  if (typeof values.config === 'string') {
    try {
      file = JSON.parse(await readFile(values.config, 'utf8'))
    } catch (err: any) {
      throw new UsageError(`--config ${values.config}: ${err.message}`)
    }
    if (file == null || typeof file !== 'object' || Array.isArray(file)) throw new UsageError('--config must hold a JSON object')
  }
  const ENV: Record<string, string> = {
    'api-host': 'NEUROSHARD_API_HOST',
    'api-port': 'NEUROSHARD_API_PORT',
    'api-token': 'NEUROSHARD_API_TOKEN',
    'inner-steps': 'NEUROSHARD_DILOCO_STEPS',
    bootstrap: 'NEUROSHARD_BOOTSTRAP',
    'data-dir': 'NEUROSHARD_DATA_DIR',
    memory: 'NEUROSHARD_MEMORY_GB',
    'quant-block-size': 'NEUROSHARD_QUANT_BLOCK_SIZE',
    'bake-weights': 'NEUROSHARD_BAKE_WEIGHTS',
    'serve-round-weights': 'NEUROSHARD_SERVE_ROUND_WEIGHTS'
  }
  const get = (name: string): unknown => values[name] ?? file[name] ?? (ENV[name] != null ? env[ENV[name]] : undefined)
  const training = String(get('training') ?? 'on')
  if (training !== 'on' && training !== 'off') throw new UsageError('--training must be on or off')
  const lr = Number(get('lr') ?? 3e-3)
  if (!(Number.isFinite(lr) && lr > 0 && lr < 1)) throw new UsageError('--lr must be a number in (0, 1)')
  const apiHost = String(get('api-host') ?? DEFAULT_API_HOST)
  const apiToken = get('api-token') as string | undefined
  const loopback = apiHost === '127.0.0.1' || apiHost === '::1' || apiHost === 'localhost'
  if (!loopback && apiToken == null) throw new UsageError('--api-token is required when the API listens beyond this machine (--api-host)')
  return {
    get,
    common: {
      dataDir: String(get('data-dir') ?? DEFAULT_DATA_DIR),
      source: String(get('data') ?? 'nlp-corpus'),
      vocabSize: int('vocab-size', get('vocab-size') ?? DEFAULT_TINY_VOCAB, 259, 1 << 20),
      innerSteps: int('inner-steps', get('inner-steps') ?? DEFAULT_INNER_STEPS, 1, 100_000),
      batchSize: int('batch-size', get('batch-size') ?? 8, 1, 64),
      seqLen: int('seq-len', get('seq-len') ?? 64, 2, TINY.maxSeqLen),
      lr,
      evalBatches: int('eval-batches', get('eval-batches') ?? 4, 0, 1_000_000),
      training: training === 'on',
      apiHost,
      apiPort: int('api-port', get('api-port') ?? DEFAULT_API_PORT, 0, 65535),
      ...(apiToken != null ? { apiToken } : {}),
      json: get('json') === true || !stdoutIsTTY
    }
  }
}

async function loadData (o: NetworkOptions, io: CliIO, emit: (obj: Record<string, unknown>) => void, say: (line: string) => void): Promise<Awaited<ReturnType<typeof prepareData>>> {
  const t0 = Date.now()
  const data = await prepareData({
    dataDir: o.dataDir,
    source: parseDataSource(o.source),
    vocabSize: o.vocabSize,
    onStage: (stage, info) => {
      emit({ event: 'data', stage, ...info })
      if (stage === 'tokenizer') say(`training a BPE tokenizer (${String(info.vocabSize)} tokens) on ${String(info.documents)} documents…`)
      if (stage === 'dataset') say('building the genesis dataset…')
      if (stage === 'verify') say(`verifying the genesis dataset in ${String(info.dir)}…`)
    }
  })
  say(`genesis data: ${data.manifest.shards.length} shards, vocabulary ${data.tokenizer.vocabSize} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  emit({ event: 'data', stage: 'ready', shards: data.manifest.shards.length, vocabSize: data.tokenizer.vocabSize, ms: Date.now() - t0 })
  void io
  return data
}

/** The node's events as `--json` lines (`emit`) and terminal lines (`say`); exported for tests */
export function follow (node: NetworkNode, index: number, emit: (obj: Record<string, unknown>) => void, say: (line: string) => void): void {
  const short = (): string => node.peerId.toString().slice(-6)
  node.addEventListener('node:stage', (e) => {
    emit({ event: 'stage', node: index, peer: node.peerId.toString(), start: e.detail.start, end: e.detail.end })
    say(`node ${index} (…${short()}) serves ${describeSpan(node.config, e.detail.start, e.detail.end)}`)
  })
  node.addEventListener('node:validation', (e) => {
    const { round, loss, slotRounds, exact, tokens, batchLosses } = e.detail
    emit({ event: 'validation', node: index, round, loss, slotRounds, exact, tokens, batchLosses })
    say(`round ${round}: validation loss ${loss.toFixed(4)} (node ${index}${exact ? '' : `; as served, slot rounds ${slotRounds.join('/')}`})`)
  })
  // failures of the node's background work (a stage build, a slot reload) and stalled rounds: never silent
  node.addEventListener('node:error', (e) => {
    emit({ event: 'error', node: index, what: e.detail.what, message: e.detail.message })
    say(`node ${index} (…${short()}): ${e.detail.what} failed: ${e.detail.message}`)
  })
  node.addEventListener('node:stalled', (e) => {
    emit({ event: 'stalled', node: index, slot: e.detail.slot, round: e.detail.round, reason: e.detail.reason })
    say(`node ${index} (…${short()}): round ${e.detail.round} of slot ${e.detail.slot} stalled: ${e.detail.reason}`)
  })
  node.addEventListener('node:failover', (e) => {
    const r = e.detail.recovery
    const round = (x: number): number => Math.round(x * 10) / 10
    // the Driver's phase times of the recovery (pipeline:recovered): where the time after the detection went
    const phases = r != null ? { phases: Object.fromEntries(Object.entries(r.ms).map(([k, v]) => [k, round(v ?? 0)])), attempts: r.attempts, tokens: r.tokens, hop: r.hop, direct: r.direct === true, switched: r.switched } : {}
    // at: wall time, ms (the testbed's nodes share a clock: a slow recovery placed against the other nodes' stall / gc / serving lines)
    emit({ event: 'failover', node: index, at: Date.now(), ms: round(e.detail.ms), ...phases })
  })
  node.addEventListener('node:serving', (e) => {
    // a round's serving snapshot swapped in (its build runs on the node's thread for a small model)
    emit({ event: 'serving', node: index, at: Date.now(), start: e.detail.start, end: e.detail.end, round: e.detail.round, buildMs: Math.round(e.detail.buildMs * 10) / 10 })
  })
  node.addEventListener('node:round', (e) => {
    // with what the round trained (its record: accepted contributions × their inner steps × batch × sequence length)
    if (e.detail.slot === node.heldStages()[0]?.start) emit({ event: 'round', node: index, slot: e.detail.slot, round: e.detail.round, ...node.roundWork(e.detail.slot, e.detail.round) })
  })
}

async function openApi (o: NetworkOptions, node: NetworkNode, emit: (obj: Record<string, unknown>) => void, say: (line: string) => void): Promise<ApiServer> {
  const server = await startApiServer({
    backend: node.backend(),
    host: o.apiHost,
    port: o.apiPort,
    ...(o.apiToken != null ? { token: o.apiToken } : {})
  })
  emit({ event: 'api', url: server.url })
  say(`dashboard and API: ${server.url} (OpenAI-compatible: ${server.url}/v1/chat/completions)`)
  return server
}

/** `neuroshard devnet`: returns the exit code once `io.stopSignal` resolves */
export async function devnetCommand (argv: string[], io: CliIO & { env?: NodeJS.ProcessEnv }): Promise<number> {
  let values: Record<string, unknown>
  try {
    ({ values } = parseArgs({ args: argv, options: { ...COMMON_ARGS, nodes: { type: 'string', short: 'n' } }, strict: true, allowPositionals: false }))
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${DEVNET_USAGE}`)
    return 2
  }
  if (values.help === true) { io.stdout.write(DEVNET_USAGE); return 0 }
  let o: NetworkOptions
  let nodes: number
  try {
    const read = await readOptions(values, io.env ?? process.env, io.stdout.isTTY === true)
    o = read.common
    nodes = int('nodes', read.get('nodes') ?? DEFAULT_NETWORK_DEVNET_NODES, 1, 32)
  } catch (err: any) {
    io.stderr.write(`${err.message}\n`)
    return 2
  }
  const emit = (obj: Record<string, unknown>): void => { if (o.json) io.stdout.write(JSON.stringify(obj) + '\n') }
  const say = (line: string): void => { if (!o.json) io.stdout.write(line + '\n') }
  const started = Date.now()
  let devnet: NetworkDevnet | undefined
  let server: ApiServer | undefined
  try {
    const data = await loadData(o, io, emit, say)
    say(`starting ${nodes} nodes on 127.0.0.1…`)
    devnet = await startNetworkDevnet({
      nodes,
      tokenizer: data.tokenizer,
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      dataDir: `${o.dataDir}/devnet`,
      node: { innerSteps: o.innerSteps, batchSize: o.batchSize, seqLen: o.seqLen, evalBatches: o.evalBatches, optimizer: { schedule: constantLr(o.lr) }, training: o.training },
      // before each node starts, so that no stage, error or round of its start is missed
      onCreated: (node, index) => { follow(node, index, emit, say) },
      onNode: (node, index) => {
        emit({ event: 'node', node: index, peer: node.peerId.toString(), addresses: node.host.getMultiaddrs().map(String) })
      }
    })
    emit({ event: 'started', nodes, peers: devnet.nodes.map(n => n.peerId.toString()), ms: Date.now() - started })
    if (devnet.genesis != null) {
      // other machines join this devnet's ledger with \`neuroshard start --genesis <file>\`
      await mkdir(`${o.dataDir}/devnet`, { recursive: true })
      const file = `${o.dataDir}/devnet/genesis.json`
      await writeFile(file, genesisToJSON(devnet.genesis))
      emit({ event: 'ledger', network: devnet.genesis.network, genesis: file, validators: devnet.genesis.validators.length })
      say(`ledger ${devnet.genesis.network}: ${devnet.genesis.validators.length} validators, genesis in ${file}`)
    }
    server = await openApi(o, devnet.nodes[0], emit, say)
  } catch (err: any) {
    io.stderr.write(`devnet failed to start: ${err.message}\n`)
    await server?.close().catch(() => {})
    await devnet?.stop()
    return 1
  }
  const signal = await (io.stopSignal ?? new Promise<string>(() => {}))
  say(`\n${signal}: stopping ${nodes} nodes…`)
  await server.close().catch(() => {})
  await devnet.stop()
  emit({ event: 'stopped', signal })
  say('stopped')
  return 0
}

/** `neuroshard start`: one node joining a network */
export async function startCommand (argv: string[], io: CliIO & { env?: NodeJS.ProcessEnv }): Promise<number> {
  let values: Record<string, unknown>
  const ARGS = {
    ...COMMON_ARGS,
    bootstrap: { type: 'string' },
    port: { type: 'string' },
    'listen-host': { type: 'string' },
    memory: { type: 'string' },
    device: { type: 'string' },
    'swarm-key': { type: 'string' },
    'model-id': { type: 'string' },
    quantization: { type: 'string' },
    'quant-block-size': { type: 'string' },
    'bake-weights': { type: 'string' },
    'serve-round-weights': { type: 'string' },
    genesis: { type: 'string' },
    keystore: { type: 'string' },
    'passphrase-file': { type: 'string' }
  } as const
  try {
    ({ values } = parseArgs({ args: argv, options: ARGS, strict: true, allowPositionals: false }))
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${START_USAGE}`)
    return 2
  }
  if (values.help === true) { io.stdout.write(START_USAGE); return 0 }
  let o: NetworkOptions
  let get: (name: string) => unknown
  let memoryBytes: number
  let port: number
  let swarmKey: string | undefined
  let quantization: 'fp32' | 'int8' | 'int4' = 'fp32'
  let quantBlockSize: 32 | 64 | 128 | undefined
  let bakeWeights = false
  let serveRoundWeights = true
  try {
    ({ common: o, get } = await readOptions(values, io.env ?? process.env, io.stdout.isTTY === true))
    const gb = get('memory')
    memoryBytes = gb != null ? Number(gb) * 1024 ** 3 : Math.floor(freemem() / 4)
    if (!(Number.isFinite(memoryBytes) && memoryBytes > 0)) throw new UsageError('--memory must be a positive number of GB')
    port = int('port', get('port') ?? 0, 0, 65535)
    const device = String(get('device') ?? 'cpu')
    if (device !== 'cpu' && device !== 'cuda') throw new UsageError('--device must be cpu or cuda')
    const q = String(get('quantization') ?? 'fp32')
    if (q !== 'fp32' && q !== 'int8' && q !== 'int4') throw new UsageError('--quantization must be fp32, int8 or int4')
    if (q !== 'fp32' && o.training) throw new UsageError('--quantization int8|int4 serves inference only: add --training off')
    quantization = q
    const bs = get('quant-block-size')
    if (bs != null) {
      const n = Number(bs)
      if (n !== 32 && n !== 64 && n !== 128) throw new UsageError('--quant-block-size must be 32, 64 or 128')
      if (q === 'fp32' && n !== 32) throw new UsageError('--quant-block-size needs --quantization int8 or int4')
      quantBlockSize = n
    }
    const bake = String(get('bake-weights') ?? 'off')
    if (bake !== 'on' && bake !== 'off') throw new UsageError('--bake-weights must be on or off')
    bakeWeights = bake === 'on'
    if (bakeWeights && o.training) throw new UsageError('--bake-weights on serves inference only: add --training off')
    if (bakeWeights && q !== 'fp32') throw new UsageError('--bake-weights is for float32 nodes (quantized weights are always baked)')
    const round = get('serve-round-weights')
    if (round != null && round !== 'on' && round !== 'off') throw new UsageError('--serve-round-weights must be on or off')
    if (round === 'on' && !o.training) throw new UsageError('--serve-round-weights is for a training node (a serving node serves the layer pool\'s weights)')
    serveRoundWeights = round !== 'off'
    const keyFile = get('swarm-key')
    swarmKey = keyFile != null ? await readFile(String(keyFile), 'utf8').catch((err: Error) => { throw new UsageError(`--swarm-key: ${err.message}`) }) : undefined
  } catch (err: any) {
    io.stderr.write(`${err.message}\n`)
    return 2
  }
  const emit = (obj: Record<string, unknown>): void => { if (o.json) io.stdout.write(JSON.stringify(obj) + '\n') }
  const say = (line: string): void => { if (!o.json) io.stdout.write(line + '\n') }
  const bootstrap = String(get('bootstrap') ?? '').split(',').map(a => a.trim()).filter(a => a !== '')
  const listenHost = String(get('listen-host') ?? '127.0.0.1')
  let node: NetworkNode | undefined
  let server: ApiServer | undefined
  let ponw: NetworkNodeInit['ponw']
  try {
    const genesisFile = get('genesis')
    if (genesisFile != null) {
      const genesis = genesisFromJSON(await readFile(String(genesisFile), 'utf8'))
      const keystore = String(get('keystore') ?? `${o.dataDir}/wallet.json`)
      const passphrase = await readPassphrase(get('passphrase-file') as string | undefined, io.env ?? process.env, { ...io, stdin: undefined } as any, false)
      const wallet = await loadKeystore(keystore, passphrase)
      ponw = { genesis, wallet, path: `${o.dataDir}/ledger/${toHex(chainIdOf(genesis)).slice(0, 16)}` }
      say(`ledger ${genesis.network}: wallet ${wallet.address}`)
    }
  } catch (err: any) {
    io.stderr.write(`ledger: ${err.message}\n`)
    return 2
  }
  try {
    const data = await loadData(o, io, emit, say)
    if (ponw != null) {
      // data proofs when this node's genesis data is the one the ledger's genesis names
      const shards = ledgerDataShards(data.train)
      if (ponw.genesis.dataManifestHash === dataManifestHash(shards)) ponw = { ...ponw, data: { shards } }
      else say('ledger: this node\'s genesis data is not the manifest the ledger genesis names: no data proofs')
    }
    node = new NetworkNode({
      config: { ...TINY, vocabSize: data.tokenizer.vocabSize },
      modelId: String(get('model-id') ?? 'devnet'),
      memoryBytes,
      training: o.training,
      ...(quantization !== 'fp32' ? { quantization } : {}),
      ...(quantization !== 'fp32' && quantBlockSize != null ? { quantBlockSize } : {}),
      // baked weights are prepacked, and a second intra-op thread then speeds decoding (packages/gguf README)
      ...(bakeWeights ? { bakeWeights, threads: Math.min(2, availableParallelism()) } : {}),
      ...(o.training ? { serveRoundWeights } : {}),
      tokenizer: pipelineTokenizer(data.tokenizer),
      data: { manifest: data.manifest, train: data.train, validation: data.validation },
      innerSteps: o.innerSteps,
      batchSize: o.batchSize,
      seqLen: o.seqLen,
      evalBatches: o.evalBatches,
      optimizer: { schedule: constantLr(o.lr) },
      ...(String(get('device') ?? 'cpu') === 'cuda' ? { device: 'cuda' } : {}),
      ...(ponw != null ? { ponw } : {}),
      host: {
        dataDir: `${o.dataDir}/node`,
        listen: [listenHost.includes(':') ? `/ip6/${listenHost}/tcp/${port}` : `/ip4/${listenHost}/tcp/${port}`],
        bootstrap,
        ...(swarmKey != null ? { swarmKey } : {})
      }
    })
    follow(node, 0, emit, say)
    await node.start()
    // a hop's own time on an INFER over SLOW_HOP_MS (issue 15: what a slow failover's replacement did)
    node.host.services.pipeline.addEventListener('pipeline:slow-hop', (e) => {
      const r = (x: number): number => Math.round(x * 10) / 10
      emit({ event: 'slow-hop', node: 0, at: Date.now(), stageMs: r(e.detail.stageMs), computeMs: r(e.detail.computeMs), sub: e.detail.sub, position: e.detail.position, tokens: e.detail.tokens })
    })
    // an INFER's session stream to hop `hop` negotiated on its way (no spare): the Driver's, or a hop's to its next hop
    node.host.services.pipeline.addEventListener('pipeline:link-opened', (e) => {
      emit({ event: 'link-opened', node: 0, at: Date.now(), hop: e.detail.hop, ms: Math.round(e.detail.ms * 10) / 10, position: e.detail.position })
    })
    const addrs = node.host.getMultiaddrs().map(String)
    emit({ event: 'started', peer: node.peerId.toString(), addresses: addrs })
    say(`node ${node.peerId.toString()} listening on ${addrs.join(' ')}`)
    server = await openApi(o, node, emit, say)
  } catch (err: any) {
    io.stderr.write(`node failed to start: ${err.message}\n`)
    await server?.close().catch(() => {})
    await node?.stop()
    return 1
  }
  // with --json, the process's memory every MEMORY_LINE_INTERVAL_MS (the testbed's soak samples heap and RSS from them)
  const memoryTimer = o.json ? setInterval(() => { emit(memoryLine()) }, MEMORY_LINE_INTERVAL_MS) : undefined
  memoryTimer?.unref()
  // with --json, the event loop's stalls and long garbage collections (issue 15: a failover's slow hop placed in time)
  const stopStalls = o.json ? watchStalls(emit) : undefined
  const signal = await (io.stopSignal ?? new Promise<string>(() => {}))
  clearInterval(memoryTimer)
  stopStalls?.()
  say(`\n${signal}: handing spans over and stopping…`)
  await server.close().catch(() => {})
  await node.stop()
  emit({ event: 'stopped', signal })
  say('stopped')
  return 0
}

/** `neuroshard start --json` prints a `stall` line for an event loop stall longer than this, and a `gc` line for a collection, ms */
export const STALL_LINE_MS = 40
/** How often the stall watch looks at the event loop, ms */
const STALL_TICK_MS = 10

/**
 * `{"event":"stall","at","ms"}` when the event loop was blocked more than STALL_LINE_MS (a timer every STALL_TICK_MS
 * came that much late; `at` is when it came), and `{"event":"gc","at","ms","kind"}` for a garbage collection longer
 * than STALL_LINE_MS. Returns the stop function
 */
export function watchStalls (emit: (obj: Record<string, unknown>) => void): () => void {
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    const late = now - last - STALL_TICK_MS
    last = now
    if (late > STALL_LINE_MS) emit({ event: 'stall', at: Date.now(), ms: Math.round(late) })
  }, STALL_TICK_MS)
  timer.unref()
  const gc = new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      if (e.duration > STALL_LINE_MS) emit({ event: 'gc', at: Math.round(performance.timeOrigin + e.startTime + e.duration), ms: Math.round(e.duration), kind: (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind })
    }
  })
  gc.observe({ entryTypes: ['gc'] })
  return () => { clearInterval(timer); gc.disconnect() }
}

/** How often `neuroshard start --json` prints a `memory` line, ms */
export const MEMORY_LINE_INTERVAL_MS = 10_000

/** `{"event":"memory"}`: the process's resident set and V8 heap (bytes, `process.memoryUsage()`) */
export function memoryLine (): Record<string, unknown> {
  const m = process.memoryUsage()
  return { event: 'memory', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

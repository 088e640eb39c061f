import { devnetCommand as hostsCommand } from './commands/devnet.js'
import type { CliIO } from './progress.js'

// loaded on use, so `hosts` does not pay for onnxruntime and the trainer
const MODEL_COMMANDS: Record<'devnet' | 'start' | 'train' | 'generate' | 'chat' | 'serve' | 'export', (argv: string[], io: CliIO) => Promise<number>> = {
  devnet: async (argv, io) => (await import('./commands/network.js')).devnetCommand(argv, io),
  start: async (argv, io) => (await import('./commands/network.js')).startCommand(argv, io),
  train: async (argv, io) => (await import('./commands/train.js')).trainCommand(argv, io),
  generate: async (argv, io) => (await import('./commands/generate.js')).generateCommand(argv, io),
  chat: async (argv, io) => (await import('./commands/chat.js')).chatCommand(argv, io),
  serve: async (argv, io) => (await import('./commands/serve.js')).serveCommand(argv, io),
  export: async (argv, io) => (await import('./commands/export.js')).exportCommand(argv, io)
}

const USAGE = `Usage: neuroshard <command> [options]

Commands:
  devnet    N nodes on this machine that hold, train and serve NeuroLLM together, with the API and
            dashboard (neuroshard devnet --help)
  start     run one node: join a network, hold a span, train and serve (neuroshard start --help)
  hosts     only libp2p hosts on 127.0.0.1 that find each other and gossip (neuroshard hosts --help)
  train     train NeuroLLM on this machine, from nothing (neuroshard train --help)
  generate  continue a prompt with the trained model, streaming tokens (neuroshard generate --help)
  chat      talk with the trained model; the KV cache stays across turns (neuroshard chat --help)
  serve     the HTTP API (OpenAI-compatible) and web dashboard over a trained checkpoint (neuroshard serve --help)
  export    write the trained model as a GGUF file for llama.cpp / ollama (neuroshard export --help)
  wallet    create / show a wallet; transfer, stake, unstake through a node (neuroshard wallet --help)
`

async function main (): Promise<number> {
  const [command, ...rest] = process.argv.slice(2)
  if (command == null || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return command == null ? 2 : 0
  }
  if (command === 'wallet') {
    return (await import('./commands/wallet.js')).walletCommand(rest, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin })
  }
  if (command !== 'hosts' && !Object.hasOwn(MODEL_COMMANDS, command)) {
    process.stderr.write(`unknown command: ${command}\n\n${USAGE}`)
    return 2
  }
  let forced = false
  const stopSignal = new Promise<string>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (forced) {
        // a second Ctrl-C while stopping: give up on a clean shutdown
        process.exit(130)
      }
      forced = true
      resolve(signal)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
  if (command !== 'hosts') {
    return MODEL_COMMANDS[command as keyof typeof MODEL_COMMANDS](rest, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, stopSignal })
  }
  return hostsCommand(rest, { stdout: process.stdout, stderr: process.stderr, stopSignal })
}

main().then((code) => {
  process.exitCode = code
  // the hosts are stopped; if some library still holds a handle open, do not hang the shell
  setTimeout(() => { process.exit(code) }, 2_000).unref()
}, (err) => {
  process.stderr.write(`neuroshard: ${err?.stack ?? err}\n`)
  process.exit(1)
})

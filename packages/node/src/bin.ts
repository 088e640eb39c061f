#!/usr/bin/env node
import { devnetCommand } from './commands/devnet.js'

const USAGE = `Usage: neuroshard <command> [options]

Commands:
  devnet    start a local devnet of NeuroShard hosts on 127.0.0.1 (neuroshard devnet --help)
`

async function main (): Promise<number> {
  const [command, ...rest] = process.argv.slice(2)
  if (command == null || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return command == null ? 2 : 0
  }
  if (command !== 'devnet') {
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
  return devnetCommand(rest, { stdout: process.stdout, stderr: process.stderr, stopSignal })
}

main().then((code) => {
  process.exitCode = code
  // the hosts are stopped; if some library still holds a handle open, do not hang the shell
  setTimeout(() => { process.exit(code) }, 2_000).unref()
}, (err) => {
  process.stderr.write(`neuroshard: ${err?.stack ?? err}\n`)
  process.exit(1)
})

import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { SAMPLING_ARGS, SAMPLING_OPTIONS_USAGE, StreamDecoder, openModel, samplingFromFlags } from './generate.js'
import type { CliIO } from '../progress.js'

export const CHAT_USAGE = `Usage: neuroshard chat [options]

Talk with the newest checkpoint of a training run. Each line you type is a turn; the reply streams
back. The KV cache stays in memory across turns, so a new turn only runs its own tokens. Turns are
separated by <|eos|>, the genesis data's document separator. Commands: /reset (forget the
conversation), /exit (or Ctrl-D).

Options:
${SAMPLING_OPTIONS_USAGE}`

/** Runs `neuroshard chat`; returns the exit code */
export async function chatCommand (argv: string[], io: CliIO): Promise<number> {
  let values
  let sampling
  try {
    ({ values } = parseArgs({ args: argv, options: SAMPLING_ARGS, strict: true, allowPositionals: false }))
    if (values.help === true) {
      io.stdout.write(CHAT_USAGE)
      return 0
    }
    sampling = samplingFromFlags(values)
  } catch (err: any) {
    io.stderr.write(`${err.message}\n\n${CHAT_USAGE}`)
    return 2
  }
  const input = io.stdin ?? process.stdin
  const json = values.json === true
  const tty = !json && io.stdout.isTTY === true && input.isTTY === true
  const emit = (o: Record<string, unknown>): void => { io.stdout.write(JSON.stringify(o) + '\n') }
  let model
  try {
    model = await openModel(values, io)
  } catch (err: any) {
    io.stderr.write(`chat: ${err?.message ?? err}\n`)
    return 1
  }
  const { tokenizer, generator } = model
  const eos = tokenizer.eosId
  const stop = eos !== undefined ? [eos] : []
  let session = await generator.session()
  const rl = createInterface({ input, output: tty ? io.stdout : undefined, terminal: tty })
  try {
    if (json) emit({ event: 'start', checkpoint: model.path, step: model.step, seed: sampling.seed, maxSeqLen: generator.config.maxSeqLen })
    else if (tty) io.stdout.write(`chatting with ${model.path} (step ${model.step}); /reset, /exit\n`)
    let first = true
    let turn = 0
    if (tty) { rl.setPrompt('> '); rl.prompt() }
    rl.on('SIGINT', () => { rl.close() })
    void io.stopSignal?.then(() => { rl.close() })
    for await (const line of rl) {
      const text = line.trim()
      if (text === '/exit') break
      if (text === '/reset') {
        await session.close()
        session = await generator.session()
        first = true
        if (json) emit({ event: 'reset' })
        else if (tty) io.stdout.write('(conversation reset)\n')
        if (tty) rl.prompt()
        continue
      }
      if (text === '') { if (tty) rl.prompt(); continue }
      // a turn is a document: <|eos|> before the first one; later turns follow the pending <|eos|> of the last reply
      const ids = [...(first && eos !== undefined ? [eos] : []), ...tokenizer.encode(text), ...(eos !== undefined ? [eos] : [])]
      first = false
      const cachedBefore = session.position
      const decoder = new StreamDecoder(tokenizer)
      const t0 = performance.now()
      let reply = ''
      let n = 0
      for await (const id of session.generate(ids, { ...sampling, stopTokens: stop })) {
        n++
        const piece = decoder.push(id)
        reply += piece
        if (!json) io.stdout.write(piece)
      }
      reply += decoder.flush()
      turn++
      if (json) {
        emit({ event: 'turn', turn, promptTokens: ids.length, cachedTokens: cachedBefore, position: session.position, rebuilds: session.rebuilds, tokens: n, reply, seconds: (performance.now() - t0) / 1000 })
      } else {
        io.stdout.write('\n')
      }
      if (tty) rl.prompt()
    }
    if (json) emit({ event: 'end', turns: turn })
    return 0
  } finally {
    rl.close()
    await session.close()
    await generator.close()
  }
}

/** Where a command reads and writes; injectable for tests */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean, columns?: number }
  stderr: NodeJS.WritableStream
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean }
  /** Resolves when the process is asked to stop (SIGINT / SIGTERM) */
  stopSignal?: Promise<string>
}

/** `1h02m`, `3m12s`, `45s` */
export function formatDuration (ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

/** `950`, `12.3k`, `4.56M` */
export function formatCount (n: number): string {
  if (!Number.isFinite(n)) return '--'
  if (n < 1000) return n.toFixed(0)
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`
  return `${(n / 1e6).toFixed(2)}M`
}

/** Parse `600`, `90s`, `10m`, `1.5h` into milliseconds (bare numbers are seconds) */
export function parseDuration (text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) throw new Error(`cannot parse duration ${JSON.stringify(text)} (use e.g. 90s, 10m, 1h)`)
  const v = Number(m[1])
  const unit = m[2] ?? 's'
  return v * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000)
}

export interface BarState {
  label: string
  done: number
  total?: number
  /** Extra fields shown after the bar: `loss 3.21`, `12.3k tok/s`, … */
  fields: string[]
  etaMs?: number
}

/** One progress line: `label  120/1000 [=====>    ]  12% loss 3.210 | 12.3k tok/s | ETA 3m12s` */
export function formatBar (s: BarState, width = 100): string {
  const frac = s.total !== undefined && s.total > 0 ? Math.min(1, s.done / s.total) : undefined
  const count = s.total !== undefined ? `${s.done}/${s.total}` : `${s.done}`
  const tail = [...s.fields, ...(s.etaMs !== undefined ? [`ETA ${formatDuration(s.etaMs)}`] : [])].join(' | ')
  const head = `${s.label} ${count}`
  const pct = frac !== undefined ? ` ${(frac * 100).toFixed(0).padStart(3)}%` : ''
  const room = Math.max(0, width - head.length - pct.length - tail.length - 6)
  const barWidth = Math.min(30, room)
  let bar = ''
  if (frac !== undefined && barWidth >= 5) {
    const filled = Math.floor(frac * barWidth)
    bar = ' [' + '='.repeat(filled) + (filled < barWidth ? '>' : '') + ' '.repeat(Math.max(0, barWidth - filled - 1)) + ']'
  }
  return `${head}${bar}${pct}  ${tail}`.slice(0, Math.max(20, width - 1))
}

/**
 * Progress output of long work: on a terminal one redrawn line (a bar with step/total, tokens/s,
 * loss and ETA, at most ~10 redraws a second); elsewhere (pipes, files, CI) one JSON object per line,
 * `{"event": ..., ...}`, for every event.
 */
export class ProgressReporter {
  readonly json: boolean
  private readonly out: CliIO['stdout']
  private lastDraw = 0
  private lineOpen = false

  constructor (io: CliIO, options: { json?: boolean } = {}) {
    this.out = io.stdout
    this.json = options.json === true || io.stdout.isTTY !== true
  }

  /** An event: a JSON line, or (terminal) a message on its own line when `message` is given */
  event (name: string, fields: Record<string, unknown>, message?: string): void {
    if (this.json) {
      // trainer events carry their own `type`; the line's kind is `event`
      const { type, ...rest } = fields
      this.out.write(JSON.stringify({ event: name, ...rest }) + '\n')
      return
    }
    if (message !== undefined) this.print(message)
  }

  /** Redraw the bar (terminal only; JSON mode reports through `event`) */
  bar (state: BarState, force = false): void {
    if (this.json) return
    const now = Date.now()
    if (!force && now - this.lastDraw < 100) return
    this.lastDraw = now
    this.out.write('\r\x1b[2K' + formatBar(state, this.out.columns !== undefined && this.out.columns > 0 ? this.out.columns : 100))
    this.lineOpen = true
  }

  /** A line of text above the bar (terminal) */
  print (line: string): void {
    if (this.json) return
    if (this.lineOpen) this.out.write('\r\x1b[2K')
    this.out.write(line + '\n')
    this.lineOpen = false
  }

  /** Finish the bar line */
  end (): void {
    if (this.lineOpen) this.out.write('\n')
    this.lineOpen = false
  }
}

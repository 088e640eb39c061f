import { Level } from 'level'
import type { AccountState, LedgerTotals, Outcome } from './state.js'

/**
 * Key layout (one LevelDB, utf8 keys and values). Everything one final message changes is written in
 * ONE atomic batch, so a crash leaves either all of it or none of it.
 *
 *   c!<txId>                 certificate bytes (base64)       — the source of truth
 *   l!<index, 12 digits>     txId, in local arrival order     — the sync log
 *   o!<txId>                 outcome (JSON)                   — absent while the message waits its turn
 *   a!<address>              account (JSON)
 *   k!<proofKey>             "1": a rewarded proof / used evidence
 *   h!<address>!<txId>       "1": history index
 *   g!meta                   totals and log length (JSON)
 *   v!<sender>!<sequence>    SignedTx this validator voted for (base64) — written, synced, BEFORE signing
 *   e!<evidenceKey>          txId of the slash report this validator voted for
 *   w!<sequence, 20 digits>  SignedTx this node's wallet signed (base64) — written, synced, BEFORE gossiping
 *   p!cert, p!snap, p!pruned the adopted certified checkpoint, its snapshot, whether history behind it was pruned
 *   y!<address>              highest pruned applied withdrawal sequence of the account
 */
export const KEYS = {
  cert: (id: string) => `c!${id}`,
  log: (i: number) => `l!${i.toString().padStart(12, '0')}`,
  outcome: (id: string) => `o!${id}`,
  account: (a: string) => `a!${a}`,
  proofKey: (k: string) => `k!${k}`,
  history: (a: string, id: string) => `h!${a}!${id}`,
  meta: 'g!meta',
  voted: (sender: string, seq: bigint) => `v!${sender}!${seq.toString()}`,
  evidence: (k: string) => `e!${k}`,
  /** highest sequence of a withdrawal by this account that this validator voted for */
  withdrawVoted: (a: string) => `x!${a}`,
  /** lowest equivocated sequence of this account that this validator has seen evidence of */
  suspect: (a: string) => `s!${a}`,
  own: (seq: bigint) => `w!${seq.toString().padStart(20, '0')}`,
  /** the certified checkpoint this node adopted (CheckpointCertificate bytes, base64) */
  checkpoint: 'p!cert',
  /** its snapshot (canonical JSON) */
  snapshot: 'p!snap',
  /** "1": history behind the checkpoint was pruned (the checkpoint's frontier is the state's floor) */
  pruned: 'p!pruned',
  /** highest sequence of an applied withdrawal of this account that was pruned (slashConflicts) */
  withdrawFinal: (a: string) => `y!${a}`
}

export interface Meta {
  logLength: number
  totals: LedgerTotals
  /** outcomes forgotten by pruning (local outcome indexes continue after them) */
  indexOffset?: number
}

export type Op = { type: 'put', key: string, value: string } | { type: 'del', key: string }

function replacer (_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v.toString()}n` : v
}

function reviver (_k: string, v: unknown): unknown {
  return typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v
}

export function toJSON (v: unknown): string {
  return JSON.stringify(v, replacer)
}

export function fromJSON<T> (s: string): T {
  return JSON.parse(s, reviver)
}

export const b64 = {
  enc: (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'),
  dec: (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'base64'))
}

/** Thin typed wrapper over `level` */
export class LedgerStore {
  readonly db: Level<string, string>

  constructor (path: string) {
    this.db = new Level<string, string>(path, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  }

  async open (): Promise<void> {
    await this.db.open()
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  async get (key: string): Promise<string | undefined> {
    return this.db.get(key)
  }

  async batch (ops: Op[], sync = false): Promise<void> {
    await this.db.batch(ops, { sync })
  }

  async * range (prefix: string, options: { gte?: string, limit?: number } = {}): AsyncGenerator<[string, string]> {
    for await (const kv of this.db.iterator({ gte: options.gte ?? prefix, lt: prefix + '\xff', limit: options.limit ?? -1 })) {
      yield kv
    }
  }

  async meta (): Promise<Meta | undefined> {
    const s = await this.get(KEYS.meta)
    return s == null ? undefined : fromJSON<Meta>(s)
  }

  static accountValue (a: AccountState): string {
    return toJSON(a)
  }

  static outcomeValue (o: Outcome): string {
    return toJSON(o)
  }
}

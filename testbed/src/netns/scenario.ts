/**
 * Scenario files (JSON): topology, link profiles, the per-node command and a timeline of chaos events.
 * See testbed/scenarios/*.json and the README.
 */
import { readFileSync } from 'node:fs'

export interface LinkProfile {
  /** one-way delay between two nodes, ms */
  delayMs?: number
  /** uniform ± jitter on the delay, ms (order is kept) */
  jitterMs?: number
  /** random loss per packet and direction, percent */
  lossPct?: number
}

export interface GroupSpec {
  /** nodes in the group, named `<group>-<i>` */
  count: number
  /** egress cap of each node of the group, Mbit/s (kernel tbf on its interface) */
  rateMbit?: number
  /** each node's data directory is a tmpfs of this size, MB (fractions allowed: 0.1 = 102 KB), for `fill-disk` */
  diskMB?: number
  /**
   * the group sits behind one NAT router namespace (nftables masquerade, no port forwarding, forward policy:
   * only replies come in): nodes get 172.16.<group>.<i+1>, the router 10.77.<group>.254 on the emulated
   * link. Needs the `nft` binary (Debian: apt-get install nftables) and the user-space link backend.
   */
  nat?: boolean
  /** the NAT router forwards inbound connections too (a control: the runner's NAT check must then fail) */
  natOpen?: boolean
}

/** Settings of one node (by name) on top of its group's */
export interface NodeSpec {
  /** extra environment of this node's process */
  env?: Record<string, string>
  /** extra arguments appended to its command */
  args?: string[]
  /** this node's wall clock runs this many ms ahead (negative: behind); see clock-skew.ts */
  clockSkewMs?: number
}

/** Requests the runner sends during the run */
export interface Probes {
  /**
   * an OpenAI-style chat completion every `everyS` to the API of each listed node (in the node's namespace,
   * at the URL of its `{"event":"api","url":…}` line); success = HTTP 200 with a `chat.completion` body
   */
  inference?: { nodes: string[], everyS: number, maxTokens?: number, timeoutS?: number, prompt?: string }
}

/** Properties checked after the run (each failing one fails the scenario) */
export type Check =
  /** at least `minRequests` inference probes were sent and at least `minSuccessRate` of them succeeded */
  | { check: 'inference', minRequests: number, minSuccessRate: number }
  /** every listed node (default: all) reported at least `min` DiLoCo rounds (`{"event":"round"}` lines) */
  | { check: 'rounds', min: number, nodes?: string[] }
  /** every node's RSS slope after the warm-up (rssWarmupS) is below this, MB/min (a node with too few samples fails) */
  | { check: 'rss-slope', maxMBPerMin: number }
  /** the node exited on its own (not killed by the runner) with a non-zero code, and its stderr matches */
  | { check: 'exited', node: string, stderr: string }
  /**
   * DiLoCo with Byzantine workers (diloco-node.ts): at least `minRounds` rounds; in every round after the
   * first, every Byzantine contribution was rejected and every honest one accepted; the honest nodes' base
   * ends within `maxDistance` (relative) of the target
   */
  | { check: 'diloco-byzantine', byzantine: string[], minRounds: number, maxDistance: number }
  /**
   * circuit relay (node.ts with TESTBED_PING_RELAYED on the `from` nodes): each `from` node pinged each `to`
   * node through a /p2p-circuit address taken from its layer record (a `relayed-ping` line with ok: true)
   */
  | { check: 'relayed', from: string[], to: string[] }
  /**
   * with `loopback`: this run's validation loss within ±`maxPct` % of the loopback run's at equal tokens
   * (`compareLoopback`); no comparison (no tokens or losses in either run) fails too
   */
  | { check: 'val-loss-vs-loopback', maxPct: number }

export type ScenarioEvent =
  | { atS: number, action: 'kill', nodes: string[] }
  | { atS: number, action: 'restart', nodes: string[] }
  /** every node except the bootstrap peers: SIGKILL, then all start again at the same instant */
  | { atS: number, action: 'join-storm' }
  | { atS: number, action: 'partition', groups: [string, string] }
  | { atS: number, action: 'heal' }
  /** fill the nodes' tmpfs data directories (group `diskMB`) to the last byte / free them again */
  | { atS: number, action: 'fill-disk', nodes: string[] }
  | { atS: number, action: 'free-disk', nodes: string[] }

export interface Scenario {
  name: string
  description?: string
  /** run time after every node was started, s */
  durationS: number
  groups: Record<string, GroupSpec>
  /** nodes started first; every other node gets their addresses */
  bootstrap: string[]
  /**
   * link profiles by group pair: "a>b" (one direction), "a>*", "*>b", "*" (any); the first match in that
   * order applies
   */
  links: Record<string, LinkProfile>
  /**
   * the per-node command; placeholders {node} (the Node.js binary), {testbed} (this package's directory),
   * {name}, {port}, {dataDir}, {bootstrap} (comma-separated multiaddrs), {ip}, {shared} (see setup)
   * @default node dist/src/netns/node.js --name {name} --port {port} --data-dir {dataDir} --bootstrap {bootstrap}
   */
  node?: { command?: string[], port?: number, env?: Record<string, string> }
  /**
   * commands run once on the host before the network starts (each an argv; placeholders {node}, {testbed},
   * {shared}: a directory of this run that node commands can also name)
   */
  setup?: string[][]
  /** per-node settings by node name */
  nodes?: Record<string, NodeSpec>
  /**
   * when the network counts as converged: `layer-pool` (default: every live node's stats line counts every
   * other live node's layer-pool record and every slot served), `ready` (every live node printed its ready
   * line since its last start), `stage` (every live node printed a `stage` line since its last start: the
   * `neuroshard start` node took a span)
   */
  converge?: 'layer-pool' | 'ready' | 'stage'
  probes?: Probes
  checks?: Check[]
  /** RSS slope is fitted after this warm-up from each process's start, s @default 30 */
  rssWarmupS?: number
  /** after the timeline and `durationS`, wait (at most `timeoutS`) until every live node printed this event */
  until?: { event: string, timeoutS: number }
  events?: ScenarioEvent[]
  /**
   * the name of the loopback run's results (`results/<name>.json`: the same devnet on links without delay, loss
   * or rate cap): the results table compares the validation loss at the last round both runs reached
   */
  loopback?: string
  /**
   * several loopback runs' results (`results/<name>.json` each, measured on this scenario's validation set): the
   * comparison and `val-loss-vs-loopback` take the mean Δ over them and state its range (replaces `loopback`)
   */
  loopbackRuns?: string[]
  /** a run fails when the network did not converge within this many seconds of the start or of an event @default 60 */
  convergeTimeoutS?: number
}

export function loadScenario (path: string): Scenario {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Scenario
  if (typeof s.name !== 'string' || s.groups == null || !Array.isArray(s.bootstrap) || typeof s.durationS !== 'number') {
    throw new Error(`${path}: a scenario needs name, durationS, groups and bootstrap`)
  }
  const names = nodeNames(s)
  for (const b of s.bootstrap) if (!names.includes(b)) throw new Error(`${path}: bootstrap node ${b} is not in any group`)
  for (const b of s.bootstrap) if (s.groups[b.slice(0, b.lastIndexOf('-'))]?.nat === true) throw new Error(`${path}: bootstrap node ${b} is behind a NAT`)
  for (const n of Object.keys(s.nodes ?? {})) if (!names.includes(n)) throw new Error(`${path}: nodes.${n} is not in any group`)
  for (const e of s.events ?? []) {
    for (const n of ('nodes' in e ? e.nodes : [])) if (!names.includes(n)) throw new Error(`${path}: event ${e.action} names unknown node ${n}`)
    if ((e.action === 'fill-disk' || e.action === 'free-disk') && e.nodes.some(n => s.groups[n.slice(0, n.lastIndexOf('-'))]?.diskMB == null)) {
      throw new Error(`${path}: ${e.action} needs the node's group to have diskMB`)
    }
  }
  return s
}

export function nodeNames (s: Scenario): string[] {
  return Object.entries(s.groups).flatMap(([g, spec]) => Array.from({ length: spec.count }, (_, i) => `${g}-${i}`))
}

export const DEFAULT_COMMAND = ['{node}', '{testbed}/dist/src/netns/node.js', '--name', '{name}', '--port', '{port}', '--data-dir', '{dataDir}', '--bootstrap', '{bootstrap}']

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
}

export type ScenarioEvent =
  | { atS: number, action: 'kill', nodes: string[] }
  | { atS: number, action: 'restart', nodes: string[] }
  /** every node except the bootstrap peers: SIGKILL, then all start again at the same instant */
  | { atS: number, action: 'join-storm' }
  | { atS: number, action: 'partition', groups: [string, string] }
  | { atS: number, action: 'heal' }

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
   * {name}, {port}, {dataDir}, {bootstrap} (comma-separated multiaddrs), {ip}
   * @default node dist/src/netns/node.js --name {name} --port {port} --data-dir {dataDir} --bootstrap {bootstrap}
   */
  node?: { command?: string[], port?: number, env?: Record<string, string> }
  events?: ScenarioEvent[]
  /** a run fails when the network did not converge within this many seconds of the start or of an event @default 60 */
  convergeTimeoutS?: number
}

export function loadScenario (path: string): Scenario {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Scenario
  if (typeof s.name !== 'string' || s.groups == null || !Array.isArray(s.bootstrap) || typeof s.durationS !== 'number') {
    throw new Error(`${path}: a scenario needs name, durationS, groups and bootstrap`)
  }
  for (const b of s.bootstrap) if (!nodeNames(s).includes(b)) throw new Error(`${path}: bootstrap node ${b} is not in any group`)
  return s
}

export function nodeNames (s: Scenario): string[] {
  return Object.entries(s.groups).flatMap(([g, spec]) => Array.from({ length: spec.count }, (_, i) => `${g}-${i}`))
}

export const DEFAULT_COMMAND = ['{node}', '{testbed}/dist/src/netns/node.js', '--name', '{name}', '--port', '{port}', '--data-dir', '{dataDir}', '--bootstrap', '{bootstrap}']

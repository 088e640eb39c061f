/**
 * The functions with the most self time in a V8 CPU profile (`PROFILE=<file>` of bench/devnet.ts), and for a name
 * pattern, the call chains that lead to it:
 *   node dist/bench/profile-top.js <file.cpuprofile> [top=30] [pattern [depth=6]]
 */
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const [file, topArg, pattern, depthArg] = process.argv.slice(2)
if (file == null) { console.error('usage: profile-top <file.cpuprofile> [top] [pattern [depth]]'); process.exit(2) }
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
const nodes = new Map(p.nodes.map(n => [n.id, n]))
const parent = new Map<number, number>()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const self = new Map<number, number>()
p.samples.forEach((s, i) => self.set(s, (self.get(s) ?? 0) + p.timeDeltas[i]))
const total = [...self.values()].reduce((a, b) => a + b, 0)
const label = (n: ProfileNode): string => `${n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName} ${n.callFrame.url.split('/').slice(-3).join('/')}:${n.callFrame.lineNumber}`
const byName = new Map<string, number>()
for (const [id, us] of self) { const k = label(nodes.get(id)!); byName.set(k, (byName.get(k) ?? 0) + us) }
console.log(`profile ${file}: ${(total / 1000).toFixed(1)} ms of samples`)
for (const [k, us] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 30))) console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${(100 * us / total).toFixed(1).padStart(5)} %  ${k}`)
if (pattern != null) {
  const chains = new Map<string, number>()
  for (const [id, us] of self) {
    if (!label(nodes.get(id)!).includes(pattern)) continue
    const chain: string[] = []
    for (let x = parent.get(id); x != null && chain.length < Number(depthArg ?? 6); x = parent.get(x)) chain.push(label(nodes.get(x)!))
    const k = chain.join(' < ')
    chains.set(k, (chains.get(k) ?? 0) + us)
  }
  console.log(`\ncallers of ${pattern}:`)
  for (const [k, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`${(us / 1000).toFixed(1).padStart(9)} ms  ${k}`)
}

// specs/README.md "Layout of a spec" 4: a spec's protobuf code block MUST match the .proto committed next to the
// reference implementation. Compared definition by definition (message, enum, service), without comments and
// whitespace: every definition of a spec block is the .proto's, and a block that is a whole file (it has `syntax`)
// holds every definition of that .proto.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './run.ts'

/** name -> definition text without comments and with whitespace collapsed */
function definitions (text: string): Map<string, string> {
  const src = text.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ' ')
  const out = new Map<string, string>()
  const re = /\b(message|enum|service) (\w+) \{/g
  for (let m = re.exec(src); m != null; m = re.exec(src)) {
    let depth = 0
    let i = m.index + m[0].length - 1
    for (; i < src.length; i++) {
      if (src[i] === '{') depth++
      else if (src[i] === '}' && --depth === 0) break
    }
    out.set(m[2], src.slice(m.index, i + 1).replace(/ ?([{};=]) ?/g, '$1'))
  }
  return out
}

const protos = readdirSync(join(ROOT, 'packages')).flatMap(pkg => {
  const dir = join(ROOT, 'packages', pkg, 'src', 'pb')
  let files: string[] = []
  try { files = readdirSync(dir).filter(f => f.endsWith('.proto')) } catch {}
  return files.map(f => ({ file: `packages/${pkg}/src/pb/${f}`, defs: definitions(readFileSync(join(dir, f), 'utf8')) }))
})
const blocks = readdirSync(join(ROOT, 'specs'), { withFileTypes: true }).filter(d => d.isDirectory())
  .flatMap(d => readdirSync(join(ROOT, 'specs', d.name)).filter(f => f.endsWith('.md')).map(f => `specs/${d.name}/${f}`))
  .flatMap(md => [...readFileSync(join(ROOT, md), 'utf8').matchAll(/```protobuf\n([\s\S]*?)```/g)].map((m, i) => ({ md, i, text: m[1] })))

/** the blocks of one .proto merged in file order: a later block may extend a message (checkpoints.md adds a field) */
function merged (bs: typeof blocks): Map<string, string> {
  const out = new Map<string, string>()
  for (const b of bs) {
    for (const [name, def] of definitions(b.text)) {
      const had = out.get(name)
      out.set(name, had == null ? def : had.slice(0, -1) + def.slice(def.indexOf('{') + 1))
    }
  }
  return out
}

describe('protobuf blocks of the specs match the committed .proto files', () => {
  // each block belongs to the .proto that defines its first definition
  const byProto = new Map<string, typeof blocks>()
  for (const b of blocks) {
    const first = [...definitions(b.text).keys()][0]
    const file = protos.find(p => p.defs.has(first))?.file ?? `(no committed .proto defines ${first}: ${b.md})`
    byProto.set(file, [...(byProto.get(file) ?? []), b])
  }

  it('finds the blocks of every .proto', () => {
    expect([...byProto.keys()].sort()).toEqual(protos.map(p => p.file).sort())
  })

  it.each([...byProto.entries()].map(([file, bs]) => [`${file} (${bs.map(b => b.md).join(', ')})`, file, bs] as const))('%s', (_, file, bs) => {
    const want = protos.find(p => p.file === file)!.defs
    const got = merged(bs)
    for (const [name, def] of got) expect(def, name).toBe(want.get(name))
    // a block with `syntax` is the whole file: nothing of the .proto is left out
    if (bs.some(b => /\bsyntax\s*=/.test(b.text))) expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
  })
})

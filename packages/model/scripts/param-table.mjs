// Prints the parameter table of a preset as markdown (pasted into specs/model/README.md).
// node_modules/.bin/node packages/model/scripts/param-table.mjs [tiny|small|bootstrap]
import { preset, modelParameters, shardParameters, countParameters, initStd } from '../dist/src/index.js'

const name = process.argv[2] ?? 'tiny'
const config = preset(name)
const owner = (p) => shardParameters(config, { kind: 'embed' }).some(s => s.name === p) ? 'embed' + (config.tieEmbeddings ? ', head' : '') : p.startsWith('blocks.') ? 'blocks' : 'head'
console.log('| # | name | shape `[in, out]` | elements | init std | shard |')
console.log('|---|---|---|---|---|---|')
modelParameters(config).forEach((p, i) => {
  const std = initStd(config, p.name)
  console.log(`| ${i} | \`${p.name}\` | [${p.shape.join(', ')}] | ${countParameters([p])} | ${std === 0 ? '1 (constant)' : std.toPrecision(4)} | ${owner(p.name)} |`)
})
console.log(`\nTotal: ${countParameters(modelParameters(config))} parameters.`)

import { InvalidParametersError } from '@neuroshard/interface'
import { makeAggregator } from './aggregator.js'
import type { Aggregator, CommonInit, PreAggregator, StageDiagnostics } from './types.js'

/**
 * Chain pre-aggregators before an aggregator: `compose(nnm({ f }), trimmedMean({ f }))`. Inputs are validated
 * once (with the policy of `init`, default `'reject'`; `compose({ nonFinite: 'drop' }, …)` drops them); every
 * stage builds new linear combinations of the inputs, so nothing n × d is materialised between stages. The
 * result carries each stage's diagnostics in `stages`.
 */
export function compose (...stages: Array<PreAggregator | Aggregator | CommonInit>): Aggregator {
  let init: CommonInit | undefined
  if (stages.length > 0 && !('name' in stages[0])) init = stages.shift() as CommonInit
  if (stages.length === 0) throw new InvalidParametersError('compose: needs an aggregator')
  const last = stages[stages.length - 1]
  if (!('aggregateSet' in last)) throw new InvalidParametersError('compose: the last stage must be an aggregator')
  const pre = stages.slice(0, -1) as PreAggregator[]
  for (const p of pre) {
    if (!('transformSet' in p)) throw new InvalidParametersError(`compose: ${String((p as { name?: string }).name)} is not a pre-aggregator`)
  }
  const agg = last
  const name = [...pre.map(p => p.name), agg.name].join(' → ')
  return makeAggregator(name, init, (set, context) => {
    const diagnostics: StageDiagnostics[] = []
    for (const p of pre) {
      const out = p.transformSet(set, context)
      set = out.set
      diagnostics.push(out.diagnostics)
    }
    // later stages see the dropped inputs as already accounted for by the first stage's f
    const result = agg.aggregateSet(set, context)
    result.stages = diagnostics
    return result
  })
}

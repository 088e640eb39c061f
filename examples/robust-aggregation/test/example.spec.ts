import { describe, expect, it } from 'vitest'
import { main } from '../src/index.js'

describe('example: robust-aggregation', () => {
  it('sign flipping breaks the mean; the robust rules stay within the honest noise', async () => {
    const lines: string[] = []
    const { errors, honestSpread } = await main(line => lines.push(line))
    const nnmTm = errors['nnm → trimmed mean (f=3)']

    // with no attacker the mean is the reference itself
    expect(errors.mean['no attack']).toBe(0)
    // 3 of 15 peers sending −10 × the honest mean pull the mean to about (12 − 30)/15 − 1 = −2.2 × away
    expect(errors.mean['sign flip ×10']).toBeGreaterThan(2)
    // robust rules under the same attack: closer than a single honest peer's own noise
    for (const name of ['coordinate median', 'trimmed mean (f=3)', 'nnm → trimmed mean (f=3)']) {
      expect(errors[name]['sign flip ×10']).toBeLessThan(honestSpread / 2)
    }
    // Krum returns one honest input: about one honest peer's distance from the mean
    expect(errors['krum (f=3)']['sign flip ×10']).toBeLessThanOrEqual(honestSpread * 1.2)
    // NNM mixes each honest input with its 12 nearest (all honest), so the attackers are filtered out
    expect(nnmTm['sign flip ×10']).toBeLessThan(1e-3)
    // ALIE hides inside the spread: nothing is dragged far, but every rule moves a little
    for (const row of Object.values(errors)) expect(row.ALIE).toBeLessThan(honestSpread)
    expect(lines.some(l => l.startsWith('mean'))).toBe(true)
  })
})

/**
 * `yieldingModel`: a proof re-executor's model whose every step first awaits the node's yield (NetworkNode
 * `yieldTraining`: a validator's re-execution lets the node's inference go first); other members pass through.
 */
import { describe, expect, it } from 'vitest'
import { yieldingModel } from '../../src/ponw/node-ponw.js'

describe('yieldingModel', () => {
  it('awaits yieldTo before each step, keeps the model\'s other members and its this', async () => {
    const events: string[] = []
    class Model {
      #n = 0
      readonly name = 'm'
      async step (x: number): Promise<number> { events.push(`step ${x}`); return x + ++this.#n }
      async close (): Promise<void> { events.push('close') }
    }
    let release: () => void = () => {}
    const yieldTo = async (): Promise<void> => { events.push('yield'); await new Promise<void>(resolve => { release = resolve }) }
    const m = yieldingModel(new Model(), yieldTo)
    const first = m.step(10)
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(events).toEqual(['yield'])
    release()
    expect(await first).toBe(11)
    const second = m.step(20)
    await new Promise(resolve => setTimeout(resolve, 0))
    release()
    expect(await second).toBe(22)
    await m.close()
    expect(m.name).toBe('m')
    expect(events).toEqual(['yield', 'step 10', 'yield', 'step 20', 'close'])
  })
})

import { TypedEventEmitter } from 'main-event'
import { describe, expect, it } from 'vitest'
import { StopMatcher, TrainingRecorder, parseCompletionRequest } from '../../src/index.js'

describe('StopMatcher', () => {
  it('passes text through when there are no stop sequences', () => {
    const m = new StopMatcher([])
    expect(['a', 'b', 'c'].map(p => m.push(p)).join('') + m.flush()).toBe('abc')
  })

  it('cuts at a stop sequence split across pieces and holds back only a possible prefix', () => {
    const m = new StopMatcher(['\n\n', 'END'])
    expect(m.push('hello E')).toBe('hello ')
    expect(m.push('N')).toBe('')
    expect(m.push('D and more')).toBe('')
    expect(m.stopped).toBe(true)
    expect(m.flush()).toBe('')
  })

  it('releases held-back text that did not become a stop sequence', () => {
    const m = new StopMatcher(['END'])
    expect(m.push('E')).toBe('')
    expect(m.push('x')).toBe('Ex')
    expect(m.push('EN')).toBe('')
    expect(m.flush()).toBe('EN')
  })

  it('cuts at the earliest of several stop sequences', () => {
    const m = new StopMatcher(['bb', 'a'])
    expect(m.push('xxbbya')).toBe('xx')
  })
})

describe('parseCompletionRequest', () => {
  it('fills OpenAI defaults and maps the options', () => {
    const r = parseCompletionRequest({ model: 'm', prompt: 'hi', stop: 'x' }, false, { maxTokens: 100 })
    expect(r).toEqual({ model: 'm', prompt: 'hi', stream: false, maxTokens: 16, temperature: 1, topP: 1, topK: 0, stop: ['x'] })
    const c = parseCompletionRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }], max_completion_tokens: 5, seed: 2, stream: true }, true, { maxTokens: 100 })
    expect(c).toMatchObject({ prompt: [{ role: 'user', content: 'ab' }], maxTokens: 5, seed: 2, stream: true })
  })

  it('names the bad parameter', () => {
    const param = (body: unknown, chat = false): string | null => {
      try { parseCompletionRequest(body, chat, { maxTokens: 100 }) } catch (err: any) { expect(err.name).toBe('InvalidRequestError'); return err.param }
      return 'accepted'
    }
    expect(param([])).toBe(null)
    expect(param({ model: 'm', prompt: 'x', max_tokens: 101 })).toBe('max_tokens')
    expect(param({ model: 'm', prompt: 'x', top_k: 1.5 })).toBe('top_k')
    expect(param({ model: 'm', prompt: 'x', stop: [''] })).toBe('stop')
    expect(param({ model: 'm', messages: [{ role: 'user' }] }, true)).toBe('messages[0].content')
    expect(param({ model: 'm', messages: Array.from({ length: 257 }, () => ({ role: 'user', content: 'x' })) }, true)).toBe('messages')
    // a ledger payment is the 64-hex-digit id of a message
    expect(param({ model: 'm', prompt: 'x', neuroshard_payment: 'ab'.repeat(31) })).toBe('neuroshard_payment')
    expect(param({ model: 'm', prompt: 'x', neuroshard_payment: 'AB'.repeat(32) })).toBe('neuroshard_payment')
    expect(param({ model: 'm', prompt: 'x', neuroshard_payment: 7 })).toBe('neuroshard_payment')
    expect(parseCompletionRequest({ model: 'm', prompt: 'x', neuroshard_payment: 'ab'.repeat(32) }, false, { maxTokens: 100 }).payment).toBe('ab'.repeat(32))
  })
})

describe('TrainingRecorder', () => {
  it('keeps rounds, inner steps and curves, with bounded memory', () => {
    let t = 0
    const r = new TrainingRecorder({ innerSteps: 4, maxPoints: 100, now: () => ++t })
    for (let i = 0; i < 1000; i++) {
      r.recordStep(10 - i / 100)
      if ((i + 1) % 4 === 0) { r.recordValidation(10 - i / 100); r.recordRound() }
    }
    const p = r.progress()
    expect(p).toMatchObject({ round: 250, innerStep: 0, innerSteps: 4, totalSteps: 1000, active: true })
    expect(p.loss.length).toBeLessThanOrEqual(100)
    expect(p.validation.length).toBeLessThanOrEqual(100)
    // the round list keeps the newest 200 of the 250 rounds
    expect(p.rounds).toHaveLength(200)
    expect(p.rounds[0].round).toBe(51)
    expect(p.rounds.at(-1)!.round).toBe(250)
    // thinned, still ordered, first and newest points kept
    expect(p.loss[0].step).toBe(1)
    expect(p.loss.at(-1)!.step).toBe(1000)
    expect(p.loss.every((x, i) => i === 0 || x.step > p.loss[i - 1].step)).toBe(true)
    expect(() => { r.recordStep(Number.NaN) }).toThrow(/finite/)
  })
})

describe('TrainingRecorder.followDiLoCo', () => {
  it('records each applied round with its accepted and rejected contributions, until unfollowed', () => {
    const diloco = new TypedEventEmitter<{ 'diloco:round': CustomEvent<{ round: number, contributions: Array<{ accepted: boolean }> }> }>()
    const r = new TrainingRecorder({ innerSteps: 2 })
    const stop = r.followDiLoCo(diloco)
    r.recordStep(3)
    r.recordStep(2.5)
    diloco.safeDispatchEvent('diloco:round', { detail: { round: 0, contributions: [{ accepted: true }, { accepted: true }, { accepted: false }] } })
    expect(r.progress()).toMatchObject({ round: 1, innerStep: 0, totalSteps: 2, rounds: [{ round: 1, accepted: 2, rejected: 1 }] })
    stop()
    diloco.safeDispatchEvent('diloco:round', { detail: { round: 1, contributions: [] } })
    expect(r.progress().round).toBe(1)
  })
})

import { describe, expect, it } from 'vitest'
import { createLocalBackend, networkCompletionSource, startApiServer } from '../../src/index.js'
import type { TokenStreamGenerate } from '../../src/index.js'

// a stand-in for the pipeline Driver's generate(): records what it was asked, streams "tok0 tok1 …" then <|eos|>
const EOS = 1
const tokenizer = { eosId: EOS, encode: (text: string) => [...text].map(c => c.charCodeAt(0)) }

describe('networkCompletionSource (the pipeline adapter)', () => {
  it('lays out prompts, maps sampling options, stops at <|eos|>, and serves through the API as owned by the network', async () => {
    const calls: Array<{ prompt: number[], options: any }> = []
    const generate: TokenStreamGenerate = async function * (prompt, options) {
      calls.push({ prompt, options })
      for (let i = 0; i < 3; i++) yield { id: 100 + i, text: ` tok${i}` }
      yield { id: EOS, text: '' }
      yield { id: 200, text: ' after-eos' }
    }
    const source = networkCompletionSource({ modelId: 'neurollm-devnet', contextLength: 256, tokenizer, generate })
    const server = await startApiServer({ backend: createLocalBackend({ generator: source }), port: 0, dashboard: false, defaultMetrics: false })
    try {
      const models = await (await fetch(server.url + '/v1/models')).json() as any
      expect(models.data).toEqual([expect.objectContaining({ id: 'neurollm-devnet', owned_by: 'network', context_length: 256 })])
      const res = await fetch(server.url + '/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'neurollm-devnet', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }], max_tokens: 9, temperature: 0.5, top_p: 0.9, top_k: 7, seed: 42 })
      })
      const body = await res.json() as any
      expect(body.choices[0]).toMatchObject({ message: { role: 'assistant', content: ' tok0 tok1 tok2' }, finish_reason: 'stop' })
      expect(body.usage.prompt_tokens).toBe(7)
      expect(calls).toHaveLength(1)
      expect(calls[0].prompt).toEqual([EOS, 104, 105, EOS, 121, 111, EOS])
      expect(calls[0].options).toMatchObject({ maxNewTokens: 9, temperature: 0.5, topP: 0.9, topK: 7, seed: 42, stopTokens: [EOS] })
      expect(calls[0].options.signal).toBeInstanceOf(AbortSignal)
    } finally {
      await server.close()
    }
  })
})

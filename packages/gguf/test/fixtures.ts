import { buildModelGraph, modelParameters, preset } from '@neuroshard/model'
import type { ModelConfig } from '@neuroshard/model'
import { createShardExecutor, int64, warmupCosine } from '@neuroshard/runtime'
import { trainBpe } from '@neuroshard/tokenizer'
import type { BpeTokenizer } from '@neuroshard/tokenizer'

/** A few paragraphs of plain English to train a tokenizer and a tiny model on */
export const TEXT = [
  'The river runs past the old mill and under the stone bridge, where children throw sticks into the water and race to the other side to see whose stick comes out first.',
  'In the morning the baker opens the shop at six. The bread is still warm, and the smell of it fills the whole street before the first customers arrive.',
  'A small network of computers can train a language model together if each machine holds a slice of the layers and passes activations to the next one.',
  'She wrote the numbers in a notebook: one, two, three, four, five, six, seven, eight, nine and ten, then added them up and got fifty-five.',
  'When the rain stopped, the garden was full of snails, and the cat watched them from the window for an hour without moving at all.',
  'Every weight of the model is read once for each new token, so the speed of decoding depends on how fast the memory can be streamed.'
]

export interface TrainedModel {
  config: ModelConfig
  parameters: Map<string, Float32Array>
  tokenizer: BpeTokenizer
  ids: number[]
}

/** `tiny`-sized model (vocabulary padded past the tokenizer's) trained briefly on {@link TEXT} */
export async function trainedModel (overrides: Partial<ModelConfig> = {}, steps = 150): Promise<TrainedModel> {
  const tokenizer = trainBpe(TEXT, { vocabSize: 400 })
  const ids = TEXT.flatMap(t => tokenizer.encode(t + '\n'))
  const config: ModelConfig = { ...preset('tiny'), vocabSize: 416, ...overrides }
  const specs = modelParameters(config)
  const ex = await createShardExecutor({
    config,
    role: { kind: 'blocks', start: 0, end: config.nLayers },
    parameterSpecs: specs,
    seed: 3,
    graphs: { backward: buildModelGraph(config, 'backward').bytes },
    optimizer: { schedule: warmupCosine({ peakLr: 1e-2, warmupSteps: 10, totalSteps: steps }), weightDecay: 0 }
  })
  try {
    const batch = 4
    const seq = 48
    let rng = 7
    for (let step = 0; step < steps; step++) {
      const x = new BigInt64Array(batch * seq)
      const y = new BigInt64Array(batch * seq)
      for (let b = 0; b < batch; b++) {
        rng = (rng * 1103515245 + 12345) >>> 0
        const start = rng % (ids.length - seq - 1)
        for (let t = 0; t < seq; t++) { x[b * seq + t] = BigInt(ids[start + t]); y[b * seq + t] = BigInt(ids[start + t + 1]) }
      }
      await ex.backward({ input_ids: int64(x, [batch, seq]), targets: int64(y, [batch, seq]) })
      await ex.step()
    }
    return { config, parameters: await ex.getParameters(), tokenizer, ids }
  } finally {
    await ex.close()
  }
}

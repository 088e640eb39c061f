/**
 * Writes a small seeded English-like corpus (templates over word lists, with learnable structure) for
 * scenarios that run `neuroshard start`: every node builds the same tokenizer and genesis shards from it in
 * seconds, where the default corpus (nlp-corpus, 9 MB) would take each node minutes on a loaded machine.
 *
 *   node dist/src/netns/corpus.js <out.txt> [documents=1500]
 */
import { writeFileSync } from 'node:fs'

const SUBJECTS = ['the driver', 'a worker', 'the validator', 'every node', 'the network', 'a peer', 'the router', 'the ledger', 'a replica', 'the pool']
const VERBS = ['sends', 'holds', 'checks', 'trains', 'serves', 'stores', 'signs', 'routes', 'finds', 'keeps']
const OBJECTS = ['the activations', 'a slice of the model', 'the gradients', 'the cache', 'the weights', 'a proof of work', 'the tokens', 'the loss', 'a span of layers', 'the reward']
const ENDINGS = ['for the next hop.', 'every round.', 'with its peers.', 'before the step.', 'on the way back.', 'at the head.', 'in the pipeline.', 'for the swarm.']

export function corpus (documents: number, seed = 1): string[] {
  let x = seed >>> 0
  const rand = (n: number): number => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x % n }
  const docs: string[] = []
  for (let d = 0; d < documents; d++) {
    const sentences: string[] = []
    const n = 2 + rand(3)
    for (let i = 0; i < n; i++) {
      const s = `${SUBJECTS[rand(SUBJECTS.length)]} ${VERBS[rand(VERBS.length)]} ${OBJECTS[rand(OBJECTS.length)]} ${ENDINGS[rand(ENDINGS.length)]}`
      sentences.push(s[0].toUpperCase() + s.slice(1))
    }
    docs.push(sentences.join(' '))
  }
  return docs
}

if (process.argv[2] != null) writeFileSync(process.argv[2], corpus(Number(process.argv[3] ?? 1500)).join('\n\n') + '\n')

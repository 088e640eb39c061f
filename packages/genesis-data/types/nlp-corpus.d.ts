// nlp-corpus ships no types; this is the part of its API we use
declare module 'nlp-corpus' {
  /** Every sentence of the corpus, in the package's fixed order */
  export function all (): string[]
  /** The first `max` sentences */
  export function some (max?: number): string[]
  const corpus: { all: typeof all, some: typeof some }
  export default corpus
}

/** A `tokenizer.json` that cannot be read, or that uses a configuration this package does not implement */
export class TokenizerFormatError extends Error {
  static override name = 'TokenizerFormatError'
  override name = 'TokenizerFormatError'
}

/** An id passed to `decode` that is not in the vocabulary */
export class UnknownTokenIdError extends Error {
  static override name = 'UnknownTokenIdError'
  override name = 'UnknownTokenIdError'
}

/**
 * Errors specific to `@neuroshard/host`. Shared errors (InvalidParametersError, …) come from
 * `@neuroshard/interface`.
 */

/**
 * The identity key file is readable or writable by someone other than its owner. The host refuses to
 * use it rather than silently tightening it: a key that others could read must be treated as leaked.
 */
export class InsecureIdentityKeyError extends Error {
  static override name = 'InsecureIdentityKeyError'
  override name = 'InsecureIdentityKeyError'
}

/** The identity key file exists but does not hold a valid protobuf-encoded private key */
export class MalformedIdentityKeyError extends Error {
  static override name = 'MalformedIdentityKeyError'
  override name = 'MalformedIdentityKeyError'
}

/** A private-swarm key is not in the `/key/swarm/psk/1.0.0/` base16 format with 32 key bytes */
export class InvalidSwarmKeyError extends Error {
  static override name = 'InvalidSwarmKeyError'
  override name = 'InvalidSwarmKeyError'
}

/** A NeuroShard DHT record (key or value) breaks the rules of specs/host/README.md */
export class InvalidRecordError extends Error {
  static override name = 'InvalidRecordError'
  override name = 'InvalidRecordError'
}

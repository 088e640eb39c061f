import { generateKey } from '@libp2p/pnet'
import { InvalidSwarmKeyError } from './errors.js'

/** Header lines of the swarm key format shared with go-libp2p / IPFS private networks */
const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
const SWARM_KEY_ENCODING = '/base16/'
/** Bytes of a generated key file: header, encoding line and 64 hex characters */
const SWARM_KEY_FILE_LENGTH = 95

/**
 * Generates a new private-swarm key in the `/key/swarm/psk/1.0.0/` text format (95 bytes, 32 random key
 * bytes in base16). Every host of the swarm must be given the same bytes. Treat it like a password.
 */
export function generateSwarmKey (): Uint8Array {
  const key = new Uint8Array(SWARM_KEY_FILE_LENGTH)
  generateKey(key)
  return key
}

/**
 * Validates a swarm key (bytes or text, for example read from a `swarm.key` file) and returns it in the
 * canonical form `@libp2p/pnet` expects: `/key/swarm/psk/1.0.0/\n/base16/\n<64 hex chars>`.
 * Trailing whitespace and CRLF line endings are tolerated.
 *
 * @throws InvalidSwarmKeyError when the header, encoding or key length is wrong
 */
export function parseSwarmKey (key: Uint8Array | string): Uint8Array {
  const text = typeof key === 'string' ? key : new TextDecoder('utf-8', { fatal: false }).decode(key)
  const lines = text.replace(/\r\n/g, '\n').trim().split('\n').map(l => l.trim())
  if (lines.length !== 3) {
    throw new InvalidSwarmKeyError(`Swarm key must have 3 lines, got ${lines.length}`)
  }
  if (lines[0] !== SWARM_KEY_HEADER) {
    throw new InvalidSwarmKeyError(`Swarm key must start with ${SWARM_KEY_HEADER}`)
  }
  if (lines[1] !== SWARM_KEY_ENCODING) {
    throw new InvalidSwarmKeyError(`Only the ${SWARM_KEY_ENCODING} swarm key encoding is supported`)
  }
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2])) {
    throw new InvalidSwarmKeyError('Swarm key must be 32 bytes written as 64 hex characters')
  }
  return new TextEncoder().encode(`${SWARM_KEY_HEADER}\n${SWARM_KEY_ENCODING}\n${lines[2].toLowerCase()}`)
}

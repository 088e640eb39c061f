import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { DHT_RECORD_NAMESPACE } from './constants.js'
import { InvalidRecordError } from './errors.js'
import { decodeNeuroShardRecord, encodeNeuroShardRecord } from './records.js'
import type { NeuroShardHost } from './host.js'
import type { NeuroShardRecord } from './records.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'

/** Result of {@link putNeuroShardRecord} */
export interface PutRecordResult {
  /** Remote peers that confirmed storing the record */
  storedBy: PeerId[]
}

/**
 * Validates a NeuroShard record locally (format and the namespace validator the host was created with),
 * stores it in the local DHT store and on the closest DHT servers.
 *
 * kad-dht's own `put` does not validate before storing locally and reports remote refusals only as query
 * events; this helper refuses invalid records up front and reports which peers stored the record.
 *
 * @throws InvalidRecordError when the record is invalid
 */
export async function putNeuroShardRecord (host: NeuroShardHost, key: Uint8Array, record: NeuroShardRecord, options?: AbortOptions): Promise<PutRecordResult> {
  const value = encodeNeuroShardRecord(record)
  const validate = host.services.dht.validators[DHT_RECORD_NAMESPACE]
  if (validate == null) {
    throw new InvalidRecordError('The host has no NeuroShard record validator')
  }
  try {
    await validate(key, value, options)
  } catch (err: any) {
    if (err.name === 'InvalidRecordError') {
      throw err
    }
    throw new InvalidRecordError(`Record refused by its validator: ${err.message}`)
  }
  const storedBy: PeerId[] = []
  for await (const event of host.services.dht.put(key, value, options)) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE' && event.record != null &&
      uint8ArrayEquals(event.record.value, value)) {
      storedBy.push(event.from)
    }
  }
  return { storedBy }
}

/**
 * Reads the best NeuroShard record for `key` from the DHT (highest sequence, see the spec); every value
 * received is checked by the validators before it is considered.
 *
 * @throws NotFoundError (from libp2p) when no peer has a valid record
 */
export async function getNeuroShardRecord (host: NeuroShardHost, key: Uint8Array, options?: AbortOptions): Promise<NeuroShardRecord> {
  let value: Uint8Array
  try {
    value = await host.contentRouting.get(key, options)
  } catch (err: any) {
    // libp2p asks every content router with Promise.any; with one router, surface its own error
    if (err instanceof AggregateError && err.errors.length === 1) {
      throw err.errors[0]
    }
    throw err
  }
  return decodeNeuroShardRecord(value)
}

import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { canonicalConfigJson, countParameters, modelParameters, validateConfig } from '@neuroshard/model'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { MAX_RECORD_SIZE } from './constants.js'
import { ForgedLayerRecordError, InvalidLayerRecordError, OversizedLayerRecordError, UnsupportedArchitectureError } from './errors.js'
import { ArchitectureRecord as ArchitectureRecordPb } from './pb/layer-pool.js'
import { EnvelopePayload } from './records.js'
import { genesisSlotParameters, slotCount, slotParameters } from './slots.js'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { ModelConfig } from '@neuroshard/model'

/**
 * Model versions (specs/layer-pool/README.md, "Model versions"). A network's model is named by its
 * genesis: (model id, config, init seed) is version 1, so every node computes the same initial weights and
 * hashes and the first nodes need no transfer. Growing the model is a new version whose config adds blocks
 * at the end of the stack; the new blocks start with zero output projections (`attn.wo`, `mlp.w_down`), so
 * each is the identity on the residual stream and the grown model computes exactly what the old one did:
 * serving never breaks while the network grows.
 */

/** Signed-envelope domain of architecture records */
export const ARCHITECTURE_RECORD_DOMAIN = 'neuroshard-layer-pool-arch'
/** Signed-envelope payload type of architecture records: 0x03 0x51 */
export const ARCHITECTURE_RECORD_PAYLOAD_TYPE = Uint8Array.of(0x03, 0x51)

/** One version of a network's model */
export interface ModelArchitecture {
  modelId: string
  version: number
  config: ModelConfig
  initSeed: bigint
  /** 0 for the genesis */
  parentVersion: number
  issuedAt: number
}

/** What a node can run: versions with more parameters (or a longer context) are refused */
export interface ArchitectureLimits {
  /** @default Infinity */
  maxParameters?: number
  /** @default Infinity */
  maxSeqLen?: number
}

/** Version 1 of a network's model */
export function genesisArchitecture (modelId: string, config: ModelConfig, initSeed: number | bigint = 0, issuedAt = 0): ModelArchitecture {
  return { modelId, version: 1, config: validateConfig({ ...config }), initSeed: BigInt(initSeed), parentVersion: 0, issuedAt }
}

/**
 * The next version: `nLayers` grown to `nLayers`, everything else equal.
 *
 * @throws UnsupportedArchitectureError when `nLayers` does not grow
 */
export function growArchitecture (parent: ModelArchitecture, nLayers: number, issuedAt = 0): ModelArchitecture {
  const child: ModelArchitecture = { ...parent, version: parent.version + 1, parentVersion: parent.version, config: validateConfig({ ...parent.config, nLayers }), issuedAt }
  checkGrowth(parent, child)
  return child
}

/**
 * The growth rule: same model id and seed, version + 1, the same config but for more blocks.
 *
 * @throws UnsupportedArchitectureError
 */
export function checkGrowth (parent: ModelArchitecture, child: ModelArchitecture): void {
  if (child.modelId !== parent.modelId || child.initSeed !== parent.initSeed) throw new UnsupportedArchitectureError('a growth keeps the model id and init seed')
  if (child.version !== parent.version + 1 || child.parentVersion !== parent.version) throw new UnsupportedArchitectureError(`version ${child.version} does not follow ${parent.version}`)
  const { nLayers: a, ...restParent } = parent.config
  const { nLayers: b, ...restChild } = child.config
  if (b <= a) throw new UnsupportedArchitectureError(`a growth adds blocks (${a} → ${b})`)
  if (JSON.stringify(restParent) !== JSON.stringify({ ...restParent, ...restChild }) || Object.keys(restChild).length !== Object.keys(restParent).length) {
    throw new UnsupportedArchitectureError('a growth changes nothing but the number of blocks')
  }
}

/**
 * Whether this node can run an architecture.
 *
 * @throws UnsupportedArchitectureError naming the limit
 */
export function checkArchitectureLimits (architecture: ModelArchitecture, limits: ArchitectureLimits = {}): void {
  const params = countParameters(modelParameters(architecture.config))
  if (params > (limits.maxParameters ?? Number.POSITIVE_INFINITY)) {
    throw new UnsupportedArchitectureError(`version ${architecture.version} has ${params} parameters; this node runs at most ${limits.maxParameters}`)
  }
  if (architecture.config.maxSeqLen > (limits.maxSeqLen ?? Number.POSITIVE_INFINITY)) {
    throw new UnsupportedArchitectureError(`version ${architecture.version} needs context ${architecture.config.maxSeqLen}; this node runs at most ${limits.maxSeqLen}`)
  }
}

/**
 * A slot's weights in a grown version, from the parent's weights: embed, existing blocks and head carry
 * over (the head moves from slot L+1 to slot L'+1); a new block gets the genesis init for its name and seed
 * with `attn.wo` and `mlp.w_down` set to zero, so it passes its input through unchanged.
 *
 * @param parentSlot returns the parent's weights of a parent slot (the caller's store or a transfer)
 */
export function grownSlotParameters (parent: ModelArchitecture, child: ModelArchitecture, slot: number, parentSlot: (slot: number) => Map<string, Float32Array>): Map<string, Float32Array> {
  checkGrowth(parent, child)
  const L = parent.config.nLayers
  if (slot === 0 || (slot >= 1 && slot <= L)) return copyOf(parentSlot(slot), slotParameters(child.config, slot).map(s => s.name))
  if (slot === slotCount(child.config) - 1) return copyOf(parentSlot(L + 1), slotParameters(child.config, slot).map(s => s.name))
  const fresh = genesisSlotParameters(child.config, slot, child.initSeed)
  for (const [name, w] of fresh) {
    if (name.endsWith('.attn.wo') || name.endsWith('.mlp.w_down')) w.fill(0)
  }
  return fresh
}

function copyOf (params: Map<string, Float32Array>, names: string[]): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>()
  for (const name of names) {
    const w = params.get(name)
    if (w == null) throw new UnsupportedArchitectureError(`parent weights lack ${name}`)
    out.set(name, w.slice())
  }
  return out
}

/** Encodes an architecture record's payload */
export function encodeArchitecture (architecture: ModelArchitecture): Uint8Array {
  validateConfig({ ...architecture.config })
  return ArchitectureRecordPb.encode({
    modelId: architecture.modelId,
    version: architecture.version,
    configJson: canonicalConfigJson(architecture.config),
    initSeed: architecture.initSeed,
    parentVersion: architecture.parentVersion,
    issuedAtMs: BigInt(architecture.issuedAt)
  })
}

/** Signs an architecture record (who may sign which version is the network's policy, see `openArchitecture`) */
export async function signArchitecture (architecture: ModelArchitecture, privateKey: PrivateKey): Promise<Uint8Array> {
  return (await RecordEnvelope.seal(new EnvelopePayload(ARCHITECTURE_RECORD_DOMAIN, ARCHITECTURE_RECORD_PAYLOAD_TYPE, encodeArchitecture(architecture)), privateKey)).marshal()
}

/**
 * Opens a signed architecture record: size, canonical encoding, signature, a signer among `authorities`,
 * a valid config, and (with `parent`) the growth rule.
 *
 * @throws OversizedLayerRecordError, InvalidLayerRecordError, ForgedLayerRecordError, UnsupportedArchitectureError
 */
export async function openArchitecture (bytes: Uint8Array, options: { authorities: PeerId[], parent?: ModelArchitecture, limits?: ArchitectureLimits }): Promise<ModelArchitecture> {
  if (bytes.byteLength > MAX_RECORD_SIZE) throw new OversizedLayerRecordError(`architecture record is ${bytes.byteLength} bytes`)
  let envelope: RecordEnvelope
  try {
    envelope = RecordEnvelope.createFromProtobuf(bytes)
  } catch (err: any) {
    throw new InvalidLayerRecordError(`not a signed envelope: ${err.message}`)
  }
  if (!uint8ArrayEquals(envelope.payloadType, ARCHITECTURE_RECORD_PAYLOAD_TYPE)) throw new InvalidLayerRecordError('not an architecture record')
  if (!(await envelope.validate(ARCHITECTURE_RECORD_DOMAIN).catch(() => false))) throw new ForgedLayerRecordError('the architecture record signature does not verify')
  const signer = peerIdFromPublicKey(envelope.publicKey)
  if (!options.authorities.some(a => a.equals(signer))) throw new ForgedLayerRecordError(`${signer.toString()} may not publish architecture versions of this network`)
  let pb: ArchitectureRecordPb
  let config: ModelConfig
  try {
    pb = ArchitectureRecordPb.decode(envelope.payload)
    config = validateConfig(JSON.parse(pb.configJson))
  } catch (err: any) {
    throw new InvalidLayerRecordError(`malformed architecture record: ${err.message}`)
  }
  const architecture: ModelArchitecture = {
    modelId: pb.modelId, version: pb.version, config, initSeed: pb.initSeed, parentVersion: pb.parentVersion, issuedAt: Number(pb.issuedAtMs)
  }
  if (!uint8ArrayEquals(encodeArchitecture(architecture), envelope.payload)) throw new InvalidLayerRecordError('the architecture record is not canonically encoded')
  if (options.parent != null) checkGrowth(options.parent, architecture)
  checkArchitectureLimits(architecture, options.limits)
  return architecture
}

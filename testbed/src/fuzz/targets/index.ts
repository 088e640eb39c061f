import { hostRecordsTarget } from './host-records.js'
import { layerRecordsTarget } from './layer-records.js'
import { layerTransferTarget } from './layer-transfer.js'
import { pipelineTarget } from './pipeline.js'
import { ledgerGossipTarget, ledgerSyncTarget } from './ledger.js'
import { dilocoFetchTarget, dilocoGossipTarget, dilocoPayloadTarget } from './diloco.js'
import type { FuzzTarget } from '../engine.js'

export interface TargetEntry {
  name: string
  /** the real target */
  make(): FuzzTarget
  /** the same inputs against a deliberately vulnerable handler (accepts everything): must be caught */
  vulnerable(): FuzzTarget
}

export const TARGETS: TargetEntry[] = [
  { name: 'host-records', make: () => hostRecordsTarget(), vulnerable: () => hostRecordsTarget({ vulnerable: true }) },
  { name: 'layer-records', make: () => layerRecordsTarget(), vulnerable: () => layerRecordsTarget({ vulnerable: true }) },
  { name: 'layer-transfer', make: () => layerTransferTarget(), vulnerable: () => layerTransferTarget({ vulnerable: true }) },
  { name: 'diloco-gossip', make: () => dilocoGossipTarget(), vulnerable: () => dilocoGossipTarget({ vulnerable: true }) },
  { name: 'diloco-payload', make: () => dilocoPayloadTarget(), vulnerable: () => dilocoPayloadTarget({ vulnerable: true }) },
  { name: 'diloco-fetch', make: () => dilocoFetchTarget(), vulnerable: () => dilocoFetchTarget({ vulnerable: true }) },
  { name: 'ledger-gossip', make: () => ledgerGossipTarget(), vulnerable: () => ledgerGossipTarget({ vulnerable: true }) },
  { name: 'ledger-sync', make: () => ledgerSyncTarget(), vulnerable: () => ledgerSyncTarget({ vulnerable: true }) },
  { name: 'pipeline', make: () => pipelineTarget(), vulnerable: () => pipelineTarget({ vulnerable: true }) }
]

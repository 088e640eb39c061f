/**
 * @packageDocumentation
 *
 * The NeuroShard reference node: the `neuroshard` CLI, the network node (`NetworkNode`: layer pool + pipeline +
 * DiLoCo over one libp2p host), the devnet that trains and serves (`startNetworkDevnet`), the HTTP API and dashboard.
 */

export * from './constants.js'
export { startDevnet, transportName } from './devnet.js'
export type { Devnet, DevnetOptions, DevnetSnapshot, DevnetNodeStatus, DevnetConnection, DevnetEvents } from './devnet.js'
export { devnetCommand, formatPeerTable, DEVNET_USAGE } from './commands/devnet.js'
export type { CommandIO } from './commands/devnet.js'
export * from './api/index.js'
export { loadDashboard, dashboardDir } from './dashboard/assets.js'
export type { DashboardAsset } from './dashboard/assets.js'
export { walletCommand, WALLET_USAGE } from './commands/wallet.js'
export type { WalletIO } from './commands/wallet.js'
export { serveCommand, SERVE_USAGE } from './commands/serve.js'
export { NetworkNode, localTrainStep, modelLoss, DEFAULT_INNER_STEPS, DEFAULT_VALIDATION_WAIT_MS, DEFAULT_NODE_BATCH_SIZE, DEFAULT_NODE_SEQ_LEN, DEFAULT_SHARDS_PER_ROUND } from './network/node.js'
export type { NetworkNodeInit, NetworkNodeEvents, NetworkHost, NetworkValidation, NetworkWeights, NodeData, RoundDetail } from './network/node.js'
export { startNetworkDevnet, halfModelMemory, DEFAULT_NETWORK_DEVNET_NODES } from './network/devnet.js'
export type { NetworkDevnet, NetworkDevnetInit } from './network/devnet.js'
export { trainingChains, trainingPeers, chainOf, slotTrainers } from './network/chains.js'
export type { TrainingChain, ChainHop, ServedSpan } from './network/chains.js'
export { pipelineTokenizer } from './network/tokenizer.js'
export type { StreamingTokenizer } from './network/tokenizer.js'
export { devnetCommand as networkDevnetCommand, startCommand, DEVNET_USAGE as NETWORK_DEVNET_USAGE, START_USAGE } from './commands/network.js'

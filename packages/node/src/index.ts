/**
 * @packageDocumentation
 *
 * The NeuroShard reference node: the `neuroshard` CLI and a library API for a local devnet.
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

/**
 * @packageDocumentation
 *
 * Who holds which slice of NeuroLLM (specs/layer-pool/README.md).
 */

export * from './constants.js'

/**
 * @packageDocumentation
 *
 * Public types, typed errors and protocol id constants shared by all `@neuroshard/*` packages.
 */

export * from './errors.js'
export * from './protocols.js'

#!/usr/bin/env node
// The allocator settings first (launcher.ts): they need a restart of the process, which is cheapest before the
// CLI and its dependencies are loaded
import { applyAllocatorSettings } from './launcher.js'

if (applyAllocatorSettings()) await import('./cli.js')

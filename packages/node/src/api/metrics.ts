import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { NodeBackend } from './backend.js'

/**
 * The node's Prometheus metrics, built with `prom-client` (the standard Prometheus client for Node.js),
 * in a registry of their own (several nodes in one process do not share counters). Names follow
 * `neuroshard_<pkg>_<what>_total|_seconds`; gauges read the backend at scrape time.
 */
export class NodeMetrics {
  readonly registry: Registry
  readonly httpRequests: Counter<'route' | 'method' | 'status'>
  readonly httpSeconds: Histogram<'route'>
  readonly generatedTokens: Counter<'endpoint'>
  readonly completions: Counter<'endpoint' | 'outcome'>
  readonly firstTokenSeconds: Histogram<'endpoint'>
  readonly activeSessions: Gauge

  constructor (backend: NodeBackend, options: { defaultMetrics?: boolean } = {}) {
    const registry = this.registry = new Registry()
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
    this.httpRequests = new Counter({ name: 'neuroshard_node_http_requests_total', help: 'HTTP API requests answered', labelNames: ['route', 'method', 'status'], registers: [registry] })
    this.httpSeconds = new Histogram({ name: 'neuroshard_node_http_request_seconds', help: 'Time to answer an HTTP API request (whole stream for SSE)', labelNames: ['route'], buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60], registers: [registry] })
    this.generatedTokens = new Counter({ name: 'neuroshard_node_generated_tokens_total', help: 'Tokens generated for API completions', labelNames: ['endpoint'], registers: [registry] })
    this.completions = new Counter({ name: 'neuroshard_node_completions_total', help: 'Completion requests by outcome (stop, length, aborted, error)', labelNames: ['endpoint', 'outcome'], registers: [registry] })
    this.firstTokenSeconds = new Histogram({ name: 'neuroshard_node_time_to_first_token_seconds', help: 'Time from request to the first generated token', labelNames: ['endpoint'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [registry] })
    this.activeSessions = new Gauge({ name: 'neuroshard_node_inference_sessions', help: 'Completion requests generating now', registers: [registry] })

    new Gauge({
      name: 'neuroshard_node_uptime_seconds',
      help: 'Seconds since the node started',
      registers: [registry],
      async collect () { this.set((await backend.status()).uptimeSeconds) }
    })
    new Gauge({
      name: 'neuroshard_node_peers',
      help: 'Peers with an open connection',
      registers: [registry],
      async collect () { this.set((await backend.peers()).peers.length) }
    })
    new Gauge({
      name: 'neuroshard_layer_pool_live_replicas',
      help: 'Live replicas of each slot as this node sees the swarm',
      labelNames: ['slot'],
      registers: [registry],
      async collect () {
        this.reset()
        try {
          for (const s of (await backend.layers()).slots) this.set({ slot: String(s.slot) }, s.live)
        } catch {}
      }
    })
    new Gauge({
      name: 'neuroshard_diloco_round',
      help: 'Current DiLoCo round',
      registers: [registry],
      async collect () { try { this.set((await backend.training()).round) } catch {} }
    })
    new Gauge({
      name: 'neuroshard_diloco_inner_step',
      help: 'Inner steps done in the current DiLoCo round',
      registers: [registry],
      async collect () { try { this.set((await backend.training()).innerStep) } catch {} }
    })
    new Gauge({
      name: 'neuroshard_diloco_steps',
      help: 'Inner steps done since the node started',
      registers: [registry],
      async collect () { try { this.set((await backend.training()).totalSteps) } catch {} }
    })
  }

  async text (): Promise<{ contentType: string, body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}

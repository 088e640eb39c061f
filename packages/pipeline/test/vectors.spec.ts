/** Replays specs/pipeline/vectors (made by an independent Python generator, gen.py there) */
import { readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import { Kind, PipelineRequest, PipelineResponse, acceptDraw, sampleToken, splitmix64, uniformDraw, verifyDraft } from '../src/index.js'

const dir = new URL('../../../specs/pipeline/vectors/', import.meta.url)
const sampling = JSON.parse(readFileSync(new URL('sampling.json', dir), 'utf8'))
const messages = JSON.parse(readFileSync(new URL('messages.json', dir), 'utf8'))
const speculative = JSON.parse(readFileSync(new URL('speculative.json', dir), 'utf8'))
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

describe('sampling vectors', () => {
  it('splitmix64 and the per-position draw', () => {
    for (const v of sampling.draws) {
      expect(splitmix64(BigInt(v.seed) + BigInt(v.position)).toString()).toBe(v.splitmix64)
      expect(uniformDraw(v.seed, v.position)).toBe(v.u)
    }
  })

  it('token choices (greedy, temperature, top-k, top-p, seeds)', () => {
    const logits = Float32Array.from(sampling.logits)
    for (const c of sampling.cases) {
      expect(sampleToken(logits, { temperature: c.temperature, topK: c.topK, topP: c.topP, seed: c.seed }, c.position), JSON.stringify(c)).toBe(c.token)
    }
  })
})

function request (f: any): PipelineRequest {
  return {
    kind: Kind[f.kind as keyof typeof Kind], session: hex(f.session ?? ''), position: f.position ?? 0, hop: f.hop ?? 0,
    route: (f.route ?? []).map((h: any) => ({ peer: hex(h.peer), start: h.start, end: h.end })),
    hidden: hex(f.hidden ?? ''), sampling: f.sampling, microBatch: f.microBatch ?? 0, targets: new Uint8Array(0), step: f.step ?? 0,
    gradNorm: f.gradNorm ?? 0, compress: f.compress ?? false, tied: hex(f.tied ?? ''), lossScale: f.lossScale ?? 0,
    tiedReplica: f.tiedReplica ?? false, tiedIds: hex(f.tiedIds ?? ''), tiedM: new Uint8Array(0), tiedV: new Uint8Array(0), deflate: f.deflate ?? false, lastMicroBatch: f.lastMicroBatch ?? false,
    rollback: f.rollback ?? false, draftCount: f.draftCount ?? 0, draft: f.draft ?? [], direct: f.direct ?? false,
    mirror: f.mirror ?? false, standbys: (f.standbys ?? []).map((p: string) => hex(p)), quiet: f.quiet ?? false, tiedRecompute: f.tiedRecompute ?? false,
    ...(f.tiedAdamw != null ? { tiedAdamw: f.tiedAdamw } : {})
  } as any
}

describe('speculative vectors (§6.1)', () => {
  it('acceptance draws', () => {
    for (const v of speculative.accept_draws) expect(acceptDraw(v.seed, v.position)).toBe(v.a)
  })

  it('verification of point-mass, greedy and sampled drafts', () => {
    const rows = speculative.rows.map((r: number[]) => Float32Array.from(r))
    for (const c of speculative.cases) {
      const got = verifyDraft(rows.slice(0, c.draft.length + 1), c.draft, { temperature: c.temperature, topK: c.topK, topP: c.topP, seed: c.seed }, c.first)
      expect(got.tokens, JSON.stringify(c)).toEqual(c.tokens)
    }
  })
})

describe('message vectors', () => {
  it('requests encode to the listed bytes and decode back', () => {
    for (const v of messages.requests) {
      const req = request(v.fields)
      if (req.sampling == null) delete (req as any).sampling
      expect(Buffer.from(PipelineRequest.encode(req)).toString('hex'), v.name).toBe(v.bytes)
      const back = PipelineRequest.decode(hex(v.bytes))
      expect(back.kind).toBe(req.kind)
      expect(back.route.map(h => [Buffer.from(h.peer).toString('hex'), h.start, h.end])).toEqual(v.fields.route.map((h: any) => [h.peer, h.start, h.end]))
      expect(back.step).toBe(req.step)
      expect(back.lossScale).toBe(req.lossScale)
      expect(back.tiedReplica).toBe(req.tiedReplica)
      expect(back.deflate).toBe(req.deflate)
      expect(back.lastMicroBatch).toBe(req.lastMicroBatch)
      expect(back.direct).toBe(req.direct)
      expect(back.mirror).toBe(req.mirror)
      expect(back.quiet).toBe(req.quiet)
      expect(back.tiedRecompute).toBe(req.tiedRecompute)
      expect(back.standbys.map(p => Buffer.from(p).toString('hex'))).toEqual(v.fields.standbys ?? [])
      expect(Buffer.from(back.tiedIds).toString('hex')).toBe(v.fields.tiedIds ?? '')
      expect(back.tiedAdamw).toEqual(v.fields.tiedAdamw)
      expect([back.rollback, back.draftCount, back.draft]).toEqual([req.rollback, req.draftCount, req.draft])
    }
  })

  it('responses', () => {
    for (const v of messages.responses) {
      const res = PipelineResponse.decode(hex(v.bytes))
      for (const [k, want] of Object.entries(v.fields)) {
        const got = (res as any)[k]
        const shown = (x: unknown): unknown => x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x
        expect(Array.isArray(got) ? got.map(shown) : shown(got), `${v.name}.${k}`).toEqual(want)
      }
      expect(Buffer.from(PipelineResponse.encode(res)).toString('hex')).toBe(v.bytes)
    }
  })
})

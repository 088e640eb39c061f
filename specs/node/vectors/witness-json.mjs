// A stage witness (packages/node StageWitness) ⇄ the description witness.json writes: float32 tensors as bit
// patterns, int64 as decimal strings, byte strings as hex (used by gen-witness.mjs and the TypeScript adapter)
const hex = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))
const bits = (a) => Array.from(new Uint32Array(Float32Array.from(a).buffer))
const floats = (b) => new Float32Array(Uint32Array.from(b).buffer)

export function describeWitness (w) {
  const tensors = (m) => Object.fromEntries([...m.entries()].map(([k, v]) => [k, bits(v)]))
  return {
    start: w.start,
    end: w.end,
    opsFrom: w.opsFrom,
    states: w.states.map(s => ({ step: s.step, parameters: tensors(s.parameters), m: tensors(s.m), v: tensors(s.v) })),
    ops: w.ops.map(e => e.map(step => step.map(op => op.kind === 'backward'
      ? { kind: 'backward', feeds: Object.fromEntries(Object.entries(op.feeds).map(([k, t]) => [k, { type: t.type, dims: t.dims, data: t.type === 'int64' ? Array.from(t.data, String) : bits(t.data) }])) }
      : op.kind === 'step' ? { kind: 'step', gradNorm: op.gradNorm ?? null } : { kind: 'zero' }))),
    evidence: w.evidence.map(e => ({ slot: e.slot, record: { ...e.record, commit: hex(e.record.commit) }, payloads: Object.fromEntries([...e.payloads.entries()].map(([k, v]) => [k, hex(v)])) })),
    payloads: w.payloads.map(p => ({ slot: p.slot, codec: p.codec, bytes: hex(p.bytes) }))
  }
}

export function witnessOf (d) {
  const tensors = (o) => new Map(Object.entries(o).map(([k, v]) => [k, floats(v)]))
  return {
    start: d.start,
    end: d.end,
    opsFrom: d.opsFrom,
    states: d.states.map(s => ({ step: s.step, parameters: tensors(s.parameters), m: tensors(s.m), v: tensors(s.v) })),
    ops: d.ops.map(e => e.map(step => step.map(op => op.kind === 'backward'
      ? { kind: 'backward', feeds: Object.fromEntries(Object.entries(op.feeds).map(([k, t]) => [k, { type: t.type, dims: t.dims, data: t.type === 'int64' ? BigInt64Array.from(t.data, BigInt) : floats(t.data) }])) }
      : op.kind === 'step' ? (op.gradNorm == null ? { kind: 'step' } : { kind: 'step', gradNorm: op.gradNorm }) : { kind: 'zero' }))),
    evidence: d.evidence.map(e => ({ slot: e.slot, record: { ...e.record, commit: unhex(e.record.commit) }, payloads: new Map(Object.entries(e.payloads).map(([k, v]) => [k, unhex(v)])) })),
    payloads: d.payloads.map(p => ({ slot: p.slot, codec: p.codec, bytes: unhex(p.bytes) }))
  }
}

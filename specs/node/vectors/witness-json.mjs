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
    states: w.states.map(s => ({ step: s.step, parameters: tensors(s.parameters), m: tensors(s.m), v: tensors(s.v), ...(s.replica != null ? { replica: { m: tensors(s.replica.m), v: tensors(s.replica.v) } } : {}) })),
    ops: w.ops.map(e => e.map(step => step.map(op => describeOp(op, tensors)))),
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
    states: d.states.map(s => ({ step: s.step, parameters: tensors(s.parameters), m: tensors(s.m), v: tensors(s.v), ...(s.replica != null ? { replica: { m: tensors(s.replica.m), v: tensors(s.replica.v) } } : {}) })),
    ops: d.ops.map(e => e.map(step => step.map(op => opOf(op, tensors)))),
    evidence: d.evidence.map(e => ({ slot: e.slot, record: { ...e.record, commit: unhex(e.record.commit) }, payloads: new Map(Object.entries(e.payloads).map(([k, v]) => [k, unhex(v)])) })),
    payloads: d.payloads.map(p => ({ slot: p.slot, codec: p.codec, bytes: unhex(p.bytes) }))
  }
}

// (node/ponw 1.1.0) the tied ops: row ids as integers, tensors as bit patterns, a step's `skip` only when not empty
function describeOp (op, tensors) {
  switch (op.kind) {
    case 'backward': return { kind: 'backward', feeds: Object.fromEntries(Object.entries(op.feeds).map(([k, t]) => [k, { type: t.type, dims: t.dims, data: t.type === 'int64' ? Array.from(t.data, String) : bits(t.data) }])) }
    case 'step': return op.skip != null && op.skip.length > 0 ? { kind: 'step', gradNorm: op.gradNorm ?? null, skip: op.skip } : { kind: 'step', gradNorm: op.gradNorm ?? null }
    case 'zero': case 'take': return { kind: op.kind }
    case 'add': return { kind: 'add', gradients: tensors(op.gradients) }
    case 'rows': return { kind: 'rows', name: op.name, ids: Array.from(op.ids), data: bits(op.data) }
    case 'set': return { kind: 'set', parameters: tensors(op.parameters) }
    case 'moments': return { kind: 'moments', m: tensors(op.m), v: tensors(op.v) }
    case 'seed': return { kind: 'seed', name: op.name, m: bits(op.m), v: bits(op.v) }
    case 'tiedStep': return { kind: 'tiedStep', name: op.name, gradIds: Array.from(op.gradIds), gradRows: bits(op.gradRows), ids: Array.from(op.ids), rows: bits(op.rows), adamw: { ...op.adamw } }
  }
  throw new TypeError(`op ${op.kind}`)
}

function opOf (op, tensors) {
  switch (op.kind) {
    case 'backward': return { kind: 'backward', feeds: Object.fromEntries(Object.entries(op.feeds).map(([k, t]) => [k, { type: t.type, dims: t.dims, data: t.type === 'int64' ? BigInt64Array.from(t.data, BigInt) : floats(t.data) }])) }
    case 'step': {
      const skip = op.skip != null && op.skip.length > 0 ? { skip: op.skip } : {}
      return op.gradNorm == null ? { kind: 'step', ...skip } : { kind: 'step', gradNorm: op.gradNorm, ...skip }
    }
    case 'zero': case 'take': return { kind: op.kind }
    case 'add': return { kind: 'add', gradients: tensors(op.gradients) }
    case 'rows': return { kind: 'rows', name: op.name, ids: Int32Array.from(op.ids), data: floats(op.data) }
    case 'set': return { kind: 'set', parameters: tensors(op.parameters) }
    case 'moments': return { kind: 'moments', m: tensors(op.m), v: tensors(op.v) }
    case 'seed': return { kind: 'seed', name: op.name, m: floats(op.m), v: floats(op.v) }
    case 'tiedStep': return { kind: 'tiedStep', name: op.name, gradIds: Int32Array.from(op.gradIds), gradRows: floats(op.gradRows), ids: Int32Array.from(op.ids), rows: floats(op.rows), adamw: { ...op.adamw } }
  }
  throw new TypeError(`op ${op.kind}`)
}

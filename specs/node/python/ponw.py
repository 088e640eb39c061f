"""A node's stage training proofs (specs/node/ponw.md §2), written from the spec text alone, standard library only:
the witness encoding as the reference writes it, the decoder's refusals, the codec tuple and the stage
pseudo-gradient hash.

A witness is described as the vectors write it: float32 tensors as lists of bit patterns, int64 feeds as decimal
strings, byte strings as hex; `evidence[].payloads` maps a sha256 hex to the payload's hex."""
import hashlib
import json
import math
import struct
from decimal import Decimal

MAGIC = b'NSW1'
MAX_HEADER = 16 * 1024 * 1024
SAFE = 2 ** 53 - 1


class Refused(Exception):
    """the bytes are not a witness within the §2 limits"""


# ---- writing ----

def _utf16(s):
    return s.encode('utf-16-be', 'surrogatepass')


def js_number(x):
    """a number as ECMAScript's JSON.stringify writes it"""
    if isinstance(x, bool):
        raise TypeError('a boolean is not a number')
    if isinstance(x, int):
        return str(x)
    if x != x or x in (math.inf, -math.inf):
        return 'null'
    if x == 0:
        return '0'
    sign, digits, exp = Decimal(repr(x)).as_tuple()   # repr: the shortest decimal that reads back the same
    d = ''.join(map(str, digits)).rstrip('0')
    exp += len(''.join(map(str, digits))) - len(d)
    k = len(d)
    n = exp + k          # value = 0.d × 10^n: the first digit's power of ten is n − 1
    out = '-' if sign else ''
    if k <= n <= 21:
        return out + d + '0' * (n - k)
    if 0 < n <= 21:
        return out + d[:n] + '.' + d[n:]
    if -6 < n <= 0:
        return out + '0.' + '0' * -n + d
    e = n - 1
    return out + (d if k == 1 else d[0] + '.' + d[1:]) + ('e+' if e >= 0 else 'e-') + str(abs(e))


def js_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif c < 0x20:
            out.append({8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r'}.get(c, f'\\u{c:04x}'))
        else:
            out.append(ch)
    return ''.join(out) + '"'


def js_json(v):
    """JSON with no whitespace and the keys in the dict's own order"""
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float)):
        return js_number(v)
    if isinstance(v, str):
        return js_string(v)
    if isinstance(v, list):
        return '[' + ','.join(js_json(x) for x in v) + ']'
    return '{' + ','.join(js_string(k) + ':' + js_json(x) for k, x in v.items()) + '}'


def _f32_bytes(bit_patterns):
    return struct.pack(f'<{len(bit_patterns)}I', *bit_patterns)


def encode_witness(w):
    """§2 Writing: the header's keys in the order shown, names sorted by UTF-16 code units, the blob in header order"""
    blob = bytearray()

    def add(b):
        at = [len(blob), len(b)]
        blob.extend(b)
        return at

    def tensors(m):
        return [[k, add(_f32_bytes(m[k]))] for k in sorted(m, key=_utf16)]

    def state(s):
        out = {'step': s['step'], 'parameters': tensors(s['parameters']), 'm': tensors(s['m']), 'v': tensors(s['v'])}
        if s.get('replica') is not None:   # (1.1.0) only when the executor keeps a tied replica
            out['replica'] = {'m': tensors(s['replica']['m']), 'v': tensors(s['replica']['v'])}
        return out
    states = [state(s) for s in w['states']]

    def ids(xs):
        return add(struct.pack(f'<{len(xs)}i', *xs))

    def op(o):
        k = o['kind']
        if k in ('zero', 'take'):
            return {'kind': k}
        if k == 'step':
            return {'kind': 'step', 'gradNorm': o.get('gradNorm'), **({'skip': o['skip']} if o.get('skip') else {})}
        # (1.1.0) the tied ops, their tensors in the blob in the order of their keys
        if k == 'add':
            return {'kind': 'add', 'gradients': tensors(o['gradients'])}
        if k == 'rows':
            return {'kind': 'rows', 'name': o['name'], 'ids': ids(o['ids']), 'data': add(_f32_bytes(o['data']))}
        if k == 'set':
            return {'kind': 'set', 'parameters': tensors(o['parameters'])}
        if k == 'moments':
            return {'kind': 'moments', 'm': tensors(o['m']), 'v': tensors(o['v'])}
        if k == 'seed':
            return {'kind': 'seed', 'name': o['name'], 'm': add(_f32_bytes(o['m'])), 'v': add(_f32_bytes(o['v']))}
        if k == 'tiedStep':
            a = o['adamw']
            return {'kind': 'tiedStep', 'name': o['name'], 'gradIds': ids(o['gradIds']), 'gradRows': add(_f32_bytes(o['gradRows'])),
                    'ids': ids(o['ids']), 'rows': add(_f32_bytes(o['rows'])),
                    'adamw': {x: a[x] for x in ('lr', 'beta1', 'beta2', 'eps', 'weightDecay', 't', 'gradScale')}}
        feeds = {}
        for name in sorted(o['feeds'], key=_utf16):
            t = o['feeds'][name]
            data = _f32_bytes(t['data']) if t['type'] == 'float32' else struct.pack(f'<{len(t["data"])}q', *(int(x) for x in t['data']))
            feeds[name] = {'type': t['type'], 'dims': t['dims'], 'at': add(data)}
        return {'kind': 'backward', 'feeds': feeds}
    ops = [[[op(o) for o in step] for step in e] for e in w['ops']]
    evidence = []
    for e in w['evidence']:
        r = e['record']
        record = {'group': r['group'], 'span': r['span'], 'round': r['round'], 'baseHash': r['baseHash'], 'leader': r['leader'],
                  'commit': add(bytes.fromhex(r['commit'])), 'aggregator': r['aggregator'],
                  'contributions': [{k: c[k] for k in ('sender', 'payloadHash', 'dataShards', 'innerSteps', 'tokens', 'accepted', 'distance')} for c in r['contributions']],
                  'resultHash': r['resultHash']}
        payloads = [[h, add(bytes.fromhex(e['payloads'][h]))] for h in sorted(e['payloads'], key=_utf16)]
        evidence.append({'slot': e['slot'], 'record': record, 'payloads': payloads})
    payloads = [{'slot': p['slot'], 'codec': {k: p['codec'][k] for k in ('codec', 'blockSize', 'chunk', 'topK', 'bits')}, 'at': add(bytes.fromhex(p['bytes']))}
                for p in w['payloads']]
    header = js_json({'start': w['start'], 'end': w['end'], 'opsFrom': w['opsFrom'], 'states': states, 'ops': ops,
                      'evidence': evidence, 'payloads': payloads}).encode('utf-8')
    return MAGIC + struct.pack('>I', len(header)) + header + bytes(blob)


# ---- reading (untrusted bytes: every rule of §2 Reading) ----

def _integer(v, lo=0, hi=SAFE):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or not lo <= int(v) <= hi or abs(v) > SAFE:
        raise Refused('not an integer in range')
    return int(v)


def _array(v, most):
    if not isinstance(v, list) or len(v) > most:
        raise Refused('not an array within its bound')
    return v


def _string(v, most=256):
    if not isinstance(v, str) or len(_utf16(v)) // 2 > most:
        raise Refused('not a string within its bound')
    return v


def _object(v):
    if not isinstance(v, dict):
        raise Refused('not an object')
    return v


def _reject_constant(c):
    raise ValueError(c)   # NaN / Infinity are not JSON


def decode_witness(data):
    """the witness description of bytes, or Refused"""
    if len(data) < 8 or data[:4] != MAGIC:
        raise Refused('magic')
    n = struct.unpack('>I', data[4:8])[0]
    if n > MAX_HEADER or 8 + n > len(data):
        raise Refused('header length')
    try:
        text = data[8:8 + n].decode('utf-8')
        h = json.loads(text[1:] if text.startswith('\ufeff') else text, parse_constant=_reject_constant)   # a BOM is skipped
    except (UnicodeDecodeError, ValueError) as e:
        raise Refused(f'header: {e}')
    _object(h)
    blob = data[8 + n:]

    def ref(r):
        if len(_array(r, 2)) != 2:
            raise Refused('[off, len]')
        off = _integer(r[0], 0, len(blob))
        ln = _integer(r[1], 0, len(blob) - off)
        return blob[off:off + ln]

    def f32(r):
        b = ref(r)
        if len(b) % 4:
            raise Refused('float32 length')
        return list(struct.unpack(f'<{len(b) // 4}I', b))

    def tensors(v):
        out = {}
        for e in _array(v, 4096):
            if len(_array(e, 2)) != 2:
                raise Refused('map entry')
            name = _string(e[0])
            if name in out:
                raise Refused('duplicate tensor')
            out[name] = f32(e[1])
        return out

    start = _integer(h.get('start'), 0, 2 ** 20)
    end = _integer(h.get('end'), start + 1, 2 ** 20)
    ops_from = _integer(h.get('opsFrom'))
    states = []
    for s in _array(h.get('states'), 3):
        _object(s)
        st = {'step': _integer(s.get('step')), 'parameters': tensors(s.get('parameters')), 'm': tensors(s.get('m')), 'v': tensors(s.get('v'))}
        if 'replica' in s:   # (1.1.0) an object with the two maps
            r = _object(s['replica'])
            st['replica'] = {'m': tensors(r.get('m')), 'v': tensors(r.get('v'))}
        states.append(st)

    def row_ids(r):
        b = ref(r)
        if len(b) % 4:
            raise Refused('int32 length')
        out = list(struct.unpack(f'<{len(b) // 4}i', b))
        if any(not 0 <= x <= 2 ** 24 for x in out):
            raise Refused('row id')
        return out

    def rows_fit(ids, data):
        if (len(data) != 0) if len(ids) == 0 else (len(data) % len(ids) != 0):
            raise Refused('rows')

    def number(v, lo=-math.inf):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
            raise Refused('number')
        return v

    def op(o):
        _object(o)
        k = o.get('kind')
        if k == 'zero':
            return {'kind': 'zero'}
        if k == 'step':
            skip = {}
            if 'skip' in o:
                names = [_string(x) for x in _array(o['skip'], 8)]
                if names:
                    skip = {'skip': names}
            g = o.get('gradNorm')
            if g is None:
                return {'kind': 'step', 'gradNorm': None, **skip}
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
                raise Refused('gradNorm')
            return {'kind': 'step', 'gradNorm': g, **skip}
        # (1.1.0) the tied ops
        if k == 'take':
            return {'kind': 'take'}
        if k == 'add':
            return {'kind': 'add', 'gradients': tensors(o.get('gradients'))}
        if k == 'set':
            return {'kind': 'set', 'parameters': tensors(o.get('parameters'))}
        if k == 'moments':
            return {'kind': 'moments', 'm': tensors(o.get('m')), 'v': tensors(o.get('v'))}
        if k == 'seed':
            return {'kind': 'seed', 'name': _string(o.get('name')), 'm': f32(o.get('m')), 'v': f32(o.get('v'))}
        if k == 'rows':
            ids, data = row_ids(o.get('ids')), f32(o.get('data'))
            rows_fit(ids, data)
            return {'kind': 'rows', 'name': _string(o.get('name')), 'ids': ids, 'data': data}
        if k == 'tiedStep':
            grad_ids, grad_rows, ids, rows = row_ids(o.get('gradIds')), f32(o.get('gradRows')), row_ids(o.get('ids')), f32(o.get('rows'))
            rows_fit(grad_ids, grad_rows)
            rows_fit(ids, rows)
            a = _object(o.get('adamw'))
            adamw = {'lr': number(a.get('lr')), 'beta1': number(a.get('beta1')), 'beta2': number(a.get('beta2')), 'eps': number(a.get('eps')),
                     'weightDecay': number(a.get('weightDecay')), 't': _integer(a.get('t'), 1), 'gradScale': number(a.get('gradScale'), 0)}
            return {'kind': 'tiedStep', 'name': _string(o.get('name')), 'gradIds': grad_ids, 'gradRows': grad_rows, 'ids': ids, 'rows': rows, 'adamw': adamw}
        if o.get('kind') != 'backward' or not isinstance(o.get('feeds'), dict) or len(o['feeds']) > 8:
            raise Refused('op')
        feeds = {}
        for name, t in o['feeds'].items():
            _object(t)
            dims = [_integer(d, 0, 2 ** 24) for d in _array(t.get('dims'), 8)]
            count = math.prod(dims)
            b = ref(t.get('at'))
            if t.get('type') == 'float32' and len(b) == 4 * count:
                data = list(struct.unpack(f'<{count}I', b))
            elif t.get('type') == 'int64' and len(b) == 8 * count:
                data = [str(x) for x in struct.unpack(f'<{count}q', b)]
            else:
                raise Refused('feed type or size')
            feeds[_string(name)] = {'type': t['type'], 'dims': dims, 'data': data}
        return {'kind': 'backward', 'feeds': feeds}
    ops = [[[op(o) for o in _array(step, 256)] for step in _array(e, 1000)] for e in _array(h.get('ops'), 3)]
    evidence = []
    for e in _array(h.get('evidence'), 64):
        _object(e)
        r = _object(e.get('record'))
        contributions = []
        for c in _array(r.get('contributions'), 1024):
            _object(c)
            if not isinstance(c.get('accepted'), bool) or isinstance(c.get('distance'), bool) or not isinstance(c.get('distance'), (int, float)):
                raise Refused('contribution')
            contributions.append({'sender': _string(c.get('sender')), 'payloadHash': _string(c.get('payloadHash'), 64),
                                  'dataShards': [_string(x, 128) for x in _array(c.get('dataShards'), 64)],
                                  'innerSteps': _integer(c.get('innerSteps')), 'tokens': _integer(c.get('tokens')),
                                  'accepted': c['accepted'], 'distance': c['distance']})
        record = {'group': _string(r.get('group')), 'span': _string(r.get('span')), 'round': _integer(r.get('round')),
                  'baseHash': _string(r.get('baseHash'), 64), 'leader': _string(r.get('leader')), 'commit': ref(r.get('commit')).hex(),
                  'aggregator': _string(r.get('aggregator')), 'contributions': contributions, 'resultHash': _string(r.get('resultHash'), 64)}
        payloads = {}
        for p in _array(e.get('payloads'), 1024):
            if len(_array(p, 2)) != 2:
                raise Refused('payload entry')
            payloads[_string(p[0], 64)] = ref(p[1]).hex()
        evidence.append({'slot': _integer(e.get('slot'), 0, 2 ** 20), 'record': record, 'payloads': payloads})
    payloads = []
    for p in _array(h.get('payloads'), 64):
        _object(p)
        c = _object(p.get('codec'))
        codec = {'codec': _integer(c.get('codec'), 0, 16), 'blockSize': _integer(c.get('blockSize')), 'chunk': _integer(c.get('chunk')),
                 'topK': _integer(c.get('topK')), 'bits': _integer(c.get('bits'), 0, 32)}
        payloads.append({'slot': _integer(p.get('slot'), 0, 2 ** 20), 'codec': codec, 'bytes': ref(p.get('at')).hex()})
    return {'start': start, 'end': end, 'opsFrom': ops_from, 'states': states, 'ops': ops, 'evidence': evidence, 'payloads': payloads}


# ---- the claim ----

def codec_tuple(announced):
    """§2: the announced codec's number, block size (int8), chunk, top-k and bits (sparse); the ignored ones 0"""
    c = announced['codec']
    return {'codec': c, 'blockSize': announced['blockSize'] if c == 3 else 0, 'chunk': announced['chunk'] if c == 4 else 0,
            'topK': announced['topK'] if c == 4 else 0, 'bits': announced['bits'] if c == 4 else 0}


def stage_pseudo_gradient_hash(entries):
    """§2: sha256("neuroshard/node/v1/stage-pseudo-gradient" ‖ 0x00 ‖ per slot, ascending: u32be(slot) ‖ sha256(payload) ‖ 5 × u32be)"""
    h = hashlib.sha256(b'neuroshard/node/v1/stage-pseudo-gradient\x00')
    for e in sorted(entries, key=lambda e: e['slot']):
        c = e['codec']
        h.update(struct.pack('>I', e['slot']) + bytes.fromhex(e['payloadHash']) + struct.pack('>5I', c['codec'], c['blockSize'], c['chunk'], c['topK'], c['bits']))
    return h.hexdigest()


# ---- §2 re-execution, rule 4: the final payloads against base − final ----

class ReExecutionMismatch(Exception):
    """ReExecutionMismatchError of the ledger's Proof-of-Learning check"""


def _model_reference():
    """specs/model's reference (parameter names and shapes of a role, specs/model §3)"""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'model', 'vectors', 'reference.py')
    spec = importlib.util.spec_from_file_location('neuroshard_model_reference', path)  # not `reference`: the tokenizer's has that name
    M = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(M)
    return M


def _slot_parameters(config, slot):
    """the slot's parameters (name, shape) in byte-wise name order: slot 0 embed, 1..L block slot − 1, L + 1 head
    (specs/layer-pool §1, specs/model §3), the flat-vector order of specs/diloco §1"""
    L = config['nLayers']
    role = {'kind': 'embed'} if slot == 0 else {'kind': 'head'} if slot == L + 1 else {'kind': 'blocks', 'start': slot - 1, 'end': slot}
    return sorted(_model_reference().shard_params(config, role), key=lambda p: p[0].encode('utf-8'))


def span_roles(config, start, end):
    """the executors of a slot span in slot order (§2): embed (slot 0), the blocks of slots 1..L, head (slot L + 1);
    None unless 0 ≤ start < end ≤ L + 2"""
    L = config['nLayers']
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= L + 2):
        return None
    roles = [{'kind': 'embed'}] if start == 0 else []
    b0, b1 = max(start, 1) - 1, min(end, L + 1) - 1
    if b1 > b0:
        roles.append({'kind': 'blocks', 'start': b0, 'end': b1})
    if end == L + 2:
        roles.append({'kind': 'head'})
    return roles


def check_stage_step(config, w, index):
    """§2 re-execution rule 2, the witness checks before inner step `index` is replayed from `w` (a witness as the
    vectors describe it); raises ReExecutionMismatch"""
    roles = span_roles(config, w['start'], w['end'])
    if roles is None:
        raise ReExecutionMismatch(f'[{w["start"]}, {w["end"]}) is not a slot span of the model')
    if not len(roles) == len(w['states']) == len(w['ops']):
        raise ReExecutionMismatch(f'{len(roles)} executors, {len(w["states"])} states, {len(w["ops"])} ops lists')
    steps = {st['step'] for st in w['states']}
    if len(steps) != 1 or steps.pop() - w['opsFrom'] != index:
        raise ReExecutionMismatch(f'the states are not all at step opsFrom + {index}')
    M = _model_reference()
    for e, role in enumerate(roles):
        ops = w['ops'][e][index] if 0 <= index < len(w['ops'][e]) else []
        last = len(ops) - (2 if ops and ops[-1]['kind'] == 'tiedStep' else 1)   # (1.1.0) a replica's step may follow
        if not ops or last < 0 or ops[last]['kind'] != 'step' or sum(op['kind'] == 'step' for op in ops) != 1:
            raise ReExecutionMismatch(f'executor {e}: inner step {index} does not end with its only optimizer step')
        want = {name: M.numel(shape) for name, shape in M.shard_params(config, role)}
        for part in ('parameters', 'm', 'v'):
            got = {name: len(v) for name, v in w['states'][e][part].items()}
            if got != want:
                raise ReExecutionMismatch(f'executor {e}: `{part}` is not every parameter of its role with its size, nothing else')
        check_tied_calls(config, role, w['states'][e], ops, f'executor {e}, inner step {index}')


def check_tied_calls(config, role, state, ops, what):
    """§2 rule 2 (1.1.0): tied ops and replicas only with tied embeddings, of `embed.weight` only, each on the executor
    that makes it in a pipeline, with the model's shapes; after the optimizer step nothing but at most one tiedStep"""
    tied = 'embed.weight' if config['tieEmbeddings'] else None
    V, d = config['vocabSize'], config['dModel']
    n = V * d
    head = role['kind'] == 'head' and tied is not None
    embed = role['kind'] == 'embed' and tied is not None

    def fail(why):
        raise ReExecutionMismatch(f'{what}: {why}')

    def whole(m, why):
        if not m or any(k != tied or len(x) != n for k, x in m.items()):
            fail(f'{why} is not the tied matrix')

    def rows(ids, data, increasing, why):
        if any(not 0 <= x < V for x in ids) or (increasing and any(b <= a for a, b in zip(ids, ids[1:]))):
            fail(f'{why}: row ids outside [0, {V}) or not increasing')
        if len(data) != len(ids) * d:
            fail(f'{why}: {len(data)} floats for {len(ids)} rows')
    if state.get('replica') is not None:
        if not head:
            fail("a tied replica's moments on an executor without a tied parameter")
        whole(state['replica']['m'], "the replica's m")
        whole(state['replica']['v'], "the replica's v")
    step_at = next((k for k, op in enumerate(ops) if op['kind'] == 'step'), -1)
    for k, op in enumerate(ops):
        kind = op['kind']
        if k > step_at and kind != 'tiedStep':
            fail(f'a {kind} after the optimizer step')
        if kind == 'step':
            if op.get('skip') and not (embed and all(x == tied for x in op['skip'])):
                fail(f"a step that skips {op['skip']}")
        elif kind == 'take':
            if not head:
                fail('a take on an executor without a tied parameter')
        elif kind == 'seed':
            if not head or op['name'] != tied or len(op['m']) != n or len(op['v']) != n:
                fail("a seed that is not of the head's tied matrix")
        elif kind == 'tiedStep':
            if not head or op['name'] != tied:
                fail("a tiedStep that is not of the head's tied matrix")
            if k < step_at or len(ops) - step_at - 1 > 1:
                fail('a tiedStep must follow the optimizer step, once')
            rows(op['gradIds'], op['gradRows'], True, "the tiedStep's gradient rows")
            rows(op['ids'], op['rows'], True, "the tiedStep's rows")
        elif kind == 'add':
            if not embed:
                fail('an add on an executor that does not own the tied matrix')
            whole(op['gradients'], 'the added gradient')
        elif kind == 'rows':
            if not embed or op['name'] != tied:
                fail("rows that are not of the embedding's tied matrix")
            rows(op['ids'], op['data'], False, 'the rows')
        elif kind == 'set':
            if not (head or embed):
                fail('a set on an executor without the tied matrix')
            whole(op['parameters'], 'the set parameters')
        elif kind == 'moments':
            if not embed:
                fail('moments on an executor that does not own the tied matrix')
            whole(op['m'], 'the set m')
            whole(op['v'], 'the set v')


def check_final_weights(config, base, final, model_hash, pseudo_gradient_hash_hex):
    """the ledger's checks of the final checkpoint (specs/ponw-ledger §8 rule 3) with this model, in order: rule 4's
    hash equals the claim's, then rule 5: sha256(final's bytes) ≠ model_hash; raises ReExecutionMismatch"""
    if pseudo_gradient_hash(config, base, final) != pseudo_gradient_hash_hex:
        raise ReExecutionMismatch('the final checkpoint does not give the claimed pseudo-gradient hash')
    if hashlib.sha256(encode_witness(final)).hexdigest() == model_hash:
        raise ReExecutionMismatch('the final checkpoint is checkpoint 0: no training happened')


def pseudo_gradient_hash(config, base, final):
    """§2 re-execution rule 4 on witnesses as the vectors describe them: one payload per slot of the span in order, a
    dense codec, each decoding to Δ = fround(base − final) of its slot within the codec's bound; then the hash"""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'diloco', 'python'))
    import diloco as DL
    slots = [p['slot'] for p in final['payloads']]
    if slots != list(range(final['start'], final['end'])):
        raise ReExecutionMismatch(f'payloads for slots {slots}, the span is [{final["start"]}, {final["end"]})')

    def params(w):
        out = {}
        for s in w['states']:
            for k, v in s['parameters'].items():
                out[k] = [struct.unpack('<f', struct.pack('<I', b))[0] for b in v]
        return out
    b, f = params(base), params(final)
    names = {1: 'fp32', 2: 'fp16', 3: 'int8'}
    for p in final['payloads']:
        c = p['codec']
        if c['codec'] not in names:
            raise ReExecutionMismatch(f'slot {p["slot"]}: not a dense codec ({c["codec"]})')
        codec = {'codec': names[c['codec']], **({'blockSize': c['blockSize']} if c['codec'] == 3 else {})}
        layout = _slot_parameters(config, p['slot'])
        try:
            bf = [x for name, _ in layout for x in b[name]]
            ff = [x for name, _ in layout for x in f[name]]
            if c['codec'] == 3 and not 1 <= c['blockSize'] <= 65536:
                raise ValueError('block size')
            decoded = DL.decode(bytes.fromhex(p['bytes']), len(bf), codec)
        except (KeyError, ValueError, DL.MalformedPseudoGradientError) as e:
            raise ReExecutionMismatch(f'slot {p["slot"]}: payload or weights unusable: {e}')
        top = max((abs(x) for x in decoded), default=0.0)
        tol = {'int8': 8 * top / 127, 'fp16': 8 * top * 2 ** -10, 'fp32': 1e-6 * top}[codec['codec']] + 1e-9
        for x, u, v in zip(decoded, bf, ff):
            if not abs(x - DL.fround(u - v)) <= tol:
                raise ReExecutionMismatch(f'slot {p["slot"]}: decoded {x}, base − final {DL.fround(u - v)}')
    return stage_pseudo_gradient_hash([{'slot': p['slot'], 'payloadHash': hashlib.sha256(bytes.fromhex(p['bytes'])).hexdigest(), 'codec': p['codec']}
                                       for p in final['payloads']])


# ---- §3 the round-record check ----

def accepted_pseudo_gradient(config, model_id, aggregator, witness, query, peer_of):
    """§3 on checkpoint 0 (`witness`, as the vectors describe witnesses) for a proof `query` ({sender, modelHash,
    pseudoGradientHash}); `peer_of`: wallet address -> the libp2p peer id string it is bound to. True when every rule
    holds, False otherwise (a validator votes against the proof)."""
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, '..', '..', 'diloco', 'python'))
    sys.path.insert(0, os.path.join(here, '..', '..', 'layer-pool', 'python'))
    import layer_pool as LP
    import messages as DM
    peer = peer_of.get(query['sender'])
    if peer is None or hashlib.sha256(encode_witness(witness)).hexdigest() != query['modelHash']:
        return False
    params = {}
    for s in witness['states']:
        params.update(s['parameters'])
    entries = []
    for slot in range(witness['start'], witness['end']):
        ev = [e for e in witness['evidence'] if e['slot'] == slot]
        if len(ev) != 1:
            return False
        record, payloads = ev[0]['record'], ev[0]['payloads']
        if record['group'] != f'{model_id}/slot-{slot}' or record['span'] != f'slot-{slot}':
            return False
        layout = _slot_parameters(config, slot)
        try:
            tensors = [(n, 'F32', shape, _f32_bytes(params[n])) for n, shape in layout]
            DM.verify_round_record(record, {h: bytes.fromhex(p) for h, p in payloads.items()}, sum(len(t[3]) // 4 for t in tensors), aggregator)
        except (KeyError, DM.DiLoCoError, DM.DL.MalformedPseudoGradientError):
            return False
        if record['baseHash'] != LP.content_hash(tensors):
            return False
        mine = [c for c in record['contributions'] if c['sender'] == peer]
        if not mine or not mine[0]['accepted']:
            return False
        _, _, announces = DM.open_commit(DM.pb_decode('Signed', bytes.fromhex(record['commit'])))
        a = [x for x, sender, _ in announces if sender == peer][0]
        entries.append({'slot': slot, 'payloadHash': mine[0]['payloadHash'],
                        'codec': codec_tuple({'codec': a['codec'], 'blockSize': a['block_size'], 'chunk': a['chunk'], 'topK': a['top_k'], 'bits': a['bits']})})
    return stage_pseudo_gradient_hash(entries) == query['pseudoGradientHash']


# ---- §2 re-execution rule 3: replaying a witness's inner steps (specs/model §5 backward graphs, §3.1 AdamW) ----

def _neurollm():
    """specs/model/python/neurollm.py: the §2 forward pass and the hand-written §5 backward (float64)"""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'model', 'python', 'neurollm.py')
    spec = importlib.util.spec_from_file_location('neuroshard_neurollm', path)
    N = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(N)
    return N


def _f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def _floats(bit_patterns):
    return list(struct.unpack(f'<{len(bit_patterns)}f', _f32_bytes(bit_patterns)))


def _bits(values):
    return list(struct.unpack(f'<{len(values)}I', struct.pack(f'<{len(values)}f', *values)))


def _backward(N, config, role, params, feeds):
    """one call of the role's backward graph (specs/model §5) on `feeds` (name -> {type, dims, data}): the parameter
    gradients (name -> float64 list); the graph's loss is the mean over all batch·seq positions of the call"""
    shapes = dict(_model_reference().shard_params(config, role))
    model = N.Model(config, {n: (params[n], shapes[n]) for n in params})
    d = config['dModel']

    def seqs(name):   # [batch][seq][d] float rows of a float32 feed, [batch][seq] ids of an int64 one
        t = feeds[name]
        B, S = t['dims'][0], t['dims'][1]
        if t['type'] == 'int64':
            ids = [int(x) for x in t['data']]
            return [ids[b * S:(b + 1) * S] for b in range(B)]
        x = _floats(t['data'])
        return [[x[(b * S + s) * d:(b * S + s + 1) * d] for s in range(S)] for b in range(B)]
    grads = {}
    kind = role['kind']
    if kind == 'embed':
        for ids, dh in zip(seqs('input_ids'), seqs('grad_hidden')):
            model.embed_back(ids, dh, grads)
    elif kind == 'head':
        hidden, targets = seqs('hidden'), seqs('targets')
        n = sum(len(t) for t in targets)
        grad_loss = _floats(feeds['grad_loss']['data'])[0]
        for h, t in zip(hidden, targets):
            model.head_back(h, t, n, grad_loss, grads)
    else:
        for h, dout in zip(seqs('hidden_in'), seqs('grad_hidden_out')):
            hs = [h]
            for i in range(role['start'], role['end'] - 1):
                hs.append(model.block(i, hs[-1]))
            dh = dout
            for i in reversed(range(role['start'], role['end'])):
                model.block(i, hs[i - role['start']], keep=True)   # the backward graph recomputes its forward
                dh = model.block_back(i, dh, grads)
    return grads


def replay_stage(config, optimizer, w, batches):
    """§2 rule 2-3: the state after replaying inner steps 0 .. batches − 1 from checkpoint 0 `w` (a witness as the vectors
    describe it), each step's checks of rule 2 first. Per executor: gradients accumulate in float32 over the backward
    calls (`zero` resets them), the optimizer step is specs/model §3.1 with the step's `gradNorm` as ‖g‖ (null: the
    norm of the executor's own accumulated gradients), the network's numbers `optimizer` (lr, beta1, beta2, eps,
    weightDecay — not applied to rank-1 parameters, the norm weights —, maxGradNorm), t = the state's step + 1; the
    step leaves the gradients zero. Returns the states (as the vectors describe them); raises ReExecutionMismatch."""
    N = _neurollm()
    o = optimizer
    states = [{'step': s['step'], 'parameters': {k: _floats(v) for k, v in s['parameters'].items()},
               'm': {k: _floats(v) for k, v in s['m'].items()}, 'v': {k: _floats(v) for k, v in s['v'].items()},
               **({'replica': {p: {k: _floats(v) for k, v in s['replica'][p].items()} for p in ('m', 'v')}} if s.get('replica') is not None else {})}
              for s in w['states']]
    # (1.1.0) per executor: the tied gradient its takes took since its last step (T) and before it (P)
    taken = [None for _ in w['states']]
    pending = [None for _ in w['states']]
    tied = ['embed.weight'] if config['tieEmbeddings'] else []
    d = config['dModel']
    M = _model_reference()
    # each executor's gradients live across the replayed steps (built once, at checkpoint 0): a parameter is stepped
    # once a backward has reached it, at gradient 0 where none did since (§2 rule 2, 1.0.6)
    grads = [{} for _ in w['states']]
    for i in range(batches):
        check_stage_step(config, {**w, 'states': [{**s, 'parameters': {k: [0] * len(v) for k, v in s['parameters'].items()},
                                                  'm': {k: [0] * len(v) for k, v in s['m'].items()},
                                                  'v': {k: [0] * len(v) for k, v in s['v'].items()}} for s in states]}, i)
        roles = span_roles(config, w['start'], w['end'])
        for e, role in enumerate(roles):
            s = states[e]
            shapes = dict(M.shard_params(config, role))
            g = grads[e]
            # a head does not own its tied parameter: its optimizer step leaves it (its gradient is taken instead)
            owned = [] if role['kind'] != 'head' else tied
            stepped = None
            pend = s.setdefault('_tiedPending', False)
            for op in w['ops'][e][i]:
                k = op['kind']
                if k == 'zero':
                    for part in g.values():
                        part[:] = [0.0] * len(part)
                    pend = False
                elif k == 'backward':
                    for name, part in _backward(N, config, role, s['parameters'], op['feeds']).items():
                        acc = g.setdefault(name, [0.0] * len(part))
                        for j, x in enumerate(part):
                            acc[j] = _f32(acc[j] + _f32(x))
                        pend = pend or name in owned
                elif k == 'step':
                    if pend:   # the runtime refuses a step while the head holds a tied gradient not taken
                        raise ReExecutionMismatch(f'executor {e}: an optimizer step while its tied gradient was not taken')
                    names = [n for n in g if n not in owned and n not in (op.get('skip') or [])]
                    norm = op.get('gradNorm')
                    if norm is None:
                        norm = math.sqrt(sum(x * x for n in names for x in g[n]))   # the gradients it steps
                    scale = o['maxGradNorm'] / (norm + 1e-6) if o['maxGradNorm'] > 0 and norm > o['maxGradNorm'] else 1
                    t = s['step'] + 1
                    lr = o['lr']
                    for name in names:   # only parameters a backward of the replay has reached (§2 rule 2, 1.0.6)
                        decay = 1 - lr * (0 if len(shapes[name]) == 1 else o['weightDecay'])
                        _adamw(s['parameters'][name], g[name], s['m'][name], s['v'][name], lr, o['beta1'], o['beta2'], o['eps'], decay, t, scale)
                    s['step'] += 1
                    for name in [n for n in g if n not in owned]:
                        g[name][:] = [0.0] * len(g[name])
                    pending[e], taken[e] = taken[e], None
                    stepped = {'lr': lr, 'gradScale': scale, 't': t}
                # (1.1.0) the tied calls
                elif k == 'take':
                    pend = False
                    for name in tied:
                        if name in g:
                            part = g.pop(name)
                            taken[e] = part if taken[e] is None else [_f32(x + y) for x, y in zip(taken[e], part)]
                elif k == 'add':
                    for name, part in op['gradients'].items():
                        acc = g.setdefault(name, [0.0] * len(part))
                        for j, x in enumerate(_floats(part)):
                            acc[j] = _f32(acc[j] + x)
                elif k == 'rows':
                    p, data = s['parameters'][op['name']], _floats(op['data'])
                    for r, row in enumerate(op['ids']):
                        p[row * d:(row + 1) * d] = data[r * d:(r + 1) * d]
                elif k == 'set':
                    for name, part in op['parameters'].items():
                        s['parameters'][name] = _floats(part)
                elif k == 'moments':
                    for part in ('m', 'v'):
                        for name, x in op[part].items():
                            s[part][name] = _floats(x)
                elif k == 'seed':
                    s['replica'] = {'m': {op['name']: _floats(op['m'])}, 'v': {op['name']: _floats(op['v'])}}
                elif k == 'tiedStep':
                    a = op['adamw']
                    if stepped is None or (a['lr'], a['gradScale'], a['t']) != (stepped['lr'], stepped['gradScale'], stepped['t']) or \
                            (a['beta1'], a['beta2'], a['eps'], a['weightDecay']) != (o['beta1'], o['beta2'], o['eps'], o['weightDecay']):
                        raise ReExecutionMismatch(f"the tied replica's AdamW numbers {a} are not the network's at this step")
                    name = op['name']
                    if s.get('replica') is None or name not in s['replica']['m']:
                        raise ReExecutionMismatch(f'no tied replica of {name} to step')
                    grad = list(pending[e]) if pending[e] is not None else [0.0] * len(s['parameters'][name])
                    pending[e] = None
                    rows = _floats(op['gradRows'])
                    for r, row in enumerate(op['gradIds']):
                        grad[row * d:(row + 1) * d] = rows[r * d:(r + 1) * d]
                    rows = _floats(op['rows'])
                    for r, row in enumerate(op['ids']):
                        for j in range(d):
                            grad[row * d + j] = _f32(grad[row * d + j] + rows[r * d + j])
                    _adamw(s['parameters'][name], grad, s['replica']['m'][name], s['replica']['v'][name], a['lr'], a['beta1'], a['beta2'], a['eps'],
                           1 - a['lr'] * a['weightDecay'], a['t'], a['gradScale'])
            s['_tiedPending'] = pend
    return [{'step': s['step'], **{part: {k: _bits(v) for k, v in s[part].items()} for part in ('parameters', 'm', 'v')},
             **({'replica': {p: {k: _bits(v) for k, v in s['replica'][p].items()} for p in ('m', 'v')}} if s.get('replica') is not None else {})}
            for s in states]


def _adamw(p, g, m, v, lr, beta1, beta2, eps, decay, t, scale):
    """specs/model §3.1 on one parameter, in place (float32 results of binary64 arithmetic)"""
    c1, c2 = 1 / (1 - beta1 ** t), 1 / (1 - beta2 ** t)
    for j in range(len(p)):
        gi = g[j] * scale
        mi = beta1 * m[j] + (1 - beta1) * gi
        vi = beta2 * v[j] + (1 - beta2) * gi * gi
        p[j] = _f32(p[j] * decay - lr * (mi * c1) / (math.sqrt(vi * c2) + eps))
        m[j], v[j] = _f32(mi), _f32(vi)


def state_distance(a, b):
    """§2 rule 3: max |Δ| over weights and first moments, √ of the max |Δ| over second moments (states as the vectors
    describe them); infinite when the states differ in count, step or tensor sets"""
    if len(a) != len(b):
        return math.inf
    d = 0.0
    for x, y in zip(a, b):
        if x['step'] != y['step'] or any(set(x[p]) != set(y[p]) or any(len(x[p][k]) != len(y[p][k]) for k in x[p]) for p in ('parameters', 'm', 'v')):
            return math.inf
        if (x.get('replica') is None) != (y.get('replica') is None):   # (1.1.0) a replica's moments count as moments
            return math.inf
        pairs = [(x[p], y[p], p == 'v') for p in ('parameters', 'm', 'v')]
        if x.get('replica') is not None:
            if any(set(x['replica'][p]) != set(y['replica'][p]) or any(len(x['replica'][p][k]) != len(y['replica'][p][k]) for k in x['replica'][p]) for p in ('m', 'v')):
                return math.inf
            pairs += [(x['replica'][p], y['replica'][p], p == 'v') for p in ('m', 'v')]
        for xp, yp, root in pairs:
            for k in xp:
                diff = max((abs(u - w) for u, w in zip(_floats(xp[k]), _floats(yp[k]))), default=0.0)
                d = max(d, math.sqrt(diff) if root else diff)
    return d


def check_replay(config, optimizer, base, final, batches, tolerance=1e-4):
    """§2 rule 3 as the ledger's segment check runs it (one segment, checkpoint_interval 0): replay `batches` inner
    steps from checkpoint 0 `base` and compare with the final checkpoint's states; raises ReExecutionMismatch"""
    d = state_distance(replay_stage(config, optimizer, base, batches), final['states'])
    if not d <= tolerance:
        raise ReExecutionMismatch(f're-executed state is {d} from the committed one (tolerance {tolerance})')
    return d

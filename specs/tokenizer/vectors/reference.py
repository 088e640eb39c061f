#!/usr/bin/env python3
"""An independent implementation of specs/tokenizer/README.md in Python (stdlib only), written from the
spec text. It checks every vector in this folder and the genesis-data vectors' `documentTokens`:

    python3 specs/tokenizer/vectors/reference.py            # check
    python3 specs/tokenizer/vectors/reference.py --write    # (re)write the vector files from the cases below

Caveat: Python's `unicodedata` may follow an older Unicode version than the spec's (16.0); the vectors only
use code points whose general category is the same in Unicode 14.0 through 16.0."""
import json, os, sys, unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.dirname(os.path.dirname(HERE))

# ---- byte-level alphabet (spec: "Byte-level alphabet") ----
def byte_alphabet():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

BYTE_TO_CHAR = byte_alphabet()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}

# ---- pre-tokenizer (spec: "Pre-tokenization") ----
WHITESPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029}

def char_class(ch):
    cat = unicodedata.category(ch)
    if cat[0] == 'L':
        return 'L'
    if cat[0] == 'N':
        return 'N'
    if ord(ch) in WHITESPACE or cat == 'Zs':
        return 'W'
    return 'O'

CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]

def pretokenize(text):
    pieces, i, n = [], 0, len(text)
    while i < n:
        end = None
        for c in CONTRACTIONS:                                   # rule 1
            if text.startswith(c, i):
                end = i + len(c)
                break
        if end is None:
            k = char_class(text[i])
            if text[i] == ' ' and i + 1 < n and char_class(text[i + 1]) != 'W':   # rule 2: ' ' + run
                k, start = char_class(text[i + 1]), i + 1
            elif k != 'W':                                        # rule 3: run of one class
                start = i
            else:
                start = None
            if start is not None:
                end = start
                while end < n and char_class(text[end]) == k:
                    end += 1
            else:                                                 # rule 4: whitespace
                end = i
                while end < n and char_class(text[end]) == 'W':
                    end += 1
                if end < n and end - i >= 2:
                    end -= 1
        pieces.append(text[i:end])
        i = end
    return pieces

def utf8(s):
    """UTF-8 with every lone surrogate as U+FFFD (EF BF BD)"""
    return b''.join(b'\xef\xbf\xbd' if 0xD800 <= ord(c) <= 0xDFFF else c.encode('utf-8') for c in s)

# ---- the model (spec: "tokenizer.json") ----
class FormatError(Exception):
    pass

class Tokenizer:
    def __init__(self, doc):
        if not isinstance(doc, dict):
            raise FormatError('not an object')
        m = doc.get('model')
        if not isinstance(m, dict) or m.get('type') != 'BPE':
            raise FormatError('model.type')
        if doc.get('normalizer') is not None:
            raise FormatError('normalizer')
        pt = doc.get('pre_tokenizer')
        if not isinstance(pt, dict) or pt.get('type') != 'ByteLevel' or pt.get('use_regex') is False or pt.get('add_prefix_space') is True:
            raise FormatError('pre_tokenizer')
        for k in ('continuing_subword_prefix', 'end_of_word_suffix', 'dropout'):
            if m.get(k) not in (None, ''):
                raise FormatError(k)
        if m.get('byte_fallback') is True or m.get('ignore_merges') is True:
            raise FormatError('byte_fallback/ignore_merges')
        if not isinstance(m.get('vocab'), dict) or not isinstance(m.get('merges'), list):
            raise FormatError('vocab/merges')
        self.token = {}
        self.bytes = {}
        for tok, i in m['vocab'].items():
            if not isinstance(i, int) or isinstance(i, bool) or i < 0 or i >= 2**21 or i in self.token:
                raise FormatError('vocab id')
            if any(c not in CHAR_TO_BYTE for c in tok):
                raise FormatError('vocab token not byte-level')
            self.token[i] = tok
            self.bytes[i] = bytes(CHAR_TO_BYTE[c] for c in tok)
        self.vocab = dict(m['vocab'])
        self.added = {}
        self.special = set()
        for t in doc.get('added_tokens') or []:
            if not isinstance(t, dict) or not isinstance(t.get('id'), int) or not isinstance(t.get('content'), str) or t['content'] == '':
                raise FormatError('added token')
            if t.get('single_word') is True or t.get('lstrip') is True or t.get('rstrip') is True:
                raise FormatError('added token flags')
            i, content = t['id'], t['content']
            if i < 0 or i >= 2**21:
                raise FormatError('added token id')
            spelled = ''.join(BYTE_TO_CHAR[b] for b in utf8(content))
            if i in self.token and self.token[i] != spelled:
                raise FormatError('added token reuses an id')
            if i not in self.token:
                self.token[i] = content
                self.bytes[i] = utf8(content)
            self.added[content] = i
            if t.get('special') is True:
                self.special.add(i)
        self.vocab_size = max(self.token) + 1
        if len(self.token) != self.vocab_size:
            raise FormatError('gap in ids')
        for b in range(256):
            if BYTE_TO_CHAR[b] not in self.vocab:
                raise FormatError('missing byte')
        self.rank, self.result = {}, []
        for r, mg in enumerate(m['merges']):
            if isinstance(mg, str):
                parts = mg.split(' ')
                if len(parts) != 2 or parts[0] == '' or parts[1] == '':
                    raise FormatError('merge string')
                left, right = parts
            elif isinstance(mg, list) and len(mg) == 2 and all(isinstance(x, str) for x in mg):
                left, right = mg
            else:
                raise FormatError('merge')
            if left not in self.vocab or right not in self.vocab or left + right not in self.vocab:
                raise FormatError('merge uses a missing token')
            self.rank.setdefault((self.vocab[left], self.vocab[right]), r)
            self.result.append(self.vocab[left + right])

    def bpe(self, piece):
        syms = [self.vocab[BYTE_TO_CHAR[b]] for b in utf8(piece)]
        while True:
            best = None
            for k in range(len(syms) - 1):
                r = self.rank.get((syms[k], syms[k + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, k)
            if best is None:
                return syms
            r, k = best
            syms[k:k + 2] = [self.result[r]]

    def encode_text(self, text):
        return [i for p in pretokenize(text) for i in self.bpe(p)]

    def encode(self, text, allow_special=False, add_bos=False, add_eos=False):
        out = [self.added['<|bos|>']] if add_bos else []
        if allow_special and self.added:
            contents = sorted(self.added, key=len, reverse=True)
            i = last = 0
            while i < len(text):
                hit = next((c for c in contents if text.startswith(c, i)), None)
                if hit is None:
                    i += 1
                    continue
                out += self.encode_text(text[last:i]) + [self.added[hit]]
                i = last = i + len(hit)
            out += self.encode_text(text[last:])
        else:
            out += self.encode_text(text)
        if add_eos:
            out.append(self.added['<|eos|>'])
        return out

    def decode_bytes(self, ids, skip_special=False):
        for i in ids:
            if i not in self.bytes:
                raise KeyError(i)
        return b''.join(self.bytes[i] for i in ids if not (skip_special and i in self.special))

# ---- the vector cases ----
def base_tokenizer():
    """A small hand-built tokenizer.json: 256 byte tokens, 3 special tokens, merges chosen to exercise
    rank order, leftmost ties, contractions, spaces, newlines and multi-byte characters."""
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    added = ['<|bos|>', '<|eos|>', '<|pad|>']
    for i, t in enumerate(added):
        vocab[t] = 256 + i
    merges = ['b c', 'a b', 'a a', 'Ġ t', 'h e', 'Ġt he', 'i n', 'in g', "' s", 'Ġ Ġ', 'Ċ Ċ', '1 2', 'Ã ©',
              'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld', 'Ġ <', '< |', 'aa a', 'Ġ a', 'ĠĠ Ġ']
    for mg in merges:
        left, right = mg.split(' ')
        vocab.setdefault(left + right, len(vocab))
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': 256 + i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i, t in enumerate(added)],
        'normalizer': None,
        'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'post_processor': None,
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': vocab, 'merges': merges}
    }

PRETOKENIZE = {
    'contractions': "I'm sure you'll see they've said she's 'S 'sx don't",
    'spaces-before-word': 'one  two   three    ',
    'newlines-and-tabs': 'a\n\nb\t\tc \n d\r\n',
    'digits-and-punctuation': 'pi=3.14159, n=12345!! (x) ...',
    'unicode-letters-numbers': 'caf\u00e9 na\u00efve \u4e2d\u6587 \u0661\u0662\u0663 \u00bd x\u00b2 \u0915\u093f',
    'whitespace-set': 'a\u00a0b\u2003c\u3000d\u0085e\u2028f\u1680g\u202fh\u205fi',
    'not-whitespace': 'a\u200bb\ufeffc\u001cd\u001fe\u180ef',
    'space-joins-one-class': ' 1a ,b  \u00e9 \U0001F600x',
    'emoji-and-surrogates': 'ok \U0001F600\U0001F469\u200d\U0001F467 \ud800x\udc00 end',
    'trailing-space': 'end ',
    'only-spaces': '   ',
    'empty': '',
}

ENCODE = {
    'rank-beats-position': {'text': 'abc'},
    'leftmost-on-equal-rank': {'text': 'aaaa aaa'},
    'merges-chain': {'text': 'the world, the thing'},
    'contraction-piece': {'text': "it's"},
    'multi-byte': {'text': 'caf\u00e9 \u00e9\u00e9 \u4e2d'},
    'spaces-and-newlines': {'text': 'a    b\n\n\nc'},
    'digits': {'text': '1212 12'},
    'lone-surrogate': {'text': 'a\ud800b'},
    'special-text-as-plain': {'text': 'x <|eos|> y'},
    'special-allowed': {'text': 'x <|eos|> y<|bos|><|eos|', 'allowSpecial': True},
    'bos-eos': {'text': 'the', 'addBos': True, 'addEos': True},
    'empty': {'text': ''},
}

DECODE = {
    'plain': {'ids': [116, 104, 101]},
    'special-kept': {'ids': [256, 104, 257]},
    'special-skipped': {'ids': [256, 104, 257], 'skipSpecialTokens': True},
    'cut-multibyte': {'ids': [195]},
    'unknown-id': {'ids': [104, 100000]},
}

def invalid_cases():
    def patched(fn):
        t = base_tokenizer()
        fn(t)
        return t
    def drop_byte(t):
        del t['model']['vocab'][BYTE_TO_CHAR[0x41]]
    def gap(t):
        t['model']['vocab']['zzz'] = len(t['model']['vocab']) + 5
    return {
        'model-not-bpe': patched(lambda t: t['model'].update(type='WordPiece')),
        'normalizer': patched(lambda t: t.update(normalizer={'type': 'NFC'})),
        'prefix-space': patched(lambda t: t['pre_tokenizer'].update(add_prefix_space=True)),
        'no-regex': patched(lambda t: t['pre_tokenizer'].update(use_regex=False)),
        'byte-fallback': patched(lambda t: t['model'].update(byte_fallback=True)),
        'subword-prefix': patched(lambda t: t['model'].update(continuing_subword_prefix='##')),
        'missing-byte': patched(drop_byte),
        'id-gap': patched(gap),
        'duplicate-id': patched(lambda t: t['model']['vocab'].update(zz=5)),
        'not-byte-level': patched(lambda t: t['model']['vocab'].update({'\u4e2d': len(t['model']['vocab'])})),
        'merge-result-missing': patched(lambda t: t['model']['merges'].append('x y')),
        'merge-not-a-pair': patched(lambda t: t['model']['merges'].append('a b c')),
        'added-token-lstrip': patched(lambda t: t['added_tokens'][0].update(lstrip=True)),
        'added-token-reuses-id': patched(lambda t: t['added_tokens'][0].update(id=65)),
    }

def write_vectors():
    tok_doc = base_tokenizer()
    with open(os.path.join(HERE, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tok_doc, f, ensure_ascii=False, indent=2)
        f.write('\n')
    tok = Tokenizer(tok_doc)
    def dump(name, obj):
        with open(os.path.join(HERE, name), 'w', encoding='utf-8') as f:
            json.dump(obj, f, ensure_ascii=True, indent=2)
            f.write('\n')
    for name, text in PRETOKENIZE.items():
        dump(f'pretokenize-{name}.json', {'description': f'pre-tokenization: {name.replace("-", " ")}', 'text': text, 'pieces': pretokenize(text)})
    for name, c in ENCODE.items():
        ids = tok.encode(c['text'], c.get('allowSpecial', False), c.get('addBos', False), c.get('addEos', False))
        dump(f'encode-{name}.json', {'description': f'encode with tokenizer.json: {name.replace("-", " ")}', **c, 'ids': ids})
    for name, c in DECODE.items():
        try:
            b = tok.decode_bytes(c['ids'], c.get('skipSpecialTokens', False))
            out = {'bytesHex': b.hex(), 'text': b.decode('utf-8', 'replace')}
        except KeyError:
            out = {'error': 'UnknownTokenIdError'}
        dump(f'decode-{name}.json', {'description': f'decode with tokenizer.json: {name.replace("-", " ")}', **c, **out})
    for name, doc in invalid_cases().items():
        dump(f'invalid-{name}.json', {'description': f'tokenizer.json that must be refused: {name.replace("-", " ")}', 'tokenizerJson': doc, 'error': 'TokenizerFormatError'})

def check():
    n = 0
    tok = Tokenizer(json.load(open(os.path.join(HERE, 'tokenizer.json'), encoding='utf-8')))
    for f in sorted(os.listdir(HERE)):
        if not f.endswith('.json') or f == 'tokenizer.json':
            continue
        v = json.load(open(os.path.join(HERE, f), encoding='utf-8'))
        if f.startswith('pretokenize-'):
            assert pretokenize(v['text']) == v['pieces'], f
            assert ''.join(v['pieces']) == v['text'], f
        elif f.startswith('encode-'):
            assert tok.encode(v['text'], v.get('allowSpecial', False), v.get('addBos', False), v.get('addEos', False)) == v['ids'], f
        elif f.startswith('decode-'):
            if 'error' in v:
                try:
                    tok.decode_bytes(v['ids'])
                    raise AssertionError(f)
                except KeyError:
                    pass
            else:
                b = tok.decode_bytes(v['ids'], v.get('skipSpecialTokens', False))
                assert b.hex() == v['bytesHex'] and b.decode('utf-8', 'replace') == v['text'], f
        elif f.startswith('invalid-'):
            try:
                Tokenizer(v['tokenizerJson'])
                raise AssertionError(f + ' was accepted')
            except FormatError:
                pass
        else:
            raise AssertionError('unknown vector ' + f)
        n += 1
    # the genesis dataset's token ids, from its corpus and tokenizer.json
    g = os.path.join(SPECS, 'genesis-data', 'vectors')
    gtok = Tokenizer(json.load(open(os.path.join(g, 'tokenizer.json'), encoding='utf-8')))
    docs = [json.loads(l)['text'] for l in open(os.path.join(g, 'corpus.jsonl'), encoding='utf-8') if l.strip()]
    gv = json.load(open(os.path.join(g, 'vectors.json'), encoding='utf-8'))
    assert [gtok.encode(d) for d in docs] == gv['documentTokens'], 'genesis-data documentTokens differ'
    print(f'tokenizer vectors: {n} files and the genesis-data documentTokens check out')

if __name__ == '__main__':
    if '--write' in sys.argv:
        write_vectors()
    check()

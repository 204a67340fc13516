// tokenizer.json's vocabulary and merges read from its bytes (ts/gguf/tokenizer_json.ts) against JSON.parse and
// Buffer's UTF-8 encoder, the reading every other path of litlora uses: JSON escapes of every kind (a surrogate
// pair, a lone surrogate, an escaped space inside a merge pair), raw UTF-8 of 1 to 4 bytes, pretty-printed and
// compact files, keys in any order and a nested "vocab" that is not the model's. What the fast reader cannot
// promise (a key given twice, two tokens with one id, bytes that are not UTF-8, a fractional id, a malformed file)
// goes through JSON.parse: the same vocabulary, or ERR_CHECKPOINT_FORMAT. The gguf-py side of the same bytes is
// in 14.gguf.metadata (a Qwen2-sized vocabulary against convert_hf_to_gguf.py's).
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scanBpeTokenizerJson } from '../ts/gguf/tokenizer_json.js';
import { ggufVocab, TOKEN_TYPE } from '../ts/gguf/vocab.js';
import { EncodedStrings } from '../ts/gguf/writer.js';
import { assertCode } from './helpers/assert.js';
import { TOKENIZERS } from './helpers/gguf.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

/** The strings of a GGUF string array's bytes. */
function decode(e: EncodedStrings | readonly string[]): string[] {
  assert.ok(e instanceof EncodedStrings, 'read from the bytes (EncodedStrings)');
  const out: string[] = [];
  const b = Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.length);
  let at = 0;
  for (let i = 0; i < e.length; i++) {
    const n = Number(b.readBigUInt64LE(at));
    out.push(b.toString('latin1', at + 8, at + 8 + n));
    at += 8 + n;
  }
  assert.is(at, b.length, 'no bytes after the last string');
  return out;
}

/** What GGUF holds for a JS string: its UTF-8 (a lone surrogate as U+FFFD), here as latin1 to compare bytes exactly. */
const bytesOf = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

/** The tokens and merges convert_to_gguf writes for a parsed tokenizer.json (vocab.ts's JSON.parse path, restated). */
function expected(json: any, rows: number): { tokens: string[]; types: number[]; merges: string[] } {
  const tokens: string[] = [], types: number[] = [];
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(json.model.vocab)) byId.set(Number(id), text);
  const added = new Map<number, any>((json.added_tokens ?? []).map((a: any) => [a.id, a]));
  for (let i = 0; i < rows; i++) {
    const a = added.get(i), t = a ? a.content : byId.get(i);
    if (t === undefined) { tokens.push(bytesOf(`[PAD${i}]`)); types.push(TOKEN_TYPE.UNUSED); continue; }
    const control = a && (a.special || (t.startsWith('<|') && t.endsWith('|>')));
    tokens.push(bytesOf(a && !control ? t.replaceAll('\u2581', ' ') : t));
    types.push(!a ? TOKEN_TYPE.NORMAL : control ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
  }
  const merges = json.model.merges.map((m: string | string[]) => bytesOf(typeof m === 'string' ? m
    : m.map((p) => [...p].map((c) => (c === ' ' ? '\u0120' : c)).join('')).join(' ')));
  return { tokens, types, merges };
}

const TOKENS = [
  'a', 'b', 'ab', 'Ġthe', 'quote"inside', 'back\\slash', 'new\nline', 'tab\t', 'slash/', 'nul\u0000', 'é', 'ü',
  '中文', '😀', 'x😀y', '\ud800', 'lone\udc00low', 'high\ud83d', '\u2581under', ' ', '  ', 'Ġ Ġ',
];

function tokenizerJson(): any {
  const vocab: Record<string, number> = {};
  TOKENS.forEach((t, i) => { vocab[t] = i; });
  return {
    version: '1.0',
    added_tokens: [
      { id: TOKENS.length + 1, content: '<|endoftext|>', special: true },
      { id: TOKENS.length + 3, content: 'user\u2581word', special: false },
      { id: 2, content: 'AB', special: false },  // an added token over a vocabulary id
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', vocab: { ignored: 1 } },
    model: {
      type: 'BPE', dropout: null, unk_token: null, byte_fallback: false,
      vocab,
      merges: ['a b', ['Ġ', 'the'], ['with space', 'x'], ['😀', '\ud800'], 'é ü', ['\u0020', 'tail']],
    },
  };
}

/** A folder with `text` as its tokenizer.json. */
function folder(tag: string, text: string | Buffer): string {
  const dir = temp.make(tag);
  writeFileSync(join(dir, 'tokenizer.json'), text);
  copyFileSync(join(TOKENIZERS, 'llama3', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return dir;
}

function assertVocab(dir: string, json: any, rows: number, fast: boolean): void {
  const v = ggufVocab(dir, rows, {});
  const want = expected(json, rows);
  if (fast) {
    assert.equal(decode(v.tokens), want.tokens);
    assert.equal(decode(v.merges), want.merges);
  } else {
    assert.equal((v.tokens as string[]).map(bytesOf), want.tokens);
    assert.equal((v.merges as string[]).map(bytesOf), want.merges);
  }
  assert.equal(Array.from(v.tokenTypes), want.types);
  assert.is(v.pre, 'gpt-2');
}

test('escapes, surrogates and UTF-8 of 1 to 4 bytes: the bytes JSON.parse and Buffer give, compact and pretty-printed', () => {
  const json = tokenizerJson();
  // JSON.stringify writes non-ASCII raw (lone surrogates escaped); the ASCII-escaped variant writes every
  // non-ASCII character as \uXXXX (an emoji as a surrogate pair), and spaces in the merges as \u0020.
  const compact = JSON.stringify(json);
  const escaped = compact.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replaceAll('" "', '"\\u0020"').replace('with space', 'with\\u0020space');
  for (const [tag, text] of [['compact', compact], ['pretty', JSON.stringify(json, null, 2)], ['escaped', escaped]] as const) {
    assert.ok(scanBpeTokenizerJson(Buffer.from(text)), `${tag}: read from the bytes`);
    assertVocab(folder(`tj-${tag}`, text), JSON.parse(text), TOKENS.length + 6, true);
  }
});

test('key order: merges before vocab, model first or last, other keys holding objects and arrays', () => {
  const json = tokenizerJson();
  const { model, ...others } = json;
  const reordered = { model: { merges: model.merges, type: model.type, vocab: model.vocab, byte_fallback: false, extra: [[1, { a: '}' }], 'x]'] }, ...others };
  const text = JSON.stringify(reordered, null, '\t');
  assert.ok(scanBpeTokenizerJson(Buffer.from(text)));
  assertVocab(folder('tj-order', text), reordered, TOKENS.length + 4, true);
});

test('what the fast reader does not promise goes through JSON.parse: the same vocabulary, or ERR_CHECKPOINT_FORMAT', async () => {
  const json = tokenizerJson();
  const text = JSON.stringify(json);
  // A key given twice: JSON.parse keeps the last id, and the first id is a [PAD].
  const duplicate = text.replace('"a":0,', `"b":${TOKENS.length},"a":0,`);
  const cases: [string, string | Buffer][] = [
    ['duplicate key', duplicate],
    ['one id twice', text.replace('"b":1,', '"b":0,')],
    ['a fractional id', text.replace('"b":1,', '"b":1.0,')],
    ['an exponent', text.replace('"b":1,', '"b":1e0,')],
    ['not UTF-8', Buffer.concat([Buffer.from(text.slice(0, -1)), Buffer.from(',"junk":"'), Buffer.from([0xff]), Buffer.from('"}')])],
  ];
  for (const [tag, body] of cases) {
    assert.is(scanBpeTokenizerJson(Buffer.isBuffer(body) ? body : Buffer.from(body)), null, tag);
    const dir = folder('tj-fallback', body);
    const parsed = JSON.parse(Buffer.isBuffer(body) ? body.toString('utf8') : body);
    assertVocab(dir, parsed, TOKENS.length + 4, false);
  }
  for (const bad of [text.slice(0, -1), text.replace('"b":1,', '"b":01,'), text.replace('"b":1,', '"b":1,,')]) {
    assert.is(scanBpeTokenizerJson(Buffer.from(bad)), null);
    await assertCode(() => ggufVocab(folder('tj-bad', bad), TOKENS.length + 4, {}), 'ERR_CHECKPOINT_FORMAT', 'is not valid JSON');
  }
});

test('an id past the embedding\'s rows is ERR_GGUF_UNSUPPORTED, read from the bytes as through JSON.parse', async () => {
  const json = tokenizerJson();
  await assertCode(() => ggufVocab(folder('tj-rows', JSON.stringify(json)), TOKENS.length, {}), 'ERR_GGUF_UNSUPPORTED', `has token id ${TOKENS.length + 3}`);
});

test.run();

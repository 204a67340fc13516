import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tokenizer } from '../ts/index.js';
import { packageRoot } from '../ts/addon_loader.js';
import { assertCode } from './helpers/assert.js';
import { tempFolders } from './helpers/temp.js';

// Fixtures and ground truth come from test/reference/make_tokenizer_fixtures.py (Rust `tokenizers` 0.23).
const FIXTURES = join(import.meta.dirname, 'fixtures', 'tokenizers');
const NAMES = ['neox', 'llama2', 'llama3', 'bytes'] as const;
const expected = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8'));
const load = (name: string) => Tokenizer.fromDir(join(FIXTURES, name));

for (const name of NAMES) {
  test(`${name}: ids equal the Rust tokenizers library's on every string (unicode, whitespace, emoji, specials)`, () => {
    const tok = load(name);
    const exp = expected(name);
    assert.ok(exp.cases.length >= 20);
    for (const c of exp.cases) assert.equal(tok.encodeRaw(c.text), c.ids, `${name}: ${JSON.stringify(c.text)}`);
    assert.is(tok.vocabSize, exp.vocab_size);
  });

  test(`${name}: decode equals the Rust library's, with and without special tokens`, () => {
    const tok = load(name);
    for (const c of expected(name).cases) {
      assert.is(tok.decode(c.ids), c.decoded, `${name}: ${JSON.stringify(c.text)}`);
      assert.is(tok.decode(c.ids, { skipSpecialTokens: false }), c.decoded_with_special, `${name}: ${JSON.stringify(c.text)}`);
    }
  });

  test(`${name}: the stream decoder emits exactly the full decode, never a broken character`, () => {
    const tok = load(name);
    for (const c of expected(name).cases) {
      const stream = tok.streamDecoder();
      let text = '';
      for (const id of c.ids) {
        const piece = stream.push(id);
        assert.not.ok(piece.includes('\uFFFD') && !c.decoded.includes('\uFFFD'), `${name}: piece ${JSON.stringify(piece)}`);
        text += piece;
      }
      text += stream.flush();
      assert.is(text, c.decoded, `${name}: ${JSON.stringify(c.text)}`);
      assert.is(stream.text, c.decoded);
    }
  });
}

test('stream decoder holds back a multi-byte character until its last byte arrives', () => {
  const tok = load('bytes');
  const ids = [...Buffer.from('a😀b', 'utf8')];
  const stream = tok.streamDecoder();
  assert.equal(ids.map((id) => stream.push(id)), ['a', '', '', '', '😀', 'b']);
  const cut = tok.streamDecoder();
  cut.pushAll([0xf0, 0x9f]);
  assert.is(cut.flush(), '\uFFFD'); // an incomplete tail decodes as a full decode would
});

test('bos/eos/pad ids come from tokenizer_config.json; use_bos follows litgpt', () => {
  const neox = load('neox');
  assert.equal([neox.bosId, neox.eosId, neox.useBos], [0, 0, false]);
  const llama2 = load('llama2');
  assert.equal([llama2.bosId, llama2.eosId, llama2.useBos], [1, 2, true]);
  const llama3 = load('llama3');
  assert.equal([llama3.bosId, llama3.eosId, llama3.useBos], [llama3.tokenToId('<|begin_of_text|>'), llama3.tokenToId('<|eot_id|>'), false]);
  const bytes = load('bytes');
  assert.equal([bytes.bosId, bytes.eosId, bytes.useBos, bytes.vocabSize], [256, 257, true, 256]);
  assert.is(bytes.tokenToId('<|pad|>'), 258);
  // litgpt: a folder named Llama-3* (or Meta-Llama-3*) always uses BOS, whatever tokenizer_config says.
  const dir = mkdtempSync(join(tmpdir(), 'litlora-tok-'));
  try {
    const named = join(dir, 'Llama-3.2-1B');
    cpSync(join(FIXTURES, 'llama3'), named, { recursive: true });
    assert.is(Tokenizer.fromDir(named).useBos, true);
    // Without tokenizer_config.json: no BOS by default; ids from generation_config.json.
    const bare = join(dir, 'bare');
    mkdirSync(bare);
    cpSync(join(FIXTURES, 'neox', 'tokenizer.json'), join(bare, 'tokenizer.json'));
    writeFileSync(join(bare, 'generation_config.json'), JSON.stringify({ bos_token_id: 0, eos_token_id: 0 }));
    const t = Tokenizer.fromDir(bare);
    assert.equal([t.useBos, t.bosId, t.eosId], [false, 0, 0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('encode follows litgpt: BOS once, bos=false strips a processor BOS, eos appends once, max_length cuts last', () => {
  const llama2 = load('llama2'); // its post-processor adds <s> itself
  const raw = llama2.encodeRaw('Hello world');
  assert.is(raw[0], 1);
  assert.equal([...llama2.encode('Hello world')], raw); // BOS not doubled
  assert.equal([...llama2.encode('Hello world', { bos: false })], raw.slice(1));
  assert.equal([...llama2.encode('Hello world', { eos: true })], [...raw, 2]);
  assert.equal([...llama2.encode('Hello world', { eos: true, maxLength: 3 })], raw.slice(0, 3)); // EOS can be cut
  assert.equal([...llama2.encode('')], [1]);
  assert.equal([...llama2.encode('', { bos: false, eos: true })], [2]);

  const bytes = load('bytes'); // use_bos from add_bos_token: true; the processor adds nothing
  assert.equal([...bytes.encode('hi')], [256, 104, 105]);
  assert.equal([...bytes.encode('hi', { bos: false, eos: true })], [104, 105, 257]);
  assert.ok(bytes.encode('hi') instanceof Int32Array);

  const llama3 = load('llama3'); // processor adds BOS but use_bos is false → litgpt strips it
  assert.equal([...llama3.encode('a')], llama3.encodeRaw('a').slice(1));
  assert.equal([...llama3.encode('a', { bos: true })], llama3.encodeRaw('a'));

  const neox = load('neox'); // bos == eos == <|endoftext|>: a text ending in it loses it unless eos=true
  assert.equal([...neox.encode('x<|endoftext|>')], neox.encodeRaw('x'));
});

test('decode skips special tokens by default and rejects ids outside the vocabulary', async () => {
  const bytes = load('bytes');
  assert.is(bytes.decode([256, 104, 105, 257]), 'hi');
  assert.is(bytes.decode(Int32Array.from([256, 104, 105, 257]), { skipSpecialTokens: false }), '<|bos|>hi<|eos|>');
  assert.is(bytes.decode([]), '');
  await assertCode(() => bytes.decode([100000]), 'ERR_RANGE', /100000/);
});

test('fromDir: missing, broken and SentencePiece-only folders are clear errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-tok-'));
  try {
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CHECKPOINT_MISSING', /no tokenizer\.json/);
    writeFileSync(join(dir, 'tokenizer.model'), 'x');
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /tokenizer\.model: not a SentencePiece model \(protobuf ModelProto\)/);
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /not valid JSON/);
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /'model'/);
    cpSync(join(FIXTURES, 'bytes', 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|nope|>' }));
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /<\|nope\|>/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A SentencePiece-only folder (tokenizer.model, no tokenizer.json): converted in memory; the ids are the SentencePiece
// library's own (test/reference/make_sentencepiece_fixture.py, SentencePiece 0.1.97).
test('tokenizer.model without tokenizer.json: ids and text equal the SentencePiece library\'s (spaces, bytes, user symbols)', () => {
  const tok = load('spm');
  const want = expected('spm');
  assert.is(tok.bosId, want.bos_id);
  assert.is(tok.eosId, want.eos_id);
  assert.is(tok.vocabSize, want.vocab_size);
  assert.ok(tok.useBos, 'add_bos_token: true in tokenizer_config.json');
  for (const c of want.cases) {
    // litgpt's SentencePiece backend: processor.encode(text), then BOS by the use_bos rule.
    assert.equal(Array.from(tok.encode(c.text, { bos: false })), c.ids, JSON.stringify(c.text));
    assert.equal(Array.from(tok.encode(c.text)), [want.bos_id, ...c.ids], JSON.stringify(c.text));
    assert.is(tok.decode(c.ids), c.decoded, JSON.stringify(c.text));
  }
  assert.is(tok.tokenToId('<s>'), 1);
  assert.ok(tok.isSpecial(2));
});

/** A protobuf message from [field, wire type, value] entries (varint 0, 32-bit float 5, bytes 2). */
function proto(fields: [number, 0 | 2 | 5, number | Uint8Array | string][]): Uint8Array {
  const out: number[] = [];
  const varint = (v: number) => { do { let b = v & 0x7f; v = Math.floor(v / 128); if (v) b |= 0x80; out.push(b); } while (v); };
  for (const [num, wire, value] of fields) {
    varint(num * 8 + wire);
    if (wire === 0) varint(value as number);
    else if (wire === 5) { const f = new Uint8Array(new Float32Array([value as number]).buffer); out.push(...f); }
    else { const b = typeof value === 'string' ? new TextEncoder().encode(value) : value as Uint8Array; varint(b.length); out.push(...b); }
  }
  return Uint8Array.from(out);
}

test('tokenizer.model: a Unigram model or one that normalizes text is refused with the reason; truncated bytes too', async () => {
  const temp = tempFolders();
  const dir = temp.make('spm-bad');
  try {
    const pieces = ['<unk>', '<s>', '</s>', '▁a', '▁', 'a'].map((p, i) => [1, 2, proto([[1, 2, p], [2, 5, -i], [3, 0, i < 3 ? (i ? 3 : 2) : 1]])] as [number, 2, Uint8Array]);
    const model = (trainer: [number, 0 | 2 | 5, number][], normalizer: [number, 0 | 2 | 5, number | string][]) =>
      proto([...pieces, [2, 2, proto(trainer)], [3, 2, proto(normalizer)]]);
    writeFileSync(join(dir, 'tokenizer.model'), model([[3, 0, 1]], [[4, 0, 0]]));
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /is a SentencePiece UNIGRAM model; litlora converts BPE models/);
    writeFileSync(join(dir, 'tokenizer.model'), model([[3, 0, 2]], [[1, 2, 'nmt_nfkc'], [2, 2, 'xx']]));
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /normalizes text \(rule 'nmt_nfkc'\)/);
    writeFileSync(join(dir, 'tokenizer.model'), model([[3, 0, 2]], []));
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /normalizes text \(collapses whitespace\)/);
    writeFileSync(join(dir, 'tokenizer.model'), model([[3, 0, 2]], [[4, 0, 0]]));
    const tok = Tokenizer.fromDir(dir);
    assert.equal(Array.from(tok.encode('a', { bos: false })), [3]);
    writeFileSync(join(dir, 'tokenizer.model'), model([[3, 0, 2]], [[4, 0, 0]]).subarray(0, 20));
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CONFIG', /not a SentencePiece model/);
  } finally {
    temp.removeAll();
  }
});

// The Split / Replace patterns of real tokenizer families (as in their tokenizer.json files).
const REAL_PATTERNS = {
  'GPT-2': String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
  'Llama 3 / Qwen 2': String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  'GPT-4o (o200k)': String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  'DeepSeek V3': String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_\`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  'DeepSeek CJK': '[一-龥\u3040-ゟ゠-ヿ]+',
  'Bloom': String.raw` ?[^(\s|[.,!?…。，、।۔،])]+`,
  'T5 whitespace': ' {2,}',
  'Falcon digits': '[0-9][0-9][0-9]',
};

/** The bytes fixture's tokenizer.json with `pattern` as its Split pre-tokenizer (and `normalizer`, if given). */
function withPattern(pattern: string, normalizer: unknown = null): any {
  const json = JSON.parse(readFileSync(join(FIXTURES, 'bytes', 'tokenizer.json'), 'utf8'));
  json.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, json.pre_tokenizer,
  ] };
  json.normalizer = normalizer;
  return json;
}

test('the regexes of real tokenizer families pass the backtracking check and tokenize', () => {
  for (const [family, pattern] of Object.entries(REAL_PATTERNS)) {
    const tok = new Tokenizer(withPattern(pattern), { source: family });
    assert.is(tok.decode(tok.encodeRaw('Hello  world 12345 — ÉCOLE 中文!')), 'Hello  world 12345 — ÉCOLE 中文!', family);
  }
});

test('catastrophic regex shapes are ERR_CHECKPOINT_FORMAT naming the pattern, its place and the construct', async () => {
  const cases: [pattern: string, construct: RegExp][] = [
    ['(a+)+$', /nested quantifiers/],
    [String.raw`(\w+\s?)*$`, /nested quantifiers/],
    ['(?:a{1,3})+$', /nested quantifiers/],
    ['(a|ab)*c', /overlapping alternatives/],
    [String.raw`(\w|\d)+$`, /overlapping alternatives/],
  ];
  for (const [pattern, construct] of cases) {
    await assertCode(() => new Tokenizer(withPattern(pattern), { source: 'hostile/tokenizer.json' }), 'ERR_CHECKPOINT_FORMAT', construct);
    await assertCode(() => new Tokenizer(withPattern(pattern)), 'ERR_CHECKPOINT_FORMAT',
      `tokenizer.json: the regex ${JSON.stringify(pattern)} at pre_tokenizer.pretokenizers[0].pattern.Regex can backtrack catastrophically`);
  }
  // The normalizer and decoder trees are checked too.
  const inNormalizer = withPattern('a', { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '(x*)*y' }, content: '' }] });
  await assertCode(() => new Tokenizer(inNormalizer), 'ERR_CHECKPOINT_FORMAT', /normalizer\.normalizers\[0\]\.pattern\.Regex/);
  const inDecoder = withPattern('a');
  inDecoder.decoder = { type: 'Replace', pattern: { Regex: '(b|b)+' }, content: '' };
  await assertCode(() => new Tokenizer(inDecoder), 'ERR_CHECKPOINT_FORMAT', /decoder\.pattern\.Regex/);
});

test('a hostile tokenizer folder is a coded error at load, not a hang (child process)', () => {
  const temp = tempFolders();
  try {
    const root = temp.make('tok-hostile');
    const folder = (name: string, pattern: string) => {
      const dir = join(root, name);
      cpSync(join(FIXTURES, 'llama3'), dir, { recursive: true });
      const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
      json.pre_tokenizer.pretokenizers[0].pattern.Regex = pattern;
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
      return dir;
    };
    // The first shape is the static check's; the second only shows when the pattern runs (bounded probes).
    const dirs = [folder('nested', '(a+)+$'), folder('optional', '(?:a?a)+$'), join(FIXTURES, 'llama3')];
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'tokenizer-child.ts'), ...dirs],
      { cwd: packageRoot, encoding: 'utf8', timeout: 120_000 });
    assert.is(r.signal, null, `the child hung and was killed (stderr: ${r.stderr})`);
    assert.is(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.is(lines.length, 3);
    assert.is(lines[0].code, 'ERR_CHECKPOINT_FORMAT', lines[0].message);
    assert.match(lines[0].message, /"\(a\+\)\+\$" at pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex can backtrack catastrophically/);
    assert.match(lines[0].message, /original tokenizer\.json/);
    assert.is(lines[1].code, 'ERR_CHECKPOINT_FORMAT', lines[1].message);
    assert.match(lines[1].message, /\(\?:a\?a\)\+\$/);
    assert.ok(lines[2].ids > 0, 'the real Llama 3 tokenizer still loads and encodes');
  } finally {
    temp.removeAll();
  }
});

test.run();

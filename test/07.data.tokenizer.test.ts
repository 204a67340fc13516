import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tokenizer } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';

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
    await assertCode(() => Tokenizer.fromDir(dir), 'ERR_CHECKPOINT_MISSING', /tokenizer\.model/);
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

test.run();

import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { collate, encodeSample, PromptStyle, Tokenizer } from '../ts/index.js';

// The byte-level fixture makes ids readable: a character's id is its byte, BOS 256, EOS 257 (use_bos true).
const bytes = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'bytes'));
const ids = (s: string) => [...Buffer.from(s, 'utf8')];
const BOS = 256, EOS = 257, X = -100;
const plain = { promptStyle: PromptStyle.fromName('default'), maxSeqLength: -1, maskPrompt: false, ignoreIndex: -100 };

test('encodeSample: prompt (BOS) + response (no BOS, EOS), labels equal to inputs without mask_prompt', () => {
  const e = encodeSample(bytes, { instruction: 'ab', output: 'c' }, plain);
  assert.equal([...e.inputIds], [BOS, 97, 98, 99, EOS]);
  assert.equal([...e.labels], [BOS, 97, 98, 99, EOS]);
  assert.is(e.promptLength, 3);
  assert.ok(e.inputIds instanceof Int32Array && e.labels instanceof Int32Array);
});

test('encodeSample: mask_prompt sets the prompt part to ignore_index', () => {
  const e = encodeSample(bytes, { instruction: 'ab', output: 'cd' }, { ...plain, maskPrompt: true });
  assert.equal([...e.labels], [X, X, X, 99, 100, EOS]);
  const custom = encodeSample(bytes, { instruction: 'ab', output: 'cd' }, { ...plain, maskPrompt: true, ignoreIndex: -1 });
  assert.equal([...custom.labels], [-1, -1, -1, 99, 100, EOS]);
});

test('encodeSample: truncation as litgpt C (each part cut to L, the concatenation cut to L, EOS can go)', () => {
  const s = { instruction: 'ab', output: 'cd' };
  assert.equal([...encodeSample(bytes, s, { ...plain, maxSeqLength: 5 }).inputIds], [BOS, 97, 98, 99, 100]);
  const short = encodeSample(bytes, s, { ...plain, maxSeqLength: 2, maskPrompt: true });
  assert.equal([...short.inputIds], [BOS, 97]);
  assert.equal([...short.labels], [X, X]);
  assert.is(short.promptLength, 2);
  // The response is cut to L on its own before concatenation: L=4 → prompt [BOS,a,b], response [c,d,EOS][:4].
  assert.equal([...encodeSample(bytes, { instruction: 'a', output: 'bcdef' }, { ...plain, maxSeqLength: 4 }).inputIds], [BOS, 97, 98, 99]);
});

test('encodeSample: the Alpaca prompt with and without input', () => {
  const alpaca = { ...plain, promptStyle: PromptStyle.fromName('alpaca'), maskPrompt: true };
  const withInput = encodeSample(bytes, { instruction: 'Reverse', input: 'abc', output: 'cba' }, alpaca);
  const prompt = PromptStyle.fromName('alpaca').apply('Reverse', { input: 'abc' });
  assert.equal([...withInput.inputIds], [BOS, ...ids(prompt), ...ids('cba'), EOS]);
  assert.equal([...withInput.labels], [...new Array(1 + ids(prompt).length).fill(X), ...ids('cba'), EOS]);
  const noInput = encodeSample(bytes, { instruction: 'Reverse: abc', input: '', output: 'cba' }, alpaca);
  assert.equal([...noInput.inputIds], [BOS, ...ids(PromptStyle.fromName('alpaca').apply('Reverse: abc')), ...ids('cba'), EOS]);
});

test('collate: right-pads input_ids with 0 and labels with ignore_index; row-major B×T Int32Array', () => {
  const a = encodeSample(bytes, { instruction: 'ab', output: 'c' }, plain); // 5 tokens
  const b = encodeSample(bytes, { instruction: '', output: 'z' }, { ...plain, maskPrompt: true }); // [BOS, z, EOS]
  const batch = collate([a, b]);
  assert.equal([batch.batchSize, batch.seqLength, batch.tokenCount], [2, 5, 8]);
  assert.equal([...batch.inputIds], [BOS, 97, 98, 99, EOS, BOS, 122, EOS, 0, 0]);
  assert.equal([...batch.labels], [BOS, 97, 98, 99, EOS, X, 122, EOS, X, X]);
  assert.equal(batch.sampleIndices, [0, 1]);
  const cut = collate([a, b], { maxSeqLength: 3, ignoreIndex: -1, padId: 7 });
  assert.equal([cut.seqLength, cut.tokenCount], [3, 6]);
  assert.equal([...cut.inputIds], [BOS, 97, 98, BOS, 122, EOS]);
  assert.equal([...cut.labels], [BOS, 97, 98, X, 122, EOS]); // the sample's own mask stays; ignoreIndex only pads
  const single = collate([b], { padId: 7 });
  assert.equal([...single.inputIds], [BOS, 122, EOS]);
});

test.run();

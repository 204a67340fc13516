import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, synthetic, Tokenizer } from '../ts/index.js';
import { jsonErrorOffset } from '../ts/data/instruction.js';

test('synthetic task: deterministic in the seed, correct answers of 1–4 characters, held-out prompts unseen', () => {
  const a = synthetic.syntheticInstructionTask({ seed: 7, trainSize: 500, testSize: 100 });
  const b = synthetic.syntheticInstructionTask({ seed: 7, trainSize: 500, testSize: 100 });
  const c = synthetic.syntheticInstructionTask({ seed: 8, trainSize: 500, testSize: 100 });
  assert.equal(a, b);
  assert.not.equal(a.train, c.train);
  assert.equal([a.train.length, a.test.length], [500, 100]);
  const trainPrompts = new Set(a.train.map((s) => s.instruction));
  for (const s of a.test) assert.not.ok(trainPrompts.has(s.instruction), s.instruction);
  assert.is(new Set(a.test.map((s) => s.instruction)).size, 100);
  for (const s of [...a.train, ...a.test]) {
    assert.ok(s.output.length >= 1 && s.output.length <= 4, s.output);
    assert.equal(synthetic.makeSyntheticSample(s.task, s.instruction.split(/[ :]+/).pop()!), s);
  }
  assert.equal(new Set(a.train.map((s) => s.task)), new Set(synthetic.SYNTHETIC_TASKS));
  assert.equal(synthetic.makeSyntheticSample('reverse', 'abc').output, 'cba');
  assert.equal(synthetic.makeSyntheticSample('uppercase', 'dog'), { task: 'uppercase', instruction: 'Uppercase: dog', output: 'DOG' });
  assert.equal(synthetic.makeSyntheticSample('next', 'c'), { task: 'next', instruction: 'Next letter after c', output: 'd' });
  assert.equal(synthetic.makeSyntheticSample('double', 'ab').output, 'abab');
});

test('answer accuracy: exact match of the first line, trimmed', () => {
  const samples = [{ output: 'cba' }, { output: 'DOG' }, { output: 'd' }, { output: 'x' }];
  const r = synthetic.answerAccuracy(samples, ['cba', ' DOG\n### Instruction', 'e', '']);
  assert.equal([r.correct, r.total, r.accuracy], [2, 4, 0.5]);
  assert.equal(r.wrong, [{ index: 2, expected: 'd', got: 'e' }, { index: 3, expected: 'x', got: '' }]);
  assert.is(synthetic.extractAnswer('ab\r\ncd'), 'ab');
});

test('the synthetic task through the JSON module, and the corpus through TextFiles', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-syn-'));
  try {
    const tok = Tokenizer.fromDir(join(import.meta.dirname, 'fixtures', 'tokenizers', 'bytes'));
    const { train } = synthetic.syntheticInstructionTask({ seed: 1, trainSize: 200, testSize: 20 });
    synthetic.writeInstructionJson(join(dir, 'train.json'), train);
    const m = createDataModule('JSON', { json_path: join(dir, 'train.json'), val_split_fraction: 0.1, mask_prompt: true });
    await m.setup(tok, { maxSeqLength: 256 });
    assert.equal([m.trainSize, m.valSize], [180, 20]);
    const docs = synthetic.syntheticCorpus({ seed: 3, documents: 3, sentencesPerDocument: 50 });
    assert.equal(docs, synthetic.syntheticCorpus({ seed: 3, documents: 3, sentencesPerDocument: 50 }));
    assert.match(docs[0]!, /reversed is|In capitals|After . comes|first letter|Twice/);
    const files = synthetic.writeSyntheticCorpus(join(dir, 'corpus'), docs);
    assert.equal(readdirSync(join(dir, 'corpus')).sort(), ['part-000.txt', 'part-001.txt', 'part-002.txt']);
    assert.is(files.length, 3);
    const t = createDataModule('TextFiles', { train_data_path: join(dir, 'corpus') });
    await t.setup(tok, { maxSeqLength: 64 });
    assert.ok(t.trainSize > 20 && t.valSize > 10);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jsonErrorOffset finds the first syntax error', () => {
  assert.is(jsonErrorOffset('{"a": oops}'), 6);
  assert.is(jsonErrorOffset('[1, 2,, 3]'), 6);
  assert.is(jsonErrorOffset('[{"a": "b"'), 10);
  assert.is(jsonErrorOffset('{"a": "b\\q"}'), 9);
  assert.is(jsonErrorOffset('[1] x'), 4);
});

test.run();

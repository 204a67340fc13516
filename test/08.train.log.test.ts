// What a run tells, and where: a Trainer used as a library prints nothing; litgpt's lines go to a `logger`
// callback, or to stdout with progress 'plain' (what `litlora finetune lora` prints, test/08.train.cli.test.ts).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDataModule, initCheckpoint, Model, synthetic } from '../ts/index.js';
import { Trainer, type TrainerOptions } from '../ts/train/trainer.js';
import { assertCode } from './helpers/assert.js';
import { tempDir } from './helpers/tiny_train.js';

let dir = '';
let base = '';
test.before(async () => {
  dir = tempDir();
  base = join(dir, 'base');
  await initCheckpoint({
    outDir: base, modelName: 'pythia-14m', seed: 3,
    overrides: { n_layer: 1, n_embd: 32, n_head: 2, intermediate_size: 64, block_size: 256 },
  });
  const { train } = synthetic.syntheticInstructionTask({ trainSize: 24, testSize: 2 });
  synthetic.writeInstructionJson(join(dir, 'data.json'), train);
});
test.after(() => { rmSync(dir, { recursive: true, force: true }); });

/** A short run into out_dir `name`: two optimizer steps, a step folder, a validation, final/ merged. */
async function run(name: string, extra: Partial<TrainerOptions>): Promise<void> {
  const model = await Model.load(base, { lora: { r: 4, alpha: 8, dropout: 0 } });
  try {
    await new Trainer({
      model, data: createDataModule('JSON', { json_path: join(dir, 'data.json') }), checkpointDir: base, outDir: join(dir, name),
      train: { globalBatchSize: 4, microBatchSize: 2, lrWarmupSteps: 1, maxSteps: 2, saveInterval: 2 },
      eval: { interval: 2, maxIters: 1, maxNewTokens: 2 },
      ...extra,
    }).run();
  } finally {
    model.dispose();
  }
}

/** What `fn` writes through process.stdout.write and process.stderr.write (console.log included). */
async function captureConsole(fn: () => Promise<void>): Promise<{ out: string; err: string }> {
  const written = { out: '', err: '' };
  const { write: outWrite } = process.stdout, { write: errWrite } = process.stderr;
  process.stdout.write = ((chunk: string | Uint8Array) => { written.out += String(chunk); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => { written.err += String(chunk); return true; }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stdout.write = outWrite;
    process.stderr.write = errWrite;
  }
  return written;
}

/** litgpt's lines of such a run, in order (times and losses as patterns). */
function expectLines(lines: string[], outDir: string): void {
  const patterns = [
    /^Number of trainable parameters: 512$/,
    /^Number of non-trainable parameters: [\d,]+$/,
    /^Epoch 1 \| iter 1 step 0 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms$/,
    /^Epoch 1 \| iter 2 step 1 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms \(step\)$/,
    /^Epoch 1 \| iter 3 step 1 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms$/,
    /^Epoch 1 \| iter 4 step 2 \| loss train: \d+\.\d{3}, val: n\/a \| iter time: [\d.]+ ms \(step\)$/,
    /^iter 4: val loss \d+\.\d{4}, val time: [\d.]+ ms$/,
  ];
  patterns.forEach((re, i) => assert.match(lines[i] ?? '', re, `line ${i + 1}`));
  const rest = lines.slice(patterns.length);
  // The example generation's text (any line) comes after the validation line; the saves are exact.
  const tail = rest.filter((l) => /^(Saving|Saved|Training time|Final evaluation)/.test(l));
  assert.is(tail.length, 5, rest.join('\n'));
  assert.is(tail[0], `Saving LoRA weights to ${JSON.stringify(join(outDir, 'step-000002', 'lit_model.pth.lora'))}`);
  assert.match(tail[1]!, /^Training time: \d+\.\d{2}s$/);
  assert.match(tail[2]!, /^Final evaluation \| val loss: \d+\.\d{3} \| val ppl: \d+\.\d{3}$/);
  assert.is(tail[3], `Saving LoRA weights to ${JSON.stringify(join(outDir, 'final', 'lit_model.pth.lora'))}`);
  assert.is(tail[4], `Saved merged weights to ${JSON.stringify(join(outDir, 'final', 'lit_model.pth'))}`);
}

test('a library Trainer with default options writes nothing to stdout or stderr', async () => {
  const written = await captureConsole(() => run('quiet', {}));
  assert.equal(written, { out: '', err: '' });
});

test('logger receives litgpt\'s lines, one per call, while the console stays silent', async () => {
  const lines: string[] = [];
  const written = await captureConsole(() => run('logged', { logger: (line) => lines.push(line) }));
  assert.equal(written, { out: '', err: '' });
  expectLines(lines, join(dir, 'logged'));
  assert.ok(lines.every((l) => !l.endsWith('\n')));
});

test('progress \'plain\' prints the same lines to stdout; a function as progress is ERR_ARG pointing to logger', async () => {
  const written = await captureConsole(() => run('plain', { progress: 'plain' }));
  assert.is(written.err, '');
  assert.ok(written.out.endsWith('\n'));
  expectLines(written.out.slice(0, -1).split('\n'), join(dir, 'plain'));
  const model = await Model.load(base, { lora: { r: 4, alpha: 8 } });
  const data = createDataModule('JSON', { json_path: join(dir, 'data.json') });
  await assertCode(() => new Trainer({ model, data, checkpointDir: base, progress: ((t: string) => t) as never }), 'ERR_ARG',
    /^progress: expected 'auto', 'plain', 'bar' or 'none', got a function; pass a function that takes each line as logger$/);
  await assertCode(() => new Trainer({ model, data, checkpointDir: base, logger: 'stdout' as never }), 'ERR_ARG', /^logger: expected a function/);
  model.dispose();
});

test.run();

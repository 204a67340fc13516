// The training loop without files: gradient accumulation, bad data, non-finite losses, events, precisions.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildInfo, createDataModule, LitloraError, synthetic } from '../ts/index.js';
import { Trainer, type TrainerEvent } from '../ts/train/trainer.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { Model } from '../ts/index.js';
import { bytesTokenizer, tempDir, TINY_CONFIG, tinyModel } from './helpers/tiny_train.js';

let dir = '';
test.before.each(() => { dir = tempDir(); });
test.after.each(() => { rmSync(dir, { recursive: true, force: true }); });

/** A folder with train.json / val.json of equal-length samples (so every micro-batch has the same token count). */
function equalLengthData(n: number): string {
  const words = ['abc', 'bcd', 'cde', 'def', 'efg', 'fgh', 'ghi', 'hij', 'ijk', 'jkl', 'klm', 'lmn'];
  const rows = Array.from({ length: n }, (_, i) => synthetic.makeSyntheticSample('reverse', words[i % words.length]!));
  const d = join(dir, 'data');
  mkdirSync(d, { recursive: true });
  synthetic.writeInstructionJson(join(d, 'train.json'), rows);
  synthetic.writeInstructionJson(join(d, 'val.json'), rows.slice(0, 2));
  return d;
}

const quiet = { progress: 'none' as const, eval: { interval: 1000, maxNewTokens: 0, finalValidation: false } };

async function collect(trainer: Trainer): Promise<TrainerEvent[]> {
  const events: TrainerEvent[] = [];
  for await (const e of trainer.fit()) events.push(e);
  return events;
}

test('gradient accumulation: global 8 as one micro-batch of 8 equals four micro-batches of 2', async () => {
  const data = equalLengthData(8);
  const results: Float32Array[][] = [];
  const losses: number[] = [];
  for (const micro of [8, 2]) {
    const model = await tinyModel({ r: 4, alpha: 8, query: true, value: true, mlp: true }, { seed: 11 });
    // B starts at zero, so one step moves only B; a second step moves A too.
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: data, prompt_style: 'default' }), tokenizer: bytesTokenizer(), ...quiet,
      train: { globalBatchSize: 8, microBatchSize: micro, lrWarmupSteps: 0, maxSteps: 2, epochs: 5 }, optimizer: { lr: 1e-2 },
    });
    const events = await collect(trainer);
    const steps = events.filter((e) => e.type === 'step');
    assert.is(steps.length, 2);
    assert.is(steps[0]!.type === 'step' && steps[0]!.microLosses.length, 8 / micro);
    losses.push(steps[0]!.type === 'step' ? steps[0]!.loss : NaN);
    const tensors = await model.adapter!.tensors();
    results.push(await Promise.all([...tensors.values()].map(async (t) => (await t.data()) as Float32Array)));
    model.dispose();
  }
  assertClose([losses[1]!], [losses[0]!], { rtol: 1e-5, what: 'window loss' });
  results[0]!.forEach((a, i) => assertClose(results[1]![i]!, a, { rtol: 1e-4, atol: 1e-6, what: `lora tensor ${i}` }));
});

test('bad data → ERR_DATA with the row number, before any step', async () => {
  const path = join(dir, 'bad.json');
  writeFileSync(path, JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c', output: 'd' }, { instruction: 'e' }]));
  const model = await tinyModel();
  const events: TrainerEvent[] = [];
  const trainer = new Trainer({ model, data: createDataModule('JSON', { json_path: path }), tokenizer: bytesTokenizer(), ...quiet, train: { maxSteps: 3 } });
  await assertCode(async () => { for await (const e of trainer.fit()) events.push(e); }, 'ERR_DATA', /bad\.json: row 3: missing field 'output'/);
  assert.is(events.length, 0);
  model.dispose();
});

test('a NaN/Inf loss stops the run with ERR_NONFINITE naming the iteration', async () => {
  const data = equalLengthData(8);
  const model = await tinyModel({ r: 4, alpha: 8 }, { seed: 2 });
  const trainer = new Trainer({
    model, data: createDataModule('JSON', { json_path: data, prompt_style: 'default' }), tokenizer: bytesTokenizer(), ...quiet,
    train: { globalBatchSize: 2, microBatchSize: 2, lrWarmupSteps: 0, maxSteps: 10 }, optimizer: { lr: 1e30, weightDecay: 0 },
  });
  const steps: number[] = [];
  await assertCode(async () => { for await (const e of trainer.fit()) if (e.type === 'step') steps.push(e.step); },
    'ERR_NONFINITE', /iter 1 \(optimizer step 1, epoch 1\).*(NaN|infinite)/);
  assert.is(steps.length, 0);
  model.dispose();
});

test('options are validated with the option named', async () => {
  const model = await tinyModel();
  const data = createDataModule('JSON', { json_path: join(dir, 'x.json') });
  const tokenizer = bytesTokenizer();
  await assertCode(() => new Trainer({ model, data, tokenizer, train: { globalBatchSize: 6, microBatchSize: 4 } }), 'ERR_ARG', /multiple of train.microBatchSize/);
  await assertCode(() => new Trainer({ model, data, tokenizer, train: { micro_batch_size: 4 } as any }), 'ERR_ARG', /train.micro_batch_size: unknown option/);
  await assertCode(() => new Trainer({ model, data, tokenizer, precision: 'bf16-true' }), 'ERR_DTYPE', /bf16-true: expected a bfloat16 model, got float32/);
  await assertCode(() => new Trainer({ model, data, tokenizer, eval: { interval: 0 } }), 'ERR_ARG', /eval.interval/);
  await assertCode(() => new Trainer({ model, data, tokenizer, outDir: dir }), 'ERR_ARG', /checkpointDir/);
  model.dispose();
});

test('bf16-true and bf16-mixed train on the CPU (losses close to float32)', async () => {
  const data = equalLengthData(8);
  const first: Record<string, number> = {};
  for (const [precision, dtype] of [['32-true', 'float32'], ['bf16-true', 'bfloat16'], ['bf16-mixed', 'float32'], ['bf16-mixed', 'bfloat16']] as const) {
    const model = await tinyModel({ r: 4, alpha: 8 }, { seed: 5, dtype });
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: data, prompt_style: 'default' }), tokenizer: bytesTokenizer(), precision, ...quiet,
      train: { globalBatchSize: 4, microBatchSize: 4, lrWarmupSteps: 0, maxSteps: 3 }, optimizer: { lr: 1e-2 },
    });
    const steps = (await collect(trainer)).filter((e) => e.type === 'step');
    assert.is(steps.length, 3, precision);
    first[`${precision}/${dtype}`] = steps[0]!.type === 'step' ? steps[0]!.loss : NaN;
    // After fit, the LoRA tensors are back in the model dtype (bf16-mixed trains them in float32).
    assert.is([...(await model.adapter!.tensors()).values()][0]!.dtype, dtype);
    model.dispose();
  }
  for (const [k, v] of Object.entries(first)) assertClose([v], [first['32-true/float32']!], { rtol: 0.02, what: k });
});

test('leaving fit() early (break, return(), throw()) leaves no native work: the model and trainer are free, dtypes restored', async () => {
  const data = equalLengthData(8);
  const model = await tinyModel({ r: 4, alpha: 8 }, { seed: 5, dtype: 'bfloat16' });
  // bf16-mixed trains the LoRA tensors in float32; leaving must still put them back in bfloat16.
  const trainer = new Trainer({
    model, data: createDataModule('JSON', { json_path: data, prompt_style: 'default' }), tokenizer: bytesTokenizer(), precision: 'bf16-mixed',
    ...quiet, train: { globalBatchSize: 2, microBatchSize: 1, lrWarmupSteps: 0, maxSteps: 100 }, optimizer: { lr: 1e-2 },
  });
  const loraDtypes = async () => [...new Set([...(await model.adapter!.tensors()).values()].map((t) => t.dtype))];
  let steps = 0;
  for await (const e of trainer.fit()) if (e.type === 'step' && ++steps === 1) break;
  assert.is(steps, 1);
  (await model.forward([1, 2, 3])).dispose(); // not ERR_BUSY
  assert.equal(await loraDtypes(), ['bfloat16']);

  const returned = trainer.fit(); // not ERR_BUSY: the first fit has ended
  assert.is((await returned.next()).done, false);
  assert.equal(await returned.return(), { done: true, value: undefined });
  (await model.forward([1, 2, 3])).dispose();
  assert.equal(await loraDtypes(), ['bfloat16']);

  const thrown = trainer.fit();
  assert.is((await thrown.next()).done, false);
  await assertCode(() => thrown.throw(new LitloraError('ERR_ARG', 'stop here')), 'ERR_ARG', 'stop here');
  assert.equal(await loraDtypes(), ['bfloat16']);
  model.dispose(); // ERR_BUSY if a step were still running
});

// CUDA (run where a GPU is present): the same three precisions on the device; losses close to the CPU's float32.
(buildInfo().cudaDeviceCount > 0 ? test : test.skip)('CUDA: 32-true, bf16-true and bf16-mixed train; losses close to the CPU', async () => {
  const data = equalLengthData(8);
  const first: Record<string, number> = {};
  for (const [device, precision, dtype] of [['cpu', '32-true', 'float32'], ['cuda', '32-true', 'float32'], ['cuda', 'bf16-true', 'bfloat16'],
    ['cuda', 'bf16-mixed', 'float32'], ['cuda', 'bf16-mixed', 'bfloat16']] as const) {
    const model = await Model.fromConfig(TINY_CONFIG, { seed: 5, dtype, device, lora: { r: 4, alpha: 8, dropout: 0 } });
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: data, prompt_style: 'default' }), tokenizer: bytesTokenizer(), precision, ...quiet,
      train: { globalBatchSize: 4, microBatchSize: 2, lrWarmupSteps: 0, maxSteps: 3 }, optimizer: { lr: 1e-2 },
      eval: { interval: 2, maxIters: 1, maxNewTokens: 3, finalValidation: true },
    });
    const events = await collect(trainer);
    const steps = events.filter((e) => e.type === 'step');
    assert.is(steps.length, 3, `${device} ${precision}`);
    assert.ok(events.some((e) => e.type === 'eval' && Number.isFinite(e.valLoss) && e.sample !== null));
    first[`${device}/${precision}/${dtype}`] = steps[2]!.type === 'step' ? steps[2]!.loss : NaN;
    model.dispose();
  }
  for (const [k, v] of Object.entries(first)) assertClose([v], [first['cpu/32-true/float32']!], { rtol: 0.03, what: k });
});

test.run();

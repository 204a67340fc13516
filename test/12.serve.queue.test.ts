// The model's queue (ts/model/scheduler.ts): work submitted to a busy model waits its turn in FIFO order instead
// of failing with ERR_BUSY; maxQueue bounds it (ERR_QUEUE_FULL); an AbortSignal takes a request out of it; dispose
// rejects what waits with ERR_DISPOSED and frees the model once the running work has ended.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { generateTokens, type SamplingOptions } from '../ts/generate/generate.js';
import { initCheckpoint } from '../ts/model/init.js';
import { LitloraError, Model } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { pythiaTiny } from './helpers/model.js';
import { tempFolders } from './helpers/temp.js';
import { collect } from './helpers/tokens.js';

const GREEDY: SamplingOptions = { temperature: 0, topK: null, stopTokens: [], vocabLimit: null };
const folders = tempFolders();
test.after(() => folders.removeAll());

const tiny = () => Model.fromConfig({ ...pythiaTiny, block_size: 96 }, { seed: 31 });

test('FIFO: a forward queued behind generations runs after them; generations queued behind it wait for it', async () => {
  const model = await tiny();
  const log: string[] = [];
  const g1 = collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 40 })).then((r) => { log.push('g1 done'); return r; });
  const f1 = model.forward([4, 5, 6]).then((t) => { log.push('f1 done'); t.dispose(); });
  const g2 = collect(generateTokens(model, [7, 8], { ...GREEDY, maxNewTokens: 5 }), (n) => { if (n === 1) log.push('g2 first'); })
    .then((r) => { log.push('g2 done'); return r; });
  const f2 = model.loss([1, 2, 3], [2, 3, 4]).then(() => log.push('f2 done'));
  await Promise.all([g1, f1, g2, f2]);
  assert.equal(log, ['g1 done', 'f1 done', 'g2 first', 'g2 done', 'f2 done']);
  assert.is((await g1).ids.length, 40);
  await model.dispose();
});

test('maxQueue: one more waiting request is ERR_QUEUE_FULL; Model.load takes it; the others complete', async () => {
  const model = await tiny();
  assert.is(model.maxQueue, Infinity);
  model.maxQueue = 1;
  const running = model.forward(new Array(90).fill(1));
  const waiting = model.forward([1]);
  await assertCode(() => model.forward([2]), 'ERR_QUEUE_FULL', /1 request\(s\) already wait for this model \(maxQueue 1\)/);
  await assertCode(() => collect(generateTokens(model, [1], GREEDY)), 'ERR_QUEUE_FULL', /maxQueue 1/);
  (await running).dispose();
  (await waiting).dispose();
  (await model.forward([3])).dispose();  // room again
  assert.throws(() => { model.maxQueue = -1; }, (e: LitloraError) => e.code === 'ERR_ARG' && /maxQueue/.test(e.message));
  await model.dispose();

  const dir = join(folders.make('queue'), 'base');
  await initCheckpoint({ outDir: dir, modelName: 'pythia-14m', overrides: { n_layer: 1, n_embd: 32, n_head: 4, block_size: 64 }, seed: 3 });
  const loaded = await Model.load(dir, { maxQueue: 0 });
  assert.is(loaded.maxQueue, 0);
  const busy = loaded.forward([1, 2]);
  await assertCode(() => loaded.forward([1]), 'ERR_QUEUE_FULL');
  (await busy).dispose();
  await loaded.dispose();
  await assertCode(() => Model.load(dir, { maxQueue: 1.5 }), 'ERR_ARG', /maxQueue/);
});

test('an AbortSignal takes a queued request out of the queue: its iterator ends with reason cancelled, nothing generated', async () => {
  const model = await tiny();
  const busy = model.forward(new Array(90).fill(1));
  const controller = new AbortController();
  const queued = collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 10, signal: controller.signal }));
  const behind = collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 10 }));
  controller.abort();
  const cancelled = await queued;
  assert.equal(cancelled.ids, []);
  assert.is(cancelled.stats.reason, 'cancelled');
  assert.is(cancelled.stats.generatedTokens, 0);
  (await busy).dispose();
  const r = await behind;
  assert.is(r.ids.length, 10);
  assert.is(r.stats.reason, 'max_new_tokens');

  // Leaving a queued request's iterator early takes it out too; the model stays usable.
  const busy2 = model.forward(new Array(90).fill(1));
  const left = generateTokens(model, [1], { ...GREEDY, maxNewTokens: 5 });
  const pending = left.next();
  await left.return(undefined as never).catch(() => undefined);
  void pending.catch(() => undefined);
  (await busy2).dispose();
  assert.is((await collect(generateTokens(model, [1], { ...GREEDY, maxNewTokens: 4 }))).ids.length, 4);
  await model.dispose();
});

test('dispose with running and queued work: queued work rejects ERR_DISPOSED, the running generation completes, no uncaught error', async () => {
  const uncaught: unknown[] = [];
  const onError = (e: unknown) => uncaught.push(e);
  process.on('unhandledRejection', onError);
  process.on('uncaughtException', onError);
  try {
    const model = await tiny();
    const running = collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 60 }));
    const queuedForward = model.forward([1, 2]);
    const queuedGeneration = collect(generateTokens(model, [4], { ...GREEDY, maxNewTokens: 5 }));
    const disposed = model.dispose();
    assert.ok(model.disposed, 'disposed from the call on');
    await assertCode(() => queuedForward, 'ERR_DISPOSED', /disposed while this request waited/);
    await assertCode(() => queuedGeneration, 'ERR_DISPOSED', /disposed while this request waited/);
    await assertCode(() => model.forward([1]), 'ERR_DISPOSED');
    await assertCode(() => collect(generateTokens(model, [1], GREEDY)), 'ERR_DISPOSED');
    const r = await running;
    assert.is(r.ids.length, 60);
    assert.is(r.stats.reason, 'max_new_tokens');
    await disposed;
    await model.dispose();  // idempotent
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(uncaught, []);
  } finally {
    process.off('unhandledRejection', onError);
    process.off('uncaughtException', onError);
  }
});

test('many concurrent requests (more than one batch) all complete with what each gives alone', async () => {
  const model = await tiny();
  const prompts = Array.from({ length: 20 }, (_, i) => [1 + i, 2 + (i * 7) % 90, 3]);
  const solo: number[][] = [];
  for (const p of prompts) solo.push((await collect(generateTokens(model, p, { ...GREEDY, maxNewTokens: 6 + (prompts.indexOf(p) % 5) }))).ids);
  const together = await Promise.all(prompts.map((p, i) => collect(generateTokens(model, p, { ...GREEDY, maxNewTokens: 6 + (i % 5) }))));
  for (const [i, r] of together.entries()) assert.equal(r.ids, solo[i], `request ${i}`);
  await model.dispose();
});

test.run();

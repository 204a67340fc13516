// Batched decoding (native/core/batch_decode): concurrent generate calls on one model share decode steps, and each
// request gives exactly what it gives alone — greedy token for token, sampled with the same draws from its seed —
// while requests join mid-stream and leave at different lengths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { binding } from '../ts/binding.js';
import { generateTokens, type SamplingOptions } from '../ts/generate/generate.js';
import { Model, type ModelConfig } from '../ts/index.js';
import { llamaTiny, moeTiny, pythiaTiny, randomizeAdapter } from './helpers/model.js';
import { collect, greedyFullForward, type TokenRun } from './helpers/tokens.js';

const GREEDY: SamplingOptions = { temperature: 0, topK: null, stopTokens: [], vocabLimit: null };


// The single-request native loop (native/core/generate.cc), which decodes one request with the model's own cache.
function alone(model: Model, prompt: number[], o: SamplingOptions): Promise<number[]> {
  const ids: number[] = [];
  const options: Record<string, unknown> = {
    temperature: o.temperature ?? 0.8, topP: o.topP ?? 1, seed: o.seed ?? 1234, maxNewTokens: o.maxNewTokens ?? 50,
    stopSequences: o.stopTokens ?? [],
  };
  if (o.topK !== null) options.topK = o.topK ?? 50;
  return new Promise((resolve, reject) => {
    binding().generate(model.handle, Int32Array.from(prompt), options, (kind, value) => {
      if (kind === 'token') ids.push(value as number);
      else if (kind === 'done') resolve(ids);
      else reject(value as Error);
    });
  });
}

interface Request { prompt: number[]; options: SamplingOptions }

const requests: Request[] = [
  { prompt: [5, 17, 3, 40, 22, 9, 1], options: { ...GREEDY, maxNewTokens: 30 } },
  { prompt: [7, 7, 2], options: { ...GREEDY, maxNewTokens: 9 } },
  { prompt: [60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], options: { temperature: 0.9, topK: 20, seed: 11, maxNewTokens: 24, stopTokens: [] } },
  { prompt: [33], options: { temperature: 1.3, topK: null, topP: 0.9, seed: 5, maxNewTokens: 17, stopTokens: [] } },
  { prompt: [2, 4, 8, 16, 32], options: { ...GREEDY, maxNewTokens: 21 } },
  { prompt: [9, 8, 7], options: { temperature: 0.7, topK: 5, seed: 99, maxNewTokens: 13, stopTokens: [] } },
];

async function checkBatched(what: string, model: Model): Promise<void> {
  const solo: number[][] = [];
  for (const r of requests) solo.push(await alone(model, r.prompt, r.options));
  // One at a time through the batched decoder: the same as the single-request loop.
  for (const [i, r] of requests.entries()) {
    assert.equal((await collect(generateTokens(model, r.prompt, r.options))).ids, solo[i], `${what}: request ${i} alone in the decoder`);
  }
  // Requests 0, 1 and 2 start together; 3, 4 and 5 join once request 0 has produced 4, 8 and 12 tokens.
  const order: string[] = [];
  const startAt = new Map([[4, 3], [8, 4], [12, 5]]);
  const runs: Promise<TokenRun>[] = [];
  const start = (i: number) => {
    runs[i] = collect(generateTokens(model, requests[i]!.prompt, requests[i]!.options), (n) => {
      if (n === 1) order.push(`first ${i}`);
      const next = i === 0 ? startAt.get(n) : undefined;
      if (next !== undefined) start(next);
    }).then((r) => { order.push(`end ${i}`); return r; });
  };
  for (const i of [0, 1, 2]) start(i);
  const first = await runs[0]!;  // requests 3–5 have been started by now
  const all = [first, ...await Promise.all([1, 2, 3, 4, 5].map((i) => runs[i]!))];
  for (const [i, r] of all.entries()) {
    assert.equal(r.ids, solo[i], `${what}: request ${i} in the batch equals it alone`);
    assert.is(r.stats.reason, 'max_new_tokens');
    assert.is(r.stats.generatedTokens, requests[i]!.options.maxNewTokens);
  }
  // Requests 0–2 arrived together (prompts of 7, 3 and 13 tokens), whether or not the decoder took them in one
  // forward; a sliding window shorter than 13 positions forbids padding them to one length.
  if (model.config.sliding_window_size) assert.equal(all.slice(0, 3).map((r) => r.stats.prefillRows), [1, 1, 1], `${what}: prefill rows`);
  // Joined mid-stream: request 3 began while request 0 was still decoding; request 1 (9 tokens) left early.
  assert.ok(order.indexOf('first 3') < order.indexOf('end 0'), order.join(', '));
  assert.ok(order.indexOf('end 1') < order.indexOf('end 0'), order.join(', '));
}

test('greedy and sampled requests decoded together equal each alone (pythia), joining mid-stream and leaving at different lengths', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, block_size: 96 }, { seed: 21 });
  await checkBatched('pythia', model);
  await model.dispose();
});

test('the same for a GQA llama with a runtime LoRA adapter of its own', async () => {
  const model = await Model.fromConfig({ ...llamaTiny, block_size: 96 } as ModelConfig, {
    seed: 22, lora: { r: 4, alpha: 8, dropout: 0, query: true, value: true, mlp: true, head: true },
  });
  await randomizeAdapter(model, 154, 0.3);
  await checkBatched('llama', model);
  await model.dispose();
});

test('the same for a LLaMAMoE (top-2 of 4 experts, each row\'s tokens routed apart) with LoRA on the router and experts', async () => {
  const model = await Model.fromConfig({ ...moeTiny, block_size: 96 } as ModelConfig, {
    seed: 24, lora: { r: 4, alpha: 8, dropout: 0, query: true, value: true, mlp: true, head: true },
  });
  await randomizeAdapter(model, 155, 0.3);
  await checkBatched('moe', model);
  await model.dispose();
});

test('sliding-window layers: rows decoded together past the window equal each alone and a full forward; their caches hold the window only', async () => {
  const model = await Model.fromConfig({ ...llamaTiny, block_size: 96, sliding_window_size: 4, sliding_window_indices: [1, 0] } as ModelConfig, {
    seed: 24, lora: { r: 4, alpha: 8, dropout: 0, query: true, value: true, mlp: true, head: true },
  });
  await randomizeAdapter(model, 155, 0.3);
  await checkBatched('sliding window', model);
  for (const i of [0, 4]) {
    const r = requests[i]!;
    assert.equal(await alone(model, r.prompt, r.options), await greedyFullForward(model, r.prompt, r.options.maxNewTokens!),
      `request ${i}: the cached decode equals a full forward per step`);
  }
  // The longest request reaches position 36 (13 prompt tokens + 24 new, the last not forwarded): layer 1 keeps all.
  assert.equal(model.handle.info().kvCacheSlots, [4, 36]);
  await model.dispose();
});

test('16 prompts arriving at once are prefilled together, padded to one length, and each equals it alone', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, block_size: 96 }, { seed: 25 });
  const prompts = Array.from({ length: 16 }, (_, i) => Array.from({ length: 3 + (i * 5) % 11 }, (_, t) => (7 * t + 13 * i + 3) % 90));
  const options = (i: number): SamplingOptions => (i % 3 === 0 ? { temperature: 0.8, topK: 10, seed: 40 + i, maxNewTokens: 12, stopTokens: [] }
    : { ...GREEDY, maxNewTokens: 12 });
  const solo: number[][] = [];
  for (const [i, p] of prompts.entries()) solo.push(await alone(model, p, options(i)));
  const runs = await Promise.all(prompts.map((p, i) => collect(generateTokens(model, p, options(i)))));
  for (const [i, r] of runs.entries()) assert.equal(r.ids, solo[i], `request ${i} equals it alone`);
  // Prompts of 3–13 tokens: the decoder takes whatever has arrived each time it looks, so the first one or few may
  // be prefilled before the rest arrive; the rest share forwards (each a group of rows, at least half of whose
  // padded tokens are their own).
  const forwards = runs.reduce((n, r) => n + 1 / r.stats.prefillRows, 0);
  assert.ok(forwards <= 8, `16 prompts took ${forwards.toFixed(1)} forwards (${runs.map((r) => r.stats.prefillRows)})`);
  assert.ok(runs.every((r) => r.stats.prefillRows >= 1 && r.stats.prefillRows <= 16));
  await model.dispose();
});

test('stop sequences end one row and are not emitted; the other rows go on', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, block_size: 96 }, { seed: 23 });
  const free = await alone(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 20 });
  const stop = [free[5]!, free[6]!];
  const options = { ...GREEDY, maxNewTokens: 20, stopTokens: [stop] };
  const expected = await alone(model, [1, 2, 3], options);
  const [stopped, other] = await Promise.all([
    collect(generateTokens(model, [1, 2, 3], options)),
    collect(generateTokens(model, [4, 5], { ...GREEDY, maxNewTokens: 25 })),
  ]);
  assert.equal(stopped.ids, expected);
  assert.is(stopped.stats.reason, 'stop');
  assert.ok(stopped.ids.length <= 5, `stopped at the first ${JSON.stringify(stop)}`);
  assert.equal(other.ids, await alone(model, [4, 5], { ...GREEDY, maxNewTokens: 25 }));
  await model.dispose();
});

test.run();

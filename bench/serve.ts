// npm run bench:serve — serving throughput of the batched decoder (native/core/batch_decode) on a pythia-70m-shaped
// model, CPU float32: 16 concurrent greedy requests of 128 new tokens against
//   * one request alone (aggregate tokens/s; goal ≥ 6×),
//   * Hugging Face transformers' batched generate of the same 16 prompts, one left-padded static batch (goal ≥ 1.5×),
//   * time to first token of a request that arrives while 15 others decode, against the same request alone (≤ 2×),
//   * 16 requests over 4 adapters mixed in one batch against 16 on one adapter (goal ≥ 0.8×);
// and, as a check that batching costs the single request nothing, one request through the batched decoder against
// the single-request loop (native/core/generate.cc).
//
// Options: --new N (default 128)  --reps N (default 3)  --threads N (both sides; default litlora's)
// Ours and transformers alternate rep by rep (transformers in a fresh child each rep), so both see the same load.
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { binding } from '../ts/binding.js';
import { configFromName } from '../ts/model/configs.js';
import { nativeGptConfig } from '../ts/model/native_config.js';
import { normalizeLora } from '../ts/model/lora_settings.js';
import { generateTokens, type SamplingOptions } from '../ts/generate/generate.js';
import { Model, Tensor, buildInfo, getNumThreads, setNumThreads } from '../ts/index.js';
import { referencePython } from '../test/helpers/python.js';
import { machineName, markdownTable, median, runJsonChild } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const newTokens = Number(arg('new') ?? 128);
const reps = Number(arg('reps') ?? 3);
if (arg('threads')) setNumThreads(Number(arg('threads')));
const threads = getNumThreads();
const N = 16;
const GREEDY: SamplingOptions = { temperature: 0, topK: null, stopTokens: [], vocabLimit: null, maxNewTokens: newTokens };
// 16 prompts of 20–32 tokens (so that transformers' static batch pads).
const prompts = Array.from({ length: N }, (_, i) => Array.from({ length: 20 + (i * 5) % 13 }, (_, t) => (7 * t + 13 * i + 3) % 50000));

const config = configFromName('pythia-70m') as unknown as Record<string, unknown>;
const model = await Model.fromConfig(config, { seed: 0 });
const lora = normalizeLora({ r: 8, alpha: 16, dropout: 0, query: true, value: true, projection: false, mlp: false, head: false });
{
  // Four adapters with random A and B (B non-zero, so that every delta is computed and matters).
  const donor = await Model.fromConfig(config, { seed: 1, lora });
  const shapes = [...(await donor.adapter!.tensors())].map(([n, t]) => [n, t.shape] as const);
  await donor.dispose();
  for (let a = 0; a < 4; a++) {
    const entries = shapes.map(([n, shape]) => {
      const values = new Float32Array(shape.reduce((x, y) => x * y, 1)).map((_, i) => Math.sin(i * 0.37 + a) * 0.02);
      return [n, Tensor.from(values, [...shape]).handle] as [string, ReturnType<typeof Tensor.from>['handle']];
    });
    await model.exclusive('bench', () => model.handle.addAdapter(`a${a}`, nativeGptConfig(model.config, lora), entries));
  }
}

interface Timing { seconds: number; ttft: number[]; tokens: number }
async function run(requests: { prompt: number[]; adapter?: string | null; delay?: Promise<void> }[]): Promise<Timing> {
  const t0 = performance.now();
  const ttft: number[] = [];
  let tokens = 0;
  await Promise.all(requests.map(async (r) => {
    await r.delay;
    const start = performance.now();
    let first = true;
    for await (const _ of generateTokens(model, r.prompt, { ...GREEDY, adapter: r.adapter ?? null })) {
      if (first) { ttft.push(performance.now() - start); first = false; }
      tokens++;
    }
  }));
  return { seconds: (performance.now() - t0) / 1000, ttft, tokens };
}

// The single-request loop (native/core/generate.cc) for one request: tokens/s over the whole call.
function singleLoop(prompt: number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let n = 0;
    binding().generate(model.handle, Int32Array.from(prompt), { temperature: 0, maxNewTokens: newTokens, stopSequences: [] }, (kind, value) => {
      if (kind === 'token') n++;
      else if (kind === 'done') resolve(n / ((performance.now() - t0) / 1000));
      else reject(value as Error);
    });
  });
}

// A request arriving while 15 others decode: they start together, it starts once each of them has 16 tokens.
async function loadedTtft(): Promise<number> {
  let arrived!: () => void;
  const whenDecoding = new Promise<void>((resolve) => { arrived = resolve; });
  let decoding = 0;
  const others = prompts.slice(1).map(async (p) => {
    let n = 0;
    for await (const _ of generateTokens(model, p, GREEDY)) if (++n === 16 && ++decoding === N - 1) arrived();
  });
  await whenDecoding;
  const start = performance.now();
  let ttft = 0;
  for await (const _ of generateTokens(model, prompts[0]!, GREEDY)) if (!ttft) ttft = performance.now() - start;
  await Promise.all(others);
  return ttft;
}

console.log(`litlora bench:serve — pythia-70m-shaped, CPU float32, ${threads} threads, libtorch ${buildInfo().torchVersion}; ` +
  `${N} greedy requests × ${newTokens} new tokens; median of ${reps}; ${machineName()}`);
await run([{ prompt: prompts[0]! }]);  // warm-up
await run(prompts.map((p) => ({ prompt: p })));
const m: Record<string, number[]> = { alone: [], loop: [], batch: [], hf: [], ttftAlone: [], ttftLoaded: [], ttftBurst: [], one: [], mixed: [] };
for (let i = 0; i < reps; i++) {
  const alone = await run([{ prompt: prompts[0]! }]);
  m.alone!.push(alone.tokens / alone.seconds);
  m.ttftAlone!.push(alone.ttft[0]!);
  m.loop!.push(await singleLoop(prompts[0]!));
  const batch = await run(prompts.map((p) => ({ prompt: p })));
  m.batch!.push(batch.tokens / batch.seconds);
  m.ttftBurst!.push(median(batch.ttft)!);
  m.ttftLoaded!.push(await loadedTtft());
  const one = await run(prompts.map((p) => ({ prompt: p, adapter: 'a0' })));
  m.one!.push(one.tokens / one.seconds);
  const mixed = await run(prompts.map((p, j) => ({ prompt: p, adapter: `a${j % 4}` })));
  m.mixed!.push(mixed.tokens / mixed.seconds);
  const hf = runJsonChild<{ tokens_per_s: number }>(referencePython(), [join(packageRoot, 'bench', 'serve_baseline.py'),
    JSON.stringify({ prompts, new: newTokens, reps: 1, threads })]);
  m.hf!.push(hf.tokens_per_s);
  console.log(`rep ${i + 1}: ${Object.entries(m).map(([k, v]) => `${k} ${v[v.length - 1]!.toFixed(1)}`).join(', ')}`);
}
await model.dispose();
const med = (k: string) => median(m[k]!)!;
const rows = [
  ['measure', 'value', 'against', 'ratio', 'goal'],
  [`${N} concurrent requests, aggregate tokens/s`, med('batch').toFixed(0), `one request alone: ${med('alone').toFixed(0)}`, `${(med('batch') / med('alone')).toFixed(2)}×`, '≥ 6×'],
  [`${N} concurrent requests, aggregate tokens/s`, med('batch').toFixed(0), `transformers batched generate: ${med('hf').toFixed(0)}`, `${(med('batch') / med('hf')).toFixed(2)}×`, '≥ 1.5×'],
  ['time to first token, arriving while 15 decode (ms)', med('ttftLoaded').toFixed(1), `alone: ${med('ttftAlone').toFixed(1)}`, `${(med('ttftLoaded') / med('ttftAlone')).toFixed(2)}×`, '≤ 2×'],
  [`time to first token, ${N} arriving at once, median (ms)`, med('ttftBurst').toFixed(1), `alone: ${med('ttftAlone').toFixed(1)}`, `${(med('ttftBurst') / med('ttftAlone')).toFixed(2)}×`, '—'],
  [`${N} requests over 4 adapters in one batch, tokens/s`, med('mixed').toFixed(0), `all on one adapter: ${med('one').toFixed(0)}`, `${(med('mixed') / med('one')).toFixed(2)}×`, '≥ 0.8×'],
  ['one request, batched decoder, tokens/s', med('alone').toFixed(0), `single-request loop: ${med('loop').toFixed(0)}`, `${(med('alone') / med('loop')).toFixed(2)}×`, '≈ 1×'],
];
console.log('');
console.log(markdownTable(rows));

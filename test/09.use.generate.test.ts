// Generation: the native KV-cache decode loop against the PyTorch reference (greedy = argmax of a full
// forward per step), sampling determinism, stop sequences, streaming text, early exit and errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { byteLevelTokenizerFiles } from '../ts/data/bytetokenizer.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { generate, generateText, generateTokens, type GenerationStats, type SamplingOptions, type TextGenerateOptions } from '../ts/generate/generate.js';
import { LitloraError, Model, type ModelConfig } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { llamaTiny, moeTiny, perturbNorms, pythiaTiny, randomizeAdapter, referenceConfig, toNpy } from './helpers/model.js';
import type { NpyArray } from './helpers/npy.js';
import { packageRoot } from '../ts/addon_loader.js';
import { runPython } from './helpers/python.js';
import { collect, greedyFullForward } from './helpers/tokens.js';

const GREEDY: SamplingOptions = { temperature: 0, topK: null, stopTokens: [], vocabLimit: null };

// Larger-than-init weights so that the greedy choice is well separated (init's N(0, 0.02) gives near-ties).
async function sharpModel(config: ModelConfig, seed: number, lora?: boolean): Promise<Model> {
  const model = await Model.fromConfig({ ...config, block_size: 96 }, {
    seed, lora: lora ? { r: 4, alpha: 8, dropout: 0, query: true, value: true, mlp: true, head: true } : undefined,
  });
  if (lora) await randomizeAdapter(model, seed * 7, 0.3);
  return model;
}

const byteTokenizer = () => {
  const files = byteLevelTokenizerFiles();
  return new Tokenizer(files.tokenizer, { tokenizerConfig: files.tokenizerConfig, generationConfig: files.generationConfig });
};

test('greedy decoding with the KV cache equals the PyTorch reference (full forward per token)', async () => {
  const cases: { what: string; config: ModelConfig; lora: boolean }[] = [
    { what: 'pythia', config: { ...pythiaTiny, vocab_size: 64, padded_vocab_size: 64, n_embd: 64, n_head: 4 }, lora: false },
    { what: 'llama GQA + LoRA runtime', config: { ...llamaTiny, vocab_size: 96 }, lora: true },
    { what: 'llama MQA', config: { ...llamaTiny, n_query_groups: 1, rope_adjustments: null }, lora: false },
    { what: 'qwen3 q/k norms (cached keys are normed) + LoRA runtime', config: { ...llamaTiny, norm_qk: true, head_size: 16, rope_adjustments: null }, lora: true },
    { what: 'olmo2-type q/k norms, MHA', config: { ...llamaTiny, norm_qk: true, norm_qk_type: 'olmo2', rope_adjustments: null, n_query_groups: 4 }, lora: false },
    {
      what: 'Gemma 2: a 5-token sliding window in layer 1 (decoded 26 positions past it), softcapping, post norms + LoRA runtime',
      config: { ...llamaTiny, name: 'Gemma-2-tiny', mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', scale_embeddings: true,
        post_attention_norm: true, post_mlp_norm: true, attention_logit_softcapping: 0.5, final_logit_softcapping: 2,
        sliding_window_size: 5, sliding_window_indices: [0, 1], rope_adjustments: null },
      lora: true,
    },
    {
      what: 'Mistral / Phi-3: a 4-token window in every layer (decoded 26 positions past it), partial rotary 0.75 + LoRA runtime',
      config: { ...llamaTiny, sliding_window_size: 4, rotary_percentage: 0.75, rope_adjustments: null }, lora: true,
    },
    {
      what: 'OLMo 2: post norms only (no norm_1 / norm_2), q/k norms over all heads + LoRA runtime',
      config: { ...llamaTiny, norm_qk: true, norm_qk_type: 'olmo2', norm_1: false, norm_2: false, post_attention_norm: true,
        post_mlp_norm: true, rope_adjustments: null },
      lora: true,
    },
    {
      what: 'Gemma 3: layer 0 a 5-token window with the local rope base (decoded past it), layer 1 global with linear rope scaling, q/k norms',
      config: { ...llamaTiny, name: 'Gemma-3-tiny', mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', scale_embeddings: true,
        post_attention_norm: true, post_mlp_norm: true, norm_qk: true, sliding_window_size: 5, sliding_window_indices: [1, 0],
        rope_base: 1000000, rope_adjustments: { factor: 8.0 }, rope_local_base_freq: 100, rope_indices: [1, 0] },
      lora: true,
    },
    { what: 'LLaMAMoE (top-2 of 4 experts) + LoRA runtime on the router and experts', config: moeTiny, lora: true },
  ];
  const inputs: Record<string, NpyArray> = {};
  const ours: number[][] = [];
  const meta: { config: ModelConfig; prompt: number[]; n: number }[] = [];
  for (const [i, c] of cases.entries()) {
    const model = await sharpModel(c.config, 3 + i, c.lora);
    if (c.config.norm_qk || c.config.post_mlp_norm) await perturbNorms(model, 50 + i);
    for (const [name, t] of await model.stateDict()) inputs[`c${i}.w.${name}`] = await toNpy(t);
    if (c.lora) for (const [name, t] of await model.adapter!.tensors()) inputs[`c${i}.w.${name}`] = await toNpy(t);
    const prompt = [5, 17, 3, 40, 22, 9, 1];
    const n = 24;
    const a = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: n }));
    const b = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: n }));
    assert.equal(a.ids, b.ids, `${c.what}: greedy is deterministic`);
    assert.is(a.ids.length, n);
    assert.is(a.stats.reason, 'max_new_tokens');
    assert.is(a.stats.promptTokens, prompt.length);
    ours.push(a.ids);
    meta.push({ config: referenceConfig(model), prompt, n });
    model.dispose();
  }
  const { stdout } = runPython(`import sys, json, torch
sys.path.insert(0, ${JSON.stringify(join(packageRoot, 'test', 'reference'))})
import gpt_reference as ref, generate_reference as gen
torch.set_num_threads(2)
res = []
for i, case in enumerate(json.loads(${JSON.stringify(JSON.stringify(meta))})):
    pre = f"c{i}.w."
    model = ref.make_model(case["config"], {k[len(pre):]: v for k, v in inp.items() if k.startswith(pre)})
    toks, margins = gen.greedy_no_cache(model, case["prompt"], case["n"])
    cached, _, _ = gen.decode_with_cache(model, case["prompt"], case["n"])
    res.append({"tokens": toks, "cached": cached, "margin": min(margins)})
print(json.dumps(res))
`, inputs);
  const ref = JSON.parse(stdout.trim().split('\n').pop()!) as { tokens: number[]; cached: number[]; margin: number }[];
  for (const [i, c] of cases.entries()) {
    assert.ok(ref[i].margin > 1e-4, `${c.what}: the reference's top-2 margin ${ref[i].margin} is too small for an exact comparison`);
    assert.equal(ours[i], ref[i].tokens, `${c.what}: tokens vs reference`);
    assert.equal(ref[i].cached, ref[i].tokens, `${c.what}: the reference's own KV-cache loop agrees`);
  }
});

test('sliding-window decode: a sliding layer\'s KV cache holds only its window, and greedy tokens equal the full forward\'s', async () => {
  const cases: { what: string; config: ModelConfig; slots: number[] }[] = [
    { what: 'Mistral-type: a 4-token window in every layer', config: { ...llamaTiny, sliding_window_size: 4, rope_adjustments: null }, slots: [4, 4] },
    { what: 'Gemma-type: a 6-token window in layer 0, layer 1 global', config: { ...llamaTiny, sliding_window_size: 6, sliding_window_indices: [1, 0] }, slots: [6, 46] },
  ];
  for (const [i, c] of cases.entries()) {
    const model = await sharpModel(c.config, 31 + i, true);
    const prompt = [5, 17, 3, 40, 22, 9, 1];  // longer than either window: the prefill itself wraps the ring
    const n = 40;  // positions 0..46: several windows past the first
    const got = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: n }));
    assert.equal(got.ids, await greedyFullForward(model, prompt, n), `${c.what}: tokens vs a full forward per step`);
    assert.equal(model.handle.info().kvCacheSlots, c.slots, `${c.what}: KV cache slots per layer`);
    model.dispose();
  }
});

test('sampling: a seed gives the same tokens; top_k 1 and top_p 0 are greedy; temperature 0 ignores the seed', async () => {
  const model = await sharpModel(pythiaTiny, 11);
  const prompt = [1, 2, 3, 4];
  const greedy = (await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 16 }))).ids;
  const s1 = (await collect(generateTokens(model, prompt, { temperature: 1.5, topK: null, seed: 7, maxNewTokens: 16, stopTokens: [] }))).ids;
  const s2 = (await collect(generateTokens(model, prompt, { temperature: 1.5, topK: null, seed: 7, maxNewTokens: 16, stopTokens: [] }))).ids;
  const s3 = (await collect(generateTokens(model, prompt, { temperature: 1.5, topK: null, seed: 8, maxNewTokens: 16, stopTokens: [] }))).ids;
  assert.equal(s1, s2);
  assert.not.equal(s1, s3, 'another seed draws other tokens');
  assert.not.equal(s1, greedy, 'sampling at temperature 1.5 is not greedy');
  const k1 = (await collect(generateTokens(model, prompt, { temperature: 1, topK: 1, seed: 3, maxNewTokens: 16, stopTokens: [] }))).ids;
  const p0 = (await collect(generateTokens(model, prompt, { temperature: 1, topK: null, topP: 0, seed: 3, maxNewTokens: 16, stopTokens: [] }))).ids;
  const t0 = (await collect(generateTokens(model, prompt, { ...GREEDY, seed: 99, maxNewTokens: 16 }))).ids;
  assert.equal(k1, greedy);
  assert.equal(p0, greedy);
  assert.equal(t0, greedy);
  // vocabLimit: no id at or above it is ever drawn.
  const limited = (await collect(generateTokens(model, prompt, { temperature: 2, topK: null, seed: 1, maxNewTokens: 40, stopTokens: [], vocabLimit: 10 }))).ids;
  assert.ok(limited.every((id) => id < 10), `ids ${limited}`);
  model.dispose();
});

test('stop sequences end the generation and are not emitted; a prefix that does not complete is released', async () => {
  const model = await sharpModel(pythiaTiny, 12);
  const prompt = [7, 8, 9];
  const full = (await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 12 }))).ids;
  const single = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 12, stopTokens: [[full[4]]] }));
  const cut = full.indexOf(full[4]);
  assert.equal(single.ids, full.slice(0, cut));
  assert.is(single.stats.reason, 'stop');
  const pair = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 12, stopTokens: [[full[5], full[6]]] }));
  let at = -1;
  for (let i = 0; i + 1 < full.length; i++) if (full[i] === full[5] && full[i + 1] === full[6]) { at = i; break; }
  assert.equal(pair.ids, full.slice(0, at));
  assert.is(pair.stats.generatedTokens, at + 2);
  // [full[5], x] with x never following: everything is emitted, nothing lost to the hold-back.
  const never = await collect(generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 12, stopTokens: [[full[5], 63]] }));
  if (!full.some((t, i) => t === full[5] && full[i + 1] === 63)) {
    assert.equal(never.ids, full);
    assert.is(never.stats.reason, 'max_new_tokens');
  }
  model.dispose();
});

test('text: generate streams StreamDecoder pieces that join to the decoded ids; EOS stops it', async () => {
  const tokenizer = byteTokenizer();
  const model = await sharpModel({ ...pythiaTiny, vocab_size: 259, padding_multiple: 64 }, 13);
  const pieces: string[] = [];
  const it = generate(model, tokenizer, 'Reverse: abc', { temperature: 0, maxNewTokens: 20 });
  let stats: GenerationStats | undefined;
  while (true) {
    const next = await it.next();
    if (next.done) { stats = next.value; break; }
    pieces.push(next.value);
  }
  const ids = (await collect(generateTokens(model, tokenizer.encode('Reverse: abc'), {
    temperature: 0, maxNewTokens: 20, stopTokens: [[tokenizer.eosId!]], vocabLimit: 259,
  }))).ids;
  assert.is(pieces.join(''), tokenizer.decode(ids));
  assert.ok(ids.every((id) => id < 259), 'the padded vocabulary is never drawn');
  assert.ok(stats!.reason === 'stop' || stats!.reason === 'max_new_tokens');
  const whole = await generateText(model, tokenizer, 'Reverse: abc', { temperature: 0, maxNewTokens: 20 });
  assert.is(whole.text, pieces.join(''));
  model.dispose();
});

test('leaving early cancels and frees the model; an AbortSignal stops it; the event loop keeps running', async () => {
  const model = await sharpModel(pythiaTiny, 14);
  let n = 0;
  for await (const _ of generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 60 })) if (++n === 3) break;
  assert.is(n, 3);
  await model.forward([1, 2, 3]); // not ERR_BUSY: the loop was stopped and waited for
  const controller = new AbortController();
  const r = await collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 90, signal: controller.signal }));
  assert.is(r.stats.reason, 'max_new_tokens');
  const aborted = generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 90, signal: controller.signal });
  const first = await aborted.next();
  assert.is(first.done, false);
  controller.abort();
  const rest = await collect(aborted);
  assert.is(rest.stats.reason, 'cancelled');
  // Timers fire while tokens are being generated.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const long = await collect(generateTokens(model, [1, 2, 3], { ...GREEDY, maxNewTokens: 90 }));
  clearInterval(timer);
  assert.is(long.ids.length, 90);
  assert.ok(ticks > 0, 'timers ran during generation');
  model.dispose();
});

test('leaving generate() (text) early stops the native loop before its iterator settles: break, return(), throw()', async () => {
  const tokenizer = byteTokenizer();
  // A long block and many tokens to go: a loop left running would still be decoding when the next call comes.
  const model = await Model.fromConfig({ ...pythiaTiny, vocab_size: 259, padding_multiple: 64, block_size: 2048 }, { seed: 16 });
  const options: TextGenerateOptions = { temperature: 1, topK: null, seed: 3, maxNewTokens: 2000, stopTokens: [] };
  let pieces = 0;
  for await (const piece of generate(model, tokenizer, 'Reverse: abc', options)) {
    assert.ok(piece.length > 0);
    if (++pieces === 1) break;
  }
  assert.is(pieces, 1);
  (await model.forward([1, 2, 3])).dispose(); // not ERR_BUSY: the loop was stopped and waited for

  const returned = generate(model, tokenizer, 'Reverse: abc', options);
  assert.is((await returned.next()).done, false);
  assert.equal(await returned.return(undefined as never), { done: true, value: undefined });
  (await model.forward([1, 2, 3])).dispose();

  const thrown = generate(model, tokenizer, 'Reverse: abc', options);
  assert.is((await thrown.next()).done, false);
  await assertCode(() => thrown.throw(new LitloraError('ERR_ARG', 'stop here')), 'ERR_ARG', 'stop here');
  (await model.forward([1, 2, 3])).dispose();
  model.dispose(); // ERR_BUSY if any of the three loops were still running
});

test('bad input: prompt too long, empty, ids out of range, bad options, unknown adapter; a busy model queues; disposed model', async () => {
  const model = await sharpModel(pythiaTiny, 15);
  const run = (prompt: number[], o: SamplingOptions = GREEDY) => collect(generateTokens(model, prompt, o));
  await assertCode(() => run(new Array(96).fill(1)), 'ERR_RANGE', /block_size is 96/);
  await assertCode(() => run([]), 'ERR_ARG', /no tokens/);
  await assertCode(() => run([1, 9999]), 'ERR_RANGE', /outside/);
  await assertCode(() => run([1], { temperature: -1 }), 'ERR_ARG', /temperature/);
  await assertCode(() => run([1], { topP: 2 }), 'ERR_ARG', /topP/);
  await assertCode(() => run([1], { maxNewTokens: 0 }), 'ERR_ARG', /maxNewTokens/);
  await assertCode(() => run([1], { stopTokens: [[]] }), 'ERR_ARG', /stopTokens\[0\]/);
  // Reaching block_size ends the text with reason block_size.
  const r = await run(new Array(90).fill(1), { ...GREEDY, maxNewTokens: 50 });
  assert.is(r.stats.reason, 'block_size');
  assert.is(r.ids.length, 7);
  // A busy model: the request waits its turn (no ERR_BUSY), then runs as it runs alone.
  const busy = model.forward(new Array(60).fill(1));
  const queued = await run([1], { ...GREEDY, maxNewTokens: 3 });
  (await busy).dispose();
  assert.equal(queued.ids, (await run([1], { ...GREEDY, maxNewTokens: 3 })).ids);
  await assertCode(() => run([1], { ...GREEDY, adapter: 'absent' }), 'ERR_ADAPTER_NOT_FOUND', /no adapter named 'absent'.*loaded: none/);
  model.dispose();
  await assertCode(() => run([1]), 'ERR_DISPOSED');
});

test.run();

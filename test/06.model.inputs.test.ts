// Config validation, bad inputs, lifetimes, initialisation, the KV cache and low-precision dtypes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { Model, buildInfo, type ModelConfig } from '../ts/index.js';
import { assertClose, assertCode } from './helpers/assert.js';
import { llamaTiny, pythiaTiny, randomTokens, randomizeAdapter } from './helpers/model.js';

const examples = join(import.meta.dirname, 'fixtures', 'litgpt');
const shrink = { n_layer: 1, n_embd: 32, n_head: 4, head_size: 8, intermediate_size: 64, block_size: 32, padded_vocab_size: 64, vocab_size: 64 };

test("today's full model_config.yaml files (≈55 fields, no-op values) are accepted", async () => {
  for (const file of ['model_config.pythia-14m.yaml', 'model_config.tiny-llama-1.1b.yaml', 'model_config.Llama-3.2-1B.yaml']) {
    const raw: ModelConfig = parse(readFileSync(join(examples, file), 'utf8'));
    const cfg = { ...raw, ...shrink, n_query_groups: raw.n_query_groups === raw.n_head ? 4 : 2 };
    const model = await Model.fromConfig(cfg);
    assert.is((await model.forward([1, 2, 3])).shape.join(), '1,3,64', file);
    model.dispose();
  }
});

test('config fields that switch on what is not implemented are ERR_CONFIG naming the field', async () => {
  const cases: [ModelConfig, RegExp][] = [
    [{ n_expert: 8, n_expert_per_token: 2 }, /n_expert/],
    [{ mlp_class_name: 'LLaMAMoE' }, /n_expert: LLaMAMoE needs a positive number of experts/],
    [{ sliding_window_size: 16, sliding_window_indices: [1] }, /sliding_window_indices: expected 2 entries/],
    [{ sliding_window_size: 16, sliding_window_indices: [1, 2] }, /sliding_window_indices/],
    [{ sliding_window_size: 0 }, /sliding_window_size: expected a positive number/],
    [{ attention_logit_softcapping: -1 }, /attention_logit_softcapping: expected a positive number/],
    [{ rope_local_base_freq: -1 }, /rope_local_base_freq: expected a positive number/],
    [{ latent_attention: { q_lora_rank: 4 } }, /latent_attention/],
    [{ rope_interleave: true }, /rope_interleave/],
    [{ rope_adjustments: { factor: 4, beta_fast: 32, beta_slow: 1, original_max_seq_len: 64 } }, /YaRN/],
    [{ parallel_residual: false, shared_attention_norm: true }, /shared_attention_norm/],
    [{ n_query_groups: 3 }, /n_query_groups/],
    [{ norm_class_name: 'BatchNorm' }, /norm_class_name/],
    [{ n_layr: 2 }, /unknown field 'n_layr'/],
  ];
  for (const [patch, pattern] of cases) {
    await assertCode(() => Model.fromConfig({ ...pythiaTiny, ...patch }), 'ERR_CONFIG', pattern);
  }
});

test('bad inputs: token ids outside the vocabulary, too long a sequence, ragged rows, mismatched targets', async () => {
  const model = await Model.fromConfig(pythiaTiny, { lora: { r: 2 } });
  await assertCode(() => model.forward([1, 2, 128]), 'ERR_RANGE', /expected ids in \[0, 128\).*got 128/);
  await assertCode(() => model.forward([1, -3]), 'ERR_RANGE', /got -3/);
  await assertCode(() => model.forward(new Array(65).fill(1)), 'ERR_RANGE', /65 positions is longer than the model's block_size 64/);
  await assertCode(() => model.forward([[1, 2], [3]]), 'ERR_SHAPE', /row 1 has 1 ids/);
  await assertCode(() => model.forward(new Int32Array(6), { shape: [4, 2] }), 'ERR_SHAPE', /\[batch, time\]/);
  await assertCode(() => model.loss([1, 2, 3], [2, 3]), 'ERR_SHAPE', /targets/);
  await assertCode(() => model.loss([1, 2, 3], [2, 3, 500]), 'ERR_RANGE', /targets/);
  await assertCode(() => Model.fromConfig(pythiaTiny, { dtype: 'float16' }), 'ERR_DTYPE', /CUDA/);
  await assertCode(() => Model.fromConfig(pythiaTiny, { lora: { rank: 4 } as any }), 'ERR_ARG', /lora\.rank/);
  await assertCode(() => Model.fromConfig({ ...pythiaTiny, lora_r: 2, lora_dropout: 1.5 }), 'ERR_ARG', /lora\.dropout/);
  const all = await model.loss([[1, 2, 3]], [[-100, -100, -100]]);
  assert.equal(all, { loss: 0, tokens: 0 });
  model.dispose();
});

test('operations wait their turn (no ERR_BUSY); dispose is idempotent and use after it is ERR_DISPOSED', async () => {
  const model = await Model.fromConfig(pythiaTiny, { lora: { r: 2 } });
  const first = model.forward(new Array(64).fill(3));
  const second = model.forward([1]);  // queued behind the first
  assert.equal((await second).shape, [1, 1, 128]);
  assert.equal((await first).shape, [1, 64, 128]);
  await model.forward([1]);
  const adapter = model.adapter!;
  model.dispose();
  model.dispose();
  await assertCode(() => model.forward([1]), 'ERR_DISPOSED');
  await assertCode(() => adapter.merge(), 'ERR_DISPOSED');
});

test('fromConfig: a seed gives the same weights; litgpt init statistics (N(0, 0.02), LoRA A U(±1/√in), B = 0)', async () => {
  const a = await Model.fromConfig(pythiaTiny, { seed: 42, lora: { r: 4 } });
  const b = await Model.fromConfig(pythiaTiny, { seed: 42, lora: { r: 4 } });
  const c = await Model.fromConfig(pythiaTiny, { seed: 43, lora: { r: 4 } });
  const wa = (await (await a.stateDict()).get('transformer.wte.weight')!.data()) as Float32Array;
  const wb = (await (await b.stateDict()).get('transformer.wte.weight')!.data()) as Float32Array;
  const wc = (await (await c.stateDict()).get('transformer.wte.weight')!.data()) as Float32Array;
  assert.equal(Array.from(wa), Array.from(wb));
  assert.not.equal(Array.from(wa), Array.from(wc));
  const std = Math.sqrt(wa.reduce((s, v) => s + v * v, 0) / wa.length);
  assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
  const sd = await a.stateDict();
  assert.ok(((await sd.get('transformer.h.0.norm_1.weight')!.data()) as Float32Array).every((v) => v === 1));
  assert.ok(((await sd.get('transformer.h.0.attn.qkv.bias')!.data()) as Float32Array).every((v) => v === 0));
  const lora = await a.adapter!.tensors();
  const A = (await lora.get('transformer.h.0.attn.qkv.lora_A')!.data()) as Float32Array;
  assert.ok(A.every((v) => Math.abs(v) <= 1 / Math.sqrt(32)) && A.some((v) => Math.abs(v) > 0.5 / Math.sqrt(32)));
  assert.ok(((await lora.get('transformer.h.0.attn.qkv.lora_B')!.data()) as Float32Array).every((v) => v === 0));
  for (const m of [a, b, c]) m.dispose();
});

test('KV cache: prefill, chunked prefill and one-token steps give the logits of a full forward', async () => {
  // Head sizes 8 and 6 (n_embd 24, 4 heads): the decode step's attention (core/decode_attention) has a vector path
  // for multiples of 8 and a plain one for the rest.
  for (const config of [pythiaTiny, llamaTiny, { ...llamaTiny, n_query_groups: 1 }, { ...llamaTiny, n_embd: 24 }] as ModelConfig[]) {
    const model = await Model.fromConfig(config, { seed: 2, lora: { r: 2, query: true, value: true, dropout: 0 } });
    await randomizeAdapter(model, 3);
    const { tokens } = randomTokens(2, 12, 90, 6);
    const fullLogits = await model.forward(tokens, { shape: [2, 12] });
    const V = fullLogits.shape[2];
    const full = (await fullLogits.data()) as Float32Array;
    const at = (b: number, t: number) => full.subarray((b * 12 + t) * V, (b * 12 + t + 1) * V);
    await model.setKvCache(2, 16);
    const slice = (from: number, to: number) => {
      const out = new Int32Array(2 * (to - from));
      for (let b = 0; b < 2; b++) out.set(tokens.subarray(b * 12 + from, b * 12 + to), b * (to - from));
      return out;
    };
    // prefill 0..4, then a chunk 5..7 at position 5 (masked), then single tokens 8..11
    const pre = (await (await model.forward(slice(0, 5), { shape: [2, 5], inputPos: 0 })).data()) as Float32Array;
    for (let b = 0; b < 2; b++) assertClose(pre.subarray((b * 5 + 4) * V, (b * 5 + 5) * V), at(b, 4), { rtol: 1e-4, atol: 1e-5, what: 'prefill' });
    const chunk = (await (await model.forward(slice(5, 8), { shape: [2, 3], inputPos: 5 })).data()) as Float32Array;
    for (let b = 0; b < 2; b++) for (let t = 0; t < 3; t++) {
      assertClose(chunk.subarray((b * 3 + t) * V, (b * 3 + t + 1) * V), at(b, 5 + t), { rtol: 1e-4, atol: 1e-5, what: `chunk ${t}` });
    }
    for (let t = 8; t < 12; t++) {
      const step = await model.forward(slice(t, t + 1), { shape: [2, 1], inputPos: t, lastOnly: true });
      assert.equal(step.shape, [2, 1, V]);
      const data = (await step.data()) as Float32Array;
      for (let b = 0; b < 2; b++) assertClose(data.subarray(b * V, (b + 1) * V), at(b, t), { rtol: 1e-4, atol: 1e-5, what: `step ${t}` });
    }
    await assertCode(() => model.forward(slice(0, 5), { shape: [2, 5], inputPos: 14 }), 'ERR_RANGE', /KV cache/);
    model.clearKvCache();
    await assertCode(() => model.forward([1], { inputPos: 0 }), 'ERR_ARG', /setKvCache/);
    model.dispose();
  }
});

test('sliding-window KV cache: a ring of window slots; prefill and chunks longer than the window and steps past it give the full forward\'s logits', async () => {
  const cases: { what: string; config: ModelConfig; slots: number[] }[] = [
    { what: 'a 4-token window in layer 0 only', config: { ...llamaTiny, sliding_window_size: 4, sliding_window_indices: [1, 0] }, slots: [4, 30] },
    { what: 'a 5-token window in every layer, softcapped scores', config: { ...llamaTiny, sliding_window_size: 5, attention_logit_softcapping: 0.5, rope_adjustments: null }, slots: [5, 5] },
  ];
  for (const c of cases) {
    const model = await Model.fromConfig(c.config, { seed: 4, lora: { r: 2, query: true, value: true, dropout: 0 } });
    await randomizeAdapter(model, 5);
    assert.equal(model.handle.info().kvCacheSlots, [0, 0], `${c.what}: no cache yet`);
    const L = 28;
    const { tokens } = randomTokens(2, L, 90, 7);
    const fullLogits = await model.forward(tokens, { shape: [2, L] });
    const V = fullLogits.shape[2]!;
    const full = (await fullLogits.data()) as Float32Array;
    await model.setKvCache(2, 30);
    assert.equal(model.handle.info().kvCacheSlots, c.slots, `${c.what}: a sliding layer holds min(maxLength, window) positions`);
    const slice = (from: number, to: number) => {
      const out = new Int32Array(2 * (to - from));
      for (let b = 0; b < 2; b++) out.set(tokens.subarray(b * L + from, b * L + to), b * (to - from));
      return out;
    };
    // A 7-token prefill, a 6-token chunk at 7 (the ring has wrapped), a 2-token chunk, then single tokens to 27.
    const pieces: [number, number][] = [[0, 7], [7, 13], [13, 15]];
    for (let t = 15; t < L; t++) pieces.push([t, t + 1]);
    for (const [from, to] of pieces) {
      const T = to - from;
      const got = (await (await model.forward(slice(from, to), { shape: [2, T], inputPos: from })).data()) as Float32Array;
      for (let b = 0; b < 2; b++) for (let t = 0; t < T; t++) {
        assertClose(got.subarray((b * T + t) * V, (b * T + t + 1) * V), full.subarray((b * L + from + t) * V, (b * L + from + t + 1) * V),
          { rtol: 1e-4, atol: 1e-5, what: `${c.what}: position ${from + t}` });
      }
    }
    model.dispose();
  }
});

test('bfloat16 model: forward and LoRA backward run, logits near the float32 ones', async () => {
  const f32 = await Model.fromConfig(llamaTiny, { seed: 5, lora: { r: 2, dropout: 0 } });
  const bf16 = await Model.fromStateDict(llamaTiny, await f32.stateDict(), { dtype: 'bfloat16', lora: { r: 2, dropout: 0 } });
  assert.is(bf16.dtype, 'bfloat16');
  const { tokens, targets } = randomTokens(1, 10, 96, 8);
  const a = (await (await f32.forward(tokens)).data()) as Float32Array;
  const logits = await bf16.forward(tokens);
  assert.is(logits.dtype, 'bfloat16');
  assertClose((await logits.data()) as Float32Array, a, { rtol: 0.05, atol: 0.02, what: 'bf16 logits' });
  const { loss } = await bf16.loss(tokens, targets, { backward: true });
  assert.ok(Number.isFinite(loss));
  const grads = await bf16.adapter!.gradients();
  assert.is((grads.get('transformer.h.0.attn.qkv.lora_B')!).dtype, 'bfloat16');
  f32.dispose();
  bf16.dispose();
});

const cuda = buildInfo().cudaDeviceCount > 0;
(cuda ? test : test.skip)('CUDA (runs where a GPU is): fp32 logits and loss match the CPU; bf16 and fp16 train', async () => {
  const cpu = await Model.fromConfig(llamaTiny, { seed: 7, lora: { r: 2, dropout: 0, query: true, value: true, head: true } });
  await randomizeAdapter(cpu, 2);
  const weights = [...(await cpu.stateDict()), ...(await cpu.adapter!.tensors())];
  const gpu = await Model.fromStateDict(llamaTiny, weights, { device: 'cuda', lora: cpu.lora! });
  const { tokens, targets } = randomTokens(2, 16, 96, 4);
  const a = (await (await cpu.forward(tokens, { shape: [2, 16] })).data()) as Float32Array;
  const b = (await (await (await gpu.forward(tokens, { shape: [2, 16] })).to({ device: 'cpu' })).data()) as Float32Array;
  assertClose(b, a, { rtol: 1e-3, atol: 1e-3, what: 'cuda logits' });
  const la = await cpu.loss(tokens, targets, { shape: [2, 16], backward: true });
  const lb = await gpu.loss(tokens, targets, { shape: [2, 16], backward: true });
  assertClose([lb.loss], [la.loss], { rtol: 1e-4, what: 'cuda loss' });
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const low = await Model.fromStateDict(llamaTiny, weights, { device: 'cuda', dtype, lora: cpu.lora! });
    const { loss } = await low.loss(tokens, targets, { shape: [2, 16], backward: true });
    assert.ok(Math.abs(loss - la.loss) < 0.05, `${dtype} loss ${loss} vs ${la.loss}`);
    low.dispose();
  }
  cpu.dispose();
  gpu.dispose();
});

test.run();

// The native GPT against the plain-PyTorch reference (test/reference/gpt_reference.py): logits, loss and
// the gradient of every lora_* parameter, for small random configs of both families (MHA, GQA, MQA), with q/k norms,
// and litgpt's LLaMAMoE (top-k routing, LoRA on the router and every expert).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, Tensor, type LoraOptions, type ModelConfig } from '../ts/index.js';
import { assertClose } from './helpers/assert.js';
import { llamaTiny, moeTiny, perturbNorms, pythiaTiny, randomTokens, randomizeAdapter, referenceConfig, referenceImport, toNpy } from './helpers/model.js';
import type { NpyArray } from './helpers/npy.js';
import { runPython } from './helpers/python.js';

const ALL: LoraOptions = { r: 4, alpha: 8, dropout: 0, query: true, key: true, value: true, projection: true, mlp: true, head: true };

// tiedRouter: every router weight zero, so all experts tie for every token and top-k's tie order alone picks them.
const cases: { what: string; config: ModelConfig; lora: LoraOptions; norms?: boolean; tiedRouter?: boolean }[] = [
  { what: 'Pythia, MHA, LoRA on every target', config: pythiaTiny, lora: ALL },
  {
    what: 'Pythia, shared attention norm, tanh gelu, lm_head bias, q+v',
    config: { ...pythiaTiny, shared_attention_norm: true, gelu_approximate: 'tanh', lm_head_bias: true, rotary_percentage: 0.5 },
    lora: { r: 2, alpha: 3, dropout: 0, query: true, value: true },
  },
  { what: 'Llama, GQA (4 heads, 2 groups), Llama-3 rope, q+v+proj+mlp+head', config: llamaTiny,
    lora: { ...ALL, key: false } },
  {
    what: 'Llama, MQA, scaled embeddings, condensed rope, key+head only',
    config: { ...llamaTiny, n_query_groups: 1, scale_embeddings: true, rope_condense_ratio: 2, rope_adjustments: null, rope_base: 10000 },
    lora: { r: 3, alpha: 6, dropout: 0, query: false, key: true, value: false, head: true },
  },
  {
    what: 'Gemma-style: GemmaMLP, unit-offset RMSNorm, attention_scores_scalar, parallel residual',
    config: { ...llamaTiny, name: 'Gemma-tiny', mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', attention_scores_scalar: 12,
      parallel_residual: true, rope_adjustments: null, n_query_groups: 4 },
    lora: ALL,
  },
  {
    what: 'Qwen3-style: per-head q/k RMSNorm (norm_qk), GQA, head_size 16 ≠ n_embd / n_head, LoRA on every target',
    config: { ...llamaTiny, name: 'qwen3-tiny', norm_qk: true, head_size: 16, rope_adjustments: null, rope_base: 1000000 },
    lora: ALL, norms: true,
  },
  {
    what: 'OLMo-2-style q/k norm (norm_qk_type olmo2: over all heads\' channels), GQA, q+k+v',
    config: { ...llamaTiny, name: 'olmo2-tiny', norm_qk: true, norm_qk_type: 'olmo2', rope_adjustments: null },
    lora: { r: 2, alpha: 4, dropout: 0, query: true, key: true, value: true }, norms: true,
  },
  {
    what: 'Gemma-2-style: post-attention/MLP norms, attention and final logit softcapping, a 4-token sliding window in layer 0',
    config: { ...llamaTiny, name: 'Gemma-2-tiny', mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', scale_embeddings: true,
      attention_scores_scalar: 12, post_attention_norm: true, post_mlp_norm: true, attention_logit_softcapping: 0.5,
      final_logit_softcapping: 0.3, sliding_window_size: 4, sliding_window_indices: [1, 0], rope_adjustments: null },
    lora: ALL, norms: true,
  },
  {
    what: 'OLMo-2-style block: no norm_1 / norm_2, post-attention and post-MLP norms, q/k norms over all heads, GQA, every target',
    config: { ...llamaTiny, name: 'olmo2-tiny', norm_qk: true, norm_qk_type: 'olmo2', norm_1: false, norm_2: false,
      post_attention_norm: true, post_mlp_norm: true, rope_adjustments: null },
    lora: ALL, norms: true,
  },
  {
    what: 'Gemma-3-style: q/k norms, post norms, a 4-token window in layer 0 which rotates by the local rope base, linear rope scaling in layer 1',
    config: { ...llamaTiny, name: 'Gemma-3-tiny', mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', scale_embeddings: true,
      attention_scores_scalar: 12, post_attention_norm: true, post_mlp_norm: true, norm_qk: true, sliding_window_size: 4,
      sliding_window_indices: [1, 0], rope_base: 1000000, rope_adjustments: { factor: 8.0 }, rope_local_base_freq: 100, rope_indices: [1, 0] },
    lora: ALL, norms: true,
  },
  { what: 'Mixtral-style LLaMAMoE: 4 experts, top-2, LoRA on every target (the router and each expert\'s fc_1/fc_2/proj)',
    config: moeTiny, lora: ALL },
  {
    what: 'Qwen3-MoE-style LLaMAMoE: norm_qk, moe_intermediate_size 24, top-3 of 4, routed_scaling_factor 2.5, mlp+q+v',
    config: { ...moeTiny, name: 'qwen3-moe-tiny', norm_qk: true, head_size: 16, moe_intermediate_size: 24, n_expert_per_token: 3,
      routed_scaling_factor: 2.5 },
    lora: { r: 2, alpha: 4, dropout: 0, query: true, value: true, mlp: true }, norms: true,
  },
  {
    what: 'LLaMAMoE with a zero router (every expert ties): the experts torch.topk picks, LoRA on q+v+proj',
    config: { ...moeTiny, n_expert: 6, n_expert_per_token: 3 },
    lora: { r: 2, alpha: 4, dropout: 0, query: true, value: true, projection: true }, tiedRouter: true,
  },
];

test('logits, loss and every lora_* gradient match the PyTorch reference run in float64', async () => {
  const inputs: Record<string, NpyArray> = {};
  const ours: { logits: Float32Array; loss: number; grads: Map<string, Float32Array> }[] = [];
  const meta: { config: ModelConfig; shape: number[] }[] = [];
  for (const [i, c] of cases.entries()) {
    const model = await Model.fromConfig(c.config, { seed: 10 + i, lora: c.lora });
    await randomizeAdapter(model, 100 * i);
    if (c.norms) await perturbNorms(model, 1000 * i);
    if (c.tiedRouter) {
      const all = new Map(await model.stateDict());
      for (const [name, t] of all) if (name.endsWith('.mlp.gate.weight')) all.set(name, Tensor.from(new Float32Array(t.numel), t.shape));
      await model.loadStateDict(all);
    }
    const vocab = Number(model.config.vocab_size);
    const { tokens, targets } = randomTokens(2, 12, vocab, 7 + i, 5);
    const shape = [2, 12];
    for (const [name, t] of await model.stateDict()) inputs[`c${i}.w.${name}`] = await toNpy(t);
    for (const [name, t] of await model.adapter!.tensors()) inputs[`c${i}.w.${name}`] = await toNpy(t);
    inputs[`c${i}.tokens`] = { data: tokens, shape };
    inputs[`c${i}.targets`] = { data: targets, shape };
    const logits = (await (await model.forward(tokens, { shape })).data()) as Float32Array;
    const { loss } = await model.loss(tokens, targets, { shape, backward: true });
    const grads = new Map<string, Float32Array>();
    for (const [name, g] of await model.adapter!.gradients()) grads.set(name, (await g.data()) as Float32Array);
    ours.push({ logits, loss, grads });
    meta.push({ config: referenceConfig(model), shape });
    model.dispose();
  }
  const { outputs } = runPython(`${referenceImport}
cases = json.loads(${JSON.stringify(JSON.stringify(meta))})
for i, case in enumerate(cases):
    pre = f"c{i}."
    tensors = {k[len(pre) + 2:]: v for k, v in inp.items() if k.startswith(pre + "w.")}
    # litlora's float32 weights, the reference's arithmetic in float64: what is compared is litlora's fp32 rounding.
    model = ref.make_model(case["config"], tensors).double()
    tok = torch.as_tensor(inp[pre + "tokens"]).long().view(*case["shape"])
    tgt = torch.as_tensor(inp[pre + "targets"]).long().view(*case["shape"])
    logits = model(tok)
    out(pre + "logits", logits.detach().numpy())
    loss = ref.chunked_cross_entropy(logits, tgt)
    loss.backward()
    out(pre + "loss", np.array([loss.item()]))
    for name, p in model.named_parameters():
        if p.requires_grad:
            out(pre + "grad." + name, p.grad.numpy())
`, inputs);
  for (const [i, c] of cases.entries()) {
    const mine = ours[i];
    assertClose(mine.logits, outputs[`c${i}.logits`].data as Float64Array, { rtol: 1e-5, atol: 1e-5, what: `${c.what}: logits` });
    assertClose([mine.loss], outputs[`c${i}.loss`].data as Float64Array, { rtol: 1e-5, what: `${c.what}: loss` });
    const refGrads = Object.keys(outputs).filter((k) => k.startsWith(`c${i}.grad.`));
    assert.is(mine.grads.size, refGrads.length, `${c.what}: number of lora tensors`);
    for (const key of refGrads) {
      const name = key.slice(`c${i}.grad.`.length);
      assert.ok(mine.grads.has(name), `${c.what}: we have no ${name}`);
      assert.ok(mine.grads.get(name)!.some((v) => v !== 0), `${c.what}: grad ${name} is all zeros`);
      // litlora's fp32 sums differ from float64's by some fp32 ulps of the tensor's largest values (up to ~2e-6 of it,
      // in the Gemma 2 case's softcapped scores), so the absolute tolerance follows that scale.
      const want = outputs[key].data as Float64Array;
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assertClose(mine.grads.get(name)!, want, { rtol: 1e-5, atol: 1e-5 * scale, what: `${c.what}: grad ${name}` });
    }
  }
});

test('the trainable parameters are exactly the lora_* tensors', async () => {
  const model = await Model.fromConfig(pythiaTiny, { lora: ALL });
  await randomizeAdapter(model, 1);
  const { tokens, targets } = randomTokens(1, 8, 100, 3);
  await model.loss(tokens, targets, { backward: true });
  const names = model.adapter!.parameters().map(([n]) => n);
  assert.ok(names.every((n) => /\.lora_[AB]$/.test(n)));
  assert.is(names.length, 2 * (2 * 4 + 1)); // (2 layers × qkv, proj, fc, mlp.proj + lm_head) × A, B
  model.dispose();
});

test.run();

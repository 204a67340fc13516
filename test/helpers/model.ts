// Shared pieces of the model suites: small configs of both families, random LoRA weights, and a bridge that
// runs test/reference/gpt_reference.py on a model's exact weights.
import { join } from 'node:path';
import { packageRoot } from '../../ts/addon_loader.js';
import { Model, Tensor, type ModelConfig } from '../../ts/index.js';
import { randomArray, seededRandom } from './assert.js';
import type { NpyArray } from './npy.js';

export const pythiaTiny: ModelConfig = {
  name: 'pythia-tiny', block_size: 64, vocab_size: 100, padding_multiple: 64, n_layer: 2, n_head: 4, n_embd: 32,
  rotary_percentage: 0.25, parallel_residual: true, bias: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP',
  intermediate_size: 64,
};

export const llamaTiny: ModelConfig = {
  name: 'llama-tiny', block_size: 64, vocab_size: 96, padded_vocab_size: 96, n_layer: 2, n_head: 4, n_query_groups: 2,
  n_embd: 32, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm', norm_eps: 1e-5,
  mlp_class_name: 'LLaMAMLP', intermediate_size: 48, rope_base: 500000,
  rope_adjustments: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_seq_len: 16 },
};

/** Mixtral-shaped: litgpt's LLaMAMoE with 4 experts, 2 per token, experts intermediate_size wide. */
export const moeTiny: ModelConfig = {
  ...llamaTiny, name: 'moe-tiny', mlp_class_name: 'LLaMAMoE', n_expert: 4, n_expert_per_token: 2, rope_adjustments: null,
  rope_base: 1000000,
};

/** Sets every lora_* tensor to random values (B is zero after init, which would hide LoRA from every check). */
export async function randomizeAdapter(model: Model, seed: number, scale = 0.2): Promise<void> {
  const adapter = model.adapter!;
  const entries: [string, Tensor][] = [];
  let i = 0;
  for (const [name, t] of await adapter.tensors()) {
    entries.push([name, Tensor.from(new Float32Array(randomArray(t.numel, seed + i++, scale)), t.shape)]);
  }
  await adapter.loadTensors(entries);
}

/** Sets every norm weight to 1 + N-ish noise (init's ones would hide a norm applied to the wrong tensor). */
export async function perturbNorms(model: Model, seed: number): Promise<void> {
  const entries: [string, Tensor][] = [];
  let i = 0;
  for (const [name, t] of await model.stateDict()) {
    if (!/norm/.test(name) || !name.endsWith('.weight')) continue;
    entries.push([name, Tensor.from(new Float32Array(randomArray(t.numel, seed + i++, 0.2).map((v) => 1 + v)), t.shape)]);
  }
  const all = new Map(await model.stateDict());
  for (const [name, t] of entries) all.set(name, t);
  await model.loadStateDict(all);
}

export function randomTokens(batch: number, time: number, vocab: number, seed: number, ignoreEvery = 0): { tokens: Int32Array; targets: Int32Array } {
  const rand = seededRandom(seed);
  const tokens = new Int32Array(batch * time), targets = new Int32Array(batch * time);
  for (let i = 0; i < tokens.length; i++) {
    tokens[i] = Math.floor(rand() * vocab);
    targets[i] = ignoreEvery && i % ignoreEvery === 0 ? -100 : Math.floor(rand() * vocab);
  }
  return { tokens, targets };
}

export async function toNpy(t: Tensor): Promise<NpyArray> {
  const data = await t.data();
  return { data: data instanceof Float32Array ? data : new Float32Array(data as Float64Array), shape: t.shape };
}

/** Python prelude that imports the reference implementation. */
export const referenceImport = `sys.path.insert(0, ${JSON.stringify(join(packageRoot, 'test', 'reference'))})\nimport torch, json\nimport gpt_reference as ref\ntorch.set_num_threads(2)`;

/** The config the Python reference takes: litgpt's model fields plus its lora Config fields. */
export function referenceConfig(model: Model): ModelConfig {
  const out: ModelConfig = { ...model.config };
  for (const [k, v] of Object.entries(model.lora ?? {})) out[`lora_${k}`] = v;
  return out;
}

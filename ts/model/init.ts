// initCheckpoint: makes a base checkpoint folder in litgpt's layout with nothing downloaded —
// lit_model.pth (litgpt's parameter names and shapes for the config, era C names `attn.qkv`),
// model_config.yaml, a byte-level tokenizer.json + tokenizer_config.json, and generation_config.json.
//
// The weights are random and deterministic in the seed: linear and embedding weights uniform with
// standard deviation 0.02 (litgpt's GPT._init_weights uses normal(0, 0.02)), biases 0, norm weights 1.
// The model issue replaces this with Model.fromConfig and litgpt's exact initialisation.
//
// The vocabulary is the tokenizer's (259 tokens); vocab_size is set to it and padded_vocab_size to the
// next multiple of the config's padding_multiple, so the folder is coherent whatever the named config said.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { BYTE_VOCAB_SIZE, byteLevelTokenizerFiles } from '../data/bytetokenizer.js';
import { CONFIG_FILE, LORA_FILE, MODEL_FILE } from '../io/checkpoint.js';
import { configToYaml, normalizeConfig, type Config, type ConfigInput } from './config.js';
import { namedConfigInput } from './configs.js';
import { fail, LitloraError } from '../errors.js';
import { writeCheckpointFolder, type FolderFile } from '../io/outdir.js';
import type { Dtype } from '../tensor.js';
import { Model } from './model.js';
import { saveTensors, type SaveTensorsFn } from '../io/tensorfile.js';

export type InitPrecision = '32-true' | 'bf16-true' | '16-true';

export const PRECISION_DTYPES: Record<InitPrecision, Dtype> = {
  '32-true': 'float32', 'bf16-true': 'bfloat16', '16-true': 'float16',
};

export interface InitOptions {
  outDir: string;
  /** A named config (default pythia-14m), ignored when `config` is given. */
  modelName?: string;
  /** A full or partial config to start from instead of a named one. */
  config?: ConfigInput;
  /** Field overrides applied on top (e.g. `{ n_layer: 2 }`). vocab_size is always the tokenizer's. */
  overrides?: ConfigInput;
  seed?: number;
  precision?: InitPrecision;
  /** Replace an existing checkpoint in outDir. */
  force?: boolean;
  /**
   * Keep the config's own vocab_size / padded_vocab_size (e.g. pythia-410m at its real size, ~1.6 GB in fp32, for
   * benchmarks) instead of the tokenizer's 259. The byte tokenizer then uses only the first 259 ids.
   */
  keepVocabSize?: boolean;
  saveTensors?: SaveTensorsFn;
}

export interface InitResult {
  dir: string;
  config: Config;
  /** Parameter names and shapes, in litgpt's state-dict order. */
  parameters: [string, number[]][];
  parameterCount: number;
  dtype: Dtype;
}

/**
 * litgpt's base state-dict names and shapes for `config` (litgpt/model.py, names since the `attn.qkv` rename), in
 * litgpt's order. Features whose parameter names litlora does not know yet are ERR_CONFIG.
 */
export function baseParameters(config: Config): [string, number[]][] {
  const c = config;
  const unsupported: string[] = [];
  if (c.mlp_class_name !== 'LLaMAMoE' && c.n_expert > 0) unsupported.push('mixture of experts (n_expert without LLaMAMoE)');
  if (c.n_shared_expert) unsupported.push('shared experts');
  if (c.latent_attention) unsupported.push('latent_attention');
  if (unsupported.length) {
    fail('ERR_CONFIG', `litlora init cannot make weights for ${c.name || 'this config'}: ${unsupported.join(', ')} ` +
      'is not supported yet. Use a Pythia, Llama, SmolLM2 or Qwen2.5 config.');
  }
  const out: [string, number[]][] = [];
  const norm = (prefix: string, size = c.n_embd) => {
    out.push([`${prefix}.weight`, [size]]);
    if (c.norm_class_name === 'LayerNorm') out.push([`${prefix}.bias`, [size]]);
  };
  const linear = (prefix: string, outF: number, inF: number, bias: boolean) => {
    out.push([`${prefix}.weight`, [outF, inF]]);
    if (bias) out.push([`${prefix}.bias`, [outF]]);
  };
  linear('lm_head', c.padded_vocab_size, c.n_embd, c.lm_head_bias);
  out.push(['transformer.wte.weight', [c.padded_vocab_size, c.n_embd]]);
  const qkvOut = (c.n_head + 2 * c.n_query_groups) * c.head_size;
  for (let i = 0; i < c.n_layer; i++) {
    const h = `transformer.h.${i}`;
    if (c.norm_1) norm(`${h}.norm_1`);
    linear(`${h}.attn.qkv`, qkvOut, c.n_embd, c.bias || c.attn_bias);
    linear(`${h}.attn.proj`, c.n_embd, c.n_head * c.head_size, c.bias);
    if (c.norm_qk) {  // per head (Qwen3) or over all heads (OLMo 2), as litgpt's CausalSelfAttention sizes them
      const olmo2 = c.norm_qk_type === 'olmo2';
      norm(`${h}.attn.norm_q`, olmo2 ? c.n_head * c.head_size : c.head_size);
      norm(`${h}.attn.norm_k`, olmo2 ? c.n_query_groups * c.head_size : c.head_size);
    }
    if (c.post_attention_norm) norm(`${h}.post_attention_norm`);
    if (c.norm_2 && !c.shared_attention_norm) norm(`${h}.norm_2`);
    if (c.mlp_class_name === 'LLaMAMoE') {  // litgpt's LLaMAMoE: the router, then each expert's LLaMAMLP
      const size = c.moe_intermediate_size ?? c.intermediate_size;
      linear(`${h}.mlp.gate`, c.n_expert, c.n_embd, false);
      for (let e = 0; e < c.n_expert; e++) {
        linear(`${h}.mlp.experts.${e}.fc_1`, size, c.n_embd, c.bias);
        linear(`${h}.mlp.experts.${e}.fc_2`, size, c.n_embd, c.bias);
        linear(`${h}.mlp.experts.${e}.proj`, c.n_embd, size, c.bias);
      }
    } else if (c.mlp_class_name === 'GptNeoxMLP') {
      linear(`${h}.mlp.fc`, c.intermediate_size, c.n_embd, c.bias);
      linear(`${h}.mlp.proj`, c.n_embd, c.intermediate_size, c.bias);
    } else {
      linear(`${h}.mlp.fc_1`, c.intermediate_size, c.n_embd, c.bias);
      linear(`${h}.mlp.fc_2`, c.intermediate_size, c.n_embd, c.bias);
      linear(`${h}.mlp.proj`, c.n_embd, c.intermediate_size, c.bias);
    }
    if (c.post_mlp_norm) norm(`${h}.post_mlp_norm`);
  }
  norm('transformer.ln_f');
  return out;
}

/** The config init writes: `base` with the byte tokenizer's vocabulary and the overrides applied. */
export function initConfig(options: Pick<InitOptions, 'modelName' | 'config' | 'overrides' | 'keepVocabSize'>): Config {
  const overrides = { ...(options.overrides ?? {}) };
  if (!options.keepVocabSize && overrides.vocab_size !== undefined && overrides.vocab_size !== BYTE_VOCAB_SIZE) {
    fail('ERR_CONFIG', `litlora init sets vocab_size to its tokenizer's ${BYTE_VOCAB_SIZE} tokens; remove the vocab_size override.`);
  }
  // Overrides go onto the named entry before __post_init__ runs, so derived values (head_size, ...) follow them.
  const tokenizerVocab: ConfigInput = options.keepVocabSize ? {} : { vocab_size: BYTE_VOCAB_SIZE };
  if (!options.keepVocabSize && overrides.padded_vocab_size === undefined) tokenizerVocab.padded_vocab_size = null;
  const merged: ConfigInput = options.config
    ? { ...options.config, ...overrides, ...tokenizerVocab }
    : { ...namedConfigInput(options.modelName ?? 'pythia-14m'), ...overrides, ...tokenizerVocab };
  delete merged.rope_n_elem;
  const config = normalizeConfig(merged, 'litlora init config');
  if (config.vocab_size < BYTE_VOCAB_SIZE) {
    fail('ERR_CONFIG', `vocab_size ${config.vocab_size} is smaller than the tokenizer's ${BYTE_VOCAB_SIZE} tokens.`);
  }
  return config;
}

/** Writes the base checkpoint folder. The weights file is written last (see outdir.ts). */
export async function initCheckpoint(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.outDir);
  const precision = options.precision ?? '32-true';
  const dtype = PRECISION_DTYPES[precision];
  if (!dtype) fail('ERR_ARG', `precision must be one of ${Object.keys(PRECISION_DTYPES).join(', ')}, got ${precision}`);
  const seed = options.seed ?? 1337;
  if (!Number.isInteger(seed)) fail('ERR_ARG', `seed must be an integer, got ${seed}`);
  const config = initConfig(options);
  const params = baseParameters(config);

  if (existsSync(join(dir, MODEL_FILE)) || existsSync(join(dir, CONFIG_FILE))) {
    if (!options.force) {
      throw new LitloraError('ERR_ARG', `${dir} already holds a checkpoint (${MODEL_FILE} or ${CONFIG_FILE}). ` +
        'Choose another --out_dir, or pass --force to replace it.');
    }
  }

  const tok = byteLevelTokenizerFiles({ modelMaxLength: config.block_size });
  const json = (v: object) => `${JSON.stringify(v, null, 2)}\n`;
  const files: FolderFile[] = [
    { name: 'tokenizer.json', write: (p) => writeFileAtomic(p, json(tok.tokenizer)) },
    { name: 'tokenizer_config.json', write: (p) => writeFileAtomic(p, json(tok.tokenizerConfig)) },
    { name: 'generation_config.json', write: (p) => writeFileAtomic(p, json(tok.generationConfig)) },
    { name: CONFIG_FILE, write: (p) => writeFileAtomic(p, configToYaml(config)) },
  ];
  const save = options.saveTensors ?? saveTensors;
  await writeCheckpointFolder(dir, files, {
    name: MODEL_FILE,
    write: async (path) => {
      // litgpt's initialisation (N(0, 0.02) linears and embedding, zero biases, unit norms), seeded, from the
      // native model; weights are created in float32 and rounded once to the requested precision.
      const model = await Model.fromConfig(config, { seed });
      const tensors = await model.stateDict();
      model.dispose();
      try {
        if (dtype !== 'float32') {
          for (const [name, t] of tensors) {
            tensors.set(name, await t.to({ dtype }));
            t.dispose();
          }
        }
        await save(path, tensors, { format: 'pth' });
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    },
  }, { drop: [LORA_FILE] });  // an adapter for other weights would be wrong; it goes only once the new folder is in place
  return {
    dir, config, dtype,
    parameters: params.map(([n, s]) => [n, s]),
    parameterCount: params.reduce((sum, [, s]) => sum + s.reduce((a, b) => a * b, 1), 0),
  };
}

// Hugging Face config.json ⇄ litgpt's Config, for the model families litlora runs.
//
// A family is one transformers architecture class and the litgpt Config shape it corresponds to (litgpt's
// convert_hf_checkpoint / convert_lit_checkpoint pick their weight copier the same way). Reading accepts both
// transformers 5's keys (`rope_parameters`) and the older ones (`rope_theta`, `rope_scaling`, `rotary_pct`,
// `rotary_emb_base`) that most hub repos still carry; writing emits both, so transformers 4.x and 5.x (and
// vLLM/TGI, which read config.json themselves) load the folder.
import { fail } from '../errors.js';
import type { Config, ConfigInput } from '../model/config.js';

export type HfFamilyName = 'gpt_neox' | 'llama' | 'qwen2';

/** A config.json, as parsed. */
export type HfConfigJson = Record<string, unknown>;

export interface HfFamily {
  name: HfFamilyName;
  /** transformers' causal-LM class (config.json `architectures[0]`). */
  architecture: string;
  /** config.json `model_type`. */
  modelType: string;
}

export const HF_FAMILIES: readonly HfFamily[] = [
  { name: 'gpt_neox', architecture: 'GPTNeoXForCausalLM', modelType: 'gpt_neox' },
  { name: 'llama', architecture: 'LlamaForCausalLM', modelType: 'llama' },
  { name: 'qwen2', architecture: 'Qwen2ForCausalLM', modelType: 'qwen2' },
];

/** The architectures convert_to_litgpt accepts, for messages. */
export function supportedArchitectures(): string {
  return HF_FAMILIES.map((f) => f.architecture).join(', ');
}

/** The family of a config.json, by `architectures` then `model_type`; ERR_CONFIG for one litlora does not run. */
export function familyOfHfConfig(hf: HfConfigJson, where: string): HfFamily {
  const archs = Array.isArray(hf.architectures) ? hf.architectures.map(String) : [];
  const family = HF_FAMILIES.find((f) => archs.includes(f.architecture)) ??
    (archs.length === 0 ? HF_FAMILIES.find((f) => f.modelType === hf.model_type) : undefined);
  if (!family) {
    fail('ERR_CONFIG', `${where}: the architecture ${archs.length ? archs.join(', ') : `model_type '${String(hf.model_type)}'`} ` +
      `is not one litlora runs. Supported: ${supportedArchitectures()}.`);
  }
  return family;
}

/** The family a litgpt Config is written as (convert_from_litgpt); ERR_CONFIG when none fits. */
export function familyOfConfig(c: Config, where: string): HfFamily {
  const get = (n: HfFamilyName) => HF_FAMILIES.find((f) => f.name === n)!;
  if (c.mlp_class_name === 'GptNeoxMLP' && c.norm_class_name === 'LayerNorm' && c.n_query_groups === c.n_head && !c.lm_head_bias) {
    return get('gpt_neox');
  }
  if (c.mlp_class_name === 'LLaMAMLP' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias) {
    if (!c.bias && c.attn_bias) return get('qwen2');
    return get('llama');
  }
  fail('ERR_CONFIG', `${where}: a ${c.mlp_class_name} / ${c.norm_class_name} model (config '${c.name}') has no Hugging Face ` +
    `architecture litlora writes. It writes: ${supportedArchitectures()}.`);
}

function num(hf: HfConfigJson, key: string, where: string, fallback?: number): number {
  const v = hf[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail('ERR_CONFIG', `${where}: config.json has no '${key}'; expected a number (a transformers config of this family has one).`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) fail('ERR_CONFIG', `${where}: config.json '${key}' must be a number, got ${JSON.stringify(v)}.`);
  return v;
}

function bool(hf: HfConfigJson, key: string, fallback: boolean): boolean {
  const v = hf[key];
  return typeof v === 'boolean' ? v : fallback;
}

/** The RoPE settings of either config.json generation: rope_parameters (transformers 5) or rope_theta + rope_scaling. */
function ropeParameters(hf: HfConfigJson): Record<string, unknown> {
  const params = (hf.rope_parameters && typeof hf.rope_parameters === 'object' ? hf.rope_parameters : {}) as Record<string, unknown>;
  const scaling = (hf.rope_scaling && typeof hf.rope_scaling === 'object' ? hf.rope_scaling : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...scaling, ...params };
  if (out.rope_theta === undefined && hf.rope_theta !== undefined) out.rope_theta = hf.rope_theta;
  if (out.rope_theta === undefined && hf.rotary_emb_base !== undefined) out.rope_theta = hf.rotary_emb_base;
  if (out.partial_rotary_factor === undefined && hf.rotary_pct !== undefined) out.partial_rotary_factor = hf.rotary_pct;
  if (out.partial_rotary_factor === undefined && hf.partial_rotary_factor !== undefined) out.partial_rotary_factor = hf.partial_rotary_factor;
  if (out.rope_type === undefined && out.type !== undefined) out.rope_type = out.type;
  return out;
}

function ropeAdjustments(rope: Record<string, unknown>, where: string): ConfigInput['rope_adjustments'] {
  const type = rope.rope_type ?? 'default';
  if (type === 'default') return null;
  if (type === 'llama3') {
    return {
      factor: Number(rope.factor), low_freq_factor: Number(rope.low_freq_factor), high_freq_factor: Number(rope.high_freq_factor),
      original_max_seq_len: Number(rope.original_max_position_embeddings),
    };
  }
  fail('ERR_CONFIG', `${where}: RoPE scaling '${String(type)}' is not one litlora runs (it runs none and 'llama3').`);
}

/** litgpt Config fields for a config.json of `family` (the shape; name and hf_config are set by the caller). */
export function configInputFromHf(hf: HfConfigJson, family: HfFamily, where: string): ConfigInput {
  const n_embd = num(hf, 'hidden_size', where);
  const n_head = num(hf, 'num_attention_heads', where);
  const vocab = num(hf, 'vocab_size', where);
  const rope = ropeParameters(hf);
  const common: ConfigInput = {
    block_size: num(hf, 'max_position_embeddings', where, 2048),
    n_layer: num(hf, 'num_hidden_layers', where), n_embd, n_head,
    vocab_size: vocab, padded_vocab_size: vocab, padding_multiple: 1,
    intermediate_size: num(hf, 'intermediate_size', where),
    rope_base: Number(rope.rope_theta ?? 10000),
  };
  if (family.name === 'gpt_neox') {
    const act = String(hf.hidden_act ?? 'gelu');
    if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'].includes(act)) {
      fail('ERR_CONFIG', `${where}: hidden_act '${act}' is not one litlora's GptNeoxMLP runs (gelu, or a tanh-approximated gelu).`);
    }
    if (hf.attention_bias === false) fail('ERR_CONFIG', `${where}: a GPT-NeoX without attention biases is not one litgpt describes.`);
    return {
      ...common, head_size: n_embd / n_head, n_query_groups: n_head,
      rotary_percentage: Number(rope.partial_rotary_factor ?? 0.25),
      parallel_residual: bool(hf, 'use_parallel_residual', true), bias: true,
      norm_class_name: 'LayerNorm', norm_eps: num(hf, 'layer_norm_eps', where, 1e-5),
      mlp_class_name: 'GptNeoxMLP', gelu_approximate: act === 'gelu' ? 'none' : 'tanh',
      rope_adjustments: ropeAdjustments(rope, where),
    };
  }
  const act = String(hf.hidden_act ?? 'silu');
  if (act !== 'silu') fail('ERR_CONFIG', `${where}: hidden_act '${act}' is not what litlora's LLaMAMLP runs (silu).`);
  const attnBias = family.name === 'qwen2' ? true : bool(hf, 'attention_bias', false);
  const mlpBias = bool(hf, 'mlp_bias', false);
  if (family.name === 'llama' && attnBias !== mlpBias) {
    fail('ERR_CONFIG', `${where}: attention_bias=${attnBias} with mlp_bias=${mlpBias}; litgpt's Llama has biases on every linear or none.`);
  }
  const nqg = num(hf, 'num_key_value_heads', where, n_head);
  const headDim = num(hf, 'head_dim', where, n_embd / n_head);
  if (family.name === 'qwen2' && hf.use_sliding_window === true) {
    fail('ERR_CONFIG', `${where}: use_sliding_window is true; litlora does not run sliding-window attention for Qwen2 yet.`);
  }
  return {
    ...common, head_size: headDim, n_query_groups: nqg, rotary_percentage: Number(rope.partial_rotary_factor ?? 1.0),
    parallel_residual: false, bias: family.name === 'qwen2' ? false : attnBias, attn_bias: family.name === 'qwen2',
    norm_class_name: 'RMSNorm', norm_eps: num(hf, 'rms_norm_eps', where, 1e-6), mlp_class_name: 'LLaMAMLP',
    rope_adjustments: ropeAdjustments(rope, where),
  };
}

/**
 * The fields of a litgpt Config that decide what the weights compute: two configs with the same values here
 * run the same model (name, hf_config, vocab_size of the tokenizer and block_size do not).
 */
export const ARCHITECTURE_FIELDS = [
  'n_layer', 'n_embd', 'n_head', 'n_query_groups', 'head_size', 'intermediate_size', 'padded_vocab_size',
  'norm_class_name', 'norm_eps', 'mlp_class_name', 'bias', 'attn_bias', 'parallel_residual', 'shared_attention_norm',
  'rotary_percentage', 'rope_base', 'rope_adjustments', 'gelu_approximate', 'lm_head_bias', 'norm_qk',
  'post_attention_norm', 'post_mlp_norm', 'sliding_window_size', 'scale_embeddings',
] as const;

/** The architecture fields where `a` and `b` differ ([] when they run the same model). */
export function architectureDifferences(a: Config, b: Config): string[] {
  const out: string[] = [];
  for (const key of ARCHITECTURE_FIELDS) {
    const x = JSON.stringify((a as any)[key] ?? null), y = JSON.stringify((b as any)[key] ?? null);
    if (key === 'norm_eps' || key === 'rope_base' || key === 'rotary_percentage') {
      if (Math.abs(Number((a as any)[key]) - Number((b as any)[key])) > 1e-12 * Math.max(1, Math.abs(Number((a as any)[key])))) {
        out.push(`${key} ${x} ≠ ${y}`);
      }
    } else if (x !== y) {
      out.push(`${key} ${x} ≠ ${y}`);
    }
  }
  return out;
}

/**
 * config.json for a litgpt Config, as transformers writes it for `family` (both generations of RoPE keys).
 * `tied`: the head shares the embedding's weights (then the weights file omits lm_head.weight).
 */
export function hfConfigFromConfig(c: Config, family: HfFamily, options: { tied: boolean; dtype: string;
  bosTokenId?: number | null; eosTokenId?: number | null }): HfConfigJson {
  const ropeScaling = c.rope_adjustments && c.rope_adjustments.low_freq_factor !== undefined
    ? {
      rope_type: 'llama3', factor: c.rope_adjustments.factor, low_freq_factor: c.rope_adjustments.low_freq_factor,
      high_freq_factor: c.rope_adjustments.high_freq_factor, original_max_position_embeddings: c.rope_adjustments.original_max_seq_len,
    }
    : null;
  if (c.rope_adjustments && !ropeScaling) {
    fail('ERR_CONFIG', `config '${c.name}': rope_adjustments ${JSON.stringify(c.rope_adjustments)} have no transformers equivalent litlora writes.`);
  }
  const ropeParameters: Record<string, unknown> = { rope_theta: c.rope_base, rope_type: 'default', ...(ropeScaling ?? {}) };
  const common: HfConfigJson = {
    architectures: [family.architecture], model_type: family.modelType, hidden_size: c.n_embd,
    num_hidden_layers: c.n_layer, num_attention_heads: c.n_head, intermediate_size: c.intermediate_size,
    vocab_size: c.padded_vocab_size, max_position_embeddings: c.block_size, tie_word_embeddings: options.tied,
    torch_dtype: options.dtype, dtype: options.dtype, use_cache: true, initializer_range: 0.02,
    bos_token_id: options.bosTokenId ?? null, eos_token_id: options.eosTokenId ?? null,
    rope_theta: c.rope_base, rope_scaling: ropeScaling,
  };
  if (family.name === 'gpt_neox') {
    if (c.rotary_percentage !== 1) ropeParameters.partial_rotary_factor = c.rotary_percentage;
    return {
      ...common, hidden_act: c.gelu_approximate === 'tanh' ? 'gelu_new' : 'gelu', layer_norm_eps: c.norm_eps,
      use_parallel_residual: c.parallel_residual, rotary_pct: c.rotary_percentage, rotary_emb_base: c.rope_base,
      attention_bias: true, attention_dropout: 0.0, hidden_dropout: 0.0, rope_parameters: ropeParameters,
    };
  }
  if (c.rotary_percentage !== 1) {
    fail('ERR_CONFIG', `config '${c.name}': rotary_percentage ${c.rotary_percentage} has no ${family.architecture} equivalent (it rotates whole heads).`);
  }
  const llamaLike: HfConfigJson = {
    ...common, hidden_act: 'silu', rms_norm_eps: c.norm_eps, num_key_value_heads: c.n_query_groups, head_dim: c.head_size,
    attention_dropout: 0.0, rope_parameters: ropeParameters,
  };
  if (family.name === 'qwen2') return { ...llamaLike, use_sliding_window: false, sliding_window: null, max_window_layers: c.n_layer };
  return { ...llamaLike, attention_bias: c.bias, mlp_bias: c.bias, pretraining_tp: 1 };
}

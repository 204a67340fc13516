// Hugging Face config.json ⇄ litgpt's Config, for the model families litlora runs.
//
// A family is one transformers architecture class and the litgpt Config shape it corresponds to (litgpt's
// convert_hf_checkpoint / convert_lit_checkpoint pick their weight copier the same way). Reading accepts both
// transformers 5's keys (`rope_parameters`) and the older ones (`rope_theta`, `rope_scaling`, `rotary_pct`,
// `rotary_emb_base`) that most hub repos still carry; writing emits both, so transformers 4.x and 5.x (and
// vLLM/TGI, which read config.json themselves) load the folder.
import { fail } from '../errors.js';
import type { Config, ConfigInput } from '../model/config.js';

export type HfFamilyName = 'gpt_neox' | 'llama' | 'qwen2' | 'qwen3' | 'gemma2' | 'mixtral' | 'qwen3_moe';

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
  { name: 'qwen3', architecture: 'Qwen3ForCausalLM', modelType: 'qwen3' },
  { name: 'gemma2', architecture: 'Gemma2ForCausalLM', modelType: 'gemma2' },
  { name: 'mixtral', architecture: 'MixtralForCausalLM', modelType: 'mixtral' },
  { name: 'qwen3_moe', architecture: 'Qwen3MoeForCausalLM', modelType: 'qwen3_moe' },
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
  const llamaLike = c.mlp_class_name === 'LLaMAMLP' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias;
  const moe = c.mlp_class_name === 'LLaMAMoE' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias && !c.bias &&
    !c.attn_bias && c.routed_scaling_factor === 1 && !c.n_shared_expert && c.sliding_window_size === null;
  if (moe && !c.norm_qk) return get('mixtral');
  if (moe && c.norm_qk_type === 'default') return get('qwen3_moe');
  if (!c.norm_qk) {
    if (c.mlp_class_name === 'GptNeoxMLP' && c.norm_class_name === 'LayerNorm' && c.n_query_groups === c.n_head && !c.lm_head_bias) {
      return get('gpt_neox');
    }
    if (llamaLike) return get(!c.bias && c.attn_bias ? 'qwen2' : 'llama');
  } else if (llamaLike && c.norm_qk_type === 'default' && !c.bias) {
    return get('qwen3');
  }
  if (isGemma2(c)) return get('gemma2');
  fail('ERR_CONFIG', `${where}: a ${c.mlp_class_name} / ${c.norm_class_name} model (config '${c.name}') has no Hugging Face ` +
    `architecture litlora writes. It writes: ${supportedArchitectures()}.`);
}

/** Gemma 2's shape in litgpt (its Gemma-2-* configs): everything Gemma2ForCausalLM has, and nothing it lacks. */
function isGemma2(c: Config): boolean {
  return c.mlp_class_name === 'GemmaMLP' && c.gelu_approximate === 'tanh' && c.norm_class_name === 'RMSNorm' &&
    String(c.name).includes('Gemma') && c.post_attention_norm && c.post_mlp_norm && c.scale_embeddings && !c.parallel_residual &&
    !c.bias && !c.attn_bias && !c.lm_head_bias && !c.norm_qk && c.rope_local_base_freq === null;
}

/**
 * litgpt's sliding_window_indices for Gemma 2's `layer_types` (transformers 5); configs without it use
 * transformers' default, a sliding window in every even layer (litgpt's `1 if i % 2 == 0 else 0`).
 */
function gemma2WindowLayers(hf: HfConfigJson, nLayer: number, where: string): number[] {
  if (!Array.isArray(hf.layer_types)) return Array.from({ length: nLayer }, (_, i) => (i % 2 === 0 ? 1 : 0));
  return hf.layer_types.map((t, i) => {
    if (t !== 'sliding_attention' && t !== 'full_attention') fail('ERR_CONFIG', `${where}: layer_types[${i}] '${String(t)}' is not one Gemma 2 has.`);
    return t === 'sliding_attention' ? 1 : 0;
  });
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
  if (family.name === 'gemma2') {
    const act = String(hf.hidden_activation ?? hf.hidden_act ?? 'gelu_pytorch_tanh');
    if (act !== 'gelu_pytorch_tanh') fail('ERR_CONFIG', `${where}: hidden_activation '${act}' is not what litgpt's Gemma 2 runs (gelu_pytorch_tanh).`);
    if (hf.attention_bias === true) fail('ERR_CONFIG', `${where}: a Gemma 2 with attention biases is not one litgpt describes.`);
    const nLayer = num(hf, 'num_hidden_layers', where);
    const cap = (key: string) => (hf[key] === null ? null : num(hf, key, where));
    return {
      ...common, head_size: num(hf, 'head_dim', where, n_embd / n_head), n_query_groups: num(hf, 'num_key_value_heads', where, n_head),
      rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm', norm_eps: num(hf, 'rms_norm_eps', where, 1e-6),
      mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', scale_embeddings: true, post_attention_norm: true, post_mlp_norm: true,
      attention_scores_scalar: num(hf, 'query_pre_attn_scalar', where), attention_logit_softcapping: cap('attn_logit_softcapping'),
      final_logit_softcapping: cap('final_logit_softcapping'), sliding_window_size: num(hf, 'sliding_window', where),
      sliding_window_indices: gemma2WindowLayers(hf, nLayer, where), rope_adjustments: ropeAdjustments(rope, where),
    };
  }
  const act = String(hf.hidden_act ?? 'silu');
  if (act !== 'silu') fail('ERR_CONFIG', `${where}: hidden_act '${act}' is not what litlora's LLaMAMLP runs (silu).`);
  if (family.name === 'mixtral' || family.name === 'qwen3_moe') return moeConfigInput(hf, family, where, common);
  const attnBias = family.name === 'qwen2' ? true : bool(hf, 'attention_bias', false);
  const mlpBias = family.name === 'qwen3' ? false : bool(hf, 'mlp_bias', false);
  if (family.name === 'llama' && attnBias !== mlpBias) {
    fail('ERR_CONFIG', `${where}: attention_bias=${attnBias} with mlp_bias=${mlpBias}; litgpt's Llama has biases on every linear or none.`);
  }
  const nqg = num(hf, 'num_key_value_heads', where, n_head);
  const headDim = num(hf, 'head_dim', where, n_embd / n_head);
  const qwen = family.name === 'qwen2' || family.name === 'qwen3';
  if (qwen && hf.use_sliding_window === true) {
    fail('ERR_CONFIG', `${where}: use_sliding_window is true; litlora does not run sliding-window attention for ${family.architecture} yet.`);
  }
  return {
    ...common, head_size: headDim, n_query_groups: nqg, rotary_percentage: Number(rope.partial_rotary_factor ?? 1.0),
    // Qwen2 always has q/k/v biases and no others; Qwen3 has them when attention_bias says so (litgpt's attn_bias).
    parallel_residual: false, bias: qwen ? false : attnBias, attn_bias: qwen ? attnBias : false,
    norm_class_name: 'RMSNorm', norm_eps: num(hf, 'rms_norm_eps', where, 1e-6), mlp_class_name: 'LLaMAMLP',
    rope_adjustments: ropeAdjustments(rope, where),
    // Qwen3's q_norm / k_norm: an RMSNorm over each head's head_dim channels (litgpt's norm_qk_type "default").
    ...(family.name === 'qwen3' ? { norm_qk: true } : {}),
  };
}

/**
 * Mixtral and Qwen3-MoE as litgpt's LLaMAMoE: softmax over the top-k router logits, which is what both compute
 * (Mixtral renormalises its top-k softmax; Qwen3-MoE does when norm_topk_prob is true, as its released configs
 * set). Sliding windows, dense layers between the sparse ones and unnormalised top-k are refused.
 */
function moeConfigInput(hf: HfConfigJson, family: HfFamily, where: string, common: ConfigInput): ConfigInput {
  const nExpert = num(hf, hf.num_experts !== undefined ? 'num_experts' : 'num_local_experts', where);
  const qwen = family.name === 'qwen3_moe';
  if (hf.sliding_window !== undefined && hf.sliding_window !== null && (!qwen || hf.use_sliding_window === true)) {
    fail('ERR_CONFIG', `${where}: sliding_window ${JSON.stringify(hf.sliding_window)}; litgpt's ${family.architecture} configs attend ` +
      'without a window and litlora converts only those. Set sliding_window to null.');
  }
  if (qwen) {
    if (hf.norm_topk_prob !== true) {
      fail('ERR_CONFIG', `${where}: norm_topk_prob is ${JSON.stringify(hf.norm_topk_prob ?? false)}; litgpt's LLaMAMoE always normalises ` +
        'the top-k routing weights (a softmax over the chosen experts), so only norm_topk_prob: true converts.');
    }
    const onlyLayers = hf.mlp_only_layers;
    if (num(hf, 'decoder_sparse_step', where, 1) !== 1 || (Array.isArray(onlyLayers) && onlyLayers.length > 0)) {
      fail('ERR_CONFIG', `${where}: decoder_sparse_step / mlp_only_layers make some layers dense; litgpt's LLaMAMoE has experts in ` +
        'every layer, so only decoder_sparse_step 1 with no mlp_only_layers converts.');
    }
  }
  const n_head = Number(common.n_head), n_embd = Number(common.n_embd);
  return {
    ...common, head_size: num(hf, 'head_dim', where, n_embd / n_head), n_query_groups: num(hf, 'num_key_value_heads', where, n_head),
    rotary_percentage: 1.0, parallel_residual: false, bias: false, attn_bias: qwen ? bool(hf, 'attention_bias', false) : false,
    norm_class_name: 'RMSNorm', norm_eps: num(hf, 'rms_norm_eps', where, qwen ? 1e-6 : 1e-5), mlp_class_name: 'LLaMAMoE',
    rope_adjustments: ropeAdjustments(ropeParameters(hf), where), n_expert: nExpert,
    n_expert_per_token: num(hf, 'num_experts_per_tok', where),
    // Mixtral's experts are intermediate_size wide (litgpt leaves moe_intermediate_size unset); Qwen3-MoE's are not.
    ...(qwen ? { norm_qk: true, moe_intermediate_size: num(hf, 'moe_intermediate_size', where) } : {}),
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
  'post_attention_norm', 'post_mlp_norm', 'sliding_window_size', 'scale_embeddings', 'norm_qk_type', 'attention_scores_scalar',
  'attention_logit_softcapping', 'final_logit_softcapping', 'sliding_window_indices', 'n_expert', 'n_expert_per_token',
  'moe_intermediate_size',
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

// config.json fields that transformers' config classes type as float and check strictly (a JSON 30 is refused
// where 30.0 is expected); JSON.stringify writes whole numbers without the point, so these get it back.
const FLOAT_FIELDS = ['attn_logit_softcapping', 'final_logit_softcapping', 'router_jitter_noise'];

/** config.json's text: JSON.stringify's, with FLOAT_FIELDS written as floats (30.0), as Python's json writes them. */
export function hfConfigText(hf: HfConfigJson): string {
  const text = JSON.stringify(hf, null, 2);
  return `${text.replace(new RegExp(`^(  "(?:${FLOAT_FIELDS.join('|')})": -?\\d+)(,?)$`, 'gm'), '$1.0$2')}\n`;
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
  if (family.name === 'qwen3') {
    return { ...llamaLike, attention_bias: c.attn_bias, use_sliding_window: false, sliding_window: null, max_window_layers: c.n_layer };
  }
  // litgpt's Mixtral / Qwen3-MoE (LLaMAMoE, top-k then softmax = Qwen3-MoE's norm_topk_prob: true), both generations'
  // expert-count key (transformers 5 reads num_experts as num_local_experts).
  const experts = { num_experts_per_tok: c.n_expert_per_token, num_local_experts: c.n_expert, output_router_logits: false,
    router_aux_loss_coef: 0.001 };
  if (family.name === 'mixtral') {
    return { ...llamaLike, ...experts, intermediate_size: c.moe_intermediate_size ?? c.intermediate_size, sliding_window: null,
      router_jitter_noise: 0.0 };
  }
  if (family.name === 'qwen3_moe') {
    return { ...llamaLike, ...experts, num_experts: c.n_expert, moe_intermediate_size: c.moe_intermediate_size ?? c.intermediate_size,
      norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [], attention_bias: c.attn_bias, use_sliding_window: false,
      sliding_window: null, max_window_layers: c.n_layer };
  }
  if (family.name === 'gemma2') {
    const { hidden_act: _, ...rest } = llamaLike;
    const windows = c.sliding_window_indices ?? new Array(c.n_layer).fill(1);
    return {
      ...rest, hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: c.attention_scores_scalar ?? c.head_size,
      attn_logit_softcapping: c.attention_logit_softcapping, final_logit_softcapping: c.final_logit_softcapping,
      sliding_window: c.sliding_window_size, attention_bias: false,
      layer_types: windows.slice(0, c.n_layer).map((w) => (c.sliding_window_size !== null && w ? 'sliding_attention' : 'full_attention')),
    };
  }
  return { ...llamaLike, attention_bias: c.bias, mlp_bias: c.bias, pretraining_tp: 1 };
}

// Hugging Face config.json ⇄ litgpt's Config, for the model families litlora runs.
//
// A family is one transformers architecture class and the litgpt Config shape it corresponds to (litgpt's
// convert_hf_checkpoint / convert_lit_checkpoint pick their weight copier the same way). Reading accepts both
// transformers 5's keys (`rope_parameters`) and the older ones (`rope_theta`, `rope_scaling`, `rotary_pct`,
// `rotary_emb_base`) that most hub repos still carry; writing emits both, so transformers 4.x and 5.x (and
// vLLM/TGI, which read config.json themselves) load the folder.
import { fail } from '../errors.js';
import type { Config, ConfigInput } from '../model/config.js';

export type HfFamilyName = 'gpt_neox' | 'llama' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'mistral' | 'olmo2' | 'phi3' | 'mixtral' |
  'qwen3_moe';

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
  { name: 'gemma3', architecture: 'Gemma3ForCausalLM', modelType: 'gemma3_text' },
  { name: 'mistral', architecture: 'MistralForCausalLM', modelType: 'mistral' },
  { name: 'olmo2', architecture: 'Olmo2ForCausalLM', modelType: 'olmo2' },
  { name: 'phi3', architecture: 'Phi3ForCausalLM', modelType: 'phi3' },
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
  const llamaLike = c.mlp_class_name === 'LLaMAMLP' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias &&
    c.norm_1 && c.norm_2 && !c.post_attention_norm && !c.post_mlp_norm;
  // OLMo 2 (litgpt's OLMo-2-*): no pre norms, post norms, q/k norms over all heads' channels.
  if (c.mlp_class_name === 'LLaMAMLP' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias && !c.bias &&
    !c.attn_bias && !c.norm_1 && !c.norm_2 && c.post_attention_norm && c.post_mlp_norm && c.norm_qk && c.norm_qk_type === 'olmo2' &&
    c.sliding_window_size === null) {
    return get('olmo2');
  }
  const moe = c.mlp_class_name === 'LLaMAMoE' && c.norm_class_name === 'RMSNorm' && !c.parallel_residual && !c.lm_head_bias && !c.bias &&
    !c.attn_bias && c.routed_scaling_factor === 1 && !c.n_shared_expert && c.sliding_window_size === null;
  if (moe && !c.norm_qk) return get('mixtral');
  if (moe && c.norm_qk_type === 'default') return get('qwen3_moe');
  if (!c.norm_qk) {
    if (c.mlp_class_name === 'GptNeoxMLP' && c.norm_class_name === 'LayerNorm' && c.n_query_groups === c.n_head && !c.lm_head_bias) {
      return get('gpt_neox');
    }
    // A window in every layer is Mistral's (Llama has none; writing it as Llama would drop the window).
    const everyLayerWindowed = c.sliding_window_size !== null && (c.sliding_window_indices ?? []).slice(0, c.n_layer).every((w) => w === 1);
    // Phi-3/4 (litgpt's Phi-3*, phi-4, Phi-4-*): and any partial rotary, which only Phi3ForCausalLM expresses.
    if (llamaLike && !c.bias && !c.attn_bias && (c.sliding_window_size === null || everyLayerWindowed) &&
      (c.rotary_percentage !== 1 || /^phi-[34]/i.test(c.name))) {
      return get('phi3');
    }
    if (llamaLike && !c.bias && !c.attn_bias && everyLayerWindowed) return get('mistral');
    if (llamaLike && c.sliding_window_size === null) return get(!c.bias && c.attn_bias ? 'qwen2' : 'llama');
  } else if (llamaLike && c.norm_qk_type === 'default' && !c.bias) {
    return get('qwen3');
  }
  if (isGemma2(c)) return get('gemma2');
  if (isGemma3(c)) return get('gemma3');
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
 * Gemma 3's shape in litgpt (its Gemma-3-* configs): Gemma 2's, with q/k norms per head and a local rope base in
 * exactly the sliding-window layers (Gemma3ForCausalLM picks the rope by the layer's attention type).
 */
function isGemma3(c: Config): boolean {
  const windows = JSON.stringify(c.sliding_window_indices?.slice(0, c.n_layer) ?? null);
  return c.mlp_class_name === 'GemmaMLP' && c.gelu_approximate === 'tanh' && c.norm_class_name === 'RMSNorm' &&
    String(c.name).includes('Gemma') && c.post_attention_norm && c.post_mlp_norm && c.scale_embeddings && !c.parallel_residual &&
    !c.bias && !c.attn_bias && !c.lm_head_bias && c.norm_qk && c.norm_qk_type === 'default' && c.rope_local_base_freq !== null &&
    c.sliding_window_size !== null && JSON.stringify(c.rope_indices?.slice(0, c.n_layer) ?? null) === windows;
}

/**
 * Gemma 3's `layer_types` as 0/1 per layer (1: sliding), or, in older config.json files, its
 * `sliding_window_pattern` (every pattern-th layer is global; transformers' default 6).
 */
function gemma3WindowLayers(hf: HfConfigJson, nLayer: number, where: string): number[] {
  if (Array.isArray(hf.layer_types)) return gemma2WindowLayers(hf, nLayer, where);
  const pattern = num(hf, 'sliding_window_pattern', where, 6);
  return Array.from({ length: nLayer }, (_, i) => ((i + 1) % pattern === 0 ? 0 : 1));
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
  if (type === 'linear') return { factor: Number(rope.factor) };
  if (type === 'llama3') {
    return {
      factor: Number(rope.factor), low_freq_factor: Number(rope.low_freq_factor), high_freq_factor: Number(rope.high_freq_factor),
      original_max_seq_len: Number(rope.original_max_position_embeddings),
    };
  }
  fail('ERR_CONFIG', `${where}: RoPE scaling '${String(type)}' is not one litlora runs (it runs none, 'linear' and 'llama3').`);
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
  if (family.name === 'gemma3') return gemma3Input(hf, common, where);
  const act = String(hf.hidden_act ?? 'silu');
  if (act !== 'silu') fail('ERR_CONFIG', `${where}: hidden_act '${act}' is not what litlora's LLaMAMLP runs (silu).`);
  if (family.name === 'mixtral' || family.name === 'qwen3_moe') return moeConfigInput(hf, family, where, common);
  const attnBias = family.name === 'qwen2' ? true : family.name === 'mistral' || family.name === 'phi3' ? false : bool(hf, 'attention_bias', false);
  if (family.name === 'olmo2' && attnBias) fail('ERR_CONFIG', `${where}: an OLMo 2 with attention biases is not one litgpt describes.`);
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
    // OLMo 2: q_norm / k_norm over all heads' channels before the head split; norms after attention and MLP only.
    ...(family.name === 'olmo2' ? { norm_qk: true, norm_qk_type: 'olmo2', norm_1: false, norm_2: false, post_attention_norm: true, post_mlp_norm: true } : {}),
    // Mistral's window (null: none) is in every layer, as litgpt's sliding_window_size alone means.
    ...((family.name === 'mistral' || family.name === 'phi3') && hf.sliding_window !== null && hf.sliding_window !== undefined
      ? { sliding_window_size: num(hf, 'sliding_window', where) } : {}),
  };
}

/**
 * Gemma 3 (Gemma3TextConfig): transformers 5 keeps each attention type's rope in rope_parameters.full_attention /
 * .sliding_attention; older files have rope_theta, rope_local_base_freq and rope_scaling (for the global layers).
 */
function gemma3Input(hf: HfConfigJson, common: ConfigInput, where: string): ConfigInput {
  const act = String(hf.hidden_activation ?? hf.hidden_act ?? 'gelu_pytorch_tanh');
  if (act !== 'gelu_pytorch_tanh') fail('ERR_CONFIG', `${where}: hidden_activation '${act}' is not what litgpt's Gemma 3 runs (gelu_pytorch_tanh).`);
  if (hf.attention_bias === true) fail('ERR_CONFIG', `${where}: a Gemma 3 with attention biases is not one litgpt describes.`);
  if (hf.use_bidirectional_attention === true) fail('ERR_CONFIG', `${where}: use_bidirectional_attention is true; litgpt's Gemma 3 is causal.`);
  const params = (hf.rope_parameters && typeof hf.rope_parameters === 'object' ? hf.rope_parameters : {}) as Record<string, unknown>;
  const part = (key: string) => (params[key] && typeof params[key] === 'object' ? params[key] : {}) as Record<string, unknown>;
  const scaling = (hf.rope_scaling && typeof hf.rope_scaling === 'object' ? hf.rope_scaling : {}) as Record<string, unknown>;
  const global: Record<string, unknown> = { rope_theta: hf.rope_theta ?? 1_000_000, ...scaling, ...part('full_attention') };
  if (global.rope_type === undefined && global.type !== undefined) global.rope_type = global.type;
  const local: Record<string, unknown> = { rope_theta: hf.rope_local_base_freq ?? 10_000, ...part('sliding_attention') };
  if ((local.rope_type ?? 'default') !== 'default') {
    fail('ERR_CONFIG', `${where}: the sliding layers' RoPE scaling '${String(local.rope_type)}' is not one litgpt's Gemma 3 has (its local rope is unscaled).`);
  }
  const nLayer = common.n_layer as number, n_embd = common.n_embd as number, n_head = common.n_head as number;
  const windows = gemma3WindowLayers(hf, nLayer, where);
  const cap = (key: string) => (hf[key] === null || hf[key] === undefined ? null : num(hf, key, where));
  return {
    ...common, rope_base: Number(global.rope_theta), head_size: num(hf, 'head_dim', where, n_embd / n_head),
    n_query_groups: num(hf, 'num_key_value_heads', where, n_head), rotary_percentage: 1.0, parallel_residual: false, bias: false,
    norm_class_name: 'RMSNorm', norm_eps: num(hf, 'rms_norm_eps', where, 1e-6), mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh',
    scale_embeddings: true, post_attention_norm: true, post_mlp_norm: true, norm_qk: true,
    attention_scores_scalar: num(hf, 'query_pre_attn_scalar', where), attention_logit_softcapping: cap('attn_logit_softcapping'),
    final_logit_softcapping: cap('final_logit_softcapping'), sliding_window_size: num(hf, 'sliding_window', where),
    sliding_window_indices: windows, rope_adjustments: ropeAdjustments(global, where),
    rope_local_base_freq: Number(local.rope_theta), rope_indices: [...windows],
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
  'attention_logit_softcapping', 'final_logit_softcapping', 'sliding_window_indices', 'rope_local_base_freq', 'rope_indices', 'norm_1', 'norm_2',
  'n_expert', 'n_expert_per_token', 'moe_intermediate_size',
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
  const ra = c.rope_adjustments;
  const ropeScaling: Record<string, unknown> | null = ra && ra.low_freq_factor !== undefined
    ? {
      rope_type: 'llama3', factor: ra.factor, low_freq_factor: ra.low_freq_factor,
      high_freq_factor: ra.high_freq_factor, original_max_position_embeddings: ra.original_max_seq_len,
    }
    // A plain factor is linear scaling; only Gemma 3 writes it (its global layers').
    : ra && family.name === 'gemma3' && Object.keys(ra).every((k) => k === 'factor' || k === 'rope_type') && ra.factor !== undefined
      ? { rope_type: 'linear', factor: ra.factor }
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
  if (c.rotary_percentage !== 1 && family.name !== 'phi3') {
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
  if (family.name === 'gemma3') {
    const { hidden_act: _, rope_theta: __, rope_scaling: ___, ...rest } = llamaLike;
    const windows = c.sliding_window_indices ?? new Array(c.n_layer).fill(1);
    return {
      ...rest, hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: c.attention_scores_scalar ?? c.head_size,
      attn_logit_softcapping: c.attention_logit_softcapping, final_logit_softcapping: c.final_logit_softcapping,
      sliding_window: c.sliding_window_size, attention_bias: false, use_bidirectional_attention: false,
      layer_types: windows.slice(0, c.n_layer).map((w) => (w ? 'sliding_attention' : 'full_attention')),
      rope_parameters: {
        full_attention: ropeParameters,
        sliding_attention: { rope_type: 'default', rope_theta: c.rope_local_base_freq },
      },
      // transformers 4.x's names for the same.
      rope_theta: c.rope_base, rope_local_base_freq: c.rope_local_base_freq, rope_scaling: ropeScaling,
    };
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
  if (family.name === 'mistral') return { ...llamaLike, sliding_window: c.sliding_window_size };
  if (family.name === 'phi3') {
    // Phi-3's fused qkv_proj / gate_up_proj are the weights' layout only (hf_weights.ts); head_dim is hidden / heads.
    const { head_dim: _, ...rest } = llamaLike;
    if (c.head_size * c.n_head !== c.n_embd) fail('ERR_CONFIG', `config '${c.name}': head_size ${c.head_size} · n_head ≠ n_embd has no Phi3ForCausalLM equivalent.`);
    if (c.rotary_percentage !== 1) ropeParameters.partial_rotary_factor = c.rotary_percentage;
    return {
      ...rest, sliding_window: c.sliding_window_size, partial_rotary_factor: c.rotary_percentage, pad_token_id: null,
      original_max_position_embeddings: c.block_size, resid_pdrop: 0.0, embd_pdrop: 0.0,
    };
  }
  if (family.name === 'olmo2') {
    const { head_dim: _, ...rest } = llamaLike;
    return { ...rest, attention_bias: false };
  }
  return { ...llamaLike, attention_bias: c.bias, mlp_bias: c.bias, pretraining_tp: 1 };
}

// The model as native code builds it: one typed struct (NativeGptConfig, read field by field into gpt::GptConfig
// by native/config_wrap.cc) made from a normalized litgpt Config and LoRA settings.
//
// This is where litlora decides which of litgpt's features its GPT implements: the Pythia / GPT-NeoX, Llama and
// Gemma-style dense models, with query/key norms (Qwen3), Gemma 2's post norms, softcapping and sliding windows, and
// Gemma 3's local rope base in the layers rope_indices marks, OLMo 2's blocks without pre norms, and LLaMAMoE (Mixtral,
// Qwen3-MoE). A field that switches on anything else (shared or grouped experts, latent attention, …) is ERR_CONFIG naming it — never silently different math. Native code only re-checks the invariants it needs
// to stay memory-safe (positive sizes, divisibility).
import { fail } from '../errors.js';
import type { Config } from './config.js';
import { LORA_CONFIG_DEFAULTS, type LoraSettings } from './lora_settings.js';

/** @internal The fields of gpt::GptConfig (native/core/gpt_config.h), by the same names. */
export interface NativeGptConfig {
  blockSize: number;
  paddedVocabSize: number;
  nLayer: number;
  nHead: number;
  headSize: number;
  nEmbd: number;
  nQueryGroups: number;
  intermediateSize: number;
  /** int(rotary_percentage · head_size): the rotary dimensions of each head. */
  ropeNElem: number;
  parallelResidual: boolean;
  bias: boolean;
  attnBias: boolean;
  lmHeadBias: boolean;
  sharedAttentionNorm: boolean;
  /** litgpt's norm_1 / norm_2: false makes that norm an identity (OLMo 2 has only post norms). */
  norm1: boolean;
  norm2: boolean;
  norm: 'LayerNorm' | 'RMSNorm';
  /** Gemma's RMSNorm scales by (1 + weight). */
  normUnitOffset: boolean;
  normEps: number;
  mlp: 'GptNeoxMLP' | 'LLaMAMLP' | 'GemmaMLP' | 'LLaMAMoE';
  /** gelu_approximate == 'tanh'. */
  geluTanh: boolean;
  ropeCondenseRatio: number;
  ropeBase: number;
  scaleEmbeddings: boolean;
  /** norm_qk off ('none') or on with litgpt's norm_qk_type: per head ('default', Qwen3) or over all heads ('olmo2'). */
  normQk: 'none' | 'default' | 'olmo2';
  /** Gemma 2/3: a norm on the attention / MLP branch's output. */
  postAttentionNorm: boolean;
  postMlpNorm: boolean;
  /** null: no cap; else scores / logits → tanh(x / cap) · cap. */
  attentionLogitSoftcapping: number | null;
  finalLogitSoftcapping: number | null;
  /** 0: no sliding window; else the window, in the layers where slidingWindowLayers is true (n_layer entries). */
  slidingWindowSize: number;
  slidingWindowLayers: boolean[];
  /** 0: one rope base; else the layers where ropeLocalLayers is true (n_layer entries) rotate by this base, unscaled. */
  ropeLocalBase: number;
  ropeLocalLayers: boolean[];
  /** null: 1/√head_size. */
  attentionScoresScalar: number | null;
  ropeScaling: 'none' | 'linear' | 'llama3';
  ropeFactor: number;
  ropeLowFreqFactor: number;
  ropeHighFreqFactor: number;
  ropeOriginalMaxSeqLen: number;
  /** LLaMAMoE (0 otherwise): experts, experts per token, each expert's intermediate size, the routing weights' factor. */
  nExpert: number;
  nExpertPerToken: number;
  moeIntermediateSize: number;
  routedScalingFactor: number;
  /** r = 0: no LoRA layers. */
  lora: LoraSettings;
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : v !== null && typeof v === 'object' ? (Array.isArray(v) ? 'a list' : 'a mapping') : String(v);
}

function unsupported(field: string, value: unknown, what: string): never {
  fail('ERR_CONFIG', `config field ${field} = ${show(value)} switches on ${what}, which litlora does not implement; only the ` +
    'Pythia/GPT-NeoX, Llama, Qwen3 and Gemma-style dense models and LLaMAMoE (Mixtral, Qwen3-MoE) are supported. ' +
    'Use a model without it.');
}

const nullOrZero = (v: unknown) => v === null || v === 0;

// The fields LLaMAMoE (litgpt's top-k router over LLaMAMLP experts) reads; NO_OPS refuses them on other MLPs.
const MOE_FIELDS: readonly (keyof Config)[] = ['n_expert', 'n_expert_per_token', 'moe_intermediate_size'];

type MoeFields = Pick<NativeGptConfig, 'nExpert' | 'nExpertPerToken' | 'moeIntermediateSize' | 'routedScalingFactor'>;

/** LLaMAMoE's sizes, checked as litgpt's model needs them (moe_intermediate_size null: the experts use intermediate_size). */
function moeFields(c: Config): MoeFields {
  if (c.mlp_class_name !== 'LLaMAMoE') return { nExpert: 0, nExpertPerToken: 0, moeIntermediateSize: 0, routedScalingFactor: 1 };
  const positive = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!positive(c.n_expert)) fail('ERR_CONFIG', `config field n_expert: LLaMAMoE needs a positive number of experts, got ${show(c.n_expert)}.`);
  if (!positive(c.n_expert_per_token) || c.n_expert_per_token > c.n_expert) {
    fail('ERR_CONFIG', `config field n_expert_per_token: LLaMAMoE needs 1 ≤ n_expert_per_token ≤ n_expert (${c.n_expert}), got ` +
      `${show(c.n_expert_per_token)}.`);
  }
  if (c.moe_intermediate_size !== null && !positive(c.moe_intermediate_size)) {
    fail('ERR_CONFIG', `config field moe_intermediate_size: expected a positive integer or null (then intermediate_size), got ` +
      `${show(c.moe_intermediate_size)}.`);
  }
  if (!Number.isFinite(c.routed_scaling_factor)) {
    fail('ERR_CONFIG', `config field routed_scaling_factor: expected a finite number, got ${show(c.routed_scaling_factor)}.`);
  }
  return { nExpert: c.n_expert, nExpertPerToken: c.n_expert_per_token, moeIntermediateSize: c.moe_intermediate_size ?? c.intermediate_size,
    routedScalingFactor: c.routed_scaling_factor };
}

// Fields whose other values switch on what litlora's GPT does not implement: the values that keep its math, and
// what the others would switch on. In this order, so that the field a user set is named before one derived from it.
const NO_OPS: [keyof Config, (v: unknown) => boolean, string][] = [
  ['n_expert', nullOrZero, 'a mixture of experts'],
  ['n_expert_per_token', nullOrZero, 'a mixture of experts'],
  ['n_shared_expert', nullOrZero, 'shared experts'],
  ['moe_intermediate_size', (v) => v === null, 'a mixture of experts'],
  ['first_k_dense_replace', (v) => v === null, 'a mixture of experts'],
  ['n_expert_groups', nullOrZero, 'grouped expert routing'],
  ['n_topk_groups', nullOrZero, 'grouped expert routing'],
  ['n_topk_scores_per_group', nullOrZero, 'grouped expert routing'],
  ['latent_attention', (v) => v === null, 'multi-head latent attention'],
  ['rope_interleave', (v) => v === false, 'interleaved rotary embeddings'],
];

const ROPE_ADJUSTMENT_KEYS = ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_seq_len', 'beta_fast', 'beta_slow',
  'mscale', 'mscale_all_dim', 'truncate', 'rope_type'];

type RopeFields = Pick<NativeGptConfig, 'ropeScaling' | 'ropeFactor' | 'ropeLowFreqFactor' | 'ropeHighFreqFactor' | 'ropeOriginalMaxSeqLen'>;

/** rope_adjustments: none, a plain `factor` (linear), or Llama 3's four values; YaRN is not implemented. */
function ropeScaling(adjustments: Config['rope_adjustments']): RopeFields {
  const out: RopeFields = { ropeScaling: 'none', ropeFactor: 1, ropeLowFreqFactor: 0, ropeHighFreqFactor: 0, ropeOriginalMaxSeqLen: 0 };
  if (adjustments === null) return out;
  const a = adjustments as Record<string, unknown>;
  for (const key of Object.keys(a)) {
    if (!ROPE_ADJUSTMENT_KEYS.includes(key)) {
      fail('ERR_CONFIG', `config field rope_adjustments.${key} is not known to litgpt (known: ${ROPE_ADJUSTMENT_KEYS.join(', ')}).`);
    }
  }
  if ('beta_fast' in a || 'beta_slow' in a) unsupported('rope_adjustments', a, 'YaRN rope scaling (beta_fast / beta_slow)');
  const num = (key: string): number | null => {
    const v = a[key];
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail('ERR_CONFIG', `config field rope_adjustments.${key}: expected a finite number, got ${show(v)}.`);
    return v;
  };
  const factor = num('factor');
  if ('low_freq_factor' in a || 'high_freq_factor' in a) {
    const low = num('low_freq_factor'), high = num('high_freq_factor'), original = num('original_max_seq_len');
    if (factor === null || low === null || high === null || original === null) {
      fail('ERR_CONFIG', 'config field rope_adjustments: Llama 3 rope scaling needs factor, low_freq_factor, high_freq_factor and ' +
        'original_max_seq_len together.');
    }
    if (high === low) fail('ERR_CONFIG', 'config field rope_adjustments: high_freq_factor must differ from low_freq_factor.');
    return { ropeScaling: 'llama3', ropeFactor: factor, ropeLowFreqFactor: low, ropeHighFreqFactor: high, ropeOriginalMaxSeqLen: original };
  }
  if (factor !== null) return { ...out, ropeScaling: 'linear', ropeFactor: factor };
  return out;
}

/**
 * litgpt's check_indicator_and_length for sliding_window_indices and rope_indices: one 0/1 per layer (a longer
 * list is cut to n_layer, as litgpt does); all layers when only the size / base is given. [] without one.
 */
function layerIndicator(c: Config, field: 'sliding_window_indices' | 'rope_indices', on: boolean): boolean[] {
  if (!on) return [];
  const indices = c[field] ?? new Array(c.n_layer).fill(1);
  if (indices.length < c.n_layer || !indices.every((v) => v === 0 || v === 1)) {
    fail('ERR_CONFIG', `config field ${field}: expected ${c.n_layer} entries (one per layer) of 0 or 1, got ` +
      `${JSON.stringify(indices)}.`);
  }
  return indices.slice(0, c.n_layer).map((v) => v === 1);
}

/**
 * The struct native code builds a GPT from (NativeGpt.create, mergeLoraFiles). `config` must come from
 * normalizeConfig and `lora` from normalizeLora; null means no LoRA layers. Throws ERR_CONFIG naming the field
 * for a feature litlora's GPT does not implement.
 */
export function nativeGptConfig(config: Config, lora: Readonly<LoraSettings> | null): NativeGptConfig {
  const c = config;
  const moe = c.mlp_class_name === 'LLaMAMoE';
  for (const [field, isNoOp, what] of NO_OPS) {
    if (!(moe && MOE_FIELDS.includes(field)) && !isNoOp(c[field])) unsupported(field, c[field], what);
  }
  if (!c.parallel_residual && c.shared_attention_norm) {
    fail('ERR_CONFIG', 'config fields parallel_residual = false with shared_attention_norm = true: litgpt does not implement this ' +
      'combination either. Set shared_attention_norm to false, or parallel_residual to true.');
  }
  if (c.gelu_approximate !== 'none' && c.gelu_approximate !== 'tanh') {
    fail('ERR_CONFIG', `config field gelu_approximate: expected 'none' or 'tanh', got ${show(c.gelu_approximate)}.`);
  }
  if (c.rope_n_elem % 2 !== 0 || c.rope_n_elem > c.head_size) {
    fail('ERR_CONFIG', `config field rotary_percentage: rope_n_elem = int(rotary_percentage * head_size) must be even and ≤ head_size ` +
      `(${c.head_size}), got ${c.rope_n_elem}.`);
  }
  for (const field of ['attention_logit_softcapping', 'final_logit_softcapping', 'sliding_window_size'] as const) {
    const v = c[field];
    if (v !== null && !(typeof v === 'number' && v > 0)) fail('ERR_CONFIG', `config field ${field}: expected a positive number or null, got ${show(v)}.`);
  }
  // litgpt indexes a second (local) rope table by rope_indices; without rope_local_base_freq there is none.
  if (c.rope_local_base_freq === null && c.rope_indices !== null) unsupported('rope_indices', c.rope_indices, 'per-layer rope selection without a local rope base');
  if (c.rope_local_base_freq !== null && !(c.rope_local_base_freq > 0)) {
    fail('ERR_CONFIG', `config field rope_local_base_freq: expected a positive number or null, got ${show(c.rope_local_base_freq)}.`);
  }
  if (c.attention_scores_scalar !== null && !(c.attention_scores_scalar > 0)) {
    fail('ERR_CONFIG', `config field attention_scores_scalar: expected a positive integer or null, got ${c.attention_scores_scalar}.`);
  }
  return {
    blockSize: c.block_size,
    paddedVocabSize: c.padded_vocab_size,
    nLayer: c.n_layer,
    nHead: c.n_head,
    headSize: c.head_size,
    nEmbd: c.n_embd,
    nQueryGroups: c.n_query_groups,
    intermediateSize: c.intermediate_size,
    ropeNElem: c.rope_n_elem,
    parallelResidual: c.parallel_residual,
    bias: c.bias,
    attnBias: c.attn_bias,
    lmHeadBias: c.lm_head_bias,
    sharedAttentionNorm: c.shared_attention_norm,
    norm1: c.norm_1,
    norm2: c.norm_2,
    norm: c.norm_class_name,
    normUnitOffset: c.norm_class_name === 'RMSNorm' && String(c.name).includes('Gemma'),
    normEps: c.norm_eps,
    mlp: c.mlp_class_name as NativeGptConfig['mlp'],
    geluTanh: c.gelu_approximate === 'tanh',
    ropeCondenseRatio: c.rope_condense_ratio,
    ropeBase: c.rope_base,
    scaleEmbeddings: c.scale_embeddings,
    normQk: c.norm_qk ? c.norm_qk_type : 'none',
    postAttentionNorm: c.post_attention_norm,
    postMlpNorm: c.post_mlp_norm,
    attentionLogitSoftcapping: c.attention_logit_softcapping,
    finalLogitSoftcapping: c.final_logit_softcapping,
    slidingWindowSize: c.sliding_window_size ?? 0,
    slidingWindowLayers: layerIndicator(c, 'sliding_window_indices', c.sliding_window_size !== null),
    ropeLocalBase: c.rope_local_base_freq ?? 0,
    ropeLocalLayers: layerIndicator(c, 'rope_indices', c.rope_local_base_freq !== null),
    attentionScoresScalar: c.attention_scores_scalar,
    ...ropeScaling(c.rope_adjustments),
    ...moeFields(c),
    lora: { ...(lora ?? LORA_CONFIG_DEFAULTS) },
  };
}

// The model families litlora writes to GGUF: llama.cpp's architecture name, its tensor names for the Hugging
// Face tensors of hf_weights.ts, the row layout changes convert_hf_to_gguf.py makes, and the hyperparameter keys
// its model class writes (LlamaModel, Qwen2Model, GPTNeoXModel). A family is added here with one entry; a model
// whose family has none is refused with ERR_GGUF_UNSUPPORTED.
import { fail } from '../errors.js';
import type { Config } from '../model/config.js';
import type { HfConfigJson, HfFamily, HfFamilyName } from '../interop/hf_config.js';
import type { GgufMetadata } from './writer.js';

export interface GgufFamily {
  /** llama.cpp's architecture (general.architecture and the prefix of its keys). */
  arch: string;
  /** HF name (without .weight/.bias) → GGUF name; `{}` is the layer index. */
  names: Record<string, string>;
  /**
   * LlamaModel.permute on q_proj / k_proj rows: HF's rotate-half layout → llama.cpp's interleaved pairs for its
   * normal (non-NeoX) RoPE. Qwen2 and GPT-NeoX run NeoX-style RoPE on HF's layout as it is.
   */
  permuteQk: boolean;
  /**
   * GPT-NeoX's query_key_value is written as [all q | all k | all v] (convert_hf_to_gguf regroups HF's per-head
   * interleaving) — litgpt's own qkv layout — so it is taken from litgpt's tensor whole.
   */
  qkvAsLitgpt: boolean;
  /** llama.cpp requires output.weight even when the head is tied to the embedding. */
  needsOutput: boolean;
  /** set_vocab tries tokenizer.model (_set_vocab_sentencepiece) before tokenizer.json (LlamaModel, Qwen2Model). */
  sentencePieceFirst: boolean;
  /**
   * Gemma: the vocabulary is tokenizer.model only (add_space_prefix false), every norm weight is written + 1 (HF's
   * RMSNorm scales by 1 + w, llama.cpp's by w), and lm_head is dropped (llama.cpp reads the embedding).
   */
  gemma?: boolean;
  /** Hyperparameter keys, in the order the converter's set_gguf_parameters writes them. */
  parameters(md: GgufMetadata, hf: HfConfigJson, c: Config, fileType: number): void;
}

const LLAMA_NAMES: Record<string, string> = {
  'model.embed_tokens': 'token_embd', 'model.norm': 'output_norm', lm_head: 'output',
  'model.layers.{}.input_layernorm': 'blk.{}.attn_norm', 'model.layers.{}.post_attention_layernorm': 'blk.{}.ffn_norm',
  'model.layers.{}.self_attn.q_proj': 'blk.{}.attn_q', 'model.layers.{}.self_attn.k_proj': 'blk.{}.attn_k',
  'model.layers.{}.self_attn.v_proj': 'blk.{}.attn_v', 'model.layers.{}.self_attn.o_proj': 'blk.{}.attn_output',
  'model.layers.{}.mlp.gate_proj': 'blk.{}.ffn_gate', 'model.layers.{}.mlp.up_proj': 'blk.{}.ffn_up',
  'model.layers.{}.mlp.down_proj': 'blk.{}.ffn_down',
};

/** TextModel.set_gguf_parameters for a config.json of the llama kind (the keys it finds there). */
function textModelParameters(md: GgufMetadata, arch: string, hf: HfConfigJson, fileType: number): void {
  md.u32(`${arch}.block_count`, Number(hf.num_hidden_layers));
  md.u32(`${arch}.context_length`, Number(hf.max_position_embeddings));
  md.u32(`${arch}.embedding_length`, Number(hf.hidden_size));
  md.u32(`${arch}.feed_forward_length`, Number(hf.intermediate_size));
  md.u32(`${arch}.attention.head_count`, Number(hf.num_attention_heads));
  md.u32(`${arch}.attention.head_count_kv`, Number(hf.num_key_value_heads));
  md.f32(`${arch}.rope.freq_base`, Number(hf.rope_theta));
  md.f32(`${arch}.attention.layer_norm_rms_epsilon`, Number(hf.rms_norm_eps));
  if (hf.head_dim !== undefined && hf.head_dim !== null) {
    md.u32(`${arch}.attention.key_length`, Number(hf.head_dim));
    md.u32(`${arch}.attention.value_length`, Number(hf.head_dim));
  }
  md.u32('general.file_type', fileType);
}

export const GGUF_FAMILIES: Readonly<Partial<Record<HfFamilyName, GgufFamily>>> = {
  llama: {
    arch: 'llama', names: LLAMA_NAMES, permuteQk: true, qkvAsLitgpt: false, needsOutput: false, sentencePieceFirst: true,
    parameters(md, hf, c, fileType) {
      textModelParameters(md, 'llama', hf, fileType);
      md.u32('llama.vocab_size', Number(hf.vocab_size));
      md.u32('llama.rope.dimension_count', c.head_size);
    },
  },
  qwen2: {
    arch: 'qwen2', names: LLAMA_NAMES, permuteQk: false, qkvAsLitgpt: false, needsOutput: false, sentencePieceFirst: true,
    parameters(md, hf, _c, fileType) {
      textModelParameters(md, 'qwen2', hf, fileType);
    },
  },
  qwen3: {
    // Qwen3Model (a Qwen2Model): per-head RMSNorms of q and k, head_dim written as key/value length.
    arch: 'qwen3',
    names: { ...LLAMA_NAMES, 'model.layers.{}.self_attn.q_norm': 'blk.{}.attn_q_norm', 'model.layers.{}.self_attn.k_norm': 'blk.{}.attn_k_norm' },
    permuteQk: false, qkvAsLitgpt: false, needsOutput: false, sentencePieceFirst: true,
    parameters(md, hf, _c, fileType) {
      textModelParameters(md, 'qwen3', hf, fileType);
    },
  },
  gemma2: {
    arch: 'gemma2',
    names: {
      ...LLAMA_NAMES, 'model.layers.{}.post_attention_layernorm': 'blk.{}.post_attention_norm',
      'model.layers.{}.pre_feedforward_layernorm': 'blk.{}.ffn_norm', 'model.layers.{}.post_feedforward_layernorm': 'blk.{}.post_ffw_norm',
    },
    permuteQk: false, qkvAsLitgpt: false, needsOutput: false, sentencePieceFirst: true, gemma: true,
    parameters(md, hf, c, fileType) {
      gemma2Supported(hf, c);
      // Gemma2Model.set_gguf_parameters.
      md.u32('gemma2.context_length', Number(hf.max_position_embeddings));
      md.u32('gemma2.embedding_length', Number(hf.hidden_size));
      md.u32('gemma2.block_count', Number(hf.num_hidden_layers));
      md.u32('gemma2.feed_forward_length', Number(hf.intermediate_size));
      md.u32('gemma2.attention.head_count', Number(hf.num_attention_heads));
      md.u32('gemma2.attention.head_count_kv', Number(hf.num_key_value_heads ?? hf.num_attention_heads));
      md.f32('gemma2.attention.layer_norm_rms_epsilon', Number(hf.rms_norm_eps));
      md.u32('gemma2.attention.key_length', Number(hf.head_dim));
      md.u32('gemma2.attention.value_length', Number(hf.head_dim));
      md.u32('general.file_type', fileType);
      md.f32('gemma2.attn_logit_softcapping', Number(hf.attn_logit_softcapping));
      md.f32('gemma2.final_logit_softcapping', Number(hf.final_logit_softcapping));
      md.u32('gemma2.attention.sliding_window', Number(hf.sliding_window));
    },
  },
  gpt_neox: {
    arch: 'gptneox',
    names: {
      'gpt_neox.embed_in': 'token_embd', 'gpt_neox.final_layer_norm': 'output_norm', embed_out: 'output',
      'gpt_neox.layers.{}.input_layernorm': 'blk.{}.attn_norm', 'gpt_neox.layers.{}.post_attention_layernorm': 'blk.{}.ffn_norm',
      'gpt_neox.layers.{}.attention.query_key_value': 'blk.{}.attn_qkv', 'gpt_neox.layers.{}.attention.dense': 'blk.{}.attn_output',
      'gpt_neox.layers.{}.mlp.dense_h_to_4h': 'blk.{}.ffn_up', 'gpt_neox.layers.{}.mlp.dense_4h_to_h': 'blk.{}.ffn_down',
    },
    permuteQk: false, qkvAsLitgpt: true, needsOutput: true, sentencePieceFirst: false,
    parameters(md, hf, c) {
      // GPTNeoXModel.set_gguf_parameters: no file type, no head_count_kv.
      md.u32('gptneox.context_length', Number(hf.max_position_embeddings));
      md.u32('gptneox.embedding_length', Number(hf.hidden_size));
      md.u32('gptneox.block_count', Number(hf.num_hidden_layers));
      md.u32('gptneox.feed_forward_length', Number(hf.intermediate_size));
      md.u32('gptneox.rope.dimension_count', Math.trunc(Number(hf.rotary_pct) * Math.trunc(Number(hf.hidden_size) / Number(hf.num_attention_heads))));
      md.u32('gptneox.attention.head_count', Number(hf.num_attention_heads));
      md.bool('gptneox.use_parallel_residual', hf.use_parallel_residual !== false);
      md.f32('gptneox.attention.layer_norm_epsilon', Number(hf.layer_norm_eps));
      // The converter leaves the RoPE base out (llama.cpp then uses 10000, Pythia's); another base is written so
      // that llama.cpp computes what the weights were trained with.
      if (c.rope_base !== 10000) md.f32('gptneox.rope.freq_base', c.rope_base);
    },
  },
};

/**
 * What llama.cpp's gemma2 graph computes and a litgpt Gemma 2 config could say otherwise: queries scaled by
 * 1/sqrt(head_dim) (its 2B/9B; litgpt's attention_scores_scalar), both softcaps (its defaults stand in for none),
 * and a window on the even layers (its fixed pattern). Anything else is ERR_GGUF_UNSUPPORTED.
 */
function gemma2Supported(hf: HfConfigJson, c: Config): void {
  const problems: string[] = [];
  if (Number(hf.query_pre_attn_scalar) !== c.head_size) {
    problems.push(`queries scaled by 1/sqrt(${String(hf.query_pre_attn_scalar)}) instead of 1/sqrt(head_size ${c.head_size})`);
  }
  if (c.attention_logit_softcapping === null || c.final_logit_softcapping === null) problems.push('no attention or final logit softcapping');
  const windows = c.sliding_window_indices ?? [];
  if (c.sliding_window_size === null || Array.from({ length: c.n_layer }, (_, i) => (windows[i] ? 1 : 0) === (i % 2 === 0 ? 1 : 0)).includes(false)) {
    problems.push('a sliding window on other layers than the even ones');
  }
  if (problems.length) {
    fail('ERR_GGUF_UNSUPPORTED', `${c.name}: llama.cpp's gemma2 cannot run this model (${problems.join('; ')}); it would compute ` +
      'other logits than litlora.');
  }
}

/** The GGUF family of an HF family; ERR_GGUF_UNSUPPORTED for one without an entry. */
export function ggufFamily(family: HfFamily, where: string): GgufFamily {
  const f = GGUF_FAMILIES[family.name];
  if (!f) {
    fail('ERR_GGUF_UNSUPPORTED', `${where}: litlora does not write ${family.architecture} models to GGUF yet. ` +
      `It writes: ${Object.keys(GGUF_FAMILIES).join(', ')}.`);
  }
  return f;
}

/** The GGUF name of an HF tensor name (`model.layers.3.self_attn.q_proj.weight` → `blk.3.attn_q.weight`). */
export function ggufTensorName(family: GgufFamily, hfName: string): string {
  const suffix = hfName.endsWith('.bias') ? 'bias' : 'weight';
  const base = hfName.slice(0, -(suffix.length + 1));
  const layer = /\.(\d+)\./.exec(base);
  const template = layer ? base.replace(`.${layer[1]}.`, '.{}.') : base;
  const out = family.names[template];
  if (!out) fail('ERR_GGUF_UNSUPPORTED', `the tensor ${hfName} has no llama.cpp name for ${family.arch}`);
  return `${layer ? out.replace('{}', layer[1]) : out}.${suffix}`;
}

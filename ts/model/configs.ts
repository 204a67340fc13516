// Named model configs: litgpt's `name_to_config` entries for the families litlora supports, with the numbers
// copied from Lightning-AI/litgpt `litgpt/config.py` (stored version at commit 0006c973; the same entries are
// in v0.5.13). Each entry lists only what differs from Config's defaults, exactly as litgpt does, so that
// `configFromName(n)` written to YAML equals litgpt's model_config.yaml for `n` (tested byte-for-byte for
// pythia-14m, tiny-llama-1.1b and Llama-3.2-1B against files written by litgpt 0.5.13).
import { normalizeConfig, type Config, type ConfigInput } from './config.js';
import { fail } from '../errors.js';

const pythia = (name: string, block_size: number, n_embd: number, n_head: number, n_layer?: number): ConfigInput => ({
  name, hf_config: { org: 'EleutherAI', name }, block_size, ...(n_layer ? { n_layer } : {}), n_embd, n_head, padding_multiple: 128,
});

// litgpt/config.py "EleutherAI Pythia": pythia-1b keeps the default n_layer (16).
const PYTHIA: ConfigInput[] = [
  pythia('pythia-14m', 512, 128, 4, 6),
  pythia('pythia-31m', 1024, 256, 8, 6),
  pythia('pythia-70m', 2048, 512, 8, 6),
  pythia('pythia-160m', 2048, 768, 12, 12),
  pythia('pythia-410m', 2048, 1024, 16, 24),
  pythia('pythia-1b', 2048, 2048, 8),
];

// litgpt/config.py "TinyLlama": tiny-llama-1.1b{,-chat} ↔ TinyLlama-1.1B{-intermediate-step-1431k-3T,-Chat-v1.0}.
const TINY_LLAMA = (name: string, hfName: string): ConfigInput => ({
  name, hf_config: { org: 'TinyLlama', name: hfName }, block_size: 2048, vocab_size: 32000, padding_multiple: 64,
  n_layer: 22, n_head: 32, n_embd: 2048, rotary_percentage: 1.0, parallel_residual: false, bias: false,
  norm_class_name: 'RMSNorm', norm_eps: 1e-5, mlp_class_name: 'LLaMAMLP', intermediate_size: 5632, n_query_groups: 4,
});

// litgpt/config.py "Meta LLaMA 3": Llama-3.2-1B / -3B (and -Instruct), with Llama 3 RoPE scaling.
const LLAMA_3_2 = (size: '1B' | '3B', kind: '' | '-Instruct'): ConfigInput => ({
  name: `Llama-3.2-${size}${kind}`, hf_config: { org: 'meta-llama', name: `Llama-3.2-${size}${kind}` },
  block_size: 131072, vocab_size: 128000, padded_vocab_size: 128256,
  ...(size === '1B' ? { n_layer: 16, n_embd: 2048, n_head: 32 } : { n_layer: 28, n_embd: 3072, n_head: 24 }),
  n_query_groups: 8, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm',
  mlp_class_name: 'LLaMAMLP', intermediate_size: 8192, rope_base: 500000,
  rope_adjustments: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_seq_len: 8192 },
});

// litgpt/config.py "SmolLM2": SmolLM2-135M (and -Instruct).
const SMOLLM2_135M = (kind: '' | '-Instruct'): ConfigInput => ({
  name: `SmolLM2-135M${kind}`, hf_config: { org: 'HuggingFaceTB', name: `SmolLM2-135M${kind}` },
  block_size: 8192, vocab_size: 49152, padded_vocab_size: 49152, n_layer: 30, n_head: 9, n_embd: 576, n_query_groups: 3,
  rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm', mlp_class_name: 'LLaMAMLP',
  intermediate_size: 1536, rope_base: 100000, norm_eps: 1e-5,
});

// litgpt/config.py "Qwen2.5": Qwen2.5-0.5B (and -Instruct); qkv has a bias (attn_bias) while other linears do not.
const QWEN2_5_0_5B = (kind: '' | '-Instruct'): ConfigInput => ({
  name: `Qwen2.5-0.5B${kind}`, hf_config: { org: 'Qwen', name: `Qwen2.5-0.5B${kind}` },
  block_size: 32768, vocab_size: 151643, padded_vocab_size: 151936, n_layer: 24, n_head: 14, n_embd: 896,
  n_query_groups: 2, rotary_percentage: 1.0, parallel_residual: false, bias: false, attn_bias: true,
  norm_class_name: 'RMSNorm', mlp_class_name: 'LLaMAMLP', intermediate_size: 4864, norm_eps: 1e-6, rope_base: 1000000,
});

// litgpt/config.py "Qwen3": the dense models (qwen_3 with "" and "-Base", Qwen3-32B, and the dense one of
// qwen_3_2507_thinking_instruct), in litgpt's order; q_norm / k_norm per head (norm_qk). head_size is listed where
// it is not n_embd / n_head (128 for all).
const QWEN3 = (name: string, n_layer: number, n_head: number, n_embd: number, intermediate_size: number, headSize: boolean,
  rope_base = 1000000, block_size = 40960): ConfigInput => ({
  name, hf_config: { org: 'Qwen', name }, block_size, vocab_size: 151643, padded_vocab_size: 151936, n_layer, n_head, n_embd,
  n_query_groups: 8, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm',
  mlp_class_name: 'LLaMAMLP', intermediate_size, norm_eps: 1e-6, rope_base, ...(headSize ? { head_size: 128 } : {}), norm_qk: true,
});
const QWEN3_DENSE: ConfigInput[] = [
  ...([['0.6B', 28, 16, 1024, 3072, true], ['1.7B', 28, 16, 2048, 6144, false], ['4B', 36, 32, 2560, 9728, true],
    ['8B', 36, 32, 4096, 12288, false], ['14B', 40, 40, 5120, 17408, false]] as const).flatMap(([size, l, h, e, i, hs]) =>
    ['', '-Base'].map((kind) => QWEN3(`Qwen3-${size}${kind}`, l, h, e, i, hs))),
  QWEN3('Qwen3-32B', 64, 64, 5120, 25600, true),
  ...['Thinking', 'Instruct'].map((kind) => QWEN3(`Qwen3-4B-${kind}-2507`, 36, 32, 2560, 9728, true, 5000000, 262144)),
];

// litgpt/config.py "Google Gemma": Gemma 2 (post norms, softcapping, a 4096-token window in every even layer), in
// litgpt's `gemma` list; the -it twins follow it, as litgpt appends them.
const GEMMA_2 = (size: '2b' | '9b' | '27b', it: '' | '-it'): ConfigInput => {
  const shape = { '2b': [9216, 2304, 26, 8, 4, 256, 256], '9b': [14336, 3584, 42, 16, 8, 256, 256], '27b': [36864, 4608, 46, 32, 16, 128, 144] }[size];
  const [intermediate_size, n_embd, n_layer, n_head, n_query_groups, head_size, attention_scores_scalar] = shape;
  return {
    name: `Gemma-2-${size}${it}`, hf_config: { org: 'google', name: `gemma-2-${size}${it}` }, scale_embeddings: true,
    attention_scores_scalar, vocab_size: 256000, block_size: 8192, sliding_window_size: 4096,
    sliding_window_indices: Array.from({ length: n_layer }, (_, i) => (i % 2 === 0 ? 1 : 0)), intermediate_size, n_embd, n_layer,
    n_head, n_query_groups, head_size, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm',
    mlp_class_name: 'GemmaMLP', gelu_approximate: 'tanh', post_attention_norm: true, post_mlp_norm: true,
    attention_logit_softcapping: 50.0, final_logit_softcapping: 30.0,
  };
};

const TABLE: ConfigInput[] = [
  ...PYTHIA,
  TINY_LLAMA('tiny-llama-1.1b', 'TinyLlama-1.1B-intermediate-step-1431k-3T'),
  TINY_LLAMA('tiny-llama-1.1b-chat', 'TinyLlama-1.1B-Chat-v1.0'),
  LLAMA_3_2('1B', ''), LLAMA_3_2('1B', '-Instruct'), LLAMA_3_2('3B', ''), LLAMA_3_2('3B', '-Instruct'),
  SMOLLM2_135M(''), SMOLLM2_135M('-Instruct'),
  QWEN2_5_0_5B(''), QWEN2_5_0_5B('-Instruct'),
  ...QWEN3_DENSE,
  ...(['2b', '9b', '27b'] as const).map((size) => GEMMA_2(size, '')),
  ...(['2b', '9b', '27b'] as const).map((size) => GEMMA_2(size, '-it')),
];

/** The names `configFromName` knows. */
export function configNames(): string[] {
  return TABLE.map((c) => c.name as string);
}

/**
 * litgpt's `Config.from_name(name, **overrides)`: looks `name` up by litgpt name, then by HF name or
 * `org/name`, applies the overrides and derives the rest. Unknown names → ERR_CONFIG listing the known ones.
 */
export function configFromName(name: string, overrides: ConfigInput = {}): Config {
  return normalizeConfig({ ...namedConfigInput(name), ...overrides }, `config ${name}`);
}

/** The table entry for `name` as litgpt lists it (only the non-default fields, nothing derived yet); a copy. */
export function namedConfigInput(name: string): ConfigInput {
  const entry = TABLE.find((c) => c.name === name) ??
    TABLE.find((c) => {
      const hf = c.hf_config as { org: string; name: string };
      return hf.name === name || `${hf.org}/${hf.name}` === name;
    });
  if (!entry) {
    fail('ERR_CONFIG', `'${name}' is not a supported config name. litlora knows: ${configNames().join(', ')}. ` +
      'For another model, write its model_config.yaml (litgpt\'s fields) into the checkpoint folder.');
  }
  return structuredClone(entry);
}

// litgpt's model Config: the fields of model_config.yaml (litgpt 0.5.13, `litgpt/config.py` `Config`),
// the values its __post_init__ derives, and reading/writing the file exactly as litgpt does
// (`save_config` = `yaml.dump(asdict(config))`: every field, keys sorted; `Config.from_file` = safe_load,
// then `Config(**d)`, which rejects unknown keys).
//
// A Config is a plain object with litgpt's snake_case names, so a model_config.yaml maps onto it 1:1.
// This module does not decide which features the model implements (that is the model's job): any value
// litgpt accepts is accepted here.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { fail, LitloraError } from '../errors.js';
import { dumpYaml, parseYaml, type ParsedYaml, type YamlValue } from '../io/yaml.js';

export type NormClassName = 'LayerNorm' | 'RMSNorm';
export type MlpClassName = 'GptNeoxMLP' | 'LLaMAMLP' | 'GemmaMLP' | 'LLaMAMoE';

/** Llama 3.x RoPE scaling ("llama3": factor + low/high_freq_factor + original_max_seq_len), YaRN, or plain factor. */
export interface RopeAdjustments {
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_seq_len?: number;
  beta_fast?: number;
  beta_slow?: number;
  [key: string]: number | undefined;
}

// A type alias (not an interface) so a Config is assignable to ConfigInput's index signature.
export type Config = {
  name: string;
  hf_config: { org?: string; name?: string; [key: string]: unknown };
  block_size: number;
  n_layer: number;
  n_embd: number;
  vocab_size: number;
  padding_multiple: number;
  padded_vocab_size: number;
  norm_class_name: NormClassName;
  norm_eps: number;
  norm_qk: boolean;
  norm_qk_type: 'default' | 'olmo2';
  post_attention_norm: boolean;
  post_mlp_norm: boolean;
  parallel_residual: boolean;
  shared_attention_norm: boolean;
  n_head: number;
  head_size: number;
  n_query_groups: number;
  attn_bias: boolean;
  attention_scores_scalar: number | null;
  sliding_window_size: number | null;
  sliding_window_indices: number[] | null;
  attention_logit_softcapping: number | null;
  rope_base: number;
  rotary_percentage: number;
  rope_condense_ratio: number;
  rope_adjustments: RopeAdjustments | null;
  rope_interleave: boolean;
  intermediate_size: number;
  moe_intermediate_size: number | null;
  bias: boolean;
  mlp_class_name: MlpClassName;
  gelu_approximate: string;
  n_expert: number;
  n_expert_per_token: number;
  n_expert_groups: number | null;
  n_shared_expert: number | null;
  n_topk_groups: number | null;
  n_topk_scores_per_group: number | null;
  norm_topk_prob: boolean;
  routed_scaling_factor: number;
  first_k_dense_replace: number | null;
  scale_embeddings: boolean;
  lm_head_bias: boolean;
  final_logit_softcapping: number | null;
  norm_1: boolean;
  norm_2: boolean;
  latent_attention: Record<string, number> | null;
  rope_local_base_freq: number | null;
  rope_indices: number[] | null;
  /** Derived (`int(rotary_percentage * head_size)`, or qk_rope_head_dim with latent attention); not written to YAML. */
  rope_n_elem: number;
};

/** What a caller may pass: any subset of the fields; the rest take litgpt's defaults or derived values. */
export type ConfigInput = { [K in keyof Config]?: Config[K] | null } & { [key: string]: unknown };

type Kind = 'int' | 'float' | 'bool' | 'str' | 'dict' | 'list';
interface FieldSpec { kind: Kind; nullable?: boolean; choices?: readonly string[]; positive?: boolean }

// Every dataclass field of litgpt 0.5.13's Config, with its type. `null` defaults marked nullable.
// Source: litgpt/config.py `Config` and the files it writes (test/fixtures/litgpt/model_config.*.yaml).
const FIELDS: Record<string, FieldSpec> = {
  name: { kind: 'str' },
  hf_config: { kind: 'dict' },
  block_size: { kind: 'int', positive: true },
  n_layer: { kind: 'int', positive: true },
  n_embd: { kind: 'int', positive: true },
  vocab_size: { kind: 'int', positive: true },
  padding_multiple: { kind: 'int', positive: true },
  padded_vocab_size: { kind: 'int', nullable: true, positive: true },
  norm_class_name: { kind: 'str', choices: ['LayerNorm', 'RMSNorm'] },
  norm_eps: { kind: 'float' },
  norm_qk: { kind: 'bool' },
  norm_qk_type: { kind: 'str', choices: ['default', 'olmo2'] },
  post_attention_norm: { kind: 'bool' },
  post_mlp_norm: { kind: 'bool' },
  parallel_residual: { kind: 'bool' },
  shared_attention_norm: { kind: 'bool' },
  n_head: { kind: 'int', positive: true },
  head_size: { kind: 'int', nullable: true, positive: true },
  n_query_groups: { kind: 'int', nullable: true, positive: true },
  attn_bias: { kind: 'bool' },
  attention_scores_scalar: { kind: 'int', nullable: true },
  sliding_window_size: { kind: 'int', nullable: true },
  sliding_window_indices: { kind: 'list', nullable: true },
  attention_logit_softcapping: { kind: 'float', nullable: true },
  rope_base: { kind: 'int', positive: true },
  rotary_percentage: { kind: 'float' },
  rope_condense_ratio: { kind: 'int', positive: true },
  rope_adjustments: { kind: 'dict', nullable: true },
  rope_interleave: { kind: 'bool' },
  intermediate_size: { kind: 'int', nullable: true, positive: true },
  moe_intermediate_size: { kind: 'int', nullable: true },
  bias: { kind: 'bool' },
  mlp_class_name: { kind: 'str', choices: ['GptNeoxMLP', 'LLaMAMLP', 'GemmaMLP', 'LLaMAMoE'] },
  gelu_approximate: { kind: 'str' },
  n_expert: { kind: 'int' },
  n_expert_per_token: { kind: 'int' },
  n_expert_groups: { kind: 'int', nullable: true },
  n_shared_expert: { kind: 'int', nullable: true },
  n_topk_groups: { kind: 'int', nullable: true },
  n_topk_scores_per_group: { kind: 'int', nullable: true },
  norm_topk_prob: { kind: 'bool' },
  routed_scaling_factor: { kind: 'float' },
  first_k_dense_replace: { kind: 'int', nullable: true },
  scale_embeddings: { kind: 'bool' },
  lm_head_bias: { kind: 'bool' },
  final_logit_softcapping: { kind: 'float', nullable: true },
  norm_1: { kind: 'bool' },
  norm_2: { kind: 'bool' },
  latent_attention: { kind: 'dict', nullable: true },
  rope_local_base_freq: { kind: 'float', nullable: true },
  rope_indices: { kind: 'list', nullable: true },
};

/** The names of model_config.yaml's fields, in litgpt's declaration order. */
export const CONFIG_FIELDS: readonly string[] = Object.keys(FIELDS);

/** litgpt's dataclass defaults (litgpt/config.py `Config`). */
export const CONFIG_DEFAULTS: Readonly<Record<string, unknown>> = {
  name: '', hf_config: {}, block_size: 4096, n_layer: 16, n_embd: 4096, vocab_size: 50254, padding_multiple: 512,
  padded_vocab_size: null, norm_class_name: 'LayerNorm', norm_eps: 1e-5, norm_qk: false, norm_qk_type: 'default',
  post_attention_norm: false, post_mlp_norm: false, parallel_residual: true, shared_attention_norm: false, n_head: 32,
  head_size: null, n_query_groups: null, attn_bias: false, attention_scores_scalar: null, sliding_window_size: null,
  sliding_window_indices: null, attention_logit_softcapping: null, rope_base: 10000, rotary_percentage: 0.25,
  rope_condense_ratio: 1, rope_adjustments: null, rope_interleave: false, intermediate_size: null,
  moe_intermediate_size: null, bias: true, mlp_class_name: 'GptNeoxMLP', gelu_approximate: 'none', n_expert: 0,
  n_expert_per_token: 0, n_expert_groups: null, n_shared_expert: null, n_topk_groups: null,
  n_topk_scores_per_group: null, norm_topk_prob: false, routed_scaling_factor: 1.0, first_k_dense_replace: null,
  scale_embeddings: false, lm_head_bias: false, final_logit_softcapping: null, norm_1: true, norm_2: true,
  latent_attention: null, rope_local_base_freq: null, rope_indices: null,
};

// Keys of older litgpt / lit-gpt configs (lit_config.json era) and of the LoRA Config, for a better hint.
const LEGACY_KEYS: Record<string, string> = {
  _norm_class: 'norm_class_name', _mlp_class: 'mlp_class_name', condense_ratio: 'rope_condense_ratio', org: 'hf_config.org',
};
const LORA_KEYS = /^(lora_(r|alpha|dropout|query|key|value|projection|mlp|head)|r|alpha|dropout|to_(query|key|value|projection|mlp|head))$/;

// How each number is written (Python int or float), remembered from the file a Config was read from, so that
// a round trip keeps `rope_local_base_freq: 10000` an int and `norm_eps: 1.0e-05` a float.
const numberKinds = new WeakMap<object, Map<string, 'int' | 'float'>>();

function findMultiple(n: number, k: number): number {
  return n % k === 0 ? n : n + k - (n % k);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'number') return Number.isInteger(v) ? `the int ${v}` : `the float ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${String(v)}`;
}

function checkField(key: string, value: unknown, where: string): void {
  const spec = FIELDS[key];
  if (value === null) {
    if (spec.nullable) return;
    fail('ERR_CONFIG', `${where}: ${key} must not be null (expected ${spec.kind}). Set a value or remove the key to use litgpt's default.`);
  }
  const bad = (expected: string): never =>
    fail('ERR_CONFIG', `${where}: ${key} must be ${expected}, got ${typeName(value)}.`);
  switch (spec.kind) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) bad('an integer');
      if (spec.positive && (value as number) <= 0) bad('a positive integer');
      break;
    case 'float':
      if (typeof value !== 'number' || !Number.isFinite(value)) bad('a number');
      break;
    case 'bool':
      if (typeof value !== 'boolean') bad('true or false');
      break;
    case 'str':
      if (typeof value !== 'string') bad('a string');
      if (spec.choices && !spec.choices.includes(value as string)) bad(`one of ${spec.choices.join(', ')}`);
      break;
    case 'dict':
      if (typeof value !== 'object' || Array.isArray(value)) bad('a mapping');
      break;
    case 'list':
      if (!Array.isArray(value)) bad('a list');
      break;
  }
}

/**
 * Fills litgpt's defaults and derived values (Config.__post_init__) into `raw` and validates it.
 * Unknown keys are errors, as they are for litgpt (`TypeError: unexpected keyword argument`).
 * @param where names the source in error messages (a file path or 'config').
 */
export function normalizeConfig(raw: ConfigInput, where = 'config'): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail('ERR_CONFIG', `${where}: expected a mapping of model_config fields, got ${typeName(raw)}.`);
  }
  const c: Record<string, any> = {};
  for (const key of Object.keys(raw)) {
    if (key === 'rope_n_elem') continue; // derived; tolerated so a normalized Config can be normalized again
    if (!(key in FIELDS)) {
      const legacy = LEGACY_KEYS[key];
      const hint = legacy
        ? ` It is a field of older lit-gpt configs (now ${legacy}); run \`litlora migrate <folder>\` to rewrite the folder.`
        : LORA_KEYS.test(key)
          ? ' LoRA settings belong in hyperparameters.yaml, not model_config.yaml.'
          : ` Known fields: ${CONFIG_FIELDS.join(', ')}.`;
      fail('ERR_CONFIG', `${where}: unknown field '${key}' (litgpt's Config() would raise TypeError: unexpected keyword argument '${key}').${hint}`);
    }
    if (raw[key] !== undefined) c[key] = raw[key];
  }
  for (const [key, value] of Object.entries(CONFIG_DEFAULTS)) {
    if (!(key in c)) c[key] = value !== null && typeof value === 'object' ? structuredClone(value) : value;
  }
  for (const key of CONFIG_FIELDS) checkField(key, c[key], where);

  // litgpt/config.py Config.__post_init__, in its order.
  if (!c.name) c.name = c.hf_config.name ?? c.name;
  if (c.head_size === null) {
    if (c.n_embd % c.n_head !== 0) {
      fail('ERR_CONFIG', `${where}: n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head}) when head_size is not set.`);
    }
    c.head_size = c.n_embd / c.n_head;
  }
  if (c.padded_vocab_size === null) c.padded_vocab_size = findMultiple(c.vocab_size, c.padding_multiple);
  else c.vocab_size = Math.min(c.vocab_size, c.padded_vocab_size);
  if (c.n_query_groups !== null) {
    if (c.n_head % c.n_query_groups !== 0) {
      fail('ERR_CONFIG', `${where}: n_head (${c.n_head}) must be divisible by n_query_groups (${c.n_query_groups}).`);
    }
  } else {
    c.n_query_groups = c.n_head;
  }
  if (c.intermediate_size === null) {
    if (c.mlp_class_name === 'LLaMAMLP') {
      fail('ERR_CONFIG', `${where}: the config ${JSON.stringify(c.name)} needs to set intermediate_size (mlp_class_name is LLaMAMLP).`);
    }
    c.intermediate_size = 4 * c.n_embd;
  }
  if (c.rotary_percentage < 0 || c.rotary_percentage > 1) {
    fail('ERR_CONFIG', `${where}: rotary_percentage must be between 0 and 1, got ${c.rotary_percentage}.`);
  }
  c.rope_n_elem = Math.trunc(c.rotary_percentage * c.head_size);
  if (c.sliding_window_size !== null && c.sliding_window_indices === null) c.sliding_window_indices = new Array(c.n_layer).fill(1);
  if (c.rope_local_base_freq !== null && c.rope_indices === null) c.rope_indices = new Array(c.n_layer).fill(1);
  if (c.latent_attention !== null) {
    const la = c.latent_attention as Record<string, number>;
    for (const k of ['q_lora_rank', 'kv_lora_rank', 'qk_rope_head_dim', 'qk_nope_head_dim', 'v_head_dim']) {
      if (!la[k]) fail('ERR_CONFIG', `${where}: latent_attention.${k} must be set (a positive integer).`);
    }
    if (c.n_head !== c.n_query_groups) fail('ERR_CONFIG', `${where}: latent attention does not support MQA/GQA (n_query_groups must equal n_head).`);
    c.rope_n_elem = la.qk_rope_head_dim;
  }
  const config = c as Config;
  const kinds = numberKinds.get(raw);
  if (kinds) numberKinds.set(config, kinds);
  return config;
}

// Fields that litgpt always holds as Python floats (so `1.0`, never `1`), unless the file said otherwise.
const FLOAT_PATHS = new Set([
  'norm_eps', 'rotary_percentage', 'routed_scaling_factor', 'attention_logit_softcapping', 'final_logit_softcapping',
  'rope_adjustments.factor', 'rope_adjustments.low_freq_factor', 'rope_adjustments.high_freq_factor',
  'rope_adjustments.beta_fast', 'rope_adjustments.beta_slow',
]);

/** The model_config.yaml text litgpt's `save_config` writes for this config (PyYAML, sorted keys). */
export function configToYaml(config: Config): string {
  const out: Record<string, YamlValue> = {};
  for (const key of CONFIG_FIELDS) out[key] = (config as any)[key] ?? null;
  const kinds = numberKinds.get(config);
  return dumpYaml(out, {
    isFloat: (path) => {
      const at = path.join('.');
      const kind = kinds?.get(at);
      return kind ? kind === 'float' : FLOAT_PATHS.has(at);
    },
  });
}

/** `Config.from_file`: reads model_config.yaml (plus optional overrides, as litgpt's kwargs). */
export async function readConfig(path: string, overrides: ConfigInput = {}): Promise<Config> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new LitloraError('ERR_CHECKPOINT_MISSING', `cannot read the model config ${abs}: ${(e as Error).message}`);
  }
  return configFromParsed(parseYaml(text, abs), abs, overrides);
}

/**
 * A Config from parsed YAML (or JSON) keeping how the source wrote its numbers, so that writing it again
 * gives the same text. `numberKinds` keys may be renamed fields of older formats (see migrate.ts).
 */
export function configFromParsed(parsed: ParsedYaml, where: string, overrides: ConfigInput = {}): Config {
  const { value, numberKinds: kinds } = parsed;
  if (value === null || value === undefined) {
    fail('ERR_CONFIG', `${where} is empty, which is likely unexpected. Write the model's config there (litlora init makes one).`);
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail('ERR_CONFIG', `${where}: expected a mapping of model_config fields, got ${typeName(value)}.`);
  }
  const raw = { ...(value as Record<string, unknown>), ...overrides };
  numberKinds.set(raw, kinds);
  return normalizeConfig(raw, where);
}

/** Writes model_config.yaml atomically, byte-for-byte as litgpt's save_config would. */
export async function writeConfig(path: string, config: Config): Promise<void> {
  await writeFileAtomic(path, configToYaml(normalizeConfig(config)));
}

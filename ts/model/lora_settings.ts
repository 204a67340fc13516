// LoRA settings: litlora's one type for them, litgpt's defaults, and the one validation every source goes
// through (Model.fromConfig / Model.load's `lora` option, a config's lora_* fields, hyperparameters.yaml, the
// CLI's --lora_* flags, migrate).
//
// The fields are litgpt's lora Config fields without their `lora_` prefix (lora_r → r, …, lora_head → head);
// `loraFromKeys` / `loraToKeys` translate to and from litgpt's prefixed names, which hyperparameters.yaml and
// model configs use. Where each target goes in the GPT is decided by the native model (native/core/lora_placement.h).
import { fail } from '../errors.js';

export type LoraTarget = 'query' | 'key' | 'value' | 'projection' | 'mlp' | 'head';

/** A LoRA setup with every field filled. r = 0, or no target on, means no LoRA layers. */
export interface LoraSettings {
  /** Rank of A (r × in) and B (out × r). 0 turns LoRA off. */
  r: number;
  /** Scaling numerator: ΔW = (alpha / r)·B·A. */
  alpha: number;
  /** Dropout probability on the LoRA branch input while training, in [0, 1). */
  dropout: number;
  /** LoRA on the attention queries (the q rows of the fused attn.qkv). */
  query: boolean;
  /** LoRA on the attention keys (the k rows of attn.qkv). */
  key: boolean;
  /** LoRA on the attention values (the v rows of attn.qkv). */
  value: boolean;
  /** LoRA on the attention output projection (attn.proj). */
  projection: boolean;
  /** LoRA on every MLP linear (mlp.fc / mlp.fc_1, mlp.fc_2, mlp.proj). */
  mlp: boolean;
  /** LoRA on the language-model head (lm_head). */
  head: boolean;
}

export type LoraField = keyof LoraSettings;

/** What a caller passes: any subset of LoraSettings; the rest take LORA_DEFAULTS. */
export type LoraOptions = Partial<LoraSettings>;

export const LORA_TARGETS: readonly LoraTarget[] = ['query', 'key', 'value', 'projection', 'mlp', 'head'];
export const LORA_FIELDS: readonly LoraField[] = ['r', 'alpha', 'dropout', ...LORA_TARGETS];

/** litgpt `finetune lora`'s defaults (litgpt/finetune/lora.py setup(), era C): what an absent setting means. */
export const LORA_DEFAULTS: Readonly<LoraSettings> = Object.freeze({
  r: 8, alpha: 16, dropout: 0.05, query: true, key: false, value: true, projection: false, mlp: false, head: false,
});

/**
 * litgpt's lora Config dataclass defaults (litgpt/lora.py `Config`): what absent lora_* fields mean in a model
 * config that sets some of them, as in litgpt's `Config(**fields)`. Also "no LoRA" for native code.
 */
export const LORA_CONFIG_DEFAULTS: Readonly<LoraSettings> = Object.freeze({
  r: 0, alpha: 1, dropout: 0, query: false, key: false, value: false, projection: false, mlp: false, head: false,
});

/** How a source spells a field in its error messages: `lora.r` (the API), `lora_r` (YAML), `--lora_r` (CLI). */
export type LoraNaming = (field: LoraField) => string;
export const apiNaming: LoraNaming = (field) => `lora.${field}`;
export const keyNaming: LoraNaming = (field) => `lora_${field}`;
export const flagNaming: LoraNaming = (field) => `--lora_${field}`;

export interface NormalizeLoraOptions {
  /** Values for the fields `input` leaves out (null or undefined). Default LORA_DEFAULTS. */
  defaults?: Readonly<LoraSettings>;
  /** How fields are named in errors. Default apiNaming (`lora.r`). */
  name?: LoraNaming;
  /** Where the settings come from (a file path), put before the field in errors. */
  where?: string;
}

function repr(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'a list' : v !== null && typeof v === 'object' ? 'a mapping' : String(v);
}

/**
 * Validates LoRA settings and fills the fields left out (null or undefined) from `defaults`. A bad value or an
 * unknown field is ERR_ARG naming the field as its source spells it. Idempotent on its own output.
 */
export function normalizeLora(input: unknown, options: NormalizeLoraOptions = {}): LoraSettings {
  const { defaults = LORA_DEFAULTS, name = apiNaming, where } = options;
  const at = (field: string) => (where ? `${where}: ${field}` : field);
  if (input === null || input === undefined) return { ...defaults };
  if (typeof input !== 'object' || Array.isArray(input)) {
    fail('ERR_ARG', `${where ? `${where}: ` : ''}LoRA settings: expected an object of ${LORA_FIELDS.join(', ')}, got ${repr(input)}`);
  }
  const given = input as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(LORA_FIELDS as readonly string[]).includes(key)) {
      fail('ERR_ARG', `${at(name(key as LoraField))}: unknown option; expected one of ${LORA_FIELDS.map(name).join(', ')}`);
    }
  }
  const out = { ...defaults } as LoraSettings;
  for (const field of LORA_FIELDS) {
    const v = given[field];
    if (v !== null && v !== undefined) (out as unknown as Record<string, unknown>)[field] = v;
  }
  const bad = (field: LoraField, expected: string): never =>
    fail('ERR_ARG', `${at(name(field))}: expected ${expected}, got ${repr(out[field])}`);
  if (typeof out.r !== 'number' || !Number.isSafeInteger(out.r) || out.r < 0) bad('r', 'an integer ≥ 0 (the LoRA rank; 0 turns LoRA off)');
  if (typeof out.alpha !== 'number' || !Number.isFinite(out.alpha)) bad('alpha', 'a number (the update is scaled by alpha / r)');
  if (typeof out.dropout !== 'number' || !(out.dropout >= 0 && out.dropout < 1)) bad('dropout', 'a probability 0 ≤ p < 1');
  for (const t of LORA_TARGETS) if (typeof out[t] !== 'boolean') bad(t, 'true or false');
  return out;
}

/** True when the settings put LoRA layers somewhere: r > 0 and at least one target on. */
export function loraEnabled(s: Readonly<LoraSettings>): boolean {
  return s.r > 0 && LORA_TARGETS.some((t) => s[t]);
}

/** The `lora_*` entries of a record (hyperparameters.yaml, a model config), unprefixed; other keys are left out. */
export function loraFromKeys(record: Readonly<Record<string, unknown>>, options: { unknown?: 'keep' | 'ignore' } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (!key.startsWith('lora_')) continue;
    const field = key.slice(5);
    if ((LORA_FIELDS as readonly string[]).includes(field) || options.unknown === 'keep') out[field] = value;
  }
  return out;
}

/** LoraSettings under litgpt's prefixed names, as hyperparameters.yaml records them. */
export type LoraKeys = { [F in LoraField as `lora_${F}`]: LoraSettings[F] };

/** The settings under litgpt's prefixed names (lora_r, lora_alpha, …, lora_head), in litgpt's order. */
export function loraToKeys(s: Readonly<LoraSettings>): LoraKeys {
  return Object.fromEntries(LORA_FIELDS.map((f) => [`lora_${f}`, s[f]])) as LoraKeys;
}

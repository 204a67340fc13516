// The --lora_r … --lora_head flags of the commands that take LoRA settings (finetune lora, migrate): litgpt's
// names, their defaults from LORA_DEFAULTS, and their values read back as LoraSettings through normalizeLora,
// so that a bad value is the same ERR_ARG as anywhere else, naming the flag.
import type { FlagSpec, FlagType } from './args.js';
import { flagNaming, LORA_DEFAULTS, LORA_FIELDS, normalizeLora, type LoraField, type LoraSettings } from '../model/lora_settings.js';

// litgpt's parameter types: `lora_r: int`, `lora_alpha: int`, `lora_dropout: float`, the targets `bool`.
const FLAG_TYPES: Record<LoraField, FlagType> = {
  r: 'int', alpha: 'int', dropout: 'float', query: 'bool', key: 'bool', value: 'bool', projection: 'bool', mlp: 'bool', head: 'bool',
};

/** The nine --lora_* flags, in litgpt's order, with `help` as each command words it. */
export function loraFlags(help: Readonly<Record<LoraField, string>>): FlagSpec[] {
  return LORA_FIELDS.map((field) => ({ name: `lora_${field}`, type: FLAG_TYPES[field], default: LORA_DEFAULTS[field], help: help[field] }));
}

/** The parsed --lora_* values as LoraSettings; a bad value is ERR_ARG naming its flag. */
export function loraFromFlags(values: Readonly<Record<string, unknown>>): LoraSettings {
  return normalizeLora(Object.fromEntries(LORA_FIELDS.map((f) => [f, values[`lora_${f}`]])), { name: flagNaming });
}

// Named model configs: litgpt's whole `name_to_config` (ts/model/litgpt_configs.ts, generated from litgpt's
// config.py by test/reference/litgpt_config_names.py, the commit recorded there). Each entry lists only what
// differs from Config's defaults, exactly as litgpt does, so that `configFromName(n)` written to YAML equals
// litgpt's model_config.yaml for `n` (tested byte-for-byte for pythia-14m, tiny-llama-1.1b and Llama-3.2-1B).
//
// litlora runs a name when its GPT implements every feature the config switches on (model/native_config.ts
// decides); the others (a mixture of experts, …) are still known, and asking for one says which feature it lacks.
import { normalizeConfig, type Config, type ConfigInput } from './config.js';
import { LITGPT_CONFIGS } from './litgpt_configs.js';
import { nativeGptConfig } from './native_config.js';
import { fail, LitloraError } from '../errors.js';

/** Why litlora cannot run a named config (nativeGptConfig's message), or null when it can; computed once. */
let reasons: Map<string, string | null> | null = null;

function notRunnable(): Map<string, string | null> {
  if (reasons) return reasons;
  reasons = new Map();
  for (const entry of LITGPT_CONFIGS) {
    let reason: string | null = null;
    try {
      nativeGptConfig(normalizeConfig(structuredClone(entry)), null);
    } catch (e) {
      if (!(e instanceof LitloraError)) throw e;
      reason = e.message;
    }
    reasons.set(entry.name as string, reason);
  }
  return reasons;
}

/** The names litlora runs (`configFromName` accepts them), in litgpt's order. */
export function configNames(): string[] {
  return LITGPT_CONFIGS.map((c) => c.name as string).filter((n) => notRunnable().get(n) === null);
}

/**
 * litgpt's `Config.from_name(name, **overrides)`: looks `name` up by litgpt name, then by HF name or
 * `org/name`, applies the overrides and derives the rest. Unknown names → ERR_CONFIG listing the known ones;
 * a litgpt name litlora does not run → ERR_CONFIG naming the feature.
 */
export function configFromName(name: string, overrides: ConfigInput = {}): Config {
  return normalizeConfig({ ...namedConfigInput(name), ...overrides }, `config ${name}`);
}

/** The table entry for `name` as litgpt lists it (only the non-default fields, nothing derived yet); a copy. */
export function namedConfigInput(name: string): ConfigInput {
  const entry = LITGPT_CONFIGS.find((c) => c.name === name) ??
    LITGPT_CONFIGS.find((c) => {
      const hf = c.hf_config as { org: string; name: string };
      return hf.name === name || `${hf.org}/${hf.name}` === name;
    });
  if (!entry) {
    fail('ERR_CONFIG', `'${name}' is not a supported config name. litlora knows: ${configNames().join(', ')}. ` +
      'For another model, write its model_config.yaml (litgpt\'s fields) into the checkpoint folder.');
  }
  const reason = notRunnable().get(entry.name as string);
  if (reason) fail('ERR_CONFIG', `litgpt's config '${entry.name}' is not one litlora runs yet: ${reason}`);
  return structuredClone(entry) as ConfigInput;
}

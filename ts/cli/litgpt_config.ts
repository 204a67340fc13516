// `litlora finetune lora --config FILE` over litgpt's own YAML: a config_hub/finetune/*/lora.yaml, or the
// hyperparameters.yaml that a litgpt or litlora run saved (the same shape), so a saved run re-runs.
//
// jsonargparse writes the data module and the optimizer as `{class_path, init_args}`; here they become the flags
// litlora reads (`data: JSON` + `data.json_path: …`, `optimizer: AdamW` + `optimizer.lr: …`). The keys litgpt has
// for what litlora does not do are accepted at their "off" value and refused otherwise, with the reason.
import { fail } from '../errors.js';

type Doc = Record<string, unknown>;

const isMapping = (v: unknown): v is Doc => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `litgpt.data.JSON` → `JSON`, `torch.optim.AdamW` → `AdamW`. */
function shortClassName(classPath: unknown, where: string, file: string): string {
  if (typeof classPath !== 'string' || classPath.length === 0) {
    fail('ERR_CONFIG', `--config ${file}: ${where}.class_path must be a class name such as litgpt.data.JSON, got ${JSON.stringify(classPath)}`);
  }
  return classPath.slice(classPath.lastIndexOf('.') + 1);
}

/** Moves a `{class_path, init_args}` section to `<key>: Name` and `<key>.<arg>: value`. */
function classSection(out: Doc, key: string, file: string): Doc {
  const section = out[key];
  if (!isMapping(section)) return {};
  delete out[key];
  out[key] = shortClassName(section.class_path, key, file);
  const initArgs = section.init_args ?? {};
  if (!isMapping(initArgs)) fail('ERR_CONFIG', `--config ${file}: ${key}.init_args must be a mapping, got ${JSON.stringify(initArgs)}`);
  const extra = Object.keys(section).filter((k) => k !== 'class_path' && k !== 'init_args');
  if (extra.length) fail('ERR_CONFIG', `--config ${file}: ${key} has ${extra.join(', ')} besides class_path and init_args`);
  return initArgs;
}

/** A key litlora accepts only at its "off" value (null, 1, {}): dropped then; otherwise ERR_CONFIG with the reason. */
function acceptOff(out: Doc, key: string, isOff: (v: unknown) => boolean, reason: string, file: string, section: Doc = out, path = key): void {
  if (!(key in section)) return;
  const value = section[key];
  if (!isOff(value)) fail('ERR_CONFIG', `--config ${file}: ${path}: ${JSON.stringify(value)} is not supported: ${reason}`);
  delete section[key];
}

/** litgpt's finetune YAML (or a saved hyperparameters.yaml) → litlora's `finetune lora` flags. */
export function finetuneConfigFromLitgpt(doc: Doc, file: string): Doc {
  const out: Doc = { ...doc };
  for (const k of ['train', 'eval']) if (isMapping(out[k])) out[k] = { ...(out[k] as Doc) };

  const dataArgs = classSection(out, 'data', file);
  for (const [k, v] of Object.entries(dataArgs)) out[`data.${k}`] = v;

  if (typeof out.optimizer === 'string') out.optimizer = shortClassName(out.optimizer, 'optimizer', file);
  const optimizerArgs = classSection(out, 'optimizer', file);
  for (const [k, v] of Object.entries(optimizerArgs)) {
    if (k === 'betas') {
      if (!Array.isArray(v) || v.length !== 2) fail('ERR_CONFIG', `--config ${file}: optimizer.init_args.betas must be a list of two numbers, got ${JSON.stringify(v)}`);
      out['optimizer.beta1'] = v[0];
      out['optimizer.beta2'] = v[1];
    } else {
      out[`optimizer.${k}`] = v;
    }
  }

  acceptOff(out, 'quantize', (v) => v === null, 'litlora trains unquantized weights (fp32/bf16); set quantize: null or remove it', file);
  acceptOff(out, 'num_nodes', (v) => v === 1 || v === null, 'litlora trains on one machine; set num_nodes: 1', file);
  // litgpt uses the token to download gated weights; finetune reads a local folder and never downloads.
  acceptOff(out, 'access_token', (v) => v === null || typeof v === 'string', 'expected a string or null', file);
  acceptOff(out, 'log', (v) => v === null || (isMapping(v) && Object.values(v).every((x) => x === null)),
    'log.* configures litgpt\'s wandb/litlogger loggers; litlora writes CSV metrics only (logger_name: csv)', file);
  acceptOff(out, 'logger_name', (v) => v === 'csv' || v === null,
    'litlora writes CSV metrics only (logs/csv/version_N/metrics.csv); set logger_name: csv', file);
  if (isMapping(out.train)) {
    acceptOff(out, 'tie_embeddings', (v) => v === null, 'litgpt\'s finetune lora does not support it either', file, out.train as Doc, 'train.tie_embeddings');
  }
  return out;
}

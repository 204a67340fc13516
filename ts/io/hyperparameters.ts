// hyperparameters.yaml: the arguments of the run that made a checkpoint folder, as litgpt records them
// (jsonargparse's `parser.save()` of `finetune lora`'s setup(): signature order, nested data/train/eval/
// optimizer). merge_lora reads three things from it: `checkpoint_dir` (where the base model is),
// `precision`, and every `lora_*` key (B `litgpt/scripts/merge_lora.py` load_lora_metadata).
//
// Also prompt_style.yaml (`{class_path: litgpt.prompts.Alpaca}`), the other small YAML in a finetune folder.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { fail, LitloraError } from '../errors.js';
import { dumpYaml, parseYaml, type YamlValue } from './yaml.js';
import { keyNaming, LORA_TARGETS, loraEnabled, loraFromKeys, normalizeLora, type LoraSettings } from '../model/lora_settings.js';

export interface ClassPathArgs {
  class_path: string;
  init_args?: Record<string, unknown>;
}

/** The keys litgpt writes (era C, `litgpt finetune lora`); any other key is kept as it is. */
export interface Hyperparameters {
  checkpoint_dir: string;
  out_dir?: string;
  precision?: string | null;
  quantize?: string | null;
  devices?: number | string;
  num_nodes?: number;
  lora_r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  lora_query?: boolean;
  lora_key?: boolean;
  lora_value?: boolean;
  lora_projection?: boolean;
  lora_mlp?: boolean;
  lora_head?: boolean;
  data?: ClassPathArgs | null;
  train?: Record<string, unknown>;
  log?: Record<string, unknown>;
  eval?: Record<string, unknown>;
  optimizer?: string | ClassPathArgs;
  logger_name?: string;
  seed?: number;
  access_token?: string | null;
  [key: string]: unknown;
}

// The order of `litgpt finetune lora`'s setup() parameters (era C), which is the order jsonargparse writes.
const KEY_ORDER = [
  'checkpoint_dir', 'out_dir', 'precision', 'quantize', 'devices', 'num_nodes', 'lora_r', 'lora_alpha', 'lora_dropout',
  'lora_query', 'lora_key', 'lora_value', 'lora_projection', 'lora_mlp', 'lora_head', 'data', 'train', 'log', 'eval',
  'optimizer', 'logger_name', 'seed', 'access_token',
];

// Values litgpt holds as Python floats (TrainArgs, optimizer init_args, data modules' val_split_fraction).
const FLOAT_PATHS = new Set([
  'lora_dropout', 'train.learning_rate', 'train.weight_decay', 'train.beta1', 'train.beta2', 'train.max_norm',
  'train.min_lr', 'optimizer.init_args.lr', 'optimizer.init_args.weight_decay', 'optimizer.init_args.eps',
  'optimizer.init_args.betas.*', 'data.init_args.val_split_fraction', 'eval.temperature',
]);

const numberKinds = new WeakMap<object, Map<string, 'int' | 'float'>>();

/**
 * The LoRA settings recorded in `h` (merge_lora uses exactly the `lora_*` keys); LORA_DEFAULTS for the keys that
 * are absent or null. A bad value is ERR_ARG naming the key, after `where` (the file) when given.
 */
export function loraSettings(h: Partial<Hyperparameters>, where?: string): LoraSettings {
  return normalizeLora(loraFromKeys(h), { name: keyNaming, where });
}

/** The LoRA settings of a LoRA finetune folder's hyperparameters.yaml (`where`), which must place LoRA layers. */
export function adapterLoraSettings(h: Partial<Hyperparameters>, where: string, adapterFile: string): LoraSettings {
  const s = loraSettings(h, where);
  if (!loraEnabled(s)) {
    const targets = LORA_TARGETS.filter((t) => s[t]).map(keyNaming);
    fail('ERR_CONFIG', `${where}: a LoRA checkpoint needs lora_r > 0 and at least one lora_* target, got lora_r ${s.r} and ` +
      `${targets.length ? targets.join(', ') : 'no target'}; is this the hyperparameters.yaml of the run that wrote ${adapterFile}?`);
  }
  return s;
}

export function hyperparametersToYaml(h: Hyperparameters): string {
  const ordered: Record<string, YamlValue> = {};
  for (const key of KEY_ORDER) if (key in h && h[key] !== undefined) ordered[key] = h[key] as YamlValue;
  for (const key of Object.keys(h)) if (!(key in ordered) && h[key] !== undefined) ordered[key] = h[key] as YamlValue;
  const kinds = numberKinds.get(h);
  return dumpYaml(ordered, {
    sortKeys: false,
    isFloat: (path) => {
      const at = path.join('.');
      const kind = kinds?.get(at);
      return kind ? kind === 'float' : FLOAT_PATHS.has(at);
    },
  });
}

export async function readHyperparameters(path: string): Promise<Hyperparameters> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new LitloraError('ERR_CHECKPOINT_MISSING', `cannot read ${abs}: ${(e as Error).message}`);
  }
  const { value, numberKinds: kinds } = parseYaml(text, abs);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('ERR_CONFIG', `${abs}: expected a mapping of the run's arguments (checkpoint_dir, lora_r, ...), got ${value === null ? 'an empty file' : typeof value}.`);
  }
  const h = value as Hyperparameters;
  if (h.checkpoint_dir !== undefined && h.checkpoint_dir !== null && typeof h.checkpoint_dir !== 'string') {
    fail('ERR_CONFIG', `${abs}: checkpoint_dir must be a path string, got ${JSON.stringify(h.checkpoint_dir)}.`);
  }
  numberKinds.set(h, kinds);
  return h;
}

/** Writes hyperparameters.yaml atomically, in litgpt's key order. */
export async function writeHyperparameters(path: string, h: Hyperparameters): Promise<void> {
  await writeFileAtomic(path, hyperparametersToYaml(h));
}

// ---------------------------------------------------------------------------------------------------------
// Finding the base checkpoint a finetune folder was made from.

export type BaseResolution = 'absolute' | 'cwd' | 'checkpoints' | 'folder';

export interface ResolvedCheckpointDir {
  /** Absolute path of the base checkpoint folder. */
  path: string;
  /** Which rule found it: an absolute path, relative to the working directory (litgpt), `checkpoints/<path>`
   *  under the working directory (litgpt's extend_checkpoint_dir), or relative to the finetune folder. */
  via: BaseResolution;
  /** Every path tried, in order. */
  tried: string[];
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/**
 * Resolves hyperparameters.yaml's `checkpoint_dir` as litgpt does (absolute; else the working directory, then
 * `checkpoints/<path>`), and then also against `folder` (the folder holding hyperparameters.yaml), so a
 * run directory that was moved together with its base still works. Nothing found → ERR_CHECKPOINT_MISSING
 * naming the file and every path tried.
 */
export function resolveCheckpointDir(checkpointDir: string, options: { cwd?: string; folder?: string; source?: string } = {}):
  ResolvedCheckpointDir {
  const cwd = resolve(options.cwd ?? process.cwd());
  const candidates: [string, BaseResolution][] = [];
  if (isAbsolute(checkpointDir)) {
    candidates.push([resolve(checkpointDir), 'absolute']);
  } else {
    candidates.push([resolve(cwd, checkpointDir), 'cwd']);
    // litgpt's extend_checkpoint_dir; not for ./ or ../ paths, where checkpoints/../x would only alias x.
    const first = checkpointDir.split(/[\\/]/)[0];
    if (first !== 'checkpoints' && first !== '.' && first !== '..') candidates.push([resolve(cwd, 'checkpoints', checkpointDir), 'checkpoints']);
    if (options.folder) candidates.push([resolve(options.folder, checkpointDir), 'folder']);
  }
  const tried = [...new Set(candidates.map(([p]) => p))];
  for (const [path, via] of candidates) if (isDir(path)) return { path, via, tried };
  const source = options.source ?? (options.folder ? join(options.folder, 'hyperparameters.yaml') : 'checkpoint_dir');
  throw new LitloraError('ERR_CHECKPOINT_MISSING',
    `the base checkpoint named in ${source} (checkpoint_dir: ${checkpointDir}) was not found. Tried:\n` +
    tried.map((p) => `  ${p}`).join('\n') +
    '\nMove the base model back there, edit checkpoint_dir in that file, or pass the base explicitly ' +
    '(--pretrained_checkpoint_dir / { base }).');
}

// ---------------------------------------------------------------------------------------------------------
// prompt_style.yaml

/** The prompt style class litgpt records (`litgpt.prompts.<Class>`, e.g. `litgpt.prompts.Alpaca`). */
export interface PromptStyleRef {
  class_path: string;
  init_args?: Record<string, unknown>;
}

export async function readPromptStyle(path: string): Promise<PromptStyleRef> {
  const abs = resolve(path);
  const { value } = parseYaml(await readFile(abs, 'utf8'), abs);
  const v = value as PromptStyleRef | null;
  if (!v || typeof v !== 'object' || typeof v.class_path !== 'string') {
    fail('ERR_CONFIG', `${abs}: expected \`class_path: litgpt.prompts.<Style>\`, got ${JSON.stringify(value)}.`);
  }
  return v;
}

/** Writes prompt_style.yaml as litgpt's save_prompt_style does (`yaml.dump({"class_path": ...})`). */
export async function writePromptStyle(path: string, style: PromptStyleRef | string): Promise<void> {
  const ref = typeof style === 'string'
    ? { class_path: style.includes('.') ? style : `litgpt.prompts.${style}` }
    : style;
  await writeFileAtomic(path, dumpYaml(ref as unknown as YamlValue));
}

/** The folder a hyperparameters.yaml lives in (for folder-relative resolution). */
export function folderOf(path: string): string {
  return dirname(resolve(path));
}

// Checkpoint: a litgpt checkpoint folder, recognised by its file names (litgpt's unified layout,
// as litgpt's litgpt/utils.py check_valid_checkpoint_dir, litgpt/scripts/download.py and finetune/lora.py name them):
//
//   kind      weights                                   how it is made
//   base      lit_model.pth, no hyperparameters.yaml    litgpt download / convert, litlora init
//   full      lit_model.pth + hyperparameters.yaml      finetune full (weights possibly {"model": ...} wrapped)
//   lora      lit_model.pth.lora, no lit_model.pth      finetune lora (step-XXXXXX/, final/ before merging)
//   merged    lit_model.pth.lora + lit_model.pth        merge_lora (or finetune lora's final/ after auto-merge)
//
// Every kind also needs model_config.yaml, tokenizer.json or tokenizer.model, and tokenizer_config.json
// (litgpt's check_valid_checkpoint_dir); a missing file is ERR_CHECKPOINT_MISSING with litgpt's wording.
// Files of the pre-unification layout (lit-gpt, early 2024) are ERR_CHECKPOINT_FORMAT with the
// `litlora migrate` command that rewrites them. Opening reads only the small YAML files, never weights.
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readConfig, type Config } from '../model/config.js';
import { LitloraError } from '../errors.js';
import {
  readHyperparameters, readPromptStyle, resolveCheckpointDir,
  type Hyperparameters, type PromptStyleRef, type ResolvedCheckpointDir,
} from './hyperparameters.js';

export type CheckpointKind = 'base' | 'lora' | 'merged' | 'full';

export const MODEL_FILE = 'lit_model.pth';
export const LORA_FILE = 'lit_model.pth.lora';
export const CONFIG_FILE = 'model_config.yaml';
export const HPARAMS_FILE = 'hyperparameters.yaml';
export const PROMPT_STYLE_FILE = 'prompt_style.yaml';
/**
 * What litgpt's copy_config_files copies from the base into every finetune folder (era C, utils.py), and
 * chat_template.jinja, where newer transformers keeps the chat template that the chat_template prompt style reads.
 */
export const COPIED_CONFIG_FILES = [
  'config.json', 'generation_config.json', 'model_config.yaml', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json',
  'chat_template.jinja',
] as const;

/** Absolute paths of the litgpt files present in the folder (null when absent). */
export interface CheckpointFiles {
  model: string | null;
  lora: string | null;
  config: string;
  hyperparameters: string | null;
  promptStyle: string | null;
  generationConfig: string | null;
  hfConfig: string | null;
}

export interface OpenOptions {
  /** Skip the tokenizer checks (litgpt's ignore_tokenizer_files), e.g. for a weights-only tool. */
  ignoreTokenizerFiles?: boolean;
}

/** The pre-unification files (lit-gpt ≤ Feb 2024) and what each becomes. */
const LEGACY_NAMES: { test: (f: string) => boolean; what: string }[] = [
  { test: (f) => f === 'lit_model_lora_finetuned.pth', what: 'a LoRA finetune result (now final/lit_model.pth.lora)' },
  { test: (f) => f === 'lit_model_finetuned.pth', what: 'a full finetune result (now final/lit_model.pth)' },
  { test: (f) => /^iter-\d+-ckpt\.pth$/.test(f), what: 'periodic LoRA checkpoints (now step-XXXXXX/lit_model.pth.lora)' },
  { test: (f) => f === 'lit_config.json', what: 'the model config (now model_config.yaml)' },
];

/** litgpt's extend_checkpoint_dir: `checkpoints/<path>` when `path` does not exist but that does (so
 * `litlora generate EleutherAI/pythia-14m` finds what `litlora download` put in checkpoints/). */
export function extendCheckpointDir(path: string, cwd: string): string {
  const direct = resolve(cwd, path);
  if (existsSync(direct)) return direct;
  const extended = resolve(cwd, 'checkpoints', path);
  return existsSync(extended) ? extended : direct;
}

/** Python's repr() of a str, for messages that quote paths exactly as litgpt prints them. */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return quote + out + quote;
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

/** The legacy (pre-unification) files in `dir`, each with what it is; [] when there are none. */
export async function findLegacyFiles(dir: string): Promise<{ file: string; what: string }[]> {
  let entries: string[];
  try { entries = await readdir(dir); } catch { return []; }
  const out: { file: string; what: string }[] = [];
  for (const f of entries.sort()) {
    const hit = LEGACY_NAMES.find((l) => l.test(f));
    if (hit) out.push({ file: f, what: hit.what });
  }
  return out;
}

export class Checkpoint {
  private constructor(
    readonly kind: CheckpointKind,
    /** Absolute path of the folder. */
    readonly dir: string,
    readonly files: CheckpointFiles,
    readonly config: Config,
    readonly hyperparameters: Hyperparameters | null,
    readonly promptStyle: PromptStyleRef | null,
    /** Absolute paths of tokenizer.json / tokenizer.model / tokenizer_config.json present in the folder. */
    readonly tokenizerFiles: string[],
  ) {}

  /**
   * Opens a checkpoint folder: checks litgpt's file set, determines the kind, reads model_config.yaml,
   * hyperparameters.yaml and prompt_style.yaml. Weights are not read.
   */
  static async open(dir: string, options: OpenOptions = {}): Promise<Checkpoint> {
    const abs = resolve(dir);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) {
      throw new LitloraError('ERR_CHECKPOINT_MISSING', `checkpoint_dir ${pyRepr(abs)} is not a checkpoint directory. ` +
        'Make one with `litlora init --model_name pythia-14m --out_dir <dir>`, or point at a litgpt checkpoint folder.');
    }
    const at = (f: string) => join(abs, f);
    const hasModel = isFile(at(MODEL_FILE));
    const hasLora = isFile(at(LORA_FILE));
    const legacy = await findLegacyFiles(abs);
    const migrateHint = (found: { file: string; what: string }[]) =>
      `checkpoint_dir ${pyRepr(abs)} uses the pre-unification lit-gpt layout: ` +
      found.map((l) => `${l.file} (${l.what})`).join(', ') +
      `. Rewrite it into litgpt's current layout with \`litlora migrate ${abs} --checkpoint_dir <base checkpoint>\`` +
      ' (add the --lora_* settings the run used if they were not the defaults).';

    if (!hasModel && !hasLora && legacy.some((l) => l.file !== 'lit_config.json')) {
      throw new LitloraError('ERR_CHECKPOINT_FORMAT', migrateHint(legacy));
    }
    if (!isFile(at(CONFIG_FILE)) && legacy.some((l) => l.file === 'lit_config.json')) {
      throw new LitloraError('ERR_CHECKPOINT_FORMAT', migrateHint(legacy));
    }

    // litgpt's check_valid_checkpoint_dir, with the weights file this kind needs.
    const status: [string, boolean][] = [
      [hasLora && !hasModel ? LORA_FILE : MODEL_FILE, hasModel || hasLora],
      [CONFIG_FILE, isFile(at(CONFIG_FILE))],
    ];
    if (!options.ignoreTokenizerFiles) {
      status.push(['tokenizer.json OR tokenizer.model', isFile(at('tokenizer.json')) || isFile(at('tokenizer.model'))]);
      status.push(['tokenizer_config.json', isFile(at('tokenizer_config.json'))]);
    }
    const missing = status.filter(([, ok]) => !ok).map(([f]) => f);
    if (missing.length) {
      throw new LitloraError('ERR_CHECKPOINT_MISSING',
        `checkpoint_dir ${pyRepr(abs)} is missing the files: [${missing.map(pyRepr).join(', ')}]. ` +
        'A litgpt checkpoint folder holds lit_model.pth (or lit_model.pth.lora), model_config.yaml, ' +
        'tokenizer.json or tokenizer.model, and tokenizer_config.json.');
    }

    const present = (f: string) => (isFile(at(f)) ? at(f) : null);
    const files: CheckpointFiles = {
      model: hasModel ? at(MODEL_FILE) : null,
      lora: hasLora ? at(LORA_FILE) : null,
      config: at(CONFIG_FILE),
      hyperparameters: present(HPARAMS_FILE),
      promptStyle: present(PROMPT_STYLE_FILE),
      generationConfig: present('generation_config.json'),
      hfConfig: present('config.json'),
    };
    const kind: CheckpointKind = hasLora ? (hasModel ? 'merged' : 'lora') : files.hyperparameters ? 'full' : 'base';
    const config = await readConfig(files.config);
    const hyperparameters = files.hyperparameters ? await readHyperparameters(files.hyperparameters) : null;
    const promptStyle = files.promptStyle ? await readPromptStyle(files.promptStyle) : null;
    const tokenizerFiles = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'].map(at).filter(isFile);
    return new Checkpoint(kind, abs, files, config, hyperparameters, promptStyle, tokenizerFiles);
  }

  /** The weights file a model loads from this folder: lit_model.pth when present, else null (LoRA-only). */
  get weightsFile(): string | null {
    return this.files.model;
  }

  /**
   * Where the base model of a LoRA (or merged/full) folder is: `base` when given, else hyperparameters.yaml's
   * checkpoint_dir resolved as litgpt does, then against this folder. The result says which rule found it.
   */
  resolveBase(options: { base?: string; cwd?: string } = {}): ResolvedCheckpointDir {
    if (options.base) {
      const path = resolve(options.cwd ?? process.cwd(), options.base);
      if (!existsSync(path)) {
        throw new LitloraError('ERR_CHECKPOINT_MISSING', `the base checkpoint ${path} does not exist.`);
      }
      return { path, via: 'absolute', tried: [path] };
    }
    const h = this.hyperparameters;
    if (!h || typeof h.checkpoint_dir !== 'string' || !h.checkpoint_dir) {
      throw new LitloraError('ERR_CHECKPOINT_MISSING',
        `checkpoint_dir ${pyRepr(this.dir)} is missing a \`hyperparameters.yaml\` file with checkpoint_dir, which is needed ` +
        'to find the base model of a LoRA checkpoint. Pass the base explicitly (--pretrained_checkpoint_dir / { base }).');
    }
    return resolveCheckpointDir(h.checkpoint_dir, { cwd: options.cwd, folder: this.dir, source: this.files.hyperparameters! });
  }
}

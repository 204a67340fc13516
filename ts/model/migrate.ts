// Migration of pre-unification lit-gpt outputs (lit-gpt ≤ Feb 2024: lit_model_lora_finetuned.pth and friends) into
// litgpt's current folder layout:
//
//   lit_model_lora_finetuned.pth  → final/lit_model.pth.lora        (LoRA result; same {"model": ...} content)
//   iter-000100-ckpt.pth          → step-000100/lit_model.pth.lora  (periodic LoRA; step = iter / iters_per_step)
//   lit_model_finetuned.pth       → final/lit_model.pth             (full finetune, {"model": ...} wrapped)
//   lit_config.json               → model_config.yaml               (renamed fields, YAML)
//   version_N/                    → logs/csv/version_N/             (CSV logs)
//
// Each new folder gets what the old layout never stored: model_config.yaml and the tokenizer files from the
// base checkpoint (--checkpoint_dir), a hyperparameters.yaml naming that base and the LoRA settings (which
// the caller states; lit-gpt's defaults otherwise), and prompt_style.yaml (Alpaca, lit-gpt's only finetune
// prompt then). Weight files are moved, not rewritten; each folder is assembled so that its weights file
// appears last (outdir.ts).
//
// Nothing the user had is lost on an error: every new folder is first assembled under a hidden name, holding
// the old weights file under a second name (a hard link) or its re-laid-out copy; only when all of them are
// complete do they go in place, and only then do the old names go. Until that point DIR is exactly as it was.
//
// Tensor layout: these files use the `attn.attn` names and the per-group interleaved QKV rows of litgpt
// < 0.5.5, while litgpt ≥ 0.5.5 and litlora's model use `attn.qkv` with [Q|K|V] rows. Converting them needs
// the model's QKV geometry, so it is a hook the model module registers (registerQkvRelayout); migrate calls
// it on every weights file it moves, and says so when no hook is registered.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { copyFileAtomic, fsyncDir, linkFileDurable, writeFileAtomic } from '../io/atomic.js';
import { COPIED_CONFIG_FILES, CONFIG_FILE, findLegacyFiles, HPARAMS_FILE, LORA_FILE, MODEL_FILE, PROMPT_STYLE_FILE } from '../io/checkpoint.js';
import { configFromParsed, configToYaml, readConfig, type Config } from './config.js';
import { fail, LitloraError } from '../errors.js';
import { hyperparametersToYaml, type Hyperparameters } from '../io/hyperparameters.js';
import { loraToKeys, normalizeLora, type LoraOptions } from './lora_settings.js';
import { prepareCheckpointFolder, type FolderFile, type PreparedFolder } from '../io/outdir.js';
import { dumpYaml, parseYaml } from '../io/yaml.js';

/**
 * Reads the weights file `source` and, when it has the interleaved `attn.attn` layout, writes it to `target`
 * with `attn.qkv` ('rewritten'); otherwise writes nothing ('unchanged'). `source` is never modified.
 */
export type QkvRelayout = (source: string, target: string, config: Config, kind: 'lora' | 'full') => Promise<'rewritten' | 'unchanged'>;

let qkvRelayout: QkvRelayout | null = null;

/** Registers the QKV re-layout (the model module does this); migrate then converts moved weights. */
export function registerQkvRelayout(fn: QkvRelayout | null): void {
  qkvRelayout = fn;
}

export interface MigrateOptions {
  /** The base checkpoint folder the old run started from (its config and tokenizer are copied). */
  checkpointDir?: string | null;
  /** The LoRA settings the old run used (lit-gpt did not record them); LORA_DEFAULTS for what is left out. */
  lora?: LoraOptions;
  precision?: string | null;
  /** prompt_style.yaml's class_path (default litgpt.prompts.Alpaca). */
  promptStyle?: string;
  /** Micro-batches per optimizer step of the old run: iter-N becomes step-(N / itersPerStep). Default 1. */
  itersPerStep?: number;
  /** Plan only: change nothing. */
  dryRun?: boolean;
  cwd?: string;
}

export interface MigrationStep {
  action: 'move' | 'write' | 'copy' | 'relayout';
  from?: string;
  to: string;
}

export interface MigrationResult {
  dir: string;
  steps: MigrationStep[];
  /** Checkpoint folders created (final/, step-XXXXXX/). */
  folders: string[];
  notes: string[];
}

// Renamed and dropped fields of lit-gpt's Config as written to lit_config.json.
const RENAMED: Record<string, string> = { _norm_class: 'norm_class_name', _mlp_class: 'mlp_class_name', condense_ratio: 'rope_condense_ratio' };

/** Converts an old lit_config.json (text) into a Config. */
export function configFromLegacyJson(text: string, source: string): Config {
  const parsed = parseYaml(text, source); // JSON is YAML; this keeps 1.0 vs 1
  const value = parsed.value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('ERR_CONFIG', `${source}: expected a JSON object`);
  const old = value as Record<string, unknown>;
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(old)) {
    if (k === 'org') continue; // folded into hf_config below
    raw[RENAMED[k] ?? k] = v;
  }
  if (!raw.hf_config && typeof old.org === 'string') raw.hf_config = { org: old.org, name: old.name };
  const kinds = new Map([...parsed.numberKinds].map(([p, k]) => [RENAMED[p] ?? p, k] as const));
  return configFromParsed({ value: raw, numberKinds: kinds }, source);
}

async function baseConfig(base: string): Promise<Config> {
  if (existsSync(join(base, CONFIG_FILE))) return readConfig(join(base, CONFIG_FILE));
  if (existsSync(join(base, 'lit_config.json'))) {
    const file = join(base, 'lit_config.json');
    return configFromLegacyJson(await readFile(file, 'utf8'), file);
  }
  throw new LitloraError('ERR_CHECKPOINT_MISSING', `the base checkpoint ${base} has neither model_config.yaml nor lit_config.json.`);
}

/** Plans and (unless dryRun) performs the migration of `path`. */
export async function migrateCheckpoint(path: string, options: MigrateOptions = {}): Promise<MigrationResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const dir = resolve(cwd, path);
  if (!existsSync(dir)) throw new LitloraError('ERR_CHECKPOINT_MISSING', `${dir} does not exist.`);
  const legacy = (await findLegacyFiles(dir)).map((l) => l.file);
  const result: MigrationResult = { dir, steps: [], folders: [], notes: [] };
  const itersPerStep = options.itersPerStep ?? 1;
  if (!Number.isInteger(itersPerStep) || itersPerStep < 1) fail('ERR_ARG', `iters_per_step must be a positive integer, got ${itersPerStep}`);

  // 1. lit_config.json → model_config.yaml in the folder itself (a base checkpoint of the old layout).
  // `prepare` assembles the new folders out of sight; `actions` then change DIR (see the header).
  const prepare: (() => Promise<PreparedFolder>)[] = [];
  const actions: (() => Promise<void>)[] = [];
  const movedWeights: string[] = [];
  if (legacy.includes('lit_config.json') && !existsSync(join(dir, CONFIG_FILE))) {
    const file = join(dir, 'lit_config.json');
    const config = configFromLegacyJson(await readFile(file, 'utf8'), file);
    result.steps.push({ action: 'write', from: file, to: join(dir, CONFIG_FILE) });
    actions.push(() => writeFileAtomic(join(dir, CONFIG_FILE), configToYaml(config)));
    result.notes.push('lit_config.json was kept; litgpt ignores it.');
  }

  // 2. Finetune results → final/ and step-XXXXXX/ folders.
  const results: { file: string; folder: string; kind: 'lora' | 'full' }[] = [];
  for (const f of legacy) {
    if (f === 'lit_model_lora_finetuned.pth') results.push({ file: f, folder: 'final', kind: 'lora' });
    else if (f === 'lit_model_finetuned.pth') results.push({ file: f, folder: 'final', kind: 'full' });
    else {
      const m = /^iter-(\d+)-ckpt\.pth$/.exec(f);
      if (!m) continue;
      const iter = Number(m[1]);
      if (iter % itersPerStep !== 0) {
        fail('ERR_ARG', `${f}: iteration ${iter} is not a multiple of --iters_per_step ${itersPerStep}; check the value the run used.`);
      }
      results.push({ file: f, folder: `step-${String(iter / itersPerStep).padStart(6, '0')}`, kind: 'lora' });
    }
  }
  if (results.filter((r) => r.folder === 'final').length > 1) {
    fail('ERR_CHECKPOINT_FORMAT', `${dir} holds both lit_model_lora_finetuned.pth and lit_model_finetuned.pth; migrate them from separate folders.`);
  }
  if (results.length) {
    if (!options.checkpointDir) {
      fail('ERR_ARG', `${dir} holds ${results.map((r) => r.file).join(', ')}, written by lit-gpt before it recorded the base model. ` +
        'Pass --checkpoint_dir <the base checkpoint folder the run started from> (and the --lora_* settings it used, if not the defaults).');
    }
    const base = resolve(cwd, options.checkpointDir);
    if (!existsSync(base)) throw new LitloraError('ERR_CHECKPOINT_MISSING', `the base checkpoint ${base} (--checkpoint_dir) does not exist.`);
    const config = await baseConfig(base);
    const copies = COPIED_CONFIG_FILES.filter((f) => f !== CONFIG_FILE && existsSync(join(base, f)));
    if (!copies.some((f) => f.startsWith('tokenizer.')) || !copies.includes('tokenizer_config.json')) {
      throw new LitloraError('ERR_CHECKPOINT_MISSING', `the base checkpoint ${base} has no tokenizer.json/tokenizer.model and tokenizer_config.json to copy.`);
    }
    const lora = loraToKeys(normalizeLora(options.lora));
    // As litgpt records CLI values "as typed": keep a relative base path relative.
    const checkpointDirValue = isAbsolute(options.checkpointDir) ? options.checkpointDir : relative(cwd, base) || '.';
    for (const r of results) {
      const folder = join(dir, r.folder);
      if (existsSync(folder)) fail('ERR_ARG', `${folder} already exists; migrate will not overwrite it. Move it away first.`);
      const h: Hyperparameters = {
        checkpoint_dir: checkpointDirValue,
        out_dir: isAbsolute(path) ? path : relative(cwd, dir) || '.',
        precision: options.precision ?? null,
        ...(r.kind === 'lora' ? lora : {}),
      };
      const files: FolderFile[] = [
        ...copies.map((f) => ({ name: f, write: (p: string) => copyFileAtomic(join(base, f), p) })),
        { name: CONFIG_FILE, write: (p) => writeFileAtomic(p, configToYaml(config)) },
        { name: HPARAMS_FILE, write: (p) => writeFileAtomic(p, hyperparametersToYaml(h)) },
        { name: PROMPT_STYLE_FILE, write: (p) => writeFileAtomic(p, dumpYaml({ class_path: options.promptStyle ?? 'litgpt.prompts.Alpaca' })) },
      ];
      const weightsName = r.kind === 'lora' ? LORA_FILE : MODEL_FILE;
      const from = join(dir, r.file);
      for (const f of files) result.steps.push({ action: f.name === CONFIG_FILE || f.name.endsWith('.yaml') ? 'write' : 'copy', to: join(folder, f.name) });
      result.steps.push({ action: 'move', from, to: join(folder, weightsName) });
      if (qkvRelayout) result.steps.push({ action: 'relayout', to: join(folder, weightsName) });
      result.folders.push(folder);
      movedWeights.push(from);
      prepare.push(() => prepareCheckpointFolder(folder, files, {
        name: weightsName,
        write: async (p) => {
          const relaid = qkvRelayout ? await qkvRelayout(from, p, config, r.kind) : 'unchanged';
          if (relaid === 'unchanged') await linkFileDurable(from, p);
        },
      }));
    }
    if (!qkvRelayout) {
      result.notes.push('The weights keep lit-gpt\'s `attn.attn` names and interleaved QKV layout; litgpt ≥ 0.5.5 expects `attn.qkv` ' +
        '([Q|K|V] rows). litlora\'s model converts them when it loads such files.');
    }
  }

  // 3. CSV logs: out_dir/version_N → out_dir/logs/csv/version_N.
  if (results.length) {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !/^version_\d+$/.test(entry.name)) continue;
      const to = join(dir, 'logs', 'csv', entry.name);
      if (existsSync(to)) { result.notes.push(`${entry.name}/ left in place: ${to} exists.`); continue; }
      result.steps.push({ action: 'move', from: join(dir, entry.name), to });
      actions.push(async () => {
        await mkdir(join(dir, 'logs', 'csv'), { recursive: true });
        await rename(join(dir, entry.name), to);
      });
    }
  }

  if (!result.steps.length) result.notes.push(`nothing to migrate: ${dir} has no pre-unification files.`);
  if (options.dryRun) return result;
  const prepared: PreparedFolder[] = [];
  try {
    for (const p of prepare) prepared.push(await p());
    for (const act of actions) await act();
    while (prepared.length) {
      await prepared[0].publish();
      prepared.shift();
    }
  } catch (e) {
    for (const p of prepared) await p.discard();
    throw e;
  }
  // The new folders hold the weights now (durably): the old names can go.
  for (const from of movedWeights) await rm(from, { force: true });
  if (movedWeights.length) await fsyncDir(dir);
  return result;
}

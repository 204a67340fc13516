// OutDir: the output folder of a finetune run, in litgpt's layout (litgpt/finetune/lora.py fit() and
// save_lora_checkpoint, litgpt/utils.py save_hyperparameters and copy_config_files):
//
//   out_dir/step-000100/   every save_interval optimizer steps   (lit_model.pth.lora + config/tokenizer/hparams/prompt style)
//   out_dir/final/         after training                       (the same files; lit_model.pth once merged)
//   out_dir/logs/csv/version_N/metrics.csv                      (N = highest existing version + 1, as Lightning's CSVLogger)
//
// Completeness rule: a checkpoint folder is complete iff its weights file exists. writeCheckpointFolder
// keeps that true under crashes, and a failed write loses nothing: the new folder is assembled under a hidden
// temporary name in the same parent (weights written last inside it) and renamed into place in one step. When
// the folder exists already, its other files are carried into the new one as hard links and the two folders
// are swapped by renames, so the old folder stays whole until the new one is complete. Hidden partial folders
// that a killed earlier write left next to the target are cleared first (atomic.ts, removeStalePartials).
//
// A training run owns out_dir while it runs (startRun takes ./outdir_lock.ts's lock), and a new run does not
// silently write over an earlier run's checkpoints.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  carryOver, copyFileAtomic, publishFolder, removeStalePartials, replaceFolder, tempSibling, writeFileAtomic,
} from './atomic.js';
import {
  COPIED_CONFIG_FILES, CONFIG_FILE, HPARAMS_FILE, LORA_FILE, MODEL_FILE, PROMPT_STYLE_FILE,
} from './checkpoint.js';
import { configToYaml, type Config } from '../model/config.js';
import { fail, LitloraError } from '../errors.js';
import { hyperparametersToYaml, type Hyperparameters, type PromptStyleRef } from './hyperparameters.js';
import { ioError, isFsError, makeFolder } from './fs_errors.js';
import { OutDirLock } from './outdir_lock.js';
import type { Tensor } from '../tensor.js';
import { saveTensors, type SaveTensorsFn } from './tensorfile.js';
import { latestResumableStep } from '../train/training_state.js';
import { dumpYaml, type YamlValue } from './yaml.js';

/** One file of a checkpoint folder: its name and how to write it to a given path. */
export interface FolderFile {
  name: string;
  write(path: string): Promise<void>;
}

/** Files of an existing folder that the rewritten folder leaves out (they would be wrong next to the new weights). */
export interface RewriteOptions {
  drop?: readonly string[];
}

/**
 * Writes a checkpoint folder so that its weights file's presence means it is complete (see the header).
 * `files` are written first (in order), then `weights`.
 */
export async function writeCheckpointFolder(dir: string, files: FolderFile[], weights: FolderFile, options: RewriteOptions = {}): Promise<void> {
  const prepared = await prepareCheckpointFolder(dir, files, weights, options);
  try {
    await prepared.publish();
  } catch (e) {
    await prepared.discard();
    throw e;
  }
}

/** A checkpoint folder assembled under its hidden temporary name, not yet in place. */
export interface PreparedFolder {
  /** Puts it in place of (or as) its target; the previous folder, if any, stays whole until then. */
  publish(): Promise<void>;
  /** Removes it; the target is untouched. */
  discard(): Promise<void>;
}

/**
 * The first half of writeCheckpointFolder, for callers that assemble several folders and publish them only
 * when all are complete (migrate): on an error nothing is left behind and the target is untouched.
 */
export async function prepareCheckpointFolder(dir: string, files: FolderFile[], weights: FolderFile,
  options: RewriteOptions = {}): Promise<PreparedFolder> {
  const target = resolve(dir);
  await makeFolder(dirname(target), 'the checkpoint folder', target);
  await removeStalePartials(dirname(target), basename(target));
  const existing = await stat(target).catch(() => null);
  if (existing && !existing.isDirectory()) {
    fail('ERR_IO', `cannot write the checkpoint folder ${target}: it is a file, not a folder. Choose another path, or move the file away.`);
  }
  const rewriting = existing !== null;
  const tmp = tempSibling(target);
  const discard = () => rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(tmp);
    if (rewriting) {
      // A merged lit_model.pth next to a new .lora would be stale (Model.load prefers it, and litgpt's
      // merge_lora would skip the folder as "already merged"): it is not carried over.
      const replaced = new Set([...files.map((f) => f.name), weights.name, ...(weights.name === LORA_FILE ? [MODEL_FILE] : []),
        ...(options.drop ?? [])]);
      await carryOver(target, tmp, replaced);
    }
    for (const f of files) await f.write(join(tmp, f.name));
    await weights.write(join(tmp, weights.name));
  } catch (e) {
    await discard();
    throw isFsError(e) ? ioError(e, `write the checkpoint folder ${target}`) : e;
  }
  return { publish: () => (rewriting ? replaceFolder(tmp, target) : publishFolder(tmp, target)), discard };
}

export interface LoraCheckpointContents {
  /** The adapter tensors, named as in litgpt's LoRA model (every name contains "lora_"). */
  loraTensors: Map<string, Tensor> | Record<string, Tensor>;
  config: Config;
  hyperparameters: Hyperparameters;
  /** e.g. `{ class_path: 'litgpt.prompts.Alpaca' }`; omitted → no prompt_style.yaml (litgpt always writes one). */
  promptStyle?: PromptStyleRef | null;
  /** The base checkpoint folder whose tokenizer / generation_config.json / config.json are copied. */
  tokenizerFrom: string;
}

export interface OutDirOptions {
  /** Replaces tensorfile's saveTensors (tests; other tensor writers). */
  saveTensors?: SaveTensorsFn;
}

export interface StartRunOptions {
  /** The run continues the newest resumable step folder of out_dir. */
  resume?: boolean;
  /** Start even where an earlier run's step folders or final/ would be written over (litgpt's behaviour). */
  force?: boolean;
  /** Where the note about taking over a stale lock goes (default: stderr). */
  log?: (line: string) => void;
}

export interface StepFolder {
  step: number;
  dir: string;
  /** True when its weights file (lit_model.pth.lora or lit_model.pth) is present. */
  complete: boolean;
}

export class OutDir {
  /** Absolute path of out_dir. */
  readonly root: string;
  readonly #saveTensors: SaveTensorsFn | undefined;

  constructor(root: string, options: OutDirOptions = {}) {
    this.root = resolve(root);
    this.#saveTensors = options.saveTensors;
  }

  /** out_dir/step-%06d (litgpt: `step-{step_count:06d}`). */
  stepDir(step: number): string {
    if (!Number.isInteger(step) || step < 0) fail('ERR_ARG', `step must be a non-negative integer, got ${step}`);
    return join(this.root, `step-${String(step).padStart(6, '0')}`);
  }

  get finalDir(): string {
    return join(this.root, 'final');
  }

  /**
   * Takes out_dir's lock for a training run (./outdir_lock.ts: ERR_BUSY while another run holds it) and
   * checks that the run may write here: a new run refuses (ERR_ARG) an out_dir that holds an earlier run's
   * step folders or final/, which it would write over, unless `force`; so does a resume that finds no step
   * folder to continue. Returns the lock; release() it when the run ends.
   */
  async startRun(options: StartRunOptions = {}): Promise<OutDirLock> {
    const lock = await OutDirLock.acquire(this.root, { log: options.log });
    try {
      if (!options.force) await this.#checkUnused(options.resume ?? false);
    } catch (e) {
      lock.release();
      throw e;
    }
    return lock;
  }

  async #checkUnused(resume: boolean): Promise<void> {
    const earlier = (await this.steps()).map((s) => basename(s.dir));
    if (existsSync(this.finalDir)) earlier.push('final');
    if (earlier.length === 0 || (resume && await latestResumableStep(this.root))) return;
    const list = (earlier.length > 4 ? [...earlier.slice(0, 2), '...', ...earlier.slice(-2)] : earlier).map((n) => `${n}/`).join(', ');
    if (resume) {
      fail('ERR_ARG', `resume: ${this.root} has no step folder to continue (none holds lit_model.pth.lora and training_state.pth), ` +
        `but it holds ${list} of an earlier run, which a new run would write over. Choose another out_dir (--out_dir), ` +
        'or pass force (--force true) to start over in it.');
    }
    fail('ERR_ARG', `${this.root} holds the checkpoints of an earlier run (${list}), which a new run would write over. ` +
      'Continue that run with resume (--resume true), choose another out_dir (--out_dir), or pass force (--force true) ' +
      'to write into it anyway (litgpt\'s behaviour: folders of the same name are replaced, others stay).');
  }

  /**
   * Creates and returns out_dir/logs/<name>/version_N with N one above the highest existing version
   * (Lightning's CSVLogger numbering, which is what litgpt's `choose_logger("csv")` uses).
   */
  async nextLogDir(name = 'csv'): Promise<string> {
    const base = join(this.root, 'logs', name);
    await makeFolder(base, 'the log folder');
    for (;;) {
      let highest = -1;
      for (const entry of await readdir(base, { withFileTypes: true })) {
        const m = /^version_(\d+)$/.exec(entry.name);
        if (m && entry.isDirectory()) highest = Math.max(highest, Number(m[1]));
      }
      const dir = join(base, `version_${highest + 1}`);
      try {
        await mkdir(dir); // not recursive: fails if a concurrent run took this number, then we look again
        return dir;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  /** The step-XXXXXX folders, ascending, each marked complete or not. */
  async steps(): Promise<StepFolder[]> {
    let entries: string[];
    try { entries = await readdir(this.root); } catch { return []; }
    const out: StepFolder[] = [];
    for (const name of entries) {
      const m = /^step-(\d{6,})$/.exec(name);
      if (!m) continue;
      const dir = join(this.root, name);
      if (!(await stat(dir)).isDirectory()) continue;
      const complete = existsSync(join(dir, LORA_FILE)) || existsSync(join(dir, MODEL_FILE));
      out.push({ step: Number(m[1]), dir, complete });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** The newest complete step folder, or null. */
  async latestCompleteStep(): Promise<StepFolder | null> {
    const done = (await this.steps()).filter((s) => s.complete);
    return done.length ? done[done.length - 1] : null;
  }

  /**
   * Writes a LoRA checkpoint folder with litgpt's file set: lit_model.pth.lora (`{"model": {...}}`),
   * model_config.yaml, hyperparameters.yaml, prompt_style.yaml, and the base's tokenizer files,
   * generation_config.json and config.json when present. The weights file is written last.
   */
  async writeLoraCheckpoint(dir: string, contents: LoraCheckpointContents): Promise<void> {
    const names = contents.loraTensors instanceof Map ? [...contents.loraTensors.keys()] : Object.keys(contents.loraTensors);
    if (names.length === 0) fail('ERR_ARG', 'writeLoraCheckpoint: no LoRA tensors given');
    const foreign = names.filter((n) => !n.includes('lora_'));
    if (foreign.length) {
      fail('ERR_ARG', `writeLoraCheckpoint: a .lora file holds only LoRA parameters (names containing "lora_"), got ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}`);
    }
    const from = resolve(contents.tokenizerFrom);
    const copies = COPIED_CONFIG_FILES.filter((f) => f !== CONFIG_FILE && existsSync(join(from, f)));
    if (!copies.some((f) => f === 'tokenizer.json' || f === 'tokenizer.model') || !copies.includes('tokenizer_config.json')) {
      throw new LitloraError('ERR_CHECKPOINT_MISSING',
        `writeLoraCheckpoint: ${from} has no tokenizer.json/tokenizer.model and tokenizer_config.json to copy; a litgpt checkpoint folder needs them.`);
    }
    const files: FolderFile[] = [
      ...copies.map((f) => ({ name: f, write: (p: string) => copyFileAtomic(join(from, f), p) })),
      { name: CONFIG_FILE, write: (p) => writeFileAtomic(p, configToYaml(contents.config)) },
      { name: HPARAMS_FILE, write: (p) => writeFileAtomic(p, hyperparametersToYaml(contents.hyperparameters)) },
    ];
    if (contents.promptStyle) {
      const style = contents.promptStyle;
      files.push({ name: PROMPT_STYLE_FILE, write: (p) => writeFileAtomic(p, dumpYaml(style as unknown as YamlValue)) });
    }
    const save = this.#saveTensors ?? saveTensors;
    await writeCheckpointFolder(dir, files, {
      name: LORA_FILE,
      write: (p) => save(p, contents.loraTensors, { format: 'pth', wrap: 'model' }),
    });
  }
}

// merge_lora: a LoRA checkpoint folder (lit_model.pth.lora + hyperparameters.yaml naming the base) → a full
// lit_model.pth, as litgpt's `merge_lora --checkpoint_dir DIR` writes it (litgpt/scripts/merge_lora.py):
//
//   * next to the .lora in DIR (litgpt), or into --out_dir with DIR's config, tokenizer and prompt style
//     files copied (the mission's `final_merged`: a base folder that loads, generates and trains further);
//   * skipped with litgpt's message when the output exists, unless `force`;
//   * streamed tensor by tensor in native code (native/core/merge.h): peak memory ≈ the largest tensor plus
//     the adapter, not the model; merged in float32 and rounded once to the output dtype;
//   * the base file's names, order and dtypes (or `precision`'s dtype), so a plain litgpt GPT loads it with
//     strict=True; written atomically (temp file, fsync, rename; a new --out_dir appears as a whole);
//   * partial files of an earlier merge that was killed (hidden, named after the output and its dead writer's
//     pid) are removed first; an output that is the base being read is refused, --force or not.
//
// Files of litgpt ≤ 0.5.4 (`attn.attn`, interleaved QKV rows) are merged through the model instead (they are
// re-laid out on load, so the output uses today's `attn.qkv` names).
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { copyFileAtomic, removeStalePartials } from '../io/atomic.js';
import { binding } from '../binding.js';
import { Checkpoint, COPIED_CONFIG_FILES, extendCheckpointDir, LORA_FILE, MODEL_FILE, PROMPT_STYLE_FILE, pyRepr } from '../io/checkpoint.js';
import { fail, LitloraError } from '../errors.js';
import { adapterLoraSettings, type BaseResolution } from '../io/hyperparameters.js';
import { Model, type ModelDtype } from './model.js';
import { nativeGptConfig, type NativeGptConfig } from './native_config.js';
import { writeCheckpointFolder, type FolderFile } from '../io/outdir.js';
import { dtypeBytes, type Dtype } from '../tensor.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';

/** litgpt's --precision values and the weights dtype each means for a merged file. */
export const MERGE_PRECISIONS: Readonly<Record<string, Dtype>> = {
  '32-true': 'float32', 'bf16-true': 'bfloat16', '16-true': 'float16',
  'bf16-mixed': 'float32', '16-mixed': 'float32', '64-true': 'float64',
};

export interface MergeLoraOptions {
  /** The base checkpoint folder, instead of hyperparameters.yaml's checkpoint_dir (litgpt's --pretrained_checkpoint_dir). */
  pretrainedCheckpointDir?: string | null;
  /** Write into this folder (with the config/tokenizer files copied) instead of next to the .lora. */
  outDir?: string | null;
  /** Output weights dtype as a litgpt precision ('32-true', 'bf16-true', '16-true', …); default: the base file's dtypes. */
  precision?: string | null;
  /** Replace an existing output lit_model.pth. */
  force?: boolean;
  /** Where relative paths resolve (litgpt: the working directory). Default process.cwd(). */
  cwd?: string;
}

export interface MergeLoraResult {
  /** True when the output already existed and nothing was written. */
  skipped: boolean;
  /** litgpt's words for what happened. */
  message: string;
  /** The lit_model.pth written (or found). */
  outFile: string;
  base: string | null;
  baseVia: BaseResolution | 'option' | null;
  /** 'stream' (native, tensor by tensor) or 'model' (through Model, for litgpt ≤ 0.5.4 files). */
  method: 'stream' | 'model' | null;
  tensors: number;
  mergedLayers: number;
  bytesWritten: number;
  seconds: number;
}

async function hasLegacyNames(path: string): Promise<boolean> {
  const file = await TensorFile.open(path);
  try {
    return file.names.some((n) => n.includes('.attn.attn.'));
  } finally {
    await file.close();
  }
}

/** Merges the LoRA folder `checkpointDir` into a full lit_model.pth (see the header). */
export async function mergeLora(checkpointDir: string, options: MergeLoraOptions = {}): Promise<MergeLoraResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const dir = extendCheckpointDir(checkpointDir, cwd);
  const checkpoint = await Checkpoint.open(dir);
  if (!checkpoint.files.lora) {
    throw new LitloraError('ERR_CHECKPOINT_MISSING', `checkpoint_dir ${pyRepr(checkpoint.dir)} is missing the files: ['${LORA_FILE}']. ` +
      `merge_lora takes a LoRA finetune folder (out_dir/final or out_dir/step-XXXXXX); ${checkpoint.dir} is a ${checkpoint.kind} checkpoint.`);
  }
  const outDir = options.outDir ? resolve(cwd, options.outDir) : checkpoint.dir;
  const outFile = join(outDir, MODEL_FILE);
  await removeStalePartials(outDir, MODEL_FILE);
  if (outDir !== checkpoint.dir) await removeStalePartials(dirname(outDir), basename(outDir));
  refuseBaseAsOutput(checkpoint, outFile, options, cwd);
  const none = { base: null, baseVia: null, method: null, tensors: 0, mergedLayers: 0, bytesWritten: 0, seconds: 0 } as const;
  if (existsSync(outFile) && !options.force) {
    const message = outDir === checkpoint.dir
      ? 'LoRA weights have already been merged in this checkpoint.'
      : `LoRA weights have already been merged into ${pyRepr(outDir)}.`;
    return { skipped: true, message, outFile, ...none };
  }
  let dtype: Dtype | undefined;
  if (options.precision) {
    dtype = MERGE_PRECISIONS[options.precision];
    if (!dtype) fail('ERR_ARG', `precision: expected one of ${Object.keys(MERGE_PRECISIONS).join(', ')}, got '${options.precision}'`);
  }
  if (!checkpoint.hyperparameters) {
    throw new LitloraError('ERR_CHECKPOINT_MISSING', `checkpoint_dir ${pyRepr(checkpoint.dir)} is missing a \`hyperparameters.yaml\` file, ` +
      'which is needed to know the LoRA settings (lora_r, lora_alpha, lora_* targets) and the base model. ' +
      'It is written by `litlora finetune lora` / `litgpt finetune lora`; `litlora migrate` writes one for older folders.');
  }
  const resolved = checkpoint.resolveBase({ base: options.pretrainedCheckpointDir ?? undefined, cwd });
  const baseFile = join(resolved.path, MODEL_FILE);
  if (!existsSync(baseFile)) {
    throw new LitloraError('ERR_CHECKPOINT_MISSING', `the base checkpoint ${pyRepr(resolved.path)} (from ` +
      `${options.pretrainedCheckpointDir ? '--pretrained_checkpoint_dir' : checkpoint.files.hyperparameters}) has no ${MODEL_FILE}.`);
  }
  const adapterFile = checkpoint.files.lora;
  const lora = adapterLoraSettings(checkpoint.hyperparameters, checkpoint.files.hyperparameters ?? checkpoint.dir, adapterFile);
  const config = nativeGptConfig(checkpoint.config, lora);
  const legacy = (await hasLegacyNames(baseFile)) || (await hasLegacyNames(adapterFile));

  const start = performance.now();
  let stats = { tensors: 0, mergedLayers: 0, bytesWritten: 0, seconds: 0 };
  const writeWeights = async (path: string) => {
    if (!legacy) {
      stats = await binding().mergeLoraFiles(baseFile, adapterFile, path, config, dtype ? { dtype } : {});
      return;
    }
    const model = await Model.load(checkpoint.dir, {
      base: resolved.path, mode: 'runtime', dtype: (dtype ?? undefined) as ModelDtype | undefined,
    });
    try {
      const merged = await model.mergedStateDict();
      const converted = new Map();
      for (const [name, t] of merged) converted.set(name, dtype && t.dtype !== dtype ? await t.to({ dtype }) : t);
      await saveTensors(path, converted, { format: 'pth' });
      stats = {
        tensors: converted.size, mergedLayers: (await model.adapter!.tensors()).size / 2,
        bytesWritten: [...converted.values()].reduce((s, t) => s + t.numel * dtypeBytes(t.dtype), 0), seconds: 0,
      };
    } finally {
      model.dispose();
    }
  };

  if (outDir === checkpoint.dir) {
    await writeWeights(outFile);  // the writer itself is atomic (temp file, fsync, rename)
  } else {
    const copies = [...COPIED_CONFIG_FILES, PROMPT_STYLE_FILE].filter((f) => existsSync(join(checkpoint.dir, f)));
    const files: FolderFile[] = copies.map((f) => ({ name: f, write: (p: string) => copyFileAtomic(join(checkpoint.dir, f), p) }));
    await writeCheckpointFolder(outDir, files, { name: MODEL_FILE, write: writeWeights });
  }
  return {
    skipped: false, message: `Saved merged weights to ${pyRepr(outFile)}`, outFile, base: resolved.path,
    baseVia: options.pretrainedCheckpointDir ? 'option' : resolved.via, method: legacy ? 'model' : 'stream',
    ...stats, seconds: (performance.now() - start) / 1000,
  };
}

/**
 * Writing the merged file over the base file it is made from would destroy the base (with --out_dir the whole
 * base folder is replaced): refused whenever the output is the base file, however it is spelled (file identity).
 */
function refuseBaseAsOutput(checkpoint: Checkpoint, outFile: string, options: MergeLoraOptions, cwd: string): void {
  if (!options.pretrainedCheckpointDir && !checkpoint.hyperparameters) return;  // reported below
  let base: string;
  try {
    base = checkpoint.resolveBase({ base: options.pretrainedCheckpointDir ?? undefined, cwd }).path;
  } catch {
    return;  // no base found: nothing to protect, and the error is reported where the base is needed
  }
  const id = (path: string) => {
    try { const s = statSync(path); return `${s.dev}:${s.ino}`; } catch { return null; }
  };
  const outId = id(outFile), baseId = id(join(base, MODEL_FILE));
  const sameFolder = id(dirname(outFile)) !== null && id(dirname(outFile)) === id(base);
  if ((outId !== null && outId === baseId) || sameFolder) {
    fail('ERR_ARG', `merge_lora would write the merged weights to ${outFile}, which is the base model being merged ` +
      `(${join(base, MODEL_FILE)}); that would overwrite the base. Choose another --out_dir (e.g. ${join(checkpoint.dir, '..', 'final_merged')}).`);
  }
}

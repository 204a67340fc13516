// Model.load for every kind of checkpoint folder litgpt's unified layout has (checkpoint.ts):
//
//   base / full / merged   lit_model.pth is there → load it (a `{"model": …}` wrapper is fine)
//   lora                   only lit_model.pth.lora → find the base through hyperparameters.yaml's
//                          checkpoint_dir (or `{ base }`), load its lit_model.pth, add LoRA layers with the
//                          folder's lora_* settings, load the adapter, and merge it in memory
//                          (`mode: 'merged'`, the default) or keep it as a runtime branch (`mode: 'runtime'`)
//
// litgpt's generate refuses LoRA-only folders (only `litgpt chat` merges, and it writes lit_model.pth to do
// so); here every finetune folder — final/ or any step-XXXXXX/ — loads as it is, and nothing is written.
// `model.source` says which files were used and how the base was found.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Checkpoint, type CheckpointKind } from '../io/checkpoint.js';
import { fail, LitloraError } from '../errors.js';
import { adapterLoraSettings, type BaseResolution } from '../io/hyperparameters.js';
import type { Adapter } from './adapter.js';
import type { ModelDtype, ModelOptions } from './options.js';
import type { Tensor } from '../tensor.js';
import { TensorFile } from '../io/tensorfile.js';

export type LoadMode = 'merged' | 'runtime';

export interface LoadOptions extends ModelOptions {
  /**
   * The base checkpoint folder of a LoRA folder, instead of hyperparameters.yaml's checkpoint_dir (litgpt's
   * `--pretrained_checkpoint_dir`). Relative paths resolve against `cwd`.
   */
  base?: string;
  /**
   * For a LoRA folder: 'merged' (default) folds alpha/r·B·A into the base weights once (forward costs what
   * the base model costs); 'runtime' keeps the adapter as a separate branch (`model.adapter.merge()` later,
   * or train it further). On a merged folder, 'runtime' loads base + adapter instead of lit_model.pth.
   */
  mode?: LoadMode;
  /**
   * How many requests may wait for the model before one more is refused with ERR_QUEUE_FULL (model.maxQueue);
   * default unbounded.
   */
  maxQueue?: number;
  /** Where relative paths (the folder's checkpoint_dir, `base`) resolve, as litgpt's working directory. Default process.cwd(). */
  cwd?: string;
}

export interface ModelSource {
  /** The folder given to Model.load (absolute). */
  dir: string;
  kind: CheckpointKind;
  /** How the weights are held: plain weights from lit_model.pth, or base + adapter merged / at runtime. */
  mode: 'weights' | LoadMode;
  /** The file the base (or full / merged) weights came from. */
  weights: string;
  /** The base checkpoint folder of a LoRA folder, else null. */
  base: string | null;
  /** How the base was found: 'option' ({ base }), or hyperparameters.yaml's checkpoint_dir resolved 'absolute' |
   *  'cwd' | 'checkpoints' (litgpt's checkpoints/<path>) | 'folder' (relative to the LoRA folder). */
  baseVia: BaseResolution | 'option' | null;
  /** The lit_model.pth.lora applied, else null. */
  adapter: string | null;
}

/** The dtype a model gets when the caller does not say: the file's, where the device can hold it. */
function defaultDtype(file: TensorFile, options: ModelOptions): ModelDtype {
  if (options.dtype) return options.dtype;
  const first = file.names.find((n) => !n.includes('lora_'));
  const dtype = first ? file.info(first).dtype : 'float32';
  if (dtype === 'bfloat16') return 'bfloat16';
  if (dtype === 'float16' && options.device && options.device !== 'cpu') return 'float16';
  return 'float32';
}

async function withFile<T>(path: string, fn: (file: TensorFile) => Promise<T>): Promise<T> {
  const file = await TensorFile.open(path);
  try {
    return await fn(file);
  } finally {
    await file.close();
  }
}

/** What loading needs of a model: Model fits it (model.ts passes its class, so this module never imports it). */
export interface LoadableModel {
  source: ModelSource | null;
  readonly adapter: Adapter | null;
  dispose(): void;
}
export interface ModelFactory<M extends LoadableModel> {
  fromStateDict(config: Record<string, unknown>, entries: Iterable<[string, Tensor]>, options?: ModelOptions): Promise<M>;
}

async function loadWeights<M extends LoadableModel>(ModelClass: ModelFactory<M>, path: string, config: Record<string, unknown>, options: ModelOptions): Promise<M> {
  return withFile(path, async (file) => {
    const entries = await file.getAll(); // memory-mapped on the CPU; the model copies what it keeps
    try {
      return await ModelClass.fromStateDict(config, entries, { ...options, dtype: defaultDtype(file, options) });
    } catch (e) {
      if (e instanceof Error && 'code' in e) e.message = `${path}: ${e.message}`;
      throw e;
    } finally {
      for (const [, t] of entries) t.dispose();
    }
  });
}

/** The implementation of `Model.load(dir, options)` (the class comes as an argument: model.ts imports this module). */
export async function loadModel<M extends LoadableModel>(ModelClass: ModelFactory<M>, dir: string, options: LoadOptions = {}): Promise<M> {
  if (typeof dir !== 'string' || !dir) fail('ERR_ARG', `Model.load: expected a checkpoint folder path, got ${String(dir)}`);
  const mode = options.mode ?? 'merged';
  if (mode !== 'merged' && mode !== 'runtime') fail('ERR_ARG', `mode: expected 'merged' or 'runtime', got '${String(mode)}'`);
  const cwd = resolve(options.cwd ?? process.cwd());
  const folder = resolve(cwd, dir);
  if (!existsSync(join(folder, 'lit_model.pth')) && !existsSync(join(folder, 'lit_model.pth.lora'))) {
    fail('ERR_CHECKPOINT_MISSING', `${folder} has no lit_model.pth or lit_model.pth.lora${existsSync(folder) ? '' : ' (the folder does not exist)'}. ` +
      'Model.load takes a litgpt checkpoint folder: a base model (lit_model.pth + model_config.yaml, e.g. from ' +
      '`litlora init` or `litgpt download`) or a finetune folder (out_dir/final, out_dir/step-XXXXXX).');
  }
  const checkpoint = await Checkpoint.open(folder, { ignoreTokenizerFiles: true });
  const { base: _base, mode: _mode, cwd: _cwd, ...modelOptions } = options;
  const config = checkpoint.config as unknown as Record<string, unknown>;

  const useAdapter = checkpoint.kind === 'lora' || (checkpoint.kind === 'merged' && options.mode === 'runtime');
  if (!useAdapter) {
    const model = await loadWeights(ModelClass, checkpoint.files.model!, config, modelOptions);
    model.source = {
      dir: checkpoint.dir, kind: checkpoint.kind, mode: 'weights', weights: checkpoint.files.model!,
      base: null, baseVia: null, adapter: null,
    };
    return model;
  }

  if (options.lora) {
    fail('ERR_ARG', `${checkpoint.dir} is a LoRA checkpoint: its LoRA settings come from its hyperparameters.yaml; drop the lora option.`);
  }
  const resolved = checkpoint.resolveBase({ base: options.base, cwd });
  const baseDir = resolved.path;
  let baseCheckpoint: Checkpoint;
  try {
    baseCheckpoint = await Checkpoint.open(baseDir, { ignoreTokenizerFiles: true });
  } catch (e) {
    throw new LitloraError((e as LitloraError).code ?? 'ERR_CHECKPOINT_MISSING',
      `the base checkpoint of ${checkpoint.dir} (${baseDir}, found ${options.base ? 'from the base option' : `through ${checkpoint.files.hyperparameters}`}) ` +
      `cannot be loaded: ${(e as Error).message}`);
  }
  if (!baseCheckpoint.files.model) {
    fail('ERR_CHECKPOINT_MISSING', `the base checkpoint ${baseDir} of ${checkpoint.dir} has no lit_model.pth (it is a ${baseCheckpoint.kind} folder); ` +
      'point checkpoint_dir in hyperparameters.yaml (or the base option) at the model the adapter was trained on.');
  }
  const lora = adapterLoraSettings(checkpoint.hyperparameters ?? {}, checkpoint.files.hyperparameters ?? checkpoint.dir, checkpoint.files.lora!);
  const model = await loadWeights(ModelClass, baseCheckpoint.files.model, config, { ...modelOptions, lora });
  try {
    const adapterPath = checkpoint.files.lora!;
    await withFile(adapterPath, async (file) => {
      const entries = await file.getAll(); // memory-mapped on the CPU; the model copies what it keeps
      try {
        await model.adapter!.loadTensors(entries);
      } catch (e) {
        const err = e as LitloraError;
        throw new LitloraError(err.code ?? 'ERR_CHECKPOINT_FORMAT',
          `${adapterPath} does not fit the LoRA settings of ${checkpoint.files.hyperparameters ?? 'its folder'} on the base ${baseDir}: ${err.message}`);
      } finally {
        for (const [, t] of entries) t.dispose();
      }
    });
    if (mode === 'merged') await model.adapter!.merge();
    model.source = {
      dir: checkpoint.dir, kind: checkpoint.kind, mode, weights: baseCheckpoint.files.model, base: baseDir,
      baseVia: options.base ? 'option' : resolved.via, adapter: adapterPath,
    };
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

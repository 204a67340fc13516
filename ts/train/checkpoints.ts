// A run's folders: litgpt's save_lora_checkpoint — step-%06d/ every train.save_interval optimizer steps (with
// training_state.pth for resume, ./training_state.ts), final/ after training, and final/lit_model.pth, the
// merged model — written through OutDir (../io/outdir.ts: each folder assembled aside and put in place whole).
// Each folder gets litgpt's file set: lit_model.pth.lora, model_config.yaml, hyperparameters.yaml,
// prompt_style.yaml and the base's tokenizer files. Resuming reads a step folder back into the model.
import { loraToKeys } from '../model/lora_settings.js';
import { join } from 'node:path';
import { LORA_FILE, MODEL_FILE } from '../io/checkpoint.js';
import type { Hyperparameters, PromptStyleRef } from '../io/hyperparameters.js';
import type { OutDir } from '../io/outdir.js';
import { saveTensors } from '../io/tensorfile.js';
import { normalizeConfig, readConfig, type Config } from '../model/config.js';
import type { Tensor } from '../tensor.js';
import type { ResolvedOptions, TrainableModel, TrainerOptions } from './options.js';
import { loadTrainingState, saveTrainingState, type CounterState } from './training_state.js';

/** What every folder of a run holds besides the adapter: the same for all of them. */
export interface FolderContents {
  config: Config;
  hyperparameters: Hyperparameters;
  promptStyle: PromptStyleRef;
  /** The base checkpoint folder whose tokenizer files are copied. */
  tokenizerFrom: string;
}

export class RunCheckpoints {
  /** `say` gets litgpt's line for each folder written ("Saving LoRA weights to …"). */
  constructor(readonly outDir: OutDir, readonly model: TrainableModel, readonly contents: FolderContents,
    readonly say: (line: string) => void = () => {}) {}

  /** step-%06d/ after optimizer step `step`: the adapter and litgpt's files, then training_state.pth. Returns the folder. */
  async saveStep(step: number, nativeState: Map<string, Tensor>, counters: CounterState): Promise<string> {
    const dir = this.outDir.stepDir(step);
    await this.saveLora(dir);
    await saveTrainingState(dir, nativeState, counters);
    return dir;
  }

  /** final/ after training (no training_state.pth: there is nothing to resume). Returns the folder. */
  async saveFinal(): Promise<string> {
    const dir = this.outDir.finalDir;
    await this.saveLora(dir);
    return dir;
  }

  /** save_lora_checkpoint: the adapter as lit_model.pth.lora, with litgpt's other files, into `dir`. */
  async saveLora(dir: string): Promise<void> {
    this.say(`Saving LoRA weights to ${JSON.stringify(join(dir, LORA_FILE))}`);
    await this.outDir.writeLoraCheckpoint(dir, { loraTensors: await this.model.adapter!.tensors(), ...this.contents });
  }

  /** final/lit_model.pth: the merged model (what litgpt's merge_lora would write). Returns its path. */
  async saveMerged(): Promise<string> {
    const path = join(this.outDir.finalDir, MODEL_FILE);
    await saveTensors(path, await this.model.mergedStateDict(), { format: 'pth' });
    this.say(`Saved merged weights to ${JSON.stringify(path)}`);
    return path;
  }
}

/**
 * A step folder back into a run: its adapter into `model` (strict: the folder must be this model's LoRA), and its
 * training_state.pth — the optimizer and RNG state for the native trainer, and the loop's counters.
 */
export async function loadResumeState(dir: string, model: TrainableModel): Promise<{ native: [string, Tensor][]; counters: CounterState }> {
  await model.adapter!.load(join(dir, LORA_FILE));
  return loadTrainingState(dir);
}

/** model_config.yaml of the run's folders: the base's, as litgpt copies it; else the model's own config. */
export async function folderConfig(checkpointDir: string, model: TrainableModel): Promise<Config> {
  try {
    return await readConfig(join(checkpointDir, 'model_config.yaml'));
  } catch {
    const plain = Object.fromEntries(Object.entries(model.config).filter(([k]) => !k.startsWith('lora_')));
    return normalizeConfig(plain);
  }
}

/** hyperparameters.yaml in litgpt's shape (era C `finetune lora` setup() arguments), unless the caller gave its own. */
export function runHyperparameters(options: TrainerOptions, resolved: ResolvedOptions, checkpointDir: string, outDir: string): Record<string, unknown> {
  if (options.hyperparameters) return options.hyperparameters;
  const t = resolved.train, e = resolved.eval, o = resolved.optimizer;
  return {
    checkpoint_dir: checkpointDir,
    out_dir: outDir,
    precision: resolved.precision,
    quantize: null,
    devices: 1,
    num_nodes: 1,
    ...loraToKeys(options.model.lora!),
    data: options.data.toHyperparameters(),
    train: {
      save_interval: t.saveInterval, log_interval: t.logInterval, global_batch_size: t.globalBatchSize,
      micro_batch_size: t.microBatchSize, lr_warmup_steps: t.lrWarmupSteps, lr_warmup_fraction: null, epochs: t.epochs,
      max_tokens: t.maxTokens, max_steps: t.maxSteps, max_seq_length: t.maxSeqLength, tie_embeddings: null,
      max_norm: t.maxNorm, min_lr: 6.0e-5,
    },
    log: {},
    eval: {
      interval: e.interval, max_new_tokens: e.maxNewTokens, max_iters: e.maxIters,
      initial_validation: e.initialValidation, evaluate_example: e.evaluateExample, final_validation: e.finalValidation,
    },
    optimizer: { class_path: 'torch.optim.AdamW', init_args: { lr: o.lr, weight_decay: o.weightDecay, betas: [...o.betas] } },
    logger_name: 'csv',
    seed: resolved.seed,
    access_token: null,
  };
}

// The Trainer's options: litgpt's `finetune lora` arguments (train.*, eval.*, optimizer.*, precision, seed) in
// camelCase with litgpt's era-C defaults, litlora's own (resume, force, merge, output), and their checking: a bad
// value is ERR_ARG (or ERR_DTYPE) naming the option, when the Trainer is made rather than midway through a run.
import type { DataModule } from '../data/data_module.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { fail } from '../errors.js';
import type { OutDirLock } from '../io/outdir_lock.js';
import type { Model } from '../model/model.js';
import { ProcessGroup, resolveDistributed, type DistributedOptions } from './distributed.js';
import type { TrainerEvent } from './events.js';

export type Precision = '32-true' | 'bf16-true' | 'bf16-mixed';

/**
 * What the trainer uses of a Model (ts/model/model.ts): its public API — config, LoRA settings, adapter, dtype,
 * parameter count, merged weights — and the handle its native training step runs on.
 */
export type TrainableModel = Pick<Model, 'config' | 'lora' | 'adapter' | 'dtype' | 'parameterCount' | 'mergedStateDict' | 'handle'>;

export interface TrainArgs {
  /** Optimizer steps between step-%06d/ folders (litgpt 1000). null: none. */
  saveInterval?: number | null;
  /** Iterations between log lines and metrics rows (litgpt 1). */
  logInterval?: number;
  /** Samples per optimizer step (litgpt 16). */
  globalBatchSize?: number;
  /** Samples per forward/backward (litgpt 1). */
  microBatchSize?: number;
  /** Linear warmup steps of the schedule (litgpt 100). */
  lrWarmupSteps?: number;
  /** Passes over the training set (litgpt 5). */
  epochs?: number;
  /** Stop after this many optimizer steps (and size the cosine with it). */
  maxSteps?: number | null;
  /** Stop once this many (non-padding) tokens were trained on. */
  maxTokens?: number | null;
  /** Stop after this many seconds of training. */
  maxTime?: number | null;
  /** Truncate samples to this many tokens (litgpt None: the longest sample). */
  maxSeqLength?: number | null;
  /** Clip the global gradient norm to this (litgpt's LoRA finetune has none). */
  maxNorm?: number | null;
}

export interface EvalArgs {
  /** Optimizer steps between validations (litgpt 100). */
  interval?: number;
  /** Validation batches per validation (litgpt 100). */
  maxIters?: number;
  /** Tokens of the sample generation (litgpt 100); 0 skips it. */
  maxNewTokens?: number;
  /** Validate before training (litgpt C false). */
  initialValidation?: boolean;
  /** Validate on the whole validation set after training (litgpt C true). */
  finalValidation?: boolean;
  /** Sampling temperature of the example generation (litgpt 0.8; 0 = greedy). */
  temperature?: number;
  /**
   * Which instruction the example generation continues (litgpt's eval.evaluate_example): 'first', 'random' (one
   * chosen with the run's seed) or an index (into the validation split, else the training split).
   */
  evaluateExample?: EvaluateExample;
}

export type EvaluateExample = 'first' | 'random' | number;

export interface OptimizerArgs {
  /** litgpt C: AdamW defaults lr 1e-3, weight_decay 0.01, betas (0.9, 0.999). */
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

/** Console output of a run: none (the default), litgpt's plain lines on stdout, a bar on stderr, or 'auto'. */
export type ProgressMode = 'auto' | 'plain' | 'bar' | 'none';

export interface TrainerOptions {
  model: TrainableModel;
  data: DataModule;
  /** The base checkpoint folder: tokenizer files to copy, hyperparameters.yaml's checkpoint_dir, its config. */
  checkpointDir?: string | null;
  /** Default: Tokenizer.fromDir(checkpointDir). */
  tokenizer?: Tokenizer;
  /** Where step-%06d/, final/ and logs/ go; null writes nothing. */
  outDir?: string | null;
  train?: TrainArgs;
  eval?: EvalArgs;
  optimizer?: OptimizerArgs;
  /** Default: '32-true' for float32 models, 'bf16-true' for bfloat16 ones. */
  precision?: Precision;
  /** Seeds dropout and the sample generation (litgpt 1337). The data order follows the data module's seed. */
  seed?: number;
  /** Continue from the newest complete step folder of outDir (one with training_state.pth). */
  resume?: boolean;
  /**
   * Train into an outDir that holds an earlier run's step folders or final/, writing over those of the same
   * name (litgpt's behaviour). Without it such a run is refused with ERR_ARG.
   */
  force?: boolean;
  /**
   * outDir's lock, already taken with `new OutDir(outDir).startRun()` (the CLI takes it before loading the
   * model); the trainer then uses it and leaves releasing it to the caller. Default: fit() takes and releases it.
   */
  outDirLock?: OutDirLock;
  /** Write final/lit_model.pth (the merged model) at the end (litgpt does). */
  merge?: boolean;
  /** hyperparameters.yaml content as the CLI records it; default: built from these options. */
  hyperparameters?: Record<string, unknown>;
  /**
   * Console output. Default 'none': a Trainer used as a library prints nothing (it reports through its events,
   * `on` and `logger`). 'plain': litgpt's lines on stdout; 'bar': a progress bar on stderr with the other lines
   * above it; 'auto': the bar when stderr is a terminal, plain lines otherwise.
   */
  progress?: ProgressMode;
  /** Receives each of litgpt's console lines (without a newline) as the run writes it, whatever `progress` prints. */
  logger?: (line: string) => void;
  /**
   * Data-parallel training over c10d, for processes a caller starts itself (the CLI's --devices and torchrun
   * find theirs in the environment): this process's rank, the world size and where rank 0 hosts the rendezvous,
   * or a ProcessGroup already joined. Each rank reads its shard of the data (Fabric's DistributedSampler with
   * `seed`), train.globalBatchSize stays the samples of one optimizer step over all ranks, gradients are
   * averaged, and rank 0 alone writes outDir and prints.
   */
  distributed?: DistributedOptions | ProcessGroup;
  /** Callbacks, called with each event as fit() yields it. */
  on?: { [K in TrainerEvent['type']]?: (event: Extract<TrainerEvent, { type: K }>) => void };
}

/** The options with every default filled in and every value checked. */
export interface ResolvedOptions {
  train: Required<TrainArgs>;
  eval: Required<EvalArgs>;
  optimizer: Required<OptimizerArgs>;
  precision: Precision;
  seed: number;
}

const TRAIN_DEFAULTS = {
  saveInterval: 1000, logInterval: 1, globalBatchSize: 16, microBatchSize: 1, lrWarmupSteps: 100, epochs: 5,
  maxSteps: null, maxTokens: null, maxTime: null, maxSeqLength: null, maxNorm: null,
} satisfies Required<TrainArgs>;
const EVAL_DEFAULTS = {
  interval: 100, maxIters: 100, maxNewTokens: 100, initialValidation: false, finalValidation: true, temperature: 0.8,
  evaluateExample: 'first' as EvaluateExample,
} satisfies Required<EvalArgs>;
const OPTIMIZER_DEFAULTS = { lr: 1e-3, weightDecay: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8 } satisfies Required<OptimizerArgs>;
const PROGRESS_MODES: readonly string[] = ['auto', 'plain', 'bar', 'none'] satisfies ProgressMode[];

function positiveInt(v: unknown, name: string, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    fail('ERR_ARG', `${name}: expected an integer ≥ ${allowZero ? 0 : 1}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optionalPositive(v: unknown, name: string, integer: boolean): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    fail('ERR_ARG', `${name}: expected ${integer ? 'an integer' : 'a number'} > 0 or null, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkKeys(obj: object | undefined, allowed: object, where: string): void {
  for (const k of Object.keys(obj ?? {})) {
    if (!(k in allowed)) fail('ERR_ARG', `${where}.${k}: unknown option; expected one of ${Object.keys(allowed).join(', ')}`);
  }
}

function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Fills in the defaults and checks every option (new Trainer(options) calls it). */
export function resolveOptions(options: TrainerOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') fail('ERR_ARG', 'new Trainer(options): expected an options object');
  if (!options.model || typeof options.model.mergedStateDict !== 'function') {
    fail('ERR_ARG', 'model: expected a Model with LoRA layers (Model.load(dir, { lora }) or Model.fromConfig)');
  }
  if (!options.data || typeof options.data.trainBatches !== 'function') fail('ERR_ARG', 'data: expected a DataModule (createDataModule(...))');
  checkKeys(options.train, TRAIN_DEFAULTS, 'train');
  checkKeys(options.eval, EVAL_DEFAULTS, 'eval');
  checkKeys(options.optimizer, OPTIMIZER_DEFAULTS, 'optimizer');
  const t = { ...TRAIN_DEFAULTS, ...stripUndefined(options.train) };
  positiveInt(t.globalBatchSize, 'train.globalBatchSize');
  positiveInt(t.microBatchSize, 'train.microBatchSize');
  const worldSize = options.distributed instanceof ProcessGroup ? options.distributed.worldSize
    : options.distributed ? resolveDistributed(options.distributed).worldSize : 1;
  if (t.globalBatchSize % (t.microBatchSize * worldSize) !== 0) {
    fail('ERR_ARG', worldSize === 1
      ? `train.globalBatchSize (${t.globalBatchSize}) must be a multiple of train.microBatchSize (${t.microBatchSize})`
      : `train.globalBatchSize (${t.globalBatchSize}) must be a multiple of train.microBatchSize × world size ` +
        `(${t.microBatchSize} × ${worldSize}): every rank runs globalBatchSize / world size samples per optimizer step`);
  }
  positiveInt(t.lrWarmupSteps, 'train.lrWarmupSteps', true);
  positiveInt(t.epochs, 'train.epochs');
  positiveInt(t.logInterval, 'train.logInterval');
  optionalPositive(t.saveInterval, 'train.saveInterval', true);
  optionalPositive(t.maxSteps, 'train.maxSteps', true);
  optionalPositive(t.maxTokens, 'train.maxTokens', true);
  optionalPositive(t.maxTime, 'train.maxTime', false);
  optionalPositive(t.maxSeqLength, 'train.maxSeqLength', true);
  optionalPositive(t.maxNorm, 'train.maxNorm', false);
  const e = { ...EVAL_DEFAULTS, ...stripUndefined(options.eval) };
  positiveInt(e.interval, 'eval.interval');
  positiveInt(e.maxIters, 'eval.maxIters');
  positiveInt(e.maxNewTokens, 'eval.maxNewTokens', true);
  if (!(e.temperature >= 0)) fail('ERR_ARG', `eval.temperature: expected a number ≥ 0, got ${e.temperature}`);
  if (e.evaluateExample !== 'first' && e.evaluateExample !== 'random' && !(Number.isInteger(e.evaluateExample) && (e.evaluateExample as number) >= 0)) {
    fail('ERR_ARG', `eval.evaluateExample: expected 'first', 'random' or an index ≥ 0, got ${JSON.stringify(e.evaluateExample)}`);
  }
  const o = { ...OPTIMIZER_DEFAULTS, ...stripUndefined(options.optimizer) };
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) fail('ERR_ARG', `optimizer.lr: expected a number ≥ 0, got ${o.lr}`);
  if (!(o.weightDecay >= 0)) fail('ERR_ARG', `optimizer.weightDecay: expected a number ≥ 0, got ${o.weightDecay}`);
  if (!Array.isArray(o.betas) || o.betas.length !== 2 || !o.betas.every((b) => b >= 0 && b < 1)) {
    fail('ERR_ARG', `optimizer.betas: expected two numbers in [0, 1), got ${JSON.stringify(o.betas)}`);
  }
  if (!options.model.adapter) fail('ERR_ARG', 'model: it has no LoRA layers; create it with a lora option (r > 0 and at least one target)');
  const dtype = options.model.dtype;
  const precision = options.precision ?? (dtype === 'bfloat16' ? 'bf16-true' : '32-true');
  if (!['32-true', 'bf16-true', 'bf16-mixed'].includes(precision)) {
    fail('ERR_ARG', `precision: expected '32-true', 'bf16-true' or 'bf16-mixed', got '${precision}'`);
  }
  const want = { '32-true': 'float32', 'bf16-true': 'bfloat16' }[precision as '32-true' | 'bf16-true'];
  if (want && dtype !== want) {
    fail('ERR_DTYPE', `precision ${precision}: expected a ${want} model, got ${dtype}; load the model with dtype '${want}' or pick another precision`);
  }
  if (precision === 'bf16-mixed' && !['float32', 'bfloat16'].includes(dtype)) {
    fail('ERR_DTYPE', `precision bf16-mixed: expected a float32 (litgpt) or bfloat16 (less memory) model, got ${dtype}`);
  }
  const seed = options.seed ?? 1337;
  positiveInt(seed, 'seed', true);
  if (options.outDir && !options.checkpointDir) {
    fail('ERR_ARG', 'checkpointDir: needed with outDir (its tokenizer files are copied and hyperparameters.yaml names it)');
  }
  if (!options.tokenizer && !options.checkpointDir) fail('ERR_ARG', 'tokenizer or checkpointDir: one is needed to tokenize the data');
  if (options.progress !== undefined && !PROGRESS_MODES.includes(options.progress)) {
    fail('ERR_ARG', `progress: expected 'auto', 'plain', 'bar' or 'none', got ${typeof options.progress === 'function' ? 'a function' : JSON.stringify(options.progress)}; ` +
      'pass a function that takes each line as logger');
  }
  if (options.logger !== undefined && typeof options.logger !== 'function') {
    fail('ERR_ARG', `logger: expected a function that takes each log line, got ${typeof options.logger}`);
  }
  return { train: t, eval: e, optimizer: o, precision, seed };
}

// Trainer: litgpt's `finetune lora` loop (litgpt/finetune/lora.py fit(), era C) from Node.
//
//   const trainer = new Trainer({ model, data, checkpointDir, outDir, train: { microBatchSize: 4 } });
//   for await (const event of trainer.fit()) if (event.type === 'step') console.log(event.loss);
//
// Each micro-batch is one native call (forward, chunked cross-entropy, backward of loss / accumulation, and
// the AdamW step + zero_grad when the accumulation window completes), so the event loop stays free between
// them. TS keeps what litgpt keeps in Python: the data order (CycleIterator over a seeded DataLoader), the
// warmup + cosine schedule, the running loss, validation every eval.interval optimizer steps with one sample
// generation, metrics.csv, the console lines, and the folders: step-%06d/ every train.save_interval steps,
// final/ at the end, final/lit_model.pth merged (merge: false skips it).
//
// A run holds out_dir's lock while it runs (OutDir.startRun: a second run into it is ERR_BUSY), and does not
// write over an earlier run's checkpoints unless `force`.
//
// Beyond litgpt: resume (each step folder keeps training_state.pth, see ./train_files.ts), max_tokens /
// max_time stops, optional gradient clipping, and a NaN/Inf loss stops the run with ERR_NONFINITE without
// writing any checkpoint after the last good one.
import { join, resolve } from 'node:path';
import { binding, type NativeTensor, type NativeTrainer, type TrainModelHandle } from '../binding.js';
import type { DataModule } from '../data/module.js';
import type { Batch } from '../data/sft.js';
import { Tokenizer } from '../data/tokenizer.js';
import { fail, LitloraError } from '../errors.js';
import { int, MetricsCsv } from './metrics_csv.js';
import { chooseProgress, iterationLine, type ProgressSink } from './progress.js';
import { learningRate } from './schedule.js';
import { Tensor } from '../tensor.js';
import { LORA_FILE, MODEL_FILE } from '../io/checkpoint.js';
import { normalizeConfig, readConfig, type Config } from '../model/config.js';
import type { Hyperparameters } from '../io/hyperparameters.js';
import { OutDir } from '../io/outdir.js';
import type { OutDirLock } from '../io/outdir_lock.js';
import {
  latestResumableStep, loadTrainingState, saveTrainingState, type CounterState,
} from './training_state.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';
import { sampleText } from './sample.js';

export type Precision = '32-true' | 'bf16-true' | 'bf16-mixed';

/** A Model (ts/model/model.ts) with LoRA layers. */
export interface TrainableModel {
  /** litgpt's model config fields (model_config.yaml). */
  readonly config: Readonly<Record<string, unknown>>;
  /** The LoRA settings (litgpt's lora_* fields without the prefix). */
  readonly lora: Readonly<{ r: number; alpha: number; dropout: number; query: boolean; key: boolean; value: boolean;
    projection: boolean; mlp: boolean; head: boolean }> | null;
  /** @internal */
  readonly handle: TrainModelHandle;
}

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
}

export interface OptimizerArgs {
  /** litgpt C: AdamW defaults lr 1e-3, weight_decay 0.01, betas (0.9, 0.999). */
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

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
  /** Console output: 'auto' (bar on a terminal, lines otherwise), 'plain', 'bar', 'none'; or a line writer. */
  progress?: 'auto' | 'plain' | 'bar' | 'none' | ((text: string) => void);
  /** Callbacks, called with each event as fit() yields it. */
  on?: { [K in TrainerEvent['type']]?: (event: Extract<TrainerEvent, { type: K }>) => void };
}

export interface StepEvent {
  type: 'step';
  /** Optimizer steps taken (litgpt step_count). */
  step: number;
  /** Micro-batches processed (litgpt iter_num). */
  iter: number;
  /** 0-based epoch of the last micro-batch. */
  epoch: number;
  /** Mean loss of the accumulation window (litgpt's running mean). */
  loss: number;
  /** Loss of each micro-batch of this window. */
  microLosses: number[];
  /** Learning rate this step used. */
  lr: number;
  gradNorm: number;
  /** Non-padding tokens trained on so far. */
  totalTokens: number;
  tokensPerSecond: number;
  stepTimeMs: number;
  maxSteps: number;
}

export interface EvalEvent {
  type: 'eval';
  step: number;
  iter: number;
  valLoss: number;
  valPpl: number;
  /** The generated continuation of the first validation instruction (null when disabled). */
  sample: string | null;
  timeMs: number;
  final: boolean;
}

export interface SaveEvent {
  type: 'save';
  step: number;
  /** 'step': a step-%06d/ folder; 'final': final/ LoRA files; 'merged': final/lit_model.pth. */
  kind: 'step' | 'final' | 'merged';
  path: string;
}

export interface DoneEvent {
  type: 'done';
  steps: number;
  iters: number;
  epochs: number;
  totalTokens: number;
  timeS: number;
  /** Why training stopped. */
  reason: 'max_steps' | 'epochs' | 'max_tokens' | 'max_time';
  finalValLoss: number | null;
  /** Folder the run resumed from, if any. */
  resumedFrom: string | null;
}

export type TrainerEvent = StepEvent | EvalEvent | SaveEvent | DoneEvent;

const TRAIN_DEFAULTS = {
  saveInterval: 1000, logInterval: 1, globalBatchSize: 16, microBatchSize: 1, lrWarmupSteps: 100, epochs: 5,
  maxSteps: null, maxTokens: null, maxTime: null, maxSeqLength: null, maxNorm: null,
} satisfies Required<TrainArgs>;
const EVAL_DEFAULTS = {
  interval: 100, maxIters: 100, maxNewTokens: 100, initialValidation: false, finalValidation: true, temperature: 0.8,
} satisfies Required<EvalArgs>;
const OPTIMIZER_DEFAULTS = { lr: 1e-3, weightDecay: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8 } satisfies Required<OptimizerArgs>;

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

/** A window of the last k values (torchmetrics RunningMean). */
class RunningMean {
  values: number[] = [];
  constructor(readonly window: number) {}
  push(v: number): void {
    this.values.push(v);
    if (this.values.length > this.window) this.values.shift();
  }
  get mean(): number { return this.values.reduce((a, b) => a + b, 0) / Math.max(1, this.values.length); }
}

export class Trainer {
  readonly options: Readonly<TrainerOptions>;
  readonly train: Readonly<Required<TrainArgs>>;
  readonly eval: Readonly<Required<EvalArgs>>;
  readonly optimizer: Readonly<Required<OptimizerArgs>>;
  readonly precision: Precision;
  readonly seed: number;
  #running = false;

  constructor(options: TrainerOptions) {
    if (!options || typeof options !== 'object') fail('ERR_ARG', 'new Trainer(options): expected an options object');
    if (!options.model?.handle) fail('ERR_ARG', 'model: expected a Model with LoRA layers (Model.load(dir, { lora }) or Model.fromConfig)');
    if (!options.data || typeof options.data.trainBatches !== 'function') fail('ERR_ARG', 'data: expected a DataModule (createDataModule(...))');
    checkKeys(options.train, TRAIN_DEFAULTS, 'train');
    checkKeys(options.eval, EVAL_DEFAULTS, 'eval');
    checkKeys(options.optimizer, OPTIMIZER_DEFAULTS, 'optimizer');
    const t = { ...TRAIN_DEFAULTS, ...stripUndefined(options.train) };
    positiveInt(t.globalBatchSize, 'train.globalBatchSize');
    positiveInt(t.microBatchSize, 'train.microBatchSize');
    if (t.globalBatchSize % t.microBatchSize !== 0) {
      fail('ERR_ARG', `train.globalBatchSize (${t.globalBatchSize}) must be a multiple of train.microBatchSize (${t.microBatchSize})`);
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
    const o = { ...OPTIMIZER_DEFAULTS, ...stripUndefined(options.optimizer) };
    if (!(o.lr >= 0) || !Number.isFinite(o.lr)) fail('ERR_ARG', `optimizer.lr: expected a number ≥ 0, got ${o.lr}`);
    if (!(o.weightDecay >= 0)) fail('ERR_ARG', `optimizer.weightDecay: expected a number ≥ 0, got ${o.weightDecay}`);
    if (!Array.isArray(o.betas) || o.betas.length !== 2 || !o.betas.every((b) => b >= 0 && b < 1)) {
      fail('ERR_ARG', `optimizer.betas: expected two numbers in [0, 1), got ${JSON.stringify(o.betas)}`);
    }
    const info = options.model.handle.info();
    if (!info.hasLora) fail('ERR_ARG', 'model: it has no LoRA layers; create it with a lora option (r > 0 and at least one target)');
    const precision = options.precision ?? (info.dtype === 'bfloat16' ? 'bf16-true' : '32-true');
    if (!['32-true', 'bf16-true', 'bf16-mixed'].includes(precision)) {
      fail('ERR_ARG', `precision: expected '32-true', 'bf16-true' or 'bf16-mixed', got '${precision}'`);
    }
    const want = { '32-true': 'float32', 'bf16-true': 'bfloat16' }[precision as '32-true' | 'bf16-true'];
    if (want && info.dtype !== want) {
      fail('ERR_DTYPE', `precision ${precision}: expected a ${want} model, got ${info.dtype}; load the model with dtype '${want}' or pick another precision`);
    }
    if (precision === 'bf16-mixed' && !['float32', 'bfloat16'].includes(info.dtype)) {
      fail('ERR_DTYPE', `precision bf16-mixed: expected a float32 (litgpt) or bfloat16 (less memory) model, got ${info.dtype}`);
    }
    const seed = options.seed ?? 1337;
    positiveInt(seed, 'seed', true);
    if (options.outDir && !options.checkpointDir) {
      fail('ERR_ARG', 'checkpointDir: needed with outDir (its tokenizer files are copied and hyperparameters.yaml names it)');
    }
    if (!options.tokenizer && !options.checkpointDir) fail('ERR_ARG', 'tokenizer or checkpointDir: one is needed to tokenize the data');
    this.options = options;
    this.train = t;
    this.eval = e;
    this.optimizer = o;
    this.precision = precision;
    this.seed = seed;
  }

  /** Runs fit() to the end and returns its done event. */
  async run(): Promise<DoneEvent> {
    let done: DoneEvent | null = null;
    for await (const ev of this.fit()) if (ev.type === 'done') done = ev;
    return done!;
  }

  /** Trains; yields step, eval, save and done events. Breaking out of the loop stops training at once. */
  async *fit(): AsyncGenerator<TrainerEvent, void, undefined> {
    if (this.#running) fail('ERR_BUSY', 'fit(): this trainer is already running');
    this.#running = true;
    const progressOption = this.options.progress ?? 'auto';
    const progress: ProgressSink = typeof progressOption === 'function' ? chooseProgress('plain', progressOption) : chooseProgress(progressOption);
    let nativeTrainer: NativeTrainer | null = null;
    let ownLock: OutDirLock | null = null;
    try {
      const emit = <E extends TrainerEvent>(ev: E): E => {
        (this.options.on?.[ev.type] as ((e: E) => void) | undefined)?.(ev);
        return ev;
      };
      const { model, data } = this.options;
      const t = this.train, e = this.eval, o = this.optimizer;
      const outDir = this.options.outDir ? resolve(this.options.outDir) : null;
      const checkpointDir = this.options.checkpointDir ? resolve(this.options.checkpointDir) : null;

      // The out_dir is this run's before anything is read or written.
      const given = this.options.outDirLock;
      if (given && (!outDir || given.root !== outDir || !given.held)) {
        fail('ERR_ARG', `outDirLock: expected the held lock of outDir ${outDir} (new OutDir(outDir).startRun()), got ` +
          `${given.held ? 'the lock of' : 'a released lock of'} ${given.root}`);
      }
      if (outDir && !given) {
        ownLock = await new OutDir(outDir).startRun({ resume: this.options.resume, force: this.options.force, log: (line) => progress.line(line) });
      }

      // Data first: bad data is ERR_DATA before anything trains.
      const tokenizer = this.options.tokenizer ?? Tokenizer.fromDir(checkpointDir!);
      await data.setup(tokenizer, t.maxSeqLength ? { maxSeqLength: t.maxSeqLength } : {});
      const blockSize = Number(model.config.block_size ?? Infinity);
      if (data.longestSeqLength > blockSize) {
        fail('ERR_DATA', `the longest sample has ${data.longestSeqLength} tokens, more than the model's block_size ${blockSize}; ` +
          `set train.maxSeqLength (--train.max_seq_length) to at most ${blockSize} to truncate samples`);
      }
      const gradAccum = t.globalBatchSize / t.microBatchSize;
      const batchesPerEpoch = data.trainBatchCount(t.microBatchSize);
      const stepsPerEpoch = Math.floor(batchesPerEpoch / gradAccum);
      if (stepsPerEpoch === 0) {
        fail('ERR_DATA', `the training split has ${data.trainSize} samples, fewer than one optimizer step of train.globalBatchSize ${t.globalBatchSize}; ` +
          'add data or lower the global batch size');
      }
      const maxSteps = t.maxSteps ?? Infinity;
      const lrMaxSteps = Math.min(t.epochs * stepsPerEpoch, maxSteps);
      const schedule = { baseLr: o.lr, warmupSteps: t.lrWarmupSteps, maxSteps: lrMaxSteps };

      const info = model.handle.info();
      progress.line(`Number of trainable parameters: ${info.loraParameterCount.toLocaleString('en-US')}`);
      progress.line(`Number of non-trainable parameters: ${(info.parameterCount - info.loraParameterCount).toLocaleString('en-US')}`);

      const trainers = binding().NativeTrainer;
      trainers.manualSeed(this.seed);
      nativeTrainer = trainers.create(model.handle, {
        precision: this.precision, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay,
      });
      const nt = nativeTrainer;

      // Resume.
      const state: CounterState = { iterNum: 0, stepCount: 0, epoch: 0, epochBatches: 0, totalTokens: 0, runningLosses: [] };
      let resumedFrom: string | null = null;
      if (this.options.resume) {
        if (!outDir) fail('ERR_ARG', 'resume: needs outDir (the run folder to continue)');
        const latest = await latestResumableStep(outDir);
        if (latest) {
          const lora = await TensorFile.open(join(latest.dir, LORA_FILE));
          try {
            const entries: [string, NativeTensor][] = [];
            for (const name of lora.names) entries.push([name, (await lora.get(name)).handle]);
            await model.handle.loadStateDict(entries, 'adapter');
          } finally {
            await lora.close();
          }
          const saved = await loadTrainingState(latest.dir);
          await nt.loadState(saved.native.map(([n, t]) => [n, t.handle]));
          Object.assign(state, saved.counters);
          resumedFrom = latest.dir;
          progress.line(`Resuming from ${latest.dir} (step ${state.stepCount}, iter ${state.iterNum})`);
        } else {
          progress.line(`No resumable step folder in ${outDir}; starting from scratch`);
        }
      }

      const metrics = outDir ? new MetricsCsv(await new OutDir(outDir).nextLogDir('csv')) : null;
      const running = new RunningMean(gradAccum);
      running.values = state.runningLosses.slice(-gradAccum);
      let valLoss: number | null = null;
      const trainStart = performance.now();
      let windowLosses: number[] = [];
      let windowStart = performance.now();
      let windowTokens = 0;

      const validate = async (maxIters: number, final: boolean): Promise<EvalEvent> => {
        const t0 = performance.now();
        let sum = 0, n = 0;
        for (const batch of data.valBatches(t.microBatchSize)) {
          if (n >= maxIters) break;
          const { tokens, targets, shape } = shifted(batch);
          const r = await nt.evaluate(tokens, targets, shape);
          sum += r.loss;
          n++;
        }
        const loss = n ? sum / n : NaN;
        let sample: string | null = null;
        const first = data.firstValInstruction;
        if (e.maxNewTokens > 0 && first) {
          const prompt = data.promptStyle.apply(first.instruction, first.input ? { input: first.input } : {});
          sample = await sampleText(nt, tokenizer, prompt, {
            maxNewTokens: e.maxNewTokens, temperature: e.temperature, seed: this.seed + state.stepCount,
            blockSize: Number(model.config.block_size ?? 4096),
          });
        }
        return { type: 'eval', step: state.stepCount, iter: state.iterNum, valLoss: loss, valPpl: Math.exp(loss), sample, timeMs: performance.now() - t0, final };
      };

      const logEval = (ev: EvalEvent) => {
        metrics?.log({ val_loss: ev.valLoss, val_ppl: ev.valPpl }, ev.iter);
        if (ev.final) progress.line(`Final evaluation | val loss: ${ev.valLoss.toFixed(3)} | val ppl: ${ev.valPpl.toFixed(3)}`);
        else progress.line(`iter ${ev.iter}: val loss ${ev.valLoss.toFixed(4)}, val time: ${ev.timeMs.toFixed(2)} ms`);
        if (ev.sample !== null) progress.line(ev.sample);
      };

      if (e.initialValidation && !resumedFrom) {
        const ev = await validate(e.maxIters, false);
        valLoss = ev.valLoss;
        logEval(ev);
        yield emit(ev);
      }

      const saveFolder = async (dir: string, withState: boolean) => {
        const loraTensors = new Map((await model.handle.stateDict('lora')).map(([n, h]) => [n, new Tensor(h)] as [string, Tensor]));
        const contents = {
          loraTensors,
          config: await this.#baseConfig(checkpointDir!),
          hyperparameters: this.#hyperparameters(checkpointDir!, outDir!) as Hyperparameters,
          promptStyle: { class_path: data.promptStyle.classPath },
          tokenizerFrom: checkpointDir!,
        };
        await new OutDir(outDir!).writeLoraCheckpoint(dir, contents);
        if (withState) {
          const nativeState = new Map((await nt.state()).map(([n, h]) => [n, new Tensor(h)] as [string, Tensor]));
          await saveTrainingState(dir, nativeState, { ...state, runningLosses: [...running.values] });
        }
        metrics?.flush();
      };

      // The loop: litgpt's CycleIterator over the epoch's batches.
      let reason: DoneEvent['reason'] = 'max_steps';
      let epochIter: Iterator<Batch> = skip(data.trainBatches(state.epoch, t.microBatchSize)[Symbol.iterator](), state.epochBatches);
      while (state.stepCount < maxSteps) {
        let next = epochIter.next();
        if (next.done) {
          state.epoch++;
          state.epochBatches = 0;
          if (state.epoch >= t.epochs) { reason = 'epochs'; break; }
          epochIter = data.trainBatches(state.epoch, t.microBatchSize)[Symbol.iterator]();
          next = epochIter.next();
          if (next.done) { reason = 'epochs'; break; }
        }
        const batch = next.value;
        state.epochBatches++;
        state.iterNum++;
        const iterStart = performance.now();
        const isAccumulating = state.iterNum % gradAccum !== 0;
        const lr = learningRate(state.stepCount, schedule);
        const { tokens, targets, shape } = shifted(batch);
        let r;
        try {
          r = await nt.microStep(tokens, targets, shape, { accumulate: gradAccum, step: !isAccumulating, lr, maxNorm: t.maxNorm ?? 0 });
        } catch (err) {
          if (err instanceof Error && (err as LitloraError).code === 'ERR_NONFINITE') {
            metrics?.flush();
            throw new LitloraError('ERR_NONFINITE', `iter ${state.iterNum} (optimizer step ${state.stepCount + 1}, epoch ${state.epoch + 1}): ${err.message} ` +
              `Training stopped; the checkpoints already written are untouched.`);
          }
          throw err;
        }
        running.push(r.loss);
        windowLosses.push(r.loss);
        state.totalTokens += batch.tokenCount;
        windowTokens += batch.tokenCount;
        if (r.stepped) state.stepCount++;
        const iterTime = (performance.now() - iterStart) / 1000;
        if (state.iterNum % t.logInterval === 0) {
          const lastLr = r.stepped ? learningRate(state.stepCount, schedule) : lr; // scheduler.get_last_lr()
          metrics?.log({
            loss: running.mean, iter: int(state.iterNum), step: int(state.stepCount), epoch: int(state.epoch), iter_time: iterTime,
            tokens: int(state.totalTokens), total_tokens: int(state.totalTokens), learning_rate: lastLr,
          }, state.iterNum);
          const elapsed = (performance.now() - trainStart) / 1000;
          progress.iteration(iterationLine({
            epoch: state.epoch, iter: state.iterNum, step: state.stepCount, loss: running.mean, val: valLoss, iterTimeMs: iterTime * 1000, stepped: r.stepped,
          }), { step: state.stepCount, maxSteps: Number.isFinite(lrMaxSteps) ? lrMaxSteps : state.stepCount, loss: running.mean, tokensPerSecond: state.totalTokens / Math.max(elapsed, 1e-9) });
        }
        if (!r.stepped) continue;

        const stepTimeMs = performance.now() - windowStart;
        yield emit<StepEvent>({
          type: 'step', step: state.stepCount, iter: state.iterNum, epoch: state.epoch, loss: running.mean, microLosses: windowLosses, lr,
          gradNorm: r.gradNorm, totalTokens: state.totalTokens, tokensPerSecond: windowTokens / (stepTimeMs / 1000), stepTimeMs,
          maxSteps: lrMaxSteps,
        });
        windowLosses = [];
        windowTokens = 0;

        if (state.stepCount % e.interval === 0) {
          const ev = await validate(e.maxIters, false);
          valLoss = ev.valLoss;
          logEval(ev);
          yield emit(ev);
        }
        if (outDir && t.saveInterval && state.stepCount % t.saveInterval === 0) {
          const dir = join(outDir, `step-${String(state.stepCount).padStart(6, '0')}`);
          progress.line(`Saving LoRA weights to ${JSON.stringify(join(dir, LORA_FILE))}`);
          await saveFolder(dir, true);
          yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'step', path: dir });
        }
        windowStart = performance.now();
        if (t.maxTokens !== null && state.totalTokens >= t.maxTokens) { reason = 'max_tokens'; break; }
        if (t.maxTime !== null && (performance.now() - trainStart) / 1000 >= t.maxTime) { reason = 'max_time'; break; }
      }
      const timeS = (performance.now() - trainStart) / 1000;
      progress.stop();
      progress.line(`Training time: ${timeS.toFixed(2)}s`);

      let finalValLoss: number | null = null;
      if (e.finalValidation) {
        const ev = await validate(Infinity, true);
        finalValLoss = ev.valLoss;
        logEval(ev);
        yield emit(ev);
      }
      if (outDir) {
        const finalDir = join(outDir, 'final');
        progress.line(`Saving LoRA weights to ${JSON.stringify(join(finalDir, LORA_FILE))}`);
        await saveFolder(finalDir, false);
        yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'final', path: finalDir });
        if (this.options.merge ?? true) {
          const path = join(finalDir, MODEL_FILE);
          const merged = new Map((await model.handle.stateDict('merged')).map(([n, h]) => [n, new Tensor(h)] as [string, Tensor]));
          await saveTensors(path, merged, { format: 'pth' });
          progress.line(`Saved merged weights to ${JSON.stringify(path)}`);
          yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'merged', path });
        }
      }
      metrics?.flush();
      yield emit<DoneEvent>({
        type: 'done', steps: state.stepCount, iters: state.iterNum, epochs: state.epoch + (reason === 'epochs' ? 0 : 1),
        totalTokens: state.totalTokens, timeS, reason, finalValLoss, resumedFrom,
      });
    } finally {
      progress.stop();
      if (nativeTrainer) {
        try { await nativeTrainer.restoreDtype(); } catch { /* the model may be gone */ }
        nativeTrainer.dispose();
      }
      ownLock?.release();
      this.#running = false;
    }
  }

  async #baseConfig(checkpointDir: string): Promise<Config> {
    try {
      return await readConfig(join(checkpointDir, 'model_config.yaml'));
    } catch {
      const plain = Object.fromEntries(Object.entries(this.options.model.config).filter(([k]) => !k.startsWith('lora_')));
      return normalizeConfig(plain);
    }
  }

  /** hyperparameters.yaml in litgpt's shape (era C `finetune lora` setup() arguments). */
  #hyperparameters(checkpointDir: string, outDir: string): Record<string, unknown> {
    if (this.options.hyperparameters) return this.options.hyperparameters;
    const c = this.options.model.lora!;
    const t = this.train, e = this.eval, o = this.optimizer;
    return {
      checkpoint_dir: checkpointDir,
      out_dir: outDir,
      precision: this.precision,
      quantize: null,
      devices: 1,
      num_nodes: 1,
      lora_r: c.r, lora_alpha: c.alpha, lora_dropout: c.dropout, lora_query: c.query, lora_key: c.key, lora_value: c.value,
      lora_projection: c.projection, lora_mlp: c.mlp, lora_head: c.head,
      data: this.options.data.toHyperparameters(),
      train: {
        save_interval: t.saveInterval, log_interval: t.logInterval, global_batch_size: t.globalBatchSize,
        micro_batch_size: t.microBatchSize, lr_warmup_steps: t.lrWarmupSteps, lr_warmup_fraction: null, epochs: t.epochs,
        max_tokens: t.maxTokens, max_steps: t.maxSteps, max_seq_length: t.maxSeqLength, tie_embeddings: null,
        max_norm: t.maxNorm, min_lr: 6.0e-5,
      },
      log: {},
      eval: {
        interval: e.interval, max_new_tokens: e.maxNewTokens, max_iters: e.maxIters,
        initial_validation: e.initialValidation, evaluate_example: 'first', final_validation: e.finalValidation,
      },
      optimizer: { class_path: 'torch.optim.AdamW', init_args: { lr: o.lr, weight_decay: o.weightDecay, betas: [...o.betas] } },
      logger_name: 'csv',
      seed: this.seed,
      access_token: null,
    };
  }
}

function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Skips n items of an iterator (resuming inside an epoch). */
function skip<T>(it: Iterator<T>, n: number): Iterator<T> {
  for (let i = 0; i < n; i++) if (it.next().done) break;
  return it;
}

/**
 * litgpt's `logits[..., :-1, :]` against `targets[..., 1:]`, as (tokens, targets) of one length: the input is
 * the batch without its last column, the target of position t the label at t + 1.
 */
export function shifted(batch: Batch): { tokens: Int32Array; targets: Int32Array; shape: number[] } {
  const { batchSize: B, seqLength: T } = batch;
  const L = Math.max(T - 1, 0);
  const tokens = new Int32Array(B * L), targets = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    tokens.set(batch.inputIds.subarray(b * T, b * T + L), b * L);
    targets.set(batch.labels.subarray(b * T + 1, b * T + T), b * L);
  }
  return { tokens, targets, shape: [B, L] };
}

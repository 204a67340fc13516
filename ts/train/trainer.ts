// Trainer: litgpt's `finetune lora` (litgpt/finetune/lora.py, era C) from Node. This file is fit()'s loop; the
// rest of lora.py lives next to it, one concept per file:
//   ./options.ts      the arguments, their defaults and checks          (setup()'s signature)
//   ./validate.ts     validation loss and the example generation        (validate(), generate_example())
//   ./checkpoints.ts  step-%06d/, final/, the merged model, resume       (save_lora_checkpoint())
//   ./log.ts          the console lines and metrics.csv                  (fabric.print, fabric.log_dict)
//   ./events.ts       what fit() yields
//
//   const trainer = new Trainer({ model, data, checkpointDir, outDir, train: { microBatchSize: 4 } });
//   for await (const event of trainer.fit()) if (event.type === 'step') console.log(event.loss);
//
// Each micro-batch is one native call (forward, chunked cross-entropy, backward of loss / accumulation, and
// the AdamW step + zero_grad when the accumulation window completes), so the event loop stays free between
// them. TS keeps what litgpt keeps in Python: the data order (CycleIterator over a seeded DataLoader), the
// warmup + cosine schedule, the running loss, validation every eval.interval optimizer steps, the folders.
// The model is used through its public API (adapter tensors, merged weights); only the native training object
// that runs the steps holds its handle.
//
// A run holds out_dir's lock while it runs (OutDir.startRun: a second run into it is ERR_BUSY), and does not
// write over an earlier run's checkpoints unless `force`. As a library it prints nothing unless asked
// (`progress`, `logger`).
//
// Data-parallel (`distributed`, ./distributed.ts): every rank runs this loop on its shard of the data, with
// globalBatchSize / (microBatchSize × world size) micro-batches per optimizer step; the native step averages the
// gradients over the ranks, so the AdamW state stays identical everywhere. The step loss and token counts are
// summed over the ranks, validation runs on each rank's shard of the validation set and is averaged, and rank 0
// alone holds the out_dir lock, prints, and writes the folders; the others wait for it at the end.
//
// Beyond litgpt: resume (each step folder keeps training_state.pth, see ./training_state.ts), max_tokens /
// max_time stops, optional gradient clipping, and a NaN/Inf loss stops the run with ERR_NONFINITE without
// writing any checkpoint after the last good one.
import { resolve } from 'node:path';
import { binding, type NativeTensor, type NativeTrainer } from '../binding.js';
import type { Batch } from '../data/sft.js';
import { Tokenizer } from '../data/tokenizer.js';
import { fail, LitloraError } from '../errors.js';
import type { Shard } from '../data/random.js';
import type { Hyperparameters } from '../io/hyperparameters.js';
import { OutDir } from '../io/outdir.js';
import type { OutDirLock } from '../io/outdir_lock.js';
import { Tensor } from '../tensor.js';
import { folderConfig, loadResumeState, RunCheckpoints, runHyperparameters } from './checkpoints.js';
import { ProcessGroup } from './distributed.js';
import type { DoneEvent, SaveEvent, StepEvent, TrainerEvent } from './events.js';
import { TrainLog } from './log.js';
import { resolveOptions, type EvalArgs, type OptimizerArgs, type Precision, type TrainArgs, type TrainerOptions } from './options.js';
import { learningRate } from './schedule.js';
import { latestResumableStep, type CounterState } from './training_state.js';
import { validate, type ValidationSetup } from './validate.js';

export type { DoneEvent, EvalEvent, SaveEvent, StepEvent, TrainerEvent } from './events.js';
export type { DistributedOptions } from './distributed.js';
export { ProcessGroup } from './distributed.js';
export type { EvalArgs, OptimizerArgs, Precision, ProgressMode, TrainArgs, TrainableModel, TrainerOptions } from './options.js';


/** A window of the last k values (torchmetrics RunningMean: litgpt's running training loss). */
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
    const resolved = resolveOptions(options);
    this.options = options;
    this.train = resolved.train;
    this.eval = resolved.eval;
    this.optimizer = resolved.optimizer;
    this.precision = resolved.precision;
    this.seed = resolved.seed;
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
    let group: ProcessGroup | null = null, ownGroup = false;
    let log = new TrainLog('none', undefined);
    // Assigned inside the setup callback: typed by assertion so that the compiler does not narrow them to null here.
    let nativeTrainer = null as NativeTrainer | null;
    let ownLock = null as OutDirLock | null;
    try {
      const given = this.options.distributed;
      if (given instanceof ProcessGroup) group = given;
      else if (given) { group = await ProcessGroup.join(given); ownGroup = true; }
      const isMain = !group || group.isMain;
      const shard = group ? group.shard(this.seed) : undefined;
      if (isMain) log = new TrainLog(this.options.progress ?? 'none', this.options.logger);
      const emit = <E extends TrainerEvent>(ev: E): E => {
        (this.options.on?.[ev.type] as ((e: E) => void) | undefined)?.(ev);
        return ev;
      };
      const { model, data } = this.options;
      const t = this.train, e = this.eval;
      const outDir = this.options.outDir ? resolve(this.options.outDir) : null;
      const checkpointDir = this.options.checkpointDir ? resolve(this.options.checkpointDir) : null;

      const worldSize = group?.worldSize ?? 1;
      const state: CounterState = { iterNum: 0, stepCount: 0, epoch: 0, epochBatches: 0, totalTokens: 0, runningLosses: [], worldSize };
      // Setup, on every rank; a failure on one is reported to all before any step (ERR_DISTRIBUTED on the others).
      const setup = await agreed(group, async () => {
        if (isMain) ownLock = await this.#takeOutDir(outDir, log);
        const tokenizer = this.options.tokenizer ?? Tokenizer.fromDir(checkpointDir!);
        const prepared = await this.#prepareData(tokenizer, worldSize, shard);
        log.parameterCounts(model.adapter!.parameterCount, model.parameterCount);
        const nt = nativeTrainer = this.#nativeTrainer();
        const resumedFrom = this.options.resume ? await this.#resume(outDir, nt, state, log) : null;
        const checkpoints = outDir && isMain ? await this.#openOutDir(outDir, checkpointDir!, log) : null;
        return { tokenizer, ...prepared, nt, resumedFrom, checkpoints };
      });
      const { tokenizer, gradAccum, lrMaxSteps, nt, resumedFrom, checkpoints } = setup;
      // Every rank starts from rank 0's LoRA weights (fresh, or resumed): a collective, so only once all ranks agreed.
      if (group) await nt.setProcessGroup(group.native, group.gradientSync);
      const maxSteps = t.maxSteps ?? Infinity;
      const schedule = { baseLr: this.optimizer.lr, warmupSteps: t.lrWarmupSteps, maxSteps: lrMaxSteps };

      const running = new RunningMean(gradAccum);
      running.values = state.runningLosses.slice(-gradAccum);
      let valLoss: number | null = null;
      const trainStart = performance.now();
      let windowLosses: number[] = [];
      let windowStart = performance.now();
      let windowTokens = 0;

      // Validation scores batches and samples the example through the native trainer, under the training precision.
      const validation: ValidationSetup = {
        data, microBatchSize: t.microBatchSize, shard,
        mean: group ? async (v) => (await group!.sum([v]))[0]! / worldSize : undefined,
        batchLoss: async (batch) => {
          const { tokens, targets, shape } = shifted(batch);
          return (await nt.evaluate(tokens, targets, shape)).loss;
        },
        // The example generation is rank 0's alone (litgpt's generate_example runs on global rank 0).
        example: { which: e.evaluateExample, source: nt, tokenizer, maxNewTokens: isMain ? e.maxNewTokens : 0, temperature: e.temperature, blockSize: Number(model.config.block_size ?? 4096) },
      };
      const runValidation = async (maxIters: number, final: boolean) => {
        const ev = await validate(validation, { step: state.stepCount, iter: state.iterNum, maxIters, final, seed: this.seed + state.stepCount });
        log.eval(ev);
        return ev;
      };

      if (e.initialValidation && !resumedFrom) {
        const ev = await runValidation(e.maxIters, false);
        valLoss = ev.valLoss;
        yield emit(ev);
      }

      // The loop: litgpt's CycleIterator over the epoch's batches.
      let reason: DoneEvent['reason'] = 'max_steps';
      let epochIter: Iterator<Batch> = skip(data.trainBatches(state.epoch, t.microBatchSize, shard)[Symbol.iterator](), state.epochBatches);
      while (state.stepCount < maxSteps) {
        let next = epochIter.next();
        if (next.done) {
          state.epoch++;
          state.epochBatches = 0;
          if (state.epoch >= t.epochs) { reason = 'epochs'; break; }
          epochIter = data.trainBatches(state.epoch, t.microBatchSize, shard)[Symbol.iterator]();
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
            log.flush();
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
        const iterTimeS = (performance.now() - iterStart) / 1000;
        if (state.iterNum % t.logInterval === 0) {
          const elapsed = (performance.now() - trainStart) / 1000;
          log.iteration({
            epoch: state.epoch, iter: state.iterNum, step: state.stepCount, loss: running.mean, val: valLoss, iterTimeS, stepped: r.stepped,
            totalTokens: state.totalTokens,
            learningRate: r.stepped ? learningRate(state.stepCount, schedule) : lr, // scheduler.get_last_lr()
            maxSteps: Number.isFinite(lrMaxSteps) ? lrMaxSteps : state.stepCount,
            tokensPerSecond: state.totalTokens / Math.max(elapsed, 1e-9),
          });
        }
        if (!r.stepped) continue;

        // The step's loss and tokens over all ranks (equal-length samples: the mean of the ranks' means is the
        // global batch's mean loss).
        let stepLoss = running.mean;
        if (group) {
          const [lossSum, tokens] = await group.sum([running.mean, windowTokens]);
          stepLoss = lossSum! / worldSize;
          state.totalTokens += tokens! - windowTokens;
          windowTokens = tokens!;
        }
        const stepTimeMs = performance.now() - windowStart;
        yield emit<StepEvent>({
          type: 'step', step: state.stepCount, iter: state.iterNum, epoch: state.epoch, loss: stepLoss, microLosses: windowLosses, lr,
          gradNorm: r.gradNorm, totalTokens: state.totalTokens, tokensPerSecond: windowTokens / (stepTimeMs / 1000), stepTimeMs,
          maxSteps: lrMaxSteps,
        });
        windowLosses = [];
        windowTokens = 0;

        if (state.stepCount % e.interval === 0) {
          const ev = await runValidation(e.maxIters, false);
          valLoss = ev.valLoss;
          yield emit(ev);
        }
        if (checkpoints && t.saveInterval && state.stepCount % t.saveInterval === 0) {
          const nativeState = new Map((await nt.state()).map(([n, h]) => [n, new Tensor(h)] as [string, Tensor]));
          const dir = await checkpoints.saveStep(state.stepCount, nativeState, { ...state, runningLosses: [...running.values] });
          log.flush();
          yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'step', path: dir });
        }
        windowStart = performance.now();
        if (t.maxTokens !== null && state.totalTokens >= t.maxTokens) { reason = 'max_tokens'; break; }
        if (t.maxTime !== null && (performance.now() - trainStart) / 1000 >= t.maxTime) { reason = 'max_time'; break; }
      }
      const timeS = (performance.now() - trainStart) / 1000;
      log.stop();
      log.trainingTime(timeS);

      let finalValLoss: number | null = null;
      if (e.finalValidation) {
        const ev = await runValidation(Infinity, true);
        finalValLoss = ev.valLoss;
        yield emit(ev);
      }
      if (checkpoints) {
        const finalDir = await checkpoints.saveFinal();
        log.flush();
        yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'final', path: finalDir });
        if (this.options.merge ?? true) {
          const path = await checkpoints.saveMerged();
          yield emit<SaveEvent>({ type: 'save', step: state.stepCount, kind: 'merged', path });
        }
      }
      log.flush();
      // Every rank ends once rank 0's files are written (a failed save there is ERR_DISTRIBUTED on the others).
      if (group) await group.barrier();
      yield emit<DoneEvent>({
        type: 'done', steps: state.stepCount, iters: state.iterNum, epochs: state.epoch + (reason === 'epochs' ? 0 : 1),
        totalTokens: state.totalTokens, timeS, reason, finalValLoss, resumedFrom,
      });
    } finally {
      log.stop();
      if (nativeTrainer) {
        try { await nativeTrainer.restoreDtype(); } catch { /* the model may be gone */ }
        nativeTrainer.dispose();
      }
      ownLock?.release();
      if (ownGroup) group?.dispose();
      this.#running = false;
    }
  }

  /**
   * The out_dir is this run's before anything is read or written: its lock as the caller took it
   * (outDirLock), or taken here and returned for fit() to release.
   */
  async #takeOutDir(outDir: string | null, log: TrainLog): Promise<OutDirLock | null> {
    const given = this.options.outDirLock;
    if (given && (!outDir || given.root !== outDir || !given.held)) {
      fail('ERR_ARG', `outDirLock: expected the held lock of outDir ${outDir} (new OutDir(outDir).startRun()), got ` +
        `${given.held ? 'the lock of' : 'a released lock of'} ${given.root}`);
    }
    if (!outDir || given) return null;
    return new OutDir(outDir).startRun({ resume: this.options.resume, force: this.options.force, log: (line) => log.line(line) });
  }

  /** Data first: bad data is ERR_DATA before anything trains. Returns the accumulation and the schedule's length. */
  async #prepareData(tokenizer: Tokenizer, worldSize: number, shard: Shard | undefined): Promise<{ gradAccum: number; lrMaxSteps: number }> {
    const { model, data } = this.options;
    const t = this.train;
    await data.setup(tokenizer, t.maxSeqLength ? { maxSeqLength: t.maxSeqLength } : {});
    const blockSize = Number(model.config.block_size ?? Infinity);
    if (data.longestSeqLength > blockSize) {
      fail('ERR_DATA', `the longest sample has ${data.longestSeqLength} tokens, more than the model's block_size ${blockSize}; ` +
        `set train.maxSeqLength (--train.max_seq_length) to at most ${blockSize} to truncate samples`);
    }
    // litgpt's train.gradient_accumulation_iters(devices, num_nodes): the global batch split over the ranks.
    const gradAccum = t.globalBatchSize / (t.microBatchSize * worldSize);
    const stepsPerEpoch = Math.floor(data.trainBatchCount(t.microBatchSize, shard) / gradAccum);
    if (stepsPerEpoch === 0) {
      fail('ERR_DATA', `the training split has ${data.trainSize} samples, fewer than one optimizer step of train.globalBatchSize ${t.globalBatchSize}; ` +
        'add data or lower the global batch size');
    }
    return { gradAccum, lrMaxSteps: Math.min(t.epochs * stepsPerEpoch, t.maxSteps ?? Infinity) };
  }

  /** The native object that runs the micro-steps and AdamW on the model (seeded: dropout). */
  #nativeTrainer(): NativeTrainer {
    const o = this.optimizer;
    const trainers = binding().NativeTrainer;
    trainers.manualSeed(this.seed);
    return trainers.create(this.options.model.handle, {
      precision: this.precision, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay,
    });
  }

  /** Continues the newest resumable step folder of outDir: adapter, optimizer and RNG state, counters. Returns it, or null. */
  async #resume(outDir: string | null, nt: NativeTrainer, state: CounterState, log: TrainLog): Promise<string | null> {
    if (!outDir) fail('ERR_ARG', 'resume: needs outDir (the run folder to continue)');
    const latest = await latestResumableStep(outDir);
    if (!latest) {
      log.line(`No resumable step folder in ${outDir}; starting from scratch`);
      return null;
    }
    const saved = await loadResumeState(latest.dir, this.options.model);
    await nt.loadState(saved.native.map(([n, t]) => [n, t.handle]));
    const worldSize = state.worldSize ?? 1;
    const savedWorld = saved.counters.worldSize ?? 1;
    Object.assign(state, saved.counters, { worldSize });
    if (savedWorld !== worldSize) {
      // Another world size: the same samples were consumed (global batches are the same positions of the epoch's
      // permutation whatever the world size), counted in this world's per-rank micro-batches.
      const per = (n: number) => Math.round((n * savedWorld) / worldSize);
      state.iterNum = per(state.iterNum);
      state.epochBatches = per(state.epochBatches);
      log.line(`The step folder was written by ${savedWorld} rank${savedWorld === 1 ? '' : 's'}; continuing with ${worldSize}`);
    }
    log.line(`Resuming from ${latest.dir} (step ${state.stepCount}, iter ${state.iterNum})`);
    return latest.dir;
  }

  /** This run's metrics.csv (a new logs/csv/version_N) and its checkpoint folders. */
  async #openOutDir(outDir: string, checkpointDir: string, log: TrainLog): Promise<RunCheckpoints> {
    const out = new OutDir(outDir);
    log.openMetrics(await out.nextLogDir('csv'));
    return new RunCheckpoints(out, this.options.model, {
      config: await folderConfig(checkpointDir, this.options.model),
      hyperparameters: runHyperparameters(this.options, this, checkpointDir, outDir) as Hyperparameters,
      promptStyle: { class_path: this.options.data.promptStyle.classPath },
      tokenizerFrom: checkpointDir,
    }, (line) => log.line(line));
  }
}

/**
 * Runs a setup step on every rank and agrees on its outcome: a rank that failed throws its own error, the others
 * ERR_DISTRIBUTED naming it, so that no rank starts training alone. One process: the step as is.
 */
async function agreed<T>(group: ProcessGroup | null, step: () => Promise<T>): Promise<T> {
  if (!group) return step();
  let result: T | undefined, error: unknown = null;
  try { result = await step(); } catch (e) { error = e; }
  const flags = new Array<number>(group.worldSize).fill(0);
  if (error) flags[group.rank] = 1;
  const failed = (await group.sum(flags)).map((f, r) => (f ? r : -1)).filter((r) => r >= 0);
  if (error) throw error;
  if (failed.length) {
    fail('ERR_DISTRIBUTED', `rank ${group.rank} of ${group.worldSize}: rank${failed.length > 1 ? 's' : ''} ${failed.join(', ')} failed ` +
      'while setting up the run (see that rank\'s error); no rank trained.');
  }
  return result!;
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

// What a training run tells, in litgpt's words (finetune/lora.py: fit()'s lines and validate's; the saves word
// their own in ./checkpoints.ts) and numbers (metrics.csv through Lightning's CSVLogger, ./metrics_csv.ts).
// Each line goes to the `logger` callback and to the console as `progress` says (./progress.ts); a library
// Trainer has neither by default, so it prints nothing. metrics.csv is written only for a run with an out_dir.
import { int, MetricsCsv } from './metrics_csv.js';
import { chooseProgress, type ProgressSink } from './progress.js';
import type { EvalEvent } from './events.js';
import type { ProgressMode } from './options.js';

/** One iteration's numbers, as fit() logs them every train.log_interval iterations. */
export interface IterationRecord {
  epoch: number;
  iter: number;
  step: number;
  /** The running mean loss of the accumulation window. */
  loss: number;
  /** The last validation loss, null before any. */
  val: number | null;
  iterTimeS: number;
  /** Whether this iteration ended with an optimizer step. */
  stepped: boolean;
  totalTokens: number;
  /** The learning rate after this iteration (the scheduler's get_last_lr()). */
  learningRate: number;
  /** For the bar: the planned number of optimizer steps and the throughput so far. */
  maxSteps: number;
  tokensPerSecond: number;
}

/** litgpt's per-iteration line (finetune/lora.py fit()). */
function iterationLine(m: { epoch: number; iter: number; step: number; loss: number; val: number | null; iterTimeMs: number; stepped: boolean }): string {
  return `Epoch ${m.epoch + 1} | iter ${m.iter} step ${m.step} | loss train: ${m.loss.toFixed(3)}, ` +
    `val: ${m.val === null ? 'n/a' : m.val.toFixed(3)} | iter time: ${m.iterTimeMs.toFixed(2)} ms${m.stepped ? ' (step)' : ''}`;
}

export class TrainLog {
  readonly #console: ProgressSink;
  readonly #logger: ((line: string) => void) | undefined;
  #metrics: MetricsCsv | null = null;

  constructor(progress: ProgressMode, logger?: (line: string) => void) {
    this.#console = chooseProgress(progress);
    this.#logger = logger;
  }

  /** From now on, metrics rows go to `dir`/metrics.csv (`dir`: out_dir/logs/csv/version_N). */
  openMetrics(dir: string): void {
    this.#metrics = new MetricsCsv(dir);
  }

  line(text: string): void {
    this.#console.line(text);
    this.#logger?.(text);
  }

  parameterCounts(trainable: number, total: number): void {
    this.line(`Number of trainable parameters: ${trainable.toLocaleString('en-US')}`);
    this.line(`Number of non-trainable parameters: ${(total - trainable).toLocaleString('en-US')}`);
  }

  /** A metrics row and the console line of one iteration (the bar shows the numbers instead of the line). */
  iteration(r: IterationRecord): void {
    this.#metrics?.log({
      loss: r.loss, iter: int(r.iter), step: int(r.step), epoch: int(r.epoch), iter_time: r.iterTimeS,
      tokens: int(r.totalTokens), total_tokens: int(r.totalTokens), learning_rate: r.learningRate,
    }, r.iter);
    const text = iterationLine({ epoch: r.epoch, iter: r.iter, step: r.step, loss: r.loss, val: r.val, iterTimeMs: r.iterTimeS * 1000, stepped: r.stepped });
    this.#console.iteration(text, { step: r.step, maxSteps: r.maxSteps, loss: r.loss, tokensPerSecond: r.tokensPerSecond });
    this.#logger?.(text);
  }

  /** A validation's metrics row and lines, then its example generation. */
  eval(ev: EvalEvent): void {
    this.#metrics?.log({ val_loss: ev.valLoss, val_ppl: ev.valPpl }, ev.iter);
    if (ev.final) this.line(`Final evaluation | val loss: ${ev.valLoss.toFixed(3)} | val ppl: ${ev.valPpl.toFixed(3)}`);
    else this.line(`iter ${ev.iter}: val loss ${ev.valLoss.toFixed(4)}, val time: ${ev.timeMs.toFixed(2)} ms`);
    if (ev.sample !== null) this.line(ev.sample);
  }

  trainingTime(seconds: number): void {
    this.line(`Training time: ${seconds.toFixed(2)}s`);
  }

  /** Writes metrics.csv when rows were added since the last flush. */
  flush(): void {
    this.#metrics?.flush();
  }

  /** Ends the bar (if any); lines may still follow. */
  stop(): void {
    this.#console.stop();
  }
}

// Validation during training: litgpt's validate() — the mean loss over up to eval.max_iters validation batches
// (all of them for the final validation) — and generate_example() — the continuation of the first validation
// instruction under the data's prompt style, sampled by ./sample.ts (temperature eval.temperature, seeded).
// The trainer hands in how to score a batch and what to sample from: both run through its native training
// object, under the training precision.
import type { DataModule } from '../data/data_module.js';
import type { Shard } from '../data/random.js';
import type { Batch } from '../data/sft.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { EvalEvent } from './events.js';
import { sampleText, type LogitsSource } from './sample.js';

export interface ValidationSetup {
  data: DataModule;
  microBatchSize: number;
  /** Data-parallel: this rank's part of the validation set, and the mean of a number over the ranks. */
  shard?: Shard;
  mean?: (value: number) => Promise<number>;
  /** The mean loss of one batch. */
  batchLoss(batch: Batch): Promise<number>;
  /** The example generation; maxNewTokens 0 skips it. */
  example: {
    /** eval.evaluate_example (default 'first'). */
    which?: 'first' | 'random' | number;
    source: LogitsSource;
    tokenizer: Tokenizer;
    maxNewTokens: number;
    temperature: number;
    /** The longest sequence the model takes (block_size). */
    blockSize: number;
  };
}

/** The mean loss over the first `maxIters` validation batches (NaN when there are none). */
export async function validationLoss(setup: ValidationSetup, maxIters: number): Promise<number> {
  let sum = 0, n = 0;
  for (const batch of setup.data.valBatches(setup.microBatchSize, setup.shard)) {
    if (n >= maxIters) break;
    sum += await setup.batchLoss(batch);
    n++;
  }
  const local = n ? sum / n : NaN;
  // litgpt: each rank's mean over its shard, then fabric.all_reduce(val_loss, reduce_op="mean").
  return setup.mean ? setup.mean(local) : local;
}

/** The model's answer to the first validation instruction (litgpt C's evaluate_example "first"), or null. */
export async function generateExample(setup: ValidationSetup, seed: number): Promise<string | null> {
  const { data } = setup;
  const { source, tokenizer, maxNewTokens, temperature, blockSize } = setup.example;
  if (maxNewTokens <= 0) return null;
  const first = data.exampleInstruction(setup.example.which ?? 'first', seed);
  if (!first) return null;
  const prompt = data.promptStyle.apply(first.instruction, first.input ? { input: first.input } : {});
  return sampleText(source, tokenizer, prompt, { maxNewTokens, temperature, seed, blockSize });
}

/** One validation at optimizer step `step` / iteration `iter`: its loss, then its example (seeded with `seed`). */
export async function validate(setup: ValidationSetup, at: { step: number; iter: number; maxIters: number; final: boolean; seed: number }):
  Promise<EvalEvent> {
  const t0 = performance.now();
  const loss = await validationLoss(setup, at.maxIters);
  const sample = await generateExample(setup, at.seed);
  return {
    type: 'eval', step: at.step, iter: at.iter, valLoss: loss, valPpl: Math.exp(loss), sample, timeMs: performance.now() - t0, final: at.final,
  };
}

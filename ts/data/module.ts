// The data-module interface the trainer and hyperparameters.yaml use, and the factory behind `--data NAME
// --data.key value`. Implementations: JSON and Alpaca (./instruction.ts), TextFiles (./text_files.ts).
import { fail } from '../errors.js';
import type { DataModuleArgs } from './args.js';
import { AlpacaData, JSONData } from './instruction.js';
import type { PromptStyle } from './prompts.js';
import { TextFilesData } from './text_files.js';
import type { Batch } from './sft.js';
import type { Tokenizer } from './tokenizer.js';

export type DataModuleName = 'JSON' | 'Alpaca' | 'TextFiles';

export interface SetupOptions {
  /** Truncate samples to this many tokens (litgpt's train.max_seq_length); ≤ 0 or undefined: no truncation
   *  (TextFiles needs a positive value: it is the block length). */
  maxSeqLength?: number;
  /** Overrides the module's own `seed` (litgpt keeps data.seed, default 42, apart from the run's seed). */
  seed?: number;
}

export interface DataModule {
  readonly name: DataModuleName;
  /** The style applied to instructions (Default for TextFiles), also written to prompt_style.yaml. */
  readonly promptStyle: PromptStyle;
  /** Reads, validates and tokenizes everything; bad data throws ERR_DATA here, before training starts. */
  setup(tokenizer: Tokenizer, options?: SetupOptions): Promise<void>;
  /** Samples (or blocks) per split; available after setup. */
  readonly trainSize: number;
  readonly valSize: number;
  /** The longest encoded sample over train and val (litgpt sets model.max_seq_length from it). */
  readonly longestSeqLength: number;
  /** Number of train batches per epoch for a micro-batch size (litgpt's `len(train_dataloader)`). */
  trainBatchCount(microBatchSize: number): number;
  /** The train batches of epoch `epoch` (0-based), shuffled as litgpt's loader with the data seed. */
  trainBatches(epoch: number, microBatchSize: number): Iterable<Batch>;
  /** The validation batches, in order. */
  valBatches(microBatchSize: number): Iterable<Batch>;
  /** Instruction text of the first validation sample (litgpt C's `evaluate_example="first"`), if any. */
  readonly firstValInstruction: { instruction: string; input?: string } | null;
  /** `data:` of hyperparameters.yaml, as litgpt's jsonargparse writes it. */
  toHyperparameters(): { class_path: string; init_args: Record<string, unknown> };
}

export type { DataModuleArgs } from './args.js';

/** Creates a data module by litgpt's class name; unknown names or arguments are ERR_CONFIG naming the flag. */
export function createDataModule(name: string, args: DataModuleArgs = {}): DataModule {
  switch (name) {
    case 'JSON':
    case 'litgpt.data.JSON':
      return new JSONData(args);
    case 'Alpaca':
    case 'litgpt.data.Alpaca':
      return new AlpacaData(args);
    case 'TextFiles':
    case 'litgpt.data.TextFiles':
      return new TextFilesData(args);
    default:
      fail('ERR_CONFIG', `--data: unknown data module '${name}'; expected one of JSON, Alpaca, TextFiles`);
  }
}

/** Builds a module from hyperparameters.yaml's `data: {class_path, init_args}`. */
export function dataModuleFromHyperparameters(data: { class_path: string; init_args?: DataModuleArgs }): DataModule {
  return createDataModule(data.class_path, data.init_args ?? {});
}

// The data-module interface: what the trainer asks of a data set (litgpt's DataModule: setup, the train and
// validation loaders, the prompt style) and what hyperparameters.yaml records of it.
import type { PromptStyle } from './prompts.js';
import type { Shard } from './random.js';
import type { Batch } from './sft.js';
import type { Tokenizer } from './tokenizer.js';

export type DataModuleName = 'JSON' | 'Chat' | 'Alpaca' | 'AlpacaGPT4' | 'Alpaca2k' | 'LIMA' | 'Deita' | 'LongForm' | 'TextFiles';

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
  /** Number of train batches per epoch for a micro-batch size (litgpt's `len(train_dataloader)`); with a shard, of that rank's loader. */
  trainBatchCount(microBatchSize: number, shard?: Shard): number;
  /**
   * The train batches of epoch `epoch` (0-based), shuffled as litgpt's loader with the data seed; with a shard
   * (data-parallel training), that rank's part in the order of Fabric's DistributedSampler (./random.ts).
   */
  trainBatches(epoch: number, microBatchSize: number, shard?: Shard): Iterable<Batch>;
  /** The validation batches, in order (with a shard: that rank's part, DistributedSampler without shuffling). */
  valBatches(microBatchSize: number, shard?: Shard): Iterable<Batch>;
  /** Instruction text of the first validation sample (litgpt C's `evaluate_example="first"`), if any. */
  readonly firstValInstruction: { instruction: string; input?: string } | null;
  /**
   * litgpt's `select_sft_generate_example`: 'first' (the validation split's, else the training split's), 'random'
   * (picked with `seed`) or an index (validation split, else training split; ERR_CONFIG past both). null: no
   * instructions (TextFiles).
   */
  exampleInstruction(which: 'first' | 'random' | number, seed: number): { instruction: string; input?: string } | null;
  /** `data:` of hyperparameters.yaml, as litgpt's jsonargparse writes it. */
  toHyperparameters(): { class_path: string; init_args: Record<string, unknown> };
}

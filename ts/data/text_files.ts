// A plain-text corpus for continued pretraining: litgpt's `TextFiles` data module (litgpt/data/text_files.py).
// train_data_path is a folder of .txt files (sorted by name); without val_data_path the first file is the
// validation set, so at least two files are needed. Each file is stripped and encoded with BOS and without EOS;
// the token streams are concatenated and cut into non-overlapping blocks of maxSeqLength + 1 tokens (litgpt's
// TokensLoader(block_size = max_seq_length + 1)); the incomplete tail is dropped. Batches keep the whole block as
// inputIds and labels (seqLength = maxSeqLength + 1): the trainer's shifted loss then predicts tokens 1..L from
// positions 0..L-1, exactly litgpt pretrain's `input_ids = block[:L]`, `targets = block[1:]`.
//
// Differences from litgpt: no litdata preprocessing (tokens stay in memory); blocks are shuffled per epoch with
// the seeded torch-compatible generator instead of litdata's streaming shuffle; incomplete batches are dropped
// (litgpt's drop_last=True) for train, kept for validation.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { ArgReader, makeYielder } from './args.js';
import type { DataModule, SetupOptions } from './data_module.js';
import { Default, type PromptStyle } from './prompts.js';
import { distributedOrder, EpochShuffler, type Shard } from './random.js';
import { batchesInOrder, type Batch, type EncodedSample } from './sft.js';
import type { Tokenizer } from './tokenizer.js';

/** Arguments of litgpt's `TextFiles` data module (`--data.<key>`, `init_args` in hyperparameters.yaml). */
export interface TextFilesArgs {
  /** A folder of .txt files. */
  train_data_path: string;
  /** A folder of .txt files for validation; null: the first training file. */
  val_data_path?: string | null;
  /** Seed of the shuffling (litgpt 42). */
  seed?: number;
  /** Recorded in hyperparameters.yaml (litgpt 4). */
  num_workers?: number;
}

export class TextFilesData implements DataModule {
  readonly name = 'TextFiles' as const;
  readonly promptStyle: PromptStyle = new Default();
  readonly firstValInstruction = null;
  exampleInstruction(): null {
    return null;
  }
  readonly trainDataPath: string;
  readonly valDataPath: string | null;
  readonly seed: number;
  readonly numWorkers: number;
  #train: EncodedSample[] = [];
  #val: EncodedSample[] = [];
  #shuffler: EpochShuffler | null = null;
  #blockSize = 0;
  #ready = false;

  constructor(args: TextFilesArgs) {
    const a = new ArgReader('TextFiles', args);
    this.trainDataPath = a.string('train_data_path');
    this.valDataPath = a.optionalString('val_data_path');
    this.seed = a.number('seed', 42, { integer: true, min: 0 })!;
    this.numWorkers = a.number('num_workers', 4, { integer: true, min: 0 })!;
    a.done();
  }

  get trainSize(): number { return this.#assertReady().#train.length; }
  get valSize(): number { return this.#assertReady().#val.length; }
  get longestSeqLength(): number { return this.#assertReady().#blockSize; }

  async setup(tokenizer: Tokenizer, options: SetupOptions = {}): Promise<void> {
    const maxSeqLength = options.maxSeqLength ?? -1;
    if (!Number.isInteger(maxSeqLength) || maxSeqLength < 1) {
      fail('ERR_CONFIG', `--data TextFiles needs a positive --train.max_seq_length (the block length), got ${maxSeqLength}`);
    }
    const seed = options.seed ?? this.seed;
    let trainFiles = listTextFiles(this.trainDataPath, 'train_data_path');
    let valFiles: string[];
    if (this.valDataPath !== null) {
      valFiles = listTextFiles(this.valDataPath, 'val_data_path');
    } else {
      if (trainFiles.length < 2) {
        fail('ERR_DATA', `--data.train_data_path ${resolve(this.trainDataPath)} has ${trainFiles.length} .txt file; ` +
          'expected at least two (the first one becomes the validation set) or pass --data.val_data_path');
      }
      valFiles = [trainFiles[0]!];
      trainFiles = trainFiles.slice(1);
    }
    const blockSize = maxSeqLength + 1;
    this.#train = await blocksOf(tokenizer, trainFiles, blockSize);
    this.#val = await blocksOf(tokenizer, valFiles, blockSize);
    for (const [split, blocks, files] of [['training', this.#train, trainFiles], ['validation', this.#val, valFiles]] as const) {
      if (blocks.length === 0) {
        fail('ERR_DATA', `the ${split} text (${files.join(', ')}) has fewer than ${blockSize} tokens, not one block of ` +
          `max_seq_length + 1 = ${blockSize}; add text or lower --train.max_seq_length`);
      }
    }
    this.#blockSize = blockSize;
    this.#shuffler = new EpochShuffler(this.#train.length, seed);
    this.#ready = true;
  }

  trainBatchCount(microBatchSize: number, shard?: Shard): number {
    return Math.floor((shard ? Math.ceil(this.trainSize / shard.worldSize) : this.trainSize) / microBatchSize);
  }

  trainBatches(epoch: number, microBatchSize: number, shard?: Shard): Iterable<Batch> {
    const order = shard ? distributedOrder(this.#assertReady().#train.length, epoch, shard, true) : this.#assertReady().#shuffler!.order(epoch);
    return batchesInOrder(this.#train, order, microBatchSize, { maxSeqLength: -1, ignoreIndex: -100, dropLast: true });
  }

  valBatches(microBatchSize: number, shard?: Shard): Iterable<Batch> {
    const n = this.#assertReady().#val.length;
    const order = shard ? distributedOrder(n, 0, shard, false) : Array.from({ length: n }, (_, i) => i);
    return batchesInOrder(this.#val, order, microBatchSize, { maxSeqLength: -1, ignoreIndex: -100 });
  }

  toHyperparameters() {
    return {
      class_path: 'litgpt.data.TextFiles',
      init_args: {
        train_data_path: this.trainDataPath,
        val_data_path: this.valDataPath,
        seed: this.seed,
        num_workers: this.numWorkers,
      },
    };
  }

  #assertReady(): this {
    if (!this.#ready) fail('ERR_CONFIG', 'the TextFiles data module is not set up yet; call await data.setup(tokenizer, …) first');
    return this;
  }
}

function listTextFiles(dir: string, flag: string): string[] {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory()) fail('ERR_DATA', `--data.${flag} ${path} is not a folder`);
  const files = readdirSync(path).filter((f) => f.endsWith('.txt')).sort().map((f) => join(path, f));
  if (files.length === 0) fail('ERR_DATA', `--data.${flag} ${path} has no .txt files`);
  return files;
}

async function blocksOf(tokenizer: Tokenizer, files: string[], blockSize: number): Promise<EncodedSample[]> {
  const streams: Int32Array[] = [];
  let total = 0;
  const pause = makeYielder(1);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // litgpt strips the text, then encodes with bos=True, eos=False; an empty file would still give [BOS].
    const ids = tokenizer.encode(text.trim(), { bos: true, eos: false });
    streams.push(ids);
    total += ids.length;
    await pause();
  }
  const all = new Int32Array(total);
  let offset = 0;
  for (const s of streams) { all.set(s, offset); offset += s.length; }
  const blocks: EncodedSample[] = [];
  for (let start = 0; start + blockSize <= total; start += blockSize) {
    const block = all.slice(start, start + blockSize);
    blocks.push({ inputIds: block, labels: block, promptLength: 0 });
  }
  return blocks;
}

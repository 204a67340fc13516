// Instruction data: litgpt's `JSON` and `Alpaca` data modules (litgpt/data/json_data.py, alpaca.py) over local
// files. A .json file holds a list of {instruction, input?, output}; a .jsonl file one such object per line; a
// folder holds train.json(l) and val.json(l). Every row is checked while preparing, so bad data fails with
// ERR_DATA naming the file and the 1-based row before any training starts.
//
// Split and order: a single file is split with litgpt's `random_split(data, [1-f, f], manual_seed(seed))` and the
// train loader shuffles per epoch like `DataLoader(shuffle=True, generator=manual_seed(seed))` — reproduced
// bit-for-bit from torch's CPU generator (./random.ts), so the same rows land in the same split, in the same order.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { ArgReader, makeYielder } from './args.js';
import type { DataModule, DataModuleName, SetupOptions } from './data_module.js';
import { PromptStyle } from './prompts.js';
import { distributedOrder, EpochShuffler, randomSplit, type Shard } from './random.js';
import { chatRowMessages, encodeChatSample } from './chat_data.js';
import type { ChatMessage } from './chat_template.js';
import { batchesInOrder, encodeSample, type Batch, type EncodedSample, type InstructionSample } from './sft.js';
import type { Tokenizer } from './tokenizer.js';

/** A data set's own row shape → instruction samples (litgpt's format_dataset / transform); `where` names the row. */
export type RowTransform = (row: unknown, where: string) => unknown[];

/** Where a row came from, for error messages and debugging. */
export interface SampleSource {
  file: string;
  /** 1-based: the array index + 1 in .json, the line number in .jsonl. */
  row: number;
}

/** Reads and validates a .json or .jsonl file of instruction samples. */
export function loadInstructionFile(path: string, transform: RowTransform | null = null): { samples: InstructionSample[]; sources: SampleSource[] } {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e: any) {
    fail('ERR_DATA', `cannot read data file ${file}: ${e?.code === 'ENOENT' ? 'it does not exist' : e?.message ?? e}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const ext = extname(file).toLowerCase();
  if (text.trim().length === 0) fail('ERR_DATA', `${file} is empty; expected ${ext === '.jsonl' ? 'one JSON object per line' : 'a JSON list of {instruction, input?, output} objects'}`);
  let rows: { value: unknown; row: number }[];
  if (ext === '.json') {
    const value = parseJson(text, file, 0);
    if (!Array.isArray(value)) {
      fail('ERR_DATA', `${file}: expected a JSON list of {instruction, input?, output} objects, got ${describe(value)}`);
    }
    rows = value.map((v, i) => ({ value: v, row: i + 1 }));
  } else if (ext === '.jsonl') {
    rows = [];
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (line.trim().length === 0) return; // blank lines (e.g. a trailing newline) carry no sample
      rows.push({ value: parseJson(line, file, i), row: i + 1 });
    });
  } else {
    fail('ERR_DATA', `unsupported data file format '${ext || basename(file)}' (${file}); expected .json or .jsonl`);
  }
  if (rows.length === 0) fail('ERR_DATA', `${file} has no samples`);
  const samples: InstructionSample[] = [];
  const sources: SampleSource[] = [];
  for (const { value, row } of rows) {
    for (const sample of transform ? transform(value, `${file}: row ${row}`) : [value]) {
      samples.push(validateSample(sample, file, row));
      sources.push({ file, row });
    }
  }
  return { samples, sources };
}

function validateSample(value: unknown, file: string, row: number): InstructionSample {
  const where = `${file}: row ${row}`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('ERR_DATA', `${where}: expected an object {instruction, input?, output} or a chat {messages} / {conversations}, got ${describe(value)}`);
  }
  const sample = value as Record<string, unknown>;
  const messages = chatRowMessages(sample, where);
  if (messages) {
    // A chat row: its first user turn stands for the instruction (the example generation), its messages are trained.
    const firstUser = messages.find((m) => m.role === 'user');
    return { instruction: firstUser?.content ?? '', output: messages[messages.length - 1]!.content, messages, source: where };
  }
  for (const key of ['instruction', 'output']) {
    if (!(key in sample)) {
      fail('ERR_DATA', `${where}: missing field '${key}' (each sample needs string fields instruction and output, and may have input; ` +
        'or is a chat: {"messages": [{"role", "content"}]} or {"conversations": [{"from", "value"}]})');
    }
    if (typeof sample[key] !== 'string') fail('ERR_DATA', `${where}: field '${key}' must be a string, got ${describe(sample[key])}`);
  }
  if (sample.input !== undefined && sample.input !== null && typeof sample.input !== 'string') {
    fail('ERR_DATA', `${where}: field 'input' must be a string (or absent), got ${describe(sample.input)}`);
  }
  return sample as InstructionSample;
}

function parseJson(text: string, file: string, lineOffset: number): unknown {
  try {
    return JSON.parse(text);
  } catch (e: any) {
    const message = String(e?.message ?? e);
    const m = /position (\d+)/.exec(message);
    const position = m ? Number(m[1]) : jsonErrorOffset(text);
    const before = text.slice(0, position);
    const line = before.split('\n').length + lineOffset;
    const column = position - (before.lastIndexOf('\n') + 1) + 1;
    return fail('ERR_DATA', `${file}: invalid JSON at line ${line}, column ${column}${lineOffset || /\.jsonl$/i.test(file) ? ` (row ${line})` : ''}: ${message}`);
  }
}

/**
 * Offset of the first syntax error in `text` (JSON.parse's messages do not always carry a position): a small
 * recursive-descent scan, called only after JSON.parse has failed.
 */
const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++; };
  const err = (): never => { throw i; };
  const literal = (word: string) => { if (text.startsWith(word, i)) i += word.length; else err(); };
  const string = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) err();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) err(); i += 5; continue; }
        if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) err();
      }
      i++;
    }
    if (i >= text.length) err();
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) {
        ws(); if (text[i] !== '"') err(); string(); ws();
        if (text[i] !== ':') err(); i++; value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return; }
        err();
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (;;) {
        value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return; }
        err();
      }
    } else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) err();
      i += m![0].length;
    }
  };
  try {
    value(); ws();
    return i < text.length ? i : text.length;
  } catch (at) {
    return typeof at === 'number' ? Math.min(at, text.length) : text.length;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `a string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/** Arguments of litgpt's `JSON` data module (`--data.<key>` on the command line, `init_args` in hyperparameters.yaml). */
export interface JSONArgs {
  /** A .json/.jsonl file (split with val_split_fraction) or a folder with train.json(l) and val.json(l). */
  json_path: string;
  /** Leave the prompt out of the loss (litgpt false). */
  mask_prompt?: boolean;
  /** Share of a single file held out for validation (litgpt 0.05 for a file; must be unset for a folder). */
  val_split_fraction?: number | null;
  /** A name of PROMPT_STYLES (litgpt 'alpaca'). */
  prompt_style?: string;
  /** The label of masked positions (litgpt -100). */
  ignore_index?: number;
  /** Seed of the split and of the shuffling (litgpt 42). */
  seed?: number;
  /** Recorded in hyperparameters.yaml (litgpt 4); litlora loads in-process. */
  num_workers?: number;
}

/**
 * Arguments of litgpt's `Alpaca` data module over a local copy of the Alpaca file: `json_path`, or litgpt's own
 * `download_dir` (+ `file_name`; default litgpt's ./data/alpaca/). The other arguments are JSON's, with Alpaca's defaults
 * (val_split_fraction 0.03865).
 */
export type AlpacaArgs = Omit<JSONArgs, 'json_path'> & {
  file_name?: string; file_url?: string; repo_id?: string; json_path?: string | null; download_dir?: string | null;
};

export interface InstructionOptions {
  jsonPath: string;
  maskPrompt: boolean;
  valSplitFraction: number | null;
  promptStyle: string;
  ignoreIndex: number;
  seed: number;
  numWorkers: number;
}

/** Shared implementation of the JSON and Alpaca modules. */
export abstract class InstructionDataModule implements DataModule {
  abstract readonly name: DataModuleName;
  #promptStyle: PromptStyle;
  protected readonly options: InstructionOptions;
  #train: EncodedSample[] = [];
  #val: EncodedSample[] = [];
  #trainRaw: InstructionSample[] = [];
  #valRaw: InstructionSample[] = [];
  #maxSeqLength = -1;
  #shuffler: EpochShuffler | null = null;
  #longest = 0;
  #ready = false;

  protected constructor(options: InstructionOptions) {
    this.options = options;
    this.#promptStyle = PromptStyle.fromName(options.promptStyle);
  }

  /** The style of `--data.prompt_style`; chat_template is bound to the tokenizer's template by setup. */
  get promptStyle(): PromptStyle { return this.#promptStyle; }

  get trainSize(): number { return this.#assertReady().#train.length; }
  get valSize(): number { return this.#assertReady().#val.length; }
  get longestSeqLength(): number { return this.#assertReady().#longest; }
  /** The raw train / validation samples after the split (e.g. for sampling prompts in evaluation). */
  get trainSamples(): readonly InstructionSample[] { return this.#assertReady().#trainRaw; }
  get valSamples(): readonly InstructionSample[] { return this.#assertReady().#valRaw; }

  get firstValInstruction(): { instruction: string; input?: string } | null {
    const s = this.#assertReady().#valRaw[0];
    if (!s) return null;
    return s.input ? { instruction: s.instruction, input: s.input } : { instruction: s.instruction };
  }

  exampleInstruction(which: 'first' | 'random' | number, seed: number): { instruction: string; input?: string } | null {
    const val = this.#assertReady().#valRaw, train = this.#trainRaw;
    const split = val.length ? val : train;
    let s: InstructionSample | undefined;
    if (which === 'first') s = split[0];
    else if (which === 'random') s = split[new EpochShuffler(split.length, seed).order(0)[0]!];
    else {
      s = val.length > which ? val[which] : train.length > which ? train[which] : undefined;
      if (!s) fail('ERR_CONFIG', `--eval.evaluate_example ${which} is out of range for both the validation (${val.length}) and training (${train.length}) splits`);
    }
    if (!s) return null;
    return s.input ? { instruction: s.instruction, input: s.input } : { instruction: s.instruction };
  }

  /** Loads the raw splits: [train, val] samples with their sources. */
  /** ERR_DATA for a data path that does not exist (a litgpt data set says where litgpt would have downloaded it). */
  protected missingData(path: string): never {
    return fail('ERR_DATA', `--data.json_path '${path}' does not exist; expected a .json/.jsonl file or a folder with train.json and val.json`);
  }

  /** The data set's row shape → instruction samples (none: rows are instruction samples or chat rows). */
  protected readonly rowTransform: RowTransform | null = null;
  /** The file names (without .json/.jsonl) of a folder's two splits. */
  protected readonly splitNames: { train: string[]; val: string[] } = { train: ['train'], val: ['val'] };

  protected splits(seed: number): { train: InstructionSample[]; val: InstructionSample[]; trainFile: string; valFile: string } {
    const path = resolve(this.options.jsonPath);
    if (!existsSync(path)) this.missingData(path);
    if (statSync(path).isDirectory()) {
      if (this.options.valSplitFraction !== null && this.name !== 'Alpaca') {
        fail('ERR_CONFIG', `--data.json_path is a folder (${path}), so it must hold train.json and val.json and ` +
          `--data.val_split_fraction must not be set (got ${this.options.valSplitFraction})`);
      }
      const find = (names: string[]) => names.flatMap((n) => ['.json', '.jsonl'].map((ext) => join(path, n + ext))).find((f) => existsSync(f));
      const trainFile = find(this.splitNames.train), valFile = find(this.splitNames.val);
      if (!trainFile || !valFile) {
        fail('ERR_DATA', `${path} is a folder but lacks ${[!trainFile && 'train.json(l)', !valFile && 'val.json(l)'].filter(Boolean).join(' and ')}`);
      }
      return {
        train: loadInstructionFile(trainFile, this.rowTransform).samples, val: loadInstructionFile(valFile, this.rowTransform).samples, trainFile, valFile,
      };
    }
    const fraction = this.options.valSplitFraction ?? 0.05;
    const { samples } = loadInstructionFile(path, this.rowTransform);
    const { train, val } = randomSplit(samples.length, fraction, seed);
    if (train.length === 0 || val.length === 0) {
      fail('ERR_DATA', `${path}: splitting ${samples.length} samples with val_split_fraction ${fraction} leaves the ` +
        `${train.length === 0 ? 'training' : 'validation'} split empty; add samples or change --data.val_split_fraction`);
    }
    return { train: train.map((i) => samples[i]!), val: val.map((i) => samples[i]!), trainFile: path, valFile: path };
  }

  async setup(tokenizer: Tokenizer, options: SetupOptions = {}): Promise<void> {
    const seed = options.seed ?? this.options.seed;
    const maxSeqLength = options.maxSeqLength ?? -1;
    if (!Number.isInteger(maxSeqLength)) fail('ERR_CONFIG', `maxSeqLength must be an integer, got ${maxSeqLength}`);
    const { train, val, trainFile, valFile } = this.splits(seed);
    if (train.length === 0) fail('ERR_DATA', `${trainFile}: the training split is empty`);
    if (val.length === 0) fail('ERR_DATA', `${valFile}: the validation split is empty`);
    this.#promptStyle = this.#promptStyle.forTokenizer(tokenizer);
    const sft = { promptStyle: this.#promptStyle, maxSeqLength, maskPrompt: this.options.maskPrompt, ignoreIndex: this.options.ignoreIndex };
    const pause = makeYielder();
    const encode = async (samples: InstructionSample[]) => {
      const out: EncodedSample[] = [];
      for (const s of samples) {
        const messages = s.messages as ChatMessage[] | undefined;
        out.push(messages ? encodeChatSample(tokenizer, messages, sft, String(s.source)) : encodeSample(tokenizer, s, sft));
        await pause();
      }
      return out;
    };
    this.#train = await encode(train);
    this.#val = await encode(val);
    this.#trainRaw = train;
    this.#valRaw = val;
    this.#maxSeqLength = maxSeqLength;
    this.#shuffler = new EpochShuffler(train.length, seed);
    this.#longest = 0;
    for (const s of [...this.#train, ...this.#val]) this.#longest = Math.max(this.#longest, s.inputIds.length);
    this.#ready = true;
  }

  trainBatchCount(microBatchSize: number, shard?: Shard): number {
    checkMicroBatch(microBatchSize);
    return Math.ceil((shard ? Math.ceil(this.trainSize / shard.worldSize) : this.trainSize) / microBatchSize);
  }

  trainBatches(epoch: number, microBatchSize: number, shard?: Shard): Iterable<Batch> {
    checkMicroBatch(microBatchSize);
    const order = shard ? distributedOrder(this.#assertReady().#train.length, epoch, shard, true) : this.#assertReady().#shuffler!.order(epoch);
    return batchesInOrder(this.#train, order, microBatchSize, this.#collateOptions());
  }

  valBatches(microBatchSize: number, shard?: Shard): Iterable<Batch> {
    checkMicroBatch(microBatchSize);
    const n = this.#assertReady().#val.length;
    const order = shard ? distributedOrder(n, 0, shard, false) : Array.from({ length: n }, (_, i) => i);
    return batchesInOrder(this.#val, order, microBatchSize, this.#collateOptions());
  }

  #collateOptions() {
    return { maxSeqLength: this.#maxSeqLength, ignoreIndex: this.options.ignoreIndex, padId: 0 };
  }

  #assertReady(): this {
    if (!this.#ready) fail('ERR_CONFIG', `the ${this.name} data module is not set up yet; call await data.setup(tokenizer, …) first`);
    return this;
  }

  abstract toHyperparameters(): { class_path: string; init_args: Record<string, unknown> };
}

function checkMicroBatch(n: number): void {
  if (!Number.isInteger(n) || n < 1) fail('ERR_CONFIG', `micro batch size must be an integer ≥ 1, got ${n}`);
}

/** litgpt's `JSON` data module: `--data JSON --data.json_path F [--data.val_split_fraction 0.05] …`. */
export class JSONData extends InstructionDataModule {
  readonly name = 'JSON' as const;

  constructor(args: JSONArgs) {
    const a = new ArgReader('JSON', args);
    super({
      jsonPath: a.string('json_path'),
      maskPrompt: a.boolean('mask_prompt', false),
      valSplitFraction: a.number('val_split_fraction', null, { min: 0, max: 1, minExclusive: true }),
      promptStyle: a.string('prompt_style', 'alpaca'),
      ignoreIndex: a.number('ignore_index', -100, { integer: true })!,
      seed: a.number('seed', 42, { integer: true, min: 0 })!,
      numWorkers: a.number('num_workers', 4, { integer: true, min: 0 })!,
    });
    a.done();
  }

  toHyperparameters() {
    const o = this.options;
    // A single file records the fraction actually used (litgpt C fills in 0.05 when it was not given).
    const isFile = existsSync(o.jsonPath) && statSync(o.jsonPath).isFile();
    return {
      class_path: 'litgpt.data.JSON',
      init_args: {
        json_path: o.jsonPath,
        mask_prompt: o.maskPrompt,
        val_split_fraction: o.valSplitFraction ?? (isFile ? 0.05 : null),
        prompt_style: o.promptStyle,
        ignore_index: o.ignoreIndex,
        seed: o.seed,
        num_workers: o.numWorkers,
      },
    };
  }
}

/**
 * litlora's `Chat` data module: the JSON module for chat rows ({messages} or {conversations}), rendered by default
 * with the model's own chat template (`--data.prompt_style chat_template`). Recorded as litlora.data.Chat.
 */
export class ChatData extends InstructionDataModule {
  readonly name = 'Chat' as const;

  constructor(args: JSONArgs) {
    const a = new ArgReader('Chat', args);
    super({
      jsonPath: a.string('json_path'),
      maskPrompt: a.boolean('mask_prompt', false),
      valSplitFraction: a.number('val_split_fraction', null, { min: 0, max: 1, minExclusive: true }),
      promptStyle: a.string('prompt_style', 'chat_template'),
      ignoreIndex: a.number('ignore_index', -100, { integer: true })!,
      seed: a.number('seed', 42, { integer: true, min: 0 })!,
      numWorkers: a.number('num_workers', 4, { integer: true, min: 0 })!,
    });
    a.done();
  }

  toHyperparameters() {
    const { class_path: _, init_args } = JSONData.prototype.toHyperparameters.call(this);
    return { class_path: 'litlora.data.Chat', init_args };
  }
}

/** What distinguishes litgpt's Alpaca-shaped modules (Alpaca, AlpacaGPT4, Alpaca2k): their file and split. */
export interface AlpacaFamily {
  module: string;
  downloadDir: string;
  fileName: string;
  fileUrl: string;
  valSplitFraction: number;
}

/**
 * Where litgpt downloads each data set (its `download_dir` default, relative to the working folder), which is
 * where litlora looks for the local copy when neither --data.json_path nor --data.download_dir is given.
 */
export const LITGPT_DOWNLOAD_DIRS: Readonly<Record<string, string>> = Object.freeze({
  Alpaca: 'data/alpaca', AlpacaGPT4: 'data/alpacagpt4', Alpaca2k: 'data/alpaca2k', LIMA: 'data/lima', Deita: 'data/deita',
  LongForm: 'data/longform',
});

const ALPACA: AlpacaFamily = {
  module: 'Alpaca', downloadDir: LITGPT_DOWNLOAD_DIRS.Alpaca!, fileName: 'alpaca_data_cleaned_archive.json',
  fileUrl: 'https://raw.githubusercontent.com/tloen/alpaca-lora/main/alpaca_data_cleaned_archive.json', valSplitFraction: 0.03865,
};

/**
 * litgpt's `Alpaca` data module over a local copy of the Alpaca file: `--data.json_path F`, or litgpt's
 * `download_dir` (+ `file_name`), by default where litgpt downloads it (./data/alpaca/).
 */
export class AlpacaData extends InstructionDataModule {
  readonly name: DataModuleName = 'Alpaca';
  protected readonly family: AlpacaFamily;

  constructor(args: AlpacaArgs, family: AlpacaFamily = ALPACA) {
    const a = new ArgReader(family.module, args);
    // litgpt's Alpaca has download_dir + file_name instead of json_path; accept both.
    const jsonPathArg = a.optionalString('json_path');
    const downloadDir = a.optionalString('download_dir') ?? family.downloadDir;
    const fileName = a.string('file_name', family.fileName);
    a.optionalString('file_url'); // accepted for litgpt's hyperparameters.yaml; never fetched
    a.optionalString('repo_id'); // Alpaca2k's Hugging Face data set, likewise
    const jsonPath = jsonPathArg ?? join(downloadDir, fileName);
    super({
      jsonPath,
      maskPrompt: a.boolean('mask_prompt', false),
      valSplitFraction: a.number('val_split_fraction', family.valSplitFraction, { min: 0, max: 1, minExclusive: true }),
      promptStyle: a.string('prompt_style', 'alpaca'),
      ignoreIndex: a.number('ignore_index', -100, { integer: true })!,
      seed: a.number('seed', 42, { integer: true, min: 0 })!,
      numWorkers: a.number('num_workers', 4, { integer: true, min: 0 })!,
    });
    a.done();
    this.family = family;
    if (existsSync(jsonPath) && statSync(jsonPath).isDirectory()) {
      fail('ERR_CONFIG', `--data ${family.module}: json_path must be a file, got the folder ${resolve(jsonPath)}`);
    }
  }

  protected override missingData(path: string): never {
    return fail('ERR_DATA', `--data ${this.family.module}: no local copy of its file at ${path} (litgpt downloads it there; litlora ` +
      `does not download). Save ${this.family.fileUrl} there, or pass --data.json_path FILE`);
  }

  toHyperparameters() {
    const o = this.options;
    return {
      class_path: `litgpt.data.${this.family.module}`,
      init_args: {
        mask_prompt: o.maskPrompt,
        val_split_fraction: o.valSplitFraction,
        prompt_style: o.promptStyle,
        ignore_index: o.ignoreIndex,
        seed: o.seed,
        num_workers: o.numWorkers,
        download_dir: dirname(o.jsonPath),
        file_url: this.family.fileUrl,
        file_name: basename(o.jsonPath),
      },
    };
  }
}

// litgpt's other instruction data sets over a local copy of their files (litlora never downloads): AlpacaGPT4 and
// Alpaca2k (Alpaca-shaped), LIMA (ShareGPT-like `conversations` of strings), Deita (`messages`) and LongForm
// (`input`/`output`). Each reads the file where litgpt keeps it (download_dir) or `--data.json_path`, turns its
// rows into instruction samples as litgpt's format_dataset / transform does, and splits as litgpt does:
// random_split(fraction, seed) for one file (reproduced exactly, ./random.ts), the data set's own train/val files
// otherwise.
//
// Alpaca2k differs: litgpt splits it with Hugging Face datasets' `train_test_split(test_size, seed)`, whose numpy
// permutation litlora does not reproduce; a local copy is split with random_split instead (same sizes, other rows).
import { fail } from '../errors.js';
import { ArgReader } from './args.js';
import type { DataModuleName } from './data_module.js';
import { AlpacaData, InstructionDataModule, LITGPT_DOWNLOAD_DIRS, type AlpacaArgs, type JSONArgs, type RowTransform } from './instruction.js';

/** litgpt's AlpacaGPT4: the GPT-4 answers to the Alpaca instructions. */
export class AlpacaGPT4Data extends AlpacaData {
  override readonly name: DataModuleName = 'AlpacaGPT4';
  constructor(args: AlpacaArgs) {
    super(args, {
      module: 'AlpacaGPT4', downloadDir: LITGPT_DOWNLOAD_DIRS.AlpacaGPT4!, fileName: 'alpacagpt4_data_cleaned_archive.json',
      fileUrl: 'https://raw.githubusercontent.com/Instruction-Tuning-with-GPT-4/GPT-4-LLM/main/data/alpaca_gpt4_data.json',
      valSplitFraction: 0.03847,
    });
  }
}

/** litgpt's Alpaca2k (mhenrichsen/alpaca_2k_test), from a local JSON copy of its rows. */
export class Alpaca2kData extends AlpacaData {
  override readonly name: DataModuleName = 'Alpaca2k';
  constructor(args: AlpacaArgs) {
    super(args, {
      module: 'Alpaca2k', downloadDir: LITGPT_DOWNLOAD_DIRS.Alpaca2k!, fileName: 'alpaca2k_data_cleaned_archive.json',
      fileUrl: 'https://huggingface.co/datasets/mhenrichsen/alpaca_2k_test', valSplitFraction: 0.05,
    });
  }
}

/** Arguments of LIMA and Deita: JSON's, plus litgpt's include_multiturn_conversations, download_dir, repo_id, access_token. */
export type ConversationDataArgs = Omit<JSONArgs, 'json_path'> & {
  json_path?: string; download_dir?: string; include_multiturn_conversations?: boolean; repo_id?: string; access_token?: string | null;
};

/** litgpt's format_dataset: the first exchange of each conversation, or every (user, assistant) pair of it. */
function exchanges(turns: string[], multiTurn: boolean): { instruction: string; input: string; output: string }[] {
  const out = [];
  for (let i = 0; i < (multiTurn ? turns.length - 1 : Math.min(1, turns.length - 1)); i += 2) {
    out.push({ instruction: turns[i]!, input: '', output: turns[i + 1]! });
  }
  return out;
}

interface ConversationDataSpec {
  module: 'LIMA' | 'Deita';
  downloadDir: string;
  repoId: string;
  valSplitFraction: number | null;
  /** A row's turns as strings. */
  turns(row: any, where: string): string[];
}

abstract class ConversationData extends InstructionDataModule {
  protected override readonly rowTransform: RowTransform;
  readonly #spec: ConversationDataSpec;
  readonly #multiTurn: boolean;
  readonly #downloadDir: string;

  protected constructor(args: ConversationDataArgs, spec: ConversationDataSpec) {
    const a = new ArgReader(spec.module, args);
    const jsonPathArg = a.optionalString('json_path');
    const downloadDir = a.optionalString('download_dir') ?? spec.downloadDir;
    const multiTurn = a.boolean('include_multiturn_conversations', false);
    a.optionalString('repo_id');
    a.optionalString('access_token'); // litgpt needs it to download LIMA; a local copy does not
    const jsonPath = jsonPathArg ?? downloadDir;
    super({
      jsonPath,
      maskPrompt: a.boolean('mask_prompt', false),
      valSplitFraction: spec.valSplitFraction === null ? null : a.number('val_split_fraction', spec.valSplitFraction, { min: 0, max: 1, minExclusive: true }),
      promptStyle: a.string('prompt_style', 'alpaca'),
      ignoreIndex: a.number('ignore_index', -100, { integer: true })!,
      seed: a.number('seed', 42, { integer: true, min: 0 })!,
      numWorkers: a.number('num_workers', 4, { integer: true, min: 0 })!,
    });
    a.done();
    this.#spec = spec;
    this.#multiTurn = multiTurn;
    this.#downloadDir = downloadDir;
    this.rowTransform = (row, where) => exchanges(spec.turns(row, where), multiTurn);
  }

  protected override missingData(path: string): never {
    const spec = this.#spec;
    return fail('ERR_DATA', `--data ${spec.module}: no local copy at ${path} (litlora does not download). Save the rows of the ` +
      `Hugging Face data set ${spec.repoId} there as JSON/JSONL (${spec.valSplitFraction === null ? 'train_sft and test_sft, or train and val, in a folder' : 'one file, or a folder with train and val'}), or pass --data.json_path`);
  }

  toHyperparameters() {
    const o = this.options;
    return {
      class_path: `litgpt.data.${this.#spec.module}`,
      init_args: {
        mask_prompt: o.maskPrompt,
        ...(this.#spec.valSplitFraction === null ? {} : { val_split_fraction: o.valSplitFraction }),
        prompt_style: o.promptStyle, ignore_index: o.ignoreIndex, seed: o.seed, num_workers: o.numWorkers,
        include_multiturn_conversations: this.#multiTurn,
        repo_id: this.#spec.repoId,
        // Where the local copy is, so that the saved run re-runs (litgpt's Deita has download_dir; LIMA has none).
        ...(this.#spec.module === 'Deita' && o.jsonPath === this.#downloadDir ? { download_dir: this.#downloadDir } : { json_path: o.jsonPath }),
      },
    };
  }
}

/** litgpt's LIMA (GAIR/lima): rows {conversations: [user, assistant, …]} as strings; random_split 0.1, seed 42. */
export class LIMAData extends ConversationData {
  readonly name: DataModuleName = 'LIMA';
  constructor(args: ConversationDataArgs) {
    super(args, {
      module: 'LIMA', downloadDir: LITGPT_DOWNLOAD_DIRS.LIMA!, repoId: 'GAIR/lima', valSplitFraction: 0.1,
      turns: (row, where) => {
        const c = row?.conversations;
        if (!Array.isArray(c) || c.length < 2 || !c.every((t: unknown) => typeof t === 'string')) {
          fail('ERR_DATA', `${where}: expected a LIMA row {"conversations": [user, assistant, …]} of at least two strings`);
        }
        return c as string[];
      },
    });
  }
}

/** litgpt's Deita (HuggingFaceH4/deita-10k-v0-sft): rows {messages: [{role, content}]}; its train_sft/test_sft splits. */
export class DeitaData extends ConversationData {
  readonly name: DataModuleName = 'Deita';
  protected override readonly splitNames = { train: ['train_sft', 'train'], val: ['test_sft', 'val'] };
  constructor(args: ConversationDataArgs) {
    super(args, {
      module: 'Deita', downloadDir: LITGPT_DOWNLOAD_DIRS.Deita!, repoId: 'HuggingFaceH4/deita-10k-v0-sft', valSplitFraction: null,
      turns: (row, where) => {
        const m = row?.messages;
        if (!Array.isArray(m) || m.length < 2 || !m.every((t: any) => typeof t?.content === 'string')) {
          fail('ERR_DATA', `${where}: expected a Deita row {"messages": [{"role", "content"}, …]} of at least two turns`);
        }
        return m.map((t: any) => t.content as string);
      },
    });
  }
}

/** litgpt's LongForm: ./data/longform/train.json and val.json of {input, output}; the input is the instruction. */
export class LongFormData extends InstructionDataModule {
  readonly name: DataModuleName = 'LongForm';
  readonly #downloadDir: string;
  protected override readonly rowTransform: RowTransform = (row, where) => {
    const r = row as Record<string, unknown> | null;
    if (!r || typeof r !== 'object' || typeof r.input !== 'string') fail('ERR_DATA', `${where}: expected a LongForm row {"input", "output"}`);
    // litgpt's _transform: item["instruction"] = item.pop("input")
    const { input, ...rest } = r;
    return [{ ...rest, instruction: input }];
  };

  constructor(args: Omit<ConversationDataArgs, 'include_multiturn_conversations' | 'repo_id' | 'access_token'>) {
    const a = new ArgReader('LongForm', args);
    const downloadDir = a.optionalString('download_dir') ?? LITGPT_DOWNLOAD_DIRS.LongForm!;
    const jsonPath = a.optionalString('json_path') ?? downloadDir;
    super({
      jsonPath, valSplitFraction: null,
      maskPrompt: a.boolean('mask_prompt', false),
      promptStyle: a.string('prompt_style', 'longform'),
      ignoreIndex: a.number('ignore_index', -100, { integer: true })!,
      seed: a.number('seed', 42, { integer: true, min: 0 })!,
      numWorkers: a.number('num_workers', 4, { integer: true, min: 0 })!,
    });
    a.done();
    this.#downloadDir = downloadDir;
  }

  protected override missingData(path: string): never {
    return fail('ERR_DATA', `--data LongForm: no local copy at ${path} (litlora does not download). Save ` +
      'https://raw.githubusercontent.com/akoksal/LongForm/main/dataset/train.json and val.json there, or pass --data.json_path');
  }

  toHyperparameters() {
    const o = this.options;
    return {
      class_path: 'litgpt.data.LongForm',
      init_args: {
        mask_prompt: o.maskPrompt, prompt_style: o.promptStyle, ignore_index: o.ignoreIndex, seed: o.seed, num_workers: o.numWorkers,
        download_dir: o.jsonPath === this.#downloadDir ? this.#downloadDir : o.jsonPath,
      },
    };
  }
}

// Shared by `litlora generate` and `litlora chat`: their flags (litgpt's names and defaults) and loading a
// folder of any kind — base, merged, or LoRA-only (auto-merged in memory) — with its tokenizer and prompt style.
import { join, relative, resolve } from 'node:path';
import { extendCheckpointDir } from '../io/checkpoint.js';
import { loadPromptStyle, type PromptStyle } from '../data/prompts.js';
import { Tokenizer } from '../data/tokenizer.js';
import type { TextGenerateOptions } from '../generate/generate.js';
import { Model, type ModelDtype } from '../model/model.js';
import type { CliIO, FlagSpec, ParsedArgs } from './args.js';

export const SAMPLING_FLAGS: FlagSpec[] = [
  { name: 'max_new_tokens', type: 'int', default: 50, help: 'The number of tokens to generate at most' },
  { name: 'top_k', type: 'int', default: 50, nullable: true, help: 'Sample from the k most likely tokens only (null: all)' },
  { name: 'top_p', type: 'float', default: 1.0, help: 'Nucleus sampling: keep the smallest set of tokens whose probability exceeds top_p (1: off)' },
  { name: 'temperature', type: 'float', default: 0.8, help: 'Sampling temperature; 0 = greedy (always the most likely token)' },
  { name: 'seed', type: 'int', default: 1234, help: 'Seed of the sampling' },
];

export const LOAD_FLAGS: FlagSpec[] = [
  { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'A checkpoint folder: a base model, out_dir/final, out_dir/step-XXXXXX (LoRA-only folders are merged in memory), or a merged folder' },
  { name: 'pretrained_checkpoint_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'The base model of a LoRA folder (default: hyperparameters.yaml\'s checkpoint_dir)' },
  { name: 'lora_mode', type: 'string', default: 'merged', choices: ['merged', 'runtime'], help: 'A LoRA folder\'s adapter: merged into the weights once, or applied at runtime' },
  { name: 'precision', type: 'string', default: null, nullable: true, choices: ['32-true', 'bf16-true', '16-true'], help: 'Weights dtype (default: the checkpoint\'s)' },
  { name: 'device', type: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
];

const PRECISION: Record<string, ModelDtype> = { '32-true': 'float32', 'bf16-true': 'bfloat16', '16-true': 'float16' };

export interface Loaded {
  model: Model;
  tokenizer: Tokenizer;
  promptStyle: PromptStyle;
  dir: string;
}

/** Loads the model, tokenizer and prompt style of `--checkpoint_dir`, telling stderr what it did (as litgpt does). */
export async function loadForGeneration(args: ParsedArgs, io: CliIO): Promise<Loaded> {
  const dir = extendCheckpointDir(args.get<string>('checkpoint_dir'), io.cwd);
  const start = performance.now();
  const precision = args.get<string | null>('precision');
  const model = await Model.load(dir, {
    cwd: io.cwd,
    base: args.get<string | null>('pretrained_checkpoint_dir') ?? undefined,
    mode: args.get<'merged' | 'runtime'>('lora_mode'),
    dtype: precision ? PRECISION[precision] : undefined,
    device: args.get<string>('device') as never,
  });
  const s = model.source!;
  const rel = (p: string) => { const r = relative(io.cwd, p); return r && !r.startsWith('..') ? r : p; };
  io.err(`Loading model ${JSON.stringify(rel(join(s.dir, s.adapter ? 'lit_model.pth.lora' : 'lit_model.pth')))} (${model.dtype}, ${model.device})\n`);
  if (s.adapter) {
    const how = s.baseVia === 'option' ? '--pretrained_checkpoint_dir' : `checkpoint_dir in ${rel(join(s.dir, 'hyperparameters.yaml'))}`;
    io.err(s.mode === 'merged'
      ? `Merged the LoRA weights into the base model ${JSON.stringify(rel(s.base!))} in memory (base found through ${how}); nothing was written.\n`
      : `Applying the LoRA weights at runtime on the base model ${JSON.stringify(rel(s.base!))} (base found through ${how}).\n`);
  }
  io.err(`Time to load the model: ${((performance.now() - start) / 1000).toFixed(2)} seconds.\n`);
  const tokenizer = Tokenizer.fromDir(dir);
  const promptStyle = loadPromptStyle(dir).forTokenizer(tokenizer);
  return { model, tokenizer, promptStyle, dir };
}

export function samplingOptions(args: ParsedArgs): TextGenerateOptions {
  return {
    maxNewTokens: args.get<number>('max_new_tokens'),
    topK: args.get<number | null>('top_k'),
    topP: args.get<number>('top_p'),
    temperature: args.get<number>('temperature'),
    seed: args.get<number>('seed'),
  };
}


#!/usr/bin/env node
// litlora's command line: `litlora <command> [args]`, with litgpt's command names and flag grammar.
// Commands live one per file in this folder and load lazily, so `litlora migrate` never loads the native
// addon. Adding a command is one line in COMMANDS. A two-word command (`litlora finetune lora`) is the entry
// `finetune_lora`. Exit codes: 0 done, 1 failed (an error with a code), 2 bad command line.
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../addon_loader.js';
import { ioError, isFsError } from '../io/fs_errors.js';
import { ArgError, helpText, parseArgs, type CliIO, type CommandSpec } from './args.js';

type CommandModule = { command: CommandSpec };

/** name → [one-line summary, loader]. */
export const COMMANDS: Record<string, [string, () => Promise<CommandModule>]> = {
  download: ['Download a model from the Hugging Face Hub into checkpoints/ORG/NAME (litgpt download)', () => import('./download.js')],
  init: ['Make a base checkpoint folder (random weights, byte-level tokenizer) in litgpt\'s layout', () => import('./init.js')],
  build: ['Rebuild the native addon against the libtorch found now', () => import('./build.js')],
  migrate: ['Rewrite a pre-unification lit-gpt output folder into litgpt\'s current layout', () => import('./migrate.js')],
  finetune_lora: ['LoRA-finetune a base checkpoint (litgpt finetune lora) into step-XXXXXX/ and final/ folders', () => import('./finetune.js')],
  merge_lora: ['Merge a LoRA folder\'s adapter into its base model (a full lit_model.pth)', () => import('./merge_lora.js')],
  convert_lora_to_peft: ['Convert a LoRA folder into a PEFT adapter folder (transformers, vLLM, TGI)', () => import('./convert_lora_to_peft.js')],
  convert_peft_to_lora: ['Convert a PEFT LoRA adapter folder into a LoRA folder on a base checkpoint', () => import('./convert_peft_to_lora.js')],
  generate: ['Generate text with a base, LoRA or merged checkpoint folder', () => import('./generate.js')],
  chat: ['Chat with a base, LoRA or merged checkpoint folder', () => import('./chat.js')],
  serve: ['Serve a checkpoint folder and LoRA adapters on it over an OpenAI-compatible HTTP API', () => import('./serve.js')],
  convert_to_litgpt: ['Convert a Hugging Face model folder to litgpt\'s lit_model.pth + model_config.yaml', () => import('./convert_to_litgpt.js')],
  convert_from_litgpt: ['Convert a litgpt folder (base, merged or LoRA) to a Hugging Face transformers folder', () => import('./convert_from_litgpt.js')],
  convert_to_gguf: ['Convert a litgpt folder (base, merged or LoRA) to a GGUF file for llama.cpp', () => import('./convert_to_gguf.js')],
  convert_lora_to_gguf: ['Convert a LoRA folder\'s adapter to a GGUF LoRA adapter for llama.cpp', () => import('./convert_lora_to_gguf.js')],
  demo: ['The whole workflow on a small model in a few minutes, nothing downloaded', () => import('./demo.js')],
  doctor: ['Show what litlora found here (Node, build tools, libtorch, CUDA, the addon) and what is missing', () => import('./doctor.js')],
};

/** The version in the package's package.json (read where the package is installed, so it is the one running). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** How a command is spelled: litgpt's two-word commands (`finetune lora`) with a space, the others as named. */
const TWO_WORD = new Set(['finetune_lora']);
const spelled = (name: string) => (TWO_WORD.has(name) ? name.replace('_', ' ') : name);

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => spelled(n).length)) + 2;
  return [
    'Usage: litlora <command> [args] [--flag value ...]',
    '',
    'LoRA fine-tuning for Node.js over libtorch, with litgpt\'s checkpoint folders and commands.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, [summary]]) => `  ${spelled(name).padEnd(width)}${summary}`),
    '',
    'Run `litlora <command> --help` for a command\'s flags, `litlora --version` for the version.',
    '',
  ].join('\n');
}

const defaultIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  cwd: process.cwd(),
};

/** Runs one command line (the words after `litlora`); returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIO = defaultIO): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.out(usage());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-V') {
    io.out(`${packageVersion()}\n`);
    return 0;
  }
  let name = first, rest = argv.slice(1);
  if (second !== undefined && COMMANDS[`${first}_${second}`]) {
    name = `${first}_${second}`;
    rest = argv.slice(2);
  } else if (first === 'finetune') {
    name = 'finetune_lora'; // litgpt's `litgpt finetune` is its alias for `finetune lora`
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.err(`litlora: unknown command '${first}'. Commands: ${Object.keys(COMMANDS).map(spelled).join(', ')}.\n` +
      'Run `litlora --help` for what each does.\n');
    return 2;
  }
  const { command } = await entry[1]();
  try {
    const args = parseArgs(command, rest, io.cwd);
    if (args === 'help') {
      io.out(helpText(command));
      return 0;
    }
    const code = await command.run(args, { ...io, runCli });
    return typeof code === 'number' ? code : 0;
  } catch (caught) {
    // A file-system error no layer below put in words (ENOENT, ENOTDIR, ENOSPC, ...) is an ERR_IO too.
    const e = isFsError(caught) ? ioError(caught) : caught;
    if (e instanceof ArgError) {
      io.err(`litlora ${command.name}: ${e.message}\n`);
      return 2;
    }
    // Any error with a stable code (a LitloraError, native ones included): by its code, not by instanceof, since a
    // lazily imported command may hold another instance of the errors module (tsx loaders do that).
    const code = (e as { code?: unknown })?.code;
    if (e instanceof Error && typeof code === 'string' && code.startsWith('ERR_')) {
      io.err(`litlora ${command.name}: error [${code}]: ${e.message}\n`);
      return 1;
    }
    io.err(`litlora ${command.name}: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  runCli(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}

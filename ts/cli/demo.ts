// `litlora demo` (`npm run demo`): the whole workflow on a small model with nothing downloaded (see ./demo_workflow.ts).
import { runDemo } from './demo_workflow.js';
import type { CommandSpec } from './args.js';

export const command: CommandSpec = {
  name: 'demo',
  summary: 'The whole LoRA workflow in a few minutes on a CPU: init, pretrain, finetune, auto-merge, merge_lora.',
  description: `
Makes a small model with litlora init, pretrains it briefly on a synthetic text corpus (a LoRA on every
layer, merged), measures its answers to held-out instructions, LoRA-finetunes it with litlora finetune lora
on a synthetic instruction task, loads the LoRA-only final/ folder (merged with its base on load), measures
again, writes a full model with merge_lora, and shows the folder layout and file sizes. Every command it
runs is printed so it can be run by hand. It replaces its own --out_dir (a folder it made) on each run.`,
  flags: [
    { name: 'out_dir', type: 'path', default: 'litlora-demo', metavar: 'DIR', help: 'The demo\'s folder' },
    { name: 'quick', type: 'bool', default: false, help: 'A shorter run (CI)' },
    { name: 'device', type: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
    { name: 'progress', type: 'string', default: 'auto', choices: ['auto', 'plain', 'quiet'], help: 'Training progress: a bar on a terminal (lines otherwise), plain lines, or quiet (validations only)' },
  ],
  examples: ['npm run demo', 'npx litlora demo --quick --out_dir /tmp/demo'],
  async run(args, io) {
    const { resolve } = await import('node:path');
    if (!io.runCli) throw new Error('litlora demo runs through runCli (ts/cli/main.ts), which provides io.runCli');
    const result = await runDemo({
      runCli: io.runCli,
      outDir: resolve(io.cwd, args.get<string>('out_dir')),
      quick: args.get<boolean>('quick'),
      device: args.get<string>('device'),
      progress: args.get<'auto' | 'plain' | 'quiet'>('progress'),
      log: io.out,
    });
    return result.after.accuracy > result.before.accuracy ? 0 : 1;
  },
};

// `litlora merge_lora <dir>`: litgpt's merge_lora — a LoRA folder's base + adapter → a full lit_model.pth,
// streamed tensor by tensor (see ts/model/merge.ts).
import { relative } from 'node:path';
import { MERGE_PRECISIONS, mergeLora } from '../model/merge.js';
import type { CommandSpec } from './args.js';

export const command: CommandSpec = {
  name: 'merge_lora',
  summary: 'Merge a LoRA finetune folder\'s adapter into its base model: a full lit_model.pth.',
  description: `
Reads lit_model.pth.lora and hyperparameters.yaml (LoRA settings, and checkpoint_dir naming the base) in
DIR, and writes lit_model.pth next to the adapter as litgpt does — or, with --out_dir, a new folder that
also gets DIR's model_config.yaml, tokenizer and prompt style files (a full model to generate with or
train further). Merges tensor by tensor: memory stays near the largest tensor, not the model. An existing
output is left alone unless --force.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The LoRA folder (out_dir/final or out_dir/step-XXXXXX)' },
    { name: 'pretrained_checkpoint_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'The base model (default: hyperparameters.yaml\'s checkpoint_dir)' },
    { name: 'out_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', defaultText: 'DIR itself', help: 'Write the merged model into this folder instead' },
    { name: 'precision', type: 'string', default: null, nullable: true, choices: Object.keys(MERGE_PRECISIONS), help: 'Output weights dtype (default: the base file\'s)' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing merged lit_model.pth' },
  ],
  examples: [
    'litlora merge_lora out/finetune/lora/final',
    'litlora merge_lora out/finetune/lora/final --out_dir out/finetune/lora/final_merged',
  ],
  async run(args, io) {
    const result = await mergeLora(args.get<string>('checkpoint_dir'), {
      cwd: io.cwd,
      pretrainedCheckpointDir: args.get<string | null>('pretrained_checkpoint_dir'),
      outDir: args.get<string | null>('out_dir'),
      precision: args.get<string | null>('precision'),
      force: args.get<boolean>('force'),
    });
    if (result.skipped) {
      io.out(`${result.message}\n`);
      return 0;
    }
    const rel = (p: string) => { const r = relative(io.cwd, p); return r && !r.startsWith('..') ? r : p; };
    io.err(`Base model: ${rel(result.base!)} (${result.baseVia === 'option' ? '--pretrained_checkpoint_dir' : `hyperparameters.yaml checkpoint_dir, found ${result.baseVia === 'folder' ? 'relative to the folder' : result.baseVia === 'checkpoints' ? 'under checkpoints/' : 'as given'}`})\n`);
    io.err(`Merged ${result.mergedLayers} LoRA layers into ${result.tensors} tensors (${(result.bytesWritten / 1e6).toFixed(1)} MB) in ${result.seconds.toFixed(2)} s\n`);
    io.out(`${result.message}\n`);
    return 0;
  },
};

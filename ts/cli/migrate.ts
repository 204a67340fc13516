// `litlora migrate <path>`: pre-unification lit-gpt outputs → litgpt's current folder layout.
import { relative } from 'node:path';
import { migrateCheckpoint, registerQkvRelayout } from '../model/migrate.js';
import { relayoutQkvFile } from '../model/model.js';
import type { CommandSpec, FlagSpec } from './args.js';
import { loraFlags, loraFromFlags } from './lora_flags.js';

const loraFlagSpecs: FlagSpec[] = loraFlags({
  r: 'The LoRA rank the old run used',
  alpha: 'The LoRA alpha the old run used',
  dropout: 'The LoRA dropout the old run used',
  query: 'LoRA on the attention query weights',
  key: 'LoRA on the attention key weights',
  value: 'LoRA on the attention value weights',
  projection: 'LoRA on the attention output projection',
  mlp: 'LoRA on the MLP weights',
  head: 'LoRA on the output head',
});

export const command: CommandSpec = {
  name: 'migrate',
  summary: 'Rewrite a pre-unification lit-gpt output folder into litgpt\'s current layout.',
  description: `
Recognises lit_model_lora_finetuned.pth (→ final/lit_model.pth.lora), iter-XXXXXX-ckpt.pth
(→ step-XXXXXX/lit_model.pth.lora), lit_model_finetuned.pth (→ final/lit_model.pth), lit_config.json
(→ model_config.yaml) and version_N/ logs (→ logs/csv/version_N/). Each new folder gets the base
checkpoint's model_config.yaml and tokenizer files, a hyperparameters.yaml naming the base and the LoRA
settings, and prompt_style.yaml. The old files did not record the base model or the LoRA settings, so
give them: --checkpoint_dir, and the --lora_* values if the run did not use lit-gpt's defaults.
Weight files are moved, not copied. Use --dry_run to see the plan first.`,
  positionals: [{ flag: 'path', metavar: 'PATH' }],
  flags: [
    { name: 'path', type: 'path', required: true, metavar: 'DIR', help: 'The folder with the old files' },
    { name: 'checkpoint_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'The base checkpoint the old run finetuned' },
    ...loraFlagSpecs,
    { name: 'precision', type: 'string', default: null, nullable: true, help: 'The precision the old run used (recorded in hyperparameters.yaml)' },
    { name: 'prompt_style', type: 'string', default: 'litgpt.prompts.Alpaca', help: 'prompt_style.yaml\'s class_path' },
    { name: 'iters_per_step', type: 'int', default: 1, help: 'Micro-batches per optimizer step of the old run (iter-N → step-N/iters_per_step)' },
    { name: 'dry_run', type: 'bool', default: false, help: 'Print the plan and change nothing' },
  ],
  examples: [
    'litlora migrate out/lora/alpaca --checkpoint_dir checkpoints/EleutherAI/pythia-14m',
    'litlora migrate out/lora/alpaca --checkpoint_dir checkpoints/base --lora_r 16 --lora_key true --dry_run',
  ],
  async run(args, io) {
    // The command line converts old attn.attn weights to attn.qkv as it moves them (the library leaves that
    // hook to its caller, so that plain file migration needs no native addon).
    registerQkvRelayout((source, target, config, kind) => relayoutQkvFile(source, config, kind, target));
    const lora = loraFromFlags(args.values);
    const dryRun = args.get<boolean>('dry_run');
    const result = await migrateCheckpoint(args.get<string>('path'), {
      checkpointDir: args.get<string | null>('checkpoint_dir'),
      lora,
      precision: args.get<string | null>('precision'),
      promptStyle: args.get<string>('prompt_style'),
      itersPerStep: args.get<number>('iters_per_step'),
      dryRun,
      cwd: io.cwd,
    });
    const show = (p: string) => relative(result.dir, p) || '.';
    if (result.steps.length) {
      io.out(`${dryRun ? 'Would migrate' : 'Migrated'} ${result.dir}:\n`);
      for (const s of result.steps) {
        io.out(`  ${s.action.padEnd(8)} ${s.from ? `${show(s.from)} → ` : ''}${show(s.to)}\n`);
      }
    }
    for (const n of result.notes) io.out(`note: ${n}\n`);
    if (!dryRun && result.folders.length) {
      io.out(`Checkpoint folders: ${result.folders.map(show).join(', ')}\n`);
    }
  },
};

// `litlora convert_peft_to_lora PEFT_DIR --checkpoint_dir BASE --out_dir OUT`: a PEFT LoRA adapter folder →
// a litgpt LoRA folder on BASE (ts/interop/peft_import.ts).
import { relative } from 'node:path';
import { convertPeftToLora } from '../interop/peft_import.js';
import { LORA_TARGETS } from '../model/lora_settings.js';
import type { CommandSpec } from './args.js';

export const command: CommandSpec = {
  name: 'convert_peft_to_lora',
  summary: 'Convert a PEFT LoRA adapter folder into a litgpt LoRA folder on a base checkpoint.',
  description: `
Reads adapter_config.json and adapter_model.safetensors in PEFT_DIR and writes OUT with lit_model.pth.lora,
hyperparameters.yaml (naming BASE and the lora_* settings), model_config.yaml and BASE's tokenizer files:
a LoRA folder that generate, chat and merge_lora load like a finetune's final/. BASE is the litgpt
checkpoint of the model the adapter was trained on (convert_to_litgpt makes one from a Hugging Face
folder). Adapters litgpt's LoRA cannot express (DoRA, per-module ranks, biases, modules outside the
attention/MLP/head linears) are refused with the reason. An existing, non-empty OUT is left alone unless
--force.`,
  positionals: [{ flag: 'peft_dir', metavar: 'PEFT_DIR' }],
  flags: [
    { name: 'peft_dir', type: 'path', required: true, metavar: 'DIR', help: 'The PEFT adapter folder (adapter_config.json, adapter_model.safetensors)' },
    { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The base checkpoint the adapter was trained on' },
    { name: 'out_dir', type: 'path', required: true, metavar: 'DIR', help: 'The LoRA folder to write' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing, non-empty OUT' },
  ],
  examples: [
    'litlora convert_peft_to_lora my-adapter --checkpoint_dir checkpoints/meta-llama/Llama-3.2-1B --out_dir out/my-adapter',
  ],
  async run(args, io) {
    const result = await convertPeftToLora(args.get<string>('peft_dir'), {
      checkpointDir: args.get<string>('checkpoint_dir'),
      outDir: args.get<string>('out_dir'),
      force: args.get<boolean>('force'),
      cwd: io.cwd,
    });
    const rel = (p: string) => { const r = relative(io.cwd, p); return r && !r.startsWith('..') ? r : p; };
    const s = result.settings;
    io.err(`${result.family}: ${result.modules} modules → lora_r ${s.r}, lora_alpha ${s.alpha}, ` +
      `${LORA_TARGETS.filter((t) => s[t]).map((t) => `lora_${t}`).join(', ')}\n`);
    if (result.zeroFilled.length) {
      io.err(`The adapter leaves out ${result.zeroFilled.length} module(s) of those targets (${result.zeroFilled.slice(0, 3).join(', ')}` +
        `${result.zeroFilled.length > 3 ? ', …' : ''}); they get zero LoRA weights, which change nothing.\n`);
    }
    io.out(`Saved the LoRA checkpoint to ${JSON.stringify(rel(result.dir))}\n`);
    return 0;
  },
};

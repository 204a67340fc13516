// `litlora convert_lora_to_peft LORA_DIR OUTPUT_DIR`: a litgpt LoRA folder → a PEFT adapter folder
// (ts/interop/peft_export.ts), for transformers + PEFT, vLLM or TGI.
import { relative } from 'node:path';
import { convertLoraToPeft } from '../interop/peft_export.js';
import type { CommandSpec } from './args.js';

export const command: CommandSpec = {
  name: 'convert_lora_to_peft',
  summary: 'Convert a LoRA finetune folder into a PEFT adapter folder (adapter_config.json + adapter_model.safetensors).',
  description: `
Reads lit_model.pth.lora, hyperparameters.yaml (the LoRA settings) and model_config.yaml in LORA_DIR and
writes OUTPUT_DIR with adapter_config.json and adapter_model.safetensors, which PEFT's
PeftModel.from_pretrained loads onto the Hugging Face version of the base model (Llama, Qwen2, GPT-NeoX),
computing what the LoRA folder computes here. Tensors keep the adapter's dtype. OUTPUT_DIR appears whole;
an existing, non-empty OUTPUT_DIR is left alone unless --force.`,
  positionals: [{ flag: 'lora_dir', metavar: 'LORA_DIR' }, { flag: 'output_dir', metavar: 'OUTPUT_DIR' }],
  flags: [
    { name: 'lora_dir', type: 'path', required: true, metavar: 'DIR', help: 'The LoRA folder (out_dir/final or out_dir/step-XXXXXX)' },
    { name: 'output_dir', type: 'path', required: true, metavar: 'DIR', help: 'The PEFT adapter folder to write' },
    { name: 'base_model_name_or_path', type: 'string', default: null, nullable: true, metavar: 'NAME',
      defaultText: 'the base\'s Hugging Face name, else its folder', help: 'adapter_config.json\'s base_model_name_or_path' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing, non-empty OUTPUT_DIR' },
  ],
  examples: [
    'litlora convert_lora_to_peft out/finetune/lora/final out/peft-adapter',
  ],
  async run(args, io) {
    const result = await convertLoraToPeft(args.get<string>('lora_dir'), args.get<string>('output_dir'), {
      cwd: io.cwd,
      baseModelNameOrPath: args.get<string | null>('base_model_name_or_path'),
      force: args.get<boolean>('force'),
    });
    const rel = (p: string) => { const r = relative(io.cwd, p); return r && !r.startsWith('..') ? r : p; };
    const c = result.adapterConfig;
    io.err(`${result.family}: ${result.tensors} tensors on ${(c.target_modules as string[]).join(', ')} (r ${c.r}, lora_alpha ${c.lora_alpha})\n`);
    io.out(`Saved the PEFT adapter to ${JSON.stringify(rel(result.dir))}\n`);
    return 0;
  },
};

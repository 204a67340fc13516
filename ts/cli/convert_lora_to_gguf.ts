// `litlora convert_lora_to_gguf LORA_DIR OUTPUT.gguf`: a LoRA folder's adapter as a GGUF LoRA adapter that
// llama.cpp applies over the base model's GGUF (see ts/gguf/lora.ts).
import { convertLoraToGguf, GGUF_LORA_OUTTYPES } from '../gguf/lora.js';
import type { CommandSpec } from './args.js';
import { tensorProgress } from './tensor_progress.js';

export const command: CommandSpec = {
  name: 'convert_lora_to_gguf',
  summary: 'Convert a LoRA folder\'s adapter to a GGUF LoRA adapter for llama.cpp.',
  description: `
Writes OUTPUT.gguf as llama.cpp's convert_lora_to_gguf.py writes the same adapter (general.type adapter,
adapter.lora.alpha, lora_a / lora_b under the base tensors' GGUF names, the fused QKV split per target).
Use it over the base model's GGUF (litlora convert_to_gguf BASE_DIR base.gguf), e.g. node-llama-cpp's
createContext({ lora: { adapters: [{ filePath }] } }) or llama.cpp's --lora.`,
  positionals: [{ flag: 'lora_dir', metavar: 'LORA_DIR' }, { flag: 'output_file', metavar: 'OUTPUT.gguf' }],
  flags: [
    { name: 'lora_dir', type: 'path', required: true, metavar: 'LORA_DIR', help: 'The LoRA finetune folder (final/ or step-XXXXXX/)' },
    { name: 'output_file', type: 'path', required: true, metavar: 'OUTPUT.gguf', help: 'The GGUF adapter file to write' },
    { name: 'outtype', type: 'string', default: 'f16', choices: [...GGUF_LORA_OUTTYPES], help: 'Type of lora_a / lora_b' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing output file' },
    { name: 'base', type: 'path', default: null, nullable: true, metavar: 'BASE', help: 'The base model (its GGUF or litgpt folder) the adapter is for: refused unless the shapes match' },
  ],
  examples: ['litlora convert_lora_to_gguf out/finetune/lora/final out/adapter.gguf'],
  async run(args, io) {
    const progress = tensorProgress('Converting');
    const result = await convertLoraToGguf(args.get<string>('lora_dir'), args.get<string>('output_file'), {
      cwd: io.cwd, onProgress: progress.onProgress,
      outtype: args.get<(typeof GGUF_LORA_OUTTYPES)[number]>('outtype'), force: args.get<boolean>('force'),
      base: args.get<string | null>('base'),
    }).finally(progress.stop);
    io.err(`Wrote the adapter of ${result.layers} layers (alpha ${result.alpha}, ${(result.bytesWritten / 1e6).toFixed(2)} MB) ` +
      `for ${result.architecture} in ${result.seconds.toFixed(2)} s\n`);
    io.out(`Saved the GGUF adapter to ${result.outputFile}\n`);
    return 0;
  },
};

// `litlora convert_to_gguf DIR OUTPUT.gguf`: a litgpt folder as one GGUF file for llama.cpp / node-llama-cpp /
// Ollama / LM Studio (see ts/gguf/convert.ts).
import { convertToGguf, GGUF_OUTTYPES, type GgufOuttype } from '../gguf/convert.js';
import type { CommandSpec } from './args.js';
import { tensorProgress } from './tensor_progress.js';

export const command: CommandSpec = {
  name: 'convert_to_gguf',
  summary: 'Convert a litgpt folder (base, merged or LoRA) to a GGUF file for llama.cpp.',
  description: `
Writes OUTPUT.gguf as llama.cpp's convert_hf_to_gguf.py writes the same model: its architecture, tensor
names and layouts, hyperparameters, and the tokenizer (tokens, merges, special tokens, chat template) from
tokenizer.json / tokenizer_config.json. DIR may be a base, a full finetune, a merged final/, or a LoRA-only
folder (merged on the fly with its base). --outtype sets the matrices' type (norms and biases stay f32).
The file appears whole; an existing one is replaced only with --force.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }, { flag: 'output_file', metavar: 'OUTPUT.gguf' }],
  flags: [
    { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The litgpt checkpoint folder' },
    { name: 'output_file', type: 'path', required: true, metavar: 'OUTPUT.gguf', help: 'The GGUF file to write' },
    { name: 'outtype', type: 'string', default: 'f16', choices: [...GGUF_OUTTYPES], help: 'Type of the weight matrices' },
    { name: 'pretrained_checkpoint_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'The base of a LoRA folder (default: hyperparameters.yaml\'s checkpoint_dir)' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing output file' },
  ],
  examples: [
    'litlora convert_to_gguf out/finetune/lora/final out/model.gguf',
    'litlora convert_to_gguf checkpoints/Qwen/Qwen2.5-0.5B out/qwen-q8_0.gguf --outtype q8_0',
  ],
  async run(args, io) {
    const progress = tensorProgress('Converting');
    const result = await convertToGguf(args.get<string>('checkpoint_dir'), args.get<string>('output_file'), {
      cwd: io.cwd,
      onProgress: progress.onProgress,
      outtype: args.get<GgufOuttype>('outtype'),
      pretrainedCheckpointDir: args.get<string | null>('pretrained_checkpoint_dir'),
      force: args.get<boolean>('force'),
    }).finally(progress.stop);
    io.err(`${result.merged ? 'Merged the LoRA adapter into its base, then wrote' : 'Wrote'} ${result.tensors} tensors ` +
      `(${(result.bytesWritten / 1e6).toFixed(1)} MB, ${result.outtype}) as ${result.architecture} in ${result.seconds.toFixed(2)} s\n`);
    io.out(`Saved the GGUF model to ${result.outputFile}\n`);
    return 0;
  },
};

// `litlora convert_from_litgpt DIR OUTPUT_DIR`: litgpt's convert_lit_checkpoint, writing a whole Hugging Face
// folder that transformers loads (see ts/interop/convert_from_litgpt.ts).
import { CONVERT_DTYPES } from '../interop/convert_to_litgpt.js';
import { convertFromLitgpt } from '../interop/convert_from_litgpt.js';
import type { Dtype } from '../tensor.js';
import type { CommandSpec } from './args.js';
import { tensorProgress } from './tensor_progress.js';

export const command: CommandSpec = {
  name: 'convert_from_litgpt',
  summary: 'Convert a litgpt folder (base, merged or LoRA) to a Hugging Face transformers folder.',
  description: `
Writes OUTPUT_DIR with config.json, model.safetensors (sharded with model.safetensors.index.json above
--max_shard_size), generation_config.json and the tokenizer files, so that
transformers.AutoModelForCausalLM.from_pretrained(OUTPUT_DIR) loads it with no missing or unexpected weights.
DIR may be a base, a full finetune, a merged final/, or a LoRA-only folder (merged on the fly with its base).
The output folder appears whole; an existing non-empty one is replaced only with --force.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }, { flag: 'output_dir', metavar: 'OUTPUT_DIR' }],
  flags: [
    { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The litgpt checkpoint folder' },
    { name: 'output_dir', type: 'path', required: true, metavar: 'OUTPUT_DIR', help: 'The Hugging Face folder to write' },
    { name: 'max_shard_size', type: 'string', default: '5GB', help: 'Largest safetensors shard ("5GB", "500MB", or bytes)' },
    { name: 'dtype', type: 'string', default: null, nullable: true, choices: [...CONVERT_DTYPES], help: 'Weights dtype (default: as stored)' },
    { name: 'pretrained_checkpoint_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'The base of a LoRA folder (default: hyperparameters.yaml\'s checkpoint_dir)' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing output folder' },
  ],
  examples: [
    'litlora convert_from_litgpt out/finetune/lora/final out/hf-model',
    'litlora convert_from_litgpt checkpoints/Qwen/Qwen2.5-0.5B out/qwen-hf --max_shard_size 500MB',
  ],
  async run(args, io) {
    const progress = tensorProgress('Converting');
    const result = await convertFromLitgpt(args.get<string>('checkpoint_dir'), args.get<string>('output_dir'), {
      cwd: io.cwd,
      onProgress: progress.onProgress,
      maxShardSize: args.get<string>('max_shard_size'),
      dtype: args.get<Dtype | null>('dtype'),
      pretrainedCheckpointDir: args.get<string | null>('pretrained_checkpoint_dir'),
      force: args.get<boolean>('force'),
    }).finally(progress.stop);
    io.err(`${result.merged ? 'Merged the LoRA adapter into its base, then wrote' : 'Wrote'} ${result.tensors} tensors ` +
      `(${(result.bytesWritten / 1e6).toFixed(1)} MB, ${result.weightFiles.length} file${result.weightFiles.length > 1 ? 's' : ''}) ` +
      `as ${result.architecture}${result.tied ? ' with tied embeddings' : ''} in ${result.seconds.toFixed(2)} s\n`);
    io.out(`Saved the Hugging Face model to ${result.outputDir}\n`);
    return 0;
  },
};

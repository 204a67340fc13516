// `litlora convert_to_litgpt DIR`: litgpt's convert_hf_checkpoint — a Hugging Face model folder gets
// lit_model.pth + model_config.yaml next to its files (see ts/interop/convert_to_litgpt.ts).
import { configNames } from '../model/configs.js';
import { CONVERT_DTYPES, convertToLitgpt } from '../interop/convert_to_litgpt.js';
import { supportedArchitectures } from '../interop/hf_config.js';
import type { Dtype } from '../tensor.js';
import type { CommandSpec } from './args.js';
import { tensorProgress } from './tensor_progress.js';

export const command: CommandSpec = {
  name: 'convert_to_litgpt',
  summary: 'Convert a Hugging Face model folder to litgpt\'s lit_model.pth + model_config.yaml.',
  description: `
Reads DIR's config.json and weights (model.safetensors, sharded safetensors with model.safetensors.index.json,
or pytorch_model.bin; a hub cache folder models--ORG--NAME resolves to its snapshot) and writes lit_model.pth and
model_config.yaml next to them, tensor for tensor what litgpt's convert_hf_checkpoint writes. The litgpt config is
inferred from config.json (a named config when one matches, else built from config.json's fields); --model_name
picks one by name. Streams tensor by tensor; an existing lit_model.pth is kept unless --force.
Architectures: ${supportedArchitectures()}.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'DIR' }],
  flags: [
    { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The Hugging Face model folder' },
    { name: 'model_name', type: 'string', default: null, nullable: true, help: `A litgpt config name (${configNames().length} known; default: inferred from config.json)` },
    { name: 'dtype', type: 'string', default: null, nullable: true, choices: [...CONVERT_DTYPES], help: 'Weights dtype (default: as stored)' },
    { name: 'force', type: 'bool', default: false, help: 'Replace an existing lit_model.pth' },
  ],
  examples: [
    'litlora convert_to_litgpt checkpoints/EleutherAI/pythia-14m',
    'litlora convert_to_litgpt ./my-hf-model --dtype bfloat16',
  ],
  async run(args, io) {
    const progress = tensorProgress('Converting');
    const result = await convertToLitgpt(args.get<string>('checkpoint_dir'), {
      cwd: io.cwd,
      onProgress: progress.onProgress,
      modelName: args.get<string | null>('model_name'),
      dtype: args.get<Dtype | null>('dtype'),
      force: args.get<boolean>('force'),
    }).finally(progress.stop);
    const via = { model_name: '--model_name', named: 'the named litgpt config config.json describes', 'config.json': 'config.json\'s fields' }[result.configVia];
    io.err(`Config: ${result.config.name} (${via})\n`);
    io.err(`Wrote ${result.tensors} tensors (${(result.bytesWritten / 1e6).toFixed(1)} MB) in ${result.seconds.toFixed(2)} s\n`);
    io.out(`Saved converted checkpoint to ${result.dir}\n`);
    return 0;
  },
};

// `litlora init`: a base checkpoint folder in litgpt's layout, with nothing downloaded.
import { join, resolve } from 'node:path';
import { CONFIG_FIELDS, normalizeConfig, readConfig } from '../model/config.js';
import { configNames } from '../model/configs.js';
import { BYTE_VOCAB_SIZE } from '../data/bytetokenizer.js';
import { initCheckpoint, PRECISION_DTYPES, type InitPrecision } from '../model/init.js';
import { ArgError, convertValue, type CommandSpec, type FlagType } from './args.js';

// --model.<field>: any model_config.yaml field, typed by litgpt's defaults.
let defaults: Record<string, unknown> | null = null;
function fieldType(key: string): FlagType {
  defaults ??= normalizeConfig({}) as unknown as Record<string, unknown>;
  const v = defaults[key];
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (['norm_eps', 'rotary_percentage', 'routed_scaling_factor', 'attention_logit_softcapping',
    'final_logit_softcapping', 'rope_local_base_freq'].includes(key)) return 'float';
  return 'int';
}
const SETTABLE = CONFIG_FIELDS.filter((k) => !['hf_config', 'rope_adjustments', 'latent_attention',
  'sliding_window_indices', 'rope_indices', 'vocab_size'].includes(k));

export const command: CommandSpec = {
  name: 'init',
  summary: 'Make a base checkpoint folder in litgpt\'s layout, with random weights and a byte-level tokenizer.',
  description: `
Writes lit_model.pth (litgpt's parameter names and shapes, attn.qkv naming), model_config.yaml,
tokenizer.json + tokenizer_config.json (a byte-level BPE: ${BYTE_VOCAB_SIZE - 3} byte tokens plus <|pad|>, <|bos|>, <|eos|>)
and generation_config.json. The model's vocab_size is set to the tokenizer's ${BYTE_VOCAB_SIZE} tokens and
padded_vocab_size to the next multiple of padding_multiple (unless --keep_vocab_size), so the folder
is a coherent litgpt checkpoint. Weights follow litgpt's initialisation (N(0, 0.02), biases 0, norms 1), fixed by --seed.`,
  flags: [
    { name: 'model_name', type: 'string', default: 'pythia-14m', metavar: 'NAME', help: `A named litgpt config: ${configNames().join(', ')}` },
    { name: 'model_config', type: 'path', default: null, nullable: true, metavar: 'FILE', help: 'Start from this model_config.yaml instead of --model_name' },
    { name: 'out_dir', type: 'path', default: null, nullable: true, metavar: 'DIR', defaultText: 'checkpoints/<model_name>', help: 'Where to write the folder' },
    { name: 'seed', type: 'int', default: 1337, help: 'Seed of the random weights' },
    { name: 'precision', type: 'string', default: '32-true', choices: Object.keys(PRECISION_DTYPES), help: 'Weights dtype: 32-true float32, bf16-true bfloat16, 16-true float16' },
    { name: 'force', type: 'bool', default: false, help: 'Replace a checkpoint already in --out_dir' },
    { name: 'keep_vocab_size', type: 'bool', default: false, help: 'Keep the config\'s vocab_size/padded_vocab_size (real model sizes, e.g. for benchmarks); the tokenizer then uses only the first 259 ids' },
  ],
  families: [{
    prefix: 'model.',
    metavar: 'VALUE',
    help: 'Override a model_config.yaml field, e.g. --model.n_layer 2 --model.n_embd 64',
    keys: () => SETTABLE,
    accepts(key, raw) {
      if (!SETTABLE.includes(key)) {
        throw new ArgError(`unknown flag --model.${key}: not a settable model_config.yaml field (settable: ${SETTABLE.join(', ')}).`);
      }
      return convertValue({ name: `model.${key}`, type: fieldType(key), nullable: true }, raw, 'command line');
    },
  }],
  examples: [
    'litlora init --model_name pythia-14m --out_dir checkpoints/tiny',
    'litlora init --model_name pythia-14m --model.n_layer 2 --model.n_embd 64 --model.n_head 2 --out_dir /tmp/micro',
    'litlora init --model_name tiny-llama-1.1b --precision bf16-true',
  ],
  async run(args, io) {
    const overrides: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(args.values)) {
      if (name.startsWith('model.')) overrides[name.slice(6)] = value;
    }
    const modelName = args.get<string>('model_name');
    const modelConfig = args.get<string | null>('model_config');
    const config = modelConfig ? await readConfig(resolve(io.cwd, modelConfig)) : undefined;
    const outDir = args.get<string | null>('out_dir') ?? join('checkpoints', config?.name || modelName);
    const result = await initCheckpoint({
      outDir: resolve(io.cwd, outDir),
      modelName,
      config,
      overrides,
      seed: args.get<number>('seed'),
      precision: args.get<InitPrecision>('precision'),
      force: args.get<boolean>('force'),
      keepVocabSize: args.get<boolean>('keep_vocab_size'),
    });
    const c = result.config;
    io.out(`Wrote a base checkpoint to ${result.dir}\n` +
      `  model: ${c.name} (${c.n_layer} layers, n_embd ${c.n_embd}, ${c.n_head} heads, ${c.mlp_class_name}), ` +
      `${result.parameterCount.toLocaleString('en-US')} parameters, ${result.dtype}\n` +
      `  vocab: ${c.vocab_size} tokens (byte-level), padded to ${c.padded_vocab_size}\n` +
      '  files: lit_model.pth, model_config.yaml, tokenizer.json, tokenizer_config.json, generation_config.json\n');
  },
};

// `litlora finetune lora`: litgpt's command (litgpt/finetune/lora.py setup(), era C defaults) over the Trainer.
//
//   litlora finetune lora --checkpoint_dir checkpoints/EleutherAI/pythia-70m --data JSON --data.json_path d.json \
//     --out_dir out/finetune/lora [--train.micro_batch_size 4 …] [--resume true]
//
// Same flag names and defaults as litgpt (litgpt/finetune/lora.py setup() and litgpt/args.py), plus litlora's
// --resume, --force, --merge, --device, --progress and --train.max_time. hyperparameters.yaml records every
// argument in litgpt's shape, checkpoint_dir as typed (merge_lora resolves it as litgpt does). The run holds
// --out_dir's lock from before the data is read, so a second run into it fails at once, not after loading the model.
//
// Data-parallel: --devices N (× --num_nodes M) starts N workers on this node (./launch.ts); a process started by
// torchrun or Slurm (RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS in its environment) is a worker itself. Rank 0
// alone holds --out_dir's lock and writes it.
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extendCheckpointDir } from '../io/checkpoint.js';
import { buildInfo } from '../binding.js';
import { LITGPT_DOWNLOAD_DIRS } from '../data/instruction.js';
import { DATA_MODULE_NAMES, dataModuleFromArgs } from '../data/module.js';
import { Tokenizer } from '../data/tokenizer.js';
import { fail } from '../errors.js';
import { Model, type ModelDtype } from '../model/model.js';
import { OutDir } from '../io/outdir.js';
import { readConfig } from '../model/config.js';
import { TensorFile } from '../io/tensorfile.js';
import type { OutDirLock } from '../io/outdir_lock.js';
import { Trainer, type Precision } from '../train/trainer.js';
import { distributedFromEnv, type DistributedOptions } from '../train/distributed.js';
import { launchWorkers } from './launch.js';

import type { CliIO, CommandSpec, FlagFamily, FlagSpec, ParsedArgs } from './args.js';
import { finetuneConfigFromLitgpt } from './litgpt_config.js';
import { loraFlags, loraFromFlags } from './lora_flags.js';
import { loraToKeys, type LoraSettings } from '../model/lora_settings.js';

const PRECISIONS = ['32-true', 'bf16-true', 'bf16-mixed'] as const;
const OPTIMIZERS = ['AdamW', 'Adam', 'SGD', 'torch.optim.AdamW', 'torch.optim.Adam', 'torch.optim.SGD'];

export const FLAGS: FlagSpec[] = [
  { name: 'checkpoint_dir', type: 'path', required: true, metavar: 'DIR', help: 'The base checkpoint folder (lit_model.pth, model_config.yaml, tokenizer files)' },
  { name: 'out_dir', type: 'path', default: 'out/finetune/lora', metavar: 'DIR', help: 'Where step-XXXXXX/, final/ and logs/ go' },
  { name: 'precision', type: 'string', default: null, nullable: true, choices: PRECISIONS, defaultText: 'null (32-true on the CPU, bf16-mixed on CUDA)', help: 'Training precision' },
  { name: 'devices', type: 'int', default: 1, help: 'Worker processes on this node, one per device (data-parallel; on the CPU each gets cores / devices threads)' },
  { name: 'num_nodes', type: 'int', default: 1, help: 'Machines of a data-parallel run (each runs --devices workers; set MASTER_ADDR, MASTER_PORT and NODE_RANK)' },
  { name: 'distributed_timeout', type: 'float', default: 1800, help: 'Seconds a rank waits for the others (joining, each all-reduce) before failing (litlora)' },
  ...loraFlags({
    r: 'LoRA rank', alpha: 'LoRA alpha (the update is scaled by alpha / r)', dropout: 'Dropout on the LoRA branch input',
    query: 'LoRA on the attention queries', key: 'LoRA on the attention keys', value: 'LoRA on the attention values',
    projection: 'LoRA on the attention output projection', mlp: 'LoRA on the MLP linears', head: 'LoRA on the language-model head',
  }),
  { name: 'data', type: 'string', default: 'Alpaca', choices: DATA_MODULE_NAMES, help: 'Data module; its arguments are --data.<key> (e.g. --data.json_path F, --data.val_split_fraction 0.05, --data.mask_prompt true, --data.prompt_style alpaca)' },
  { name: 'train.save_interval', type: 'int', default: 1000, nullable: true, help: 'Optimizer steps between step-XXXXXX/ checkpoints' },
  { name: 'train.log_interval', type: 'int', default: 1, help: 'Iterations between log lines' },
  { name: 'train.global_batch_size', type: 'int', default: 16, help: 'Samples per optimizer step' },
  { name: 'train.micro_batch_size', type: 'int', default: 1, help: 'Samples per forward/backward (gradient accumulation = global / micro)' },
  { name: 'train.lr_warmup_steps', type: 'int', default: 100, help: 'Linear warmup steps before the cosine decay' },
  { name: 'train.epochs', type: 'int', default: 5, help: 'Passes over the training data' },
  { name: 'train.max_tokens', type: 'int', default: null, nullable: true, help: 'Stop after this many training tokens' },
  { name: 'train.max_steps', type: 'int', default: null, nullable: true, help: 'Stop after this many optimizer steps' },
  { name: 'train.max_seq_length', type: 'int', default: null, nullable: true, help: 'Truncate samples to this many tokens' },
  { name: 'train.max_norm', type: 'float', default: null, nullable: true, help: 'Clip the global gradient norm (litlora; litgpt has none for LoRA)' },
  { name: 'train.max_time', type: 'float', default: null, nullable: true, help: 'Stop after this many seconds of training (litlora)' },
  { name: 'train.lr_warmup_fraction', type: 'float', default: null, nullable: true, help: 'litgpt\'s warmup as a fraction of an epoch; litgpt\'s finetune lora refuses it, and so does litlora (use --train.lr_warmup_steps)' },
  { name: 'train.min_lr', type: 'float', default: 6e-5, help: 'Recorded in hyperparameters.yaml; litgpt\'s finetune lora schedule (warmup + cosine to 0) does not use it' },
  { name: 'eval.interval', type: 'int', default: 100, help: 'Optimizer steps between validations' },
  { name: 'eval.max_new_tokens', type: 'int', default: 100, help: 'Tokens of the example generation at each validation' },
  { name: 'eval.max_iters', type: 'int', default: 100, help: 'Validation batches per validation' },
  { name: 'eval.initial_validation', type: 'bool', default: false, help: 'Validate before training' },
  { name: 'eval.final_validation', type: 'bool', default: true, help: 'Validate on the whole validation set after training' },
  { name: 'eval.evaluate_example', type: 'string', default: 'first', help: 'The instruction of the example generation: first, random (picked with the seed) or an index (validation split, else training split)' },
  { name: 'optimizer', type: 'string', default: 'AdamW', choices: OPTIMIZERS, help: 'Optimizer by class name: AdamW, or Adam with weight_decay 0 (the same update); SGD is refused (litlora\'s training step implements AdamW)' },
  { name: 'optimizer.lr', type: 'float', default: 1e-3, help: 'Learning rate' },
  { name: 'optimizer.weight_decay', type: 'float', default: 0.01, help: 'Decoupled weight decay' },
  { name: 'optimizer.beta1', type: 'float', default: 0.9, help: 'AdamW beta1' },
  { name: 'optimizer.beta2', type: 'float', default: 0.999, help: 'AdamW beta2' },
  { name: 'optimizer.betas', type: 'string', default: null, nullable: true, metavar: 'B1,B2', help: 'Both betas, litgpt\'s way: "0.9,0.95" or "[0.9, 0.95]" (overrides beta1/beta2)' },
  { name: 'logger_name', type: 'string', default: 'csv', choices: ['csv'], help: 'Metrics logger (logs/csv/version_N/metrics.csv)' },
  { name: 'seed', type: 'int', default: 1337, help: 'Random seed (dropout, example generation)' },
  { name: 'resume', type: 'bool', default: false, help: 'Continue from the newest complete step-XXXXXX/ in --out_dir (litlora)' },
  { name: 'force', type: 'bool', default: false, help: 'Train into an --out_dir that holds an earlier run\'s step-XXXXXX/ or final/, replacing those of the same name (litgpt\'s behaviour; litlora)' },
  { name: 'merge', type: 'bool', default: true, help: 'Write final/lit_model.pth, the merged model, at the end' },
  { name: 'device', type: 'string', default: 'auto', help: "'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' (litlora)" },
  { name: 'progress', type: 'string', default: 'auto', choices: ['auto', 'bar', 'plain', 'none'], help: 'Progress bar on a terminal, plain lines otherwise' },
];

const DATA_FAMILY: FlagFamily = {
  prefix: 'data.',
  metavar: 'VALUE',
  help: 'An argument of the data module (JSON/Alpaca: json_path, val_split_fraction, mask_prompt, prompt_style, ignore_index, seed; TextFiles: train_data_path, val_data_path, seed)',
  keys: () => ['json_path', 'val_split_fraction', 'mask_prompt', 'prompt_style', 'ignore_index', 'seed', 'train_data_path', 'val_data_path',
    'download_dir', 'file_name', 'include_multiturn_conversations'],
  accepts: (_key: string, raw: unknown) => raw, // the data module checks its own arguments (ERR_CONFIG naming --data.key)
};

/** Loads a base checkpoint folder into a Model with LoRA layers. */
async function loadBase(dir: string, options: { dtype: ModelDtype; device: string; lora: LoraSettings }): Promise<Model> {
  const config = await readConfig(join(dir, 'model_config.yaml'));
  const file = await TensorFile.open(join(dir, 'lit_model.pth'));
  try {
    const entries = await file.getAll();
    return await Model.fromStateDict(config as Record<string, unknown>, entries, { dtype: options.dtype, device: options.device as any, lora: options.lora });
  } finally {
    await file.close();
  }
}

/** The optimizer of --optimizer and --optimizer.*: its torch class and AdamW's settings. */
export interface OptimizerChoice {
  classPath: string;
  lr: number;
  weightDecay: number;
  betas: [number, number];
}

/**
 * --optimizer by class name. Adam without weight decay makes exactly AdamW's update (they differ only in how the
 * decay is applied), so it runs as AdamW and is recorded as torch.optim.Adam; Adam with a decay and SGD are refused.
 * Adam's weight_decay defaults to torch's 0 when not given, AdamW's to litgpt's 0.01.
 */
export function optimizerFromFlags(v: Record<string, unknown>, given: ReadonlySet<string>): OptimizerChoice {
  const name = String(v.optimizer).replace(/^torch\.optim\./, '');
  let betas: [number, number] = [v['optimizer.beta1'] as number, v['optimizer.beta2'] as number];
  const raw = v['optimizer.betas'];
  if (typeof raw === 'string') {
    const parts = raw.trim().replace(/^[[(]|[\])]$/g, '').split(',').map((x) => x.trim());
    const nums = parts.map(Number);
    if (nums.length !== 2 || parts.some((p) => p === '') || !nums.every(Number.isFinite)) {
      fail('ERR_ARG', `--optimizer.betas: expected two numbers such as "0.9,0.95" or "[0.9, 0.95]", got ${JSON.stringify(raw)}`);
    }
    betas = [nums[0]!, nums[1]!];
  }
  const weightDecay = name === 'Adam' && !given.has('optimizer.weight_decay') ? 0 : v['optimizer.weight_decay'] as number;
  if (name === 'SGD') {
    fail('ERR_ARG', '--optimizer SGD: litlora\'s training step implements AdamW (and Adam without weight decay, the same update); use --optimizer AdamW');
  }
  if (name === 'Adam' && weightDecay !== 0) {
    fail('ERR_ARG', `--optimizer Adam with --optimizer.weight_decay ${weightDecay}: Adam's L2 decay is not AdamW's decoupled one, and litlora's ` +
      'training step implements AdamW; use --optimizer AdamW, or Adam with weight_decay 0');
  }
  return { classPath: `torch.optim.${name}`, lr: v['optimizer.lr'] as number, weightDecay, betas };
}

/** --eval.evaluate_example: 'first', 'random' or an index. */
export function evaluateExampleFromFlag(raw: unknown): 'first' | 'random' | number {
  if (raw === 'first' || raw === 'random') return raw;
  if (typeof raw === 'string' && /^\d+$/.test(raw.trim())) return Number(raw);
  return fail('ERR_ARG', `--eval.evaluate_example: expected first, random or an index ≥ 0, got ${JSON.stringify(raw)}`);
}

/** hyperparameters.yaml of a CLI run: every argument, nested as litgpt's jsonargparse writes it. */
export function cliHyperparameters(v: Record<string, unknown>, lora: LoraSettings, data: { toHyperparameters(): unknown },
  optimizer: OptimizerChoice = optimizerFromFlags(v, new Set())): Record<string, unknown> {
  return {
    checkpoint_dir: v.checkpoint_dir,
    out_dir: v.out_dir,
    precision: v.precision,
    quantize: null,
    devices: v.devices,
    num_nodes: v.num_nodes,
    ...loraToKeys(lora),
    data: data.toHyperparameters(),
    train: {
      save_interval: v['train.save_interval'], log_interval: v['train.log_interval'], global_batch_size: v['train.global_batch_size'],
      micro_batch_size: v['train.micro_batch_size'], lr_warmup_steps: v['train.lr_warmup_steps'], lr_warmup_fraction: v['train.lr_warmup_fraction'] ?? null,
      epochs: v['train.epochs'], max_tokens: v['train.max_tokens'], max_steps: v['train.max_steps'], max_seq_length: v['train.max_seq_length'],
      tie_embeddings: null, max_norm: v['train.max_norm'], min_lr: v['train.min_lr'] ?? 6.0e-5,
    },
    log: {},
    eval: {
      interval: v['eval.interval'], max_new_tokens: v['eval.max_new_tokens'], max_iters: v['eval.max_iters'],
      initial_validation: v['eval.initial_validation'], evaluate_example: evaluateExampleFromFlag(v['eval.evaluate_example'] ?? 'first'),
      final_validation: v['eval.final_validation'],
    },
    optimizer: {
      class_path: optimizer.classPath,
      init_args: { lr: optimizer.lr, weight_decay: optimizer.weightDecay, betas: [...optimizer.betas] },
    },
    logger_name: v.logger_name,
    seed: v.seed,
    access_token: null,
  };
}

export async function runFinetune(args: ParsedArgs, io: CliIO): Promise<number> {
  const v = args.values;
  const lora = loraFromFlags(v);  // bad --lora_* values fail before --out_dir is touched
  const optimizer = optimizerFromFlags(v, args.given);
  evaluateExampleFromFlag(v['eval.evaluate_example']);
  if (v['train.lr_warmup_fraction'] !== null && v['train.lr_warmup_fraction'] !== undefined) {
    fail('ERR_ARG', `--train.lr_warmup_fraction ${v['train.lr_warmup_fraction']}: litgpt's finetune lora does not support it (its ` +
      'validate_args refuses it), and litlora follows; give the warmup in optimizer steps with --train.lr_warmup_steps');
  }
  const devices = v.devices as number, numNodes = v.num_nodes as number;
  if (!(devices >= 1)) fail('ERR_ARG', `--devices: expected an integer ≥ 1, got ${devices}`);
  if (!(numNodes >= 1)) fail('ERR_ARG', `--num_nodes: expected an integer ≥ 1, got ${numNodes}`);
  if (!((v.distributed_timeout as number) > 0)) fail('ERR_ARG', `--distributed_timeout: expected seconds > 0, got ${v.distributed_timeout}`);
  const rank = distributedFromEnv(process.env);
  if (rank && devices * numNodes > 1 && rank.worldSize !== devices * numNodes) {
    fail('ERR_ARG', `--devices ${devices} × --num_nodes ${numNodes} = ${devices * numNodes} processes, but this process was started as rank ` +
      `${rank.rank} of WORLD_SIZE ${rank.worldSize}; drop --devices/--num_nodes under torchrun or Slurm, or make them agree`);
  }
  if (!rank && devices * numNodes > 1) return launch(v, args.given, io);
  const distributed: DistributedOptions | undefined = rank ? { ...rank, timeoutMs: Math.round((v.distributed_timeout as number) * 1000) } : undefined;
  if (distributed && distributed.rank !== 0) return finetune(v, lora, optimizer, io, null, distributed);
  const outDir = resolve(io.cwd, String(v.out_dir));
  const lock = await new OutDir(outDir).startRun({ resume: v.resume as boolean, force: v.force as boolean, log: (line) => io.err(`${line}\n`) });
  try {
    return await finetune(v, lora, optimizer, io, lock, distributed);
  } finally {
    lock.release();
  }
}

/** Starts this node's --devices workers, each this command again as one rank. */
async function launch(v: Record<string, unknown>, given: ReadonlySet<string>, io: CliIO): Promise<number> {
  const numNodes = v.num_nodes as number;
  const env = process.env;
  if (numNodes > 1 && (!env.MASTER_ADDR || !env.MASTER_PORT || env.NODE_RANK === undefined)) {
    fail('ERR_ARG', `--num_nodes ${numNodes}: set MASTER_ADDR and MASTER_PORT (rank 0's machine and a free port) and NODE_RANK (0..${numNodes - 1}) on every node`);
  }
  const nodeRank = Number(env.NODE_RANK ?? 0);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= numNodes) fail('ERR_ARG', `NODE_RANK: expected an integer in 0..${numNodes - 1}, got '${env.NODE_RANK}'`);
  const port = env.MASTER_PORT ? Number(env.MASTER_PORT) : null;
  if (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) fail('ERR_ARG', `MASTER_PORT: expected a port 1..65535, got '${env.MASTER_PORT}'`);
  // The worker is this CLI again (under the same loader flags, e.g. tsx's), with the flags given here (--config
  // included: each worker reads the file itself), so that its defaults are its own as in this process — a flag
  // spelled out would count as given (e.g. Adam's weight_decay default depends on that).
  const here = fileURLToPath(import.meta.url);
  const main = join(here, '..', `main${extname(here)}`);
  const argv = ['finetune', 'lora'];
  for (const name of given) {
    const value = v[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) argv.push(`--${name}`, String(item));
    else argv.push(`--${name}`, value === null ? 'null' : String(value));
  }
  const cuda = buildInfo().cudaDeviceCount > 0 && v.device !== 'cpu';
  return launchWorkers({
    devices: v.devices as number, numNodes, nodeRank, masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort: port,
    command: [...process.execArgv, main, ...argv], cuda,
  }, io);
}

/** The run, with --out_dir's lock held (rank 0, or one process). */
async function finetune(v: Record<string, unknown>, lora: LoraSettings, optimizer: OptimizerChoice, io: CliIO, lock: OutDirLock | null,
  distributed?: DistributedOptions): Promise<number> {
  const cuda = buildInfo().cudaDeviceCount > 0;
  let device = v.device === 'auto' ? (cuda ? 'cuda' : 'cpu') : String(v.device);
  if (distributed && device === 'cuda') device = `cuda:${distributed.localRank ?? 0}`;
  if (distributed && device.startsWith('cuda')) distributed.backend = 'nccl';
  const quiet = distributed !== undefined && distributed.rank !== 0;
  const precision = (v.precision ?? (device.startsWith('cuda') ? 'bf16-mixed' : '32-true')) as Precision;
  const dtype: ModelDtype = precision === 'bf16-true' ? 'bfloat16' : 'float32';
  const checkpointDir = extendCheckpointDir(String(v.checkpoint_dir), io.cwd);
  const outDir = lock?.root ?? resolve(io.cwd, String(v.out_dir));

  const dataArgs: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(v)) if (k.startsWith('data.') && value !== undefined) dataArgs[k.slice(5)] = value;
  // litgpt's data sets are found where litgpt downloads them, relative to the working folder.
  const litgptDir = LITGPT_DOWNLOAD_DIRS[String(v.data).replace(/^litgpt\.data\./, '')];
  if (litgptDir && dataArgs.json_path === undefined && dataArgs.download_dir === undefined) dataArgs.download_dir = litgptDir;
  for (const k of ['json_path', 'train_data_path', 'val_data_path', 'download_dir']) {
    if (typeof dataArgs[k] === 'string') dataArgs[k] = resolve(io.cwd, dataArgs[k] as string);
  }
  const data = dataModuleFromArgs(String(v.data), dataArgs);
  const tokenizer = Tokenizer.fromDir(checkpointDir);
  // Data errors come before the model is loaded.
  await data.setup(tokenizer, v['train.max_seq_length'] ? { maxSeqLength: v['train.max_seq_length'] as number } : {});
  const evaluateExample = evaluateExampleFromFlag(v['eval.evaluate_example']);
  data.exampleInstruction(evaluateExample, v.seed as number); // an index past both splits fails now, not at the first validation

  if (!quiet) io.out(`Loading ${checkpointDir} (${dtype}, ${device})\n`);
  const model = await loadBase(checkpointDir, { dtype, device, lora });
  try {
    const progressMode = v.progress as 'auto' | 'bar' | 'plain' | 'none';
    const bar = progressMode === 'bar' || (progressMode === 'auto' && process.stderr.isTTY);
    const trainer = new Trainer({
      model, data, tokenizer, checkpointDir, outDir, outDirLock: lock ?? undefined, distributed, precision, seed: v.seed as number, resume: v.resume as boolean,
      force: v.force as boolean, merge: v.merge as boolean,
      train: {
        saveInterval: v['train.save_interval'] as number | null, logInterval: v['train.log_interval'] as number,
        globalBatchSize: v['train.global_batch_size'] as number, microBatchSize: v['train.micro_batch_size'] as number,
        lrWarmupSteps: v['train.lr_warmup_steps'] as number, epochs: v['train.epochs'] as number,
        maxTokens: v['train.max_tokens'] as number | null, maxSteps: v['train.max_steps'] as number | null,
        maxSeqLength: v['train.max_seq_length'] as number | null, maxNorm: v['train.max_norm'] as number | null,
        maxTime: v['train.max_time'] as number | null,
      },
      eval: {
        interval: v['eval.interval'] as number, maxNewTokens: v['eval.max_new_tokens'] as number, maxIters: v['eval.max_iters'] as number,
        initialValidation: v['eval.initial_validation'] as boolean, finalValidation: v['eval.final_validation'] as boolean,
        evaluateExample,
      },
      optimizer: { lr: optimizer.lr, weightDecay: optimizer.weightDecay, betas: optimizer.betas },
      hyperparameters: cliHyperparameters({ ...v, checkpoint_dir: v.checkpoint_dir, out_dir: v.out_dir }, lora, data, optimizer),
      // A bar on a terminal; otherwise litgpt's lines to the command's stdout.
      progress: bar ? 'bar' : 'none',
      logger: bar || progressMode === 'none' ? undefined : (line) => io.out(`${line}\n`),
    });
    const done = await trainer.run();
    if (!quiet) io.out(`Done: ${done.steps} optimizer steps, ${done.iters} iterations, ${done.totalTokens.toLocaleString('en-US')} tokens in ` +
      `${done.timeS.toFixed(1)} s (stopped by ${done.reason}). Output: ${outDir}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

/** The command for ts/cli/main.ts's table (entry `finetune_lora`). */
export const command: CommandSpec = {
  name: 'finetune lora',
  summary: 'LoRA-finetune a base checkpoint (litgpt finetune lora): step-XXXXXX/ and final/ folders in litgpt\'s layout',
  description: `
Trains LoRA adapters on an instruction data set (Alpaca/JSON files) or a text corpus (TextFiles) and writes
litgpt's folders: out_dir/step-XXXXXX/ every train.save_interval optimizer steps and out_dir/final/, each with
lit_model.pth.lora, model_config.yaml, hyperparameters.yaml, prompt_style.yaml and the tokenizer files;
final/lit_model.pth is the merged model (--merge false skips it); metrics go to out_dir/logs/csv/version_N/.
Step folders also keep training_state.pth (optimizer, schedule and random state) for --resume true.`,
  positionals: [{ flag: 'checkpoint_dir', metavar: 'CHECKPOINT_DIR' }],
  flags: FLAGS,
  families: [DATA_FAMILY],
  readConfig: finetuneConfigFromLitgpt,
  examples: [
    'litlora finetune lora --checkpoint_dir checkpoints/EleutherAI/pythia-70m --data JSON --data.json_path data.json --out_dir out/lora',
    'litlora finetune lora checkpoints/tiny --data JSON --data.json_path d.json --train.micro_batch_size 4 --train.max_steps 200 --precision bf16-true',
    'litlora finetune lora checkpoints/tiny --data JSON --data.json_path d.json --out_dir out/lora --resume true',
  ],
  run: (args, io) => runFinetune(args, io),
};

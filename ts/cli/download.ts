// `litlora download ORG/NAME`: litgpt's download — a model from the Hugging Face Hub into
// checkpoints/ORG/NAME (see ts/hub/download.ts), with a progress bar on a terminal and a line per file elsewhere.
// `litlora download list` prints the repos whose config litlora knows by name.
import { relative } from 'node:path';
import cliProgress from 'cli-progress';
import { download, type DownloadProgress } from '../hub/download.js';
import { CONVERT_DTYPES } from '../interop/convert_to_litgpt.js';
import { configFromName, configNames } from '../model/configs.js';
import type { Dtype } from '../tensor.js';
import type { CliIO, CommandSpec } from './args.js';
import { tensorProgress } from './tensor_progress.js';

function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000, i = 0;
  for (; value >= 1000 && i < units.length - 1; i++) value /= 1000;
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

/** Progress on a terminal: one bar over all the bytes, naming the file being fetched. */
function progressBar(stream: NodeJS.WriteStream): { onProgress: (p: DownloadProgress) => void; stop: () => void } {
  const bar = new cliProgress.SingleBar({
    stream,
    format: '{bar} {percentage}% | {done}/{all} | {file} | ETA {eta_formatted}',
    hideCursor: true,
    etaBuffer: 50,
    fps: 5,
    formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onProgress: (p) => {
      if (p.event === 'convert') {
        if (started) bar.stop();
        started = false;
        stream.write('Converting the weights to litgpt\'s lit_model.pth + model_config.yaml\n');
        return;
      }
      const payload = { file: p.file, done: formatBytes(p.bytes), all: formatBytes(p.totalBytes) };
      if (!started) { bar.start(p.totalBytes, p.bytes, payload); started = true; } else bar.update(p.bytes, payload);
    },
    stop: () => { if (started) bar.stop(); },
  };
}

/** Progress elsewhere (pipes, CI, logs): a line as each file starts, and as it is found complete. */
function progressLines(io: CliIO): { onProgress: (p: DownloadProgress) => void; stop: () => void } {
  return {
    onProgress: (p) => {
      if (p.event === 'start') io.err(`Downloading ${p.file} (${formatBytes(p.fileSize)})\n`);
      if (p.event === 'skip') io.err(`${p.file} is complete already (${formatBytes(p.fileSize)}, verified)\n`);
      if (p.event === 'convert') io.err('Converting the weights to litgpt\'s lit_model.pth + model_config.yaml\n');
    },
    stop: () => {},
  };
}

export const command: CommandSpec = {
  name: 'download',
  summary: 'Download a model (config, tokenizer, weights) from the Hugging Face Hub into checkpoints/ORG/NAME.',
  description: `
Fetches REPO_ID's config.json, generation_config.json and tokenizer files, and its weights (the *.safetensors
files where it has them, else PyTorch *model*.bin files), as litgpt download does, then converts the weights into
litgpt's lit_model.pth + model_config.yaml (--convert_checkpoint false to skip). Files already there with the
hub's size and hash are kept; an interrupted download resumes where it stopped when run again. The hub's address
is HF_ENDPOINT (default https://huggingface.co); gated and private models need an access token (--access_token
or HF_TOKEN) and, for gated ones, the model's terms accepted on its page. \`litlora download list\` prints the
repos whose config litlora knows by name.`,
  positionals: [{ flag: 'repo_id', metavar: 'REPO_ID' }],
  flags: [
    { name: 'repo_id', type: 'string', required: true, metavar: 'ORG/NAME', help: 'The model\'s repo on the hub (or "list")' },
    { name: 'checkpoint_dir', type: 'path', default: 'checkpoints', metavar: 'DIR', help: 'The folder the model goes under, as ORG/NAME' },
    { name: 'access_token', type: 'string', default: null, nullable: true, metavar: 'TOKEN', defaultText: 'env HF_TOKEN', help: 'A Hugging Face access token (hf_...) for gated or private models' },
    { name: 'tokenizer_only', type: 'bool', default: false, help: 'Fetch only the tokenizer and config files' },
    { name: 'convert_checkpoint', type: 'bool', default: true, help: 'Convert the weights to litgpt\'s lit_model.pth after downloading' },
    { name: 'dtype', type: 'string', default: null, nullable: true, choices: CONVERT_DTYPES, defaultText: 'as downloaded', help: 'The dtype of the converted weights' },
    { name: 'model_name', type: 'string', default: null, nullable: true, metavar: 'NAME', defaultText: 'from config.json', help: 'The litgpt config name to convert with, for repos whose name is not one' },
    { name: 'revision', type: 'string', default: 'main', metavar: 'REV', help: 'A branch, tag or commit of the repo' },
  ],
  examples: [
    'litlora download EleutherAI/pythia-160m',
    'litlora download meta-llama/Llama-3.2-1B --access_token hf_...',
    'litlora download HuggingFaceTB/SmolLM2-135M --tokenizer_only true',
  ],
  async run(args, io) {
    const repoId = args.get<string>('repo_id');
    if (repoId === 'list') {
      const ids = configNames().map((n) => { const hf = configFromName(n).hf_config; return `${hf.org}/${hf.name}`; });
      io.out(`${[...new Set(ids)].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())).join('\n')}\n`);
      return 0;
    }
    const progress = process.stderr.isTTY ? progressBar(process.stderr) : progressLines(io);
    const conversion = tensorProgress('Converting');
    let result;
    try {
      result = await download(repoId, {
        cwd: io.cwd,
        checkpointDir: args.get<string>('checkpoint_dir'),
        accessToken: args.get<string | null>('access_token'),
        tokenizerOnly: args.get<boolean>('tokenizer_only'),
        convertCheckpoint: args.get<boolean>('convert_checkpoint'),
        dtype: args.get<Dtype | null>('dtype'),
        modelName: args.get<string | null>('model_name'),
        revision: args.get<string>('revision'),
        onProgress: progress.onProgress,
        ...(conversion.onProgress ? { onConvertProgress: conversion.onProgress } : {}),
      });
    } finally {
      progress.stop();
      conversion.stop();
    }
    const rel = (p: string) => { const r = relative(io.cwd, p); return r && !r.startsWith('..') ? r : p; };
    const kept = result.files.length - result.fetched.length;
    io.out(`Downloaded ${result.fetched.length} file${result.fetched.length === 1 ? '' : 's'} of ${args.get<string>('repo_id')} ` +
      `into ${rel(result.folder)}${kept ? ` (${kept} complete already)` : ''}` +
      `${result.converted === 'converted' ? ', converted to litgpt\'s lit_model.pth' : result.converted === 'kept' ? '; its lit_model.pth, converted from the same files before, is kept' : ''}.\n`);
    return 0;
  },
};

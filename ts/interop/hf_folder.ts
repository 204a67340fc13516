// A Hugging Face model folder on disk: its config.json and weight files, located as transformers does.
//
// Weights, in transformers' order of preference: `model.safetensors.index.json` (shards), `model.safetensors`,
// `pytorch_model.bin.index.json`, `pytorch_model.bin`; failing those, every `*.safetensors` / `*.bin` in the
// folder (litgpt's convert_hf_checkpoint globs the same way). A hub cache folder (`models--ORG--NAME`, as
// huggingface_hub and @huggingface/hub write it) resolves to the snapshot its `refs/main` names.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fail, LitloraError } from '../errors.js';
import { TensorFile, type TensorInfo } from '../io/tensorfile.js';
import type { HfConfigJson } from './hf_config.js';

export interface HfFolder {
  /** The folder holding config.json and the weights (a hub snapshot folder for a cache path). */
  dir: string;
  config: HfConfigJson;
  configPath: string;
  /** Weight files, in the order tensors are looked up. */
  files: string[];
  /** Every tensor: the index of its file in `files` and its shape and dtype. */
  tensors: Map<string, { file: number; info: TensorInfo }>;
}

/** Files that look like weights but are not (litgpt skips training_args.bin; the others are litgpt's own). */
const NOT_WEIGHTS = new Set(['training_args.bin', 'lit_model.pth', 'lit_model.pth.lora']);

/** `models--ORG--NAME` → its snapshot folder (refs/main, or the only snapshot). Other folders as they are. */
export function resolveHubCacheFolder(dir: string): string {
  const snapshots = join(dir, 'snapshots');
  if (!/^models--/.test(basename(dir)) || !existsSync(snapshots)) return dir;
  const ref = join(dir, 'refs', 'main');
  if (existsSync(ref)) {
    const rev = readFileSync(ref, 'utf8').trim();
    if (existsSync(join(snapshots, rev))) return join(snapshots, rev);
  }
  const revs = readdirSync(snapshots).filter((d) => statSync(join(snapshots, d)).isDirectory());
  if (revs.length === 1) return join(snapshots, revs[0]);
  fail('ERR_CHECKPOINT_MISSING', `${dir} is a hub cache folder with ${revs.length} snapshots and no refs/main; ` +
    `pass the snapshot folder itself (${snapshots}/<revision>).`);
}

function readJson(path: string, what: string): any {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LitloraError('ERR_IO', `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail('ERR_CHECKPOINT_FORMAT', `${path} is not valid JSON (${(e as Error).message}); expected ${what}. Download it again.`);
  }
}

function shardsOf(indexPath: string, dir: string): string[] {
  const index = readJson(indexPath, 'a weight index ({"weight_map": {tensor: file}})');
  const map = index?.weight_map;
  if (!map || typeof map !== 'object') {
    fail('ERR_CHECKPOINT_FORMAT', `${indexPath} has no "weight_map"; expected {"weight_map": {tensor name: shard file}}.`);
  }
  const shards = [...new Set(Object.values(map as Record<string, unknown>).map(String))].sort();
  for (const shard of shards) {
    if (shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      fail('ERR_CHECKPOINT_FORMAT', `${indexPath} names the shard '${shard}', which is not a file name in the folder.`);
    }
    if (!existsSync(join(dir, shard))) {
      fail('ERR_CHECKPOINT_MISSING', `${indexPath} names the shard ${shard}, which is missing from ${dir}. ` +
        'The download is incomplete: download the model again (litlora download resumes where it stopped).');
    }
  }
  return shards.map((s) => join(dir, s));
}

/** The weight files of an HF folder, by transformers' preference (see the header). */
export function weightFiles(dir: string): string[] {
  const has = (f: string) => existsSync(join(dir, f));
  if (has('model.safetensors.index.json')) return shardsOf(join(dir, 'model.safetensors.index.json'), dir);
  if (has('model.safetensors')) return [join(dir, 'model.safetensors')];
  if (has('pytorch_model.bin.index.json')) return shardsOf(join(dir, 'pytorch_model.bin.index.json'), dir);
  if (has('pytorch_model.bin')) return [join(dir, 'pytorch_model.bin')];
  const all = readdirSync(dir).filter((f) => (f.endsWith('.safetensors') || f.endsWith('.bin')) && !NOT_WEIGHTS.has(f) && !f.startsWith('.'));
  const safetensors = all.filter((f) => f.endsWith('.safetensors'));
  return (safetensors.length ? safetensors : all).sort().map((f) => join(dir, f));
}

/** Opens an HF folder: config.json and the index of every tensor in its weight files (headers only). */
export async function openHfFolder(path: string): Promise<HfFolder> {
  const dir = resolveHubCacheFolder(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    fail('ERR_CHECKPOINT_MISSING', `${dir} is not a folder; expected a Hugging Face model folder (config.json and weights).`);
  }
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) {
    fail('ERR_CHECKPOINT_MISSING', `${dir} has no config.json; expected a Hugging Face model folder (config.json with ` +
      'model.safetensors, sharded safetensors with model.safetensors.index.json, or pytorch_model.bin). ' +
      'Download the model with `litlora download ORG/NAME`.');
  }
  const config = readJson(configPath, 'a transformers model config');
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    fail('ERR_CHECKPOINT_FORMAT', `${configPath} is not a JSON object; expected a transformers model config.`);
  }
  const files = weightFiles(dir);
  if (files.length === 0) {
    fail('ERR_CHECKPOINT_MISSING', `${dir} has config.json but no weights (model.safetensors, model-*.safetensors with ` +
      'model.safetensors.index.json, or pytorch_model.bin). Download them (or only the tokenizer was downloaded).');
  }
  const tensors = new Map<string, { file: number; info: TensorInfo }>();
  for (const [i, file] of files.entries()) {
    const f = await TensorFile.open(file);
    try {
      for (const name of f.names) if (!tensors.has(name)) tensors.set(name, { file: i, info: f.info(name) });
    } finally {
      await f.close();
    }
  }
  return { dir, config: config as HfConfigJson, configPath, files, tensors };
}

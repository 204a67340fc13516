// convert_from_litgpt: a litgpt checkpoint folder → a Hugging Face model folder that
// `transformers.AutoModelForCausalLM.from_pretrained(OUTPUT_DIR)` loads with no missing or unexpected weights
// (litgpt's `convert_lit_checkpoint` writes a bare model.pth of HF names; this writes the whole folder):
//
//   * config.json for the family's architecture class (hf_config.ts), generation_config.json (the folder's, or a
//     minimal one), and the tokenizer files;
//   * model.safetensors — or shards of at most `maxShardSize` bytes with model.safetensors.index.json, named as
//     transformers names them — with HF's names and row layouts (hf_weights.ts), streamed by native/core/
//     tensor_plan; a head equal to the embedding is left out and config.json says tie_word_embeddings;
//   * from a base, a full finetune, a merged `final/`, or a LoRA-only folder (merged on the fly into a hidden
//     temporary lit_model.pth next to the output, streamed, removed afterwards);
//   * the output folder appears whole or not at all (io/outdir.ts); an existing one is replaced only with `force`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { binding, type NativeTensorPlanOutput } from '../binding.js';
import { fail } from '../errors.js';
import { copyFileAtomic, writeFileAtomic } from '../io/atomic.js';
import { Checkpoint, extendCheckpointDir } from '../io/checkpoint.js';
import { writeCheckpointFolder, type FolderFile } from '../io/outdir.js';
import { TensorFile } from '../io/tensorfile.js';
import { dtypeBytes, type Dtype } from '../tensor.js';
import { familyOfConfig, hfConfigFromConfig, hfConfigText } from './hf_config.js';
import { withFullWeights } from './full_weights.js';
import { hfFromLitgpt } from './hf_weights.js';
import { CONVERT_DTYPES, type ConvertProgress } from './convert_to_litgpt.js';

/** Tokenizer files transformers' AutoTokenizer reads, copied when the litgpt folder has them. */
export const HF_TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt',
  'added_tokens.json', 'chat_template.jinja',
] as const;

/** transformers' default max_shard_size ("5GB", decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface ConvertFromLitgptOptions {
  /** Largest safetensors shard in bytes, or transformers' notation ("2GB", "500MB"). Default 5GB. */
  maxShardSize?: number | string;
  /** Weights dtype; default: as stored. */
  dtype?: Dtype | null;
  /** Replace an existing output folder. */
  force?: boolean;
  /** The base of a LoRA-only folder, instead of hyperparameters.yaml's checkpoint_dir. */
  pretrainedCheckpointDir?: string | null;
  cwd?: string;
  onProgress?: (event: ConvertProgress) => void;
}

export interface ConvertFromLitgptResult {
  outputDir: string;
  architecture: string;
  /** The safetensors files written, in order. */
  weightFiles: string[];
  tied: boolean;
  /** True when the folder was LoRA-only and was merged first. */
  merged: boolean;
  tensors: number;
  bytesWritten: number;
  seconds: number;
}

/** transformers' max_shard_size notation ("5GB" = 5·10⁹, "5GiB" = 5·2³⁰) or a byte count. */
export function parseShardSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!Number.isFinite(size) || size <= 0) fail('ERR_ARG', `max_shard_size must be a positive number of bytes, got ${size}`);
    return Math.floor(size);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$/i.exec(size);
  if (!m) fail('ERR_ARG', `max_shard_size: expected bytes or a size like "5GB" / "500MB" / "2GiB", got '${size}'`);
  const units: Record<string, number> = {
    B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
  };
  const bytes = Math.floor(Number(m[1]) * units[(m[2] ?? 'B').toUpperCase()]);
  if (bytes <= 0) fail('ERR_ARG', `max_shard_size must be positive, got '${size}'`);
  return bytes;
}

/** Packs tensors into shards in order (transformers' greedy rule: a tensor larger than the limit gets its own). */
function shard(sizes: { name: string; bytes: number }[], limit: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [], used = 0;
  for (const t of sizes) {
    if (current.length && used + t.bytes > limit) {
      shards.push(current);
      current = [];
      used = 0;
    }
    current.push(t.name);
    used += t.bytes;
  }
  if (current.length) shards.push(current);
  return shards;
}

function readJsonIfPresent(path: string | null): Record<string, unknown> | null {
  if (!path || !existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** Converts the litgpt folder `checkpointDir` into the HF folder `outputDir` (see the header). */
export async function convertFromLitgpt(checkpointDir: string, outputDir: string,
  options: ConvertFromLitgptOptions = {}): Promise<ConvertFromLitgptResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  if (typeof outputDir !== 'string' || !outputDir) fail('ERR_ARG', 'convert_from_litgpt: expected an output folder');
  if (options.dtype && !CONVERT_DTYPES.includes(options.dtype)) {
    fail('ERR_ARG', `dtype must be one of ${CONVERT_DTYPES.join(', ')}, got '${String(options.dtype)}'`);
  }
  const limit = parseShardSize(options.maxShardSize ?? DEFAULT_MAX_SHARD_BYTES);
  const checkpoint = await Checkpoint.open(extendCheckpointDir(checkpointDir, cwd), { ignoreTokenizerFiles: true });
  const out = resolve(cwd, outputDir);
  if (out === checkpoint.dir) fail('ERR_ARG', `convert_from_litgpt: the output folder ${out} is the checkpoint folder itself; choose another.`);
  if (existsSync(out) && readdirSync(out).length > 0 && !options.force) {
    fail('ERR_EXISTS', `${out} exists and is not empty; pass --force (force: true) to replace it, or choose another output folder.`);
  }
  const family = familyOfConfig(checkpoint.config, checkpoint.files.config);
  const config = checkpoint.config;
  const start = performance.now();

  // A LoRA-only folder is merged first, streamed, into a hidden folder next to the output.
  const merging = { pretrainedCheckpointDir: options.pretrainedCheckpointDir, cwd, onMerge: () => options.onProgress?.({ phase: 'merge' }) };
  return withFullWeights(checkpoint, out, merging, async (weightsFile, merged) => {
    const file = await TensorFile.open(weightsFile);
    let infos;
    try {
      if (file.names.some((n) => n.includes('.attn.attn.'))) {
        fail('ERR_CHECKPOINT_FORMAT', `${weightsFile} uses litgpt ≤ 0.5.4's attn.attn names; rewrite the folder with \`litlora migrate\` first.`);
      }
      infos = new Map(file.names.map((n) => [n, file.info(n)]));
    } finally {
      await file.close();
    }
    const tied = !infos.has('lm_head.weight') ||
      (infos.has('transformer.wte.weight') && await binding().tensorsEqual(weightsFile, 'transformer.wte.weight', 'lm_head.weight'));
    const recipes = hfFromLitgpt(config, family, tied);
    const missing = recipes.flatMap((r) => r.pieces.map((p) => p.name)).filter((n) => !infos.has(n));
    if (missing.length) {
      fail('ERR_CHECKPOINT_FORMAT', `${weightsFile} lacks tensors that model_config.yaml's '${config.name}' needs: ` +
        `${[...new Set(missing)].slice(0, 6).join(', ')}. Is model_config.yaml the one of these weights?`);
    }
    const storedDtype = infos.get('transformer.wte.weight')?.dtype ?? 'float32';
    const dtype = options.dtype ?? storedDtype;
    const sizes = recipes.map((r) => {
      const rows = r.pieces.reduce((s, p) => s + (p.rows ?? infos.get(p.name)!.shape[0] - (p.rowStart ?? 0)), 0);
      const info = infos.get(r.pieces[0].name)!;
      const elements = rows * info.shape.slice(1).reduce((a, b) => a * b, 1);
      return { name: r.name, bytes: elements * dtypeBytes(options.dtype ?? info.dtype) };
    });
    const groups = shard(sizes, limit);
    const names = groups.length === 1 ? ['model.safetensors']
      : groups.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`);
    const byName = new Map(recipes.map((r) => [r.name, r]));
    let tensors = 0, bytesWritten = 0;
    const shardFile = (i: number): FolderFile => ({
      name: names[i],
      write: async (path: string) => {
        const outputs: NativeTensorPlanOutput[] = groups[i].map((n) => ({
          name: n, pieces: byName.get(n)!.pieces.map((p) => ({ source: 0, name: p.name, rowStart: p.rowStart ?? 0, rows: p.rows ?? -1 })),
          ...(options.dtype ? { dtype: options.dtype } : {}),
        }));
        const before = tensors;
        const report = options.onProgress;
        const stats = await binding().writeTensorPlan({ sources: [weightsFile!], outputs, outPath: path, format: 'safetensors',
          metadata: { format: 'pt' } }, report ? (done) => report({ phase: 'weights', tensors: before + done, total: recipes.length }) : undefined);
        tensors += stats.tensors;
        bytesWritten += stats.bytesWritten;
      },
    });

    const existingHf = readJsonIfPresent(checkpoint.files.hfConfig);
    const hfConfig = hfConfigFromConfig(config, family, {
      tied, dtype, bosTokenId: (existingHf?.bos_token_id as number | undefined) ?? null, eosTokenId: (existingHf?.eos_token_id as number | undefined) ?? null,
    });
    const files: FolderFile[] = [
      { name: 'config.json', write: (p) => writeFileAtomic(p, hfConfigText(hfConfig)) },
      checkpoint.files.generationConfig
        ? { name: 'generation_config.json', write: (p) => copyFileAtomic(checkpoint.files.generationConfig!, p) }
        : { name: 'generation_config.json', write: (p) => writeFileAtomic(p, `${JSON.stringify(minimalGenerationConfig(hfConfig), null, 2)}\n`) },
      ...HF_TOKENIZER_FILES.filter((f) => existsSync(join(checkpoint.dir, f)))
        .map((f) => ({ name: f, write: (p: string) => copyFileAtomic(join(checkpoint.dir, f), p) })),
    ];
    let weights: FolderFile;
    if (groups.length === 1) {
      weights = shardFile(0);
    } else {
      files.push(...groups.map((_, i) => shardFile(i)));
      const index = {
        metadata: { total_size: sizes.reduce((s, t) => s + t.bytes, 0) },
        weight_map: Object.fromEntries(groups.flatMap((g, i) => g.map((n) => [n, names[i]])).sort(([a], [b]) => (a < b ? -1 : 1))),
      };
      weights = { name: 'model.safetensors.index.json', write: (p) => writeFileAtomic(p, `${JSON.stringify(index, null, 2)}\n`) };
    }
    await writeCheckpointFolder(out, files, weights, { drop: existsSync(out) ? readdirSync(out) : [] });
    options.onProgress?.({ phase: 'done', tensors, total: recipes.length, bytes: bytesWritten });
    return {
      outputDir: out, architecture: family.architecture, weightFiles: names.map((n) => join(out, n)), tied,
      merged, tensors, bytesWritten, seconds: (performance.now() - start) / 1000,
    };
  });
}

function minimalGenerationConfig(hf: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { _from_model_config: true };
  if (hf.bos_token_id !== null && hf.bos_token_id !== undefined) out.bos_token_id = hf.bos_token_id;
  if (hf.eos_token_id !== null && hf.eos_token_id !== undefined) out.eos_token_id = hf.eos_token_id;
  return out;
}


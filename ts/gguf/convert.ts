// convert_to_gguf: a litgpt checkpoint folder (base, full finetune, merged final/, or LoRA-only: merged on the
// fly into a hidden folder next to the output) → one GGUF file that llama.cpp (node-llama-cpp, Ollama, LM Studio)
// runs. The file is what llama.cpp's convert_hf_to_gguf.py writes for the Hugging Face folder convert_from_litgpt
// makes of the same checkpoint: its architecture, tensor names and layouts (families.ts), hyperparameter keys,
// and tokenizer metadata (vocab.ts); the weights in f32, f16, bf16 or Q8_0 (norms and biases stay f32, as the
// converter keeps every 1-D tensor). The header is built here (writer.ts); the tensors are streamed by the native
// tensor plan (native/core/tensor_plan: row pieces read, converted, permuted and Q8_0-quantized on one thread while
// the other writes; memory: a few blocks, or one Q/K projection), and the file appears whole under its name or not
// at all.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { binding, type NativeTensorPlanOutput } from '../binding.js';
import { fail } from '../errors.js';
import { removeStalePartials } from '../io/atomic.js';
import { Checkpoint, extendCheckpointDir } from '../io/checkpoint.js';
import { TensorFile, type TensorInfo } from '../io/tensorfile.js';
import type { Config } from '../model/config.js';
import { dtypeBytes, type Dtype } from '../tensor.js';
import type { ConvertProgress } from '../interop/convert_to_litgpt.js';
import { familyOfConfig, hfConfigFromConfig, type HfConfigJson } from '../interop/hf_config.js';
import { withFullWeights } from '../interop/full_weights.js';
import { hfFromLitgpt, type RowPiece } from '../interop/hf_weights.js';
import { ggufFamily, ggufTensorName, type GgufFamily } from './families.js';
import { addVocab, ggufVocab } from './vocab.js';
import { sentencePieceVocab } from './vocab_spm.js';
import { GGML_TYPE, GgufMetadata, ggufHeaderParts, Q8_0_BLOCK, type GgmlType, type GgufTensorInfo } from './writer.js';

export const GGUF_OUTTYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type GgufOuttype = (typeof GGUF_OUTTYPES)[number];

/** gguf-py's LlamaFileType for each outtype (general.file_type). */
const FILE_TYPE: Record<GgufOuttype, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const GGML_OF: Record<GgufOuttype, GgmlType> = { f32: GGML_TYPE.F32, f16: GGML_TYPE.F16, bf16: GGML_TYPE.BF16, q8_0: GGML_TYPE.Q8_0 };
/** The native tensor plan's name of each ggml type. */
const GGML_NAME: Record<GgmlType, NonNullable<NativeTensorPlanOutput['ggml']>> = {
  [GGML_TYPE.F32]: 'f32', [GGML_TYPE.F16]: 'f16', [GGML_TYPE.BF16]: 'bf16', [GGML_TYPE.Q8_0]: 'q8_0',
};
/** gguf-py's GGML_QUANT_VERSION. */
const QUANT_VERSION = 2;

export interface ConvertToGgufOptions {
  /** Weights type of matrices; default f16 (convert_hf_to_gguf.py's for a float32 model). */
  outtype?: GgufOuttype;
  /** Replace an existing output file. */
  force?: boolean;
  /** The base of a LoRA-only folder, instead of hyperparameters.yaml's checkpoint_dir. */
  pretrainedCheckpointDir?: string | null;
  cwd?: string;
  onProgress?: (event: ConvertProgress) => void;
}

export interface ConvertToGgufResult {
  outputFile: string;
  /** llama.cpp's architecture name. */
  architecture: string;
  outtype: GgufOuttype;
  merged: boolean;
  tensors: number;
  bytesWritten: number;
  seconds: number;
}

/** One GGUF tensor as row pieces of litgpt tensors, and the row changes applied after concatenation. */
export interface GgufRecipe {
  name: string;
  pieces: RowPiece[];
  /** LlamaModel.permute with this many heads (q: n_head, k: n_query_groups). */
  permuteHeads?: number;
  /** Added before the conversion (Gemma's norm weights: + 1). */
  addend?: number;
}

/** The GGUF tensors of a litgpt checkpoint, in convert_hf_to_gguf's order of the HF tensors. */
export function ggufRecipes(c: Config, gg: GgufFamily, hfRecipes: { name: string; pieces: RowPiece[] }[]): GgufRecipe[] {
  return hfRecipes.map((r) => {
    const name = ggufTensorName(gg, r.name);
    if (gg.qkvAsLitgpt && /\.attn_qkv\./.test(name)) return { name, pieces: [{ name: r.pieces[0].name }] };
    let permuteHeads: number | undefined;
    if (gg.permuteQk && /\.attn_q\./.test(name)) permuteHeads = c.n_head;
    if (gg.permuteQk && /\.attn_k\./.test(name)) permuteHeads = c.n_query_groups;
    const addend = gg.gemma && r.name.endsWith('norm.weight') ? 1 : 0;
    return { name, pieces: r.pieces, ...(permuteHeads ? { permuteHeads } : {}), ...(addend ? { addend } : {}) };
  });
}

/**
 * LlamaModel.permute on whole rows: reshape(heads, 2, head/2, …).swapaxes(1, 2) — output row h·d + 2i + j is
 * input row h·d + j·d/2 + i.
 */
export function permuteRows(data: Uint8Array, rows: number, heads: number): Uint8Array {
  const rowBytes = data.length / rows, d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) fail('ERR_SHAPE', `cannot permute ${rows} rows for ${heads} heads (head size must be even)`);
  const out = new Uint8Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * d + j * (d / 2) + i, dst = h * d + 2 * i + j;
        out.set(data.subarray(src * rowBytes, (src + 1) * rowBytes), dst * rowBytes);
      }
    }
  }
  return out;
}

/** llama.cpp's rope_freqs for Llama 3 RoPE scaling (LlamaModel.generate_extra_tensors), float32. */
export function llama3RopeFactors(c: Config): Float32Array {
  const adj = c.rope_adjustments!;
  const dim = c.head_size, base = c.rope_base;
  const factor = adj.factor ?? 8.0, low = adj.low_freq_factor ?? 1.0, high = adj.high_freq_factor ?? 4.0;
  const oldCtx = adj.original_max_seq_len ?? 8192;
  const lowWavelen = oldCtx / low, highWavelen = oldCtx / high;
  const out = new Float32Array(dim / 2);
  for (let k = 0; k < dim / 2; k++) {
    // torch: 1.0 / (base ** (arange(0, dim, 2, float32) / dim)) in float32
    const freq = Math.fround(1 / Math.fround(Math.pow(base, Math.fround(Math.fround(2 * k) / dim))));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[k] = 1;
    else if (wavelen > lowWavelen) out[k] = factor;
    else {
      const smooth = (oldCtx / wavelen - low) / (high - low);
      out[k] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

/** Reads row pieces of tensors of one file as bytes of one dtype, keeping the last whole tensor for its next piece. */
export class PieceReader {
  #file: TensorFile;
  #last: { key: string; bytes: Uint8Array } | null = null;
  constructor(file: TensorFile) {
    this.#file = file;
  }
  info(name: string): TensorInfo {
    return this.#file.info(name);
  }
  async whole(name: string, dtype: Dtype): Promise<Uint8Array> {
    const key = `${name}\0${dtype}`;
    if (this.#last?.key === key) return this.#last.bytes;
    const t = await this.#file.get(name, { dtype });
    try {
      const data = await t.data({ raw: true });
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.#last = { key, bytes };
      return bytes;
    } finally {
      t.dispose();
    }
  }
  /** The concatenation of `pieces` along dim 0, as `dtype` bytes. */
  async rows(pieces: readonly RowPiece[], dtype: Dtype): Promise<{ bytes: Uint8Array; rows: number; trailing: number[] }> {
    const parts: Uint8Array[] = [];
    let rows = 0, trailing: number[] = [];
    for (const p of pieces) {
      const info = this.#file.info(p.name);
      trailing = info.shape.slice(1);
      const rowBytes = trailing.reduce((a, b) => a * b, 1) * dtypeBytes(dtype);
      const start = p.rowStart ?? 0, n = p.rows ?? (info.shape[0] - start);
      const whole = await this.whole(p.name, dtype);
      parts.push(whole.subarray(start * rowBytes, (start + n) * rowBytes));
      rows += n;
    }
    if (parts.length === 1 && parts[0].byteOffset === 0 && parts[0].length === parts[0].buffer.byteLength) return { bytes: parts[0], rows, trailing };
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return { bytes: out, rows, trailing };
  }
}

/** The ggml type a tensor is written as: 1-D ones (norms, biases) f32; Q8_0 rows not of whole blocks f16. */
export function tensorType(shape: readonly number[], outtype: GgufOuttype): GgmlType {
  if (shape.length <= 1) return GGML_TYPE.F32;
  if (outtype === 'q8_0' && shape[shape.length - 1] % Q8_0_BLOCK !== 0) return GGML_TYPE.F16;  // convert_hf_to_gguf's fallback
  return GGML_OF[outtype];
}

/** The bytes of a small tensor (a LoRA adapter's) as f32, f16 or bf16, from its pieces (after the row permutation). */
export async function tensorBytes(reader: PieceReader, recipe: GgufRecipe, type: GgmlType): Promise<Uint8Array> {
  if (type === GGML_TYPE.Q8_0) fail('ERR_ARG', `${recipe.name}: Q8_0 tensors are written by the native tensor plan`);
  const dtype: Dtype = type === GGML_TYPE.F16 ? 'float16' : type === GGML_TYPE.BF16 ? 'bfloat16' : 'float32';
  const { bytes, rows } = await reader.rows(recipe.pieces, dtype);
  return recipe.permuteHeads ? permuteRows(bytes, rows, recipe.permuteHeads) : bytes;
}

/** general.* keys, the family's hyperparameters, the quantization version: the converter's order. */
export function modelMetadata(gg: GgufFamily, c: Config, hf: HfConfigJson, fileType: number, type: 'model' | 'adapter'): GgufMetadata {
  const md = new GgufMetadata();
  md.string('general.architecture', gg.arch);
  md.string('general.type', type);
  md.string('general.name', c.name);
  if (type === 'model') {
    gg.parameters(md, hf, c, fileType);
    md.u32('general.quantization_version', QUANT_VERSION);
  }
  return md;
}

/** Converts the litgpt folder `checkpointDir` into the GGUF file `outputFile` (see the header). */
export async function convertToGguf(checkpointDir: string, outputFile: string, options: ConvertToGgufOptions = {}): Promise<ConvertToGgufResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const outtype = options.outtype ?? 'f16';
  if (!GGUF_OUTTYPES.includes(outtype)) fail('ERR_ARG', `outtype must be one of ${GGUF_OUTTYPES.join(', ')}, got '${String(outtype)}'`);
  if (typeof outputFile !== 'string' || !outputFile) fail('ERR_ARG', 'convert_to_gguf: expected an output file (OUTPUT.gguf)');
  const out = resolve(cwd, outputFile);
  if (existsSync(out) && !options.force) {
    fail('ERR_EXISTS', `${out} exists; pass --force (force: true) to replace it, or choose another output file.`);
  }
  const checkpoint = await Checkpoint.open(extendCheckpointDir(checkpointDir, cwd), { ignoreTokenizerFiles: true });
  const config = checkpoint.config;
  const family = familyOfConfig(config, checkpoint.files.config);
  const gg = ggufFamily(family, checkpoint.files.config);
  const start = performance.now();
  await removeStalePartials(dirname(out), basename(out));

  const existingHf = checkpoint.files.hfConfig ? JSON.parse(readFileSync(checkpoint.files.hfConfig, 'utf8')) : null;
  const hfConfig = hfConfigFromConfig(config, family, {
    tied: false, dtype: 'float32', bosTokenId: existingHf?.bos_token_id ?? null, eosTokenId: existingHf?.eos_token_id ?? null,
  });
  // The vocabulary is checked before any weights are merged or written.
  const vocab = gg.gemma || (gg.sentencePieceFirst && existsSync(join(checkpoint.dir, 'tokenizer.model')))
    ? sentencePieceVocab(checkpoint.dir, config.padded_vocab_size, hfConfig, gg.gemma)
    : ggufVocab(checkpoint.dir, config.padded_vocab_size, hfConfig);
  const merging = { pretrainedCheckpointDir: options.pretrainedCheckpointDir, cwd, onMerge: () => options.onProgress?.({ phase: 'merge' }) };
  return withFullWeights(checkpoint, out, merging, async (weightsFile, merged) => {
    const file = await TensorFile.open(weightsFile);
    try {
      if (file.names.some((n) => n.includes('.attn.attn.'))) {
        fail('ERR_CHECKPOINT_FORMAT', `${weightsFile} uses litgpt ≤ 0.5.4's attn.attn names; rewrite the folder with \`litlora migrate\` first.`);
      }
      const has = new Set(file.names);
      const tied = !has.has('lm_head.weight') ||
        (has.has('transformer.wte.weight') && await binding().tensorsEqual(weightsFile, 'transformer.wte.weight', 'lm_head.weight'));
      if (gg.gemma && !tied) {
        fail('ERR_GGUF_UNSUPPORTED', `${weightsFile}: lm_head.weight differs from the embedding; llama.cpp's ${gg.arch} computes the ` +
          'logits with the embedding (convert_hf_to_gguf.py drops lm_head), so it would compute other logits than litlora.');
      }
      const hfRecipes = hfFromLitgpt(config, family, tied && !gg.needsOutput);
      if (tied && gg.needsOutput && !has.has('lm_head.weight')) {
        hfRecipes.push({ name: `${family.name === 'gpt_neox' ? 'embed_out' : 'lm_head'}.weight`, pieces: [{ name: 'transformer.wte.weight' }] });
      }
      const missing = hfRecipes.flatMap((r) => r.pieces.map((p) => p.name)).filter((n) => !has.has(n));
      if (missing.length) {
        fail('ERR_CHECKPOINT_FORMAT', `${weightsFile} lacks tensors that model_config.yaml's '${config.name}' needs: ` +
          `${[...new Set(missing)].slice(0, 6).join(', ')}. Is model_config.yaml the one of these weights?`);
      }
      const recipes = ggufRecipes(config, gg, hfRecipes);
      const infos: GgufTensorInfo[] = [];
      const outputs: NativeTensorPlanOutput[] = [];
      if (config.rope_adjustments && family.name === 'llama') {
        const factors = llama3RopeFactors(config);
        infos.push({ name: 'rope_freqs.weight', shape: [factors.length], type: GGML_TYPE.F32 });
        outputs.push({ name: 'rope_freqs.weight', data: new Uint8Array(factors.buffer) });
      }
      for (const r of recipes) {
        const first = file.info(r.pieces[0].name);
        const rows = r.pieces.reduce((s, p) => s + (p.rows ?? file.info(p.name).shape[0] - (p.rowStart ?? 0)), 0);
        const shape = [rows, ...first.shape.slice(1)];
        const type = tensorType(shape, outtype);
        infos.push({ name: r.name, shape, type });
        outputs.push({
          name: r.name, ggml: GGML_NAME[type], pieces: r.pieces.map((p) => ({ source: 0, ...p })),
          ...(r.permuteHeads ? { permuteHeads: r.permuteHeads } : {}), ...(r.addend ? { addend: r.addend } : {}),
        });
      }
      const md = modelMetadata(gg, config, hfConfig, FILE_TYPE[outtype], 'model');
      addVocab(md, vocab);
      const { parts: header, length: headerBytes, dataBytes } = ggufHeaderParts(md, infos);
      const report = options.onProgress;
      await file.close();  // the native plan opens the weights itself
      const stats = await binding().writeTensorPlan({ sources: [weightsFile], outputs, outPath: out, format: 'gguf', header },
        report ? (done, total) => report({ phase: 'weights', tensors: done, total }) : undefined);
      const bytes = headerBytes + dataBytes;
      options.onProgress?.({ phase: 'done', tensors: stats.tensors, total: stats.tensors, bytes });
      return {
        outputFile: out, architecture: gg.arch, outtype, merged, tensors: stats.tensors,
        bytesWritten: bytes, seconds: (performance.now() - start) / 1000,
      };
    } finally {
      await file.close();
    }
  });
}

// convert_lora_to_gguf: a litgpt LoRA folder's adapter → a GGUF LoRA adapter that llama.cpp applies over the
// base model's GGUF (convert_to_gguf of the base), as llama.cpp's convert_lora_to_gguf.py writes one from the PEFT
// adapter convert_lora_to_peft makes of the same folder:
//
//   general.type "adapter", adapter.type "lora", adapter.lora.alpha; for each adapted linear, under the base
//   tensor's GGUF name, `.lora_a` = A (rank × in) and `.lora_b` = B (out × rank), B's rows laid out as the base
//   weight's are (Llama Q/K permuted for llama.cpp's RoPE, GPT-NeoX's fused QKV as [q | k | v]).
//
// llama.cpp scales every adapted layer by alpha / rank (rank from lora_a). litgpt's fused QKV becomes one
// query_key_value module of rank N·r for GPT-NeoX (N enabled parts, see peft_export.ts), whose alpha_pattern
// N·lora_alpha keeps the scale lora_alpha / r; one file-wide alpha cannot say that, so that module's B is
// multiplied by N instead, which computes the same.
//
// llama.cpp applies an adapter over any base of its architecture whose tensors have the adapted names, and fails
// only at load time on a shape mismatch (or not at all when the shapes happen to agree). Given the base (its GGUF
// or its litgpt folder), the adapter's model_config.yaml is checked against it first: ERR_ADAPTER_MISMATCH.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { removeStalePartials, tempSibling } from '../io/atomic.js';
import { Checkpoint, extendCheckpointDir } from '../io/checkpoint.js';
import type { Config } from '../model/config.js';
import { TensorFile } from '../io/tensorfile.js';
import type { ConvertProgress } from '../interop/convert_to_litgpt.js';
import { familyOfConfig, hfConfigFromConfig } from '../interop/hf_config.js';
import { neoxQkvPieces } from '../interop/hf_weights.js';
import { convertLoraToPeft } from '../interop/peft_export.js';
import { PEFT_CONFIG_FILE, PEFT_PREFIX, PEFT_WEIGHTS_FILE } from '../interop/peft_layout.js';
import { modelMetadata, PieceReader, tensorBytes, tensorType, type GgufOuttype, type GgufRecipe } from './convert.js';
import { ggufFamily, ggufTensorName } from './families.js';
import { float16Bits } from './quantize.js';
import { readGgufMetadata } from './reader.js';
import { GGML_TYPE, writeGguf, type GgufTensor } from './writer.js';

export const GGUF_LORA_OUTTYPES = ['f32', 'f16', 'bf16'] as const;

export interface ConvertLoraToGgufOptions {
  /** Type of lora_a / lora_b; default f16 (convert_lora_to_gguf.py's). */
  outtype?: (typeof GGUF_LORA_OUTTYPES)[number];
  force?: boolean;
  /** The base model the adapter will be applied over (its GGUF file or its litgpt folder), checked before writing. */
  base?: string | null;
  cwd?: string;
  onProgress?: (event: ConvertProgress) => void;
}

export interface ConvertLoraToGgufResult {
  outputFile: string;
  architecture: string;
  alpha: number;
  /** Adapted base tensors (each has a lora_a and a lora_b). */
  layers: number;
  bytesWritten: number;
  seconds: number;
}

/** Converts the LoRA folder `loraDir` into the GGUF adapter `outputFile` (see the header). */
export async function convertLoraToGguf(loraDir: string, outputFile: string, options: ConvertLoraToGgufOptions = {}):
  Promise<ConvertLoraToGgufResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const outtype: GgufOuttype = options.outtype ?? 'f16';
  if (!(GGUF_LORA_OUTTYPES as readonly string[]).includes(outtype)) {
    fail('ERR_ARG', `outtype must be one of ${GGUF_LORA_OUTTYPES.join(', ')} for an adapter, got '${String(outtype)}'`);
  }
  if (typeof outputFile !== 'string' || !outputFile) fail('ERR_ARG', 'convert_lora_to_gguf: expected an output file (ADAPTER.gguf)');
  const out = resolve(cwd, outputFile);
  if (existsSync(out) && !options.force) {
    fail('ERR_EXISTS', `${out} exists; pass --force (force: true) to replace it, or choose another output file.`);
  }
  const checkpoint = await Checkpoint.open(resolve(cwd, loraDir), { ignoreTokenizerFiles: true });
  const config = checkpoint.config;
  const family = familyOfConfig(config, checkpoint.files.config);
  const gg = ggufFamily(family, checkpoint.files.config);
  if (options.base) await checkBase(resolve(cwd, options.base), config, cwd);
  const start = performance.now();
  await removeStalePartials(dirname(out), basename(out));
  const peftName = `${basename(out)}.peft`;
  await removeStalePartials(dirname(out), peftName);
  const peftDir = tempSibling(join(dirname(out), peftName));
  try {
    options.onProgress?.({ phase: 'config' });
    await convertLoraToPeft(checkpoint.dir, peftDir, { cwd });
    const adapterConfig = JSON.parse(readFileSync(join(peftDir, PEFT_CONFIG_FILE), 'utf8'));
    const alpha = Number(adapterConfig.lora_alpha);
    const alphaPattern = (adapterConfig.alpha_pattern ?? {}) as Record<string, number>;
    const file = await TensorFile.open(join(peftDir, PEFT_WEIGHTS_FILE));
    try {
      const reader = new PieceReader(file);
      const modules = [...new Set(file.names.map((n) => n.replace(/\.lora_[AB]\.weight$/, '')))];
      const tensors: GgufTensor[] = [];
      for (const peftModule of modules) {
        const module = peftModule.slice(PEFT_PREFIX.length);
        const base = ggufTensorName(gg, `${module}.weight`);
        const a = `${peftModule}.lora_A.weight`, b = `${peftModule}.lora_B.weight`;
        const short = module.split('.').pop()!;
        const factor = (alphaPattern[short] ?? alpha) / alpha;
        const bRecipe: GgufRecipe = { name: `${base}.lora_b`, pieces: [{ name: b }] };
        if (gg.permuteQk && /\.attn_q\.weight$/.test(base)) bRecipe.permuteHeads = config.n_head;
        if (gg.permuteQk && /\.attn_k\.weight$/.test(base)) bRecipe.permuteHeads = config.n_query_groups;
        if (gg.qkvAsLitgpt && /\.attn_qkv\.weight$/.test(base)) bRecipe.pieces = neoxQkvPieces(config, 'toLitgpt').map((p) => ({ name: b, ...p }));
        const aRecipe: GgufRecipe = { name: `${base}.lora_a`, pieces: [{ name: a }] };
        for (const [recipe, scale] of [[aRecipe, 1], [bRecipe, factor]] as [GgufRecipe, number][]) {
          const shape = reader.info(recipe.pieces[0].name).shape;
          const type = tensorType(shape, outtype);
          tensors.push({
            name: recipe.name, shape, type,
            data: scale === 1 ? () => tensorBytes(reader, recipe, type) : async () => {
              // Scaled in float32, then written as `type`.
              const f32 = new Float32Array((await tensorBytes(reader, recipe, GGML_TYPE.F32)).slice().buffer);
              for (let i = 0; i < f32.length; i++) f32[i] *= scale;
              return type === GGML_TYPE.F32 ? new Uint8Array(f32.buffer) : toHalf(f32, type);
            },
          });
        }
      }
      if (!tensors.length) fail('ERR_CHECKPOINT_FORMAT', `${checkpoint.files.lora} has no LoRA weights to write.`);
      const hf = hfConfigFromConfig(config, family, { tied: false, dtype: 'float32' });
      const md = modelMetadata(gg, config, hf, 0, 'adapter');
      md.string('adapter.type', 'lora');
      md.f32('adapter.lora.alpha', alpha);
      md.u32('general.quantization_version', 2);
      const report = options.onProgress;
      const stats = await writeGguf(out, md, tensors, report ? (done, total) => report({ phase: 'weights', tensors: done, total }) : undefined);
      options.onProgress?.({ phase: 'done', tensors: stats.tensors, total: stats.tensors, bytes: stats.bytesWritten });
      return {
        outputFile: out, architecture: gg.arch, alpha, layers: modules.length, bytesWritten: stats.bytesWritten,
        seconds: (performance.now() - start) / 1000,
      };
    } finally {
      await file.close();
    }
  } finally {
    await rm(peftDir, { recursive: true, force: true });
  }
}

/** The GGUF keys an adapter's tensors depend on: the architecture and the shapes of the adapted layers. */
const SHAPE_KEYS = ['block_count', 'embedding_length', 'feed_forward_length', 'attention.head_count', 'attention.head_count_kv',
  'attention.key_length', 'attention.value_length'];

/** The shape keys (SHAPE_KEYS, with general.architecture) a GGUF export of a model of `config` has. */
function shapeKeysOf(config: Config, configFile: string): Map<string, unknown> {
  const family = familyOfConfig(config, configFile);
  const gg = ggufFamily(family, configFile);
  const md = modelMetadata(gg, config, hfConfigFromConfig(config, family, { tied: false, dtype: 'float32' }), 0, 'model');
  const keys = new Map<string, unknown>([['general.architecture', gg.arch]]);
  for (const k of SHAPE_KEYS) {
    const v = md.entries.get(`${gg.arch}.${k}`);
    if (v) keys.set(`${gg.arch}.${k}`, v.value);
  }
  return keys;
}

/** ERR_ADAPTER_MISMATCH unless the base (a GGUF file or a litgpt folder) is a model of the adapter's shapes. */
async function checkBase(base: string, config: Config, cwd: string): Promise<void> {
  const expected = shapeKeysOf(config, 'model_config.yaml');
  let got: Map<string, unknown>;
  const isDir = existsSync(base) && statSync(base).isDirectory();
  if (isDir || !existsSync(base)) {
    const baseCheckpoint = await Checkpoint.open(extendCheckpointDir(base, cwd), { ignoreTokenizerFiles: true });
    got = shapeKeysOf(baseCheckpoint.config, baseCheckpoint.files.config);
  } else {
    const md = readGgufMetadata(base);
    got = new Map([...expected.keys()].map((k) => [k, md.get(k)]));
    if (md.get('general.type') === 'adapter') {
      fail('ERR_ARG', `${base} is a GGUF adapter; --base takes the base model's GGUF (litlora convert_to_gguf BASE_DIR base.gguf) or its folder.`);
    }
  }
  for (const [key, want] of expected) {
    const have = got.get(key);
    if (have === undefined && !key.startsWith('general.')) continue;  // a key this base's family does not write
    if (typeof have === 'bigint' ? have !== BigInt(want as number) : have !== want) {
      fail('ERR_ADAPTER_MISMATCH', `the adapter was trained on '${config.name}' (${key} = ${String(want)}), but the base ${base} has ` +
        `${key} = ${have === undefined ? 'nothing' : String(have)}. Convert the adapter for the base it was trained on, ` +
        'or pass that base with --base.');
    }
  }
}

/** float32 → IEEE half or bfloat16 bytes, rounded to nearest even. */
function toHalf(values: Float32Array, type: number): Uint8Array {
  const out = new Uint16Array(values.length);
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (type === GGML_TYPE.BF16) {
    for (let i = 0; i < u.length; i++) {
      const x = u[i];
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) | 64) : ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16);
    }
  } else {
    for (let i = 0; i < values.length; i++) out[i] = float16Bits(values[i]);
  }
  return new Uint8Array(out.buffer);
}

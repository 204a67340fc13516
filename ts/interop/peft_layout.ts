// What a litgpt LoRA adapter and a PEFT LoRA adapter hold, side by side, for both directions of the
// conversion (peft_export.ts, peft_import.ts).
//
// PEFT (huggingface/peft, LoraModel) names a module's adapter `base_model.model.<HF module>.lora_A.weight`
// (r × in) and `.lora_B.weight` (out × r), scaled by lora_alpha / r (lora_alpha / √r with use_rslora), and reads
// per-module ranks and alphas from `rank_pattern` / `alpha_pattern` (regex keys matched against the end of the
// module name). litgpt puts one rank and one alpha on every LoRA layer, and adapts litgpt's fused attn.qkv as one
// LoRAQKVLinear: one r-row block of lora_A per enabled part (q, k, v in that order) and the enabled parts' rows of
// lora_B ([all q | all k | all v]). Llama and Qwen2 have separate q_proj / k_proj / v_proj modules; GPT-NeoX has one
// query_key_value whose rows are per head [q_h | k_h | v_h] (hf_weights.ts, neoxQkvPieces).
//
// The head is `lm_head` for every family: transformers ≥ 5 names GPT-NeoX's head lm_head (its checkpoints still
// store embed_out.weight, renamed on load), and PEFT targets modules by their names in the loaded model.
// Adapter tensors are small: they are handled here as their raw elements, so regrouping rows is a copy, exact
// for any dtype.
import { fail } from '../errors.js';
import type { Config } from '../model/config.js';
import { baseParameters } from '../model/init.js';
import { LAYER_TARGETS, loraLayerKind, type LoraLayerKind } from '../model/lora_placement.js';
import type { LoraSettings } from '../model/lora_settings.js';
import { Tensor, type Dtype } from '../tensor.js';
import type { HfFamily } from './hf_config.js';
import { hfModulesOf } from './hf_weights.js';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
/** Older PEFT versions (and safe_serialization=False) write the weights with torch.save. */
export const PEFT_WEIGHTS_BIN = 'adapter_model.bin';
/** The prefix PeftModel puts before the base model's module names. */
export const PEFT_PREFIX = 'base_model.model.';

export type QkvPart = 'q' | 'k' | 'v';
export const QKV_PARTS: readonly QkvPart[] = ['q', 'k', 'v'];
const PART_TARGET = { q: 'query', k: 'key', v: 'value' } as const;

/** One linear layer of litgpt's GPT that can carry LoRA. */
export interface LoraLayer {
  /** litgpt's module path (`transformer.h.0.attn.qkv`, `lm_head`). */
  path: string;
  kind: LoraLayerKind;
  in: number;
  out: number;
}

/** Every linear layer of `config` that can carry LoRA, in litgpt's order (lm_head first, then block by block). */
export function linearLayers(config: Config): LoraLayer[] {
  const out: LoraLayer[] = [];
  for (const [name, shape] of baseParameters(config)) {
    const kind = loraLayerKind(name);
    if (!kind || !name.endsWith('.weight')) continue;
    out.push({ path: name.slice(0, -'.weight'.length), kind, out: shape[0], in: shape[1] });
  }
  return out;
}

/** The layers `settings` put LoRA on (litgpt's LoRA model has lora_A / lora_B on exactly these). */
export function loraLayers(config: Config, settings: LoraSettings): LoraLayer[] {
  if (settings.r === 0) return [];
  return linearLayers(config).filter((l) => LAYER_TARGETS[l.kind].some((t) => settings[t]));
}

/** The q/k/v parts `settings` enable on the fused qkv, in litgpt's order. */
export function enabledParts(settings: LoraSettings): QkvPart[] {
  return QKV_PARTS.filter((p) => settings[PART_TARGET[p]]);
}

export function partTarget(part: QkvPart): 'query' | 'key' | 'value' {
  return PART_TARGET[part];
}

/** The PEFT module(s) of a litgpt layer: HF's module names, with the head as `lm_head` (see the header). */
export function peftModulesOf(config: Config, family: HfFamily, layer: LoraLayer): { module: string; part?: QkvPart }[] {
  if (layer.kind === 'head') return [{ module: 'lm_head' }];
  const modules = hfModulesOf(config, family, layer.path);
  if (modules.length === 0) fail('ERR_CONFIG', `no ${family.architecture} module corresponds to litgpt's ${layer.path}`);
  return modules;
}

/** The short name PEFT's target_modules use for a module (its last component). */
export function shortName(module: string): string {
  return module.slice(module.lastIndexOf('.') + 1);
}

/**
 * GPT-NeoX's query_key_value row of a litgpt qkv part row: per head [q_h | k_h | v_h] (n_query_groups = n_head in
 * GPT-NeoX, so every part has n_head · head_size rows).
 */
export function neoxRow(config: Config, part: QkvPart, row: number): number {
  const hs = config.head_size;
  const head = Math.floor(row / hs);
  return head * 3 * hs + QKV_PARTS.indexOf(part) * hs + (row % hs);
}

// ---------------------------------------------------------------------------------------------------------
// A 2-D tensor's raw elements: float32/float64 as themselves, bfloat16/float16 as their bit patterns.

export type Elements = Float32Array | Float64Array | Uint16Array;

export interface Matrix {
  rows: number;
  cols: number;
  dtype: Dtype;
  data: Elements;
}

export const ADAPTER_DTYPES: readonly Dtype[] = ['float32', 'bfloat16', 'float16', 'float64'];

/** The elements of a 2-D floating-point tensor (a copy). */
export async function matrixOf(t: Tensor, what: string): Promise<Matrix> {
  if (!ADAPTER_DTYPES.includes(t.dtype)) {
    fail('ERR_DTYPE', `${what} is ${t.dtype}; a LoRA adapter's tensors are ${ADAPTER_DTYPES.join(', ')}.`);
  }
  if (t.shape.length !== 2) fail('ERR_SHAPE', `${what} has shape [${t.shape}]; a LoRA matrix is 2-D.`);
  const data = (await t.data({ raw: true })) as Elements;
  return { rows: t.shape[0], cols: t.shape[1], dtype: t.dtype, data };
}

/** A zero matrix of the given shape and dtype. */
export function zeros(rows: number, cols: number, dtype: Dtype): Matrix {
  const n = rows * cols;
  const data = dtype === 'float64' ? new Float64Array(n) : dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  return { rows, cols, dtype, data };
}

/** Copies `rows` rows of `src` from `srcRow` (columns from `srcCol`, `cols` wide) into `dst` at `dstRow`, `dstCol`. */
export function copyBlock(src: Matrix, srcRow: number, dst: Matrix, dstRow: number, rows: number,
  cols = src.cols, srcCol = 0, dstCol = 0): void {
  for (let i = 0; i < rows; i++) {
    const from = (srcRow + i) * src.cols + srcCol;
    dst.data.set(src.data.subarray(from, from + cols), (dstRow + i) * dst.cols + dstCol);
  }
}

/** True when every element of the block is ±0. */
export function blockIsZero(m: Matrix, row: number, rows: number, col = 0, cols = m.cols): boolean {
  const bits = m.data instanceof Uint16Array;
  for (let i = row; i < row + rows; i++) {
    for (let j = col; j < col + cols; j++) {
      const v = m.data[i * m.cols + j];
      if (bits ? (v & 0x7fff) !== 0 : v !== 0) return false;
    }
  }
  return true;
}

export function tensorOf(m: Matrix): Tensor {
  return Tensor.from(m.data, [m.rows, m.cols], { dtype: m.dtype });
}

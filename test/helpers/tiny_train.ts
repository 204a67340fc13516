// Tiny models and synthetic data for the trainer tests: a 2-layer GPT-NeoX-style model over the byte-level
// tokenizer fixture, built with Model.fromConfig.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '../../ts/data/tokenizer.js';
import { Model, synthetic, type LoraOptions, type ModelDtype } from '../../ts/index.js';

export const BYTES_DIR = join(import.meta.dirname, '..', 'fixtures', 'tokenizers', 'bytes');
export const bytesTokenizer = () => Tokenizer.fromDir(BYTES_DIR);

export const TINY_CONFIG = {
  name: 'tiny-neox', block_size: 128, vocab_size: 259, padding_multiple: 64, n_layer: 2, n_head: 4, n_embd: 64,
  rotary_percentage: 0.25, parallel_residual: true, bias: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP',
  intermediate_size: 256,
};

/** A tiny model with LoRA (litgpt defaults r 8, alpha 16, q+v; dropout 0 here unless given). */
export async function tinyModel(lora: LoraOptions = {}, options: { seed?: number; dtype?: ModelDtype; config?: Record<string, unknown> } = {}): Promise<Model> {
  return Model.fromConfig({ ...TINY_CONFIG, ...options.config }, { seed: options.seed ?? 7, dtype: options.dtype ?? 'float32', lora: { dropout: 0, ...lora } });
}

export function tempDir(prefix = 'litlora-train-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A synthetic instruction JSON file; returns its path and the held-out samples. */
export function syntheticJson(dir: string, options: { trainSize?: number; testSize?: number; tasks?: synthetic.SyntheticTaskKind[]; seed?: number } = {}) {
  const { train, test } = synthetic.syntheticInstructionTask({ trainSize: 400, testSize: 40, ...options });
  const path = join(dir, 'train.json');
  synthetic.writeInstructionJson(path, train);
  return { path, train, test };
}

// The example generation of litgpt's validation (generate_example: one prompt, temperature 0.8, stop at
// EOS), and greedy decoding for tests. It recomputes the whole sequence for each new token through the
// trainer's forward (which runs under the training precision): fine for a few short samples. Real decoding
// with a KV cache lives in the generation module.
import type { Tokenizer } from '../data/tokenizer.js';
import { TorchGenerator } from '../data/random.js';
import { Tensor } from '../tensor.js';
import type { NativeTensor } from '../binding.js';

/** @internal Anything with a logits forward over (1, T) ids. */
export interface LogitsSource {
  forward(tokens: Int32Array, shape: number[], options: { lastOnly: boolean }): Promise<NativeTensor>;
}

export interface SampleOptions {
  maxNewTokens: number;
  /** 0: greedy (argmax). */
  temperature: number;
  seed: number;
  /** Longest sequence the model takes (block_size). */
  blockSize: number;
}

/** Ids the tokenizer can decode: logits above its highest known id (vocabulary padding) are never sampled. */
function vocabularyLimit(tokenizer: Tokenizer, logitsWidth: number): number {
  for (let id = logitsWidth - 1; id >= 0; id--) if (tokenizer.idToToken(id) !== undefined) return id + 1;
  return logitsWidth;
}

/** Generated ids after `promptIds`, stopping at EOS (not included) or maxNewTokens. */
export async function sampleIds(source: LogitsSource, tokenizer: Tokenizer, promptIds: Int32Array, options: SampleOptions): Promise<number[]> {
  const ids = Array.from(promptIds);
  const out: number[] = [];
  const rng = new TorchGenerator(options.seed);
  let limit = -1;
  for (let i = 0; i < options.maxNewTokens && ids.length < options.blockSize; i++) {
    const logits = new Tensor(await source.forward(Int32Array.from(ids), [1, ids.length], { lastOnly: true }));
    const row = (await logits.data()) as Float32Array;
    logits.dispose();
    if (limit < 0) limit = vocabularyLimit(tokenizer, row.length);
    let next = 0;
    if (options.temperature <= 0) {
      for (let v = 1; v < limit; v++) if (row[v]! > row[next]!) next = v;
    } else {
      let max = -Infinity;
      for (let v = 0; v < limit; v++) max = Math.max(max, row[v]!);
      let total = 0;
      const p = new Float64Array(limit);
      for (let v = 0; v < limit; v++) total += p[v] = Math.exp((row[v]! - max) / options.temperature);
      let u = (rng.random() / 4294967296) * total;
      next = limit - 1;
      for (let v = 0; v < limit; v++) {
        u -= p[v]!;
        if (u <= 0) { next = v; break; }
      }
    }
    if (next === tokenizer.eosId) break;
    ids.push(next);
    out.push(next);
  }
  return out;
}

/** The decoded continuation of `prompt`. */
export async function sampleText(source: LogitsSource, tokenizer: Tokenizer, prompt: string, options: SampleOptions): Promise<string> {
  const ids = await sampleIds(source, tokenizer, tokenizer.encode(prompt), options);
  return tokenizer.decode(ids);
}

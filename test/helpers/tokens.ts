// Token readers shared by the generation and serving suites: drains a token generator (generateTokens) into its ids
// and final statistics, and the no-cache greedy loop that cached decoding is compared against.
import type { GenerationStats } from '../../ts/generate/generate.js';
import type { Model } from '../../ts/index.js';

export interface TokenRun { ids: number[]; stats: GenerationStats }

/** Every id the generator yields, then its return value; onToken(count) after each id. */
export async function collect(it: AsyncGenerator<number, GenerationStats>, onToken?: (n: number) => void): Promise<TokenRun> {
  const ids: number[] = [];
  while (true) {
    const next = await it.next();
    if (next.done) return { ids, stats: next.value };
    ids.push(next.value);
    onToken?.(ids.length);
  }
}

/** Greedy decoding without a KV cache: a full forward over the whole sequence per new token (the reference loop). */
export async function greedyFullForward(model: Model, prompt: number[], n: number): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const logits = (await (await model.forward(seq, { lastOnly: true })).data()) as Float32Array;
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

// Drains a token generator (generateTokens) into its ids and final statistics: the shared reader of the generation
// and serving suites.
import type { GenerationStats } from '../../ts/generate/generate.js';

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

// Text generation: the native decode loop (native/core/generate: KV cache, litgpt's sampling) streamed into
// JS one token at a time, and the text pieces a StreamDecoder makes of them.
//
//   for await (const piece of generate(model, tokenizer, 'Reverse: abc', { temperature: 0 })) process.stdout.write(piece);
//
// The loop runs on a worker thread; tokens arrive through a thread-safe function, so the event loop stays
// free while the model works. Leaving a `for await` early (break, throw, an AbortSignal) stops the loop and
// waits for it, so the model is free for its next operation as soon as the iteration ends.
import { binding, type NativeGeneration } from '../binding.js';
import type { PromptStyle } from '../data/prompts.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { fail } from '../errors.js';
import type { Model } from '../model/model.js';

export interface SamplingOptions {
  /** Tokens to generate at most (litgpt's max_new_tokens; default 50). */
  maxNewTokens?: number;
  /** 0 = greedy (argmax). Default 0.8 as litgpt's generate/chat. */
  temperature?: number;
  /** Keep only the k most likely tokens before sampling (default 50, litgpt's; null = no limit). */
  topK?: number | null;
  /** Nucleus sampling threshold in [0, 1] (default 1 = off). */
  topP?: number;
  /** Seed of the sampling generator (default 1234, litgpt's seed_everything(1234)). */
  seed?: number;
  /**
   * Token-id sequences that end the generation and are not emitted. Default: [[eos]] of the tokenizer (or of
   * the prompt style's stopTokens when `promptStyle` is given); [] never stops early.
   */
  stopTokens?: readonly (readonly number[])[];
  /**
   * Ids ≥ this are never drawn: the padded part of the vocabulary (padded_vocab_size > the tokenizer's size),
   * which a trained model never predicts but a fresh or tiny one may. `generate` sets it from the tokenizer;
   * null disables it.
   */
  vocabLimit?: number | null;
  /** Stops the generation, or takes it out of the model's queue (the iterator then ends normally, reason 'cancelled'). */
  signal?: AbortSignal;
  /** The runtime adapter (model.adapters) this request decodes with; null or absent: the model alone. */
  adapter?: string | null;
}

export interface TextGenerateOptions extends SamplingOptions {
  /** Apply this prompt style to the prompt (and take its stop tokens), as litgpt's generate and chat do. */
  promptStyle?: PromptStyle;
  /** Prepend BOS: default as the tokenizer's config says (litgpt's encode(bos=None)). */
  bos?: boolean;
  /** The system prompt handed to the prompt style (litgpt's `generate --sys_prompt`); the style's default when unset. */
  sysPrompt?: string;
}

export type StopReason = 'max_new_tokens' | 'stop' | 'block_size' | 'cancelled';

export interface GenerationStats {
  reason: StopReason;
  promptTokens: number;
  /** Model steps after the prompt (a stop sequence's tokens included). */
  generatedTokens: number;
  /** Tokens handed out (a stop sequence is not). */
  emittedTokens: number;
  /** The prompt's forward and the first token. */
  prefillSeconds: number;
  /** Prompts in that forward: the batched decoder prefills prompts that arrive together in one (0: cancelled before). */
  prefillRows: number;
  /** Every later token. */
  decodeSeconds: number;
  /** (generatedTokens − 1) / decodeSeconds: the decode speed with the KV cache. */
  decodeTokensPerSecond: number;
}

function checkSampling(o: SamplingOptions): Record<string, unknown> {
  const int = (v: unknown, name: string, min: number) => {
    if (!Number.isInteger(v) || (v as number) < min) fail('ERR_ARG', `${name}: expected an integer ≥ ${min}, got ${String(v)}`);
    return v as number;
  };
  const out: Record<string, unknown> = {
    maxNewTokens: int(o.maxNewTokens ?? 50, 'maxNewTokens', 1),
    seed: int(o.seed ?? 1234, 'seed', 0),
  };
  const temperature = o.temperature ?? 0.8;
  if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) {
    fail('ERR_ARG', `temperature: expected a number ≥ 0 (0 = greedy), got ${String(temperature)}`);
  }
  out.temperature = temperature;
  const topK = o.topK === undefined ? 50 : o.topK;
  if (topK !== null) out.topK = int(topK, 'topK', 1);
  const topP = o.topP ?? 1;
  if (typeof topP !== 'number' || !(topP >= 0 && topP <= 1)) fail('ERR_ARG', `topP: expected a number in [0, 1], got ${String(topP)}`);
  out.topP = topP;
  if (o.vocabLimit !== undefined && o.vocabLimit !== null) out.vocabLimit = int(o.vocabLimit, 'vocabLimit', 1);
  if (o.stopTokens !== undefined) {
    if (!Array.isArray(o.stopTokens)) fail('ERR_ARG', 'stopTokens: expected an array of token-id arrays, e.g. [[2]]');
    out.stopSequences = o.stopTokens.map((seq, i) => {
      if (!Array.isArray(seq) || seq.length === 0) fail('ERR_ARG', `stopTokens[${i}]: expected a non-empty array of token ids`);
      return seq.map((id, j) => int(id, `stopTokens[${i}][${j}]`, 0));
    });
  }
  return out;
}

function promptIds(prompt: ArrayLike<number>): Int32Array {
  if (prompt instanceof Int32Array) return prompt;
  const ids = new Int32Array(prompt.length);
  for (let i = 0; i < prompt.length; i++) {
    const id = prompt[i];
    if (!Number.isInteger(id) || id < 0) fail('ERR_ARG', `prompt[${i}]: expected a token id ≥ 0, got ${id}`);
    ids[i] = id;
  }
  return ids;
}

function checkAdapter(adapter: unknown): string | null {
  if (adapter === undefined || adapter === null) return null;
  if (typeof adapter !== 'string' || adapter.length === 0) fail('ERR_ARG', `adapter: expected an adapter name or null, got ${String(adapter)}`);
  return adapter;
}

/**
 * Generates token ids after `prompt` (token ids). Yields each id as the model produces it; the iterator's
 * return value (when iterated by hand) is the GenerationStats.
 *
 * Concurrent calls on one model queue in its FIFO order (ts/model/scheduler.ts) and decode together in one
 * batch (native/core/batch_decode.h): each gives the tokens it gives alone.
 */
export async function* generateTokens(model: Model, prompt: ArrayLike<number>, options: SamplingOptions = {}):
  AsyncGenerator<number, GenerationStats, undefined> {
  const nativeOptions = checkSampling(options);
  const adapter = checkAdapter(options.adapter);
  const ids = promptIds(prompt);
  const queue: number[] = [];
  let head = 0;
  let stats: GenerationStats | null = null;
  let error: Error | null = null;
  let wake: (() => void) | null = null;
  const waitForEvent = () => new Promise<void>((resolve) => { wake = resolve; });
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const cancelledStats = (): GenerationStats =>
    ({ reason: 'cancelled', promptTokens: ids.length, generatedTokens: 0, emittedTokens: 0, prefillSeconds: 0, prefillRows: 0, decodeSeconds: 0,
      decodeTokensPerSecond: 0 });
  if (options.signal?.aborted) return cancelledStats();
  let handle: NativeGeneration | null = null;
  let started = false;  // submitted to the decoder (else still waiting in the model's queue, or refused)
  const withdraw = model.scheduleGeneration({
    start(ended) {
      started = true;
      handle = binding().decodeSubmit(model.handle, ids, nativeOptions, adapter, (kind, value) => {
        if (kind === 'token') queue.push(value as number);
        else {
          if (kind === 'done') {
            const r = value as Omit<GenerationStats, 'decodeTokensPerSecond'>;
            stats = { ...r, decodeTokensPerSecond: r.decodeSeconds > 0 ? (r.generatedTokens - 1) / r.decodeSeconds : 0 };
          } else error = value as Error;
          ended();
        }
        notify();
      });
      if (options.signal?.aborted) handle.cancel();
    },
    fail(e) {
      error = e;
      notify();
    },
    cancelled() {
      stats = cancelledStats();
      notify();
    },
  }, options.signal);
  const onAbort = () => handle?.cancel();
  options.signal?.addEventListener('abort', onAbort);
  try {
    while (true) {
      if (head < queue.length) {
        const id = queue[head++]!;
        if (head > 1024) { queue.splice(0, head); head = 0; }
        yield id;
        continue;
      }
      if (error) throw error;
      if (stats) return stats;
      await waitForEvent();
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (!stats && !error) {
      if (started) {
        // Left early: stop the request and wait until its row is free again.
        (handle as NativeGeneration | null)?.cancel();
        while (!stats && !error) await waitForEvent();
      } else {
        // Still waiting in the queue: leave it.
        withdraw();
      }
    }
  }
}

/** The number of ids the tokenizer can decode (vocabulary plus added tokens that follow it). */
export function tokenizerIdLimit(tokenizer: Tokenizer): number {
  let limit = tokenizer.vocabSize;
  while (tokenizer.idToToken(limit) !== undefined) limit++;
  return limit;
}

/** Prompt text → ids, with the prompt style applied when given. */
export function encodePrompt(tokenizer: Tokenizer, prompt: string, options: Pick<TextGenerateOptions, 'promptStyle' | 'bos' | 'sysPrompt'> = {}): Int32Array {
  if (typeof prompt !== 'string') fail('ERR_TYPE', `prompt: expected a string, got ${typeof prompt}`);
  if (options.sysPrompt !== undefined && typeof options.sysPrompt !== 'string') fail('ERR_TYPE', `sysPrompt: expected a string, got ${typeof options.sysPrompt}`);
  const fields = options.sysPrompt ? { sysPrompt: options.sysPrompt } : {};
  const text = options.promptStyle ? options.promptStyle.forTokenizer(tokenizer).apply(prompt, fields) : prompt;
  return tokenizer.encode(text, { bos: options.bos });
}

function textOptions(model: Model, tokenizer: Tokenizer, options: TextGenerateOptions): SamplingOptions {
  const stopTokens = options.stopTokens ??
    (options.promptStyle ? options.promptStyle.forTokenizer(tokenizer).stopTokens(tokenizer) : tokenizer.eosId === null ? [] : [[tokenizer.eosId]]);
  let vocabLimit = options.vocabLimit;
  if (vocabLimit === undefined) {
    const limit = tokenizerIdLimit(tokenizer);
    const padded = Number(model.config.padded_vocab_size ?? Infinity);
    vocabLimit = limit < padded ? limit : null;
  }
  return { ...options, stopTokens, vocabLimit };
}

/**
 * Generates text after `prompt`: yields text pieces as tokens complete them (never half a UTF-8 character);
 * the return value (when iterated by hand) is the GenerationStats. Stop tokens (EOS, or the prompt style's)
 * end the text and are not part of it.
 */
export async function* generate(model: Model, tokenizer: Tokenizer, prompt: string, options: TextGenerateOptions = {}):
  AsyncGenerator<string, GenerationStats, undefined> {
  const ids = encodePrompt(tokenizer, prompt, options);
  const decoder = tokenizer.streamDecoder();
  const tokens = generateTokens(model, ids, textOptions(model, tokenizer, options));
  try {
    while (true) {
      const next = await tokens.next();
      if (next.done) {
        const rest = decoder.flush();
        if (rest) yield rest;
        return next.value;
      }
      const piece = decoder.push(next.value);
      if (piece) yield piece;
    }
  } finally {
    // Left early (break, return(), throw()): generateTokens' own finally cancels the native loop and waits for
    // it, so this iterator's return() settles only once the model is free. A finished one returns at once.
    await tokens.return(undefined as never);
  }
}

/** The whole generated text at once. */
export async function generateText(model: Model, tokenizer: Tokenizer, prompt: string, options: TextGenerateOptions = {}):
  Promise<{ text: string; stats: GenerationStats }> {
  const it = generate(model, tokenizer, prompt, options);
  let text = '';
  while (true) {
    const next = await it.next();
    if (next.done) return { text, stats: next.value };
    text += next.value;
  }
}

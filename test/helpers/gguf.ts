// GGUF test models and runners: tiny Hugging Face models made by transformers with real tokenizer fixtures,
// converted to litgpt folders; greedy tokens from litlora and from node-llama-cpp (llama.cpp's prebuilt CPU
// binary, float32 KV cache so that an f32 export computes what litlora computes; one thread, as llama.cpp's
// spinning workers crawl on a machine with other work).
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';
import { packageRoot } from '../../ts/addon_loader.js';
import { convertToLitgpt } from '../../ts/interop/convert_to_litgpt.js';
import { Model, generateTokens, type LoadOptions } from '../../ts/index.js';
import { runPython } from './python.js';

export const TOKENIZERS = join(packageRoot, 'test', 'fixtures', 'tokenizers');
export const QWEN2_CHAT_TEMPLATE = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n{{ m['content'] }}<|eot_id|>{% endfor %}";

export type GgufTestFamily = 'llama' | 'qwen2' | 'qwen3' | 'gpt_neox';

/**
 * Makes litgpt folders of tiny models, one per family, in `root/<family>`: llama with the Llama 3 tokenizer
 * fixture, qwen2 with a Qwen2-style tokenizer (the Llama 3 fixture with Qwen2's single-digit split and a chat
 * template), gpt_neox with the GPT-NeoX one. Vocabularies are the tokenizers' sizes.
 */
export async function makeGgufModels(root: string, families: readonly GgufTestFamily[]): Promise<Record<string, string>> {
  const vocab: Record<GgufTestFamily, number> = { llama: 2505, qwen2: 2505, qwen3: 2505, gpt_neox: 2002 };
  const dirs = Object.fromEntries(families.map((f) => [f, join(root, f)]));
  const ref = JSON.stringify(join(packageRoot, 'test', 'reference'));
  runPython(`sys.path.insert(0, ${ref})\nimport make_hf_model as m\n` +
    families.map((f, i) => `m.save(${JSON.stringify(f)}, ${JSON.stringify(dirs[f])}, seed=${i + 3}, vocab_size=${vocab[f]})`).join('\n'));
  for (const f of families) {
    const src = join(TOKENIZERS, f === 'gpt_neox' ? 'neox' : 'llama3');
    copyFileSync(join(src, 'tokenizer.json'), join(dirs[f], 'tokenizer.json'));
    copyFileSync(join(src, 'tokenizer_config.json'), join(dirs[f], 'tokenizer_config.json'));
    if (f === 'qwen2' || f === 'qwen3') {
      const t = JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8'));
      const split = t.pre_tokenizer.pretokenizers[0].pattern;
      split.Regex = split.Regex.replace('\\p{N}{1,3}', '\\p{N}');
      writeFileSync(join(dirs[f], 'tokenizer.json'), JSON.stringify(t));
      const c = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8'));
      writeFileSync(join(dirs[f], 'tokenizer_config.json'), JSON.stringify({ ...c, chat_template: QWEN2_CHAT_TEMPLATE }, null, 2));
    }
    await convertToLitgpt(dirs[f]);
  }
  return dirs;
}

let llamaPromise: Promise<Llama> | null = null;
export function llamaCpp(): Promise<Llama> {
  // A dynamic import: node-llama-cpp is ESM with top-level await, which the test runner's transform cannot require.
  llamaPromise ??= import('node-llama-cpp').then(({ getLlama, LlamaLogLevel }) => getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error }));
  return llamaPromise;
}

/** litlora's greedy tokens after each prompt (no early stop). */
export async function litloraGreedy(dir: string, prompts: readonly number[][], n: number, options?: LoadOptions): Promise<number[][]> {
  const model = await Model.load(dir, options);
  try {
    const out: number[][] = [];
    for (const p of prompts) {
      const tokens: number[] = [];
      for await (const t of generateTokens(model, p, { maxNewTokens: n, temperature: 0, stopTokens: [], vocabLimit: null })) tokens.push(t as number);
      out.push(tokens);
    }
    return out;
  } finally {
    model.dispose();
  }
}

/**
 * node-llama-cpp's greedy tokens after each prompt, with optional LoRA adapter files. With `forced` (one token
 * list per prompt), token k is llama.cpp's argmax after the prompt and forced[0..k) — teacher forcing, so that
 * one differing token does not make every later one differ.
 */
export async function llamaCppGreedy(modelPath: string, prompts: readonly number[][], n: number, lora: string[] = [],
  forced?: readonly number[][]): Promise<number[][]> {
  const llama = await llamaCpp();
  const model: LlamaModel = await llama.loadModel({ modelPath });
  try {
    const context = await model.createContext({
      contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
      ...(lora.length ? { lora: { adapters: lora.map((filePath) => ({ filePath })) } } : {}),
    });
    const out: number[][] = [];
    for (const p of prompts) {
      const seq = context.getSequence();
      const tokens: number[] = [];
      const it = seq.evaluate(p as Token[], { temperature: 0 });
      // The generator's next(token) feeds that token instead of the one it generated.
      for (let r = await it.next(); !r.done; r = await it.next(forced?.[out.length][tokens.length - 1] as Token | undefined)) {
        tokens.push(r.value);
        if (tokens.length >= n) break;
      }
      await it.return();
      seq.dispose();
      out.push(tokens);
    }
    await context.dispose();
    return out;
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's tokens of `text` (no BOS), for the tokenizer metadata checks. */
export async function llamaCppTokenize(modelPath: string, texts: string[]): Promise<number[][]> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath, vocabOnly: true });
  try {
    return texts.map((t) => [...model.tokenize(t, false)]);
  } finally {
    await model.dispose();
  }
}

/** The share of positions where `a` and `b` agree. */
export function agreement(a: number[][], b: number[][]): number {
  let same = 0, total = 0;
  a.forEach((row, i) => row.forEach((t, j) => { total++; if (b[i][j] === t) same++; }));
  return same / total;
}

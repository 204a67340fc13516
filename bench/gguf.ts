// npm run bench:gguf — convert_to_gguf on a Qwen2.5-0.5B-shaped model (bf16, 988 MB, random weights; made once by
// bench/convert_make_model.py and converted with convert_to_litgpt, kept in the cache folder), against the disk's
// durable-write floor for as many bytes (write + fsync, the faster of two), for --outtype f16 and q8_0; then, for
// users choosing a runtime, batch-1 greedy decode tokens/s of litlora (float32) and node-llama-cpp (the f16 and
// q8_0 files, CPU) on the same model. The tokenizer is the tests' Qwen2-style fixture (ids past it are [PAD]).
//
// Options: --dir D (cache folder, default bench/.cache/gguf)  --shape qwen2.5-0.5b | small  --tokens N (default 32)
//          --reps N (exports per outtype, default 3; the table has medians)
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { convertToGguf, type GgufOuttype } from '../ts/gguf/convert.js';
import { convertToLitgpt } from '../ts/interop/convert_to_litgpt.js';
import { Model, generateTokens, getNumThreads } from '../ts/index.js';
import { referencePython } from '../test/helpers/python.js';
import { machineName, markdownTable, median, removeAndSettle, runJsonChild, writeFloorSeconds } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const COMMON = { max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1e6 };
const SHAPES: Record<string, Record<string, number>> = {
  'qwen2.5-0.5b': { ...COMMON, hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936 },
  small: { ...COMMON, hidden_size: 256, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1024, vocab_size: 65536 },
};

const shapeName = arg('shape') ?? 'qwen2.5-0.5b';
const shape = SHAPES[shapeName];
if (!shape) throw new Error(`--shape: one of ${Object.keys(SHAPES).join(', ')}`);
const dir = arg('dir') ?? join(packageRoot, 'bench', '.cache', 'gguf', shapeName);
const nTokens = Number(arg('tokens') ?? 32);
const model = join(dir, 'model');

if (!existsSync(join(model, 'lit_model.pth'))) {
  mkdirSync(dir, { recursive: true });
  rmSync(model, { recursive: true, force: true });
  runJsonChild(referencePython(), [join(packageRoot, 'bench', 'convert_make_model.py'), model, JSON.stringify(shape)]);
  const fixture = join(packageRoot, 'test', 'fixtures', 'tokenizers', 'llama3');
  const t = JSON.parse(readFileSync(join(fixture, 'tokenizer.json'), 'utf8'));
  const split = t.pre_tokenizer.pretokenizers[0].pattern;
  split.Regex = split.Regex.replace('\\p{N}{1,3}', '\\p{N}');
  writeFileSync(join(model, 'tokenizer.json'), JSON.stringify(t));
  copyFileSync(join(fixture, 'tokenizer_config.json'), join(model, 'tokenizer_config.json'));
  await convertToLitgpt(model, { modelName: 'Qwen2.5-0.5B' });
}

// The checkpoint is read once first, so that every export finds it in the page cache (as the floor's writes need no
// reading); each export writes where no earlier output is (deleted and synced first, untimed: removeAndSettle).
for (const f of readdirSync(model)) if (f.endsWith('.pth')) readFileSync(join(model, f));
const reps = Number(arg('reps') ?? 3);
const rows: string[][] = [['', 'seconds (median)', 'GB written', 'durable-write floor / export (median of reps)']];
const files: Record<string, string> = {};
for (const outtype of ['f16', 'q8_0'] as GgufOuttype[]) {
  const out = join(dir, `model-${outtype}.gguf`);
  const seconds: number[] = [], ratios: number[] = [];
  let bytes = 0, floor = 0;
  for (let i = 0; i < reps; i++) {
    removeAndSettle(out);
    const r = await convertToGguf(model, out, { outtype });
    bytes = statSync(out).size;
    const floorFile = join(dir, 'write-floor.bin');
    floor = Math.min(await writeFloorSeconds(floorFile, bytes), await writeFloorSeconds(floorFile, bytes));
    seconds.push(r.seconds);
    ratios.push(floor / r.seconds);
    console.log(`  ${outtype} rep ${i + 1}: export ${r.seconds.toFixed(2)} s, floor ${floor.toFixed(2)} s`);
  }
  files[outtype] = out;
  rows.push([`convert_to_gguf --outtype ${outtype}`, median(seconds).toFixed(2), (bytes / 1e9).toFixed(3), `${median(ratios).toFixed(2)}×`]);
}

const prompt = [100, 200, 300, 400, 500, 600, 700, 800];
const decode: string[][] = [['runtime', 'weights', 'decode tok/s (batch 1, greedy)']];
{
  const m = await Model.load(model, { dtype: 'float32' });
  try {
    let t0 = 0, n = 0;
    for await (const _ of generateTokens(m, prompt, { maxNewTokens: nTokens, temperature: 0, stopTokens: [], vocabLimit: null })) {
      if (n++ === 0) t0 = performance.now();
    }
    decode.push([`litlora (${getNumThreads()} threads)`, 'float32', ((n - 1) / ((performance.now() - t0) / 1000)).toFixed(1)]);
  } finally {
    m.dispose();
  }
}
const { getLlama } = await import('node-llama-cpp');
const llama = await getLlama({ gpu: false, build: 'never' });
for (const outtype of ['f16', 'q8_0']) {
  const lm = await llama.loadModel({ modelPath: files[outtype] });
  // As many threads as litlora uses (llama.cpp's default, one per core it sees, spins on a shared machine).
  const ctx = await lm.createContext({ contextSize: 512, threads: getNumThreads() });
  const seq = ctx.getSequence();
  let t0 = 0, n = 0;
  for await (const _ of seq.evaluate(prompt as never, { temperature: 0 })) {
    if (n++ === 0) t0 = performance.now();
    if (n >= nTokens) break;
  }
  decode.push([`node-llama-cpp (${ctx.currentThreads} threads)`, outtype, ((n - 1) / ((performance.now() - t0) / 1000)).toFixed(1)]);
  await ctx.dispose();
  await lm.dispose();
}

console.log(`bench:gguf — ${shapeName}-shaped model (${machineName()})\n`);
console.log(markdownTable(rows));
console.log('');
console.log(markdownTable(decode));

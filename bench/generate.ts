// npm run bench:generate — decode speed with the KV cache at batch 1: ours (native decode loop, tokens
// streamed to JS) vs the same greedy loop in eager PyTorch (bench/generate_baseline.py over the reference GPT),
// same shapes, same thread count, one run. Each row times PyTorch right after ours, so both see the same load.
//
// Options: --device cpu|cuda  --dtype float32|bfloat16  --models pythia-14m,pythia-70m,pythia-160m
//          --prompt N (prompt tokens, default 32)  --new N (tokens to generate, default 128)  --reps N (default 3)
//          --threads N (both sides; default: litlora's default)
// Ours and PyTorch alternate rep by rep (PyTorch in a fresh child each rep), so both see the same machine load.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { configFromName } from '../ts/model/configs.js';
import { generateTokens } from '../ts/generate/generate.js';
import { Model, buildInfo, getNumThreads, setNumThreads, type Device, type ModelDtype } from '../ts/index.js';
import { referencePython } from '../test/helpers/python.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const device = (arg('device') ?? 'cpu') as Device;
const dtype = (arg('dtype') ?? 'float32') as ModelDtype;
const models = (arg('models') ?? 'demo,pythia-14m,pythia-70m,pythia-160m').split(',');
// 'demo': the model `litlora demo` trains (pythia-14m with 4 layers, the byte-level vocabulary padded to 384).
const DEMO = { n_layer: 4, n_embd: 128, n_head: 4, intermediate_size: 512, block_size: 256, vocab_size: 259, padded_vocab_size: 384 };
const promptLength = Number(arg('prompt') ?? 32);
const newTokens = Number(arg('new') ?? 128);
const reps = Number(arg('reps') ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (arg('threads')) setNumThreads(Number(arg('threads')));
const threads = getNumThreads();
const info = buildInfo();

console.log(`litlora bench:generate — greedy decode with KV cache, batch 1, device ${device}, ${dtype}, ${threads} threads, ` +
  `libtorch ${info.torchVersion}; prompt ${promptLength} tokens, ${newTokens} new tokens; median of ${reps}`);
const rows: string[][] = [['model', 'parameters', 'ours tokens/s', 'PyTorch tokens/s', 'ours / PyTorch', 'prefill ms (ours / PyTorch)']];
const prompt = Array.from({ length: promptLength }, (_, i) => (7 * i + 3) % 200);
for (const name of models) {
  const config = name === 'demo'
    ? { ...(configFromName('pythia-14m') as unknown as Record<string, unknown>), ...DEMO, name: 'pythia-14m' }
    : configFromName(name) as unknown as Record<string, unknown>;
  const model = await Model.fromConfig(config, { seed: 0, device, dtype });
  const run = async () => {
    const it = generateTokens(model, prompt, { temperature: 0, topK: null, stopTokens: [], vocabLimit: null, maxNewTokens: newTokens });
    while (true) { const n = await it.next(); if (n.done) return n.value; }
  };
  await run(); // warm-up
  const ours: number[] = [], oursPrefill: number[] = [], py: number[] = [], pyPrefill: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = await run();
    ours.push(s.decodeTokensPerSecond);
    oursPrefill.push(s.prefillSeconds * 1e3);
    const r = spawnSync(referencePython(), [join(packageRoot, 'bench', 'generate_baseline.py'), JSON.stringify({
      config, prompt: promptLength, new: newTokens, reps: 1, threads, device: device.startsWith('cuda') ? 'cuda' : 'cpu', dtype,
    })], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`PyTorch baseline failed:\n${r.stderr}`);
    const p = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokens_per_s: number; prefill_ms: number };
    py.push(p.tokens_per_s);
    pyPrefill.push(p.prefill_ms);
  }
  const params = model.parameterCount;
  model.dispose();
  const o = median(ours);
  const pt = median(py);
  rows.push([name, `${(params / 1e6).toFixed(1)} M`, o.toFixed(1), pt.toFixed(1), `${(o / pt).toFixed(2)}×`,
    `${median(oursPrefill).toFixed(1)} / ${median(pyPrefill).toFixed(1)}`]);
  console.log(rows[rows.length - 1].join(' | '));
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log('');
console.log(rows.map((r, j) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |${j === 0 ? `\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|` : ''}`).join('\n'));

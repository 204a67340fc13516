// `npm run bench:model`: one LoRA training micro-step (forward, loss, backward; LoRA on query+value, r=8,
// alpha=16, dropout 0.05; batch 4 × 256 tokens; CPU float32) on pythia-14m and pythia-70m shapes — litlora's
// native GPT against the eager-PyTorch reference (test/reference/gpt_reference.py: litgpt's LoRA GPT with
// lm_head_chunk_size=128 and chunked_cross_entropy), measured in the same run, each side in its own child
// process so that peak RSS is its own. Prints a table: median tokens/s and peak memory.
//
// Flags: --reps N (timed steps per side, default 5), --rounds N (alternating litlora / PyTorch runs, the best
// median per side counts, default 2 — the machine is shared, so one-off slowdowns hit either side),
// --models 14m,70m, --threads N (default 2).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const CONFIGS: Record<string, Record<string, unknown>> = {
  '14m': { name: 'pythia-14m', block_size: 512, n_layer: 6, n_embd: 128, n_head: 4, rotary_percentage: 0.25,
    intermediate_size: 512, vocab_size: 50254, padded_vocab_size: 50304, padding_multiple: 128, bias: true,
    parallel_residual: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP' },
  '70m': { name: 'pythia-70m', block_size: 2048, n_layer: 6, n_embd: 512, n_head: 8, rotary_percentage: 0.25,
    intermediate_size: 2048, vocab_size: 50254, padded_vocab_size: 50304, padding_multiple: 128, bias: true,
    parallel_residual: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP' },
};
const LORA = { lora_r: 8, lora_alpha: 16, lora_dropout: 0.05, lora_query: true, lora_key: false, lora_value: true,
  lora_projection: false, lora_mlp: false, lora_head: false };
const BATCH = 4, TIME = 256;

interface Result { side: string; model: string; stepMs: number[]; tokensPerSecond: number; peakRssMb: number; baseRssMb: number; loss: number }

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function batch(seed: number): { tokens: Int32Array; targets: Int32Array } {
  let s = seed >>> 0;
  const rand = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const tokens = new Int32Array(BATCH * TIME), targets = new Int32Array(BATCH * TIME);
  for (let i = 0; i < tokens.length; i++) { tokens[i] = Math.floor(rand() * 50254); targets[i] = Math.floor(rand() * 50254); }
  return { tokens, targets };
}

async function runOurs(model: string, reps: number, threads: number): Promise<Result> {
  const { Model, setNumThreads } = await import('../ts/index.js');
  setNumThreads(threads);
  const m = await Model.fromConfig({ ...CONFIGS[model], ...LORA }, { seed: 1 });
  const { tokens, targets } = batch(7);
  const shape = [BATCH, TIME];
  const adapter = m.adapter!;
  const baseRssMb = process.memoryUsage().rss / 2 ** 20;
  const times: number[] = [];
  let loss = 0;
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    loss = (await m.loss(tokens, targets, { shape, backward: true })).loss;
    adapter.zeroGrad();
    if (i >= 2) times.push(performance.now() - t0);
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  m.dispose();
  return { side: 'litlora', model, stepMs: times, tokensPerSecond: (BATCH * TIME) / (median(times) / 1000), peakRssMb, baseRssMb, loss };
}

function runReference(model: string, reps: number, threads: number): Result {
  const python = JSON.parse(require_('fs').readFileSync(join(root, 'build', 'litlora-env.json'), 'utf8')).python as string;
  const code = `
import json, sys, time, resource, torch
sys.path.insert(0, ${JSON.stringify(join(root, 'test', 'reference'))})
import gpt_reference as ref
torch.set_num_threads(${threads})
torch.manual_seed(1)
cfg = json.loads(${JSON.stringify(JSON.stringify({ ...CONFIGS[model], ...LORA }))})
model = ref.make_model(cfg)
model.train()
g = torch.Generator().manual_seed(7)
tokens = torch.randint(0, 50254, (${BATCH}, ${TIME}), generator=g)
targets = torch.randint(0, 50254, (${BATCH}, ${TIME}), generator=g)
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
base = rss_mb()
times = []
for i in range(${reps} + 2):
    t0 = time.perf_counter()
    logits = model(tokens, lm_head_chunk_size=128)
    loss = ref.chunked_cross_entropy(logits, targets, chunk_size=128)
    loss.backward()
    for p in model.parameters():
        p.grad = None
    del logits
    if i >= 2: times.append((time.perf_counter() - t0) * 1000)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"stepMs": times, "peakRssMb": peak, "baseRssMb": base, "loss": loss.item()}))
`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`reference failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { side: 'PyTorch eager', model, ...out, tokensPerSecond: (BATCH * TIME) / (median(out.stepMs) / 1000) };
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
import { createRequire } from 'node:module';
const require_ = createRequire(import.meta.url);

async function main(): Promise<void> {
  const reps = Number(arg('reps', '5'));
  const threads = Number(arg('threads', '2'));
  if (process.argv.includes('--worker')) {
    const result = await runOurs(arg('worker', '14m'), reps, threads);
    console.log(JSON.stringify(result));
    return;
  }
  const models = arg('models', '14m,70m').split(',');
  const rounds = Number(arg('rounds', '2'));
  const rows: [Result, Result][] = [];
  for (const model of models) {
    const oursAll: Result[] = [], theirsAll: Result[] = [];
    for (let round = 0; round < rounds; round++) {
      const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker', model, '--reps', String(reps),
        '--threads', String(threads)], { encoding: 'utf8', cwd: root, env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
      if (child.status !== 0) throw new Error(`litlora worker failed: ${child.stderr}`);
      const o = JSON.parse(child.stdout.trim().split('\n').pop()!) as Result;
      const t = runReference(model, reps, threads);
      console.error(`[bench:model] pythia-${model} round ${round + 1}: litlora ${o.tokensPerSecond.toFixed(0)} tok/s, ` +
        `PyTorch ${t.tokensPerSecond.toFixed(0)} tok/s`);
      oursAll.push(o);
      theirsAll.push(t);
    }
    // Fastest round per side; peak memory is the highest seen in any round.
    const best = (all: Result[]): Result => ({
      ...all.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a)),
      peakRssMb: Math.max(...all.map((r) => r.peakRssMb)),
      baseRssMb: Math.min(...all.map((r) => r.baseRssMb)),
    });
    const ours = best(oursAll), theirs = best(theirsAll);
    rows.push([ours, theirs]);
  }
  console.log(`\nLoRA micro-step (forward + loss + backward), q+v r=8, batch ${BATCH}×${TIME}, CPU fp32, ${threads} threads, best of ${rounds} rounds of median-of-${reps}`);
  console.log('| model | litlora tok/s | PyTorch tok/s | speed-up | litlora peak RSS (MB) | PyTorch peak RSS (MB) | RSS ratio | litlora peak − base (MB) | PyTorch peak − base (MB) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [o, t] of rows) {
    console.log(`| pythia-${o.model} | ${o.tokensPerSecond.toFixed(0)} | ${t.tokensPerSecond.toFixed(0)} | ${(o.tokensPerSecond / t.tokensPerSecond).toFixed(2)}× | ` +
      `${o.peakRssMb.toFixed(0)} | ${t.peakRssMb.toFixed(0)} | ${(o.peakRssMb / t.peakRssMb).toFixed(2)}× | ` +
      `${(o.peakRssMb - o.baseRssMb).toFixed(0)} | ${(t.peakRssMb - t.baseRssMb).toFixed(0)} |`);
  }
  console.log(`\nlosses (same task, different random weights): ${rows.map(([o, t]) => `${o.model}: ${o.loss.toFixed(3)} / ${t.loss.toFixed(3)}`).join(', ')}`);
}

await main();

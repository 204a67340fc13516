// `npm run bench:model`: one LoRA training micro-step (forward, loss, backward; LoRA on query+value, r=8,
// alpha=16, dropout 0.05; batch 4 × 256 tokens; CPU float32) on pythia-14m and pythia-70m shapes — litlora's
// native GPT against the eager-PyTorch reference (test/reference/gpt_reference.py: litgpt's LoRA GPT with
// lm_head_chunk_size=128 and chunked_cross_entropy), measured in the same run.
//
// Each side runs in its own child process (so peak RSS is its own) and the two take turns step by step:
// litlora step, PyTorch step, litlora step, … — on a shared machine, a burst of load then hits both sides
// alike instead of one whole run. Reported: tokens/s of the median step and of the fastest step per side
// (the fastest is the least disturbed by other processes: load only ever adds time), and peak RSS.
//
// Flags: --reps N (timed steps per side, default 6), --models 14m,70m[,tiny-llama][,qwen3-0.6b][,qwen3-moe-small], --threads N (default 2),
// --device cpu|cuda, --dtype float32|bfloat16. On a GPU: `--models tiny-llama --device cuda --dtype bfloat16`
// (tiny-llama-1.1b's config, bf16-true on both sides; PyTorch's torch.cuda.max_memory_allocated is printed).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LORA_DEFAULTS, loraToKeys } from '../ts/model/lora_settings.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const CONFIGS: Record<string, Record<string, unknown>> = {
  '14m': { name: 'pythia-14m', block_size: 512, n_layer: 6, n_embd: 128, n_head: 4, rotary_percentage: 0.25,
    intermediate_size: 512, vocab_size: 50254, padded_vocab_size: 50304, padding_multiple: 128, bias: true,
    parallel_residual: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP' },
  '70m': { name: 'pythia-70m', block_size: 2048, n_layer: 6, n_embd: 512, n_head: 8, rotary_percentage: 0.25,
    intermediate_size: 2048, vocab_size: 50254, padded_vocab_size: 50304, padding_multiple: 128, bias: true,
    parallel_residual: true, norm_class_name: 'LayerNorm', mlp_class_name: 'GptNeoxMLP' },
  'tiny-llama': { name: 'tiny-llama-1.1b', block_size: 2048, n_layer: 22, n_embd: 2048, n_head: 32, n_query_groups: 4,
    rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm', norm_eps: 1e-5,
    mlp_class_name: 'LLaMAMLP', intermediate_size: 5632, vocab_size: 32000, padded_vocab_size: 32000, padding_multiple: 64 },
  // litgpt's Qwen3-0.6B: per-head q/k norms (norm_qk), GQA 16/8, head_size 128 ≠ n_embd / n_head, tied-size vocabulary.
  'qwen3-0.6b': { name: 'Qwen3-0.6B', block_size: 40960, vocab_size: 151643, padded_vocab_size: 151936, n_layer: 28, n_head: 16,
    n_embd: 1024, n_query_groups: 8, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm',
    mlp_class_name: 'LLaMAMLP', intermediate_size: 3072, norm_eps: 1e-6, rope_base: 1000000, head_size: 128, norm_qk: true },
  // A scaled-down Qwen3-MoE (litgpt's LLaMAMoE: 32 experts, top-4, norm_qk): the routing and per-expert gathers at a size
  // a 2-core machine steps through in seconds.
  'qwen3-moe-small': { name: 'qwen3-moe-small', block_size: 4096, vocab_size: 32000, padded_vocab_size: 32000, n_layer: 4, n_head: 8,
    n_embd: 512, n_query_groups: 4, rotary_percentage: 1.0, parallel_residual: false, bias: false, norm_class_name: 'RMSNorm',
    mlp_class_name: 'LLaMAMoE', intermediate_size: 1536, moe_intermediate_size: 256, n_expert: 32, n_expert_per_token: 4,
    norm_eps: 1e-6, rope_base: 1000000, head_size: 64, norm_qk: true },
};
const LORA = LORA_DEFAULTS; // litgpt finetune lora's defaults
const BATCH = 4, TIME = 256;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ---- the litlora side: `--worker MODEL` answers "step" with a time in ms and "done" with its peak RSS ----

async function worker(model: string, threads: number, device: string, dtype: string): Promise<void> {
  const { Model, setNumThreads } = await import('../ts/index.js');
  setNumThreads(threads);
  const m = await Model.fromConfig(CONFIGS[model], { seed: 1, lora: LORA, device: device as any, dtype: dtype as any });
  const vocab = Number(CONFIGS[model].vocab_size);
  let s = 7;
  const rand = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const tokens = new Int32Array(BATCH * TIME).map(() => Math.floor(rand() * vocab));
  const targets = new Int32Array(BATCH * TIME).map(() => Math.floor(rand() * vocab));
  const adapter = m.adapter!;
  const base = process.memoryUsage().rss / 2 ** 20;
  console.log(JSON.stringify({ ready: true, baseRssMb: base }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'step') {
      const t0 = performance.now();
      const { loss } = await m.loss(tokens, targets, { shape: [BATCH, TIME], backward: true });
      adapter.zeroGrad();
      console.log(JSON.stringify({ ms: performance.now() - t0, loss }));
    } else if (line === 'done') {
      console.log(JSON.stringify({ peakRssMb: process.resourceUsage().maxRSS / 1024 }));
      break;
    }
  }
  m.dispose();
  process.exit(0);
}

// ---- the PyTorch side: the same protocol in Python ----

function referenceCode(model: string, threads: number, device: string, dtype: string): string {
  const vocab = Number(CONFIGS[model].vocab_size);
  const config = { ...CONFIGS[model], ...loraToKeys(LORA) };
  return `
import json, sys, time, resource, torch
sys.path.insert(0, ${JSON.stringify(join(root, 'test', 'reference'))})
import gpt_reference as ref
torch.set_num_threads(${threads})
torch.manual_seed(1)
device, dtype = ${JSON.stringify(device)}, getattr(torch, ${JSON.stringify(dtype)})
model = ref.make_model(json.loads(${JSON.stringify(JSON.stringify(config))})).to(device=device, dtype=dtype)
model.train()
g = torch.Generator().manual_seed(7)
tokens = torch.randint(0, ${vocab}, (${BATCH}, ${TIME}), generator=g).to(device)
targets = torch.randint(0, ${vocab}, (${BATCH}, ${TIME}), generator=g).to(device)
def sync():
    if device.startswith("cuda"): torch.cuda.synchronize()
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
print(json.dumps({"ready": True, "baseRssMb": rss_mb()}), flush=True)
for line in sys.stdin:
    if line.strip() == "step":
        t0 = time.perf_counter()
        logits = model(tokens, lm_head_chunk_size=128)
        loss = ref.chunked_cross_entropy(logits, targets, chunk_size=128)
        loss.backward()
        for p in model.parameters():
            p.grad = None
        del logits
        value = loss.item()
        sync()
        print(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "loss": value}), flush=True)
    elif line.strip() == "done":
        gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        print(json.dumps({"peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cudaPeakMb": gpu}), flush=True)
        break
`;
}

class Side {
  readonly lines: AsyncIterator<string>;
  constructor(readonly name: string, readonly child: ChildProcessWithoutNullStreams) {
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => { if (code) console.error(`[bench:model] ${name} exited ${code}: ${stderr.slice(-2000)}`); });
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  async next(): Promise<any> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`${this.name} ended early`);
    return JSON.parse(r.value);
  }
  async ask(command: string): Promise<any> {
    this.child.stdin.write(`${command}\n`);
    return this.next();
  }
}

interface Row {
  model: string; ours: number[]; theirs: number[]; oursPeak: number; theirsPeak: number; oursBase: number; theirsBase: number;
  losses: [number, number]; theirsCudaPeak: number | null;
}

async function compare(model: string, reps: number, threads: number, device: string, dtype: string): Promise<Row> {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads) };
  const python = JSON.parse(readFileSync(join(root, 'build', 'litlora-env.json'), 'utf8')).python as string;
  const ours = new Side('litlora', spawn(process.execPath, [...selfLoader(), fileURLToPath(import.meta.url), '--worker', model,
    '--threads', String(threads), '--device', device, '--dtype', dtype], { cwd: root, env }));
  const theirs = new Side('PyTorch', spawn(python, ['-c', referenceCode(model, threads, device, dtype)], { cwd: root, env }));
  const [a, b] = [await ours.next(), await theirs.next()];
  const row: Row = { model, ours: [], theirs: [], oursPeak: 0, theirsPeak: 0, oursBase: a.baseRssMb, theirsBase: b.baseRssMb,
    losses: [0, 0], theirsCudaPeak: null };
  for (let i = 0; i < reps + 2; i++) {
    const o = await ours.ask('step');
    const t = await theirs.ask('step');
    if (i >= 2) { row.ours.push(o.ms); row.theirs.push(t.ms); }
    row.losses = [o.loss, t.loss];
    process.stderr.write(`[bench:model] ${CONFIGS[model]!.name} step ${i + 1}/${reps + 2}: litlora ${o.ms.toFixed(0)} ms, PyTorch ${t.ms.toFixed(0)} ms\n`);
  }
  row.oursPeak = (await ours.ask('done')).peakRssMb;
  const done = await theirs.ask('done');
  row.theirsPeak = done.peakRssMb;
  row.theirsCudaPeak = done.cudaPeakMb;
  return row;
}

async function main(): Promise<void> {
  const threads = Number(arg('threads', '2'));
  const device = arg('device', 'cpu'), dtype = arg('dtype', 'float32');
  if (process.argv.includes('--worker')) return worker(arg('worker', '14m'), threads, device, dtype);
  const reps = Number(arg('reps', '6'));
  const rows: Row[] = [];
  for (const model of arg('models', '14m,70m').split(',')) rows.push(await compare(model, reps, threads, device, dtype));
  const tps = (ms: number[]) => (BATCH * TIME) / (median(ms) / 1000);
  const best = (ms: number[]) => (BATCH * TIME) / (Math.min(...ms) / 1000);
  console.log(`\nLoRA micro-step (forward + loss + backward), q+v r=8, batch ${BATCH}×${TIME}, ${device} ${dtype}, ${threads} threads, ` +
    `${reps} alternating steps per side`);
  console.log('| model | litlora tok/s (median / best step) | PyTorch tok/s (median / best step) | speed-up (median / best) | ' +
    'litlora peak RSS | PyTorch peak RSS | RSS ratio | litlora peak − base | PyTorch peak − base |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const [o, t, ob, tb] = [tps(r.ours), tps(r.theirs), best(r.ours), best(r.theirs)];
    console.log(`| ${CONFIGS[r.model]!.name} | ${o.toFixed(0)} / ${ob.toFixed(0)} | ${t.toFixed(0)} / ${tb.toFixed(0)} | ` +
      `${(o / t).toFixed(2)}× / ${(ob / tb).toFixed(2)}× | ${r.oursPeak.toFixed(0)} MB | ${r.theirsPeak.toFixed(0)} MB | ` +
      `${(r.oursPeak / r.theirsPeak).toFixed(2)}× | ${(r.oursPeak - r.oursBase).toFixed(0)} MB | ${(r.theirsPeak - r.theirsBase).toFixed(0)} MB |`);
    if (r.theirsCudaPeak !== null) console.log(`  (${r.model}: PyTorch torch.cuda.max_memory_allocated ${r.theirsCudaPeak.toFixed(0)} MB)`);
  }
  console.log(`\nlast losses (random weights, random tokens; ≈ ln 50304 = 10.83): ` +
    rows.map((r) => `${r.model}: litlora ${r.losses[0].toFixed(3)}, PyTorch ${r.losses[1].toFixed(3)}`).join('; '));
}

await main();

// A worker runs this same file: TypeScript needs the tsx loader; the compiled copy (GPU machine) does not.
function selfLoader(): string[] {
  return import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [];
}

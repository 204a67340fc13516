// `npm run bench:train`: a whole LoRA finetune — litlora's Trainer (data batches, one native call per micro-step:
// forward, chunked cross-entropy, backward, AdamW, the schedule, logging) against the equivalent eager PyTorch
// loop (test/reference/gpt_reference.py: litgpt's LoRA GPT, lm_head_chunk_size=128 and chunked_cross_entropy,
// torch.optim.AdamW, zero_grad), measured in the same run, each side in its own child process so that peak
// RSS is its own. Default: pythia-70m shapes, micro batch 4 × 256 tokens, LoRA q+v r=8 (alpha 16, dropout
// 0.05), CPU float32, 2 threads. Prints a table: median step tokens/s, whole-run tokens/s, peak memory.
//
// Flags: --steps N (timed optimizer steps per side, default 8; 2 more warm up), --rounds N (alternating runs,
// best per side counts, default 2), --threads N, --model 70m|14m, --config NAME|model_config.yaml (e.g.
// tiny-llama-1.1b for the GPU run), --device cpu|cuda, --dtype float32|bfloat16 (bfloat16 = bf16-true).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LORA_DEFAULTS, loraToKeys } from '../ts/model/lora_settings.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const LORA = LORA_DEFAULTS; // litgpt finetune lora's defaults
const BATCH = 4, TIME = 256, WARMUP = 2;

interface Result {
  side: string; stepMs: number[]; tokensPerSecond: number; wallTokensPerSecond: number; peakRssMb: number; baseRssMb: number;
  peakDeviceMb: number | null; loss: number;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function modelConfig(): Promise<Record<string, unknown>> {
  const name = arg('config', '');
  const { readConfig } = await import('../ts/model/config.js');
  const { configFromName } = await import('../ts/model/configs.js');
  // Default: litgpt's named pythia config (--model 14m | 70m).
  const c = !name ? configFromName(`pythia-${arg('model', '70m')}`) : name.endsWith('.yaml') ? await readConfig(resolve(name)) : configFromName(name);
  return c as unknown as Record<string, unknown>;
}

/** Instruction rows whose encoding is longer than TIME bytes: every micro-batch is exactly BATCH × TIME tokens. */
function dataRows(n: number): { instruction: string; input: string; output: string }[] {
  let s = 12345;
  const letter = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return String.fromCharCode(97 + (s >>> 8) % 26); };
  return Array.from({ length: n }, () => ({ instruction: Array.from({ length: 200 }, letter).join(''), input: '', output: Array.from({ length: 100 }, letter).join('') }));
}

async function runOurs(steps: number, threads: number, device: string, dtype: string): Promise<Result> {
  const { Model, setNumThreads, createDataModule, Tokenizer } = await import('../ts/index.js');
  const { Trainer } = await import('../ts/train/trainer.js');
  const { writeInstructionJson } = await import('../ts/data/synthetic.js');
  setNumThreads(threads);
  const dir = mkdtempSync(join(tmpdir(), 'litlora-bench-train-'));
  try {
    mkdirSync(join(dir, 'data'));
    writeInstructionJson(join(dir, 'data', 'train.json'), dataRows(BATCH * (steps + WARMUP)));
    writeInstructionJson(join(dir, 'data', 'val.json'), dataRows(1));
    const model = await Model.fromConfig(await modelConfig(), { seed: 1, device: device as any, dtype: dtype as any, lora: LORA });
    const baseRssMb = process.memoryUsage().rss / 2 ** 20;
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: join(dir, 'data'), prompt_style: 'default' }),
      tokenizer: Tokenizer.fromDir(join(root, 'test', 'fixtures', 'tokenizers', 'bytes')),
      precision: dtype === 'bfloat16' ? 'bf16-true' : '32-true', progress: 'none', seed: 1,
      train: { globalBatchSize: BATCH, microBatchSize: BATCH, lrWarmupSteps: 2, maxSteps: steps + WARMUP, epochs: 1, maxSeqLength: TIME },
      eval: { interval: 1_000_000, finalValidation: false, maxNewTokens: 0 },
      optimizer: { lr: 1e-3, weightDecay: 0.01 },
    });
    const stepMs: number[] = [];
    let loss = 0, t0 = 0, tokens = 0;
    for await (const e of trainer.fit()) {
      if (e.type !== 'step') continue;
      if (e.step === WARMUP) t0 = performance.now();
      if (e.step > WARMUP) { stepMs.push(e.stepTimeMs); tokens += BATCH * TIME; }
      loss = e.loss;
    }
    const wall = (performance.now() - t0) / 1000;
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    model.dispose();
    return { side: 'litlora', stepMs, tokensPerSecond: (BATCH * TIME) / (median(stepMs) / 1000), wallTokensPerSecond: tokens / wall, peakRssMb, baseRssMb, peakDeviceMb: null, loss };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runReference(steps: number, threads: number, device: string, dtype: string): Promise<Result> {
  const python = JSON.parse(readFileSync(join(root, 'build', 'litlora-env.json'), 'utf8')).python as string;
  const cfg = { ...(await modelConfig()), ...loraToKeys(LORA) };
  const rows = dataRows(BATCH * (steps + WARMUP));
  const code = `
import json, sys, time, resource, torch
sys.path.insert(0, ${JSON.stringify(join(root, 'test', 'reference'))})
import gpt_reference as ref
torch.set_num_threads(${threads})
torch.manual_seed(1)
device, dtype = ${JSON.stringify(device)}, getattr(torch, ${JSON.stringify(dtype)})
cfg = json.loads(${JSON.stringify(JSON.stringify(cfg))})
rows = json.loads(${JSON.stringify(JSON.stringify(rows))})
model = ref.make_model(cfg, dtype=dtype).to(device)
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
# The same tokens as litlora's side: <bos> + bytes of instruction + output, cut to ${TIME}; labels = inputs.
ids = [[256] + list((r["instruction"] + r["output"]).encode())[:${TIME - 1}] for r in rows]
batches = [torch.tensor(ids[i:i + ${BATCH}], device=device) for i in range(0, len(ids), ${BATCH})]
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
def sync():
    if device.startswith("cuda"): torch.cuda.synchronize()
base = rss_mb()
times = []
for i, input_ids in enumerate(batches):
    sync(); t0 = time.perf_counter()
    # litgpt finetune/lora.py fit(): chunked head, drop the last position, chunked CE against targets[..., 1:]
    logits = model(input_ids, lm_head_chunk_size=128)
    logits[-1] = logits[-1][..., :-1, :]
    loss = ref.chunked_cross_entropy(logits, input_ids[..., 1:], chunk_size=128)
    loss.backward()
    opt.step()
    opt.zero_grad()
    loss_value = loss.item()
    del logits, loss
    sync()
    if i == ${WARMUP - 1}: wall0 = time.perf_counter()
    if i >= ${WARMUP}: times.append((time.perf_counter() - t0) * 1000)
wall = time.perf_counter() - wall0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
dev = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
print(json.dumps({"stepMs": times, "peakRssMb": peak, "baseRssMb": base, "loss": loss_value, "wall": wall, "peakDeviceMb": dev}))
`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
  if (r.status !== 0) throw new Error(`reference failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return {
    side: 'PyTorch eager', stepMs: out.stepMs, tokensPerSecond: (BATCH * TIME) / (median(out.stepMs) / 1000),
    wallTokensPerSecond: (BATCH * TIME * steps) / out.wall, peakRssMb: out.peakRssMb, baseRssMb: out.baseRssMb, peakDeviceMb: out.peakDeviceMb, loss: out.loss,
  };
}

async function main(): Promise<void> {
  const steps = Number(arg('steps', '8'));
  const threads = Number(arg('threads', '2'));
  const device = arg('device', 'cpu');
  const dtype = arg('dtype', 'float32');
  if (process.argv.includes('--worker')) {
    console.log(JSON.stringify(await runOurs(steps, threads, device, dtype)));
    return;
  }
  const rounds = Number(arg('rounds', '2'));
  const ours: Result[] = [], theirs: Result[] = [];
  const passthrough = ['--steps', String(steps), '--threads', String(threads), '--device', device, '--dtype', dtype,
    ...(arg('config', '') ? ['--config', arg('config', '')] : ['--model', arg('model', '70m')])];
  for (let round = 0; round < rounds; round++) {
    const child = spawnSync(process.execPath, [...selfLoader(), fileURLToPath(import.meta.url), '--worker', ...passthrough],
      { encoding: 'utf8', cwd: root, env: { ...process.env, OMP_NUM_THREADS: String(threads) }, maxBuffer: 64 << 20 });
    if (child.status !== 0) throw new Error(`litlora worker failed: ${child.stderr}`);
    const o = JSON.parse(child.stdout.trim().split('\n').pop()!) as Result;
    const t = await runReference(steps, threads, device, dtype);
    console.error(`[bench:train] round ${round + 1}: litlora ${o.tokensPerSecond.toFixed(0)} tok/s (peak RSS ${o.peakRssMb.toFixed(0)} MB), ` +
      `PyTorch ${t.tokensPerSecond.toFixed(0)} tok/s (peak RSS ${t.peakRssMb.toFixed(0)} MB)`);
    ours.push(o);
    theirs.push(t);
  }
  const best = (all: Result[]): Result => ({
    ...all.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a)),
    peakRssMb: Math.max(...all.map((r) => r.peakRssMb)),
    baseRssMb: Math.min(...all.map((r) => r.baseRssMb)),
  });
  const o = best(ours), t = best(theirs);
  const cfg = await modelConfig();
  console.log(`\nWhole LoRA finetune (Trainer vs eager PyTorch loop with AdamW): ${String(cfg.name)}, q+v r=8, micro batch ${BATCH}×${TIME}, ` +
    `${device} ${dtype}, ${threads} threads, ${steps} timed steps after ${WARMUP} warm-up, best of ${rounds} rounds`);
  console.log('| side | median step tok/s | whole-run tok/s | peak RSS (MB) | peak − base RSS (MB) |' + (device === 'cpu' ? '' : ' peak CUDA alloc (MB) |'));
  console.log('|---|---|---|---|---|' + (device === 'cpu' ? '' : '---|'));
  for (const r of [o, t]) {
    console.log(`| ${r.side} | ${r.tokensPerSecond.toFixed(0)} | ${r.wallTokensPerSecond.toFixed(0)} | ${r.peakRssMb.toFixed(0)} | ${(r.peakRssMb - r.baseRssMb).toFixed(0)} |` +
      (device === 'cpu' ? '' : ` ${r.peakDeviceMb === null ? 'n/a' : r.peakDeviceMb.toFixed(0)} |`));
  }
  console.log(`| ratio | ${(o.tokensPerSecond / t.tokensPerSecond).toFixed(2)}× | ${(o.wallTokensPerSecond / t.wallTokensPerSecond).toFixed(2)}× | ` +
    `${(o.peakRssMb / t.peakRssMb).toFixed(2)}× | ${((o.peakRssMb - o.baseRssMb) / (t.peakRssMb - t.baseRssMb)).toFixed(2)}× |` + (device === 'cpu' ? '' : ' |'));
  console.log(`\nlast losses (same tokens, different random weights): litlora ${o.loss.toFixed(3)}, PyTorch ${t.loss.toFixed(3)}`);
}

await main();

// A worker runs this same file: TypeScript needs the tsx loader; the compiled copy (GPU machine) does not.
function selfLoader(): string[] {
  return import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [];
}

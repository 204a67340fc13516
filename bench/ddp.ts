// `npm run bench:ddp`: what data-parallel training costs in communication. Two ranks on this machine (child
// processes joined over libtorch's Gloo) train LoRA q+v r=8 on pythia-70m shapes (CPU float32, micro batch
// 1 × 256 tokens, one micro-batch per rank per optimizer step) through the native training step; each rank
// reports, per optimizer step, the wall time of the step and of the bucketed all-reduce of its LoRA gradients
// inside it, and the bytes it contributed. Goal: all-reduce ≤ 3% of the step. On the CPU both ranks share this
// machine's cores, so the step times are not a speed-up measurement (that needs two GPUs, NCCL; unmeasured here).
//
// Flags: --steps N (timed optimizer steps, default 6; 1 more warms up), --threads N (per rank, default cores / 2).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { binding } from '../ts/binding.js';
import { Model } from '../ts/model/model.js';
import { configFromName } from '../ts/model/configs.js';
import { ProcessGroup } from '../ts/train/distributed.js';
import { markdownTable, median } from './harness.js';

const TIME = 256, WARMUP = 1;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

interface RankReport { rank: number; stepMs: number[]; allReduceMs: number[]; bytesPerStep: number; buckets: number; params: number }

async function rank(rankIndex: number, port: number, steps: number): Promise<RankReport> {
  const model = await Model.fromConfig(configFromName('pythia-70m') as any, { seed: 1, lora: { r: 8, alpha: 16, dropout: 0.05, query: true, value: true } });
  const group = await ProcessGroup.join({ rank: rankIndex, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 600_000 });
  const nt = binding().NativeTrainer.create(model.handle, { precision: '32-true', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  await nt.setProcessGroup(group.native);
  const vocab = 50254;
  let seed = 17 + rankIndex;
  const token = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % vocab; };
  const stepMs: number[] = [], allReduceMs: number[] = [];
  let bytesPerStep = 0, buckets = 0;
  for (let s = 0; s < steps + WARMUP; s++) {
    const tokens = Int32Array.from({ length: TIME }, token), targets = Int32Array.from({ length: TIME }, token);
    const before = group.stats();
    const t0 = performance.now();
    await nt.microStep(tokens, targets, [1, TIME], { accumulate: 1, step: true, lr: 1e-4, maxNorm: 0 });
    const ms = performance.now() - t0;
    const after = group.stats();
    if (s < WARMUP) continue;
    stepMs.push(ms);
    allReduceMs.push((after.seconds - before.seconds) * 1000);
    bytesPerStep = after.bytes - before.bytes;
    buckets = after.buckets - before.buckets;
  }
  const params = model.adapter!.parameterCount;
  nt.dispose();
  group.dispose();
  model.dispose();
  return { rank: rankIndex, stepMs, allReduceMs, bytesPerStep, buckets, params };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  if (process.env.BENCH_DDP_RANK !== undefined) {
    const report = await rank(Number(process.env.BENCH_DDP_RANK), Number(process.env.BENCH_DDP_PORT), Number(process.env.BENCH_DDP_STEPS));
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const steps = Number(arg('steps', '6'));
  const threads = arg('threads', String(Math.max(1, Math.floor(availableParallelism() / 2))));
  const port = await freePort();
  const self = fileURLToPath(import.meta.url);
  const reports = await Promise.all([0, 1].map((r) => new Promise<RankReport>((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, self], {
      env: { ...process.env, BENCH_DDP_RANK: String(r), BENCH_DDP_PORT: String(port), BENCH_DDP_STEPS: String(steps), LITLORA_THREADS: threads },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`rank ${r} exited with ${code}`))));
  })));
  const rows = [['rank', 'median step (ms)', 'median all-reduce (ms)', 'all-reduce / step', 'payload bytes / step', 'ring bytes sent / step', 'buckets']];
  for (const r of reports) {
    const step = median(r.stepMs)!, ar = median(r.allReduceMs)!;
    // A ring all-reduce of P bytes over W ranks sends 2 (W − 1) / W × P bytes from each rank.
    rows.push([String(r.rank), step.toFixed(1), ar.toFixed(2), `${((ar / step) * 100).toFixed(2)}%`, String(r.bytesPerStep),
      String(Math.round(((2 * (2 - 1)) / 2) * r.bytesPerStep)), String(r.buckets)]);
  }
  process.stdout.write(`bench:ddp — 2 ranks (Gloo, 127.0.0.1), pythia-70m shapes, LoRA q+v r=8 (${reports[0]!.params} parameters), ` +
    `CPU float32, micro batch 1 × ${TIME}, ${threads} thread(s) per rank, ${steps} timed steps\n\n${markdownTable(rows)}\n\n` +
    '2-GPU speed-up (NCCL): unmeasured (no machine with two GPUs).\n');
}

await main();

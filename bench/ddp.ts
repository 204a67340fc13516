// `npm run bench:ddp`: what data-parallel training costs in communication. Two ranks on this machine (child
// processes joined over libtorch's Gloo) train LoRA q+v r=8 on pythia-70m shapes (CPU float32, micro batch
// 1 × 256 tokens, one micro-batch per rank per optimizer step) through the native training step; each rank
// reports, per optimizer step, the wall time of the step, the exposed all-reduce time of its LoRA gradients (what
// the training thread spent averaging them after the backward: all of it without overlap; with overlap, the wait
// for the buckets whose sums started during the backward), and the bytes it contributed. Three settings: overlap
// off, overlap on with the default 1 MiB buckets (one bucket at these shapes, started by the last hook), and
// overlap on with small buckets (several, started while the backward runs). Goal: all-reduce ≤ 3% of the step.
// On the CPU both ranks share this machine's cores, so the step times are not a speed-up measurement (that needs
// two GPUs, NCCL; unmeasured here), and the ranks' backwards end at times that differ by the scheduler's whims: the
// table splits each rank's exposed time into the wait for the other rank's backward to end (skew, which no
// communication scheme can hide) and the all-reduce beyond it, which the goal is about.
//
// Flags: --steps N (timed optimizer steps, default 6; 1 more warms up), --threads N (per rank, default cores / 2),
// --small_bucket_kb N (the small buckets, default 32).
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

interface Setting { name: string; overlap: boolean; bucketBytes: number }
interface RankReport {
  rank: number; stepMs: number[]; allReduceMs: number[]; waitStartMs: number[]; bytesPerStep: number; buckets: number; overlappedBuckets: number; params: number;
}

async function rank(rankIndex: number, port: number, steps: number, setting: Setting): Promise<RankReport> {
  const model = await Model.fromConfig(configFromName('pythia-70m') as any, { seed: 1, lora: { r: 8, alpha: 16, dropout: 0.05, query: true, value: true } });
  const group = await ProcessGroup.join({
    rank: rankIndex, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 600_000,
    overlap: setting.overlap, bucketBytes: setting.bucketBytes,
  });
  const nt = binding().NativeTrainer.create(model.handle, { precision: '32-true', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  await nt.setProcessGroup(group.native, group.gradientSync);
  const vocab = 50254;
  let seed = 17 + rankIndex;
  const token = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % vocab; };
  const stepMs: number[] = [], allReduceMs: number[] = [], waitStartMs: number[] = [];
  let bytesPerStep = 0, buckets = 0, overlappedBuckets = 0;
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
    waitStartMs.push(after.lastWaitStart * 1000);
    bytesPerStep = after.bytes - before.bytes;
    buckets = after.buckets - before.buckets;
    overlappedBuckets = after.overlappedBuckets - before.overlappedBuckets;
  }
  const params = model.adapter!.parameterCount;
  nt.dispose();
  group.dispose();
  model.dispose();
  return { rank: rankIndex, stepMs, allReduceMs, waitStartMs, bytesPerStep, buckets, overlappedBuckets, params };
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
    const setting = JSON.parse(process.env.BENCH_DDP_SETTING!) as Setting;
    const report = await rank(Number(process.env.BENCH_DDP_RANK), Number(process.env.BENCH_DDP_PORT), Number(process.env.BENCH_DDP_STEPS), setting);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const steps = Number(arg('steps', '6'));
  const threads = arg('threads', String(Math.max(1, Math.floor(availableParallelism() / 2))));
  const smallKb = Number(arg('small_bucket_kb', '32'));
  const settings: Setting[] = [
    { name: 'overlap off, 1 MiB buckets', overlap: false, bucketBytes: 1 << 20 },
    { name: 'overlap on, 1 MiB buckets', overlap: true, bucketBytes: 1 << 20 },
    { name: `overlap on, ${smallKb} KiB buckets`, overlap: true, bucketBytes: smallKb << 10 },
  ];
  const self = fileURLToPath(import.meta.url);
  const rows = [['setting', 'rank', 'median step (ms)', 'median exposed all-reduce (ms)', 'of which the other rank\'s backward (ms)',
    'all-reduce beyond that (ms)', 'all-reduce / step', 'payload bytes / step', 'ring bytes sent / step', 'buckets (in backward)']];
  let params = 0;
  for (const setting of settings) {
    const port = await freePort();
    const reports = await Promise.all([0, 1].map((r) => new Promise<RankReport>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, self], {
        env: {
          ...process.env, BENCH_DDP_RANK: String(r), BENCH_DDP_PORT: String(port), BENCH_DDP_STEPS: String(steps),
          BENCH_DDP_SETTING: JSON.stringify(setting), LITLORA_THREADS: threads,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`rank ${r} exited with ${code}`))));
    })));
    for (const r of reports) {
      const peer = reports[1 - r.rank]!;
      // Per step: how long after this rank's backward the other's ended (both clocks are this machine's
      // CLOCK_MONOTONIC), which the all-reduce must wait for whatever it costs, and the exposed time beyond it.
      const skew = r.waitStartMs.map((t, i) => Math.max(0, peer.waitStartMs[i]! - t));
      const own = r.allReduceMs.map((ms, i) => Math.max(0, ms - skew[i]!));
      const step = median(r.stepMs)!, ar = median(r.allReduceMs)!, arOwn = median(own)!;
      params = r.params;
      // A ring all-reduce of P bytes over W ranks sends 2 (W − 1) / W × P bytes from each rank.
      rows.push([setting.name, String(r.rank), step.toFixed(1), ar.toFixed(2), median(skew)!.toFixed(2), arOwn.toFixed(2),
        `${((arOwn / step) * 100).toFixed(2)}%`, String(r.bytesPerStep),
        String(Math.round(((2 * (2 - 1)) / 2) * r.bytesPerStep)), `${r.buckets} (${r.overlappedBuckets})`]);
    }
  }
  process.stdout.write(`bench:ddp — 2 ranks (Gloo, 127.0.0.1), pythia-70m shapes, LoRA q+v r=8 (${params} parameters), ` +
    `CPU float32, micro batch 1 × ${TIME}, ${threads} thread(s) per rank, ${steps} timed steps\n\n${markdownTable(rows)}\n\n` +
    '2-GPU speed-up (NCCL): unmeasured (no machine with two GPUs).\n');
}

await main();

// npm run bench:ops — LoRA linear forward+backward and merge: ours vs PyTorch eager, same inputs' sizes, same
// machine, same thread count, one run. PyTorch is timed in a Python child (bench/ops_baseline.py) per row,
// right before ours, so that both see the same machine load.
//
//   dense floor  F.linear(x, W) + gradY·W             (the two GEMMs no LoRA implementation can avoid)
//   PEFT eager   F.linear(x,W) + F.linear(F.linear(x,A),B)·s, autograd fwd+bwd
//   ours         lora.forward + lora.backward (gradX, gradA, gradB)
//   merge        ours: lora.merge in place; PyTorch: litgpt's `W += (B @ A) * s`; copy = W.copy_ (bandwidth)
//
// Options: --device cpu|cuda  --dtype float32|bfloat16|…  --tokens N  --in N  --out N  --r N (single row)
//          --reps N (default 5)
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Tensor, buildInfo, getNumThreads, lora, type Device, type Dtype } from '../ts/index.js';
import { packageRoot } from '../ts/addon_loader.js';
import { loraInternals } from '../ts/internals.js';
import { referencePython } from '../test/helpers/python.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const device = (arg('device') ?? 'cpu') as Device;
const dtype = (arg('dtype') ?? 'float32') as Dtype;
const reps = Number(arg('reps') ?? 5);
const single = arg('in') || arg('out') || arg('r') || arg('tokens');
const rows = single
  ? [{ tokens: Number(arg('tokens') ?? 4096), in: Number(arg('in') ?? 2048), out: Number(arg('out') ?? 2048), r: Number(arg('r') ?? 16) }]
  : [2048, 8192].flatMap((out) => [8, 16, 64].map((r) => ({ tokens: 4096, in: 2048, out, r })));

let seed = 1;
function random(n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = (seed / 2 ** 32 * 2 - 1) * scale;
  }
  return a;
}
const make = (shape: number[], scale: number) => Tensor.from(random(shape[0] * shape[1], scale), shape, { dtype, device });
const sync = () => loraInternals.synchronize(device);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  await fn(); await sync();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn(); await sync();
    out.push(performance.now() - t0);
  }
  return median(out);
}

const threads = getNumThreads();
const python = referencePython();
const info = buildInfo();
console.log(`litlora bench:ops — device ${device}, dtype ${dtype}, ${threads} threads, libtorch ${info.torchVersion}, median of ${reps}`);
const table: string[][] = [['size (tokens × in→out)', 'r', 'floor ms (PyTorch / ours)', 'PEFT eager ms', 'ours ms', 'PEFT/floor', 'ours/floor',
  'ours speed-up vs PEFT', 'path (forward / gradX)', 'merge ours ms', 'merge PyTorch ms', 'copy ms', 'merge ours % of copy']];

for (const row of rows) {
  const cfg = { device, dtype, threads, reps, tokens: row.tokens, in: row.in, out: row.out, r: row.r };
  const py = spawnSync(python, [join(packageRoot, 'bench', 'ops_baseline.py'), JSON.stringify(cfg)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (py.status !== 0) throw new Error(`PyTorch baseline failed:\n${py.stderr}`);
  const base = JSON.parse(py.stdout.trim().split('\n').pop()!);

  const x = make([row.tokens, row.in], 1), W = make([row.out, row.in], 0.02), gy = make([row.tokens, row.out], 1);
  const A = make([row.r, row.in], 1 / Math.sqrt(row.in)), B = make([row.out, row.r], 0.01);
  const o = { scaling: 2 };
  // Our dense floor (same GEMMs, this process) and ours alternate rep by rep; ours/floor is the median of
  // the per-rep ratios, which holds up on a shared machine better than ratios of separate medians.
  // Outputs are disposed inside the step, as PyTorch frees them by reference count: left to V8's GC, each 32 MB
  // result counts as external memory and sets off a mark-compact on the main thread while the GEMMs run.
  const oursStep = async () => {
    const y = await lora.forward(x, W, A, B, o);
    const g = await lora.backward(gy, x, W, A, B, o);
    await sync();
    for (const t of [y, g.gradX, g.gradA, g.gradB]) t.dispose();
  };
  const floorStep = async () => { await loraInternals.denseFloor(x, W, gy); await sync(); };
  await floorStep(); await oursStep();
  const tf: number[] = [], to: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now(); await floorStep(); tf.push(performance.now() - t0);
    t0 = performance.now(); await oursStep(); to.push(performance.now() - t0);
  }
  const ours = median(to), ourFloor = median(tf), oursOverFloor = median(to.map((v, i) => v / tf[i]));
  const merge = await timed(() => lora.merge(W, A, B, { ...o, inPlace: true }));
  const path = (['forward', 'gradX'] as const).map((stage) => loraInternals.path(row.tokens, row.in, row.out, row.r, 1, dtype, stage)).join(' / ');
  for (const t of [x, W, gy, A, B]) t.dispose();

  const f = (v: number) => v.toFixed(1);
  table.push([`${row.tokens} × ${row.in}→${row.out}`, String(row.r), `${f(base.floor)} / ${f(ourFloor)}`, f(base.peft), f(ours),
    base.peftOverFloor.toFixed(3), oursOverFloor.toFixed(3), (base.peft / ours).toFixed(2) + '×', path,
    f(merge), f(base.merge), f(base.copy), ((base.copy / merge) * 100).toFixed(0) + '%']);
  console.log(`  ${table.at(-1)!.join(' | ')}`);
}

console.log('\n| ' + table[0].join(' | ') + ' |\n|' + table[0].map(() => '---').join('|') + '|');
for (const r of table.slice(1)) console.log('| ' + r.join(' | ') + ' |');

// Checkpoint I/O benchmark (`npm run bench:io`): a pythia-410m-shaped fp32 checkpoint with litgpt's names
// (~1.6 GB), ours vs torch.load (default and mmap=True) and safetensors.torch.load_file on the same files.
// Every load is measured in its own child process (so peak RSS is that load's alone) with a warm page
// cache; Python runs with torch.set_num_threads(2) like us. Prints a markdown table for BENCHMARKS.md.
//
// Columns: open = until names are listable; first = until the first tensor object is available;
// read-all = until every tensor has been summed with tensor.sum() (every byte touched); the baselines read
// the file into a 64 MiB buffer (and sum each chunk the same way); peak RSS added = peak − RSS before.
// Env: BENCH_REPS (default 3), BENCH_LAYERS (default 24; fewer for a quick run), BENCH_DIR (scratch folder).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { TensorFile, saveTensors, Tensor, buildInfo, getNumThreads } from '../ts/index.js';
import { tensorChecksum } from '../ts/internals.js';
import { packageRoot } from '../ts/addon_loader.js';

const REPS = Number(process.env.BENCH_REPS ?? 3);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 24);

function rssBytes(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

// ------------------------------------------------------------------------------------------ child: ours

async function childOurs(path: string): Promise<void> {
  getNumThreads();  // loads the addon (and libtorch) before the clock starts, as Python imports torch first
  const base = rssBytes('VmRSS');
  const t0 = performance.now();
  const f = await TensorFile.open(path);
  const open = performance.now() - t0;
  const first = await f.get(f.names[0]);
  const firstMs = performance.now() - t0;
  first.dispose();
  // Like loading a model: every tensor is kept until the end (so the peak holds the whole file). get()
  // maps the tensor's bytes; the sums touch every byte, faulting the pages in.
  const kept: Tensor[] = [];
  for (const name of f.names) kept.push(await f.get(name));
  const getAll = performance.now() - t0;
  let sum = 0;
  for (const t of kept) sum += await tensorChecksum(t, { exact: false });
  const all = performance.now() - t0;
  for (const t of kept) t.dispose();
  await f.close();
  console.log(JSON.stringify({ open, first: firstMs, all, peak: rssBytes('VmHWM') - base, sum, getAll }));
}

// ------------------------------------------------------------------------------------------ python side

const PY_LOAD = `
import sys, time, json, torch
torch.set_num_threads(2)
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
mode, path = sys.argv[1], sys.argv[2]
if mode in ('read-bytes', 'read-bytes-sum'):
    buf = bytearray(64 << 20)
    view = memoryview(buf)
    chunk = torch.frombuffer(buf, dtype=torch.float32)
    base = rss('VmRSS')
    t0 = time.perf_counter()
    s = 0.0
    with open(path, 'rb', buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            if mode == 'read-bytes-sum':
                s += float(chunk[:n // 4].sum())
    t = (time.perf_counter() - t0) * 1000
    print(json.dumps({'open': t, 'first': t, 'all': t, 'peak': rss('VmHWM') - base, 'sum': 0}))
    sys.exit(0)
from safetensors.torch import load_file
base = rss('VmRSS')
t0 = time.perf_counter()
if mode == 'torch':
    sd = torch.load(path)
elif mode == 'torch-mmap':
    sd = torch.load(path, mmap=True)
else:
    sd = load_file(path)
t_open = (time.perf_counter() - t0) * 1000
first = sd[next(iter(sd))]
t_first = (time.perf_counter() - t0) * 1000
s = 0.0
for v in sd.values():
    s += float(v.sum())
t_all = (time.perf_counter() - t0) * 1000
print(json.dumps({'open': t_open, 'first': t_first, 'all': t_all, 'peak': rss('VmHWM') - base, 'sum': s}))
`;

const PY_SAVE = `
import sys, os, time, json, torch
from safetensors.torch import save_file
torch.set_num_threads(2)
src, dst_pth, dst_st, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sd = torch.load(src)
def timed(fn, path, fsync):
    if os.path.exists(path):
        os.remove(path)
    os.system('sync')
    t0 = time.perf_counter()
    fn(path)
    if fsync:
        fd = os.open(path, os.O_RDONLY); os.fsync(fd); os.close(fd)
    return (time.perf_counter() - t0) * 1000
out = {'torch.save': [], 'torch.save+fsync': [], 'save_file': [], 'save_file+fsync': []}
for _ in range(reps):
    out['torch.save'].append(timed(lambda p: torch.save(sd, p), dst_pth, False))
    out['torch.save+fsync'].append(timed(lambda p: torch.save(sd, p), dst_pth, True))
    out['save_file'].append(timed(lambda p: save_file(sd, p), dst_st, False))
    out['save_file+fsync'].append(timed(lambda p: save_file(sd, p), dst_st, True))
print(json.dumps(out))
`;

function python(): string {
  return JSON.parse(readFileSync(join(packageRoot, 'build', 'litlora-env.json'), 'utf8')).python;
}

interface Load { open: number; first: number; all: number; peak: number; sum: number; getAll?: number }

function runChild(cmd: string, args: string[]): Load {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: packageRoot, maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function warm(path: string): void {
  spawnSync('cat', [path], { stdio: ['ignore', 'ignore', 'ignore'] });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

function loadMedian(run: () => Load, path: string): Load {
  const rows: Load[] = [];
  for (let i = 0; i < REPS; i++) {
    warm(path);
    rows.push(run());
  }
  return {
    open: median(rows.map((r) => r.open)), first: median(rows.map((r) => r.first)), all: median(rows.map((r) => r.all)),
    peak: median(rows.map((r) => r.peak)), sum: rows[0].sum,
    getAll: rows[0].getAll === undefined ? undefined : median(rows.map((r) => r.getAll!)),
  };
}

// ------------------------------------------------------------------------------------------ the checkpoint

function pythia410mShapes(layers: number): [string, number[]][] {
  const e = 1024, vocab = 50304, inter = 4096;
  const out: [string, number[]][] = [['transformer.wte.weight', [vocab, e]]];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}.`;
    out.push([`${p}norm_1.weight`, [e]], [`${p}norm_1.bias`, [e]], [`${p}attn.qkv.weight`, [3 * e, e]], [`${p}attn.qkv.bias`, [3 * e]],
      [`${p}attn.proj.weight`, [e, e]], [`${p}attn.proj.bias`, [e]], [`${p}norm_2.weight`, [e]], [`${p}norm_2.bias`, [e]],
      [`${p}mlp.fc.weight`, [inter, e]], [`${p}mlp.fc.bias`, [inter]], [`${p}mlp.proj.weight`, [e, inter]], [`${p}mlp.proj.bias`, [e]]);
  }
  out.push(['transformer.ln_f.weight', [e]], ['transformer.ln_f.bias', [e]], ['lm_head.weight', [vocab, e]]);
  return out;
}

function randomTensors(layers: number): Map<string, Tensor> {
  let s = 0x9e3779b9;
  const out = new Map<string, Tensor>();
  for (const [name, shape] of pythia410mShapes(layers)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      data[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.04;
    }
    out.set(name, Tensor.from(data, shape));
  }
  return out;
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ` +
    `libtorch ${buildInfo().torchVersion} (${getNumThreads()} threads)`;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return childOurs(process.argv[3]);
  const dir = process.env.BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'litlora-bench-io-'));
  const ours = join(dir, 'ours.pth'), oursSt = join(dir, 'ours.safetensors');
  const torchPth = join(dir, 'torch.pth'), packageSt = join(dir, 'package.safetensors');
  try {
    console.error(`generating a pythia-410m-shaped fp32 checkpoint (${LAYERS} layers) in ${dir} …`);
    const tensors = randomTensors(LAYERS);
    // Every save goes to a fresh path with the disk idle: replacing a file frees its blocks, and on this
    // machine's disk (mounted with `discard`) that trimming slows whatever writes next. Ours and PyTorch's
    // saves alternate, so that both see the same (shared, noisy) disk.
    const fresh = (path: string) => {
      rmSync(path, { force: true });
      spawnSync('sync');
    };
    const save = { pth: [] as number[], st: [] as number[] };
    const pySave: Record<string, number[]> = {};
    let size = 0;
    for (let i = 0; i < REPS; i++) {
      fresh(ours);
      let t0 = performance.now();
      await saveTensors(ours, tensors, { format: 'pth' });
      save.pth.push(performance.now() - t0);
      fresh(oursSt);
      t0 = performance.now();
      await saveTensors(oursSt, tensors, { format: 'safetensors' });
      save.st.push(performance.now() - t0);
      size = statSync(ours).size;
      console.error(`save round ${i + 1}/${REPS}: ours ${save.pth[i].toFixed(0)} ms (.pth), ${save.st[i].toFixed(0)} ms (.safetensors); PyTorch …`);
      const r = spawnSync(python(), ['-c', PY_SAVE, ours, torchPth, packageSt, '1'], { encoding: 'utf8', maxBuffer: 16 << 20 });
      if (r.status !== 0) throw new Error(r.stderr);
      for (const [k, v] of Object.entries(JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number[]>)) {
        (pySave[k] ??= []).push(...v);
      }
    }
    for (const t of tensors.values()) t.dispose();
    spawnSync('sync');

    console.error('timing loads (each in its own process, warm cache) …');
    const node = (path: string) => () => runChild(process.execPath, ['--import', 'tsx', join(packageRoot, 'bench', 'io.ts'), '--child', path]);
    const py = (mode: string, path: string) => () => runChild(python(), ['-c', PY_LOAD, mode, path]);
    const rows: [string, Load, number | null][] = [
      ['read the file\'s bytes (baseline)', loadMedian(py('read-bytes', ours), ours), null],
      ['read the file\'s bytes + sum them (baseline)', loadMedian(py('read-bytes-sum', ours), ours), null],
      ['litlora TensorFile, .pth (ours)', loadMedian(node(ours), ours), median(save.pth)],
      ['litlora TensorFile, .safetensors (ours)', loadMedian(node(oursSt), oursSt), median(save.st)],
      ['torch.load (.pth by torch.save)', loadMedian(py('torch', torchPth), torchPth), median(pySave['torch.save'])],
      ['torch.load(mmap=True)', loadMedian(py('torch-mmap', torchPth), torchPth), null],
      ['safetensors load_file (package file)', loadMedian(py('load_file', packageSt), packageSt), median(pySave.save_file)],
    ];
    const ms = (x: number) => (x < 100 ? x.toFixed(1) : x.toFixed(0));
    const lines = [
      `Machine: ${machine()}. Checkpoint: pythia-410m shapes, fp32, litgpt names, ${LAYERS} layers, ` +
        `${(size / 1e9).toFixed(2)} GB; median of ${REPS}; warm page cache.`,
      '',
      '| | open (ms) | first tensor (ms) | read-all (ms) | save (ms) | peak RSS added (× file) |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map(([name, l, s]) => `| ${name} | ${ms(l.open)} | ${ms(l.first)} | ${ms(l.all)} | ${s === null ? '' : ms(s)} | ${(l.peak / size).toFixed(2)} |`),
      '',
      `Saves with fsync: torch.save + fsync ${ms(median(pySave['torch.save+fsync']))} ms, save_file + fsync ` +
        `${ms(median(pySave['save_file+fsync']))} ms (ours always fsync: atomic temp file + rename).`,
      '',
      `Ours (.pth) with every tensor mapped (its pages fault in on first touch, during the sums): ` +
        `${ms(rows[2][1].getAll!)} ms (.safetensors: ${ms(rows[3][1].getAll!)} ms).`,
      '',
      `Goals (.pth): open ≤ 10 ms → ${ms(rows[2][1].open)} ms; read-all ≤ 1.2× reading the bytes → ` +
        `${(rows[2][1].all / rows[0][1].all).toFixed(2)}× (${(rows[2][1].all / rows[1][1].all).toFixed(2)}× reading + ` +
        `summing them); save ≤ 0.5× torch.save → ` +
        `${(median(save.pth) / median(pySave['torch.save'])).toFixed(2)}× (${(median(save.pth) / median(pySave['torch.save+fsync'])).toFixed(2)}× torch.save + fsync); ` +
        `peak RSS added ≤ 1.1× file → ${(rows[2][1].peak / size).toFixed(2)}×.`,
    ];
    const sums = rows.slice(2).map(([, l]) => l.sum);
    if (sums.some((x) => Math.abs(x - sums[0]) > 1e-3 * Math.max(1, Math.abs(sums[0])))) {
      lines.push('', `WARNING: checksums differ between readers: ${sums.join(', ')}`);
    }
    console.log(lines.join('\n'));
  } finally {
    if (!process.env.BENCH_DIR) rmSync(dir, { recursive: true, force: true });
  }
}

void main();

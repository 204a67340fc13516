// npm run bench:merge — merge_lora on a ~1.6 GB checkpoint (pythia-410m shapes, fp32, from `litlora init
// --keep_vocab_size`) with a rank-8 adapter on every target (q, k, v, proj, mlp, head):
//   ours     litlora's merge_lora: streamed tensor by tensor in native code, written atomically
//   PyTorch  the PyTorch way: torch.load everything, W += (B @ A)·s per layer, torch.save (bench/merge_baseline.py)
// Each run is its own process (so its peak RSS is its own), ours and PyTorch alternate, the base file is in
// the page cache for both; the table has medians. Both outputs are compared tensor by tensor at the end.
//
// Options: --reps N (default 3)  --dir D (cache folder, default $TMPDIR/litlora-bench-merge)
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { runCli } from '../ts/cli/main.js';
import { readConfig } from '../ts/model/config.js';
import { buildInfo, getNumThreads, OutDir, Tensor } from '../ts/index.js';
import { referencePython } from '../test/helpers/python.js';
import { markdownTable, median, runJsonChild, writeFloorSeconds } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const reps = Number(arg('reps') ?? 3);
const dir = arg('dir') ?? join(tmpdir(), 'litlora-bench-merge');
const baseDir = join(dir, 'pythia-410m');
const loraDir = join(dir, 'lora-all-r8');
const R = 8, ALPHA = 16;
const threads = getNumThreads();
const io = { out: (t: string) => process.stdout.write(`  ${t}`), err: (t: string) => process.stderr.write(`  ${t}`), cwd: dir };

if (!existsSync(join(baseDir, 'lit_model.pth'))) {
  console.log(`making the base checkpoint in ${baseDir} (litlora init --model_name pythia-410m --keep_vocab_size) …`);
  const code = await runCli(['init', '--model_name', 'pythia-410m', '--keep_vocab_size', '--out_dir', baseDir], io);
  if (code !== 0) throw new Error('litlora init failed');
}
const config = await readConfig(join(baseDir, 'model_config.yaml'));
if (!existsSync(join(loraDir, 'lit_model.pth.lora'))) {
  console.log(`making a rank-${R} adapter on every target in ${loraDir} …`);
  const c = config;
  const qkvOut = (c.n_head + 2 * c.n_query_groups) * c.head_size;
  const shapes: [string, number[]][] = [['lm_head.lora_A', [R, c.n_embd]], ['lm_head.lora_B', [c.padded_vocab_size, R]]];
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    shapes.push([`${p}attn.qkv.lora_A`, [3 * R, c.n_embd]], [`${p}attn.qkv.lora_B`, [qkvOut, R]]);
    shapes.push([`${p}attn.proj.lora_A`, [R, c.n_head * c.head_size]], [`${p}attn.proj.lora_B`, [c.n_embd, R]]);
    shapes.push([`${p}mlp.fc.lora_A`, [R, c.n_embd]], [`${p}mlp.fc.lora_B`, [c.intermediate_size, R]]);
    shapes.push([`${p}mlp.proj.lora_A`, [R, c.intermediate_size]], [`${p}mlp.proj.lora_B`, [c.n_embd, R]]);
  }
  let seed = 1;
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of shapes) {
    const a = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < a.length; i++) { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; a[i] = (seed / 2 ** 32 - 0.5) * 0.02; }
    tensors.set(name, Tensor.from(a, shape));
  }
  const flags = { lora_query: true, lora_key: true, lora_value: true, lora_projection: true, lora_mlp: true, lora_head: true };
  await new OutDir(dir).writeLoraCheckpoint(loraDir, {
    loraTensors: tensors, config, tokenizerFrom: baseDir, promptStyle: { class_path: 'litgpt.prompts.Alpaca' },
    hyperparameters: { checkpoint_dir: baseDir, precision: null, lora_r: R, lora_alpha: ALPHA, lora_dropout: 0.05, ...flags },
  });
  for (const t of tensors.values()) t.dispose();
}

const baseFile = join(baseDir, 'lit_model.pth');
const size = statSync(baseFile).size;
await new Promise<void>((resolve, reject) => createReadStream(baseFile).on('data', () => {}).on('end', resolve).on('error', reject));

const oursOut = join(dir, 'merged-ours');
const torchOut = join(dir, 'merged-pytorch.pth');
const python = referencePython();
type Run = { seconds: number; maxrss_kb: number; baseline_kb: number; wall: number };
const ours: Run[] = [];
const torch: (Run & { fsync_seconds: number })[] = [];
console.log(`litlora bench:merge — ${(size / 1e9).toFixed(2)} GB pythia-410m fp32 (${config.n_layer} layers), rank-${R} LoRA on ` +
  `q, k, v, proj, mlp and head; ${threads} threads, libtorch ${buildInfo().torchVersion}; median of ${reps}`);
for (let i = 0; i < reps; i++) {
  const o = runJsonChild<Run>(process.execPath, [join(packageRoot, 'bench', 'merge_child.mjs'), loraDir, oursOut]);
  const t = runJsonChild<Run & { fsync_seconds: number }>(python, [join(packageRoot, 'bench', 'merge_baseline.py'), baseFile, join(loraDir, 'lit_model.pth.lora'), torchOut, JSON.stringify({
    r: R, alpha: ALPHA, n_head: config.n_head, n_query_groups: config.n_query_groups, head_size: config.head_size,
    query: true, key: true, value: true, threads,
  })]);
  ours.push(o);
  torch.push(t);
  console.log(`  rep ${i + 1}: ours ${o.seconds.toFixed(2)} s, peak RSS ${(o.maxrss_kb / 1024).toFixed(0)} MB | ` +
    `PyTorch ${t.seconds.toFixed(2)} s (+ fsync ${t.fsync_seconds.toFixed(2)} s), peak RSS ${(t.maxrss_kb / 1024).toFixed(0)} MB`);
}

// The floor: writing as many bytes to the same disk, durably (what any merge that writes the file must pay).
const floorFile = join(dir, 'write-floor.bin');
const floors: number[] = [];
for (let i = 0; i < reps; i++) floors.push(await writeFloorSeconds(floorFile, size));

// Same result? (PyTorch's way adds (B@A)·s in float32 exactly as litlora does.)
const check = spawnSync(python, ['-c', `import torch, json
a = torch.load(${JSON.stringify(join(oursOut, 'lit_model.pth'))}, mmap=True, weights_only=True)
b = torch.load(${JSON.stringify(torchOut)}, mmap=True, weights_only=True)
assert list(a) == list(b), "different keys"
print(json.dumps({"max_abs_diff": max(float((a[k].float() - b[k].float()).abs().max()) for k in a), "identical": all(torch.equal(a[k], b[k]) for k in a)}))
`], { encoding: 'utf8' });
const same = check.status === 0 ? JSON.parse(check.stdout.trim()) : { error: check.stderr.trim().split('\n').pop() };

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
const mo = median(ours.map((x) => x.seconds)), mt = median(torch.map((x) => x.seconds));
const mtf = median(torch.map((x) => x.seconds + x.fsync_seconds));
const ro = median(ours.map((x) => x.maxrss_kb)), rt = median(torch.map((x) => x.maxrss_kb));
const bo = median(ours.map((x) => x.baseline_kb)), bt = median(torch.map((x) => x.baseline_kb));
const rows = [
  ['', 'ours (streamed)', 'PyTorch way', 'ours vs PyTorch'],
  ['merge time (ours: written durably — fsync, rename)', `${mo.toFixed(2)} s`, `${mt.toFixed(2)} s`, `${(mt / mo).toFixed(2)}× faster`],
  ['PyTorch way + fsync of its file (a durable write)', '', `${mtf.toFixed(2)} s`, `${(mtf / mo).toFixed(2)}× faster`],
  ['peak RSS', mb(ro), mb(rt), `${(ro / rt).toFixed(2)}×`],
  ['  of which the runtime (addon loaded / torch imported)', mb(bo), mb(bt), ''],
  ['peak RSS above the runtime', mb(ro - bo), mb(rt - bt), `${((ro - bo) / (rt - bt)).toFixed(2)}×`],
  [`write floor: ${(size / 1e9).toFixed(2)} GB to this disk + fsync`, `${median(floors).toFixed(2)} s`, `${median(floors).toFixed(2)} s`, ''],
  ['time above the write floor', `${(mo - median(floors)).toFixed(2)} s`, `${(mt - median(floors)).toFixed(2)} s`, `${((mt - median(floors)) / Math.max(mo - median(floors), 1e-3)).toFixed(2)}× less`],
  ['process wall time', `${median(ours.map((x) => x.wall)).toFixed(2)} s`, `${median(torch.map((x) => x.wall)).toFixed(2)} s`, ''],
];
console.log('');
console.log(markdownTable(rows));
console.log(`\noutputs: ${'error' in same ? `not compared (${same.error})` : same.identical ? 'bit-identical' : `max |ours − PyTorch| = ${same.max_abs_diff}`}`);
console.log(`goals: ≥ 2× faster (${(mt / mo).toFixed(2)}×), peak RSS ≤ 0.3× (${(ro / rt).toFixed(2)}×)`);

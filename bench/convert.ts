// npm run bench:convert — convert_to_litgpt and convert_from_litgpt on a Qwen2.5-0.5B-shaped bf16 checkpoint
// (988 MB in two safetensors shards + index, written by transformers' save_pretrained, random weights):
//   ours     `litlora convert_to_litgpt` / `litlora convert_from_litgpt` (through runCli in bench/convert_child.mjs):
//            streamed tensor by tensor in native code, written atomically (fsync, rename)
//   PyTorch  the PyTorch way, bench/convert_baseline.py: load_file every shard, rename, torch.cat q/k/v, torch.save;
//            and back torch.load(mmap=True), split, rename, save_file; its output fsynced before its clock stops
// Each run is its own process (so its peak RSS, VmHWM, and its start-up are its own); ours and PyTorch alternate,
// and every rep also times the disk's durable-write floor for as many bytes as ours wrote (the faster of two writes). The inputs are read once
// before the runs and stay warm in the page cache for both sides (nothing is dropped from it). Each run writes where
// no earlier output is (the previous rep's is deleted first, untimed, for both sides, and the deletion synced to the
// disk: harness.ts removeAndSettle): replacing a 1 GB file costs ext4 ~0.2 s of freeing the old file's blocks inside
// the rename, and a deletion's discards stall the next writes, neither of which the write floor includes. The table has
// medians; the outputs are compared bit for bit with each other (and the round trip with the transformers-made
// weights), and the bench exits 1 when they differ, so a fast but wrong conversion cannot pass.
//
// Options: --reps N (default 3)  --dir D (cache folder, default bench/.cache/convert)
//          --shape qwen2.5-0.5b | small (default $LITLORA_BENCH_CONVERT_SHAPE, else qwen2.5-0.5b); small is a 45 MB
//          model of the same architecture (6 layers, hidden 256, vocab 65536) for trying the bench out
import { copyFileSync, createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { buildInfo, getNumThreads } from '../ts/index.js';
import { referencePython } from '../test/helpers/python.js';
import { machineName, markdownTable, median, removeAndSettle, runJsonChild, writeFloorSeconds } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

// Qwen2.5-0.5B's sizes (its config.json); `small` keeps the architecture (GQA, qkv biases, tied head).
const COMMON = { max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1e6 };
const SHAPES: Record<string, { folder: string; sizes: Record<string, number> }> = {
  'qwen2.5-0.5b': {
    folder: 'Qwen2.5-0.5B', // the folder's name settles Qwen2.5-0.5B vs its -Instruct twin (same architecture)
    sizes: { hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936, ...COMMON },
  },
  small: {
    folder: 'qwen2-small',
    sizes: { hidden_size: 256, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1024, vocab_size: 65536, ...COMMON },
  },
};
const shapeName = arg('shape') ?? process.env.LITLORA_BENCH_CONVERT_SHAPE ?? 'qwen2.5-0.5b';
const shape = SHAPES[shapeName];
if (!shape) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}, got ${shapeName}`);
const reps = Number(arg('reps') ?? 3);
const dir = arg('dir') ?? join(packageRoot, 'bench', '.cache', 'convert');
const outDir = join(dir, 'out');
const hfDir = join(dir, shape.folder);
const litgptDir = join(dir, `${shape.folder}-litgpt`);
const python = referencePython();
const threads = getNumThreads();
const s = shape.sizes;
const baselineConfig = JSON.stringify({
  n_head: s.num_attention_heads, n_query_groups: s.num_key_value_heads, head_size: s.hidden_size / s.num_attention_heads, threads,
});

/** Makes `target` by `make(partial)` into a sibling folder renamed into place at the end (a stopped run leaves no half). */
function makeFolder(target: string, make: (partial: string) => void) {
  const partial = `${target}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  make(partial);
  renameSync(partial, target);
}

const filesOf = (path: string) => statSync(path).isDirectory() ? readdirSync(path).map((f) => join(path, f)) : [path];
const bytesOf = (path: string) => filesOf(path).reduce((n, f) => n + statSync(f).size, 0);
const warm = async (files: string[]) => {
  for (const f of files) await new Promise<void>((resolve, reject) => createReadStream(f).on('data', () => {}).on('end', resolve).on('error', reject));
};

if (!existsSync(hfDir)) {
  console.log(`making the ${shapeName}-shaped model in ${hfDir} (transformers, random bf16 weights) …`);
  makeFolder(hfDir, (partial) => runJsonChild(python, [join(packageRoot, 'bench', 'convert_make_model.py'), partial, JSON.stringify(s)]));
}
mkdirSync(outDir, { recursive: true });
const shards = readdirSync(hfDir).filter((f) => f.endsWith('.safetensors')).map((f) => join(hfDir, f));
const inputBytes = shards.reduce((n, f) => n + statSync(f).size, 0);

interface Run { seconds: number; maxrss_kb: number; baseline_kb: number; wall: number; fsync_seconds?: number }
interface Check { tensors: [number, number]; identical: boolean; differing: string[]; checksum_name: string; checksums: [string | null, string | null]; tied: [boolean | null, boolean | null] }

const check = (a: string, b: string, name: string) => runJsonChild<Check>(python, [join(packageRoot, 'bench', 'convert_check.py'), a, b, name]);
const say = (c: Check, what: string) => `${what}: ${c.tensors[0]} / ${c.tensors[1]} tensors, ` +
  `${c.identical ? 'bit-identical' : `DIFFERENT (${c.differing.join(', ')})`}; sha256(${c.checksum_name}) ${c.checksums[0]} / ${c.checksums[1]}`;

/** N reps of ours vs the PyTorch way (alternating, each rep with its write floor), then the table. Returns the goals' verdicts. */
async function direction(title: string, spec: { ours: string[]; baseline: string[]; oursOut: string; baselineOut: string; input: string[] }) {
  await warm(spec.input);
  const ours: Run[] = [], torch: Run[] = [], floors: number[] = [];
  let bytes = 0;
  console.log(`\n${title}`);
  for (let i = 0; i < reps; i++) {
    removeAndSettle(spec.oursOut);
    const o = runJsonChild<Run>(process.execPath, [join(packageRoot, 'bench', 'convert_child.mjs'), ...spec.ours]);
    removeAndSettle(spec.baselineOut);
    const t = runJsonChild<Run>(python, [join(packageRoot, 'bench', 'convert_baseline.py'), ...spec.baseline, baselineConfig]);
    bytes = bytesOf(spec.oursOut);
    // The faster of two back-to-back writes: on this kind of VM the first big write after a process has freed ~1 GB
    // (the PyTorch child just did) runs at the speed of fresh page allocation, 2–5× slower than the disk allows.
    const floorFile = join(outDir, 'write-floor.bin');
    const f = Math.min(await writeFloorSeconds(floorFile, bytes), await writeFloorSeconds(floorFile, bytes));
    ours.push(o); torch.push(t); floors.push(f);
    console.log(`  rep ${i + 1}: ours ${o.wall.toFixed(2)} s (conversion ${o.seconds.toFixed(2)} s), peak RSS ${mb(o.maxrss_kb)} | ` +
      `PyTorch ${t.wall.toFixed(2)} s (conversion ${t.seconds.toFixed(2)} s, of which fsync ${t.fsync_seconds!.toFixed(2)} s), ` +
      `peak RSS ${mb(t.maxrss_kb)} | write floor ${f.toFixed(2)} s`);
  }
  const m = (runs: Run[], key: keyof Run) => median(runs.map((r) => r[key] as number));
  const wo = m(ours, 'wall'), wt = m(torch, 'wall'), co = m(ours, 'seconds'), ct = m(torch, 'seconds');
  const ro = m(ours, 'maxrss_kb'), rt = m(torch, 'maxrss_kb'), bo = m(ours, 'baseline_kb'), bt = m(torch, 'baseline_kb');
  const floor = median(floors);
  // Against the floor: per rep (the floor is timed next to that rep's conversions, under the same load), then the median.
  const fo = median(ours.map((r, i) => r.seconds / floors[i])), ft = median(torch.map((r, i) => r.seconds / floors[i]));
  console.log('');
  console.log(markdownTable([
    ['', 'ours (streamed)', 'PyTorch way', 'ours vs PyTorch'],
    ['whole process (spawn to exit)', sec(wo), sec(wt), faster(wt / wo)],
    ['conversion (after imports; written durably)', sec(co), sec(ct), faster(ct / co)],
    ['  of which the fsync of the output', '', sec(m(torch, 'fsync_seconds')), ''],
    ['peak RSS', mb(ro), mb(rt), `${(ro / rt).toFixed(2)}×`],
    ['  of which the runtime (addon loaded / torch imported)', mb(bo), mb(bt), ''],
    ['peak RSS above the runtime', mb(ro - bo), mb(rt - bt), `${((ro - bo) / (rt - bt)).toFixed(2)}×`],
    [`write floor: ${(bytes / 1e9).toFixed(3)} GB to this disk + fsync`, sec(floor), sec(floor), ''],
    ['conversion / write floor (median of reps)', `${fo.toFixed(2)}×`, `${ft.toFixed(2)}×`, ''],
  ]));
  return { whole: wt / wo, rss: ro / rt, floor: fo };
}

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
const sec = (x: number) => `${x.toFixed(2)} s`;
const faster = (ratio: number) => ratio >= 1 ? `${ratio.toFixed(2)}× faster` : `${(1 / ratio).toFixed(2)}× slower`;
const goals = (g: { whole: number; rss: number; floor: number }) =>
  `goals: whole process ≥ 2× faster: ${g.whole >= 2 ? 'met' : 'missed'} (${g.whole.toFixed(2)}×); ` +
  `peak RSS ≤ 0.3×: ${g.rss <= 0.3 ? 'met' : 'missed'} (${g.rss.toFixed(2)}×); ` +
  `conversion ≤ 1.3× the write floor: ${g.floor <= 1.3 ? 'met' : 'missed'} (${g.floor.toFixed(2)}×)`;

console.log(`litlora bench:convert — ${shapeName}-shaped bf16 model by transformers, ${shards.length} safetensors shards, ` +
  `${(inputBytes / 1e6).toFixed(0)} MB; ${machineName()}, ${threads} threads, libtorch ${buildInfo().torchVersion}; ` +
  `median of ${reps}; inputs warm in the page cache; load average ${loadavg()[0].toFixed(2)}`);
let wrong = false;

// HF → litgpt: ours writes lit_model.pth + model_config.yaml into the HF folder, as litgpt's converter does.
const oursLit = join(hfDir, 'lit_model.pth');
const torchLit = join(outDir, 'pytorch-lit_model.pth');
const to = await direction(`convert_to_litgpt: ${shape.folder} (HF, ${shards.length} shards) → lit_model.pth`, {
  ours: ['to-litgpt', hfDir], baseline: ['to-litgpt', hfDir, torchLit], oursOut: oursLit, baselineOut: torchLit, input: shards,
});
const toCheck = check(oursLit, torchLit, 'transformer.h.0.attn.qkv.weight');
console.log(`\n${say(toCheck, 'outputs, ours / PyTorch way')}; tied head stored as the embedding: ${toCheck.tied[0]} / ${toCheck.tied[1]}`);
console.log(goals(to));
wrong ||= !toCheck.identical || toCheck.tied[0] !== true;

// litgpt → HF: the input is a litgpt checkpoint folder (lit_model.pth, model_config.yaml and the HF config files,
// not the HF weights), made from ours' lit_model.pth above once, and again when the HF model is newer than it (a
// remade model would fail the round-trip check otherwise).
const stale = existsSync(litgptDir) &&
  statSync(join(litgptDir, 'lit_model.pth')).mtimeMs < statSync(join(hfDir, 'model.safetensors.index.json')).mtimeMs;
if (stale) rmSync(litgptDir, { recursive: true, force: true });
if (!existsSync(litgptDir)) {
  makeFolder(litgptDir, (partial) => {
    for (const f of ['lit_model.pth', 'model_config.yaml', 'config.json', 'generation_config.json']) {
      if (existsSync(join(hfDir, f))) copyFileSync(join(hfDir, f), join(partial, f));
    }
  });
}
const oursHf = join(outDir, 'hf-ours');
const torchHf = join(outDir, 'hf-pytorch');
const from = await direction(`convert_from_litgpt: lit_model.pth → HF safetensors`, {
  ours: ['from-litgpt', litgptDir, oursHf], baseline: ['from-litgpt', join(litgptDir, 'lit_model.pth'), torchHf], oursOut: oursHf, baselineOut: torchHf,
  input: [join(litgptDir, 'lit_model.pth')],
});
const name = 'model.layers.0.self_attn.q_proj.weight';
const fromCheck = check(oursHf, torchHf, name);
const roundTrip = check(oursHf, hfDir, name);
console.log(`\n${say(fromCheck, 'outputs, ours / PyTorch way')}`);
console.log(say(roundTrip, 'round trip, ours / the transformers-made input'));
console.log(goals(from));
wrong ||= !fromCheck.identical || !roundTrip.identical;
console.log(`\nload average at the end: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
if (wrong) {
  console.log('\nTHE OUTPUTS DIFFER: the timings above are not valid.');
  process.exitCode = 1;
}

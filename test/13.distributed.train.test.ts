// Data-parallel training through the Trainer: two ranks on this machine (child processes, Gloo) on samples of one
// length, so that any split of a global batch has the same mean loss. Their step losses and final adapter equal a
// one-rank run's with the same global and micro batch (within fp32 reduction-order tolerance); rank 0 alone
// writes; a step folder of two ranks resumes with one and the other way round; a rank that dies or hangs stops
// the other with ERR_DISTRIBUTED naming it, and the checkpoints written before load.
//
// The one-rank reference is a data-parallel run of world size 1: its sampler is Fabric's DistributedSampler, as
// the two ranks' (a plain one-process run reads litgpt's single-device loader order, a different permutation).
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initCheckpoint } from '../ts/index.js';
import { OutDir } from '../ts/io/outdir.js';
import { TensorFile } from '../ts/io/tensorfile.js';
import { latestResumableStep } from '../ts/train/training_state.js';
import { freePort, runRanks, startRank, type RankOutcome } from './helpers/ranks.js';
import { tempFolders } from './helpers/temp.js';

const it = test;
const folders = tempFolders();
let dir = '', base = '', dataPath = '';

test.before(async () => {
  dir = folders.make('ddp');
  base = join(dir, 'base');
  await initCheckpoint({
    outDir: base, modelName: 'pythia-14m', seed: 3,
    overrides: { n_layer: 2, n_embd: 64, n_head: 4, intermediate_size: 128, block_size: 256 },
  });
  // 40 samples of one length: 12-letter instructions, 8-letter answers (the tokenizer is byte-level per letter or not,
  // every sample tokenizes alike: same template, same letter count).
  let x = 12345;
  const letter = () => { x = (x * 1103515245 + 12345) % 2147483648; return String.fromCharCode(97 + (x >> 16) % 26); };
  const word = (n: number) => Array.from({ length: n }, letter).join('');
  const samples = Array.from({ length: 40 }, () => ({ instruction: word(12), input: '', output: word(8) }));
  dataPath = join(dir, 'data.json');
  writeFileSync(dataPath, JSON.stringify(samples));
});
test.after(() => folders.removeAll());

interface Run {
  worldSize: number; outDir: string; maxSteps: number; resume?: boolean; saveInterval?: number; timeoutMs?: number;
  overlap?: boolean; bucketBytes?: number;
}

function spec(run: Run, port: number) {
  return (rank: number) => ({
    base, dataPath, outDir: run.outDir, maxSteps: run.maxSteps, globalBatchSize: 8, microBatchSize: 2, saveInterval: run.saveInterval ?? 1,
    resume: run.resume ?? false,
    distributed: {
      rank, worldSize: run.worldSize, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: run.timeoutMs ?? 30_000,
      overlap: run.overlap, bucketBytes: run.bucketBytes,
    },
  });
}

async function train(run: Run): Promise<RankOutcome[]> {
  const out = await runRanks(run.worldSize, 'train', spec(run, await freePort()), 240_000);
  for (const [r, o] of out.entries()) assert.is(o.status, 0, `rank ${r}: ${o.stdout}\n${o.stderr}`);
  return out;
}

function assertClose(a: number[], b: number[], tol: number, what: string): void {
  assert.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)))) assert.unreachable(`${what}[${i}]: ${a[i]} vs ${b[i]} (tolerance ${tol})`);
  }
}

function assertSameAdapter(a: Record<string, number[]>, b: Record<string, number[]>, tol: number, what: string): void {
  assert.equal(Object.keys(a).sort(), Object.keys(b).sort(), what);
  for (const name of Object.keys(a)) assertClose(a[name]!, b[name]!, tol, `${what} ${name}`);
}

let reference: { steps: number[]; adapter: Record<string, number[]>; valLoss: number; twoRanks: Record<string, number[]> } | null = null;

it('two ranks give the one-rank run\'s step losses and final adapter; only rank 0 writes', async () => {
  const one = await train({ worldSize: 1, outDir: join(dir, 'one'), maxSteps: 4 });
  const two = await train({ worldSize: 2, outDir: join(dir, 'two'), maxSteps: 4 });
  const [r0, r1] = [two[0]!.result, two[1]!.result];
  reference = { ...one[0]!.result, twoRanks: r0.adapter };
  assert.is(r0.steps.length, 4);
  // Default 1 MiB buckets: these 4 small LoRA tensors share one, and the one-float "non-finite loss on a rank" flag
  // is a second, per step.
  assert.is(r0.stats.buckets, 4 * 2);
  assertClose(r0.steps, reference!.steps, 1e-5, 'step loss');
  assertClose([r0.valLoss], [reference!.valLoss], 1e-5, 'final validation loss');
  assertSameAdapter(r0.adapter, reference!.adapter, 1e-4, 'final adapter');
  // Identical optimizer updates on both ranks: bit-equal adapters.
  assert.equal(r1.adapter, r0.adapter);
  // Losses moved (the test would pass vacuously on a model that does not learn).
  assert.ok(r0.steps[3] < r0.steps[0], String(r0.steps));
  // One writer: the folders of one run, one metrics log.
  const out = join(dir, 'two');
  assert.equal(readdirSync(out).sort(), ['final', 'logs', 'step-000001', 'step-000002', 'step-000003', 'step-000004']);
  assert.equal(readdirSync(join(out, 'logs', 'csv')), ['version_0']);
  const lora = await TensorFile.open(join(out, 'final', 'lit_model.pth.lora'));
  const saved: Record<string, number[]> = {};
  for (const [name, t] of await lora.getAll()) saved[name] = Array.from(await t.data() as Float32Array);
  await lora.close();
  assert.equal(saved, r0.adapter);
});

it('gradients averaged during the backward (overlap) and after it give the same adapter bit for bit', async () => {
  assert.ok(reference, 'needs the first test');
  // 256-byte buckets: each of the 4 LoRA tensors (2 layers × A, B, r=4, n_embd 64: ≥ 1 KiB each) is a bucket of its
  // own, and the one-float "non-finite loss on a rank" flag a fifth.
  const on = await train({ worldSize: 2, outDir: join(dir, 'overlap-on'), maxSteps: 4, overlap: true, bucketBytes: 256 });
  const off = await train({ worldSize: 2, outDir: join(dir, 'overlap-off'), maxSteps: 4, overlap: false, bucketBytes: 256 });
  for (const runs of [on, off]) {
    for (const r of runs) {
      assert.is(r.result.stats.allReduceCalls, 4);
      assert.is(r.result.stats.buckets, 4 * 5);
    }
  }
  // Every gradient bucket of the overlapped run started inside the backward (each parameter has a gradient; the flag
  // is known after it); none without.
  for (const r of on) assert.is(r.result.stats.overlappedBuckets, 4 * 4);
  for (const r of off) assert.is(r.result.stats.overlappedBuckets, 0);
  assert.equal(on[0]!.result.steps, off[0]!.result.steps);
  assert.equal(on[0]!.result.adapter, off[0]!.result.adapter);
  assert.equal(on[1]!.result.adapter, on[0]!.result.adapter);
  // Two ranks sum each element in one addition, so the buckets do not change it: the default buckets' adapter too.
  assert.equal(on[0]!.result.adapter, reference!.twoRanks);
  assertSameAdapter(on[0]!.result.adapter, reference!.adapter, 1e-4, 'final adapter');
});

it('a step folder of two ranks resumes with one, and one of one rank with two, to the same adapter', async () => {
  assert.ok(reference, 'needs the first test');
  // 2 → 1: two ranks stop after step 2; one rank continues to step 4.
  const a = join(dir, 'two-then-one');
  await train({ worldSize: 2, outDir: a, maxSteps: 2 });
  const resumed1 = (await train({ worldSize: 1, outDir: a, maxSteps: 4, resume: true }))[0]!.result;
  assertClose(resumed1.steps, reference!.steps.slice(2), 1e-5, '2→1 step loss');
  assertSameAdapter(resumed1.adapter, reference!.adapter, 1e-4, '2→1 final adapter');
  // 1 → 2.
  const b = join(dir, 'one-then-two');
  await train({ worldSize: 1, outDir: b, maxSteps: 2 });
  const resumed2 = await train({ worldSize: 2, outDir: b, maxSteps: 4, resume: true });
  assertClose(resumed2[0]!.result.steps, reference!.steps.slice(2), 1e-5, '1→2 step loss');
  assertSameAdapter(resumed2[0]!.result.adapter, reference!.adapter, 1e-4, '1→2 final adapter');
  assert.equal(resumed2[1]!.result.adapter, resumed2[0]!.result.adapter);
});

it('a setup failure on one rank (out_dir busy on rank 0) stops the other before any step with ERR_DISTRIBUTED naming it', async () => {
  const out = join(dir, 'busy');
  const lock = await new OutDir(out).startRun();
  try {
    const ranks = await runRanks(2, 'train', spec({ worldSize: 2, outDir: out, maxSteps: 2 }, await freePort()), 120_000);
    assert.is(ranks[0]!.status, 1, ranks[0]!.stdout + ranks[0]!.stderr);
    assert.is(ranks[0]!.error.code, 'ERR_BUSY', ranks[0]!.error.message);
    assert.is(ranks[1]!.status, 1, ranks[1]!.stdout + ranks[1]!.stderr);
    assert.is(ranks[1]!.error.code, 'ERR_DISTRIBUTED');
    assert.is(ranks[1]!.error.message, 'rank 1 of 2: rank 0 failed while setting up the run (see that rank\'s error); no rank trained.');
    assert.not.match(ranks[1]!.stdout, /STEP/);
  } finally {
    lock.release();
  }
});

async function assertCheckpointsLoad(out: string): Promise<void> {
  assert.not.ok(existsSync(join(out, 'final')), 'no final/ after a failed run');
  const latest = await latestResumableStep(out);
  assert.ok(latest, `a resumable step folder in ${readdirSync(out)}`);
  for (const name of readdirSync(out).filter((n) => n.startsWith('step-'))) {
    for (const f of ['lit_model.pth.lora', 'training_state.pth']) {
      const file = await TensorFile.open(join(out, name, f));
      assert.ok(file.names.length > 0);
      for (const [, t] of await file.getAll()) await t.data();
      await file.close();
    }
  }
}

it('a rank killed mid-run: the other exits with ERR_DISTRIBUTED naming it, and the step folders written load', async () => {
  const out = join(dir, 'killed');
  mkdirSync(out);
  const port = await freePort();
  const s = spec({ worldSize: 2, outDir: out, maxSteps: 1000, timeoutMs: 20_000 }, port);
  const ranks = [startRank('train', s(0), 180_000), startRank('train', s(1), 180_000)];
  await ranks[1]!.printed('STEP 2');
  const killedAt = Date.now();
  ranks[1]!.child.kill('SIGKILL');
  const [r0, r1] = await Promise.all(ranks.map((r) => r.done));
  assert.is(r1!.signal, 'SIGKILL');
  assert.is(r0!.status, 1, r0!.stdout + r0!.stderr);
  assert.is(r0!.error.code, 'ERR_DISTRIBUTED', r0!.error.message);
  assert.match(r0!.error.message, /^rank 0 of 2, while averaging the gradients: rank 1 stopped/);
  // Well within the distributed timeout: a closed connection is seen at once.
  assert.ok(Date.now() - killedAt < 20_000, `${Date.now() - killedAt} ms`);
  await assertCheckpointsLoad(out);
});

it('a rank that hangs: the other exits with ERR_DISTRIBUTED naming it after the distributed timeout', async () => {
  const out = join(dir, 'hung');
  mkdirSync(out);
  const port = await freePort();
  const s = spec({ worldSize: 2, outDir: out, maxSteps: 1000, timeoutMs: 4000 }, port);
  const ranks = [startRank('train', s(0), 180_000), startRank('train', { ...s(1), hangAfterStep: 2 }, 180_000)];
  await ranks[1]!.printed('STEP 2');
  const r0 = await ranks[0]!.done;
  ranks[1]!.child.kill('SIGKILL');
  await ranks[1]!.done;
  assert.is(r0.status, 1, r0.stdout + r0.stderr);
  assert.is(r0.error.code, 'ERR_DISTRIBUTED', r0.error.message);
  assert.match(r0.error.message, /rank 1 did not answer within the distributed timeout \(4000 ms\)/);
  await assertCheckpointsLoad(out);
  rmSync(out, { recursive: true, force: true });
});

test.run();

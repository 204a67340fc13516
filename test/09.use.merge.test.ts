// merge_lora leaves nothing behind and destroys nothing: the partial files of a merge killed mid-write are
// removed by the next run on that folder (only litlora's own, only those of dead writers), and an output that
// is the base being merged is refused, --force or not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { runCli } from '../ts/cli/main.js';
import { initCheckpoint } from '../ts/model/init.js';
import { mergeLora } from '../ts/model/merge.js';
import { Model, OutDir, type LoraOptions } from '../ts/index.js';
import { TensorFile } from '../ts/io/tensorfile.js';
import { randomizeAdapter } from './helpers/model.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
const root = folders.make('merge');
const baseDir = join(root, 'checkpoints', 'big');
const runDir = join(root, 'out');
const finalDir = join(runDir, 'final');
const LORA: LoraOptions = { r: 4, alpha: 8, dropout: 0, query: true, key: false, value: true, projection: true, mlp: true, head: true };

test.before(async () => {
  // About 250 MB of weights, so that a merge is still writing when the parent sees its partial file.
  await initCheckpoint({ outDir: baseDir, modelName: 'pythia-14m', overrides: { n_layer: 4, n_embd: 512, n_head: 8, block_size: 64 }, seed: 3 });
  const model = await Model.load(baseDir, { lora: LORA });
  await randomizeAdapter(model, 7, 0.3);
  await new OutDir(runDir).writeLoraCheckpoint(finalDir, {
    loraTensors: await model.adapter!.tensors(), config: model.config as never,
    hyperparameters: {
      checkpoint_dir: baseDir, out_dir: runDir, precision: null, lora_r: LORA.r, lora_alpha: LORA.alpha, lora_dropout: LORA.dropout,
      lora_query: LORA.query, lora_key: LORA.key, lora_value: LORA.value, lora_projection: LORA.projection, lora_mlp: LORA.mlp,
      lora_head: LORA.head,
    },
    promptStyle: { class_path: 'litgpt.prompts.Alpaca' }, tokenizerFrom: baseDir,
  });
  model.dispose();
});

test.after(() => folders.removeAll());

function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) out[name] = createHash('sha256').update(readFileSync(join(dir, name))).digest('hex');
  return out;
}

async function tensorBytes(path: string): Promise<Map<string, Buffer>> {
  const f = await TensorFile.open(path);
  const out = new Map<string, Buffer>();
  try {
    for (const name of f.names) {
      const t = await f.get(name);
      const raw = await t.data({ raw: true });
      out.set(`${name} ${t.dtype} ${t.shape}`, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
      t.dispose();
    }
  } finally {
    await f.close();
  }
  return out;
}

/**
 * Starts `litlora merge_lora <args>` in a child and SIGKILLs it as soon as `partial(pid)` names a file that holds
 * some bytes; returns that file's path (still on disk: the child never finished it).
 */
async function killMidMerge(args: string[], partial: (pid: number) => string | null): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'merge-child.ts'), ...args],
    { cwd: packageRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  let exit: { code: number | null; signal: string | null } | null = null;
  const exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => { exit = { code, signal }; resolve(); }));
  let found: string | null = null;
  while (!found && !exit) {
    const p = partial(child.pid!);
    if (p && existsSync(p) && statSync(p).size > 0) found = p;
    else await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  await exited;
  assert.ok(found, `the merge ended before its partial output was seen: ${JSON.stringify(exit)} ${stderr}`);
  assert.equal(exit, { code: null, signal: 'SIGKILL' }, 'killed mid-write');
  assert.ok(existsSync(found!), 'the killed merge left its partial file behind');
  return found!;
}

const find = (dir: string, prefix: string) => readdirSync(dir).find((f) => f.startsWith(prefix)) ?? null;

test('a merge killed mid-write leaves a hidden partial; the next run removes it (and only stale litlora partials) and merges right', async () => {
  const reference = join(root, 'reference');
  await mergeLora(finalDir, { outDir: reference });
  const expected = await tensorBytes(join(reference, 'lit_model.pth'));

  // In place: DIR/.lit_model.pth.tmp-<pid>-<n>, written by the native writer.
  const partial = await killMidMerge([finalDir], (pid) => {
    const f = find(finalDir, `.lit_model.pth.tmp-${pid}-`);
    return f && join(finalDir, f);
  });
  assert.not.ok(existsSync(join(finalDir, 'lit_model.pth')));
  // Neighbours that must survive: a partial of a live writer (this process) and a hidden file of the user's.
  const live = join(finalDir, `.lit_model.pth.tmp-${process.pid}-1`);
  const own = join(finalDir, '.lit_model.pth.notes');
  writeFileSync(live, 'in progress');
  writeFileSync(own, 'mine');
  const result = await mergeLora(finalDir);
  assert.is(result.skipped, false);
  assert.not.ok(existsSync(partial), 'the stale partial is gone');
  assert.equal(readdirSync(finalDir).filter((f) => f.startsWith('.')).sort(), ['.lit_model.pth.notes', `.lit_model.pth.tmp-${process.pid}-1`]);
  assert.equal(await tensorBytes(join(finalDir, 'lit_model.pth')), expected);

  // Into --out_dir: a hidden folder beside it (.merged.tmp-<pid>-<hex>) holding the partial weights.
  const out = join(root, 'merged');
  const partialDir = await killMidMerge([finalDir, '--out_dir', out], (pid) => {
    const d = find(root, `.merged.tmp-${pid}-`);
    const f = d && existsSync(join(root, d)) ? find(join(root, d), '.lit_model.pth.tmp-') : null;
    return d && f && join(root, d, f);
  });
  assert.not.ok(existsSync(out));
  const c = { out: () => {}, err: () => {}, cwd: root };
  assert.is(await runCli(['merge_lora', relative(root, finalDir), '--out_dir', 'merged'], c), 0);
  assert.not.ok(existsSync(partialDir), 'the stale partial folder is gone');
  assert.equal(readdirSync(root).filter((f) => f.startsWith('.')), []);
  assert.equal(await tensorBytes(join(out, 'lit_model.pth')), expected);
});

test('merge_lora --out_dir <its own base> is refused with ERR_ARG, with or without --force, however the path is spelled', async () => {
  const before = hashes(baseDir);
  const link = join(root, 'base-link');
  symlinkSync(baseDir, link);
  mkdirSync(join(root, 'nested'), { recursive: true });
  for (const outDir of [relative(root, baseDir), `${baseDir}/`, link, join('nested', '..', 'checkpoints', 'big')]) {
    for (const force of [['--force'], []]) {
      const err: string[] = [];
      const c = { out: () => {}, err: (t: string) => err.push(t), cwd: root };
      assert.is(await runCli(['merge_lora', finalDir, '--out_dir', outDir, ...force], c), 1, `${outDir} ${force}: ${err.join('')}`);
      assert.match(err.join(''), /error \[ERR_ARG\]: merge_lora would write the merged weights to .*lit_model\.pth, which is the base model being merged/);
    }
  }
  assert.equal(hashes(baseDir), before, 'the base is untouched');
  assert.equal(readdirSync(root).filter((f) => f.startsWith('.')), [], 'no partial left beside it');
});

test.run();

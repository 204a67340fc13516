// One run per out_dir: a second finetune (another process, or another Trainer in this one) is refused with
// ERR_BUSY naming the running one; a stale lock is taken over; a new run does not write over an earlier run's
// checkpoints unless --force; the lock goes away on every exit path (end, error, SIGTERM).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../ts/cli/main.js';
import { readConfig } from '../ts/model/config.js';
import { createDataModule, Model } from '../ts/index.js';
import { LOCK_FILE } from '../ts/io/outdir_lock.js';
import { Trainer } from '../ts/train/trainer.js';
import { assertCode } from './helpers/assert.js';
import { cliProcessArgs, cliRunFolder } from './helpers/cli_process.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
let dir = '';
test.before(async () => {
  dir = temp.make('outdir');
  await cliRunFolder(dir);
});
test.after(() => temp.removeAll());

/** A short run: two optimizer steps, a step folder each, final/. */
const SHORT = ['--data', 'JSON', '--data.json_path', 'data.json', '--train.global_batch_size', '4', '--train.micro_batch_size', '4',
  '--train.max_steps', '2', '--train.save_interval', '1', '--train.lr_warmup_steps', '1', '--eval.interval', '100',
  '--eval.max_iters', '1', '--eval.max_new_tokens', '0', '--eval.final_validation', 'false', '--progress', 'none'];

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await runCli(argv, { out: (t) => { out += t; }, err: (t) => { err += t; }, cwd: dir });
  return { code, out, err };
}

/** `litlora <argv>` as a real process (the installed entry point, through tsx). */
function startCli(argv: string[]) {
  const child = spawn(process.execPath, cliProcessArgs(argv), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const waiting: [RegExp, () => void][] = [];
  child.stdout.on('data', (d) => {
    out += d;
    for (const [re, resolve] of waiting) if (re.test(out)) resolve();
  });
  child.stderr.on('data', (d) => { err += d; });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((res) => {
    child.on('close', (code, signal) => res({ code, signal, out, err }));
  });
  /** Resolves once stdout matches `re`; rejects if the process ends first. */
  const printed = (re: RegExp) => new Promise<void>((resolve, reject) => {
    waiting.push([re, resolve]);
    void done.then((r) => reject(new Error(`the process ended (code ${r.code}) before printing ${re}: ${r.err}`)));
  });
  return { child, done, printed };
}

/** Every file under `root` with its bytes, and every folder (a snapshot to compare before/after). */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) { out.set(`${relative(root, p)}/`, ''); walk(p); } else out.set(relative(root, p), readFileSync(p).toString('base64'));
    }
  };
  walk(root);
  return out;
}

test('two finetune processes, one out_dir: the second fails with ERR_BUSY naming the first; SIGTERM releases the lock', async () => {
  const lock = join(dir, 'shared', LOCK_FILE);
  // The first runs until stopped (a million steps and epochs); SIGSTOP then keeps it holding the lock for as long as the check takes.
  const first = startCli(['finetune', 'lora', 'base', ...SHORT, '--train.max_steps', '1000000', '--train.epochs', '1000000',
    '--train.save_interval', 'null', '--progress', 'plain', '--out_dir', 'shared']);
  try {
    await secondIsRefused(first, lock);
  } finally {
    if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL'); // a failed check: no stopped child left
  }
});

async function secondIsRefused(first: ReturnType<typeof startCli>, lock: string): Promise<void> {
  await first.printed(/\| iter 1 step/); // training: the lock was taken before the data was read
  first.child.kill('SIGSTOP');
  assert.ok(existsSync(lock), 'the running finetune holds the out_dir lock');
  const held = readFileSync(lock, 'utf8');
  const owner = JSON.parse(held);
  assert.equal([owner.pid, owner.host], [first.child.pid, hostname()]);

  const second = await startCli(['finetune', 'lora', 'base', ...SHORT, '--lora_r', '2', '--out_dir', 'shared']).done;
  assert.is(second.code, 1, second.err);
  assert.match(second.err, `litlora finetune lora: error [ERR_BUSY]: out_dir ${join(dir, 'shared')} is in use by another finetune run ` +
    `(pid ${first.child.pid} on host ${hostname()} since ${owner.since}). Wait for it to finish or stop it, or choose another out_dir (--out_dir).`);
  assert.not.match(second.err, /\n\s+at /); // no stack trace
  assert.not.match(second.out, /Loading/); // refused before loading the model
  assert.is(readFileSync(lock, 'utf8'), held);

  first.child.kill('SIGTERM');
  first.child.kill('SIGCONT');
  const ended = await first.done;
  assert.is(ended.signal, 'SIGTERM', `exit code ${ended.code}: ${ended.err}`);
  assert.not.ok(existsSync(lock), 'the lock is released on SIGTERM');
}

test('SIGINT (Ctrl-C) ends a finetune process and releases its lock', async () => {
  const run = startCli(['finetune', 'lora', 'base', ...SHORT, '--train.max_steps', '1000000', '--train.epochs', '1000000',
    '--train.save_interval', 'null', '--progress', 'plain', '--out_dir', 'interrupted']);
  try {
    await run.printed(/\| iter 1 step/);
    assert.ok(existsSync(join(dir, 'interrupted', LOCK_FILE)));
    run.child.kill('SIGINT');
    const ended = await run.done;
    assert.is(ended.signal, 'SIGINT', `exit code ${ended.code}: ${ended.err}`);
    assert.equal(readdirSync(join(dir, 'interrupted')), ['logs']);
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  }
});

test('a stale lock (this host, the pid is gone) is taken over with a message; a lock from another host is refused', async () => {
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const out = join(dir, 'stale');
  mkdirSync(out);
  const since = '2024-01-02T03:04:05.000Z';
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: dead, host: hostname(), since, token: 'old' }));
  const r = await cli('finetune', 'lora', 'base', ...SHORT, '--out_dir', 'stale');
  assert.is(r.code, 0, r.err);
  assert.match(r.err, `Took over the stale lock of ${out} (pid ${dead} on host ${hostname()} since ${since}: process ${dead} is not running).`);
  assert.equal(readdirSync(out).sort(), ['final', 'logs', 'step-000001', 'step-000002']); // the lock is gone after the run

  const away = join(dir, 'away');
  mkdirSync(away);
  const text = JSON.stringify({ pid: process.pid, host: 'elsewhere.invalid', since, token: 'far' });
  writeFileSync(join(away, LOCK_FILE), text);
  const refused = await cli('finetune', 'lora', 'base', ...SHORT, '--out_dir', 'away');
  assert.is(refused.code, 1);
  assert.match(refused.err, `error [ERR_BUSY]: out_dir ${away} is in use by a finetune run on another host (pid ${process.pid} on host elsewhere.invalid since ${since})`);
  assert.match(refused.err, `if that run has ended, delete ${join(away, LOCK_FILE)} and start again.`);
  assert.equal(snapshot(away), new Map([[LOCK_FILE, Buffer.from(text).toString('base64')]]));
});

test('a new run into an out_dir with an earlier run\'s checkpoints refuses and changes nothing; --force proceeds', async () => {
  const first = await cli('finetune', 'lora', 'base', ...SHORT, '--lora_r', '4', '--out_dir', 'used');
  assert.is(first.code, 0, first.err);
  const before = snapshot(join(dir, 'used'));
  const mtime = statSync(join(dir, 'used', 'final', 'lit_model.pth.lora')).mtimeMs;

  const again = await cli('finetune', 'lora', 'base', ...SHORT, '--lora_r', '2', '--out_dir', 'used');
  assert.is(again.code, 1);
  assert.match(again.err, `error [ERR_ARG]: ${join(dir, 'used')} holds the checkpoints of an earlier run (step-000001/, step-000002/, final/), ` +
    'which a new run would write over. Continue that run with resume (--resume true), choose another out_dir (--out_dir), or pass force (--force true)');
  assert.not.match(again.out, /Loading/);
  assert.equal(snapshot(join(dir, 'used')), before);
  assert.is(statSync(join(dir, 'used', 'final', 'lit_model.pth.lora')).mtimeMs, mtime);

  // Resuming continues the run (step-000002/ is resumable); a resume that finds nothing to continue would start over.
  const resumed = await cli('finetune', 'lora', 'base', ...SHORT, '--lora_r', '4', '--out_dir', 'used', '--resume', 'true', '--progress', 'plain');
  assert.is(resumed.code, 0, resumed.err);
  assert.match(resumed.out, `Resuming from ${join(dir, 'used', 'step-000002')}`);
  const onlyFinal = join(dir, 'only-final');
  mkdirSync(join(onlyFinal, 'final'), { recursive: true });
  writeFileSync(join(onlyFinal, 'final', 'lit_model.pth.lora'), 'weights');
  const resume = await cli('finetune', 'lora', 'base', ...SHORT, '--out_dir', 'only-final', '--resume', 'true');
  assert.is(resume.code, 1);
  assert.match(resume.err, `error [ERR_ARG]: resume: ${onlyFinal} has no step folder to continue`);
  assert.is(readFileSync(join(onlyFinal, 'final', 'lit_model.pth.lora'), 'utf8'), 'weights');

  const forced = await cli('finetune', 'lora', 'base', ...SHORT, '--lora_r', '2', '--out_dir', 'used', '--force', 'true');
  assert.is(forced.code, 0, forced.err);
  assert.match(readFileSync(join(dir, 'used', 'final', 'hyperparameters.yaml'), 'utf8'), /\nlora_r: 2\n/);
  assert.not.ok(existsSync(join(dir, 'used', LOCK_FILE)));
});

test('two Trainers in one process cannot share an outDir; the lock is released when fit() ends, by error too', async () => {
  const base = join(dir, 'base');
  const config = await readConfig(join(base, 'model_config.yaml'));
  const make = async (maxSteps: number) => new Trainer({
    model: await Model.fromConfig(config, { lora: { r: 2, alpha: 4 } }),
    data: createDataModule('JSON', { json_path: join(dir, 'data.json'), prompt_style: 'alpaca' }),
    checkpointDir: base, outDir: join(dir, 'lib'), progress: 'none',
    train: { globalBatchSize: 4, microBatchSize: 4, maxSteps, saveInterval: null },
    eval: { interval: 1000, maxNewTokens: 0, finalValidation: false },
  });
  const a = await make(1000), b = await make(2);
  const running = a.fit();
  assert.is((await running.next()).value?.type, 'step'); // a holds the lock now
  await assertCode(() => b.run(), 'ERR_BUSY', new RegExp(`in use by another finetune run \\(pid ${process.pid} on host .*, in this process\\)`));
  await running.return(undefined); // breaking out of fit() ends the run
  assert.not.ok(existsSync(join(dir, 'lib', LOCK_FILE)));

  // A run that fails (bad data) releases the lock and leaves no out_dir it created.
  writeFileSync(join(dir, 'bad.json'), JSON.stringify([{ instruction: 'a', output: 7 }]));
  const bad = new Trainer({ ...a.options, data: createDataModule('JSON', { json_path: join(dir, 'bad.json') }), outDir: join(dir, 'new', 'run') });
  await assertCode(() => bad.run(), 'ERR_DATA');
  assert.not.ok(existsSync(join(dir, 'new')));
  assert.is((await b.run()).type, 'done'); // b's turn: the out_dir is free and a's run wrote no checkpoints
  for (const t of [a, b]) (t.options.model as Model).dispose();
});

test.run();

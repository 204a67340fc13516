// `litlora finetune lora` across processes: two processes given torchrun's environment by hand (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT) train as ranks 0 and 1; `--devices 2` starts its two workers itself, and
// when one of them is killed it stops the other and fails with ERR_DISTRIBUTED naming that rank. Every process
// runs under a hard timeout.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cliProcessArgs, cliRunFolder } from './helpers/cli_process.js';
import { freePort } from './helpers/ranks.js';
import { tempFolders } from './helpers/temp.js';

const it = test;
const folders = tempFolders();
let dir = '';
test.before(async () => {
  dir = folders.make('ddp-cli');
  await cliRunFolder(dir);
});
test.after(() => folders.removeAll());

const TRAIN = (out: string, steps: number) => [
  'finetune', 'lora', 'base', '--data', 'JSON', '--data.json_path', 'data.json', '--out_dir', out, '--train.global_batch_size', '4',
  '--train.micro_batch_size', '2', '--train.max_steps', String(steps), '--train.save_interval', '1', '--eval.max_new_tokens', '0',
  '--eval.max_iters', '2', '--progress', 'plain', '--merge', 'false',
];

interface Outcome { code: number | null; signal: NodeJS.Signals | null; out: string; err: string; pid: number }

function cli(argv: string[], env: NodeJS.ProcessEnv, hardTimeoutMs = 180_000): { pid: number; done: Promise<Outcome> } {
  const child = spawn(process.execPath, cliProcessArgs(argv), { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), hardTimeoutMs);
  return {
    pid: child.pid!,
    done: new Promise((resolve) => child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err, pid: child.pid! }); })),
  };
}

it('torchrun\'s environment variables make two processes ranks 0 and 1 of one run', async () => {
  const port = await freePort();
  const env = (rank: number) => ({ RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
  const [r0, r1] = await Promise.all([cli(TRAIN('torchrun', 2), env(0)).done, cli(TRAIN('torchrun', 2), env(1)).done]);
  assert.is(r0!.code, 0, r0!.out + r0!.err);
  assert.is(r1!.code, 0, r1!.out + r1!.err);
  assert.match(r0!.out, /Done: 2 optimizer steps, 2 iterations/);  // 4 samples a step: 2 per rank, one micro-batch of 2
  assert.is(r1!.out, '', 'rank 1 prints nothing');
  assert.equal(readdirSync(join(dir, 'torchrun')).sort(), ['final', 'logs', 'step-000001', 'step-000002']);
});

it('--devices 2 starts two workers; the run records devices: 2', async () => {
  const r = await cli([...TRAIN('devices', 2), '--devices', '2'], { LITLORA_THREADS: '' }).done;
  assert.is(r.code, 0, r.out + r.err);
  assert.match(r.out, /Done: 2 optimizer steps, 2 iterations/);
  assert.match(readFileSync(join(dir, 'devices', 'final', 'hyperparameters.yaml'), 'utf8'), /^devices: 2$/m);
});

it('--devices 2 with a worker killed: the launcher stops the other and fails with ERR_DISTRIBUTED naming the rank', async () => {
  const out = join(dir, 'killed');
  const launcher = cli([...TRAIN('killed', 1000), '--devices', '2', '--distributed_timeout', '30'], {});
  // The worker whose environment says RANK=1, once the first step folder exists.
  let victim = 0;
  for (let i = 0; i < 1200 && !victim; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (!existsSync(join(out, 'step-000001', 'training_state.pth'))) continue;
    const children = readFileSync(`/proc/${launcher.pid}/task/${launcher.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    victim = children.find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1')) ?? 0;
  }
  assert.ok(victim > 0, 'found rank 1');
  process.kill(victim, 'SIGKILL');
  const r = await launcher.done;
  assert.is(r.code, 1, r.out + r.err);
  assert.match(r.err, /error \[ERR_DISTRIBUTED\]: rank 1 of 2 was killed by SIGKILL; the other workers on this node were stopped/);
  // Rank 0 said what it saw before it was stopped, or was stopped first: either way it is gone and no final/ exists.
  assert.not.ok(existsSync(join(out, 'final')));
  assert.ok(existsSync(join(out, 'step-000001', 'lit_model.pth.lora')));
});

test.run();

// Which rank a process is, from its environment: torchrun's variables, Slurm's, neither; and the checks of the
// Trainer's `distributed` option. Pure TypeScript: no process group is joined here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LitloraError } from '../ts/errors.js';
import { distributedFromEnv, firstSlurmHost, resolveDistributed } from '../ts/train/distributed.js';
import { resolveOptions, type TrainerOptions } from '../ts/train/options.js';

const it = test;

it('torchrun\'s RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT', () => {
  assert.equal(distributedFromEnv({ RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: '10.0.0.2', MASTER_PORT: '29400' }),
    { rank: 3, worldSize: 4, localRank: 1, masterAddr: '10.0.0.2', masterPort: 29400 });
  // torchrun's defaults where a variable is missing; a world of one is not distributed.
  assert.equal(distributedFromEnv({ RANK: '1', WORLD_SIZE: '2' }), { rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 29500 });
  assert.is(distributedFromEnv({ RANK: '0', WORLD_SIZE: '1' }), null);
  assert.is(distributedFromEnv({}), null);
});

it('Slurm\'s SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, the first node and a port from the job id', () => {
  assert.equal(distributedFromEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NODELIST: 'gpu[07-10],cpu1', SLURM_JOB_ID: '4321987' }),
    { rank: 5, worldSize: 8, localRank: 1, masterAddr: 'gpu07', masterPort: 16987 });
  assert.is(distributedFromEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '1' }), null);
  // torchrun inside a Slurm job: torchrun's variables win.
  assert.is(distributedFromEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', RANK: '1', WORLD_SIZE: '4' })!.worldSize, 4);
  assert.is(firstSlurmHost('node1'), 'node1');
  assert.is(firstSlurmHost('a[3,5-6]'), 'a3');
});

it('bad values are ERR_ARG naming the variable or field', () => {
  const code = (f: () => unknown) => { try { f(); } catch (e) { return [(e as LitloraError).code, (e as Error).message]; } return null; };
  assert.equal(code(() => distributedFromEnv({ RANK: 'x', WORLD_SIZE: '2' })), ['ERR_ARG', "RANK: expected an integer ≥ 0, got 'x'"]);
  assert.equal(code(() => resolveDistributed({ rank: 2, worldSize: 2 })), ['ERR_ARG', 'distributed.rank: expected an integer in 0..1, got 2']);
  assert.equal(code(() => resolveDistributed({ rank: 0, worldSize: 2, masterPort: 70000 })),
    ['ERR_ARG', 'distributed.masterPort: expected an integer in 1..65535, got 70000']);
  assert.equal(resolveDistributed({ rank: 1, worldSize: 2 }),
    { rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 29500, timeoutMs: 1_800_000, backend: 'gloo',
      overlap: true, bucketBytes: 1 << 20 });
  assert.equal(code(() => resolveDistributed({ rank: 0, worldSize: 2, bucketBytes: 0 })),
    ['ERR_ARG', 'distributed.bucketBytes: expected an integer in 1..∞, got 0']);
  assert.equal(code(() => resolveDistributed({ rank: 0, worldSize: 2, overlap: 'yes' as unknown as boolean })),
    ['ERR_ARG', 'distributed.overlap: expected true or false, got yes']);
});

it('the global batch must split evenly over micro-batches of every rank', () => {
  // Only what resolveOptions reads of a model and a data module.
  const base = {
    model: { mergedStateDict: () => null, adapter: {}, dtype: 'float32' }, data: { trainBatches: () => [] }, tokenizer: {},
    train: { globalBatchSize: 6, microBatchSize: 2 },
  } as unknown as TrainerOptions;
  assert.is(resolveOptions({ ...base, distributed: { rank: 0, worldSize: 3 } }).train.globalBatchSize, 6);
  try {
    resolveOptions({ ...base, distributed: { rank: 0, worldSize: 2 } });
    assert.unreachable('6 samples over 2 ranks × micro-batches of 2');
  } catch (e) {
    assert.is((e as LitloraError).code, 'ERR_ARG');
    assert.match((e as Error).message, /train\.globalBatchSize \(6\) must be a multiple of train\.microBatchSize × world size \(2 × 2\)/);
  }
});

test.run();

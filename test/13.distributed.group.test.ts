// The c10d process group (native/core/distributed): two ranks on this machine through libtorch's Gloo average
// tensors in buckets, sum numbers, meet at a barrier; joining checks the world size, the ranks and the port.
// Every rank runs in a child process under a hard timeout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, runRanks, startRank } from './helpers/ranks.js';

const it = test;
const spec = (port: number, worldSize: number, extra: Record<string, unknown> = {}) => (rank: number) =>
  ({ rank, worldSize, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 20_000, bucketBytes: 24, ...extra });

it('two ranks average tensors over Gloo in buckets, sum numbers and meet at a barrier', async () => {
  const port = await freePort();
  const out = await runRanks(2, 'group', spec(port, 2));
  for (const o of out) assert.is(o.status, 0, o.stdout + o.stderr);
  for (const [rank, o] of out.entries()) {
    const r = o.result;
    assert.is(r.rank, rank);
    assert.ok(r.backends.includes('gloo'), String(r.backends));
    // (rank0 + rank1) / 2 of (r + 1)(i + 1), of 10r + i, of r + 0.5
    assert.equal(r.averaged[0], [1.5, 3, 4.5, 6, 7.5, 9]);
    assert.equal(r.averaged[1], [5, 6, 7, 8, 9]);
    assert.equal(r.averaged[2], [1]);
    assert.equal(r.sums, [1, 2, 2.5]);
    // 24-byte buckets: the 6 floats alone, the 5 floats alone, the float64 one alone (another dtype).
    assert.is(r.stats.buckets, 3);
    assert.is(r.stats.bytes, 24 + 20 + 8);
    assert.is(r.stats.allReduceCalls, 1);
    // The all-reduce began inside the call, on the machine's monotonic clock (bench:ddp compares it between ranks).
    assert.ok(r.before <= r.stats.lastWaitStart && r.stats.lastWaitStart <= r.after, `${r.before} ${r.stats.lastWaitStart} ${r.after}`);
    assert.ok(r.stats.seconds > 0 && r.stats.seconds <= r.after - r.before, String(r.stats.seconds));
  }
});

it('a world-size mismatch is ERR_DISTRIBUTED on both ranks, naming both sizes', async () => {
  const port = await freePort();
  const ranks = [startRank('group', spec(port, 2)(0), 60_000), startRank('group', { ...spec(port, 3)(1) }, 60_000)];
  const [r0, r1] = await Promise.all(ranks.map((r) => r.done));
  assert.is(r1!.status, 1, r1!.stdout + r1!.stderr);
  assert.is(r1!.error.code, 'ERR_DISTRIBUTED');
  assert.match(r1!.error.message, /world size mismatch: rank 1 was started with a world size of 3, rank 0 with 2/);
  assert.is(r0!.status, 1, r0!.stdout);
  assert.is(r0!.error.code, 'ERR_DISTRIBUTED');
  assert.match(r0!.error.message, /world size mismatch: rank 0 was started with a world size of 2, rank 1 with 3/);
});

it('a port in use is ERR_DISTRIBUTED on rank 0 naming the port', async () => {
  const port = await freePort();
  const first = startRank('group', spec(port, 2)(0), 60_000);
  // Rank 0 of another job on the same port, while the first one waits for its rank 1.
  await new Promise((r) => setTimeout(r, 3000));
  const second = await startRank('group', spec(port, 2)(0), 60_000).done;
  first.child.kill('SIGKILL');
  await first.done;
  assert.is(second.status, 1, second.stdout + second.stderr);
  assert.is(second.error.code, 'ERR_DISTRIBUTED');
  assert.match(second.error.message, new RegExp(`127\\.0\\.0\\.1:${port}: the port is in use`));
});

it('a rank that never comes is ERR_DISTRIBUTED after the timeout, saying how many joined', async () => {
  const port = await freePort();
  const o = await startRank('group', spec(port, 2, { timeoutMs: 2000 })(0), 60_000).done;
  assert.is(o.status, 1, o.stdout + o.stderr);
  assert.is(o.error.code, 'ERR_DISTRIBUTED');
  assert.match(o.error.message, /only 1 of 2 ranks joined the rendezvous/);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, buildInfo, getNumThreads, setNumThreads } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';

test('from / data round trips every typed array exactly', async () => {
  const cases: [any, string][] = [
    [new Float32Array([1.5, -2, 3.25, 0]), 'float32'],
    [new Float64Array([1e-300, -2, Math.PI, 0]), 'float64'],
    [new Int32Array([1, -2, 2147483647, -2147483648]), 'int32'],
    [new BigInt64Array([1n, -2n, 9007199254740993n, -5n]), 'int64'],
  ];
  for (const [data, dtype] of cases) {
    const t = Tensor.from(data, [2, 2]);
    assert.equal(t.shape, [2, 2]);
    assert.is(t.dtype, dtype);
    assert.is(t.device, 'cpu');
    assert.equal(Array.from(await t.data() as any), Array.from(data));
  }
});

test('bfloat16 and float16: from Float32Array rounds to nearest even; raw Uint16Array bits pass through', async () => {
  // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): nearest-even rounds down to 1.
  const t = Tensor.from(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.5, 65504]), [4], { dtype: 'bfloat16' });
  assert.equal(Array.from(await t.data({ raw: true }) as ArrayLike<number>), [0x3f80, 0x3f82, 0xbf00, 0x4780]);
  assert.equal(Array.from(await t.data() as ArrayLike<number>), [1, 1 + 2 ** -6, -0.5, 65536]);
  const bits = Tensor.from(new Uint16Array([0x3c00, 0xc000, 0x7bff]), [3], { dtype: 'float16' });
  assert.is(bits.dtype, 'float16');
  assert.equal(Array.from(await bits.data() as ArrayLike<number>), [1, -2, 65504]);
});

test('to() converts dtype and returns a new tensor', async () => {
  const t = Tensor.from(new Float64Array([0.1, 0.2, 0.3]), [3]);
  const f = await t.to({ dtype: 'float32' });
  assert.is(f.dtype, 'float32');
  assert.is(t.dtype, 'float64');
  assert.equal(Array.from(await f.data() as ArrayLike<number>), Array.from(new Float32Array([0.1, 0.2, 0.3])));
});

test('dispose is idempotent and use after dispose is ERR_DISPOSED', async () => {
  const t = Tensor.from(new Float32Array(4), [4]);
  t.dispose();
  t.dispose();
  assert.ok(t.disposed);
  await assertCode(() => t.shape, 'ERR_DISPOSED');
  await assertCode(() => t.data(), 'ERR_DISPOSED');
  await assertCode(() => t.to({ dtype: 'float64' }), 'ERR_DISPOSED');
});

test('bad input gives coded errors and the next call still works', async () => {
  await assertCode(() => Tensor.from(new Float32Array(3), [2, 2]), 'ERR_SHAPE', /needs 4 elements, got 3/);
  await assertCode(() => Tensor.from(new Float32Array(4), [2, -2]), 'ERR_SHAPE');
  await assertCode(() => Tensor.from(new Float32Array(4), [4], { dtype: 'complex' as any }), 'ERR_DTYPE', /unknown dtype 'complex'/);
  await assertCode(() => Tensor.from(new Uint16Array(4), [4]), 'ERR_DTYPE');
  await assertCode(() => Tensor.from(new Float32Array(4), [4], { device: 'tpu' as any }), 'ERR_DEVICE');
  const ok = Tensor.from(new Float32Array([1, 2]), [2]);
  assert.equal(Array.from(await ok.data() as ArrayLike<number>), [1, 2]);
});

test('CUDA where there is none is ERR_DEVICE naming what is available', async () => {
  if (buildInfo().cudaDeviceCount > 0) return;
  await assertCode(() => Tensor.from(new Float32Array(4), [4], { device: 'cuda' }), 'ERR_DEVICE', /available: cpu/);
  await assertCode(() => Tensor.from(new Float32Array(4), [4], { device: 'cuda:1' }), 'ERR_DEVICE');
});

test('threads default to the machine cores and can be changed', () => {
  const before = getNumThreads();
  assert.ok(before >= 1);
  setNumThreads(1);
  assert.is(getNumThreads(), 1);
  setNumThreads(before);
  assert.is(getNumThreads(), before);
});

test('forgotten tensors are freed by the GC (external memory pressure triggers it)', async () => {
  // 64 × 32 MiB = 2 GiB of tensors that are never disposed; without finalizers RSS would pass 2 GiB.
  // N-API finalizers run from the event loop, so the loop yields as a real (async) program does.
  const chunk = new Float32Array(8 << 20);
  for (let i = 0; i < 64; i++) {
    Tensor.from(chunk, [chunk.length]);
    await new Promise((r) => setImmediate(r));
  }
  const rss = process.memoryUsage().rss;
  assert.ok(rss < 1.5 * 2 ** 30, `rss ${(rss / 2 ** 20).toFixed(0)} MiB`);
});

test.run();

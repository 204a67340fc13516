// libtorch failures reach the user in litlora's words: what failed (the operation, in our terms), the likely
// cause and what to do, then libtorch's own text, first line only, with no C++ stack trace or source location.
// A failed allocation is ERR_OOM with the byte count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateTokens, Model, Tensor } from '../ts/index.js';
import { loraInternals } from '../ts/internals.js';
import { pythiaTiny } from './helpers/model.js';

async function errorOf(fn: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message };
  }
  return assert.unreachable('expected an error') as never;
}

/** No C++ context: one line, no stack frames, no source files. */
function assertNoCppContext(message: string): void {
  assert.not.match(message, /\n|Exception raised from|frame #|\.cpp|\.h:\d/, message);
}

test('a model too large for memory is ERR_OOM naming the operation and the bytes libtorch asked for', async () => {
  // Each weight matrix of this config takes at least 2^48 bytes, more than any address space: the allocation
  // fails at once whatever the machine's memory and overcommit policy.
  const e = await errorOf(() => Model.fromConfig({ ...pythiaTiny, n_embd: 2 ** 23, n_head: 1, padded_vocab_size: 2 ** 23, intermediate_size: 2 ** 23 }));
  assert.is(e.code, 'ERR_OOM', e.message);
  const m = /^out of host memory while creating the model: an allocation of (\d+) bytes \(\d+\.\d [TPE]iB\) failed\. Free memory, or use a smaller model, batch size or sequence length, or bfloat16 weights\. \(libtorch: ([^\n]*)\)$/.exec(e.message);
  assert.ok(m, e.message);
  assert.ok(Number(m![1]) >= 2 ** 48, m![1]);
  assert.ok(m![2]!.includes(`allocate ${m![1]} bytes`), "libtorch's own line, with the same count, follows");
  assertNoCppContext(e.message);
});

test('an allocation failure while generating (on the worker thread) is ERR_OOM naming generation; the model stays usable', async () => {
  const model = await Model.fromConfig({ ...pythiaTiny, block_size: 2 ** 46 });
  // The KV cache for 2^45 new tokens is petabytes.
  const e = await errorOf(async () => { for await (const _ of generateTokens(model, [1, 2], { maxNewTokens: 2 ** 45 })) { /* none */ } });
  assert.is(e.code, 'ERR_OOM', e.message);
  assert.match(e.message, /^out of host memory while generating tokens: an allocation of \d+ bytes \(\d+\.\d [TPE]iB\) failed\. .*\(libtorch: [^\n]*\)$/);
  assertNoCppContext(e.message);
  (await model.forward([1, 2, 3])).dispose();
  model.dispose();
});

test('any other libtorch failure is ERR_TORCH: the operation, the cause in our terms, what to do, libtorch\'s first line', async () => {
  // The public entry points check shapes and dtypes before libtorch sees them; this benchmark hook does not,
  // so it stands in for a libtorch failure litlora did not foresee (a matmul of shapes that do not fit).
  const shapes = await errorOf(() => loraInternals.denseFloor(
    Tensor.from(new Float32Array(6), [2, 3]), Tensor.from(new Float32Array(20), [4, 5]), Tensor.from(new Float32Array(8), [2, 4])));
  assert.is(shapes.code, 'ERR_TORCH');
  assert.match(shapes.message, /^libtorch failed while running the dense benchmark products, on tensor shapes that do not fit together\. Check that the weights, the adapter and the inputs belong to this model's config \(model_config\.yaml\); if they do, report it as a litlora bug with this message\. \(libtorch: [^\n]+\)$/);
  assertNoCppContext(shapes.message);
  const dtypes = await errorOf(() => loraInternals.denseFloor(
    Tensor.from(new Float32Array(6), [2, 3]), Tensor.from(new Float64Array(12), [4, 3]), Tensor.from(new Float32Array(8), [2, 4])));
  assert.is(dtypes.code, 'ERR_TORCH');
  assert.match(dtypes.message, /^libtorch failed while running the dense benchmark products, on tensors of different dtypes\. Load the model, the adapter and the inputs with one dtype; .*\(libtorch: [^\n]*(float|double)[^\n]*\)$/);
  assertNoCppContext(dtypes.message);
});

test.run();

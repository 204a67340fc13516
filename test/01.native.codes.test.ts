// One error type across the boundary: every error code native code raises is a member of ErrorCode
// (ts/errors.ts), and errors raised in native code arrive as LitloraError with that code — on the main thread
// and in a worker_thread (each environment has its own LitloraError class, which the addon keeps per
// environment).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { binding } from '../ts/binding.js';
import type { ErrorCode } from '../ts/errors.js';
import { LitloraError, Model, Tensor, TensorFile, createDataModule, initCheckpoint } from '../ts/index.js';
import { bytesTokenizer } from './helpers/tiny_train.js';
import { pythiaTiny } from './helpers/model.js';
import { tempFolders } from './helpers/temp.js';

const folders = tempFolders();
test.after(() => folders.removeAll());

// The members of the ErrorCode union, read from its source.
function errorCodes(): string[] {
  const source = readFileSync(join(packageRoot, 'ts', 'errors.ts'), 'utf8');
  const union = /export type ErrorCode\s*=([^;]+);/.exec(source);
  assert.ok(union, 'ts/errors.ts declares `export type ErrorCode = …;`');
  return [...union![1]!.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!);
}

// Every "ERR_…" string in native/ (.cc and .h files, every folder).
function nativeCodes(dir = join(packageRoot, 'native')): Map<string, string> {
  const found = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      for (const [code, where] of nativeCodes(path)) found.set(code, where);
    } else if (/\.(cc|h)$/.test(name)) {
      for (const m of readFileSync(path, 'utf8').matchAll(/"(ERR_[A-Z0-9_]+)"/g)) found.set(m[1]!, path);
    }
  }
  return found;
}

async function errorOf(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  return assert.unreachable('expected an error');
}

const f32 = () => new Float32Array(4);

// Native failures, each raised in native code (through the raw binding, so that no TypeScript check stands in
// front of it), by the code it must arrive with.
const nativeFailures: Partial<Record<ErrorCode, () => unknown>> = {
  ERR_DTYPE: () => binding().NativeTensor.fromArray(f32(), [4], 'complex64', 'cpu'),
  ERR_SHAPE: () => binding().NativeTensor.fromArray(f32(), [3], 'float32', 'cpu'),
  ERR_DEVICE: () => binding().NativeTensor.fromArray(f32(), [4], 'float32', 'tpu'),
  ERR_RANGE: () => binding().setNumThreads(0),
  ERR_TYPE: () => binding().internals.loraDenseFloor({} as never, {} as never, {} as never),
  ERR_DISPOSED: () => {
    const t = binding().NativeTensor.fromArray(f32(), [4], 'float32', 'cpu');
    t.dispose();
    return t.data();
  },
  ERR_ARG: () => new (binding().NativeTensorFile)().open(42 as never),
  ERR_CHECKPOINT_MISSING: () => new (binding().NativeTensorFile)().open(join(folders.make('codes'), 'absent.pth')),
  ERR_CHECKPOINT_FORMAT: () => {
    const path = join(folders.make('codes'), 'garbage.pth');
    writeFileSync(path, 'this is not a tensor file, in any format litlora reads');
    return new (binding().NativeTensorFile)().open(path);
  },
  // A libtorch failure litlora does not foresee: a product of shapes that do not fit.
  ERR_TORCH: () => binding().internals.loraDenseFloor(Tensor.from(f32(), [2, 2]).handle, Tensor.from(new Float32Array(6), [3, 2]).handle,
    Tensor.from(f32(), [2, 2]).handle),
  // Each weight matrix of this config takes at least 2^48 bytes: the allocation fails at once.
  ERR_OOM: () => Model.fromConfig({ ...pythiaTiny, n_embd: 2 ** 23, n_head: 1, padded_vocab_size: 2 ** 23, intermediate_size: 2 ** 23 }),
  // Model's own calls queue (ts/model/scheduler.ts); the native handle still refuses a second operation.
  ERR_BUSY: async () => {
    const model = await Model.fromConfig(pythiaTiny);
    const first = model.handle.forward(new Int32Array([1, 2, 3]), [1, 3]);
    try {
      await model.handle.forward(new Int32Array([1, 2]), [1, 2]);
    } finally {
      (await first).dispose();
      await model.dispose();
    }
  },
};

test('every error code in native/ is a member of ErrorCode', () => {
  const union = new Set(errorCodes());
  assert.ok(union.size >= 10 && union.has('ERR_TORCH'), `ErrorCode was read: ${[...union].join(' ')}`);
  const native = nativeCodes();
  assert.ok(native.size >= 10 && native.has('ERR_CHECKPOINT_FORMAT'), `native/ was searched: ${[...native.keys()].join(' ')}`);
  for (const [code, where] of native) assert.ok(union.has(code), `${code} (${where}) is not in ts/errors.ts's ErrorCode`);
});

test('native failures arrive as LitloraError with their code, for each code in ErrorCode that one can trigger', async () => {
  const union = errorCodes();
  for (const code of Object.keys(nativeFailures)) assert.ok(union.includes(code), `${code} is in ErrorCode`);
  for (const code of union) {
    const trigger = nativeFailures[code as ErrorCode];
    if (!trigger) continue;
    const e = await errorOf(trigger);
    assert.ok(e instanceof LitloraError, `${code}: expected a LitloraError, got ${Object.prototype.toString.call(e)} ${String(e)}`);
    assert.is((e as LitloraError).code, code, (e as Error).message);
    assert.is((e as LitloraError).name, 'LitloraError');
    assert.ok((e as Error).message.length > 0 && !(e as Error).message.startsWith('ERR_'), (e as Error).message);
  }
});

// Every member of ErrorCode, each with a trigger through the public API or the raw binding, or where one cannot be
// made in-process here, the test that covers it. A Record over ErrorCode: a new code without an entry is a type error.
const everyCode: Record<ErrorCode, (() => unknown) | { coveredBy: string; why: string }> = {
  ...(nativeFailures as Record<string, () => unknown>),
  ERR_CONFIG: () => Model.fromConfig({ ...pythiaTiny, n_head: 3 }),  // n_embd 32 is not divisible by 3 heads
  ERR_DATA: () => createDataModule('JSON', { json_path: join(folders.make('codes'), 'absent.json') }).setup(bytesTokenizer()),
  ERR_IO: () => {
    const file = join(folders.make('codes'), 'a-file');
    writeFileSync(file, 'x');
    return initCheckpoint({ outDir: join(file, 'model') });  // a folder under a regular file
  },
  ERR_QUEUE_FULL: { coveredBy: 'test/12.serve.queue.test.ts', why: 'needs a busy model with a bounded queue' },
  ERR_ADAPTER_MISMATCH: { coveredBy: 'test/12.serve.adapters.test.ts', why: 'needs LoRA folders made for another base' },
  ERR_ADAPTER_NOT_FOUND: { coveredBy: 'test/12.serve.adapters.test.ts', why: 'needs a model with runtime adapters' },
  ERR_NONFINITE: { coveredBy: 'test/08.train.loop.test.ts', why: 'needs a training run whose loss diverges' },
  ERR_EXISTS: { coveredBy: 'test/10.interop.convert.test.ts', why: 'needs a Hugging Face folder converted before' },
  ERR_LOAD: { coveredBy: 'test/05.package.loader.test.ts', why: 'needs a fresh process that fails to load the addon' },
  ERR_CUDA_OOM: { coveredBy: 'native/errors.cc', why: 'raised only for a CUDA out-of-memory error, and CI has no GPU' },
  ERR_HUB_AUTH: { coveredBy: 'test/10.interop.download.test.ts', why: 'needs a hub that refuses (a local stand-in there)' },
  ERR_HUB_NOT_FOUND: { coveredBy: 'test/10.interop.download.test.ts', why: 'needs a hub without the repo (a local stand-in there)' },
  ERR_HUB_INTEGRITY: { coveredBy: 'test/10.interop.download.test.ts', why: 'needs a hub serving altered bytes (a local stand-in there)' },
  ERR_NETWORK: { coveredBy: 'test/10.interop.download.test.ts', why: 'needs a network failure (a dropped connection, a closed port)' },
  ERR_TOOLCHAIN: { coveredBy: 'test/11.install.tools.test.ts', why: 'raised by setup, in a process whose PATH lacks the build tools' },
  ERR_LIBTORCH_DOWNLOAD: { coveredBy: 'test/11.install.fetch.test.ts', why: 'raised by setup, against a local HTTP server' },
  ERR_LIBTORCH_INTEGRITY: { coveredBy: 'test/11.install.fetch.test.ts', why: 'raised by setup, for a damaged or unexpected archive' },
  ERR_DISTRIBUTED: { coveredBy: 'test/13.distributed.group.test.ts', why: 'needs several processes (ranks) and a rendezvous' },
  ERR_DISTRIBUTED_UNAVAILABLE: { coveredBy: 'native/core/distributed.cc', why: 'raised only by a build whose libtorch has no c10d; this one has Gloo' },
  ERR_GGUF_UNSUPPORTED: { coveredBy: 'test/14.gguf.metadata.test.ts', why: 'needs a checkpoint folder with a tokenizer llama.cpp cannot run' },
} as Record<ErrorCode, (() => unknown) | { coveredBy: string; why: string }>;

test('every code in ErrorCode arrives as a LitloraError with that code (or names the test that checks it)', async () => {
  const union = errorCodes();
  assert.equal(Object.keys(everyCode).sort(), [...union].sort(), 'everyCode covers ErrorCode exactly');
  for (const code of union) {
    const entry = everyCode[code as ErrorCode];
    if (typeof entry !== 'function') {
      const text = readFileSync(join(packageRoot, entry.coveredBy), 'utf8');
      assert.ok(text.includes(code), `${entry.coveredBy} checks ${code}`);
      continue;
    }
    const e = await errorOf(entry);
    assert.ok(e instanceof LitloraError, `${code}: expected a LitloraError, got ${Object.prototype.toString.call(e)} ${String(e)}`);
    assert.is((e as LitloraError).code, code, (e as Error).message);
  }
});

test('TypeScript failures are LitloraError too', async () => {
  const e = await errorOf(() => TensorFile.open(''));
  assert.ok(e instanceof LitloraError);
  assert.is((e as LitloraError).code, 'ERR_ARG');
});

test('in a worker_thread native errors are that environment\'s LitloraError; the main thread\'s stay its own after the worker exits', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'error-class-child.ts')],
    { cwd: packageRoot, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
  assert.is(r.status, 0, `the child exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  const expected = { litloraError: true, code: 'ERR_RANGE' };
  assert.equal(out, { before: expected, worker: expected, workerExit: 0, after: expected });
});

test.run();

// Child process for test/01.native.codes: a native error on the main thread, then in a worker_thread (which
// loads litlora again, with its own LitloraError class), then on the main thread once the worker has exited.
// Each must be an instance of its own environment's LitloraError. Prints one JSON line.
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { binding } from '../../ts/binding.js';
import { LitloraError } from '../../ts/errors.js';

const self = fileURLToPath(import.meta.url);
const tsxApi = import.meta.resolve('tsx/esm/api');

// A failure raised in native code (a thread count below 1).
function nativeError(): { litloraError: boolean; code: unknown } {
  try {
    binding().setNumThreads(0);
  } catch (e) {
    return { litloraError: e instanceof LitloraError, code: (e as { code?: unknown }).code };
  }
  return { litloraError: false, code: 'no error' };
}

async function main(): Promise<void> {
  const before = nativeError();
  // tsx's loader is registered per thread: the worker registers it again before importing this file.
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(self).href)}); })`;
  const worker = new Worker(boot, { eval: true });
  const worked = new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const inWorker = await worked;
  const workerExit = await exited;
  const after = nativeError();
  process.stdout.write(`${JSON.stringify({ before, worker: inWorker, workerExit, after })}\n`);
}

if (isMainThread) main().catch((e) => { process.stdout.write(`${JSON.stringify({ uncaught: String(e?.stack ?? e) })}\n`); });
else parentPort!.postMessage(nativeError());

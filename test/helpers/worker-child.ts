// Child process for the worker_threads suite: the addon used from several JavaScript environments at once.
// argv: a base checkpoint folder (lit_model.pth + model_config.yaml), a synthetic instruction JSON.
// Each job (in a worker or on the main thread) loads the model, trains one optimizer step and greedy-decodes
// a few tokens; all jobs must agree, since they do the same seeded work. Prints one JSON line.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Model, Trainer, createDataModule, generateTokens } from '../../ts/index.js';
import { bytesTokenizer } from './tiny_train.js';

const self = fileURLToPath(import.meta.url);
const tsxApi = import.meta.resolve('tsx/esm/api');

async function job(folder: string, json: string): Promise<{ loss: number; tokens: number[] }> {
  const model = await Model.load(folder, { lora: { r: 4, alpha: 8, query: true, value: true, dropout: 0 } });
  const trainer = new Trainer({
    model, data: createDataModule('JSON', { json_path: json, val_split_fraction: 0.1, num_workers: 0 }), tokenizer: bytesTokenizer(),
    outDir: null, progress: 'none', seed: 3,
    train: { globalBatchSize: 2, microBatchSize: 2, maxSteps: 1, lrWarmupSteps: 1, maxSeqLength: 48 }, eval: { interval: 1000, initialValidation: false, finalValidation: false },
  });
  let loss = NaN;
  for await (const event of trainer.fit()) if (event.type === 'step') loss = event.loss;
  const tokens: number[] = [];
  for await (const t of generateTokens(model, [72, 101, 108, 108, 111], { maxNewTokens: 6, temperature: 0 })) tokens.push(t);
  model.dispose();
  return { loss, tokens };
}

function inWorker(data: unknown): { worker: Worker; done: Promise<any> } {
  // tsx's loader is registered per thread: a worker registers it again before importing this (TypeScript) file.
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(self).href)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: data });
  const done = new Promise<any>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => resolve({ exited: code }));
  });
  return { worker, done };
}

async function main(): Promise<void> {
  const [folder, json] = process.argv.slice(2);
  // The addon is loaded on the main thread first, as in an app that uses litlora and then starts workers.
  const first = await job(folder, json);
  // Three environments at once, each with its own classes.
  const parallel = await Promise.all([0, 1, 2].map(() => inWorker({ folder, json }).done));
  // A worker that exits (terminated in the middle of its work) while the main thread goes on.
  const doomed = inWorker({ folder, json });
  await new Promise((r) => setTimeout(r, 50));
  await doomed.worker.terminate();
  await doomed.done;
  // A worker that used the addon and exited normally; then the main thread loads and runs again.
  const finished = await inWorker({ folder, json }).done;
  const after = await job(folder, json);
  process.stdout.write(`${JSON.stringify({ first, parallel, finished, after })}\n`);
}

if (isMainThread) {
  main().catch((e) => { process.stdout.write(`${JSON.stringify({ uncaught: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) })}\n`); });
} else {
  const { folder, json } = workerData as { folder: string; json: string };
  job(folder, json).then((r) => parentPort!.postMessage(r), (e) => parentPort!.postMessage({ error: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) }));
}

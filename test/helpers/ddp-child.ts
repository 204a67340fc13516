// One rank of a data-parallel test (test/13.distributed.*): a scenario name in argv[2], its settings as JSON in
// argv[3]. It prints one JSON line starting with `RESULT ` (or `ERROR ` with the coded error, then exits 1), and
// `STEP <n>` lines as optimizer steps finish, so the parent can kill it mid-run.
import { binding } from '../../ts/binding.js';
import { createDataModule, Model, Tensor } from '../../ts/index.js';
import { ProcessGroup, Trainer, type DistributedOptions } from '../../ts/train/trainer.js';

interface TrainSpec {
  base: string;
  dataPath: string;
  outDir: string;
  distributed?: DistributedOptions;
  maxSteps: number;
  globalBatchSize: number;
  microBatchSize: number;
  saveInterval?: number | null;
  resume?: boolean;
  /** Hang (stop answering) after this step: a rank that is alive but never reaches the next all-reduce. */
  hangAfterStep?: number;
}

const scenarios: Record<string, (spec: any) => Promise<unknown>> = {
  // Joins, then averages tensors of rank-dependent values in several buckets, sums numbers, waits at a barrier.
  async group(spec: DistributedOptions & { bucketBytes: number }) {
    const group = await ProcessGroup.join(spec);
    const r = group.rank;
    const tensors = [
      Tensor.from(Float32Array.from({ length: 6 }, (_, i) => (r + 1) * (i + 1)), [2, 3]),
      Tensor.from(Float32Array.from({ length: 5 }, (_, i) => r * 10 + i), [5]),
      Tensor.from(Float64Array.from([r + 0.5]), [1]),
    ];
    // process.hrtime reads CLOCK_MONOTONIC, the clock of stats().lastWaitStart.
    const before = Number(process.hrtime.bigint()) / 1e9;
    await group.native.allReduceMean(tensors.map((t) => t.handle), spec.bucketBytes);
    const after = Number(process.hrtime.bigint()) / 1e9;
    const averaged = await Promise.all(tensors.map(async (t) => Array.from(await t.data() as Float32Array | Float64Array)));
    const sums = await group.sum([r, 1, 2.5 * r]);
    await group.barrier();
    const stats = group.stats();
    group.dispose();
    return { rank: r, averaged, sums, stats, backends: ProcessGroup.backends(), before, after };
  },

  // A finetune run (one process, or one rank of several): its step losses, the final adapter's tensors and the
  // process group's gradient statistics.
  async train(spec: TrainSpec) {
    const model = await Model.load(spec.base, { lora: { r: 4, alpha: 8, dropout: 0 } });
    const group = spec.distributed ? await ProcessGroup.join(spec.distributed) : undefined;
    const trainer = new Trainer({
      model, data: createDataModule('JSON', { json_path: spec.dataPath, prompt_style: 'alpaca', val_split_fraction: 0.2 }),
      checkpointDir: spec.base, outDir: spec.outDir, progress: 'none', seed: 42, resume: spec.resume ?? false,
      distributed: group,
      train: {
        globalBatchSize: spec.globalBatchSize, microBatchSize: spec.microBatchSize, lrWarmupSteps: 1, maxSteps: spec.maxSteps,
        saveInterval: spec.saveInterval ?? null, epochs: 1,
      },
      eval: { interval: 1000, maxIters: 4, maxNewTokens: 0 },
      optimizer: { lr: 1e-2 },
      merge: false,
    });
    const steps: number[] = [];
    let valLoss: number | null = null;
    for await (const ev of trainer.fit()) {
      if (ev.type === 'step') {
        steps.push(ev.loss);
        process.stdout.write(`STEP ${ev.step}\n`);
        if (spec.hangAfterStep !== undefined && ev.step >= spec.hangAfterStep) {
          // Alive but silent: block this process's event loop (the others time out waiting for it).
          const until = Date.now() + 600_000;
          while (Date.now() < until) { /* hang */ }
        }
      }
      if (ev.type === 'eval' && ev.final) valLoss = ev.valLoss;
      if (ev.type === 'done') process.stdout.write(`DONE ${ev.steps}\n`);
    }
    const adapter: Record<string, number[]> = {};
    for (const [name, t] of await model.adapter!.tensors()) adapter[name] = Array.from(await t.data() as Float32Array);
    model.dispose();
    const stats = group?.stats();
    group?.dispose();
    return { steps, valLoss, adapter, stats };
  },
};

const [scenario, json] = process.argv.slice(2);
try {
  binding();
  const result = await scenarios[scenario!]!(JSON.parse(json!));
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (e: any) {
  process.stdout.write(`ERROR ${JSON.stringify({ code: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) })}\n`);
  process.exit(1);
}

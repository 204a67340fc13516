// Child process for the crash suites (03.io.crash, 06.model.workers): each scenario does something that once
// killed Node, catches what it can, and prints one JSON line of what happened. The parent asserts the exit
// status (a crash would be a signal or exit 133/135/139) and the coded errors.
import { truncateSync } from 'node:fs';
import { binding } from '../../ts/binding.js';
import { Model, TensorFile, normalizeConfig, normalizeLora } from '../../ts/index.js';
import { nativeGptConfig } from '../../ts/model/native_config.js';

type Outcome = { code: string; message: string } | 'ok';

async function attempt(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    return 'ok';
  } catch (e: any) {
    return { code: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) };
  }
}

const scenarios: Record<string, (args: string[]) => Promise<Record<string, unknown>>> = {
  // argv: a .pth holding a huge stride-0 view 'w', and a checkpoint folder whose lit_model.pth is that file.
  async hugeView([file, folder]) {
    const f = await TensorFile.open(file);
    const info = f.info('w');
    const get = await attempt(() => f.get('w'));
    const getAll = await attempt(() => f.getAll());
    const small = await attempt(async () => (await f.get('small')).data());
    await f.close();
    const load = await attempt(() => Model.load(folder));
    return { bytes: info.bytes, get, getAll, small, load };
  },
  // argv: a .pth holding a large float32 tensor 'w' stored aligned (so it is mapped, not copied).
  async truncateMapped([file]) {
    const f = await TensorFile.open(file);
    const t = await f.get('w');
    const before = (await t.data()) as Float32Array;
    truncateSync(file, 0);  // in place, under the live map: touching its pages is a SIGBUS
    const read = await attempt(() => t.data());
    const again = await attempt(() => t.data());
    const reopen = await attempt(() => TensorFile.open(file));
    await f.close().catch(() => undefined);
    return { firstValue: before[1], read, again, reopen };
  },
  // argv: none. The raw native entry points that take a model config (NativeGpt.create, mergeLoraFiles), given
  // what only a caller bypassing the TS layer could give them: each config is a valid one with one field changed.
  async hostileConfig() {
    const good = nativeGptConfig(normalizeConfig({ n_layer: 1, n_head: 4, n_embd: 32, block_size: 16, vocab_size: 64, padding_multiple: 64 }),
      normalizeLora({ r: 2, mlp: true }));
    // Untyped on purpose: these calls pass what the binding's types forbid.
    const native = binding() as unknown as { NativeGpt: { create(...args: unknown[]): Promise<{ dispose(): void }> }; mergeLoraFiles(...args: unknown[]): Promise<unknown> };
    const throwing = Object.defineProperty({ ...good }, 'nLayer', { get() { throw new RangeError('a getter that throws'); } });
    const cases: Record<string, unknown> = {
      good,
      litgptTree: { n_layer: 1, n_head: 4, n_embd: 32 },  // the generic litgpt-style tree native code once parsed
      noLora: { ...good, lora: undefined },
      nHeadZero: { ...good, nHead: 0 },
      groups: { ...good, nQueryGroups: 3 },
      embdString: { ...good, nEmbd: '32' },
      blockHuge: { ...good, blockSize: 1e300 },
      blockNaN: { ...good, blockSize: NaN },
      ropeOdd: { ...good, ropeNElem: 3 },
      norm: { ...good, norm: 'BatchNorm' },
      loraDropout: { ...good, lora: { ...good.lora, dropout: 1 } },
      loraRank: { ...good, lora: { ...good.lora, r: -1 } },
      loraTarget: { ...good, lora: { ...good.lora, mlp: 1 } },
      throwing,
      array: [good],
    };
    const create: Record<string, Outcome> = {};
    const merge: Record<string, Outcome> = {};
    for (const [key, config] of Object.entries(cases)) {
      create[key] = await attempt(async () => (await native.NativeGpt.create(config, { dtype: 'float32', device: 'cpu', seed: 1 })).dispose());
      if (key !== 'good') merge[key] = await attempt(() => native.mergeLoraFiles('/nonexistent/base.pth', '/nonexistent/a.lora', '/nonexistent/out.pth', config, {}));
    }
    return { create, merge };
  },
};

const [name, ...rest] = process.argv.slice(2);
scenarios[name](rest).then(
  (result) => { process.stdout.write(`${JSON.stringify(result)}\n`); },
  (e) => { process.stdout.write(`${JSON.stringify({ uncaught: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) })}\n`); },
);

// Child process for the crash suites (03.io.crash, 06.model.workers): each scenario does something that once
// killed Node, catches what it can, and prints one JSON line of what happened. The parent asserts the exit
// status (a crash would be a signal or exit 133/135/139) and the coded errors.
import { truncateSync } from 'node:fs';
import { Model, TensorFile } from '../../ts/index.js';

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
};

const [name, ...rest] = process.argv.slice(2);
scenarios[name](rest).then(
  (result) => { process.stdout.write(`${JSON.stringify(result)}\n`); },
  (e) => { process.stdout.write(`${JSON.stringify({ uncaught: e?.code ?? 'NO_CODE', message: String(e?.message ?? e) })}\n`); },
);

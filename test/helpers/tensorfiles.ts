// Shared pieces of the tensor-file suites (03.io.*): a scratch folder and Python snippets.
import { join } from 'node:path';
import { runPython } from './python.js';
import { tempFolders } from './temp.js';

export function scratch(tag: string): { dir: string; path: (name: string) => string; remove: () => void } {
  const folders = tempFolders();
  const dir = folders.make(tag);
  return { dir, path: (name) => join(dir, name), remove: folders.removeAll };
}

/** Python helpers every snippet gets: bit-exact comparison and a per-tensor float64 checksum. */
export const PY_PRELUDE = `
import json, zipfile, collections, torch
def bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8)
def same(a, b):
    return a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape) and torch.equal(bits(a), bits(b))
def checksum(t):
    return float(t.detach().to(torch.float64).sum())
`;

/**
 * Python that fills `d` (made by `container`, e.g. '{}' or 'collections.OrderedDict()') with every dtype litlora
 * holds, views sharing one storage (transposed, sliced, strided), a stride-0 expanded view, an empty tensor and
 * a 0-d one: what the readers must give back bit for bit.
 */
export function richStateDict(container: string): string {
  return `
torch.manual_seed(0)
d = ${container}
for dt in [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32,
           torch.int64, torch.uint8]:
    d['dtype.' + str(dt)[6:]] = (torch.randn(3, 5) * 100).to(dt)
d['dtype.bool'] = torch.randn(4, 2) > 0
base = torch.randn(6, 4)
d['view.base'] = base
d['view.t'] = base.t()
d['view.slice'] = base[1:4]
d['view.step'] = base[:, ::2]
d['expanded'] = torch.arange(3.).expand(2, 3)
d['empty'] = torch.zeros(0, 3)
d['scalar'] = torch.tensor(3.5, dtype=torch.float64)
`;
}

/** Runs `code` after the prelude and returns what it printed as JSON on its last line. */
export function py<T = any>(code: string): T {
  const { stdout } = runPython(`${PY_PRELUDE}\n${code}`);
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** A tensor's values as plain numbers (int64 through Number). */
export async function values(t: { data(): Promise<ArrayLike<number | bigint>> }): Promise<number[]> {
  return Array.from(await t.data(), (v) => Number(v));
}

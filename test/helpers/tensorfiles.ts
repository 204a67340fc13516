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

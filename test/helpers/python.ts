// Runs Python reference code (PyTorch, numpy, safetensors) in the project's environment, passing arrays
// as .npy files. The reference Python is the one scripts/setup.mjs recorded; if it is missing the calling
// test fails — reference tests never silently skip.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../ts/addon_loader.js';
import { readNpy, writeNpy, type NpyArray } from './npy.js';

export function referencePython(): string {
  const env = JSON.parse(readFileSync(join(packageRoot, 'build', 'litlora-env.json'), 'utf8'));
  if (!env.python) throw new Error('no reference Python recorded; run `node scripts/setup.mjs`');
  return env.python;
}

/**
 * Runs `code` with `inputs` loaded as numpy arrays into a dict `inp` (and a helper `out(name, array)` to return
 * arrays). Returns the arrays passed to `out` and whatever the script printed.
 */
export function runPython(code: string, inputs: Record<string, NpyArray> = {}, options: { cwd?: string } = {}):
  { outputs: Record<string, NpyArray>; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'litlora-py-'));
  try {
    for (const [name, array] of Object.entries(inputs)) writeNpy(join(dir, `in.${name}.npy`), array);
    const prelude = [
      'import os, sys, glob, numpy as np',
      `_dir = ${JSON.stringify(dir)}`,
      "inp = {os.path.basename(p)[3:-4]: np.load(p) for p in glob.glob(os.path.join(_dir, 'in.*.npy'))}",
      "def out(name, a):\n    np.save(os.path.join(_dir, f'out.{name}.npy'), np.ascontiguousarray(a))",
    ].join('\n');
    const r = spawnSync(referencePython(), ['-c', `${prelude}\n${code}`], {
      encoding: 'utf8', cwd: options.cwd, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`reference Python failed (exit ${r.status}):\n${r.stderr}`);
    const outputs: Record<string, NpyArray> = {};
    for (const f of readdirSync(dir)) {
      if (f.startsWith('out.') && f.endsWith('.npy')) outputs[f.slice(4, -4)] = readNpy(join(dir, f));
    }
    return { outputs, stdout: r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

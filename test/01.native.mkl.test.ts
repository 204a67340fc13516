// MKL's vendor check (native/core/mkl_vendor.cc): libtorch's MKL asks the addon whether the CPU is Intel's, and the
// addon answers "yes" on any CPU with AVX2 and FMA so that MKL picks its kernels by CPU features (on AMD CPUs its
// generic path runs at half the FMA peak). LITLORA_MKL_VENDOR_CHECK=1 keeps MKL's own answer. Either way the GEMM
// must equal a float64 reference; only its speed may differ (bench:model measures that).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../ts/addon_loader.js';
import { runPython } from './helpers/python.js';
import { GEMM_INPUTS_NUMPY } from './helpers/gemm_inputs.js';

interface ChildResult { y: number[]; mkl: { answersIntel: boolean; queries: number } }

function gemmChild(env: Record<string, string | undefined>): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'test', 'helpers', 'gemm-child.ts')],
    { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

function cpuHasAvx2Fma(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  const flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'))?.split(/\s+/) ?? [];
  return flags.includes('avx2') && flags.includes('fma');
}

test('MKL asks the addon for the CPU vendor; the answer follows AVX2/FMA and LITLORA_MKL_VENDOR_CHECK; the GEMM equals float64 either way', () => {
  const ref = runPython(`import torch\n${GEMM_INPUTS_NUMPY}\nout('y', x.astype(np.float64) @ w.astype(np.float64).T)\n` +
    `out('scale', np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T)\n` +
    `print('mkl' if torch.backends.mkl.is_available() else 'no-mkl')`);
  const withMkl = ref.stdout.trim() === 'mkl' && process.platform === 'linux' && process.arch === 'x64';
  const expected = ref.outputs.y!.data as Float64Array, scale = ref.outputs.scale!.data as Float64Array;
  const features = cpuHasAvx2Fma();
  for (const [setting, answersIntel] of [[undefined, features], ['1', false]] as const) {
    const got = gemmChild({ LITLORA_MKL_VENDOR_CHECK: setting });
    assert.is(got.mkl.answersIntel, answersIntel, `LITLORA_MKL_VENDOR_CHECK=${setting ?? '(unset)'}: the addon's answer`);
    // MKL calls the check on its first GEMM; were the call bound inside libtorch, the addon would never be asked.
    if (withMkl) assert.ok(got.mkl.queries > 0, `MKL never asked the addon (queries ${got.mkl.queries})`);
    assert.is(got.y.length, expected.length);
    // fp32 summation error, relative to Σ|x·w| (the bound's scale): ~1e-7 in practice, 2.3e-5 at worst (k · ε).
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got.y[i]! - expected[i]!) / scale[i]!);
    assert.ok(worst < 2e-6, `LITLORA_MKL_VENDOR_CHECK=${setting ?? '(unset)'}: worst error ${worst} of Σ|x·w|`);
  }
});

test.run();

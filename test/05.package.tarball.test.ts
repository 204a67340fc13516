// The package as a user gets it: `npm pack` (its prepack makes dist/ and the prebuild), install the tarball
// into an empty folder (dependencies from npm's cache where it has them), and run a script from there that imports 'litlora' and computes.
// The prebuild finds its libtorch through libtorch/ next to it, linked to the per-user cache on first use, which
// fetches it there (LITLORA_LIBTORCH_URL: the local torch wheel): no compiler and no build are involved.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { assertClose } from './helpers/assert.js';
import { toolPath } from './helpers/tool_path.js';
import { localTorchWheel } from './helpers/torch_wheel.js';

const work = mkdtempSync(join(tmpdir(), 'litlora-tarball-'));
const consumer = join(work, 'consumer');
const platformDir = `${process.platform}-${process.arch}`;
let tarball = '';

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env, maxBuffer: 16 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

test.after(() => rmSync(work, { recursive: true, force: true }));

test('npm pack ships dist/, the prebuild with its record, and the sources for `npx litlora build`', () => {
  const r = run('npm', ['pack', '--json', '--pack-destination', work], packageRoot);
  assert.is(r.status, 0, `npm pack failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  tarball = join(work, info.filename);
  const files = new Set<string>(info.files.map((f: { path: string }) => f.path));
  for (const f of ['package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/binding.js', `prebuilds/${platformDir}/litlora.node`,
    `prebuilds/${platformDir}/litlora-build.json`, 'CMakeLists.txt', 'native/addon.cc', 'scripts/setup.mjs', 'scripts/setup-error.mjs',
    'scripts/libtorch-fetch.mjs', 'scripts/toolchain.mjs', 'scripts/elf-runpath.mjs']) {
    assert.ok(files.has(f), `the tarball lacks ${f}`);
  }
  for (const f of files) assert.not.match(f, /^(test|ts|build|bench|node_modules|\.venv)\//, `the tarball should not ship ${f}`);
});

test('installed offline into an empty folder, with no compiler on PATH, `import "litlora"` fetches the prebuild\'s libtorch into the cache, loads the prebuild and computes', () => {
  assert.ok(tarball, 'npm pack did not run');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  // The runtime dependencies come from npm's cache where it has them. Not --offline: an install from the
  // project's lockfile caches the dependencies' tarballs but not their registry metadata, which resolving the
  // tarball's version ranges needs, so on a fresh machine --offline fails for reasons that are not litlora's.
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], consumer);
  assert.is(install.status, 0, `npm install failed:\n${install.stderr}`);
  assert.ok(existsSync(join(consumer, 'node_modules', 'litlora', 'prebuilds', platformDir, 'litlora.node')));
  assert.not.ok(existsSync(join(consumer, 'node_modules', 'litlora', 'build')), 'an install must not carry a build/ folder');

  writeFileSync(join(consumer, 'check.mjs'), `
    import * as litlora from 'litlora';
    const { Tensor, buildInfo } = litlora;
    const t = Tensor.from(new Float32Array([1.5, -2, 3.25, 0, 7, -0.125]), [2, 3]);
    const bf = await t.to({ dtype: 'bfloat16' });
    const result = { info: buildInfo(), roundTrip: Array.from(await t.data()), bf16: Array.from(await bf.data()),
      shape: bf.shape, dtype: bf.dtype, forward: null };
    if (typeof litlora.lora?.forward === 'function') {
      const f = (values, shape) => Tensor.from(new Float32Array(values), shape);
      const x = f([0.5, -1, 2, 1.5, 0.25, -0.75], [2, 3]);
      const w = f([1, 0, -1, 0.5, 2, 0.25, -0.5, 1, 1.5, 0, 0.75, -2], [4, 3]);
      const a = f([0.1, 0.2, -0.3, 0.4, -0.5, 0.6], [2, 3]);
      const b = f([1, -1, 0.5, 2, -0.25, 0.75, 1.5, -2], [4, 2]);
      const bias = f([0.1, -0.2, 0.3, -0.4], [4]);
      const y = await litlora.lora.forward(x, w, a, b, { bias, scaling: 0.5 });
      result.forward = { shape: y.shape, values: Array.from(await y.data()) };
    }
    console.log(JSON.stringify(result));
  `);
  const prebuildDir = join(consumer, 'node_modules', 'litlora', 'prebuilds', platformDir);
  // The prebuild carries no trace of the libtorch it was built against here: it needs one of its version and variant.
  const elf = run('readelf', ['-d', join(prebuildDir, 'litlora.node')], consumer);
  assert.match(elf.stdout, /\(RUNPATH\)\s+Library runpath: \[\$ORIGIN\/libtorch\/lib\]\n/);
  const record = JSON.parse(readFileSync(join(prebuildDir, 'litlora-build.json'), 'utf8'));
  assert.equal([record.torchRoot, record.libtorch], ['libtorch', { version: '2.13.0', variant: 'cpu' }]);

  const cache = join(work, 'cache');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: toolPath(join(work, 'bin'), ['node']), LITLORA_CACHE: cache,
    LITLORA_LIBTORCH_URL: `file://${localTorchWheel()}`, LITLORA_PROBE_CACHE: join(work, 'probe-cache') };
  delete env.LITLORA_ADDON;
  delete env.LIBTORCH;
  const r = run(process.execPath, ['check.mjs'], consumer, env);
  assert.is(r.status, 0, `the consumer script failed:\n${r.stderr}`);
  assert.ok(r.stderr.includes('litlora: fetching libtorch 2.13.0 (cpu) for the prebuilt addon (once per machine)'), r.stderr);
  assert.is(readlinkSync(join(prebuildDir, 'libtorch')), join(cache, 'libtorch', '2.13.0-cpu'));
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(out.info.addon, join(prebuildDir, 'litlora.node'));
  assert.equal(out.roundTrip, [1.5, -2, 3.25, 0, 7, -0.125]);
  assert.equal(out.shape, [2, 3]);
  assert.is(out.dtype, 'bfloat16');
  assert.equal(out.bf16, [1.5, -2, 3.25, 0, 7, -0.125]); // all exactly representable in bf16
  // The installed package must have run a real LoRA forward, not skipped it.
  assert.ok(out.forward !== null, 'lora.forward ran in the installed package');
  if (out.forward) {
    // y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ in float64
    const x = [[0.5, -1, 2], [1.5, 0.25, -0.75]];
    const w = [[1, 0, -1], [0.5, 2, 0.25], [-0.5, 1, 1.5], [0, 0.75, -2]];
    const a = [[0.1, 0.2, -0.3], [0.4, -0.5, 0.6]];
    const b = [[1, -1], [0.5, 2], [-0.25, 0.75], [1.5, -2]];
    const bias = [0.1, -0.2, 0.3, -0.4];
    const dot = (u: number[], v: number[]) => u.reduce((s, ui, i) => s + ui * v[i], 0);
    const expected = x.flatMap((xi) => {
      const xa = a.map((ar) => dot(xi, ar));
      return w.map((wr, o) => dot(xi, wr) + bias[o] + 0.5 * dot(xa, b[o]));
    });
    assert.equal(out.forward.shape, [2, 4]);
    assertClose(out.forward.values, expected, { rtol: 1e-5, atol: 1e-5, what: 'installed lora.forward' });
  }

  // Once fetched, the libtorch is used from the cache.
  const again = run(process.execPath, ['check.mjs'], consumer, env);
  assert.is(again.status, 0, again.stderr);
  assert.not.match(again.stderr, /fetching/);
  assert.equal(JSON.parse(again.stdout.trim().split('\n').pop()!).roundTrip, [1.5, -2, 3.25, 0, 7, -0.125]);
});

test.run();

// What a build needs, said before anything is built or downloaded: with cmake, a compiler or make missing from
// PATH (or too old), setup and `litlora build` stop with ERR_TOOLCHAIN naming each missing tool and the package to
// install on Debian/Ubuntu, Fedora and macOS, not a raw ENOENT; `litlora doctor` prints what it found (Node, the
// tools, libtorch, the cache, CUDA, the addon) and what is missing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { cliProcessArgs } from './helpers/cli_process.js';
import { tempFolders } from './helpers/temp.js';
import { toolPath } from './helpers/tool_path.js';

const folders = tempFolders();
test.after(() => folders.removeAll());

const addon = join(packageRoot, 'build', 'Release', 'litlora.node');

function run(args: string[], env: Record<string, string>) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ['CXX', 'LITLORA_CUDA', 'LIBTORCH', 'LITLORA_ADDON', 'LITLORA_LIBTORCH_URL', 'LITLORA_CACHE']) if (!(k in env)) delete childEnv[k];
  const r = spawnSync(process.execPath, args, { cwd: packageRoot, env: childEnv, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

const INSTALL_LINES = ['`sudo apt-get install cmake`', '`sudo dnf install cmake`', '`brew install cmake`',
  '`sudo apt-get install g++`', '`sudo dnf install gcc-c++`', '`xcode-select --install`', '`sudo apt-get install make`'];

test('`litlora build` with no cmake, compiler or make on PATH: ERR_TOOLCHAIN naming each, with the packages to install; nothing is touched', () => {
  const before = statSync(addon).mtimeMs;
  const path = toolPath(join(folders.make('tools-none'), 'bin'), ['node']);
  const r = run(cliProcessArgs(['build']), { PATH: path });
  assert.is(r.status, 1, r.stderr);
  assert.ok(r.stderr.startsWith('litlora build: error [ERR_TOOLCHAIN]: building litlora\'s native addon needs tools this machine lacks:\n'), r.stderr);
  assert.ok(r.stderr.includes('  - cmake (3.18 or newer) is not on PATH. Install it: Debian/Ubuntu: `sudo apt-get install cmake`'), r.stderr);
  assert.ok(r.stderr.includes('  - no C++ compiler is on PATH (looked for c++, g++, clang++). Install one: Debian/Ubuntu: `sudo apt-get install g++`'), r.stderr);
  assert.ok(r.stderr.includes('  - neither make nor ninja is on PATH.'), r.stderr);
  for (const line of INSTALL_LINES) assert.ok(r.stderr.includes(line), `names ${line}: ${r.stderr}`);
  assert.not.match(r.stderr, /ENOENT|spawnSync/);
  assert.is(statSync(addon).mtimeMs, before, 'the existing build is untouched');
});

test('setup with a too-old compiler and cmake: ERR_TOOLCHAIN says which versions are there and which are needed', () => {
  const path = toolPath(join(folders.make('tools-old'), 'bin'), ['node', 'make'], {
    'c++': 'echo "c++ (GCC) 7.5.0"',
    cmake: 'echo "cmake version 3.10.2"',
  });
  const r = run([join(packageRoot, 'scripts', 'setup.mjs'), '--build'], { PATH: path });
  assert.is(r.status, 1, r.stderr);
  assert.ok(r.stderr.startsWith('litlora setup: error [ERR_TOOLCHAIN]: '), r.stderr);
  assert.ok(r.stderr.includes(`  - cmake 3.10.2 (${path}/cmake) is too old: litlora needs 3.18 or newer.`), r.stderr);
  assert.ok(r.stderr.includes(`  - the C++ compiler ${path}/c++ is gcc 7.5.0, too old for C++20: litlora needs gcc 10 or newer.`), r.stderr);
  assert.not.match(r.stderr, /make nor ninja/, 'make is there');

  // CXX names the compiler CMake will use: that one is checked.
  const clang = run([join(packageRoot, 'scripts', 'setup.mjs'), '--build'], { PATH: path, CXX: 'clang++' });
  assert.is(clang.status, 1);
  assert.ok(clang.stderr.includes('no C++ compiler is on PATH (looked for CXX=clang++)'), clang.stderr);
});

test('`litlora doctor` with the tools hidden: what it found, the missing tools (needed only to build), exit 0 as the addon loads', () => {
  const dir = folders.make('doctor');
  const path = toolPath(join(dir, 'bin'), ['node']);
  const cache = join(dir, 'cache');
  mkdirSync(join(cache, 'libtorch', '2.13.0-cpu'), { recursive: true });
  mkdirSync(join(cache, 'libtorch', '.2.13.0.partial-is-hidden'), { recursive: true });
  const r = run(cliProcessArgs(['doctor']), { PATH: path, LITLORA_CACHE: cache, LITLORA_CUDA: '12.8' });
  assert.is(r.status, 0, r.stderr + r.stdout);
  const env = JSON.parse(readFileSync(join(packageRoot, 'build', 'litlora-env.json'), 'utf8'));
  const lines = r.stdout.split('\n');
  assert.is(lines[0], 'litlora doctor');
  assert.is(lines[1], `  node      ${process.version} (${process.platform}-${process.arch}, ${process.execPath})`);
  assert.equal(lines.slice(2, 5), ['  compiler  missing', '  cmake     missing', '  make      missing']);
  assert.ok(lines[5]!.startsWith(`  libtorch  ${env.version} from `) && lines[5]!.endsWith(' (the local build)'), lines[5]);
  assert.is(lines[6], `  cache     ${cache}/libtorch: 2.13.0-cpu`);
  assert.is(lines[7], '  CUDA      cu128 (LITLORA_CUDA=12.8); a download fetches libtorch 2.13.0-cu128 from ' +
    'https://download.pytorch.org/libtorch/cu128/libtorch-shared-with-deps-2.13.0%2Bcu128.zip');
  assert.match(lines[8]!, new RegExp(`^  addon     loads: ${addon.replace(/[.]/g, '\\.')} \\(Torch 2\\.13\\.0, (CPU|CUDA, \\d+ device\\(s\\))\\)$`));
  assert.match(lines[9]!, /^  MKL       (its kernels chosen by CPU features \(the addon answers MKL's vendor check; LITLORA_MKL_VENDOR_CHECK=1 keeps MKL's answer\)|its own vendor check \(LITLORA_MKL_VENDOR_CHECK=1, or no AVX2\/FMA\))$/);
  assert.is(lines[10], 'Missing:');
  const missing = lines.slice(11).filter(Boolean);
  assert.is(missing.length, 3, r.stdout);
  assert.ok(missing[0]!.startsWith('  - cmake (3.18 or newer) is not on PATH. Install it: Debian/Ubuntu: `sudo apt-get install cmake`'), missing[0]);
  for (const m of missing) assert.ok(m.endsWith('(needed only to build from source: `npx litlora build`)'), m);
});

test('`litlora doctor` on this machine: nothing missing; a LITLORA_CUDA no build matches is reported', () => {
  const all = run(cliProcessArgs(['doctor']), { LITLORA_CACHE: folders.make('doctor-all') });
  assert.is(all.status, 0, all.stderr);
  assert.match(all.stdout, /\n  compiler  (gcc|clang|Apple clang) \d+\.\d+/);
  assert.match(all.stdout, /\n  cmake     \d+\.\d+\.\d+ \(/);
  assert.match(all.stdout, /\n  cache     .*: empty\n/);
  assert.match(all.stdout, /\n  CUDA      (none|cu\d+) \(.+\); a download fetches libtorch 2\.13\.0-(cpu|cu\d+) from https:\/\/download\.pytorch\.org\/(whl\/cpu\/torch\/|libtorch\/cu)/);
  assert.ok(all.stdout.endsWith('Nothing is missing.\n'), all.stdout);

  const bad = run(cliProcessArgs(['doctor']), { LITLORA_CUDA: '11.2' });
  assert.is(bad.status, 0);
  assert.match(bad.stdout, /\n  CUDA      unusable setting: LITLORA_CUDA=11\.2 names no libtorch 2\.13\.0 build: PyTorch publishes CPU and CUDA 13\.0, 12\.8, 12\.6\./);
  assert.match(bad.stdout, /Missing:\n  - LITLORA_CUDA=11\.2 names no libtorch/);
});

test.run();

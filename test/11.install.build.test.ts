// Install with no Python: a copy of a fresh clone (package.json, CMakeLists.txt, native/, scripts/, ts/, the
// tsconfigs, a test/ folder; no build/, no dist/, no .venv) runs setup with python3 absent from PATH (only node and the build tools on it), a fresh
// libtorch cache and LITLORA_LIBTORCH_URL at a package index on 127.0.0.1 that serves the local torch wheel with
// its sha256. Setup downloads, verifies and unpacks libtorch, builds against it (in the copy: the main build is
// untouched), and the op and model tests pass against that build; a second setup downloads and builds nothing.
// This is the suite's one native build from scratch (minutes; ccache, when CMAKE_CXX_COMPILER_LAUNCHER names it,
// gets hits across runs since paths are taken relative to the copy).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, createReadStream, existsSync, mkdirSync, readFileSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { archiveServer, simpleIndex, type ArchiveServer } from './helpers/archive_server.js';
import { tempFolders } from './helpers/temp.js';
import { toolPath } from './helpers/tool_path.js';
import { localTorchWheel } from './helpers/torch_wheel.js';

const folders = tempFolders();
let server: ArchiveServer;
test.before(async () => { server = await archiveServer(); });
test.after(async () => {
  await server.close();
  folders.removeAll();
});

// What a native build needs, and nothing else: no python3.
const BUILD_TOOLS = ['node', 'cmake', 'c++', 'g++', 'gcc', 'cc', 'make', 'ninja', 'ccache', 'as', 'ld', 'ld.bfd', 'ld.gold',
  'ar', 'ranlib', 'strip', 'nm', 'sh', 'uname'];

interface Run { status: number | null; stdout: string; stderr: string }
function runChild(args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const keep = (names: string[]) => Object.fromEntries(names.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));

test('no Python on PATH: setup downloads, verifies, unpacks and builds against libtorch; op and model tests pass on that build; a second setup uses the cache', async () => {
  const work = folders.make('install-build');
  const pkg = join(work, 'pkg');
  mkdirSync(pkg);
  for (const f of ['package.json', 'CMakeLists.txt', 'native', 'scripts', 'ts', 'tsconfig.json', 'tsconfig.build.json']) {
    cpSync(join(packageRoot, f), join(pkg, f), { recursive: true });
  }
  mkdirSync(join(pkg, 'test')); // a checkout: setup would prepare the reference Python, if there were a python3
  symlinkSync(realpathSync(join(packageRoot, 'node_modules')), join(pkg, 'node_modules'));
  const cache = join(work, 'cache');
  const bin = toolPath(join(work, 'bin'), BUILD_TOOLS);
  assert.not.ok(existsSync(join(bin, 'python3')) || existsSync(join(bin, 'python')));

  const wheel = localTorchWheel();
  const name = wheel.split('/').pop()!;
  const hash = createHash('sha256');
  await pipeline(createReadStream(wheel), hash);
  const digest = hash.digest('hex');
  server.put('/whl/cpu/torch/', simpleIndex({ [name]: digest }, '../../'));
  server.put(`/whl/${name}`, { file: wheel });

  // A clean environment: nothing of this machine's Python or libtorch settings leaks in.
  const env: NodeJS.ProcessEnv = {
    ...keep(['HOME', 'TMPDIR', 'LANG', 'CCACHE_DIR', 'CMAKE_CXX_COMPILER_LAUNCHER', 'CMAKE_BUILD_PARALLEL_LEVEL']),
    PATH: bin, LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/whl/cpu/torch/`, CCACHE_BASEDIR: work,
  };
  const setup = await runChild([join(pkg, 'scripts', 'setup.mjs')], pkg, env, 40 * 60_000);
  assert.is(setup.status, 0, `setup failed:\n${setup.stderr.slice(-4000)}`);
  const libtorch = join(cache, 'libtorch', '2.13.0-cpu');
  assert.match(setup.stderr, /no LIBTORCH and no Python PyTorch found: using PyTorch's prebuilt libtorch 2\.13\.0 \(cpu: no NVIDIA driver found/);
  assert.ok(setup.stderr.includes(`downloading ${server.base}/whl/${encodeURIComponent(name)}`), setup.stderr);
  assert.match(setup.stderr, /no python3 on PATH: the reference tests \(which compare against PyTorch\) will not run; the addon is built all the same/);
  assert.ok(existsSync(join(pkg, 'dist', 'cli', 'main.js')), 'the TypeScript was compiled');
  assert.equal(server.log.map((r) => [r.request, r.status]), [['/whl/cpu/torch/', 200], [`/whl/${name}`, 200]]);
  assert.is(server.log[1]!.bytes, statSync(wheel).size);

  const record = JSON.parse(readFileSync(join(libtorch, '.litlora-libtorch.json'), 'utf8'));
  assert.equal([record.version, record.sha256, record.verified], ['2.13.0+cpu', digest, true]);
  const setupEnv = JSON.parse(readFileSync(join(pkg, 'build', 'litlora-env.json'), 'utf8'));
  assert.equal([setupEnv.version, setupEnv.torchSource, setupEnv.python, setupEnv.cmake],
    ['2.13.0+cpu', `cache ${libtorch}`, null, join(libtorch, 'share', 'cmake')]);
  const built = JSON.parse(readFileSync(join(pkg, 'build', 'litlora-build.json'), 'utf8'));
  assert.equal([built.torchVersion, built.torchRoot], ['2.13.0', realpathSync(libtorch)]);
  const addon = join(pkg, 'build', 'Release', 'litlora.node');

  // The op and model tests of this checkout, loading the new build (LITLORA_ADDON), with no python3 on PATH.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const testEnv: NodeJS.ProcessEnv = { ...process.env, PATH: bin, LITLORA_ADDON: addon, NO_COLOR: '1' };
  const which = await runChild(['--import', tsx, '--input-type=module', '-e', `
    const { buildInfo } = await import(${JSON.stringify(pathToFileURL(join(packageRoot, 'ts', 'index.ts')).href)});
    const info = buildInfo();
    const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
    const libs = [...new Set(maps.split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /libtorch_cpu\\.so/.test(p)))];
    console.log(JSON.stringify({ addon: info.addon, libs }));`], packageRoot, testEnv, 120_000);
  assert.is(which.status, 0, which.stderr);
  assert.equal(JSON.parse(which.stdout.trim().split('\n').pop()!), { addon, libs: [join(realpathSync(libtorch), 'lib', 'libtorch_cpu.so')] },
    'the tests below run the new build, on the downloaded libtorch');
  const uvu = join(packageRoot, 'node_modules', 'uvu', 'bin.js');
  const tests = await runChild([uvu, '-r', 'tsx', 'test', '01\\.tensor\\.basics|02\\.lora\\.ops|06\\.model\\.contract'], packageRoot, testEnv, 20 * 60_000);
  const total = Number(/Total:\s+(\d+)/.exec(tests.stdout)?.[1]);
  const passed = Number(/Passed:\s+(\d+)/.exec(tests.stdout)?.[1]);
  assert.is(tests.status, 0, `the op and model tests failed against the new build:\n${tests.stdout.slice(-4000)}\n${tests.stderr.slice(-2000)}`);
  assert.ok(total >= 20 && passed === total, `${passed} of ${total} passed`);

  // Again: the cached libtorch and the current build are used as they are.
  const before = server.log.length;
  const addonTime = statSync(addon).mtimeMs;
  const again = await runChild([join(pkg, 'scripts', 'setup.mjs')], pkg, env, 10 * 60_000);
  assert.is(again.status, 0, again.stderr);
  assert.is(server.log.length, before, 'no request: the libtorch comes from the cache');
  assert.not.match(again.stderr, /downloading|building the native addon/);
  assert.is(statSync(addon).mtimeMs, addonTime, 'nothing was rebuilt');
});

test.run();

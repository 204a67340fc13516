// Fetching PyTorch's prebuilt libtorch into the per-user cache (scripts/libtorch-fetch.mjs, which setup and the
// prebuild loader run): from a package index with #sha256= links (a torch wheel) or an archive address (a libtorch
// zip), served on 127.0.0.1. Only lib/, include/, share/ and the version are kept; a second run downloads
// nothing; an interrupted download resumes with HTTP Range; a wrong digest or a damaged archive is refused with
// a coded error and leaves the cache as it was. The archives are small ones made here (a real one is fetched
// and built against in test/11.install.build.test.ts).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';
import { archiveServer, simpleIndex, type ArchiveServer } from './helpers/archive_server.js';
import { tempFolders } from './helpers/temp.js';
import { makeZip, type ZipEntry } from './helpers/zip.js';

const folders = tempFolders();
let server: ArchiveServer;
test.before(async () => { server = await archiveServer(); });
test.after(async () => {
  await server.close();
  folders.removeAll();
});

const WHEEL = 'torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl';
const LIB = randomBytes(100_000); // incompressible: the archive is 100 kB, so that a download can be cut halfway

// A torch wheel's shape: libtorch under torch/, next to the Python package litlora leaves out.
function fakeWheel(version = '2.13.0+cpu'): Buffer {
  return makeZip([
    { name: 'torch/__init__.py', data: 'import torch._C\n' },
    { name: 'torch/version.py', data: `__version__ = '${version}'\ndebug = False\n` },
    { name: 'torch/lib/', data: '' },
    { name: 'torch/lib/libtorch_cpu.so', data: LIB, mode: 0o755 },
    { name: 'torch/lib/libc10.so', data: 'c10', mode: 0o755 },
    { name: 'torch/include/torch/torch.h', data: '#pragma once\n' },
    { name: 'torch/share/cmake/Torch/TorchConfig.cmake', data: 'set(TORCH_FOUND TRUE)\n' },
    { name: 'torch/bin/torch_shm_manager', data: 'bin', mode: 0o755 },
    { name: 'torchgen/model.py', data: 'x = 1\n' },
    { name: 'torch-2.13.0+cpu.dist-info/RECORD', data: 'torch/__init__.py,,\n' },
  ]);
}

// PyTorch's libtorch zip's shape: one libtorch/ folder, with build-version and a versioned library behind a link.
function fakeLibtorchZip(): Buffer {
  const entries: ZipEntry[] = [
    { name: 'libtorch/build-version', data: '2.13.0+cpu\n' },
    { name: 'libtorch/build-hash', data: 'abc\n' },
    { name: 'libtorch/lib/libtorch_cpu.so', data: LIB, mode: 0o755 },
    { name: 'libtorch/lib/libgomp-a34b3233.so.1', data: 'gomp', mode: 0o755 },
    { name: 'libtorch/lib/libgomp.so', symlink: 'libgomp-a34b3233.so.1' },
    { name: 'libtorch/include/torch/torch.h', data: '#pragma once\n' },
    { name: 'libtorch/share/cmake/Torch/TorchConfig.cmake', data: 'set(TORCH_FOUND TRUE)\n' },
  ];
  return makeZip(entries);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Run { status: number | null; stdout: string; stderr: string }

// `node scripts/libtorch-fetch.mjs --variant cpu` in a child (asynchronously: this process serves its downloads).
function fetchLibtorch(env: Record<string, string>): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ['LITLORA_LIBTORCH_URL', 'LITLORA_LIBTORCH_SHA256', 'LITLORA_CUDA']) if (!(k in env)) delete childEnv[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(packageRoot, 'scripts', 'libtorch-fetch.mjs'), '--variant', 'cpu'],
      { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

// Every file under `dir` (links as `-> target`), relative, sorted.
function tree(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${relative(dir, p)} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) visit(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) visit(dir);
  return out.sort();
}

const requests = (path: string) => server.log.filter((r) => r.request === path);

test('from a package index: the wheel its #sha256= link names is verified, only libtorch is unpacked, and a second run downloads nothing', async () => {
  const cache = folders.make('fetch-index');
  const wheel = fakeWheel();
  server.put('/a/whl/cpu/torch/', simpleIndex({ [WHEEL]: sha256(wheel), 'torch-2.13.0+cpu-cp311-cp311-win_amd64.whl': null }, '../../'));
  server.put(`/a/whl/${WHEEL}`, wheel);
  const env = { LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/a/whl/cpu/torch/` };

  const first = await fetchLibtorch(env);
  assert.is(first.status, 0, first.stderr);
  const dir = join(cache, 'libtorch', '2.13.0-cpu');
  assert.equal(tree(join(cache, 'libtorch')), ['2.13.0-cpu/.litlora-libtorch.json', '2.13.0-cpu/build-version',
    '2.13.0-cpu/include/torch/torch.h', '2.13.0-cpu/lib/libc10.so', '2.13.0-cpu/lib/libtorch_cpu.so',
    '2.13.0-cpu/share/cmake/Torch/TorchConfig.cmake'], 'nothing but libtorch, and no partial or temporary file');
  assert.ok(readFileSync(join(dir, 'lib', 'libtorch_cpu.so')).equals(LIB));
  assert.is(statSync(join(dir, 'lib', 'libtorch_cpu.so')).mode & 0o777, 0o755);
  assert.is(readFileSync(join(dir, 'build-version'), 'utf8'), '2.13.0+cpu\n');
  const record = JSON.parse(readFileSync(join(dir, '.litlora-libtorch.json'), 'utf8'));
  assert.equal(record, { version: '2.13.0+cpu', variant: 'cpu', cuda: null, url: `${server.base}/a/whl/${encodeURIComponent(WHEEL)}`,
    sha256: sha256(wheel), verified: true });
  assert.equal(JSON.parse(first.stdout.trim()), { ...record, root: dir, downloaded: true });
  assert.equal(requests('/a/whl/cpu/torch/').length, 1);
  assert.equal(requests(`/a/whl/${WHEEL}`).map((r) => [r.status, r.bytes]), [[200, wheel.length]]);

  const before = server.log.length;
  const second = await fetchLibtorch(env);
  assert.is(second.status, 0, second.stderr);
  assert.is(server.log.length, before, 'the cached libtorch is used: no request at all');
  assert.is(JSON.parse(second.stdout.trim()).downloaded, false);
});

test('an archive address (a libtorch zip) with LITLORA_LIBTORCH_SHA256: its libtorch/ folder is unpacked, links included', async () => {
  const cache = folders.make('fetch-zip');
  const zip = fakeLibtorchZip();
  server.put('/b/libtorch-shared-with-deps-2.13.0+cpu.zip', zip);
  const r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/b/libtorch-shared-with-deps-2.13.0%2Bcpu.zip`,
    LITLORA_LIBTORCH_SHA256: sha256(zip).toUpperCase() });
  assert.is(r.status, 0, r.stderr);
  assert.equal(tree(join(cache, 'libtorch', '2.13.0-cpu')), ['.litlora-libtorch.json', 'build-version', 'include/torch/torch.h',
    'lib/libgomp-a34b3233.so.1', 'lib/libgomp.so -> libgomp-a34b3233.so.1', 'lib/libtorch_cpu.so', 'share/cmake/Torch/TorchConfig.cmake']);
  assert.is(JSON.parse(r.stdout.trim()).verified, true);
});

test('an interrupted download resumes where it stopped (HTTP Range into the hidden partial file)', async () => {
  const cache = folders.make('fetch-resume');
  const wheel = fakeWheel();
  const path = `/c/${WHEEL}`;
  server.put('/c/index/', simpleIndex({ [WHEEL]: sha256(wheel) }, `/c/`));
  server.put(path, wheel);
  const cut = Math.floor(wheel.length / 2);
  server.cutNext(path, cut);
  const env = { LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/c/index/` };

  const first = await fetchLibtorch(env);
  assert.is(first.status, 1, 'the interrupted download fails');
  assert.match(first.stderr, /litlora setup: error \[ERR_LIBTORCH_DOWNLOAD\]: the download of .* stopped after .*run setup again to resume it/);
  const parent = join(cache, 'libtorch');
  const partials = readdirSync(parent);
  assert.is(partials.length, 1, `only the partial file: ${partials.join(', ')}`);
  assert.match(partials[0]!, new RegExp(`^\\.${WHEEL.replace(/[.+]/g, '\\$&')}\\.[0-9a-f]{16}\\.partial$`));
  assert.is(statSync(join(parent, partials[0]!)).size, cut);

  const second = await fetchLibtorch(env);
  assert.is(second.status, 0, second.stderr);
  assert.equal(requests(path).map((r) => [r.range, r.status, r.bytes]), [[null, 200, cut], [`bytes=${cut}-`, 206, wheel.length - cut]],
    'the second request asks for the rest only');
  assert.ok(readFileSync(join(parent, '2.13.0-cpu', 'lib', 'libtorch_cpu.so')).equals(LIB));
  assert.equal(readdirSync(parent), ['2.13.0-cpu'], 'the partial file is gone');
});

test('a server that ignores Range: the partial file is started over, not appended to', async () => {
  const cache = folders.make('fetch-norange');
  const wheel = fakeWheel();
  server.put('/d/index/', simpleIndex({ [WHEEL]: sha256(wheel) }, '/d/'));
  server.put(`/d/${WHEEL}`, wheel);
  server.cutNext(`/d/${WHEEL}`, 1000);
  const env = { LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/d/index/` };
  assert.is((await fetchLibtorch(env)).status, 1);
  server.ranges = false;
  try {
    const r = await fetchLibtorch(env);
    assert.is(r.status, 0, r.stderr);
  } finally {
    server.ranges = true;
  }
  assert.equal(requests(`/d/${WHEEL}`).map((r) => [r.range, r.status]), [[null, 200], ['bytes=1000-', 200]]);
  assert.ok(readFileSync(join(cache, 'libtorch', '2.13.0-cpu', 'lib', 'libtorch_cpu.so')).equals(LIB));
});

test('a wrong sha256 is refused with ERR_LIBTORCH_INTEGRITY; nothing enters the cache and the bad download is deleted', async () => {
  const cache = folders.make('fetch-badsha');
  const wheel = fakeWheel();
  const wrong = sha256(Buffer.from('another file'));
  server.put('/e/index/', simpleIndex({ [WHEEL]: wrong }, '/e/'));
  server.put(`/e/${WHEEL}`, wheel);
  const r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/e/index/` });
  assert.is(r.status, 1);
  assert.ok(r.stderr.includes(`litlora setup: error [ERR_LIBTORCH_INTEGRITY]: the libtorch archive from ${server.base}/e/`), r.stderr);
  assert.ok(r.stderr.includes(`has sha256 ${sha256(wheel)}, but ${wrong} was expected`), r.stderr);
  assert.match(r.stderr, /was deleted; run setup again to download it anew/);
  assert.equal(readdirSync(join(cache, 'libtorch')), [], 'no libtorch, no partial file, no temporary folder');
});

test('a damaged archive (an entry failing its CRC-32) is refused with ERR_LIBTORCH_INTEGRITY and leaves no libtorch behind', async () => {
  const cache = folders.make('fetch-crc');
  const zip = makeZip([
    { name: 'libtorch/share/cmake/Torch/TorchConfig.cmake', data: 'set(TORCH_FOUND TRUE)\n' },
    { name: 'libtorch/lib/libc10.so', data: 'c10 c10 c10 c10' },
  ]);
  // 'c10 c10 c10 c10' is stored deflated; flip the stored CRC of its local and central headers instead.
  const damaged = Buffer.from(zip);
  const name = Buffer.from('libtorch/lib/libc10.so');
  for (let at = damaged.indexOf(name); at >= 0; at = damaged.indexOf(name, at + 1)) {
    const header = damaged.readUInt32LE(at - 30) === 0x04034b50 ? at - 30 : at - 46;
    const crcAt = header + (damaged.readUInt32LE(header) === 0x04034b50 ? 14 : 16);
    damaged.writeUInt32LE((damaged.readUInt32LE(crcAt) ^ 1) >>> 0, crcAt);
  }
  writeFileSync(join(cache, 'damaged.zip'), damaged);
  const r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `file://${join(cache, 'damaged.zip')}` });
  assert.is(r.status, 1);
  assert.match(r.stderr, /litlora setup: error \[ERR_LIBTORCH_INTEGRITY\]: libtorch\/lib\/libc10\.so in .*damaged\.zip fails its CRC-32 check/);
  assert.match(r.stderr, /comes with no sha256 to check it against/, 'an unverified archive is said to be so');
  assert.equal(readdirSync(join(cache, 'libtorch')), []);
  assert.ok(existsSync(join(cache, 'damaged.zip')), 'a local archive (file://) is never deleted');
});

test('a wheel of another version, or an index without this platform\'s wheel, is refused with a coded error', async () => {
  const cache = folders.make('fetch-version');
  const old = fakeWheel('2.11.0+cpu');
  server.put('/f/torch-2.13.0+cpu.whl', old);
  let r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/f/torch-2.13.0%2Bcpu.whl#sha256=${sha256(old)}` });
  assert.is(r.status, 1);
  assert.match(r.stderr, /error \[ERR_LIBTORCH_INTEGRITY\]: the archive from .* holds libtorch 2\.11\.0\+cpu, not 2\.13\.0/);
  assert.equal(readdirSync(join(cache, 'libtorch')), []);

  server.put('/g/index/', simpleIndex({ 'torch-2.13.0+cpu-cp311-cp311-win_amd64.whl': null }, '/g/'));
  r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/g/index/` });
  assert.is(r.status, 1);
  assert.match(r.stderr, /error \[ERR_LIBTORCH_DOWNLOAD\]: the package index .* lists no torch 2\.13\.0\+cpu wheel for linux-x64 \(1 links read\)/);

  r = await fetchLibtorch({ LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: `${server.base}/nothing-here.zip` });
  assert.is(r.status, 1);
  assert.match(r.stderr, /error \[ERR_LIBTORCH_DOWNLOAD\]: downloading .*nothing-here\.zip failed: HTTP 404/);
});

test.run();

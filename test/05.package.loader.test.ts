// The loader (ts/addon_loader.ts, through ts/binding.ts) refuses a .node it cannot trust with one ERR_LOAD message, and never crashes.
// Each case lays out a throw-away copy of the package (package.json, the compiled dist/, a prebuilds/ folder)
// and loads it in a child process, so nothing here touches the real build or this process's binding.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../ts/addon_loader.js';

const builtAddon = join(packageRoot, 'build', 'Release', 'litlora.node');
const builtRecord = JSON.parse(readFileSync(join(packageRoot, 'build', 'litlora-build.json'), 'utf8'));
const platformDir = `${process.platform}-${process.arch}`;
const work = mkdtempSync(join(tmpdir(), 'litlora-loader-'));
let counter = 0;

interface Outcome { ok: boolean; code?: string; message?: string; threads?: number; addon?: string; warnings: string[] }

// A package copy whose only candidate is prebuilds/<platform>/litlora.node (written by `fill`).
function fakePackage(fill: (prebuildDir: string) => void): string {
  const dir = join(work, `pkg${counter++}`);
  mkdirSync(join(dir, 'prebuilds', platformDir), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'litlora', type: 'module' }));
  cpSync(join(packageRoot, 'dist'), join(dir, 'dist'), { recursive: true });
  fill(join(dir, 'prebuilds', platformDir));
  return dir;
}

// Loads the package copy in a child process; returns what the binding said (or the error it threw).
function loadIn(pkg: string, env: Record<string, string | undefined> = {}, cache = join(work, 'probe-cache')): Outcome {
  const script = `
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.message));
    const b = await import(${JSON.stringify(join(pkg, 'dist', 'binding.js'))});
    try {
      b.binding();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      console.log(JSON.stringify({ ok: true, threads: b.getNumThreads(), addon: b.buildInfo().addon, warnings }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code, message: e.message, warnings }));
    }`;
  const childEnv: Record<string, string | undefined> = { ...process.env, LITLORA_PROBE_CACHE: cache, ...env };
  for (const k of ['LITLORA_ADDON', 'LITLORA_THREADS']) if (!(k in env)) delete childEnv[k];
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: childEnv as NodeJS.ProcessEnv });
  assert.is(r.status, 0, `the loading process itself must not fail or crash (signal ${r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function withRecord(prebuildDir: string, record: object): void {
  copyFileSync(builtAddon, join(prebuildDir, 'litlora.node'));
  writeFileSync(join(prebuildDir, 'litlora-build.json'), JSON.stringify(record));
}

// A shared object that aborts the process while it is being loaded, as libtorch does when it meets the wrong
// libtorch during static initialisation.
const abortingAddon = join(work, 'aborting.node');
function buildAbortingAddon(): void {
  const src = join(work, 'aborting.c');
  writeFileSync(src, '#include <stdlib.h>\n__attribute__((constructor)) static void boom(void) { abort(); }\n');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-o', abortingAddon, src], { encoding: 'utf8' });
  assert.is(r.status, 0, `cc failed: ${r.stderr}`);
}

function assertRefusal(out: Outcome, pkg: string, reason: RegExp): void {
  assert.is(out.ok, false, 'the addon should have been refused');
  assert.is(out.code, 'ERR_LOAD');
  const msg = out.message!;
  // every place tried, each with its reason, and how to fix it
  assert.ok(msg.includes(`${join(pkg, 'build', 'Release', 'litlora.node')} (local build): not there`), msg);
  assert.ok(msg.includes(`${join(pkg, 'prebuilds', platformDir, 'litlora.node')} (prebuild): `), msg);
  assert.match(msg, reason);
  assert.match(msg, /npx litlora build/);
  assert.match(msg, /LIBTORCH/);
}

test.before(() => {
  const dist = join(packageRoot, 'dist', 'addon_loader.js');
  assert.ok(statSync(dist).mtimeMs >= statSync(join(packageRoot, 'ts', 'addon_loader.ts')).mtimeMs,
    'dist/ is older than ts/: run `node scripts/setup.mjs` first');
  buildAbortingAddon();
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('a good prebuild with its record loads, and reports where it came from', () => {
  const pkg = fakePackage((d) => withRecord(d, builtRecord));
  const out = loadIn(pkg);
  assert.ok(out.ok, out.message);
  assert.is(out.addon, join(pkg, 'prebuilds', platformDir, 'litlora.node'));
});

test('a record naming another libtorch version is refused before loading', () => {
  const pkg = fakePackage((d) => withRecord(d, { ...builtRecord, torchVersion: '2.1.0' }));
  const out = loadIn(pkg);
  assertRefusal(out, pkg, new RegExp(`built against libtorch 2\\.1\\.0, but ${builtRecord.torchRoot.replace(/[.+]/g, '\\$&')} now holds 2\\.\\d+`));
});

test('a record whose libtorch folder vanished is refused', () => {
  const gone = join(work, 'no-such-venv', 'torch');
  const pkg = fakePackage((d) => withRecord(d, { ...builtRecord, torchRoot: gone }));
  assertRefusal(loadIn(pkg), pkg, new RegExp(`built against the libtorch in ${gone.replace(/[.+]/g, '\\$&')}, which is gone`));
});

test('an unreadable record is refused with its path', () => {
  const pkg = fakePackage((d) => {
    copyFileSync(builtAddon, join(d, 'litlora.node'));
    writeFileSync(join(d, 'litlora-build.json'), '{ not json');
  });
  assertRefusal(loadIn(pkg), pkg, /litlora-build\.json is unreadable/);
});

test('a garbage file named litlora.node becomes the load error, not a crash', () => {
  const pkg = fakePackage((d) => writeFileSync(join(d, 'litlora.node'), 'this is not a shared object\n'));
  assertRefusal(loadIn(pkg), pkg, /prebuild\): it does not load: .*(invalid ELF header|file too short)/);
});

test('a .node that aborts the process while loading is caught by the child-process probe', () => {
  const pkg = fakePackage((d) => copyFileSync(abortingAddon, join(d, 'litlora.node')));
  assertRefusal(loadIn(pkg), pkg, /crashed that process \(SIGABRT\)/);
});

test('the probe cache cannot hide a replaced file (same path, size and mtime)', () => {
  const cache = join(work, 'cache-replaced');
  const pkg = fakePackage((d) => copyFileSync(builtAddon, join(d, 'litlora.node')));
  const file = join(pkg, 'prebuilds', platformDir, 'litlora.node');
  assert.ok(loadIn(pkg, {}, cache).ok, 'the good build loads first and is cached');
  const before = statSync(file, { bigint: true });
  const stamp = join(work, 'stamp');
  writeFileSync(stamp, '');
  assert.is(spawnSync('touch', ['-r', file, stamp]).status, 0);
  // Same size and mtime (to the nanosecond) as the probed good file, different contents: the aborting object, zero-padded.
  const bad = Buffer.alloc(Number(before.size));
  readFileSync(abortingAddon).copy(bad);
  writeFileSync(file, bad);
  assert.is(spawnSync('touch', ['-r', stamp, file]).status, 0);
  const after = statSync(file, { bigint: true });
  assert.is(after.size, before.size);
  assert.is(after.mtimeNs, before.mtimeNs);
  assert.is(after.ino, before.ino);
  assertRefusal(loadIn(pkg, {}, cache), pkg, /SIGABRT/);
});

test('LITLORA_ADDON loads that file, checking the record next to it', () => {
  const own = join(work, 'own');
  mkdirSync(own);
  copyFileSync(builtAddon, join(own, 'litlora.node'));
  const pkg = fakePackage(() => {});
  const good = loadIn(pkg, { LITLORA_ADDON: join(own, 'litlora.node') });
  assert.ok(good.ok, good.message);
  assert.is(good.addon, join(own, 'litlora.node'));
  writeFileSync(join(own, 'litlora-build.json'), JSON.stringify({ ...builtRecord, torchVersion: '2.1.0' }));
  const bad = loadIn(pkg, { LITLORA_ADDON: join(own, 'litlora.node') });
  assert.is(bad.code, 'ERR_LOAD');
  assert.match(bad.message!, /\(LITLORA_ADDON\): it was built against libtorch 2\.1\.0/);
});

// A prebuild as prebuildify writes it: its libtorch named by version and variant, found through libtorch/ next to it.
const prebuildRecord = { torchVersion: '2.13.0', torchRoot: 'libtorch', cuda: 'OFF', libtorch: { version: '2.13.0', variant: 'cpu' } };

// A package copy with a prebuild as prebuildify writes it, and the scripts an installed package has (the loader
// runs scripts/libtorch-fetch.mjs to find, or fetch, the prebuild's libtorch).
function prebuildPackage(): string {
  const pkg = fakePackage((d) => withRecord(d, prebuildRecord));
  cpSync(join(packageRoot, 'scripts'), join(pkg, 'scripts'), { recursive: true });
  symlinkSync(realpathSync(join(packageRoot, 'node_modules')), join(pkg, 'node_modules'));
  return pkg;
}

// A per-user cache holding "libtorch 2.13.0-cpu" made of this build's libtorch (its lib/ linked), at `version`.
function fakeCache(version: string): string {
  const cache = join(work, `libtorch-cache${counter++}`);
  const dir = join(cache, 'libtorch', '2.13.0-cpu');
  mkdirSync(join(dir, 'share', 'cmake', 'Torch'), { recursive: true });
  symlinkSync(join(builtRecord.torchRoot, 'lib'), join(dir, 'lib'));
  writeFileSync(join(dir, 'build-version'), `${version}\n`);
  writeFileSync(join(dir, '.litlora-libtorch.json'), JSON.stringify({ version, variant: 'cpu' }));
  return cache;
}

test('a prebuild gets libtorch/ linked to its libtorch in the per-user cache, and loads', () => {
  const pkg = prebuildPackage();
  const cache = fakeCache('2.13.0+cpu');
  const out = loadIn(pkg, { LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: 'http://127.0.0.1:9/' });
  assert.ok(out.ok, out.message);
  assert.is(readlinkSync(join(pkg, 'prebuilds', platformDir, 'libtorch')), join(cache, 'libtorch', '2.13.0-cpu'));
});

test('a prebuild whose cached libtorch has another version is refused', () => {
  const pkg = prebuildPackage();
  const out = loadIn(pkg, { LITLORA_CACHE: fakeCache('2.11.0+cpu') });
  const link = join(pkg, 'prebuilds', platformDir, 'libtorch');
  assertRefusal(out, pkg, new RegExp(`built against libtorch 2\\.13\\.0, but ${link.replace(/[.+]/g, '\\$&')} now holds 2\\.11\\.0`));
});

test('a prebuild whose libtorch is not in the cache and cannot be fetched is refused with the download\'s coded error', () => {
  const pkg = prebuildPackage();
  const cache = join(work, `empty-cache${counter++}`);
  const out = loadIn(pkg, { LITLORA_CACHE: cache, LITLORA_LIBTORCH_URL: 'http://127.0.0.1:9/' });
  assertRefusal(out, pkg, /\(prebuild\): its libtorch 2\.13\.0 \(cpu\) is not in the cache and could not be fetched: litlora setup: error \[ERR_LIBTORCH_DOWNLOAD\]: could not reach http:\/\/127\.0\.0\.1:9\//);
  assert.not.ok(existsSync(join(pkg, 'prebuilds', platformDir, 'libtorch')), 'no link to nothing');
});

test('LITLORA_THREADS sets the thread count; without it, the machine\'s cores; a bad value warns', () => {
  const pkg = fakePackage((d) => withRecord(d, builtRecord));
  assert.is(loadIn(pkg, { LITLORA_THREADS: '3' }).threads, 3);
  assert.is(loadIn(pkg, { LITLORA_THREADS: '1' }).threads, 1);
  assert.is(loadIn(pkg).threads, availableParallelism());
  const bad = loadIn(pkg, { LITLORA_THREADS: 'many' });
  assert.is(bad.threads, availableParallelism());
  assert.match(bad.warnings.join('\n'), /LITLORA_THREADS=many is not a positive integer/);
});

test.run();

#!/usr/bin/env node
// npm run prebuildify: makes prebuilds/<platform>-<arch>/litlora.node and, next to it, litlora-build.json
// (the libtorch it was built against, which ts/addon_loader.ts checks before loading it).
//
// prebuildify only knows node-gyp, so it is pointed at scripts/prebuildify-shim.mjs, which builds with
// cmake-js through scripts/setup.mjs (incremental: nothing is recompiled when build/ is current) and hands
// prebuildify a copy of build/Release/litlora.node in a staging folder. prebuildify strips that copy and
// moves it into prebuilds/, so the local build/ stays intact.
//
// The prebuild keeps its RUNPATH to the libtorch of this machine: it loads where that libtorch is (this
// machine, or one with the same layout). It is therefore not committed; `npm pack` ships it (package.json
// "files"), and anywhere else `npx litlora build` builds against the libtorch found there.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const log = (msg) => { if (!quiet) console.error(`[litlora prebuildify] ${msg}`); };

export function prebuildify() {
  const stage = join(root, 'build', 'prebuildify-stage');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  // prebuildify names the file after this package.json: litlora.node (with --napi no ABI tag).
  writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'litlora' }) + '\n');

  const bin = createRequire(join(root, 'package.json')).resolve('prebuildify/bin.js');
  const shim = join(root, 'scripts', 'prebuildify-shim.mjs');
  const r = spawnSync(process.execPath, [bin, '--napi', '--strip', `--node-gyp=${shim}`, `--out=${root}`, stage], {
    cwd: root, stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
    env: { ...process.env, LITLORA_ROOT: root, LITLORA_QUIET: quiet ? '1' : '' },
  });
  if (r.status !== 0) throw new Error(`prebuildify failed (exit ${r.status ?? r.signal})`);

  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const addon = join(dir, 'litlora.node');
  if (!existsSync(addon)) throw new Error(`prebuildify finished but ${addon} is missing`);
  copyFileSync(join(root, 'build', 'litlora-build.json'), join(dir, 'litlora-build.json'));
  rmSync(stage, { recursive: true, force: true });

  const record = JSON.parse(readFileSync(join(dir, 'litlora-build.json'), 'utf8'));
  const elf = spawnSync('readelf', ['-d', addon], { encoding: 'utf8' });
  const runpath = /\((?:RUNPATH|RPATH)\)[^[]*\[([^\]]*)\]/.exec(elf.stdout ?? '')?.[1] ?? '(readelf unavailable)';
  log(`${addon}: libtorch ${record.torchVersion}${record.cuda === 'ON' ? ' + CUDA' : ''}, RUNPATH ${runpath}`);
  return { addon, record, runpath };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    prebuildify();
  } catch (e) {
    console.error(`[litlora prebuildify] ${e.message}`);
    process.exit(1);
  }
}

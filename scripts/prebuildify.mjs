#!/usr/bin/env node
// npm run prebuildify: makes prebuilds/<platform>-<arch>/litlora.node and, next to it, litlora-build.json
// (the libtorch it needs: version and variant, which ts/addon_loader.ts fetches into the per-user cache and
// links as libtorch/ next to the .node before loading it).
//
// prebuildify only knows node-gyp, so it is pointed at scripts/prebuildify-shim.mjs, which builds with
// cmake-js through scripts/setup.mjs (incremental: nothing is recompiled when build/ is current) and hands
// prebuildify a copy of build/Release/litlora.node in a staging folder. prebuildify strips that copy and
// moves it into prebuilds/, so the local build/ stays intact.
//
// The prebuild's RUNPATH is cut down to $ORIGIN/libtorch/lib (the build's RUNPATH also names the libtorch of
// this machine, which a user's machine does not have): it loads wherever that link leads to the same libtorch
// version and variant, so `npm install litlora` needs no compiler on a machine of the same platform. It is not
// committed; `npm pack` ships it (package.json "files"). Elsewhere `npx litlora build` builds from source.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setRunpath } from './elf-runpath.mjs';

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
  rmSync(stage, { recursive: true, force: true });

  // The libtorch it needs, by version and variant (the cache's names), found through libtorch/ next to it.
  const built = JSON.parse(readFileSync(join(root, 'build', 'litlora-build.json'), 'utf8'));
  const env = JSON.parse(readFileSync(join(root, 'build', 'litlora-env.json'), 'utf8'));
  const variant = env.libtorch?.variant ?? (env.cuda ? `cu${env.cuda.replace('.', '')}` : 'cpu');
  const record = { ...built, torchRoot: 'libtorch', libtorch: { version: built.torchVersion.split('+')[0], variant } };
  writeFileSync(join(dir, 'litlora-build.json'), JSON.stringify(record, null, 2) + '\n');
  if (process.platform === 'linux') setRunpath(addon, '$ORIGIN/libtorch/lib');

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

#!/usr/bin/env node
// Runs the uvu suites under test/ (TypeScript through tsx) and ends with the line CI reads:
// `N passed, N failed`. uvu prints only Total/Passed/Skipped, so they are parsed here.
// Usage: node scripts/test.mjs [pattern]   (pattern: a regex on test file names, as uvu takes it)
// Without a pattern it first typechecks the project (strict), so a type error fails CI like a failing test.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pattern = process.argv[2] ?? '\\.test\\.ts$';

// The whole suite starts with a strict typecheck of ts/, test/ and bench/ (tsx itself does not check types).
if (process.argv[2] === undefined) {
  const tsc = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.json'), '--noEmit'], { stdio: 'inherit' });
  if (tsc.status !== 0) {
    console.log('typecheck failed (tsc -p tsconfig.json --noEmit)\n0 passed, 1 failed');
    process.exit(1);
  }
}
const child = spawn(process.execPath, [join(root, 'node_modules', 'uvu', 'bin.js'), '-r', 'tsx', 'test', pattern], {
  cwd: root, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
});
let out = '';
child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
child.stderr.on('data', (d) => process.stderr.write(d));
child.on('close', (code) => {
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    console.log('0 passed, 1 failed');
    process.exit(code || 1);
  }
  const failed = total - passed;
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? (failed ? 1 : 0));
});

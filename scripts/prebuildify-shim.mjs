#!/usr/bin/env node
// Stands in for node-gyp when prebuildify runs (scripts/prebuildify.mjs). prebuildify calls
// `<this> rebuild --target=… --devdir=… --arch=… --release` in its staging folder and then takes the first
// build/Release/*.node there. The arguments are ignored: litlora is a Node-API addon built by cmake-js
// against the libtorch that scripts/setup.mjs finds, so the shim runs setup (an incremental cmake-js build)
// and copies the result into the staging folder.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = process.env.LITLORA_ROOT;
if (!root) {
  console.error('prebuildify-shim: LITLORA_ROOT is not set; run `npm run prebuildify`, not this file');
  process.exit(2);
}
const { setup } = await import(new URL(`file://${join(root, 'scripts', 'setup.mjs')}`).href);
try {
  await setup({ quiet: process.env.LITLORA_QUIET === '1' });
} catch (e) {
  console.error(`prebuildify-shim: ${e.message}`);
  process.exit(1);
}
mkdirSync(join(process.cwd(), 'build', 'Release'), { recursive: true });
copyFileSync(join(root, 'build', 'Release', 'litlora.node'), join(process.cwd(), 'build', 'Release', 'litlora.node'));

// `litlora build`: rebuilds the native addon against the libtorch found now (scripts/setup.mjs, forced), then
// checks that the result loads. Works from a checkout and from an installed package (node_modules/litlora
// ships scripts/, native/ and CMakeLists.txt; cmake-js and node-addon-api are its dependencies).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../addon_loader.js';

import type { CommandSpec } from './args.js';

export const command: CommandSpec = {
  name: 'build',
  summary: 'Rebuild the native addon against the libtorch found now, and check that it loads.',
  description: `
Builds litlora's native addon against libtorch, found in this order: --libtorch / LIBTORCH (an unpacked
libtorch), --python / LITLORA_PYTHON (a Python with PyTorch), the package's .venv, python3 on PATH; with
none of them it downloads PyTorch's prebuilt libtorch once into ~/.cache/litlora (LITLORA_CACHE; the
address: LITLORA_LIBTORCH_URL; CUDA: LITLORA_CUDA). Needs cmake, a C++20 compiler and make or ninja
(\`litlora doctor\` says what is there). The addon finds that libtorch at run time through its RUNPATH
(no LD_LIBRARY_PATH needed).`,
  flags: [
    { name: 'libtorch', type: 'path', default: null, nullable: true, metavar: 'DIR', help: 'An unpacked libtorch (sets LIBTORCH)' },
    { name: 'python', type: 'path', default: null, nullable: true, metavar: 'PATH', help: 'A Python with PyTorch (sets LITLORA_PYTHON)' },
    { name: 'quiet', type: 'bool', default: false, help: 'Print only errors and the result' },
  ],
  async run(args, io) {
    const libtorch = args.get<string | null>('libtorch');
    const python = args.get<string | null>('python');
    if (libtorch) process.env.LIBTORCH = libtorch;
    if (python) process.env.LITLORA_PYTHON = python;
    return buildAddon(args.get<boolean>('quiet'), io);
  },
};

async function buildAddon(quiet: boolean, io: { out(t: string): void; err(t: string): void }): Promise<number> {
  const script = join(packageRoot, 'scripts', 'setup.mjs');
  if (!existsSync(script)) {
    io.err(`${script} is missing; reinstall litlora\n`);
    return 1;
  }
  const { setup } = await import(pathToFileURL(script).href);
  let env: { version: string; cuda: string | null; cmake: string };
  try {
    env = await setup({ force: true, quiet, reference: false });
  } catch (e) {
    // A coded error (a missing tool, a damaged download) goes to the CLI, which prints it with its code.
    if (typeof (e as { code?: unknown }).code === 'string' && (e as { code: string }).code.startsWith('ERR_')) throw e;
    io.err(`${(e as Error).message}\n`);
    return 1;
  }
  // Load the new build the way users will: through the loader, in a fresh process.
  const check = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(pathToFileURL(join(packageRoot, 'dist', 'index.js')).href)});` +
    'console.log(JSON.stringify(m.buildInfo()))'], { encoding: 'utf8', env: { ...process.env, LITLORA_ADDON: '' } });
  if (check.status !== 0) {
    io.err(`the build finished but does not load:\n${check.stderr.trim()}\n`);
    return 1;
  }
  const info = JSON.parse(check.stdout.trim().split('\n').pop()!);
  io.out(`${info.addon} built against Torch ${env.version}${env.cuda ? ` (CUDA ${env.cuda})` : ''}\n`);
  return 0;
}

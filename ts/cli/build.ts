// `litlora build`: rebuilds the native addon against the libtorch found now (scripts/setup.mjs, forced), then
// checks that the result loads. Works from a checkout and from an installed package (node_modules/litlora
// ships scripts/, native/ and CMakeLists.txt; cmake-js and node-addon-api are its dependencies).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../binding.js';

const USAGE = `Usage: litlora build [--libtorch DIR] [--python PATH] [--quiet]

Builds litlora's native addon against libtorch, found in this order: --libtorch / LIBTORCH (an unpacked
libtorch), --python / LITLORA_PYTHON (a Python with PyTorch), the package's .venv, python3 on PATH; with
none of them it installs PyTorch into the package's .venv. The addon finds that libtorch at run time
through its RUNPATH (no LD_LIBRARY_PATH needed).`;

export async function buildCommand(argv: string[]): Promise<number> {
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      return 0;
    } else if (arg === '--quiet') {
      quiet = true;
    } else if ((arg === '--libtorch' || arg === '--python') && argv[i + 1]) {
      process.env[arg === '--libtorch' ? 'LIBTORCH' : 'LITLORA_PYTHON'] = argv[++i];
    } else {
      console.error(`litlora build: unknown argument ${arg}\n\n${USAGE}`);
      return 2;
    }
  }
  const script = join(packageRoot, 'scripts', 'setup.mjs');
  if (!existsSync(script)) {
    console.error(`litlora build: ${script} is missing; reinstall litlora`);
    return 1;
  }
  const { setup } = await import(pathToFileURL(script).href);
  let env: { version: string; cuda: string | null; cmake: string };
  try {
    env = setup({ force: true, quiet, reference: false });
  } catch (e) {
    console.error(`litlora build: ${(e as Error).message}`);
    return 1;
  }
  // Load the new build the way users will: through the loader, in a fresh process.
  const check = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(pathToFileURL(join(packageRoot, 'dist', 'index.js')).href)});` +
    'console.log(JSON.stringify(m.buildInfo()))'], { encoding: 'utf8', env: { ...process.env, LITLORA_ADDON: '' } });
  if (check.status !== 0) {
    console.error(`litlora build: the build finished but does not load:\n${check.stderr.trim()}`);
    return 1;
  }
  const info = JSON.parse(check.stdout.trim().split('\n').pop()!);
  console.log(`litlora build: ${info.addon} built against Torch ${env.version}${env.cuda ? ` (CUDA ${env.cuda})` : ''}`);
  return 0;
}

#!/usr/bin/env node
// litlora setup: find libtorch, build the native addon against it, compile the TypeScript. Idempotent and
// quick when nothing changed. Called by `npm test`, `npm run demo` and `npx litlora build`.
//
// libtorch is looked for, in order:
//   1. LIBTORCH            an unpacked libtorch (its share/cmake/Torch is used)
//   2. a Python PyTorch    LITLORA_PYTHON, the project's .venv, then python3 on PATH
//   3. the libtorch cache  PyTorch's prebuilt libtorch, downloaded once into ~/.cache/litlora (scripts/libtorch-fetch.mjs;
//                          CPU, or CUDA when LITLORA_CUDA or the NVIDIA driver asks for it)
// In a checkout (with test/) the reference tests and benchmarks also need a Python with PyTorch, numpy,
// safetensors, transformers and peft: when python3 is on PATH and none is found, they are pip-installed into the
// project's .venv (torch==2.13.0+cpu resolves offline on our machines), whose PyTorch is then built against too.
// Without python3 the addon is built all the same, and only the reference tests cannot run.
//
// Before anything is downloaded or built, the build tools are checked (scripts/toolchain.mjs). Errors carry a
// stable code and print as `litlora setup: error [ERR_…]: …`.
//
// Flags: --build (force a native rebuild), --no-reference (no reference Python, even in a checkout: `npm run demo`
// needs none, so a fresh clone downloads libtorch alone rather than pip-installing PyTorch), --quiet.
//
// It also runs from an installed package (node_modules/litlora, for `npx litlora build`): there the npm
// dependencies are hoisted (found through require resolution, not ./node_modules), ts/ is not shipped
// (dist/ is used as is) and there is no test/ folder, so no reference Python is prepared.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIBTORCH_VERSION, chooseVariant, ensureLibtorch } from './libtorch-fetch.mjs';
import { SetupError, formatSetupError } from './setup-error.mjs';
import { checkToolchain, which } from './toolchain.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
let quiet = args.has('--quiet');
const log = (msg) => { if (!quiet) console.error(`[litlora setup] ${msg}`); };
const envFile = join(root, 'build', 'litlora-env.json');
const venv = join(root, '.venv');
const venvPython = join(venv, 'bin', 'python');
const TORCH_PIN = process.env.LITLORA_TORCH_SPEC || `torch==${LIBTORCH_VERSION}+cpu`;
// transformers and peft are the other side of the Hugging Face interop tests (convert, PEFT adapters); gguf is
// llama.cpp's own reader of GGUF files (the GGUF export tests).
const PY_EXTRAS = ['numpy', 'safetensors', 'pyyaml', 'tokenizers', 'transformers', 'peft', 'gguf'];

function probePython(python) {
  if (!which(python)) return null;
  const code = 'import json,torch;print(json.dumps({"cmake":torch.utils.cmake_prefix_path,"version":torch.__version__,' +
    '"cuda":torch.version.cuda}))';
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  try { return { python, ...JSON.parse(r.stdout.trim().split('\n').pop()) }; } catch { return null; }
}

function pythonHasExtras(python) {
  return spawnSync(python, ['-c', 'import numpy, safetensors, yaml, tokenizers, transformers, peft, gguf'], { stdio: 'ignore' }).status === 0;
}

function pipInstall(python, packages) {
  // The local wheel store answers offline; without --index-url pip spends a minute retrying pypi.org.
  const pipArgs = ['-m', 'pip', 'install', '-q', ...packages];
  const local = '/opt/pypi/simple';
  if (existsSync(local)) pipArgs.push('--index-url', `file://${local}`);
  if (existsSync('/opt/wheels')) pipArgs.push('--find-links', '/opt/wheels');
  log(`pip install ${packages.join(' ')} (into ${python})`);
  execFileSync(python, pipArgs, { stdio: quiet ? 'ignore' : 'inherit' });
}

// LIBTORCH, else a Python PyTorch; null when neither is there.
function findLocalTorch() {
  if (process.env.LIBTORCH) {
    const cmake = join(process.env.LIBTORCH, 'share', 'cmake');
    if (!existsSync(join(cmake, 'Torch'))) {
      throw new SetupError('ERR_ARG', `LIBTORCH=${process.env.LIBTORCH} has no share/cmake/Torch: point it at an unpacked ` +
        'libtorch (the folder holding lib/, include/ and share/), or unset it to use the libtorch litlora downloads');
    }
    const versionFile = join(process.env.LIBTORCH, 'build-version');
    const version = existsSync(versionFile) ? readFileSync(versionFile, 'utf8').trim() : 'unknown';
    return { cmake, version, source: 'LIBTORCH' };
  }
  const candidates = [process.env.LITLORA_PYTHON, venvPython, 'python3'].filter(Boolean);
  for (const python of candidates) {
    if (python !== 'python3' && !existsSync(python)) continue;
    const found = probePython(python);
    if (found) return { ...found, source: python };
  }
  return null;
}

// PyTorch's prebuilt libtorch from the per-user cache, downloaded into it first if needed.
async function cachedTorch() {
  const { variant, why } = chooseVariant();
  log(`no LIBTORCH and no Python PyTorch found: using PyTorch's prebuilt libtorch ${LIBTORCH_VERSION} (${variant}: ${why})`);
  const lt = await ensureLibtorch({ variant, log, quiet });
  return { cmake: join(lt.root, 'share', 'cmake'), version: lt.version, cuda: lt.cuda, source: `cache ${lt.root}`, libtorch: lt };
}

// The Python that reference tests and benchmarks use: the Torch-providing one when it has the extras; null, with
// a note, when there is no Python to make one from.
function ensureReferencePython(torch) {
  let python = torch?.python && torch.python !== 'python3' ? torch.python : null;
  if (!python) {
    const sys = probePython('python3');
    if (sys && pythonHasExtras('python3')) return 'python3';
    if (!existsSync(venvPython) && !which('python3')) {
      log('no python3 on PATH: the reference tests (which compare against PyTorch) will not run; the addon is built all the same');
      return null;
    }
    if (!existsSync(venvPython)) execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    if (!probePython(venvPython)) pipInstall(venvPython, [TORCH_PIN]);
    python = venvPython;
  }
  if (!pythonHasExtras(python)) pipInstall(python, PY_EXTRAS);
  return python;
}

function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  paths.forEach(visit);
  return newest;
}

function buildNative(torch, force) {
  const addon = join(root, 'build', 'Release', 'litlora.node');
  const stamp = join(root, 'build', 'litlora-build.json');
  let previous = null;
  try { previous = JSON.parse(readFileSync(envFile, 'utf8')); } catch {}
  const sourcesNewer = newestMtime([join(root, 'native'), join(root, 'CMakeLists.txt')]) >
    (existsSync(addon) ? statSync(addon).mtimeMs : 0);
  const torchChanged = !previous || previous.cmake !== torch.cmake || previous.version !== torch.version;
  if (!force && existsSync(addon) && existsSync(stamp) && !sourcesNewer && !torchChanged) return false;
  checkToolchain();
  log(`building the native addon against Torch ${torch.version} (${torch.cmake})`);
  const cmakeJs = resolveBin('cmake-js', 'cmake-js');
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || '2';
  const r = spawnSync(cmakeJs, ['build', '--log-level', 'warn', `--CDCMAKE_PREFIX_PATH=${torch.cmake}`,
    '--CDCMAKE_BUILD_TYPE=Release', ...(torch.cuda ? ['--CDCMAKE_CUDA_ARCHITECTURES=90'] : [])], {
    cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit',
    env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs },
  });
  if (r.error) throw new SetupError('ERR_TOOLCHAIN', `could not run cmake-js (${r.error.message}); reinstall litlora's dependencies`);
  if (r.status !== 0) throw new Error('native build failed (see the compiler output above)');
  return true;
}

// A dependency's executable, wherever npm put the dependency (./node_modules, or hoisted above an installed litlora).
function resolveBin(pkg, name) {
  const require = createRequire(join(root, 'package.json'));
  const manifestPath = require.resolve(`${pkg}/package.json`);
  const { bin } = JSON.parse(readFileSync(manifestPath, 'utf8'));
  return join(dirname(manifestPath), typeof bin === 'string' ? bin : bin[name]);
}

function dependenciesInstalled() {
  try {
    createRequire(join(root, 'package.json')).resolve('node-addon-api');
    return true;
  } catch {
    return false;
  }
}

function buildTs(force) {
  if (!existsSync(join(root, 'ts'))) return false; // an installed package ships dist/ only
  const out = join(root, 'dist', 'index.js');
  const newer = newestMtime([join(root, 'ts'), join(root, 'tsconfig.json'), join(root, 'tsconfig.build.json')]) >
    (existsSync(out) ? statSync(out).mtimeMs : 0);
  if (!force && !newer) return false;
  log('compiling TypeScript');
  // From scratch: tsc never deletes the output of a source that moved or went away, and a stale module left in
  // dist/ would ship in the package.
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  const tsc = resolveBin('typescript', 'tsc');
  const r = spawnSync(tsc, ['-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('TypeScript compilation failed');
  return true;
}

// force: rebuild the addon even if it looks current. reference: also prepare the Python that tests and
// benchmarks compare against (default: when this is a checkout with test/, not an installed package).
export async function setup({ force = false, quiet: beQuiet = quiet, reference = existsSync(join(root, 'test')) } = {}) {
  quiet = beQuiet;
  if (!dependenciesInstalled()) {
    if (!existsSync(join(root, 'package-lock.json'))) {
      throw new Error(`node-addon-api and cmake-js are not installed next to ${root}; run \`npm install\` in your project`);
    }
    log('installing npm dependencies');
    execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  }
  // A build that is certain (forced, or no addon yet) needs the tools: say so before downloading anything.
  if (force || !existsSync(join(root, 'build', 'Release', 'litlora.node'))) checkToolchain();
  let torch = findLocalTorch();
  // Without `reference`, the reference Python recorded before stays recorded (the reference tests keep working
  // after `npm run demo` or `litlora build`), but none is made.
  let recorded = null;
  try { recorded = JSON.parse(readFileSync(envFile, 'utf8')).python ?? null; } catch {}
  const python = reference ? ensureReferencePython(torch) : recorded && which(recorded) ? recorded : null;
  if (reference && !torch && python) {
    const found = probePython(python); // the reference Python's PyTorch, made just now: build against it too
    if (found) torch = { ...found, source: python };
  }
  torch ??= await cachedTorch();
  mkdirSync(join(root, 'build'), { recursive: true });
  buildNative(torch, force);
  const env = { cmake: torch.cmake, version: torch.version, cuda: torch.cuda ?? null, torchSource: torch.source, python,
    libtorch: torch.libtorch ? { root: torch.libtorch.root, variant: torch.libtorch.variant, url: torch.libtorch.url } : null };
  writeFileSync(envFile, JSON.stringify(env, null, 2) + '\n');
  buildTs(force);
  return env;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const env = await setup({ force: args.has('--build'), ...(args.has('--no-reference') ? { reference: false } : {}) });
    log(`ready: Torch ${env.version}${env.cuda ? ` (CUDA ${env.cuda})` : ''}${env.python ? `; reference Python ${env.python}` : ''}`);
  } catch (e) {
    console.error(formatSetupError(e));
    process.exit(1);
  }
}

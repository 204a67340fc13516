// Finds and loads the native addon; the only module that imports the .node. It also types the raw binding.
//
// Loading a .node built against one libtorch next to another aborts the whole process inside dlopen (a
// c10::Error thrown while libtorch initialises — no JS try/catch can catch it). So every candidate is first
// checked: its recorded libtorch must still be there at the same version, and a child process must load it
// cleanly (cached by file identity). Failure to load throws one error listing every place tried and why.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LitloraError } from './errors.js';

/** @internal */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  readonly disposed: boolean;
  dispose(): void;
  data(raw?: boolean): Promise<ArrayBufferView>;
  to(dtype: string | null, device: string | null): Promise<NativeTensor>;
}

/** @internal */
export interface NativeBinding {
  buildInfo(): { torchVersion: string; torchCmakeVersion?: string; cuda: boolean; cudaDeviceCount: number };
  setNumThreads(n: number): void;
  getNumThreads(): number;
  NativeTensor: {
    fromArray(data: ArrayBufferView, shape: number[], dtype: string, device: string): NativeTensor;
  };
  // Further groups of exports (lora, pth, gpt, train) are typed where they are used, through `native<T>()`.
  [name: string]: unknown;
}

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface BuildRecord { torchVersion: string; torchRoot: string; cuda: string }

// The version of the libtorch found at `torchRoot` now: a Python wheel's torch/version.py or LIBTORCH's build-version.
function installedTorchVersion(torchRoot: string): string | null {
  const versionPy = join(torchRoot, 'version.py');
  if (existsSync(versionPy)) {
    const m = /__version__\s*=\s*['"]([^'"]+)['"]/.exec(readFileSync(versionPy, 'utf8'));
    if (m) return m[1];
  }
  const buildVersion = join(torchRoot, 'build-version');
  if (existsSync(buildVersion)) return readFileSync(buildVersion, 'utf8').trim();
  return null;
}

// Checks that the libtorch this .node was built against is still where it was, at the same version.
function checkTorchRecord(recordPath: string): void {
  if (!existsSync(recordPath)) return; // prebuilds made elsewhere carry no record; the child probe decides
  const record = JSON.parse(readFileSync(recordPath, 'utf8')) as BuildRecord;
  if (!existsSync(join(record.torchRoot, 'lib'))) {
    throw new Error(`it was built against the libtorch in ${record.torchRoot}, which is gone`);
  }
  const now = installedTorchVersion(record.torchRoot);
  const built = record.torchVersion.split('+')[0];
  if (now && built && now.split('+')[0] !== built) {
    throw new Error(`it was built against libtorch ${built}, but ${record.torchRoot} now holds ${now}`);
  }
}

// Loads the .node in a child process first, so that an abort inside dlopen is a message here, not a crash.
function probeInChild(file: string): void {
  const st = statSync(file);
  const key = createHash('sha1').update(`${file}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16);
  const cacheDir = join(tmpdir(), 'litlora-probe');
  const cacheFile = join(cacheDir, key);
  if (existsSync(cacheFile)) return;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).buildInfo()`], {
    encoding: 'utf8', timeout: 120_000,
  });
  if (r.status !== 0) {
    const why = (r.stderr || '').trim().split('\n').filter((l) => l.trim()).slice(-3).join(' | ') ||
      `exit ${r.status ?? r.signal}`;
    throw new Error(`loading it in a child process failed: ${why}`);
  }
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(cacheFile, file);
}

function candidates(): { file: string; record: string }[] {
  const out: { file: string; record: string }[] = [];
  if (process.env.LITLORA_ADDON) out.push({ file: resolve(process.env.LITLORA_ADDON), record: '' });
  out.push({ file: join(packageRoot, 'build', 'Release', 'litlora.node'), record: join(packageRoot, 'build', 'litlora-build.json') });
  const prebuildDir = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  const prebuilt = existsSync(prebuildDir) ? readdirSync(prebuildDir).filter((f) => f.endsWith('.node')).sort() : [];
  for (const f of prebuilt.length ? prebuilt : ['litlora.node']) {
    out.push({ file: join(prebuildDir, f), record: join(prebuildDir, 'litlora-build.json') });
  }
  return out;
}

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const { file, record } of candidates()) {
    if (!existsSync(file)) {
      tried.push(`  ${file}: not there`);
      continue;
    }
    try {
      if (record) checkTorchRecord(record);
      probeInChild(file);
      const binding = require(file) as NativeBinding;
      const threads = Number(process.env.LITLORA_THREADS) || availableParallelism();
      binding.setNumThreads(Math.max(1, Math.floor(threads)));
      return binding;
    } catch (e) {
      tried.push(`  ${file}: ${(e as Error).message}`);
    }
  }
  throw new LitloraError('ERR_LOAD',
    `litlora could not load its native addon. Tried:\n${tried.join('\n')}\n` +
    'To fix: build it against your libtorch with `npx litlora build` (it finds a Python PyTorch, or set ' +
    'LIBTORCH to an unpacked libtorch; with neither, it installs PyTorch into the package\'s .venv), or ' +
    '`pip install torch` first.');
}

let cached: NativeBinding | null = null;

/** @internal The raw binding, loaded on first use. */
export function binding(): NativeBinding {
  if (!cached) cached = load();
  return cached;
}

/** @internal A group of exports typed by the module that uses it (e.g. `native<LoraBinding>()`). */
export function native<T>(): T {
  return binding() as unknown as T;
}

/** Sets libtorch's intra-op thread count (default: LITLORA_THREADS or the machine's cores). */
export function setNumThreads(n: number): void {
  binding().setNumThreads(n);
}

export function getNumThreads(): number {
  return binding().getNumThreads();
}

/** What the loaded addon was built with and what it sees. */
export function buildInfo(): { torchVersion: string; cuda: boolean; cudaDeviceCount: number } {
  const info = binding().buildInfo();
  return { torchVersion: info.torchVersion, cuda: info.cuda, cudaDeviceCount: info.cudaDeviceCount };
}

// Finds and loads the native addon's .node file; the only module that requires one. What the addon exports is
// typed in ts/binding.ts, which calls this once and prepares the addon for use.
//
// Loading a .node built against one libtorch next to another aborts the whole process inside dlopen (a
// c10::Error thrown while libtorch initialises — no JS try/catch can catch it). So every candidate is first
// checked: its recorded libtorch must still be there at the same version, and a child process must load it
// cleanly (cached by file identity). Failure to load throws one error listing every place tried and why.
//
// A prebuild (prebuilds/<platform>/, shipped in the npm package) was built elsewhere: its record names the
// libtorch it needs by version and variant, and its RUNPATH is $ORIGIN/libtorch/lib. Before it is checked, the
// libtorch/ link next to it is pointed at that libtorch in the per-user cache, which is fetched on first use
// (scripts/libtorch-fetch.mjs), so an installed package loads with no compiler and no rebuild.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LitloraError } from './errors.js';

/** The package's folder: build/, prebuilds/ and dist/ lie in it. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface BuildRecord {
  torchVersion: string;
  /** Absolute for a local build; relative to the record's folder (`libtorch`) for a prebuild. */
  torchRoot: string;
  cuda: string;
  /** A prebuild's libtorch, by the per-user cache's names. */
  libtorch?: { version: string; variant: string };
}

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

// Points `<dir>/libtorch` at libtorch <version>-<variant> in the per-user cache, fetching it there first when it
// is missing (a child process: the download is asynchronous, loading is not).
function linkPrebuildTorch(dir: string, want: { version: string; variant: string }): void {
  const link = join(dir, 'libtorch');
  if (existsSync(join(link, 'lib'))) return;
  const script = join(packageRoot, 'scripts', 'libtorch-fetch.mjs');
  process.stderr.write(`litlora: fetching libtorch ${want.version} (${want.variant}) for the prebuilt addon (once per machine)\n`);
  const r = spawnSync(process.execPath, [script, '--version', want.version, '--variant', want.variant],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    const lines = (r.stderr || r.error?.message || '').trim().split('\n');
    const why = lines.find((l) => l.startsWith('litlora setup: ')) ?? lines.find((l) => /Error/.test(l)) ?? lines.pop();
    throw new Error(`its libtorch ${want.version} (${want.variant}) is not in the cache and could not be fetched: ${why}`);
  }
  const root = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { root: string }).root;
  // A new link renamed over the old one (a dangling link after the cache was cleared): never half-made.
  const tmp = `${link}.${process.pid}.tmp`;
  try {
    rmSync(tmp, { force: true });
    symlinkSync(root, tmp);
    renameSync(tmp, link);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`could not link ${link} to its libtorch in ${root} (${(e as Error).message})`);
  }
}

// Checks that the libtorch this .node was built against is still where it was, at the same version.
function checkTorchRecord(recordPath: string): void {
  if (!recordPath || !existsSync(recordPath)) return; // a .node without a record: the child probe decides
  let record: BuildRecord;
  try {
    record = JSON.parse(readFileSync(recordPath, 'utf8')) as BuildRecord;
  } catch (e) {
    throw new Error(`its build record ${recordPath} is unreadable (${(e as Error).message})`);
  }
  if (record.libtorch) linkPrebuildTorch(dirname(recordPath), record.libtorch);
  const torchRoot = record.torchRoot && !isAbsolute(record.torchRoot) ? join(dirname(recordPath), record.torchRoot) : record.torchRoot;
  if (!torchRoot || !existsSync(join(torchRoot, 'lib'))) {
    throw new Error(`it was built against the libtorch in ${torchRoot}, which is gone`);
  }
  const now = installedTorchVersion(torchRoot);
  const built = (record.torchVersion ?? '').split('+')[0];
  if (now && built && now.split('+')[0] !== built) {
    throw new Error(`it was built against libtorch ${built}, but ${torchRoot} now holds ${now}`);
  }
}

// Loading happens in a child process first, so that an abort inside dlopen is a message here, not a crash.
// A success is remembered in a file keyed by the .node's identity: path, size, mtime, inode and ctime —
// ctime changes on every write or replacement and cannot be set back, so a changed file is probed again.
const PROBE_FAILED = 'LITLORA_PROBE_FAILED ';
const PROBE_SCRIPT = `
const file = process.argv[1];
try {
  const b = require(file);
  if (typeof b.buildInfo !== 'function') throw new Error('it is not litlora\\'s addon (no buildInfo export)');
  b.buildInfo();
} catch (e) {
  process.stderr.write(${JSON.stringify(PROBE_FAILED)} + String(e && e.message || e).split('\\n')[0] + '\\n');
  process.exit(3);
}`;

function probeCacheDir(): string {
  return process.env.LITLORA_PROBE_CACHE || join(tmpdir(), 'litlora-probe');
}

function probeInChild(file: string): void {
  const st = statSync(file);
  const identity = `${file}:${st.size}:${st.mtimeMs}:${st.ino}:${st.ctimeMs}`;
  const cacheFile = join(probeCacheDir(), createHash('sha1').update(identity).digest('hex').slice(0, 20));
  if (existsSync(cacheFile)) return;
  const r = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, file], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`the child process that test-loads it failed: ${r.error.message}`);
  if (r.status !== 0) {
    const lines = (r.stderr || '').split('\n').map((l) => l.trim()).filter(Boolean);
    const marked = lines.find((l) => l.startsWith(PROBE_FAILED));
    if (marked) throw new Error(`it does not load: ${marked.slice(PROBE_FAILED.length)}`);
    const why = lines.filter((l) => !l.startsWith('at ')).slice(-3).join(' | ');
    throw new Error(`loading it in a test process ${r.signal ? `crashed that process (${r.signal})` : `failed (exit ${r.status})`}` +
      (why ? `: ${why}` : '') + ' (typically a libtorch that does not match the one it was built against)');
  }
  mkdirSync(probeCacheDir(), { recursive: true });
  writeFileSync(cacheFile, identity + '\n');
}

interface Candidate { file: string; record: string; what: string }

function candidates(): Candidate[] {
  const out: Candidate[] = [];
  if (process.env.LITLORA_ADDON) {
    const file = resolve(process.env.LITLORA_ADDON);
    out.push({ file, record: join(dirname(file), 'litlora-build.json'), what: 'LITLORA_ADDON' });
  }
  out.push({
    file: join(packageRoot, 'build', 'Release', 'litlora.node'),
    record: join(packageRoot, 'build', 'litlora-build.json'), what: 'local build',
  });
  const prebuildDir = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  const prebuilt = existsSync(prebuildDir) ? readdirSync(prebuildDir).filter((f) => f.endsWith('.node')).sort() : [];
  for (const f of prebuilt.length ? prebuilt : ['litlora.node']) {
    out.push({ file: join(prebuildDir, f), record: join(prebuildDir, 'litlora-build.json'), what: 'prebuild' });
  }
  return out;
}

// libgomp (libtorch's OpenMP) keeps a thread that waits at a barrier spinning for 300,000 iterations (a few ms)
// before it sleeps. In a Node process that is the wrong trade: the JS thread, libuv's pool and any other process
// need those cores, and a descheduled thread makes its spinning partners burn whole time slices. Measured on a
// 2-core VM with other work running, 16 concurrent generate() calls ran at 14–19 tokens/s with the default and at
// 133–231 with short or no spinning. libgomp reads its settings once, when the addon's dlopen loads it, so they
// are set here first, unless the user set either. (A worker thread's process.env is its own copy: load the addon
// on the main thread first, or set the variable when starting Node, for it to apply there.)
function setOpenMpWaiting(): void {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = OPENMP_SPIN_COUNT;
  }
}
/** @internal What litlora sets GOMP_SPINCOUNT to when the user set neither it nor OMP_WAIT_POLICY. */
export const OPENMP_SPIN_COUNT = '10000';

/**
 * @internal The first candidate that passes the checks, loads, and that `prepare` accepts (it gets the module's
 * exports and throws to refuse them); `file` is where it was loaded from. ERR_LOAD when none does.
 */
export function loadAddon(prepare: (exports: unknown) => void): { exports: unknown; file: string } {
  const require = createRequire(import.meta.url);
  setOpenMpWaiting();
  const tried: string[] = [];
  for (const { file, record, what } of candidates()) {
    if (!existsSync(file)) {
      tried.push(`  - ${file} (${what}): not there`);
      continue;
    }
    try {
      checkTorchRecord(record);
      probeInChild(file);
      const exports: unknown = require(file);
      prepare(exports);
      return { exports, file };
    } catch (e) {
      tried.push(`  - ${file} (${what}): ${(e as Error).message}`);
    }
  }
  throw new LitloraError('ERR_LOAD',
    `litlora could not load its native addon (${process.platform}-${process.arch}, Node ${process.versions.node}). Tried:\n` +
    `${tried.join('\n')}\n` +
    'To fix: run `npx litlora build` to build it against the libtorch found here: LIBTORCH (an unpacked libtorch), ' +
    'else a Python PyTorch (LITLORA_PYTHON, the package\'s .venv, python3), else PyTorch\'s prebuilt libtorch, which ' +
    'it downloads into ~/.cache/litlora. `npx litlora doctor` shows what is missing. LITLORA_ADDON=/path/litlora.node ' +
    'loads a specific build.');
}

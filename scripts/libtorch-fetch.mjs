#!/usr/bin/env node
// The prebuilt libtorch litlora uses when no LIBTORCH and no Python PyTorch is found: PyTorch's own build,
// downloaded once into a per-user cache ($LITLORA_CACHE, default ~/.cache/litlora) as
// libtorch/<version>-<variant>/ holding lib/, include/, share/cmake/Torch and build-version: the layout of
// PyTorch's libtorch zips, which setup builds against and prebuilds load from.
//
// Sources, by address:
//   - by default for CPU, the `torch` wheel from PyTorch's package index (https://download.pytorch.org/whl/cpu/torch/,
//     a PEP 503 simple index whose links carry #sha256= digests): a zip holding the same lib/ and include/ under torch/;
//   - by default for CUDA, PyTorch's libtorch zip (https://download.pytorch.org/libtorch/<variant>/
//     libtorch-shared-with-deps-<version>%2B<variant>.zip), since a CUDA wheel leaves the CUDA libraries to other
//     wheels (nvidia-*) and the zip bundles them. PyTorch publishes no digest for it: its entries' CRCs are checked,
//     and LITLORA_LIBTORCH_SHA256 pins it;
//   - LITLORA_LIBTORCH_URL overrides it (a mirror, a file:// path for air-gapped installs): an address ending in
//     `/` is such an index, anything else an archive (a libtorch zip, top folder libtorch/, or a torch wheel).
//     Its digest is the URL's #sha256= fragment, else LITLORA_LIBTORCH_SHA256.
// The download goes into a hidden partial file and resumes from where it stopped (HTTP Range); the archive is
// checked against its sha256 (and every entry against its CRC-32) and unpacked into a temporary folder that is
// renamed into place only when complete, so the cache holds whole libtorches or nothing.
//
// As a command (the loader runs it when a prebuild's libtorch is not in the cache yet):
//   node scripts/libtorch-fetch.mjs [--version V] [--variant cpu|cu128|…] [--quiet]
// prints the cache record (JSON) of the libtorch, fetching it first if needed.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync,
  symlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, join, posix, resolve } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { SetupError, formatSetupError } from './setup-error.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The libtorch version litlora is tested with (the Python route pins the same one: TORCH_PIN in setup.mjs). */
export const LIBTORCH_VERSION = '2.13.0';
// The CUDA builds PyTorch publishes for LIBTORCH_VERSION, newest first.
export const CUDA_VARIANTS = ['cu130', 'cu128', 'cu126'];
const RECORD = '.litlora-libtorch.json';
/** Where libtorch <version>-<variant> is fetched from: LITLORA_LIBTORCH_URL, else PyTorch's download site. */
export function defaultAddress(version, variant, env = process.env) {
  if (env.LITLORA_LIBTORCH_URL) return env.LITLORA_LIBTORCH_URL;
  if (variant === 'cpu') return 'https://download.pytorch.org/whl/cpu/torch/';
  return `https://download.pytorch.org/libtorch/${variant}/libtorch-shared-with-deps-${version}%2B${variant}.zip`;
}

/** The per-user cache folder: $LITLORA_CACHE, else $XDG_CACHE_HOME/litlora, else ~/.cache/litlora. */
export function cacheRoot(env = process.env) {
  if (env.LITLORA_CACHE) return resolve(env.LITLORA_CACHE);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'litlora');
}

/** Where libtorch <version>-<variant> lives in the cache. */
export function libtorchDir(version = LIBTORCH_VERSION, variant = 'cpu', env = process.env) {
  return join(cacheRoot(env), 'libtorch', `${version}-${variant}`);
}

/** 'cu128' → '12.8'; 'cpu' → null. */
export function cudaOfVariant(variant) {
  const m = /^cu(\d+)(\d)$/.exec(variant);
  return m ? `${m[1]}.${m[2]}` : null;
}

// The newest published CUDA build a CUDA `major.minor` (minor absent: any) can run.
function cudaVariantFor(major, minor) {
  return CUDA_VARIANTS.find((v) => {
    const [vMajor, vMinor] = cudaOfVariant(v).split('.').map(Number);
    return vMajor === major && (minor === undefined || vMinor <= minor);
  }) ?? null;
}

/**
 * Which build to fetch: LITLORA_CUDA (`cpu`/`0`, `12.8`, `12`, `cu128`) when set, else the newest CUDA build the
 * NVIDIA driver supports (nvidia-smi's "CUDA Version"), else CPU. Returns { variant, why }.
 */
export function chooseVariant(env = process.env, platform = process.platform) {
  if (platform === 'darwin') return { variant: 'cpu', why: 'macOS builds are CPU (and MPS) only' };
  const asked = (env.LITLORA_CUDA ?? '').trim();
  const published = CUDA_VARIANTS.map(cudaOfVariant).join(', ');
  if (asked) {
    if (/^(0|off|no|false|none|cpu)$/i.test(asked)) return { variant: 'cpu', why: `LITLORA_CUDA=${asked}` };
    if (/^cu\d+$/.test(asked)) {
      if (CUDA_VARIANTS.includes(asked)) return { variant: asked, why: `LITLORA_CUDA=${asked}` };
    } else {
      const m = /^(\d+)(?:\.(\d+))?$/.exec(asked);
      const variant = m ? cudaVariantFor(Number(m[1]), m[2] === undefined ? undefined : Number(m[2])) : null;
      if (variant) return { variant, why: `LITLORA_CUDA=${asked}` };
    }
    throw new SetupError('ERR_ARG', `LITLORA_CUDA=${asked} names no libtorch ${LIBTORCH_VERSION} build: PyTorch publishes ` +
      `CPU and CUDA ${published}. Set LITLORA_CUDA to one of those (e.g. 12.8, or cpu), or point LIBTORCH at your own libtorch.`);
  }
  const smi = spawnSync('nvidia-smi', [], { encoding: 'utf8', timeout: 20_000 });
  const m = smi.status === 0 ? /CUDA Version:\s*(\d+)\.(\d+)/.exec(smi.stdout ?? '') : null;
  if (!m) return { variant: 'cpu', why: 'no NVIDIA driver found (nvidia-smi)' };
  const variant = cudaVariantFor(Number(m[1]), Number(m[2]));
  if (!variant) return { variant: 'cpu', why: `the NVIDIA driver supports CUDA ${m[1]}.${m[2]}, older than any build (${published})` };
  return { variant, why: `the NVIDIA driver supports CUDA ${m[1]}.${m[2]}` };
}

// The wheel platform tag of this machine, as a pattern on a wheel's file name.
function platformTag(platform = process.platform, arch = process.arch) {
  if (platform === 'linux' && arch === 'x64') return /manylinux[\w.]*_x86_64/;
  if (platform === 'linux' && arch === 'arm64') return /manylinux[\w.]*_aarch64/;
  if (platform === 'darwin' && arch === 'arm64') return /macosx_\d+_\d+_arm64/;
  return null;
}

/** The cache record of libtorch <version>-<variant> when it is in the cache, else null. */
export function cachedLibtorch(version = LIBTORCH_VERSION, variant = 'cpu', env = process.env) {
  const dir = libtorchDir(version, variant, env);
  try {
    const record = JSON.parse(readFileSync(join(dir, RECORD), 'utf8'));
    if (!existsSync(join(dir, 'share', 'cmake', 'Torch'))) return null;
    return { ...record, root: dir };
  } catch {
    return null;
  }
}

const downloadError = (message) => new SetupError('ERR_LIBTORCH_DOWNLOAD', message);
const integrityError = (message) => new SetupError('ERR_LIBTORCH_INTEGRITY', message);
const HOW_TO_POINT = 'Set LITLORA_LIBTORCH_URL to a reachable copy (a mirror, or file:///path/to/archive), or LIBTORCH to ' +
  'an unpacked libtorch, or LITLORA_PYTHON to a Python with PyTorch.';

// The response to GET `url` (redirects followed), its body not read yet. node:http rather than fetch: its
// 'data' events hand over every chunk that arrived before a connection drops, which a resumed download needs
// (a WHATWG stream that errors drops the chunks still queued in it).
function get(url, headers = {}, redirects = 5) {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { headers }, (res) => {
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location && redirects > 0) {
        res.resume();
        resolve(get(new URL(res.headers.location, url).href, headers, redirects - 1));
      } else {
        resolve(res);
      }
    });
    req.setTimeout(60_000, () => req.destroy(new Error('no data for 60 s')));
    req.on('error', (e) => reject(downloadError(`could not reach ${url} (${e.message}). ${HOW_TO_POINT}`)));
  });
}

async function text(res) {
  const chunks = [];
  for await (const chunk of res) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** The archive to fetch: { url, sha256 (or null), name }. */
export async function resolveSource(version, variant, env = process.env) {
  const address = defaultAddress(version, variant, env);
  const pinned = env.LITLORA_LIBTORCH_SHA256 ? env.LITLORA_LIBTORCH_SHA256.trim().toLowerCase() : null;
  if (!address.endsWith('/')) {
    const url = new URL(address);
    const fragment = /^#sha256=([0-9a-f]{64})$/i.exec(url.hash)?.[1]?.toLowerCase() ?? null;
    url.hash = '';
    return { url: url.href, sha256: fragment ?? pinned, name: basename(decodeURIComponent(url.pathname)) };
  }
  // A PEP 503 simple index: one link per file, the digest in the link's fragment.
  const tag = platformTag();
  if (!tag) {
    throw downloadError(`PyTorch publishes no libtorch wheel for ${process.platform}-${process.arch}. Set LIBTORCH to an ` +
      'unpacked libtorch, or LITLORA_PYTHON to a Python with PyTorch.');
  }
  let html;
  if (address.startsWith('file:')) {
    html = readFileSync(join(fileURLToPath(address), 'index.html'), 'utf8');
  } else {
    const res = await get(address);
    if (res.statusCode !== 200) {
      res.resume();
      throw downloadError(`the package index ${address} answered HTTP ${res.statusCode}. ${HOW_TO_POINT}`);
    }
    html = await text(res);
  }
  const local = variant === 'cpu' && process.platform === 'darwin' ? '' : `\\+${variant}`;
  const wanted = new RegExp(`^torch-${version.replace(/\./g, '\\.')}(?:${local})?-cp\\d+-cp\\d+-(.+)\\.whl$`);
  const links = [...html.matchAll(/href="([^"]+)"/g)].map((m) => new URL(m[1].replace(/&amp;/g, '&'), address));
  for (const link of links) {
    const name = basename(decodeURIComponent(link.pathname));
    const m = wanted.exec(name);
    if (!m || !tag.test(m[1])) continue;
    const fragment = /^#sha256=([0-9a-f]{64})$/i.exec(link.hash)?.[1]?.toLowerCase() ?? null;
    link.hash = '';
    return { url: link.href, sha256: fragment ?? pinned, name };
  }
  throw downloadError(`the package index ${address} lists no torch ${version}${local ? `+${variant}` : ''} wheel for ` +
    `${process.platform}-${process.arch} (${links.length} links read). ${HOW_TO_POINT}`);
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// Downloads `url` into `partial`, continuing from the bytes already there (HTTP Range).
async function download(url, partial, { log, quiet }) {
  let have = existsSync(partial) ? statSync(partial).size : 0;
  const res = await get(url, have > 0 ? { Range: `bytes=${have}-` } : {});
  if (res.statusCode !== 200 && res.statusCode !== 206) res.resume();
  if (res.statusCode === 416 && have > 0) return; // the partial file is already whole: its digest decides
  if (res.statusCode !== 200 && res.statusCode !== 206) {
    throw downloadError(`downloading ${url} failed: HTTP ${res.statusCode} ${res.statusMessage}. ${HOW_TO_POINT}`);
  }
  if (res.statusCode === 206) {
    const start = Number(/^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1]);
    if (start !== have) throw downloadError(`${url} answered a resumed download from byte ${start}, not ${have}; run again`);
    log(`resuming the download of ${url} at ${mb(have)}`);
  } else {
    have = 0; // the server sends the whole file (no Range support, or a new download)
  }
  const length = Number(res.headers['content-length']);
  const total = Number.isFinite(length) && length > 0 ? have + length : null;
  if (have === 0) log(`downloading ${url}${total ? ` (${mb(total)})` : ''}`);
  const bar = !quiet && process.stderr.isTTY && total ? await progressBar(total, have) : null;
  let got = have;
  // Each chunk is written as it arrives: when the connection drops, every byte that arrived is in the partial
  // file, which the next run resumes from.
  const fd = openSync(partial, have > 0 ? 'a' : 'w');
  try {
    await new Promise((resolve, reject) => {
      res.on('data', (chunk) => {
        writeSync(fd, chunk);
        got += chunk.length;
        bar?.update(got);
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
  } catch (e) {
    throw downloadError(`the download of ${url} stopped after ${mb(got)}${total ? ` of ${mb(total)}` : ''} ` +
      `(${e.message}); run setup again to resume it (${partial} holds what arrived)`);
  } finally {
    bar?.stop();
    closeSync(fd);
  }
  if (total && got !== total) {
    throw downloadError(`the download of ${url} ended after ${mb(got)} of ${mb(total)}; run setup again to resume it`);
  }
}

async function progressBar(total, start) {
  const { default: cliProgress } = await import(createRequire(join(root, 'package.json')).resolve('cli-progress'));
  const bar = new cliProgress.SingleBar({
    format: 'libtorch [{bar}] {percentage}% | {value}/{total} MB', stream: process.stderr, hideCursor: true,
    formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? (v / 1e6).toFixed(0) : String(v)),
  }, cliProgress.Presets.shades_classic);
  bar.start(total, start);
  return bar;
}

export async function sha256File(path) {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

// The part of an archive entry's name litlora keeps: its path under libtorch/ (a libtorch zip) or torch/ (a
// wheel) when that is in lib/, include/ or share/, or the version file; null for everything else.
function keptPath(name) {
  const m = /^(?:libtorch|torch)\/(.+)$/.exec(name);
  if (!m) return null;
  const rel = m[1];
  if (rel === 'build-version' || rel === 'version.py' || /^(lib|include|share)\//.test(rel)) return rel;
  return null;
}

// Unpacks lib/, include/, share/ of a libtorch zip or torch wheel into `dest`, streaming entry by entry and
// checking each entry's CRC-32 (yauzl checks sizes, not CRCs). Returns the version the archive declares.
async function unpack(archive, dest) {
  const yauzl = createRequire(join(root, 'package.json'))('yauzl');
  let zip;
  try {
    zip = await yauzl.openPromise(archive, { validateEntrySizes: true });
  } catch (e) {
    throw integrityError(`${archive} is not a readable zip archive (${e.message})`);
  }
  let version = null, kept = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const rel = keptPath(entry.fileName);
      if (!rel) continue;
      const target = join(dest, ...rel.split('/'));
      if (entry.fileName.endsWith('/')) {
        mkdirSync(target, { recursive: true });
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      const mode = (entry.externalFileAttributes >>> 16) & 0o177777;
      let crc = 0;
      const check = new Transform({
        transform(chunk, _enc, done) {
          crc = crc32(chunk, crc);
          done(null, chunk);
        },
        flush(done) {
          done(crc >>> 0 === entry.crc32 >>> 0 ? null : integrityError(`${entry.fileName} in ${archive} fails its CRC-32 check`));
        },
      });
      const stream = await zip.openReadStreamPromise(entry);
      if ((mode & 0o170000) === 0o120000) { // a symbolic link (libfoo.so -> libfoo.so.1): its target is the data
        const chunks = [];
        await pipeline(stream, check, async function* (source) { for await (const c of source) chunks.push(c); });
        const link = Buffer.concat(chunks).toString('utf8');
        if (link.startsWith('/') || posix.normalize(posix.join(posix.dirname(rel), link)).startsWith('..')) {
          throw integrityError(`${entry.fileName} in ${archive} links outside the archive (${link})`);
        }
        symlinkSync(link, target);
      } else {
        const perm = mode & 0o777 || (/\.(so|dylib)(\.|$)/.test(rel) ? 0o755 : 0o644);
        await pipeline(stream, check, createWriteStream(target, { mode: perm }));
      }
      kept++;
      if (rel === 'build-version') version = readFileSync(target, 'utf8').trim();
      if (rel === 'version.py') {
        version ??= /__version__\s*=\s*['"]([^'"]+)['"]/.exec(readFileSync(target, 'utf8'))?.[1] ?? null;
        rmSync(target); // build-version says the same in libtorch's own layout
      }
    }
  } catch (e) {
    if (e instanceof SetupError) throw e;
    throw integrityError(`${archive} is damaged: ${e.message}`);
  } finally {
    zip.close();
  }
  if (!kept || !existsSync(join(dest, 'share', 'cmake', 'Torch'))) {
    throw integrityError(`${archive} holds no libtorch (no libtorch/ or torch/ folder with lib/, include/ and share/cmake/Torch)`);
  }
  return version;
}

/**
 * libtorch <version>-<variant> from the cache, fetched into it first when it is not there yet. Returns its cache
 * record: { root, version, variant, cuda, url, sha256, verified, downloaded }.
 */
export async function ensureLibtorch({ version = LIBTORCH_VERSION, variant = 'cpu', env = process.env, log = () => {}, quiet = false } = {}) {
  const cached = cachedLibtorch(version, variant, env);
  if (cached) return { ...cached, downloaded: false };
  const dir = libtorchDir(version, variant, env);
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const source = await resolveSource(version, variant, env);
  let archive, partial = null;
  if (source.url.startsWith('file:')) {
    archive = fileURLToPath(source.url);
    if (!existsSync(archive)) throw downloadError(`${archive} (LITLORA_LIBTORCH_URL) does not exist. ${HOW_TO_POINT}`);
  } else {
    // Named after the address, so that a partial file only ever resumes the download it began.
    const key = createHash('sha256').update(source.url).digest('hex').slice(0, 16);
    partial = archive = join(parent, `.${source.name}.${key}.partial`);
    await download(source.url, partial, { log, quiet });
  }
  const digest = await sha256File(archive);
  if (source.sha256 && digest !== source.sha256) {
    if (partial) rmSync(partial, { force: true });
    throw integrityError(`the libtorch archive from ${source.url} has sha256 ${digest}, but ${source.sha256} was expected: it ` +
      `is damaged or not the published file${partial ? ', and was deleted; run setup again to download it anew' : ''}. ` +
      'If the address is a mirror, check that it serves the same file (or set LITLORA_LIBTORCH_SHA256 to its digest).');
  }
  if (!source.sha256) {
    log(`warning: ${source.url} comes with no sha256 to check it against (its sha256 is ${digest}; set ` +
      'LITLORA_LIBTORCH_SHA256 to pin it); only the CRCs of its entries are checked');
  }
  log(`unpacking libtorch into ${dir}`);
  const tmp = join(parent, `.unpack-${version}-${variant}-${process.pid}-${randomBytes(4).toString('hex')}`);
  let found;
  try {
    found = await unpack(archive, tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (partial) rmSync(partial, { force: true }); // a damaged archive is not resumed
    throw e;
  }
  if (found && found.split('+')[0] !== version) {
    rmSync(tmp, { recursive: true, force: true });
    if (partial) rmSync(partial, { force: true });
    throw integrityError(`the archive from ${source.url} holds libtorch ${found}, not ${version}, the version ` +
      `litlora is built and tested with. ${HOW_TO_POINT}`);
  }
  const fullVersion = found ?? `${version}+${variant}`;
  writeFileSync(join(tmp, 'build-version'), `${fullVersion}\n`);
  const record = { version: fullVersion, variant, cuda: cudaOfVariant(variant), url: source.url, sha256: digest, verified: !!source.sha256 };
  writeFileSync(join(tmp, RECORD), JSON.stringify(record, null, 2) + '\n');
  try {
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // Another setup finished the same libtorch first: use that one.
    if (!cachedLibtorch(version, variant, env)) throw e;
  }
  if (partial) rmSync(partial, { force: true });
  log(`libtorch ${fullVersion} is in ${dir}`);
  return { ...record, root: dir, downloaded: !!partial };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const option = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const quiet = argv.includes('--quiet');
  try {
    const variant = option('--variant') ?? chooseVariant().variant;
    const record = await ensureLibtorch({
      version: option('--version') ?? LIBTORCH_VERSION, variant, quiet,
      log: (m) => { if (!quiet) console.error(`[litlora setup] ${m}`); },
    });
    console.log(JSON.stringify(record));
  } catch (e) {
    console.error(formatSetupError(e));
    process.exit(1);
  }
}

// Fuzzes the tensor-file readers (.pth zip + pickle, legacy .pth, .safetensors) and, in this process, opens
// each file and reads every tensor. A crash (segfault, abort, SIGBUS) kills the process, so reaching the
// summary means 0 crashes; every error must also carry one of the expected codes. Three classes of input:
//   - byte mutations of real files (test/fixtures: torch.save zips, a legacy-format file, numpy scalars,
//     safetensors), hitting structure more often than bulk data;
//   - crafted .pth files (scripts/craft-pth.ts): views with random sizes, strides and offsets over random
//     storages, stride-0 and broadcast views with huge shapes, records at unaligned offsets (so storages are
//     copied, not mapped) — what byte mutations never reach;
//   - every truncation of the small fixtures (each prefix length).
//
//   npx tsx scripts/fuzz-tensorfiles.ts [--n 10000] [--seed 1] [--truncations all|none]
//
// The mutant being tried is always on disk (its path is printed first), so a crash leaves its reproducer.
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TensorFile } from '../ts/index.js';
import { tensorChecksum } from '../ts/internals.js';
import { seededRandom } from '../test/helpers/assert.js';
import { craftPth, type CraftedTensor } from './craft-pth.js';

const EXPECTED_CODES = new Set(['ERR_CHECKPOINT_FORMAT', 'ERR_DTYPE']);

export interface FuzzReport {
  iterations: number;      // mutations and crafted files
  crafted: number;         // … of which crafted
  truncations: number;     // truncated copies tried (beyond the iterations)
  opened: number;          // mutants that still opened
  readAll: number;         // … and whose every tensor read back
  errors: Record<string, number>;
  unexpected: string[];    // errors without an expected code (bugs, though not crashes)
  seconds: number;
}

const BOUNDARY = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];
const PICKLE_OPS = Buffer.from('()tl]ae}dsuNJKMGXqrhjcRbQ0.\x80\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95', 'latin1');

// One random mutation of `src`. Structural bytes (the pickle or safetensors header at the front, the zip
// directory at the back) are hit more often than bulk tensor data, where any bytes are valid.
export function mutate(src: Buffer, random: () => number): Buffer {
  if (src.length === 0) return Buffer.alloc(0);  // a double mutation of a mutant truncated to nothing
  const pick = (n: number) => Math.floor(random() * n);
  const structural = () => {
    const front = Math.min(src.length, 1536), back = Math.min(src.length, 512);
    return random() < 0.5 ? pick(front) : src.length - 1 - pick(back);
  };
  const at = () => (random() < 0.75 ? structural() : pick(src.length));
  const buf = Buffer.from(src);
  switch (pick(8)) {
    case 0: { // flip bits
      for (let i = 0, n = 1 + pick(8); i < n; i++) buf[at()] ^= 1 << pick(8);
      return buf;
    }
    case 1: { // boundary value into a 1/2/4/8-byte field
      const width = [1, 2, 4, 8][pick(4)], pos = at();
      const v = BOUNDARY[pick(BOUNDARY.length)];
      // 0x7f means the field's signed maximum: ff … ff 7f (little-endian).
      for (let i = 0; i < width && pos + i < buf.length; i++) buf[pos + i] = v === 0x7f && i < width - 1 ? 0xff : v;
      return buf;
    }
    case 2: // truncate
      return buf.subarray(0, pick(buf.length));
    case 3: { // delete a chunk
      const pos = at(), len = 1 + pick(64);
      return Buffer.concat([buf.subarray(0, pos), buf.subarray(Math.min(buf.length, pos + len))]);
    }
    case 4: { // duplicate a chunk
      const pos = at(), len = 1 + pick(64);
      return Buffer.concat([buf.subarray(0, pos), buf.subarray(pos, pos + len), buf.subarray(pos)]);
    }
    case 5: { // insert random bytes
      const pos = at(), extra = Buffer.alloc(1 + pick(16));
      for (let i = 0; i < extra.length; i++) extra[i] = pick(256);
      return Buffer.concat([buf.subarray(0, pos), extra, buf.subarray(pos)]);
    }
    case 6: { // replace a byte with a pickle opcode
      buf[at()] = PICKLE_OPS[pick(PICKLE_OPS.length)];
      return buf;
    }
    default: { // copy a chunk over another place
      const from = at(), to = at(), len = 1 + pick(32);
      buf.copy(buf, to, from, Math.min(buf.length, from + len));
      return buf;
    }
  }
}

const STORAGE_CLASSES = ['FloatStorage', 'DoubleStorage', 'HalfStorage', 'BFloat16Storage', 'LongStorage', 'IntStorage', 'ByteStorage', 'BoolStorage'];
// Sizes and strides a hostile file would pick: small, edge, huge (2^29 · 2^29 · 4 bytes = 2^60), negative.
const DIMS = [0, 1, 2, 3, 7, 64, 2 ** 16, 2 ** 29, 2 ** 31 - 1, 2 ** 31, 2 ** 40];
const STRIDES = [0, 0, 1, 1, 2, 3, 5, 64, 2 ** 20, 2 ** 31, 2 ** 45, -1];

// A crafted .pth of 1–3 tensors: random views over random storages, some sharing a storage, records aligned
// as PyTorch writes them or not at all.
export function craft(random: () => number): Buffer {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(random() * a.length)];
  const tensors: CraftedTensor[] = [];
  for (let i = 0, n = 1 + Math.floor(random() * 3); i < n; i++) {
    const rank = Math.floor(random() * 4);
    // One in five is a broadcast view (stride 0 where a dimension is large), as an expanded tensor is saved:
    // legal and cheap over a tiny storage, unless its shape claims more than memory could hold.
    const broadcast = rank > 0 && random() < 0.2;
    const sizes = Array.from({ length: rank }, () => (random() < (broadcast ? 0.2 : 0.6) ? 1 + Math.floor(random() * 6) : pick(DIMS)));
    const strides = Array.from({ length: rank }, (_, d) => (broadcast ? (sizes[d] > 6 ? 0 : 1) : random() < 0.5 ? 1 + Math.floor(random() * 6) : pick(STRIDES)));
    const shared = tensors.length > 0 && random() < 0.3;
    const storage = shared ? tensors[0].storage : {
      key: String(i), className: pick(STORAGE_CLASSES), numel: random() < 0.8 ? Math.floor(random() * 40) : pick(DIMS.slice(0, 7)),
    };
    tensors.push({ name: `t${i}`, storage, offset: random() < 0.8 ? Math.floor(random() * 4) : pick(DIMS), sizes, strides });
  }
  return craftPth(tensors, random() < 0.5 ? { padTo: 64 } : { padTo: 1, lead: 1 + Math.floor(random() * 7) });
}

// Opens and reads one file completely; returns 'read' | 'opened' or throws.
async function exercise(path: string): Promise<'read' | 'opened'> {
  const f = await TensorFile.open(path);
  try {
    for (const name of f.names) f.info(name);
    for (const name of f.names) {
      const t = await f.get(name);
      // A view may claim a large shape over a small storage (up to the machine's memory; larger ones are
      // refused by get): reading all of it would be slow, not unsafe, so only modest ones are summed.
      if (f.info(name).bytes <= (16 << 20)) await tensorChecksum(t);
      t.dispose();
    }
    for (const t of (await f.getAll()).values()) t.dispose();
    return 'read';
  } finally {
    await f.close();
  }
}

export interface FuzzOptions {
  iterations: number;
  seed?: number;
  files?: string[];
  /** Fraction of the iterations that are crafted files rather than mutations (default 0.3). */
  craftedShare?: number;
  /** Every truncation of these fixtures (file names in test/fixtures), or 'all' small ones (≤ 4 KB). */
  truncate?: string[] | 'all';
  log?: boolean;
}

export async function fuzzTensorFiles(options: FuzzOptions): Promise<FuzzReport> {
  const here = dirname(fileURLToPath(import.meta.url));
  const fixtures = resolve(here, '..', 'test', 'fixtures');
  const files = options.files ?? readdirSync(fixtures).filter((f) => /\.(pth|safetensors)$/.test(f)).map((f) => join(fixtures, f));
  const sources = files.map((f) => readFileSync(f));
  const random = seededRandom(options.seed ?? 1);
  const work = mkdtempSync(join(tmpdir(), 'litlora-fuzz-'));
  if (options.log) console.log(`fuzzing ${files.length} files × ${options.iterations} mutations; mutants in ${work}`);
  const report: FuzzReport = { iterations: 0, crafted: 0, truncations: 0, opened: 0, readAll: 0, errors: {}, unexpected: [], seconds: 0 };
  const start = performance.now();
  let serial = 0;
  // One input: written under a fresh name (a file still mapped by an undisposed tensor is never rewritten
  // under it), exercised, and removed unless it gave an unexpected error (then it stays as the reproducer).
  const attempt = async (bytes: Buffer, extension: string) => {
    const path = join(work, `input-${serial++}${extension}`);
    writeFileSync(path, bytes);
    try {
      const r = await exercise(path);
      report.opened++;
      if (r === 'read') report.readAll++;
    } catch (e: any) {
      const code = e?.code ?? 'NO_CODE';
      report.errors[code] = (report.errors[code] ?? 0) + 1;
      if (!EXPECTED_CODES.has(code) && report.unexpected.length < 20) report.unexpected.push(`${code}: ${e?.message} (${path})`);
      if (!EXPECTED_CODES.has(code)) return;
    }
    unlinkSync(path);
  };
  const extensionOf = (file: string) => (file.endsWith('.safetensors') ? '.safetensors' : '.pth');
  try {
    for (let i = 0; i < options.iterations; i++) {
      if (random() < (options.craftedShare ?? 0.3)) {
        let crafted = craft(random);
        if (random() < 0.2) crafted = mutate(crafted, random);
        report.crafted++;
        await attempt(crafted, '.pth');
      } else {
        let mutant = mutate(sources[i % sources.length], random);
        if (random() < 0.3) mutant = mutate(mutant, random);  // some double mutations
        await attempt(mutant, extensionOf(files[i % files.length]));
      }
      report.iterations++;
      if (options.log && (i + 1) % 1000 === 0) console.log(`  ${i + 1} inputs, ${report.opened} opened, ${report.readAll} fully read`);
    }
    const only = options.truncate === 'all' ? null : options.truncate ?? [];
    const truncated = only === null ? files.filter((_, k) => sources[k].length <= 4096)
      : files.filter((f) => only.some((name) => f.endsWith(`/${name}`)));
    for (const file of truncated) {
      const src = sources[files.indexOf(file)];
      for (let length = 0; length < src.length; length++) {
        await attempt(src.subarray(0, length), extensionOf(file));
        report.truncations++;
      }
      if (options.log) console.log(`  every truncation of ${file} (${src.length} bytes)`);
    }
  } finally {
    report.seconds = (performance.now() - start) / 1000;
    if (!report.unexpected.length) rmSync(work, { recursive: true, force: true });
  }
  return report;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const truncations = process.argv.includes('--truncations') ? process.argv[process.argv.indexOf('--truncations') + 1] : 'all';
  void fuzzTensorFiles({ iterations: arg('n', 10000), seed: arg('seed', 1), truncate: truncations === 'none' ? [] : 'all', log: true }).then((report) => {
    console.log(JSON.stringify(report, null, 2));
    console.log(`crashes: 0 (the process survived ${report.iterations} inputs and ${report.truncations} truncations); unexpected errors: ${report.unexpected.length}`);
    process.exit(report.unexpected.length ? 1 : 0);
  });
}

// Fuzzes the tensor-file readers (.pth zip + pickle, .safetensors): mutates real files N times and, in this
// process, opens each mutant and reads every tensor. A crash (segfault, abort, SIGBUS) kills the process,
// so reaching the summary means 0 crashes; every error must also carry one of the expected codes.
//
//   npx tsx scripts/fuzz-tensorfiles.ts [--n 10000] [--seed 1]
//
// The mutant being tried is always on disk (its path is printed first), so a crash leaves its reproducer.
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TensorFile } from '../ts/index.js';
import { tensorChecksum } from '../ts/tensorfile.js';
import { seededRandom } from '../test/helpers/assert.js';

const EXPECTED_CODES = new Set(['ERR_CHECKPOINT_FORMAT', 'ERR_DTYPE']);

export interface FuzzReport {
  iterations: number;
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

// Opens and reads one file completely; returns 'read' | 'opened' or throws.
async function exercise(path: string): Promise<'read' | 'opened'> {
  const f = await TensorFile.open(path);
  try {
    for (const name of f.names) f.info(name);
    let all = true;
    for (const name of f.names) {
      // Stride-0 views can claim huge shapes over tiny storages: touching them is slow, not unsafe.
      if (f.info(name).bytes > (16 << 20)) { all = false; continue; }
      const t = await f.get(name);
      await tensorChecksum(t);
      t.dispose();
    }
    if (all) for (const t of (await f.getAll()).values()) t.dispose();
    return all ? 'read' : 'opened';
  } finally {
    await f.close();
  }
}

export async function fuzzTensorFiles(options: { iterations: number; seed?: number; files?: string[]; log?: boolean }): Promise<FuzzReport> {
  const here = dirname(fileURLToPath(import.meta.url));
  const fixtures = resolve(here, '..', 'test', 'fixtures');
  const files = options.files ?? readdirSync(fixtures).filter((f) => /\.(pth|safetensors)$/.test(f)).map((f) => join(fixtures, f));
  const sources = files.map((f) => readFileSync(f));
  const random = seededRandom(options.seed ?? 1);
  const work = mkdtempSync(join(tmpdir(), 'litlora-fuzz-'));
  if (options.log) console.log(`fuzzing ${files.length} files × ${options.iterations} mutations; mutants in ${work}`);
  const report: FuzzReport = { iterations: 0, opened: 0, readAll: 0, errors: {}, unexpected: [], seconds: 0 };
  const start = performance.now();
  try {
    for (let i = 0; i < options.iterations; i++) {
      const src = sources[i % sources.length];
      let mutant = mutate(src, random);
      if (random() < 0.3) mutant = mutate(mutant, random);  // some double mutations
      // A fresh name each time: a file still mapped by an undisposed tensor is never rewritten under it.
      const path = join(work, `mutant-${i}${files[i % files.length].endsWith('.safetensors') ? '.safetensors' : '.pth'}`);
      writeFileSync(path, mutant);
      try {
        const r = await exercise(path);
        report.opened++;
        if (r === 'read') report.readAll++;
      } catch (e: any) {
        const code = e?.code ?? 'NO_CODE';
        report.errors[code] = (report.errors[code] ?? 0) + 1;
        if (!EXPECTED_CODES.has(code) && report.unexpected.length < 20) report.unexpected.push(`${code}: ${e?.message} (${path})`);
        if (!EXPECTED_CODES.has(code)) continue;  // keep the reproducer
      }
      unlinkSync(path);
      report.iterations++;
      if (options.log && (i + 1) % 1000 === 0) console.log(`  ${i + 1} mutations, ${report.opened} opened, ${report.readAll} fully read`);
    }
    report.iterations = options.iterations;
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
  void fuzzTensorFiles({ iterations: arg('n', 10000), seed: arg('seed', 1), log: true }).then((report) => {
    console.log(JSON.stringify(report, null, 2));
    console.log(`crashes: 0 (the process survived ${report.iterations} mutations); unexpected errors: ${report.unexpected.length}`);
    process.exit(report.unexpected.length ? 1 : 0);
  });
}

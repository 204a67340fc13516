// What the process-per-run benches (bench:merge, bench:convert) share: running one measured child, medians,
// the disk's durable-write floor (bench:gguf's too) and the markdown table they print.
import { spawnSync } from 'node:child_process';
import { closeSync, fdatasync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { packageRoot } from '../ts/addon_loader.js';

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs `cmd args` to its end from the package root and returns the JSON object on its last line of stdout, with
 * `wall`: the seconds from spawn to exit (the whole process: start-up, imports, work, exit).
 */
export function runJsonChild<T>(cmd: string, args: string[]): T & { wall: number } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: packageRoot, maxBuffer: 16 << 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return { ...JSON.parse(r.stdout.trim().split('\n').pop()!), wall };
}

/**
 * Deletes `path` (a file or folder) and waits until the deletion has reached the disk. The bench machines mount ext4
 * with `discard`: freeing 1 GB makes the next journal commit send the disk a discard of every freed block, which on
 * their virtual disks took up to ~14 s, stalling whatever wrote next — one measured conversion, seemingly at random
 * (bench:convert's first reps, 2026-12-02). `sync` makes that commit happen here, untimed, for every side alike.
 */
export function removeAndSettle(path: string): void {
  rmSync(path, { recursive: true, force: true });
  spawnSync('sync', [], { stdio: 'ignore' });
}

/** The two ways writeFloorSeconds writes: write then fsync once, or fdatasync as the bytes are written. */
export type FloorWay = 'sync-at-end' | 'sync-as-written';

/**
 * The seconds to write `bytes` to `file` and make them durable, one way: 'sync-at-end' writes 16 MB blocks, then
 * fsyncs (as cp does); 'sync-as-written' writes 4 MB blocks and keeps one fdatasync running on a libuv thread
 * whenever 8 MB more were written, then fsyncs (as litlora's AtomicFile does). The file is removed after it
 * (removeAndSettle: untimed).
 */
export async function writeFloorOnce(file: string, bytes: number, way: FloorWay): Promise<number> {
  const [blockBytes, syncEvery] = way === 'sync-at-end' ? [16 << 20, 0] : [4 << 20, 8 << 20];
  const block = Buffer.alloc(blockBytes, 1);
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  let inFlight: Promise<void> | null = null, unsynced = 0;
  for (let done = 0; done < bytes; done += block.length) {
    const n = Math.min(block.length, bytes - done);
    writeSync(fd, block, 0, n);
    unsynced += n;
    if (syncEvery && unsynced >= syncEvery && !inFlight) {
      unsynced = 0;
      inFlight = new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve()))).then(() => { inFlight = null; });
    }
    if (syncEvery) await new Promise(setImmediate);  // lets a finished fdatasync's callback run
  }
  fsyncSync(fd);
  await inFlight;
  closeSync(fd);
  const seconds = (performance.now() - t0) / 1000;
  removeAndSettle(file);
  return seconds;
}

/**
 * The floor of any tool that writes `bytes` durably to the disk holding `file`: the faster of writeFloorOnce's two
 * ways. On the bench VMs' virtual disks the flush is what costs, and flushing as it goes was the faster way
 * (2026-12-03, 529 MB: 0.53–0.57 s against 0.64–0.67 s).
 */
export async function writeFloorSeconds(file: string, bytes: number): Promise<number> {
  return Math.min(await writeFloorOnce(file, bytes, 'sync-at-end'), await writeFloorOnce(file, bytes, 'sync-as-written'));
}

/** A markdown table with padded columns; the first row is the header. */
export function markdownTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r, j) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |` +
    (j === 0 ? `\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|` : '')).join('\n');
}

/** The machine in words: cores, CPU model, memory, Node. */
export function machineName(): string {
  const cpu = cpus();
  return `${cpu.length}-core ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

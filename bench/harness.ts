// What the process-per-run benches (bench:merge, bench:convert) share: running one measured child, medians,
// the disk's durable-write floor and the markdown table they print.
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
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

/**
 * The floor of any tool that writes `bytes` durably to the disk holding `file`: the seconds to write as many
 * bytes in 16 MB blocks and fsync them. The file is removed afterwards (removeAndSettle: untimed).
 */
export function writeFloorSeconds(file: string, bytes: number): number {
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(16 << 20, 1);
  for (let done = 0; done < bytes; done += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - done));
  fsyncSync(fd);
  closeSync(fd);
  const seconds = (performance.now() - t0) / 1000;
  removeAndSettle(file);
  return seconds;
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

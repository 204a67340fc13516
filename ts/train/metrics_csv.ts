// metrics.csv as litgpt writes it through Lightning Fabric's CSVLogger (lightning/fabric/loggers/csv_logs.py):
// `fabric.log_dict(metrics, step=iter_num)` appends a row whose "step" value is overwritten by the `step`
// argument (so the column named step holds iter_num, not the optimizer step); the columns are every key in
// first-appearance order — loss, iter, step, epoch, iter_time, tokens, total_tokens, learning_rate, then
// val_loss, val_ppl; a row lacks the keys it did not log (empty cells); Python's csv module writes
// "\r\n" line ends and floats as Python's repr. The file is rewritten whole and atomically on each flush.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { ioError, isFsError } from '../io/fs_errors.js';

export type MetricValue = number | { int: number } | string;

/** Python's repr of a float: shortest round-trip digits, always a '.0' or exponent, exponents as e-05 / e+16. */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  // Python switches to scientific notation when the decimal exponent is < -4 or >= 16; in between, JS's
  // String() gives the same shortest digits in fixed notation.
  if (abs < 1e-4 || abs >= 1e16) {
    const [mant, e] = x.toExponential().split('e'); // shortest digits, e.g. "1e-5", "1.5e+20"
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const s = String(x);
  return s.includes('.') ? s : `${s}.0`;
}

function cell(v: MetricValue | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
  if (typeof v === 'number') return pyFloat(v);
  return String(v.int);
}

/** Integer metrics (Python ints in litgpt) are marked { int: n }; plain numbers are Python floats. */
export const int = (n: number): { int: number } => ({ int: n });

export class MetricsCsv {
  readonly path: string;
  readonly #keys: string[] = [];
  readonly #rows: Record<string, MetricValue>[] = [];
  #dirty = false;

  /** `dir` is the version folder (out_dir/logs/csv/version_N). */
  constructor(dir: string) {
    this.path = join(dir, 'metrics.csv');
  }

  /** Lightning's log_metrics: the row's "step" becomes `step` (litgpt passes iter_num). */
  log(metrics: Record<string, MetricValue>, step: number): void {
    const row: Record<string, MetricValue> = { ...metrics, step: int(step) };
    for (const k of Object.keys(row)) if (!this.#keys.includes(k)) this.#keys.push(k);
    this.#rows.push(row);
    this.#dirty = true;
  }

  get rows(): readonly Readonly<Record<string, MetricValue>>[] { return this.#rows; }
  get columns(): readonly string[] { return this.#keys; }

  /** The file's text. */
  text(): string {
    const lines = [this.#keys.join(',')];
    for (const r of this.#rows) lines.push(this.#keys.map((k) => cell(r[k])).join(','));
    return lines.map((l) => `${l}\r\n`).join('');
  }

  /** Writes the whole file atomically (temp file, fsync, rename) when rows were added since the last flush. */
  flush(): void {
    if (!this.#dirty || this.#keys.length === 0) return;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      writeFileAtomicSync(this.path, this.text());
    } catch (e) {
      throw isFsError(e) ? ioError(e, `write the metrics file ${this.path}`) : e;
    }
    this.#dirty = false;
  }

  /** Rows of an existing metrics.csv (for resuming into the same version folder). */
  static parse(text: string): { keys: string[]; rows: Record<string, string>[] } {
    const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
    const keys = (lines[0] ?? '').split(',');
    return { keys, rows: lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [keys[i]!, v]))) };
  }
}

// Typed reading of data-module arguments (`--data.key value` from the CLI or init_args from YAML).
import { fail } from '../errors.js';

/** Arguments as the CLI passes them (`--data.json_path F` → { json_path: 'F' }); strings are parsed. */
export type DataModuleArgs = Record<string, unknown>;

/**
 * Reads typed arguments for a module, rejecting unknown keys; CLI strings are converted. It takes any object:
 * a module's typed arguments (JSONArgs, …) and the CLI's untyped ones are checked alike at run time.
 */
export class ArgReader {
  private readonly used = new Set<string>();
  private readonly args: DataModuleArgs;
  constructor(private readonly module: string, args: object) {
    if (args === null || typeof args !== 'object') fail('ERR_CONFIG', `${module}: expected an object of arguments`);
    this.args = args as DataModuleArgs;
  }

  private raw(key: string): unknown {
    this.used.add(key);
    return this.args[key];
  }

  string(key: string, fallback?: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (fallback === undefined) fail('ERR_CONFIG', `--data.${key} is required for --data ${this.module}`);
      return fallback;
    }
    if (typeof v !== 'string' || v.length === 0) fail('ERR_CONFIG', `--data.${key}: expected a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalString(key: string): string | null {
    const v = this.raw(key);
    if (v === undefined || v === null || v === 'null' || v === 'None') return null;
    if (typeof v !== 'string' || v.length === 0) fail('ERR_CONFIG', `--data.${key}: expected a path, got ${JSON.stringify(v)}`);
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
    return fail('ERR_CONFIG', `--data.${key}: expected true or false, got ${JSON.stringify(v)}`);
  }

  number(key: string, fallback: number | null, { integer = false, min = -Infinity, max = Infinity, minExclusive = false } = {}): number | null {
    const v = this.raw(key);
    if (v === undefined || v === null || v === 'null' || v === 'None') return fallback;
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    const range = `${minExclusive ? '(' : '['}${min}, ${max}]`;
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max || (minExclusive && n === min)) {
      fail('ERR_CONFIG', `--data.${key}: expected ${integer ? 'an integer' : 'a number'} in ${range}, got ${JSON.stringify(v)}`);
    }
    return n;
  }

  /** Call last: any argument not read is an error naming it. */
  done(): void {
    const unknown = Object.keys(this.args).filter((k) => !this.used.has(k) && this.args[k] !== undefined);
    if (unknown.length) {
      fail('ERR_CONFIG', `--data ${this.module} does not take ${unknown.map((k) => `--data.${k}`).join(', ')}; ` +
        `it takes ${[...this.used].map((k) => `--data.${k}`).join(', ')}`);
    }
  }
}

/** Yields to the event loop every `every` iterations of long synchronous work. */
export function makeYielder(every = 256): () => Promise<void> | null {
  let n = 0;
  return () => (++n % every === 0 ? new Promise<void>((r) => setImmediate(r)) : null);
}

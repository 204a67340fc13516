// The command-line grammar litgpt users know (jsonargparse's): `--flag value`, `--flag=value`, dotted flags
// for nested settings (`--train.micro_batch_size 4`), booleans as `--flag true|false` (or a bare `--flag`),
// `null` for optional values, positional arguments where a command declares them, and `--config file.yaml`
// whose keys are flag names (nested mappings for dotted flags). Flags given on the command line override
// the file. Unknown and malformed flags are ArgErrors naming the flag (exit code 2).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LitloraError } from '../errors.js';
import { parseYaml } from '../io/yaml.js';

export type FlagType = 'int' | 'float' | 'bool' | 'string' | 'path';

export interface FlagSpec {
  /** The flag's name without dashes; dots for nested settings ('train.save_interval'). */
  name: string;
  type: FlagType;
  help: string;
  /** The value when not given. `undefined` with `required` means it must be given. */
  default?: unknown;
  required?: boolean;
  /** Accept `null` / `None` (an optional setting left unset). */
  nullable?: boolean;
  choices?: readonly string[];
  /** Shown instead of the type in help ('NAME', 'DIR', ...). */
  metavar?: string;
  /** Shown as the default in help when the real default is computed (e.g. 'checkpoints/<model_name>'). */
  defaultText?: string;
  /** May be given several times (a YAML list in --config); the value is the array of every one given. */
  repeatable?: boolean;
}

/** A family of flags `--<prefix><key>` checked by `accepts` (e.g. `--model.n_layer` for any Config field). */
export interface FlagFamily {
  prefix: string;
  help: string;
  metavar?: string;
  /** Returns the parsed value, or throws an ArgError; `key` is the part after the prefix. */
  accepts(key: string, raw: unknown): unknown;
  keys: () => readonly string[];
}

export interface PositionalSpec {
  /** The flag it fills (`litlora migrate DIR` fills `path`); it may also be given as --<flag>. */
  flag: string;
  metavar: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  description?: string;
  positionals?: PositionalSpec[];
  flags: FlagSpec[];
  families?: FlagFamily[];
  examples?: string[];
  /**
   * Turns a --config file's mapping into flag names and values before they are read (e.g. litgpt's
   * `class_path`/`init_args` sections); errors name `file`.
   */
  readConfig?(doc: Record<string, unknown>, file: string): Record<string, unknown>;
  run(args: ParsedArgs, io: CliIO): Promise<number | void>;
}

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
  /** Runs another command line of this CLI (runCli sets it), for commands that run others, as the demo does. */
  runCli?: (argv: readonly string[], io: CliIO) => Promise<number>;
}

export class ArgError extends LitloraError {
  constructor(message: string) {
    super('ERR_ARG', message);
    this.name = 'ArgError';
  }
}

export class ParsedArgs {
  constructor(
    /** Every flag's value by its dotted name: given, from --config, or the default. */
    readonly values: Record<string, unknown>,
    /** The names given on the command line or in --config (what litgpt records "as typed"). */
    readonly given: Set<string>,
  ) {}

  get<T = unknown>(name: string): T {
    return this.values[name] as T;
  }

  /** The values as a nested object (`train.save_interval` → `{ train: { save_interval } }`). */
  nested(): Record<string, unknown> {
    const out: Record<string, any> = {};
    for (const [name, value] of Object.entries(this.values)) {
      if (value === undefined) continue;
      const parts = name.split('.');
      let node = out;
      for (const p of parts.slice(0, -1)) {
        if (node[p] === undefined || node[p] === null || typeof node[p] !== 'object') node[p] = {};
        node = node[p];
      }
      node[parts[parts.length - 1]] = value;
    }
    return out;
  }
}

const NULLS = new Set(['null', 'none', 'None', 'Null', 'NULL', '~']);
const TRUE = new Set(['true', 'True', 'TRUE', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'False', 'FALSE', 'no', 'off', '0']);

/** Converts a command-line string (or a YAML value from --config) to the flag's type. */
export function convertValue(spec: Pick<FlagSpec, 'name' | 'type' | 'nullable' | 'choices'>, raw: unknown, origin: string): unknown {
  const bad = (expected: string): never => {
    throw new ArgError(`${origin}: --${spec.name} expects ${expected}, got ${JSON.stringify(raw)}`);
  };
  // A word the flag lists as a choice is that choice, even when it also spells null ('none').
  if (typeof raw === 'string' && spec.choices?.includes(raw)) return raw;
  if (raw === null || (typeof raw === 'string' && NULLS.has(raw))) {
    if (spec.nullable) return null;
    bad(`${articleFor(spec.type)}${spec.choices ? ` (one of ${spec.choices.join(', ')})` : ''}; it cannot be null`);
  }
  let value: unknown;
  switch (spec.type) {
    case 'int':
      if (typeof raw === 'number' && Number.isInteger(raw)) value = raw;
      else if (typeof raw === 'string' && /^[-+]?\d+$/.test(raw.trim())) value = Number(raw);
      else bad('an integer');
      break;
    case 'float':
      if (typeof raw === 'number') value = raw;
      else if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) value = Number(raw);
      else bad('a number');
      break;
    case 'bool':
      if (typeof raw === 'boolean') value = raw;
      else if (typeof raw === 'string' && TRUE.has(raw)) value = true;
      else if (typeof raw === 'string' && FALSE.has(raw)) value = false;
      else bad('true or false');
      break;
    default:
      if (typeof raw === 'string') value = raw;
      else if (typeof raw === 'number' || typeof raw === 'boolean') value = String(raw);
      else bad('a string');
  }
  if (spec.choices && !spec.choices.includes(String(value))) bad(`one of ${spec.choices.join(', ')}`);
  return value;
}

function articleFor(type: FlagType): string {
  return { int: 'an integer', float: 'a number', bool: 'true or false', string: 'a string', path: 'a path' }[type];
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

function suggestion(name: string, known: string[]): string {
  let best = '', bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best && bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` Did you mean --${best}?` : '';
}

/** Flattens a --config mapping into dotted names. A mapping under a known non-family flag is an error. */
function flatten(value: unknown, prefix: string, out: Map<string, unknown>, isLeaf: (name: string) => boolean): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(prefix && isLeaf(prefix))) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      flatten(v, prefix ? `${prefix}.${k}` : k, out, isLeaf);
    }
  } else if (prefix) {
    out.set(prefix, value);
  }
}

/** Parses `argv` (the words after the command name) against `spec`. */
export function parseArgs(spec: CommandSpec, argv: readonly string[], cwd = process.cwd()): ParsedArgs | 'help' {
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const families = spec.families ?? [];
  const cmd = `litlora ${spec.name}`;
  const helpHint = ` Run \`${cmd} --help\` for the flags.`;
  const given = new Map<string, unknown>(); // raw values from the command line, by flag name
  let configFile: string | null = null;
  const positionals: string[] = [];

  const resolveFlag = (name: string, raw: unknown, origin: string): unknown => {
    const f = byName.get(name);
    if (f?.repeatable) return (Array.isArray(raw) ? raw : [raw]).map((one) => convertValue(f, one, origin));
    if (f) return convertValue(f, raw, origin);
    const fam = families.find((x) => name.startsWith(x.prefix) && name.length > x.prefix.length);
    if (fam) return fam.accepts(name.slice(fam.prefix.length), raw);
    const known = [...byName.keys(), ...families.flatMap((x) => x.keys().map((k) => x.prefix + k)), 'config', 'help'];
    throw new ArgError(`${origin}: unknown flag --${name} for \`${cmd}\`.${suggestion(name, known)}${helpHint}`);
  };

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--help' || word === '-h') return 'help';
    if (word === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!word.startsWith('-') || word === '-' || /^-\d/.test(word)) { positionals.push(word); continue; }
    if (!word.startsWith('--')) throw new ArgError(`malformed flag ${word}: flags are written --name value.${helpHint}`);
    let name = word.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) {
      throw new ArgError(`malformed flag ${word}: expected --name or --name.sub (letters, digits, _ and dots).${helpHint}`);
    }
    if (name === 'config') {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined || value.startsWith('--')) throw new ArgError(`--config needs a YAML file path.${helpHint}`);
      }
      configFile = value;
      continue;
    }
    const isBool = byName.get(name)?.type === 'bool';
    if (value === undefined) {
      const next = argv[i + 1];
      if (isBool) {
        // `--flag` alone means true; `--flag false` (or any bool word) sets it explicitly.
        if (next !== undefined && (TRUE.has(next) || FALSE.has(next) || NULLS.has(next))) value = argv[++i];
        else value = 'true';
      } else {
        if (next === undefined || (next.startsWith('--') && next.length > 2)) {
          if (!byName.has(name) && !families.some((x) => name.startsWith(x.prefix))) resolveFlag(name, '', 'command line');
          const f = byName.get(name);
          throw new ArgError(`flag --${name} needs a value${f ? ` (${articleFor(f.type)})` : ''}.${helpHint}`);
        }
        value = argv[++i];
      }
    }
    resolveFlag(name, value, 'command line'); // validates now, so errors name the flag as typed
    given.set(name, byName.get(name)?.repeatable ? [...((given.get(name) as unknown[] | undefined) ?? []), value] : value);
  }

  const posSpecs = spec.positionals ?? [];
  if (positionals.length > posSpecs.length) {
    throw new ArgError(`unexpected argument ${JSON.stringify(positionals[posSpecs.length])} for \`${cmd}\`` +
      `${posSpecs.length ? ` (it takes ${posSpecs.map((p) => p.metavar).join(' ')})` : ' (it takes only flags)'}.${helpHint}`);
  }
  positionals.forEach((word, i) => {
    const flag = posSpecs[i].flag;
    if (given.has(flag)) throw new ArgError(`${posSpecs[i].metavar} was given both as an argument and as --${flag}.${helpHint}`);
    given.set(flag, word);
  });

  const values: Record<string, unknown> = {};
  const from = new Set<string>();
  if (configFile !== null) {
    const path = resolve(cwd, configFile);
    let text: string;
    try { text = readFileSync(path, 'utf8'); } catch (e) {
      throw new ArgError(`--config ${configFile}: cannot read it (${(e as Error).message}).`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text, path).value;
    } catch (e) {
      // The file's content is the problem (bad YAML, an alias bomb), not the command line: ERR_CONFIG, exit 1.
      throw new LitloraError('ERR_CONFIG', `--config ${configFile}: ${(e as Error).message}`);
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ArgError(`--config ${configFile}: expected a mapping of flag names to values.`);
    }
    const doc = spec.readConfig ? spec.readConfig((parsed ?? {}) as Record<string, unknown>, configFile) : parsed ?? {};
    const flat = new Map<string, unknown>();
    flatten(doc, '', flat, (n) => byName.has(n));
    for (const [name, raw] of flat) {
      if (given.has(name)) continue; // the command line wins
      values[name] = resolveFlag(name, raw, `--config ${configFile}`);
      from.add(name);
    }
  }
  for (const [name, raw] of given) {
    values[name] = resolveFlag(name, raw, 'command line');
    from.add(name);
  }
  for (const f of spec.flags) {
    if (!(f.name in values)) {
      if (f.required) {
        const pos = posSpecs.find((p) => p.flag === f.name);
        throw new ArgError(`\`${cmd}\` needs ${pos ? `${pos.metavar} (or --${f.name})` : `--${f.name}`}: ${f.help}${helpHint}`);
      }
      values[f.name] = f.default;
    }
  }
  return new ParsedArgs(values, from);
}

function formatDefault(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return 'null';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The text of `litlora <command> --help`. */
export function helpText(spec: CommandSpec): string {
  const pos = (spec.positionals ?? []).map((p) => ` [${p.metavar}]`).join('');
  const lines = [`Usage: litlora ${spec.name}${pos} [--flag value ...]`, '', spec.summary];
  if (spec.description) lines.push('', spec.description.trim());
  lines.push('', 'Flags:');
  const rows: [string, string][] = [];
  for (const f of spec.flags) {
    const meta = f.metavar ?? (f.choices ? f.choices.join('|') : f.type.toUpperCase());
    const pieces = [f.help];
    if (f.required) pieces.push('(required)');
    else pieces.push(`(default: ${f.defaultText ?? formatDefault(f.default)})`);
    rows.push([`--${f.name} ${meta}`, pieces.join(' ')]);
  }
  for (const fam of spec.families ?? []) rows.push([`--${fam.prefix}<key> ${fam.metavar ?? 'VALUE'}`, fam.help]);
  rows.push(['--config FILE', 'Read flags from a YAML file (keys are flag names, nested mappings for dotted flags); command-line flags win']);
  rows.push(['-h, --help', 'Show this help']);
  const width = Math.min(34, Math.max(...rows.map(([a]) => a.length)) + 2);
  for (const [a, b] of rows) {
    lines.push(a.length + 2 > width ? `  ${a}\n  ${' '.repeat(width)}${b}` : `  ${a.padEnd(width)}${b}`);
  }
  for (const p of spec.positionals ?? []) lines.push(`  ${p.metavar} may be given as the argument or as --${p.flag}.`);
  if (spec.examples?.length) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

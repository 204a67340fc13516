// YAML as litgpt writes and reads it. litgpt writes model_config.yaml with PyYAML's `yaml.dump(dict)`
// (sorted keys, block style, YAML 1.1 scalars) and reads everything with `yaml.safe_load`. This module
// mirrors PyYAML 6's emitter closely enough that our files are byte-for-byte what PyYAML would write
// (test/04.checkpoint.yaml.test.ts compares against real PyYAML), and parses with the `yaml` package in
// YAML 1.1 mode.
//
// JS has one number type, Python two: `1.0` and `1` are different files. A number is written as a float
// when it is not an integer, or when `isFloat(path)` says so. `parseYaml` records which scalars were
// written as floats so that a file read and written again keeps its exact form.
import { isAlias, isCollection, isPair, isScalar, isSeq, parseDocument, visit, type Document, type Node, type Scalar } from 'yaml';
import { fail } from '../errors.js';

export type YamlValue = null | boolean | number | bigint | string | YamlValue[] | { [key: string]: YamlValue | undefined };

export interface DumpOptions {
  /** PyYAML's sort_keys (default true). litgpt's hyperparameters.yaml (jsonargparse) keeps insertion order. */
  sortKeys?: boolean;
  /**
   * Whether an integer-valued number at `path` is a Python float (`1.0`, not `1`). Path elements are
   * mapping keys and, for sequence items, '*'.
   */
  isFloat?: (path: readonly string[]) => boolean;
}

const BEST_WIDTH = 80;
const BEST_INDENT = 2;
const LINE_BREAKS = '\n\x85\u2028\u2029';
const WHITESPACE_OR_END = '\0 \t\r\n\x85\u2028\u2029';

// ---------------------------------------------------------------------------------------------------------
// Scalars: how PyYAML's representer turns a value into text, and whether its resolver would read a plain
// string back as something else (then the string must be quoted).

// PyYAML's implicit resolvers (yaml/resolver.py), YAML 1.1. Python's `$` also matches before a final '\n'.
const RESOLVERS: [RegExp, string][] = [
  [/^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)\n?$/, 'yYnNtTfFoO'],
  [/^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\n?$/, '-+0123456789.'],
  [/^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)\n?$/, '-+0123456789'],
  [/^(?:<<)\n?$/, '<'],
  [/^(?:~|null|Null|NULL|)\n?$/, '~nN'],
  [/^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)\n?$/, '0123456789'],
  [/^(?:=)\n?$/, '='],
];

/** True when PyYAML would read `s`, written plain, as a string. */
function resolvesToString(s: string): boolean {
  if (s === '') return false; // the null resolver matches ''
  for (const [re, first] of RESOLVERS) if (first.includes(s[0]) && re.test(s)) return false;
  return true;
}

/** Python's repr() of a float, then PyYAML's represent_float tweaks (`1e-05` → `1.0e-05`). */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return '.nan';
  if (x === Infinity) return '.inf';
  if (x === -Infinity) return '-.inf';
  let text: string;
  if (x === 0) {
    text = Object.is(x, -0) ? '-0.0' : '0.0';
  } else {
    // Shortest round-trip digits (JS and Python agree on them); only the layout rule differs:
    // Python uses exponent notation when the decimal exponent is < -4 or >= 16.
    const [mantissa, expText] = Math.abs(x).toExponential().split('e');
    const digits = mantissa.replace('.', '');
    const exp = Number(expText); // value = d.ddd × 10^exp
    const sign = x < 0 ? '-' : '';
    if (exp < -4 || exp >= 16) {
      const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
      text = `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
    } else if (exp < 0) {
      text = `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    } else if (digits.length > exp + 1) {
      text = `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
    } else {
      text = `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
    }
  }
  if (!text.includes('.') && text.includes('e')) text = text.replace('e', '.0e');
  return text;
}

interface Analysis {
  empty: boolean; multiline: boolean; allowBlockPlain: boolean; allowSingleQuoted: boolean;
}

// PyYAML's Emitter.analyze_scalar, block context only (we never emit flow collections with content).
function analyzeScalar(chars: string[]): Analysis {
  if (chars.length === 0) return { empty: true, multiline: false, allowBlockPlain: true, allowSingleQuoted: true };
  const text = chars.join('');
  let blockIndicators = false, lineBreaks = false, special = false;
  let leadingSpace = false, leadingBreak = false, trailingSpace = false, trailingBreak = false;
  let breakSpace = false, spaceBreak = false, previousSpace = false, previousBreak = false;
  if (text.startsWith('---') || text.startsWith('...')) blockIndicators = true;
  let precededByWhitespace = true;
  let followedByWhitespace = chars.length === 1 || WHITESPACE_OR_END.includes(chars[1]);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(ch)) blockIndicators = true;
      if ('?:'.includes(ch) && followedByWhitespace) blockIndicators = true;
      if (ch === '-' && followedByWhitespace) blockIndicators = true;
    } else {
      if (ch === ':' && followedByWhitespace) blockIndicators = true;
      if (ch === '#' && precededByWhitespace) blockIndicators = true;
    }
    if (LINE_BREAKS.includes(ch)) lineBreaks = true;
    const cp = ch.codePointAt(0)!;
    if (!(ch === '\n' || (cp >= 0x20 && cp <= 0x7e))) {
      // allow_unicode is False in yaml.dump's defaults: every non-ASCII character forces double quotes.
      special = true;
    }
    if (ch === ' ') {
      if (i === 0) leadingSpace = true;
      if (i === chars.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true; previousBreak = false;
    } else if (LINE_BREAKS.includes(ch)) {
      if (i === 0) leadingBreak = true;
      if (i === chars.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false; previousBreak = true;
    } else {
      previousSpace = false; previousBreak = false;
    }
    precededByWhitespace = WHITESPACE_OR_END.includes(ch);
    followedByWhitespace = i + 2 >= chars.length || WHITESPACE_OR_END.includes(chars[i + 2]);
  }
  let allowBlockPlain = true, allowSingleQuoted = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) allowBlockPlain = false;
  if (breakSpace) allowBlockPlain = allowSingleQuoted = false;
  if (spaceBreak || special) allowBlockPlain = allowSingleQuoted = false;
  if (lineBreaks) allowBlockPlain = false;
  if (blockIndicators) allowBlockPlain = false;
  return { empty: false, multiline: lineBreaks, allowBlockPlain, allowSingleQuoted };
}

const ESCAPES: Record<string, string> = {
  '\0': '0', '\x07': 'a', '\x08': 'b', '\x09': 't', '\x0A': 'n', '\x0B': 'v', '\x0C': 'f', '\x0D': 'r',
  '\x1B': 'e', '"': '"', '\\': '\\', '\x85': 'N', '\xA0': '_', '\u2028': 'L', '\u2029': 'P',
};

// ---------------------------------------------------------------------------------------------------------
// The emitter: a transcription of the parts of PyYAML's Emitter used for block mappings and sequences of
// scalars, including its column bookkeeping (long scalars fold at spaces past column 80).

class Emitter {
  out = '';
  column = 0;
  whitespace = true;
  indention = true;
  indent = 0;

  constructor(private readonly options: Required<DumpOptions>) {}

  private write(data: string): void {
    this.out += data;
    this.column += [...data].length;
  }

  private lineBreak(): void {
    this.out += '\n';
    this.whitespace = true;
    this.indention = true;
    this.column = 0;
  }

  private writeIndent(): void {
    const indent = this.indent;
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) this.lineBreak();
    if (this.column < indent) {
      this.whitespace = true;
      this.out += ' '.repeat(indent - this.column);
      this.column = indent;
    }
  }

  private writeIndicator(indicator: string, needWhitespace: boolean, whitespace = false, indention = false): void {
    this.write(this.whitespace || !needWhitespace ? indicator : ` ${indicator}`);
    this.whitespace = whitespace;
    this.indention = this.indention && indention;
  }

  // --- scalars ---

  private scalarText(value: YamlValue, path: string[]): { text: string; plainOnly: boolean } {
    if (value === null || value === undefined) return { text: 'null', plainOnly: true };
    if (typeof value === 'boolean') return { text: value ? 'true' : 'false', plainOnly: true };
    if (typeof value === 'bigint') return { text: value.toString(), plainOnly: true };
    if (typeof value === 'number') {
      const asFloat = !Number.isInteger(value) || this.options.isFloat(path);
      return { text: asFloat ? pyFloat(value) : String(value), plainOnly: true };
    }
    return { text: value as string, plainOnly: false };
  }

  private scalar(value: YamlValue, path: string[], simpleKey: boolean): void {
    const { text, plainOnly } = this.scalarText(value, path);
    const chars = [...text];
    let style: 'plain' | 'single' | 'double';
    if (plainOnly) {
      style = 'plain';
    } else {
      const a = analyzeScalar(chars);
      const implicit = resolvesToString(text);
      if (implicit && !(simpleKey && (a.empty || a.multiline)) && a.allowBlockPlain) style = 'plain';
      else if (a.allowSingleQuoted && !(simpleKey && a.multiline)) style = 'single';
      else style = 'double';
    }
    const split = !simpleKey;
    if (style === 'plain') this.writePlain(chars, split);
    else if (style === 'single') this.writeSingleQuoted(chars, split);
    else this.writeDoubleQuoted(chars, split);
  }

  private writePlain(chars: string[], split: boolean): void {
    if (chars.length === 0) return;
    if (!this.whitespace) this.write(' ');
    this.whitespace = false;
    this.indention = false;
    let spaces = false, start = 0;
    for (let end = 0; end <= chars.length; end++) {
      const ch = end < chars.length ? chars[end] : null;
      if (spaces) {
        if (ch !== ' ') {
          if (start + 1 === end && this.column > BEST_WIDTH && split) {
            this.writeIndent();
            this.whitespace = false;
            this.indention = false;
          } else {
            this.write(chars.slice(start, end).join(''));
          }
          start = end;
        }
      } else if (ch === null || ' \n\x85\u2028\u2029'.includes(ch)) {
        this.write(chars.slice(start, end).join(''));
        start = end;
      }
      if (ch !== null) spaces = ch === ' ';
    }
  }

  private writeSingleQuoted(chars: string[], split: boolean): void {
    this.writeIndicator("'", true);
    let spaces = false, breaks = false, start = 0;
    for (let end = 0; end <= chars.length; end++) {
      const ch = end < chars.length ? chars[end] : null;
      if (spaces) {
        if (ch === null || ch !== ' ') {
          if (start + 1 === end && this.column > BEST_WIDTH && split && start !== 0 && end !== chars.length) {
            this.writeIndent();
          } else {
            this.write(chars.slice(start, end).join(''));
          }
          start = end;
        }
      } else if (breaks) {
        if (ch === null || !LINE_BREAKS.includes(ch)) {
          if (chars[start] === '\n') this.lineBreak();
          for (const br of chars.slice(start, end)) {
            if (br === '\n') this.lineBreak();
            else { this.out += br; this.whitespace = true; this.indention = true; this.column = 0; }
          }
          this.writeIndent();
          start = end;
        }
      } else if (ch === null || ' \n\x85\u2028\u2029'.includes(ch) || ch === "'") {
        if (start < end) {
          this.write(chars.slice(start, end).join(''));
          start = end;
        }
      }
      if (ch === "'") {
        this.write("''");
        start = end + 1;
      }
      if (ch !== null) {
        spaces = ch === ' ';
        breaks = LINE_BREAKS.includes(ch);
      }
    }
    this.writeIndicator("'", false);
  }

  private writeDoubleQuoted(chars: string[], split: boolean): void {
    this.writeIndicator('"', true);
    let start = 0;
    for (let end = 0; end <= chars.length; end++) {
      const ch = end < chars.length ? chars[end] : null;
      const cp = ch === null ? 0 : ch.codePointAt(0)!;
      if (ch === null || '"\\\x85\u2028\u2029\uFEFF'.includes(ch) || !(cp >= 0x20 && cp <= 0x7e)) {
        if (start < end) {
          this.write(chars.slice(start, end).join(''));
          start = end;
        }
        if (ch !== null) {
          let data: string;
          if (ESCAPES[ch] !== undefined) data = `\\${ESCAPES[ch]}`;
          else if (cp <= 0xff) data = `\\x${cp.toString(16).toUpperCase().padStart(2, '0')}`;
          else if (cp <= 0xffff) data = `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
          else data = `\\U${cp.toString(16).toUpperCase().padStart(8, '0')}`;
          this.write(data);
          start = end + 1;
        }
      }
      if (end > 0 && end < chars.length - 1 && (ch === ' ' || start >= end) &&
          this.column + (end - start) > BEST_WIDTH && split) {
        const data = chars.slice(start, end).join('') + '\\';
        if (start < end) start = end;
        this.write(data);
        this.writeIndent();
        this.whitespace = false;
        this.indention = false;
        if (chars[start] === ' ') this.write('\\');
      }
    }
    this.writeIndicator('"', false);
  }

  // --- collections ---

  node(value: YamlValue | undefined, path: string[], context: 'root' | 'mapping' | 'sequence'): void {
    const saved = this.indent;
    if (Array.isArray(value)) {
      if (value.length === 0) {
        this.writeIndicator('[', true, true);
        this.writeIndicator(']', false);
      } else {
        // A sequence that is a mapping value is "indentless": its dashes line up with the key.
        const indentless = context === 'mapping' && !this.indention;
        if (context !== 'root' && !indentless) this.indent += BEST_INDENT;
        for (const item of value) {
          this.writeIndent();
          this.writeIndicator('-', true, false, true);
          this.node(item, [...path, '*'], 'sequence');
        }
      }
    } else if (value !== null && typeof value === 'object') {
      let keys = Object.keys(value).filter((k) => value[k] !== undefined);
      if (keys.length === 0) {
        this.writeIndicator('{', true, true);
        this.writeIndicator('}', false);
      } else {
        if (this.options.sortKeys) keys = keys.sort();
        if (context !== 'root') this.indent += BEST_INDENT;
        for (const key of keys) {
          this.writeIndent();
          this.scalar(key, [...path, key], true);
          this.writeIndicator(':', false);
          this.node(value[key], [...path, key], 'mapping');
        }
      }
    } else {
      if (context !== 'root') this.indent += BEST_INDENT;
      this.scalar(value ?? null, path, false);
    }
    this.indent = saved;
  }
}

/** The text PyYAML's `yaml.dump(value)` writes (or, with sortKeys: false, `yaml.dump(value, sort_keys=False)`). */
export function dumpYaml(value: YamlValue, options: DumpOptions = {}): string {
  const emitter = new Emitter({ sortKeys: options.sortKeys ?? true, isFloat: options.isFloat ?? (() => false) });
  emitter.node(value, [], 'root');
  if (!(value !== null && typeof value === 'object')) emitter.out += '\n...'; // a bare scalar document
  return `${emitter.out}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing

export interface ParsedYaml {
  value: unknown;
  /**
   * For every number in the file, keyed by dotted path (sequence items as '*'): 'float' when it was written
   * with a decimal point or an exponent (Python float), else 'int'. Feed it back through `isFloat` to keep
   * a file's exact form.
   */
  numberKinds: Map<string, 'int' | 'float'>;
}

/** Parses YAML like `yaml.safe_load` (YAML 1.1). Syntax errors → ERR_CONFIG naming `source`. */
export function parseYaml(text: string, source = '<string>'): ParsedYaml {
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) {
    fail('ERR_CONFIG', `${source} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}. Fix the file or write it again.`);
  }
  const numberKinds = new Map<string, 'int' | 'float'>();
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'number') return;
      const src = (node as Scalar).source ?? '';
      const kind = /[.eE]/.test(src) && !/^[-+]?0x/i.test(src) ? 'float' : 'int';
      const parts: string[] = [];
      for (const item of path) {
        if (isPair(item)) parts.push(isScalar(item.key) ? String(item.key.value) : String(item.key));
        else if (isSeq(item)) parts.push('*');
      }
      const at = parts.join('.');
      if (numberKinds.get(at) !== 'float') numberKinds.set(at, kind); // in a mixed list, float wins
    },
  });
  checkAliasExpansion(doc, source);
  let value: unknown;
  try {
    // checkAliasExpansion bounded what the aliases add, so the package's own (coarser) alias count is off.
    value = doc.toJS({ maxAliasCount: -1 });
  } catch (e) {
    fail('ERR_CONFIG', `${source} cannot be read as YAML: ${(e as Error).message}. Fix the file or write it again.`);
  }
  return { value, numberKinds };
}

/**
 * Caps on what aliases (`*name`) may add to a document once expanded. Each alias stands for a copy of its
 * anchored node, so nested anchors grow exponentially ("billion laughs": 10 levels of 9 aliases is 9^10
 * nodes from a 1 KB file). The files litlora reads (model_config.yaml, hyperparameters.yaml,
 * prompt_style.yaml, --config files) hold a few hundred values; these caps leave ample room above that.
 */
export const MAX_ALIAS_NODES = 100_000;
export const MAX_ALIAS_CHARS = 16 << 20;

/**
 * Sizes the document as toJS would build it, each node counted once per place it appears after alias
 * expansion (memoized per node, so this costs one pass whatever the expansion), and fails with ERR_CONFIG
 * naming `source` when the aliases add more than the caps, or when an alias refers to a node it is inside.
 */
function checkAliasExpansion(doc: Document, source: string): void {
  // An alias refers to the last node anchored with its name before it (YAML 1.1 §3.2.2.2); the visit is in
  // document order, and a collection is visited before its items, so an alias inside its own anchor finds it.
  const targets = new Map<Node, Node | undefined>();
  const anchored = new Map<string, Node>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) targets.set(node, anchored.get(node.source));
      else if (node.anchor) anchored.set(node.anchor, node);
    },
  });
  if (targets.size === 0) return;
  const sizes = new Map<Node, { nodes: number; chars: number }>();
  const open = new Set<Node>();
  let plainNodes = 0, plainChars = 0;
  const size = (node: unknown, expanding: boolean): { nodes: number; chars: number } => {
    if (isAlias(node)) {
      const target = targets.get(node);
      if (!target) return { nodes: 1, chars: 0 }; // an unknown anchor: toJS reports it
      if (open.has(target)) {
        fail('ERR_CONFIG', `${source}: the alias *${node.source} is inside the node it refers to (a recursive structure); ` +
          'litlora reads plain values only. Write the values out in the file.');
      }
      return size(target, true);
    }
    const n = node as Node;
    const known = expanding ? sizes.get(n) : undefined;
    if (known) return known;
    open.add(n);
    let nodes = 1, chars = 0;
    if (isScalar(node)) chars = String(node.value ?? '').length;
    const add = (child: unknown) => {
      if (child === null || child === undefined) return;
      const s = size(child, expanding);
      nodes += s.nodes;
      chars += s.chars;
    };
    if (isCollection(node)) {
      for (const item of node.items) {
        if (isPair(item)) { add(item.key); add(item.value); } else add(item);
      }
    }
    open.delete(n);
    const s = { nodes, chars };
    sizes.set(n, s);
    if (!expanding) { plainNodes++; plainChars += isScalar(node) ? chars : 0; }
    return s;
  };
  const total = size(doc.contents, false);
  const addedNodes = total.nodes - plainNodes, addedChars = total.chars - plainChars;
  if (addedNodes > MAX_ALIAS_NODES || addedChars > MAX_ALIAS_CHARS) {
    const what = addedNodes > MAX_ALIAS_NODES
      ? `${addedNodes.toExponential(2)} values (at most ${MAX_ALIAS_NODES.toLocaleString('en-US')})`
      : `${addedChars.toExponential(2)} characters (at most ${MAX_ALIAS_CHARS.toLocaleString('en-US')})`;
    fail('ERR_CONFIG', `${source}: its aliases (*name) would expand to ${what}; ` +
      'this looks like an alias bomb, not a config. Write the values out without nested aliases, or use a file litgpt wrote.');
  }
}

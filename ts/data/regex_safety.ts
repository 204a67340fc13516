// The regexes a tokenizer.json brings (Split pre-tokenizers, Replace normalizers, pre-tokenizers and decoders)
// run in @huggingface/tokenizers on JavaScript's backtracking engine, synchronously, over the whole text: a
// pattern such as `(a+)+$` takes seconds for 26 characters and blocks the event loop for good with a few more.
// A checkpoint folder is untrusted input, so every pattern is checked before the tokenizer is built:
//
//  1. Statically, on the regex exactly as the library compiles it: a repeated group that contains another
//     variable repetition (star height > 1: `(a+)+`, `(\w+\s?)*`), or an alternation inside a repetition whose
//     branches can begin with the same character (`(a|ab)*`, `(\w|\d)+`), is rejected with the construct named.
//     These are the shapes of exponential backtracking; real tokenizers (GPT-2, Llama 3, Qwen, DeepSeek, Bloom,
//     Falcon, T5 …) use neither.
//  2. By running it: a static check cannot know every slow shape (`(?:a?a)+$`, a row of overlapping `\s*`), so
//     each pattern then runs once over adversarial strings (the text before a repetition, the repeated part
//     pumped to dozens or hundreds of characters past the pattern's shortest match, then a character that
//     makes the match fail) in a `vm` context with a time limit for all patterns together. A pattern that needs
//     longer than that on such short strings would hang on real text. The check itself is bounded too (pattern
//     count and size, probe count and size, the same time limit), so a hostile file cannot make it hang.
//
// Verdicts are cached per pattern, so loading the same tokenizer again costs nothing.
import vm from 'node:vm';
import * as hf from '@huggingface/tokenizers';
import { fail } from '../errors.js';

/**
 * Wall-clock time all of one tokenizer's patterns may take on the probe strings. Safe patterns need 1–35 ms on a
 * quiet 2-core VM and about 100 ms with the CPUs loaded; catastrophic ones need seconds to hours, so the budget
 * sits far from both: a busy machine must not turn a real tokenizer into a refused one.
 */
const PROBE_BUDGET_MS = 3000;
/** Limits that keep the check itself cheap on a hostile file; real tokenizers have a handful of patterns. */
const MAX_PATTERNS = 64;
const MAX_PATTERN_CHARS = 32_768;
const MAX_GROUP_DEPTH = 100;
const MAX_JSON_DEPTH = 64;
/** Probe strings per pattern, and their characters in all, at most (real patterns need ~200 and ~20k). */
const MAX_PROBES = 2000;
const MAX_PROBE_CHARS = 1_000_000;
/** Sample strings of a part of a pattern are cut near this length (a bound, not a match guarantee). */
const MAX_SAMPLE_CHARS = 1024;
/** How long the repeated part of a probe is pumped beyond the shortest text the pattern matches, and what
 *  follows it to make the rest of the match fail: exponential blow-ups show at the short length (tried with
 *  many endings), high-degree polynomial ones (`\s*\s*\s*\s*x`) at the long one. */
const PUMPS = [
  { length: 40, tails: ['', '!', '\0', ' ', '\n', 'a', 'A', '0', '.', 'Ж', '\uFFFD', '😀'] },
  { length: 256, tails: ['', '\0', '!'] },
];
/** Representative characters: witnesses of what a character class matches. */
const WITNESS_POOL = [
  ...'aA0 \n\r\t!\'"._-,:;?/\\()[]{}<>#$%&*+=@^`|~zZ9',
  'é', 'ß', 'µ', 'Ж', 'ж', 'Ω', 'ω', '中', 'あ', 'ア', '한', '١', '٣', '\u00a0', '\u2581', '\u3000', 'Ġ', '\u0301',
  '\u200b', '…', '。', '，', '\uFFFD', '😀', '𝐀', '\u0000', '\u007f',
];
const SURROGATES = [0xd800, 0xdfff];

type Node =
  | { kind: 'char'; start: number; end: number } // one character: a literal, an escape, a class or '.'
  | { kind: 'seq'; items: Node[]; start: number; end: number }
  | { kind: 'alt'; branches: Node[]; start: number; end: number }
  | { kind: 'group'; look: boolean; body: Node; start: number; end: number }
  | { kind: 'quant'; min: number; max: number; body: Node; start: number; end: number }
  | { kind: 'assert'; start: number; end: number } // ^ $ \b \B
  | { kind: 'backref'; start: number; end: number };

class Unparsed extends Error {}

/** A parser for JavaScript regex syntax in 'u' mode (what the library compiles to); it throws Unparsed on
 *  anything it does not know, and the pattern is then only run, not analysed. */
class Parser {
  #i = 0;
  #depth = 0;
  constructor(readonly src: string) {}

  parse(): Node {
    const node = this.#alt();
    if (this.#i !== this.src.length) throw new Unparsed(`unexpected ')' at ${this.#i}`);
    return node;
  }

  #alt(): Node {
    const start = this.#i;
    const branches = [this.#seq()];
    while (this.src[this.#i] === '|') {
      this.#i++;
      branches.push(this.#seq());
    }
    return branches.length === 1 ? branches[0]! : { kind: 'alt', branches, start, end: this.#i };
  }

  #seq(): Node {
    const start = this.#i;
    const items: Node[] = [];
    while (this.#i < this.src.length && this.src[this.#i] !== '|' && this.src[this.#i] !== ')') {
      items.push(this.#quantified(this.#atom()));
    }
    return { kind: 'seq', items, start, end: this.#i };
  }

  #quantified(body: Node): Node {
    const s = this.src;
    let min: number, max: number;
    const c = s[this.#i];
    if (c === '*') { min = 0; max = Infinity; this.#i++; }
    else if (c === '+') { min = 1; max = Infinity; this.#i++; }
    else if (c === '?') { min = 0; max = 1; this.#i++; }
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.#i));
      if (!m) throw new Unparsed(`'{' at ${this.#i}`);
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.#i += m[0].length;
    } else return body;
    if (s[this.#i] === '?') this.#i++; // lazy: the same backtracking, in another order
    return { kind: 'quant', min, max, body, start: body.start, end: this.#i };
  }

  #atom(): Node {
    const s = this.src;
    const start = this.#i;
    const c = s[start]!;
    if (c === '(') {
      if (++this.#depth > MAX_GROUP_DEPTH) throw new Unparsed('groups nested too deep');
      let look = false;
      const head = /^\((\?(:|=|!|<=|<!|<[A-Za-z_$][\w$]*>|[ims]*(-[ims]+)?:))?/.exec(s.slice(start))!;
      if (head[2] === '=' || head[2] === '!' || head[2] === '<=' || head[2] === '<!') look = true;
      else if (head[1] && !head[2]) throw new Unparsed(`group syntax at ${start}`);
      this.#i += head[0].length;
      const body = this.#alt();
      if (s[this.#i] !== ')') throw new Unparsed(`unclosed group at ${start}`);
      this.#i++;
      this.#depth--;
      return { kind: 'group', look, body, start, end: this.#i };
    }
    if (c === '[') {
      let i = start + 1;
      if (s[i] === '^') i++;
      while (i < s.length && s[i] !== ']') i += s[i] === '\\' ? 2 : 1;
      if (i >= s.length) throw new Unparsed(`unclosed class at ${start}`);
      this.#i = i + 1;
      return { kind: 'char', start, end: this.#i };
    }
    if (c === '^' || c === '$') {
      this.#i++;
      return { kind: 'assert', start, end: this.#i };
    }
    if (c === '\\') {
      const next = s[start + 1];
      if (next === undefined) throw new Unparsed('trailing backslash');
      if (next === 'b' || next === 'B') { this.#i += 2; return { kind: 'assert', start, end: this.#i }; }
      if (/[1-9]/.test(next)) {
        this.#i = start + 1 + /^\d+/.exec(s.slice(start + 1))![0].length;
        return { kind: 'backref', start, end: this.#i };
      }
      if (next === 'k') {
        const m = /^\\k<[^>]+>/.exec(s.slice(start));
        if (!m) throw new Unparsed(`\\k at ${start}`);
        this.#i += m[0].length;
        return { kind: 'backref', start, end: this.#i };
      }
      const m = /^\\(?:[pP]\{[^}]*\}|u\{[0-9A-Fa-f]+\}|u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|c[A-Za-z])/.exec(s.slice(start));
      this.#i += m ? m[0].length : 1 + String.fromCodePoint(s.codePointAt(start + 1)!).length;
      return { kind: 'char', start, end: this.#i };
    }
    if (c === ')' || c === '|' || c === '*' || c === '+' || c === '?' || c === '{') throw new Unparsed(`'${c}' at ${start}`);
    this.#i += String.fromCodePoint(s.codePointAt(start)!).length; // '.', or a literal (one code point)
    return { kind: 'char', start, end: this.#i };
  }
}

const repeats = (q: { min: number; max: number }) => q.max > 1;
const variable = (q: { min: number; max: number }) => q.max > 1 && q.min !== q.max;

function canMatchText(n: Node): boolean {
  switch (n.kind) {
    case 'char': case 'backref': return true;
    case 'assert': return false;
    case 'seq': return n.items.some(canMatchText);
    case 'alt': return n.branches.some(canMatchText);
    case 'group': return !n.look && canMatchText(n.body);
    case 'quant': return n.max > 0 && canMatchText(n.body);
  }
}

function nullable(n: Node): boolean {
  switch (n.kind) {
    case 'char': return false;
    case 'assert': case 'backref': return true;
    case 'seq': return n.items.every(nullable);
    case 'alt': return n.branches.some(nullable);
    case 'group': return n.look || nullable(n.body);
    case 'quant': return n.min === 0 || nullable(n.body);
  }
}

/** Collects the character nodes a non-empty match of n can begin with; false when a backreference makes
 *  that any character. */
function firstChars(n: Node, out: Node[]): boolean {
  switch (n.kind) {
    case 'char': out.push(n); return true;
    case 'assert': return true;
    case 'backref': return false;
    case 'seq':
      for (const item of n.items) {
        if (!firstChars(item, out)) return false;
        if (!nullable(item)) break;
      }
      return true;
    case 'alt': return n.branches.every((b) => firstChars(b, out));
    case 'group': return n.look || firstChars(n.body, out);
    case 'quant': return n.max === 0 || firstChars(n.body, out);
  }
}

/** The length of the shortest text n matches (capped: it only sizes probes). */
function minLength(n: Node): number {
  switch (n.kind) {
    case 'char': return 1;
    case 'assert': case 'backref': return 0;
    case 'seq': return Math.min(n.items.reduce((sum, item) => sum + minLength(item), 0), MAX_PROBE_CHARS);
    case 'alt': return Math.min(...n.branches.map(minLength));
    case 'group': return n.look ? 0 : minLength(n.body);
    case 'quant': return n.min === 0 ? 0 : Math.min(n.min * minLength(n.body), MAX_PROBE_CHARS);
  }
}

function* descendants(n: Node): Generator<Node> {
  yield n;
  switch (n.kind) {
    case 'seq': for (const item of n.items) yield* descendants(item); break;
    case 'alt': for (const b of n.branches) yield* descendants(b); break;
    case 'group': case 'quant': yield* descendants(n.body); break;
    default: break;
  }
}

// Code points tried when asking whether two character sets intersect: all of the BMP and a sample above it.
let codePointPool: string[] | null = null;
function codePoints(): string[] {
  if (!codePointPool) {
    codePointPool = [];
    for (let cp = 0; cp <= 0xffff; cp++) if (cp < SURROGATES[0]! || cp > SURROGATES[1]!) codePointPool.push(String.fromCharCode(cp));
    for (let cp = 0x10000; cp <= 0x10ffff; cp += 0x3f) codePointPool.push(String.fromCodePoint(cp));
  }
  return codePointPool;
}

/** The time one tokenizer's check may take ran out (a hostile file can make even the analysis slow). */
class OutOfTime extends Error {}

/** One pattern under analysis: its source as the library compiled it, its flags, and the shared deadline. */
class Analysis {
  readonly #samples = new Map<Node, string[]>();
  readonly #checkedAlternations = new Set<string>();
  constructor(readonly src: string, readonly flags: string, readonly deadline: number) {}

  text(n: Node): string {
    return this.src.slice(n.start, n.end);
  }

  #tick(): void {
    if (performance.now() > this.deadline) throw new OutOfTime();
  }

  /** A regex for one character matched by any of the nodes, or null if that does not compile. */
  #singleChar(nodes: Node[]): RegExp | null {
    try {
      return new RegExp(`^(?:${nodes.map((n) => this.text(n)).join('|')})$`, this.flags);
    } catch {
      return null;
    }
  }

  /** Why the pattern can backtrack exponentially, or null when neither static rule applies. */
  staticVerdict(root: Node): string | null {
    for (const q of descendants(root)) {
      if (q.kind !== 'quant' || !repeats(q) || !canMatchText(q.body)) continue;
      for (const inner of descendants(q.body)) {
        if (inner.kind === 'quant' && variable(inner) && canMatchText(inner.body)) {
          return `'${this.text(q)}' repeats a group that itself contains the repetition '${this.text(inner)}' (nested quantifiers)`;
        }
      }
      for (const alt of descendants(q.body)) {
        if (alt.kind !== 'alt' || this.#checkedAlternations.has(this.text(alt))) continue;
        this.#checkedAlternations.add(this.text(alt)); // the same text has the same answer
        const shared = this.#sharedFirstChar(alt.branches);
        if (shared !== null) {
          return `'${this.text(q)}' repeats an alternation whose branches can both begin with ${JSON.stringify(shared)} ` +
            `(overlapping alternatives: '${this.text(alt)}')`;
        }
      }
    }
    return null;
  }

  /** A character two of the branches can both begin with, or null. */
  #sharedFirstChar(branches: Node[]): string | null {
    const matchers: RegExp[] = [];
    for (const b of branches) {
      const first: Node[] = [];
      if (!firstChars(b, first)) return 'any character (a backreference)';
      if (first.length === 0) continue;
      const re = this.#singleChar(first);
      if (!re) return null; // not analysable: the probes decide
      matchers.push(re);
    }
    if (matchers.length < 2) return null;
    const pool = codePoints();
    for (let i = 0; i < pool.length; i++) {
      if ((i & 4095) === 0) this.#tick();
      let hits = 0;
      for (const m of matchers) if (m.test(pool[i]!) && ++hits === 2) return pool[i]!;
    }
    return null;
  }

  /** Up to two characters of the pool that a character node matches (one ASCII, one not). */
  #witnesses(n: Node): string[] {
    const re = this.#singleChar([n]);
    if (!re) return [];
    const found = WITNESS_POOL.filter((ch) => re.test(ch));
    const ascii = found.find((ch) => ch.charCodeAt(0) < 0x80);
    const other = found.find((ch) => ch.charCodeAt(0) >= 0x80);
    return [ascii, other].filter((ch): ch is string => ch !== undefined);
  }

  /** A few strings n matches (best effort: a class without a witness in the pool contributes nothing). */
  samples(n: Node): string[] {
    let out = this.#samples.get(n);
    if (!out) {
      this.#tick();
      out = this.#computeSamples(n);
      this.#samples.set(n, out);
    }
    return out;
  }

  #computeSamples(n: Node): string[] {
    const cap = (list: string[]) => [...new Set(list)].slice(0, 4);
    switch (n.kind) {
      case 'char': return this.#witnesses(n);
      case 'assert': case 'backref': return [''];
      case 'group': return n.look ? [''] : this.samples(n.body);
      case 'alt': return cap(n.branches.flatMap((b) => this.samples(b)));
      case 'seq': {
        let out = [''];
        for (const item of n.items) {
          const s = this.samples(item);
          if (s.length === 0) continue;
          out = cap([...out.map((o) => o + s[0]), ...s.slice(1).map((x) => out[0] + x)]);
          if (out[0]!.length > MAX_SAMPLE_CHARS) break; // long enough to lead into what follows
        }
        return out;
      }
      case 'quant': {
        if (n.max === 0) return [''];
        const s = this.samples(n.body).map((x) => x.repeat(Math.max(1, Math.min(n.min, Math.floor(MAX_SAMPLE_CHARS / Math.max(x.length, 1))))));
        return cap(n.min === 0 ? ['', ...s] : s);
      }
    }
  }

  /** Probe strings: the text before each repetition, its body pumped long, then a character that may not fit. */
  probes(root: Node | null): string[] {
    const out = new Set<string>();
    let chars = 0;
    const add = (probe: string) => {
      if (out.size >= MAX_PROBES || chars + probe.length > MAX_PROBE_CHARS || out.has(probe)) return;
      out.add(probe);
      chars += probe.length;
    };
    // A pattern that needs k characters only backtracks on texts longer than k: pump past that.
    const extra = root ? minLength(root) : 0;
    const walk = (n: Node, prefix: string) => {
      switch (n.kind) {
        case 'seq': {
          let p = prefix;
          for (const item of n.items) {
            walk(item, p);
            p += this.samples(item)[0] ?? '';
          }
          break;
        }
        case 'alt': for (const b of n.branches) walk(b, prefix); break;
        case 'group': walk(n.body, prefix); break;
        case 'quant':
          if (repeats(n)) {
            for (const pump of this.samples(n.body)) {
              if (!pump) continue;
              for (const { length, tails } of PUMPS) {
                const pumped = prefix + pump.repeat(Math.ceil((length + extra) / pump.length));
                for (const tail of tails) add(pumped + tail);
              }
            }
          }
          walk(n.body, prefix);
          break;
        default: break;
      }
    };
    for (const tail of PUMPS[0]!.tails) add('a'.repeat(PUMPS[0]!.length) + tail); // also for a pattern the parser did not know
    if (root) walk(root, '');
    return [...out];
  }
}

// Runs in the vm context: every probe scanned the way the library scans text (a global regex over the string).
const PROBE_SCRIPT = new vm.Script('{ const re = new RegExp(source, flags); for (const p of probes) for (const m of p.matchAll(re)) {} }');

/** Runs the probes until `deadline`; false when they did not finish in time. */
function runsInTime(source: string, flags: string, list: string[], deadline: number): boolean {
  const ms = Math.ceil(deadline - performance.now());
  if (ms <= 0) return false;
  try {
    PROBE_SCRIPT.runInContext(vm.createContext({ source, flags, probes: list }), { timeout: ms });
    return true;
  } catch (e) {
    if ((e as { code?: string })?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return false;
    return true; // any other failure (e.g. V8's backtrack stack limit) surfaces when text is tokenized
  }
}

interface Found { path: string; pattern: string }

/** Every `{ "Regex": … }` pattern outside the model (vocabulary) and the added tokens, with its JSON path. */
function findPatterns(json: Record<string, unknown>, source: string): Found[] {
  const found: Found[] = [];
  const walk = (v: unknown, path: string, depth: number) => {
    if (!v || typeof v !== 'object') return;
    if (depth > MAX_JSON_DEPTH) {
      fail('ERR_CHECKPOINT_FORMAT', `${source}: ${path.length > 80 ? `${path.slice(0, 80)}…` : path} is nested more than ${MAX_JSON_DEPTH} levels deep ` +
        '(real tokenizers nest a few); use the model\'s original tokenizer.json');
    }
    if (Array.isArray(v)) { v.forEach((x, i) => walk(x, `${path}[${i}]`, depth + 1)); return; }
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Regex' && typeof x === 'string') found.push({ path: `${path}.Regex`, pattern: x });
      else walk(x, `${path}.${k}`, depth + 1);
    }
  };
  for (const [k, v] of Object.entries(json)) if (k !== 'model' && k !== 'added_tokens') walk(v, k, 1);
  return found;
}

// The library's Split pre-tokenizer compiles a pattern the way every component does (Oniguruma syntax rewritten
// to JavaScript); its type declarations do not reach this export under NodeNext resolution, hence the cast.
const SplitPreTokenizer = (hf as unknown as { SplitPreTokenizer?: new (config: object) => { pattern: unknown } }).SplitPreTokenizer;

/** The RegExp the library makes of a tokenizer.json pattern, or null if it cannot (building then fails). */
function compile(pattern: string): RegExp | null {
  try {
    const re = SplitPreTokenizer ? new SplitPreTokenizer({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }).pattern : null;
    if (re instanceof RegExp) return re;
  } catch {
    return null;
  }
  try {
    return new RegExp(pattern, 'gu'); // a library that compiles elsewhere: check the pattern as written
  } catch {
    return null;
  }
}

// Verdicts of patterns already checked (null: safe). A timeout is not kept: it may have been a busy machine.
const verdicts = new Map<string, string | null>();

/** Why the compiled pattern could hang tokenization, or null; throws OutOfTime when `deadline` passes. */
function verdictOf(re: RegExp, deadline: number): string | null {
  const flags = re.flags.replace(/[gy]/g, '');
  const key = `${flags}/${re.source}`;
  const known = verdicts.get(key);
  if (known !== undefined) return known;
  let root: Node | null = null;
  // The parser knows 'u' syntax; under 'v' (nested classes, set operations) the pattern is only run.
  if (!re.flags.includes('v')) {
    try { root = new Parser(re.source).parse(); } catch (e) { if (!(e instanceof Unparsed)) throw e; }
  }
  const analysis = new Analysis(re.source, flags, deadline);
  const verdict = root ? analysis.staticVerdict(root) : null;
  if (verdict === null && !runsInTime(re.source, re.flags, analysis.probes(root), deadline)) throw new OutOfTime();
  if (verdicts.size >= 256) verdicts.clear();
  verdicts.set(key, verdict);
  return verdict;
}

/**
 * Throws ERR_CHECKPOINT_FORMAT if a regex of the tokenizer.json (`source` names the file) could backtrack
 * catastrophically, i.e. make tokenization hang.
 */
export function checkTokenizerPatterns(tokenizerJson: Record<string, unknown>, source: string): void {
  const found = findPatterns(tokenizerJson, source);
  const tooLong = found.find((f) => f.pattern.length > MAX_PATTERN_CHARS);
  if (found.length > MAX_PATTERNS || tooLong) {
    fail('ERR_CHECKPOINT_FORMAT', `${source}: ${tooLong ? `the regex at ${tooLong.path} has ${tooLong.pattern.length} characters, ` +
      `more than the ${MAX_PATTERN_CHARS}` : `${found.length} regex patterns, more than the ${MAX_PATTERNS}`} litlora checks ` +
      '(real tokenizers have a few short ones); use the model\'s original tokenizer.json');
  }
  const deadline = performance.now() + PROBE_BUDGET_MS;
  for (const { path, pattern } of found) {
    const reject = (why: string): never => fail('ERR_CHECKPOINT_FORMAT',
      `${source}: the regex ${JSON.stringify(pattern.length > 200 ? `${pattern.slice(0, 200)}…` : pattern)} at ${path} ` +
      `can backtrack catastrophically: ${why}. Tokenizing text with it could hang the process, so the tokenizer is not ` +
      'loaded; the tokenizers of real models do not use such patterns: use the model\'s original tokenizer.json.');
    const re = compile(pattern);
    if (!re) continue;
    let verdict: string | null;
    try {
      verdict = verdictOf(re, deadline);
    } catch (e) {
      if (!(e instanceof OutOfTime)) throw e;
      verdict = `checking it on strings of a few hundred characters took longer than the ${PROBE_BUDGET_MS} ms litlora allows ` +
        'all of a tokenizer\'s patterns (exponential or high-degree polynomial backtracking)';
    }
    if (verdict !== null) reject(verdict);
  }
}

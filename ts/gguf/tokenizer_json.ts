// The two large parts of a byte-level BPE tokenizer.json, model.vocab (~150k token → id) and model.merges (~150k
// pairs), read straight from the file's bytes into GGUF's string-array encoding, without a JavaScript object per
// token or merge. A Qwen2-sized tokenizer.json (5.9 MB, 151,643 tokens, 151,387 merges as pairs) took ~0.45 s to
// become GGUF metadata through JSON.parse (~125 ms on the 2-core EPYC VM; V8 builds a 151k-key object and 151k
// two-item arrays) and Object.entries, a Map and a string per merge (~300 ms with their garbage collection), and
// that time comes before the first byte of an export can be written (the header holds the vocabulary). The rest
// of the file (pre-tokenizer, added tokens, post-processor: a few KB) is still read by JSON.parse, with the two
// parts cut out.
//
// The result is JSON.parse's, byte for byte: keys and merges decoded from JSON's escapes to UTF-8, a lone
// surrogate as U+FFFD (as Buffer's encoder writes it), the spaces inside a merge pair's parts as U+0120 (gguf-py
// SpecialVocab's encoding), the pair joined by a space. Where that cannot be promised cheaply (bytes that are not
// UTF-8, a key given twice, two tokens with one id, an id that is not a plain integer, anything malformed) the
// reader returns null, and the caller reads the file with JSON.parse as before: the same result, slower, or
// JSON.parse's own error.
import { isUtf8 } from 'node:buffer';
import { EncodedStrings } from './writer.js';

export interface ScannedBpeTokenizer {
  /** The file parsed without model.vocab and model.merges (they read as {} and []). */
  rest: Record<string, any>;
  /** model.vocab's tokens by id: bytes [start[id], start[id] + length[id]) of `tokenBytes`; start -1 where no token has the id. */
  tokenBytes: Uint8Array;
  start: Int32Array;
  length: Int32Array;
  /** The largest id in model.vocab (-1 for none). */
  maxId: number;
  merges: EncodedStrings;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d;
const MAX_DEPTH = 512;

/** Thrown inside the scan where the fast path gives up; never escapes scanBpeTokenizerJson. */
class Unsupported extends Error {}
const giveUp = (): never => { throw new Unsupported(); };

/** A growable byte buffer. */
class Bytes {
  buf: Uint8Array;
  n = 0;
  constructor(size: number) { this.buf = new Uint8Array(Math.max(1024, size)); }
  room(extra: number): Uint8Array {
    if (this.n + extra > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + extra));
      next.set(this.buf.subarray(0, this.n));
      this.buf = next;
    }
    return this.buf;
  }
  /** A code point (or U+FFFD for a lone surrogate) as UTF-8. */
  codePoint(c: number): void {
    const b = this.room(4);
    if (c < 0x80) b[this.n++] = c;
    else if (c < 0x800) {
      b[this.n++] = 0xc0 | (c >> 6);
      b[this.n++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      b[this.n++] = 0xe0 | (c >> 12);
      b[this.n++] = 0x80 | ((c >> 6) & 0x3f);
      b[this.n++] = 0x80 | (c & 0x3f);
    } else {
      b[this.n++] = 0xf0 | (c >> 18);
      b[this.n++] = 0x80 | ((c >> 12) & 0x3f);
      b[this.n++] = 0x80 | ((c >> 6) & 0x3f);
      b[this.n++] = 0x80 | (c & 0x3f);
    }
  }
  /** A u64 (below 2^32) at `at`. */
  setU64(at: number, v: number): void {
    const b = this.buf;
    b[at] = v & 0xff; b[at + 1] = (v >>> 8) & 0xff; b[at + 2] = (v >>> 16) & 0xff; b[at + 3] = v >>> 24;
    b[at + 4] = b[at + 5] = b[at + 6] = b[at + 7] = 0;
  }
}

class Scanner {
  p = 0;
  constructor(readonly b: Uint8Array) {}

  ws(): void {
    const b = this.b;
    let p = this.p, c = b[p];
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[++p];
    this.p = p;
  }

  expect(c: number): void {
    this.ws();
    if (this.b[this.p] !== c) giveUp();
    this.p++;
  }

  /** After ws: true and past `close` when it comes next, else past a comma (or the first item). */
  closes(close: number, first: boolean): boolean {
    this.ws();
    const c = this.b[this.p];
    if (c === close) { this.p++; return true; }
    if (!first) {
      if (c !== COMMA) giveUp();
      this.p++;
      this.ws();
    }
    return false;
  }

  /** The JSON string at p decoded into `out` as UTF-8; `spaceAsG`: a space as U+0120 (C4 A0). */
  string(out: Bytes, spaceAsG = false): void {
    const b = this.b;
    if (b[this.p] !== QUOTE) giveUp();
    let p = this.p + 1;
    let high = -1;  // a \u high surrogate waiting for its low half
    for (;;) {
      const c = b[p];
      if (c === QUOTE) break;
      if (c === undefined || c < 0x20) giveUp();
      if (c !== BACKSLASH) {
        if (high >= 0) { out.codePoint(0xfffd); high = -1; }
        if (c === 0x20 && spaceAsG) { const o = out.room(2); o[out.n++] = 0xc4; o[out.n++] = 0xa0; } else { out.room(1)[out.n++] = c; }
        p++;
        continue;
      }
      const e = b[p + 1];
      p += 2;
      let unit: number;
      switch (e) {
        case QUOTE: unit = 0x22; break;
        case BACKSLASH: unit = 0x5c; break;
        case 0x2f: unit = 0x2f; break;  // \/
        case 0x62: unit = 0x08; break;  // \b
        case 0x66: unit = 0x0c; break;  // \f
        case 0x6e: unit = 0x0a; break;  // \n
        case 0x72: unit = 0x0d; break;  // \r
        case 0x74: unit = 0x09; break;  // \t
        case 0x75: {                    // \uXXXX
          unit = 0;
          for (let k = 0; k < 4; k++) {
            const h = b[p + k];
            const d = h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
            if (d < 0) giveUp();
            unit = unit * 16 + d;
          }
          p += 4;
          break;
        }
        default: return giveUp();
      }
      if (high >= 0) {
        if (unit >= 0xdc00 && unit <= 0xdfff) {
          out.codePoint(0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
          high = -1;
          continue;
        }
        out.codePoint(0xfffd);
        high = -1;
      }
      if (unit >= 0xd800 && unit <= 0xdbff) high = unit;
      else if (unit === 0x20 && spaceAsG) out.codePoint(0x120);
      else out.codePoint(unit);
    }
    if (high >= 0) out.codePoint(0xfffd);
    this.p = p + 1;
  }

  /** A key without escapes (the ones compared here: "model", "vocab", "merges"), as a JS string. */
  key(): string {
    const b = this.b;
    this.ws();
    if (b[this.p] !== QUOTE) giveUp();
    let p = this.p + 1;
    while (b[p] !== QUOTE) {
      if (b[p] === BACKSLASH || b[p] === undefined) giveUp();  // an escaped key could spell one of ours
      p++;
    }
    const k = Buffer.from(b.buffer, b.byteOffset + this.p + 1, p - this.p - 1).toString('latin1');
    this.p = p + 1;
    this.expect(COLON);
    this.ws();
    return k;
  }

  /** Past the value at p (JSON.parse checks the skipped parts, which stay in the rest). */
  skipValue(): void {
    const b = this.b;
    let p = this.p, depth = 0;
    for (;;) {
      const c = b[p];
      if (c === undefined) giveUp();
      if (c === QUOTE) {
        p++;
        while (b[p] !== QUOTE) {
          if (b[p] === undefined) giveUp();
          p += b[p] === BACKSLASH ? 2 : 1;
        }
        p++;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (++depth > MAX_DEPTH) giveUp();
        p++;
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        depth--;
        p++;
      } else {
        p++;
        if (depth === 0) {
          // A number or a literal: up to the next delimiter.
          let d = b[p];
          while (d !== undefined && d !== COMMA && d !== CLOSE_OBJECT && d !== CLOSE_ARRAY && d !== 0x20 && d !== 0x0a && d !== 0x0d && d !== 0x09) d = b[++p];
          break;
        }
        continue;
      }
      if (depth === 0) break;
      if (depth < 0) giveUp();
    }
    this.p = p;
  }

  /** A non-negative integer below 2^31 written plainly (no sign, fraction, exponent or leading zero). */
  id(): number {
    const b = this.b;
    let p = this.p, v = 0;
    const first = p;
    while (b[p] >= 0x30 && b[p] <= 0x39) {
      v = v * 10 + (b[p] - 0x30);
      p++;
    }
    const c = b[p];
    if (p === first || (b[first] === 0x30 && p - first > 1) || v > 0x7fffffff || c === 0x2e || c === 0x65 || c === 0x45) giveUp();
    this.p = p;
    return v;
  }
}

/** FNV-1a of bytes [from, to). */
function hashOf(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

function sameBytes(b: Uint8Array, s1: number, l1: number, s2: number, l2: number): boolean {
  if (l1 !== l2) return false;
  for (let i = 0; i < l1; i++) if (b[s1 + i] !== b[s2 + i]) return false;
  return true;
}

/** model.vocab: tokens decoded into `out`, their places by id; a key given twice or an id used twice gives up. */
function scanVocab(s: Scanner, rangeBytes: number) {
  const out = new Bytes(rangeBytes);
  let start = new Int32Array(1 << 17).fill(-1), length = new Int32Array(1 << 17);
  let maxId = -1, count = 0;
  let table = new Int32Array(1 << 18).fill(-1);  // open addressing over token ids, by the hash of their bytes
  const place = (id: number) => {
    let slot = hashOf(out.buf, start[id], start[id] + length[id]) & (table.length - 1);
    for (let other = table[slot]; other >= 0; other = table[slot]) {
      if (sameBytes(out.buf, start[other], length[other], start[id], length[id])) giveUp();
      slot = (slot + 1) & (table.length - 1);
    }
    table[slot] = id;
  };
  s.expect(OPEN_OBJECT);
  for (let first = true; !s.closes(CLOSE_OBJECT, first); first = false) {
    const at = out.n;
    s.string(out);
    s.expect(COLON);
    s.ws();
    const id = s.id();
    const n = out.n - at;
    if (id >= start.length) {
      const size = Math.max(start.length * 2, id + 1);
      const grownStart = new Int32Array(size).fill(-1), grownLength = new Int32Array(size);
      grownStart.set(start);
      grownLength.set(length);
      start = grownStart;
      length = grownLength;
    }
    if (start[id] >= 0) giveUp();
    start[id] = at;
    length[id] = n;
    if (id > maxId) maxId = id;
    if (++count * 2 > table.length) {
      table = new Int32Array(table.length * 2).fill(-1);
      for (let other = 0; other <= maxId; other++) if (start[other] >= 0 && other !== id) place(other);
    }
    place(id);
  }
  return { tokenBytes: out.buf.subarray(0, out.n), start, length, maxId };
}

/** model.merges as GGUF strings: a string as it is, an array's parts (spaces as U+0120) joined by a space. */
function scanMerges(s: Scanner, rangeBytes: number): EncodedStrings {
  const out = new Bytes(rangeBytes + (rangeBytes >> 1));
  let count = 0;
  s.expect(OPEN_ARRAY);
  for (let first = true; !s.closes(CLOSE_ARRAY, first); first = false) {
    const at = out.n;
    out.room(8);
    out.n += 8;
    if (s.b[s.p] === QUOTE) {
      s.string(out);
    } else {
      s.expect(OPEN_ARRAY);
      for (let part = true; !s.closes(CLOSE_ARRAY, part); part = false) {
        if (!part) out.room(1)[out.n++] = 0x20;
        s.string(out, true);
      }
    }
    out.setU64(at, out.n - at - 8);
    count++;
  }
  return new EncodedStrings(count, out.buf.subarray(0, out.n));
}

/**
 * model.vocab and model.merges of a tokenizer.json's bytes, and the rest of it parsed; null where JSON.parse's
 * path must read it (see the top of this file).
 */
export function scanBpeTokenizerJson(bytes: Buffer): ScannedBpeTokenizer | null {
  if (!isUtf8(bytes)) return null;
  const s = new Scanner(bytes);
  try {
    const cut: [number, number, string][] = [];  // [from, to, replacement] in the file
    let vocab: ReturnType<typeof scanVocab> | null = null, merges: EncodedStrings | null = null;
    let sawModel = false;
    s.expect(OPEN_OBJECT);
    for (let first = true; !s.closes(CLOSE_OBJECT, first); first = false) {
      const key = s.key();
      if (key !== 'model') {
        s.skipValue();
        continue;
      }
      if (sawModel) giveUp();
      sawModel = true;
      s.expect(OPEN_OBJECT);
      for (let inner = true; !s.closes(CLOSE_OBJECT, inner); inner = false) {
        const k = s.key();
        if (k === 'vocab' || k === 'merges') {
          if (k === 'vocab' ? vocab : merges) giveUp();
          const from = s.p;
          // What is left of the file bounds the value's decoded bytes (escapes only shrink them; merges grow).
          if (k === 'vocab') vocab = scanVocab(s, bytes.length - from);
          else merges = scanMerges(s, bytes.length - from);
          const to = s.p;
          cut.push([from, to, k === 'vocab' ? '{}' : '[]']);
        } else {
          s.skipValue();
        }
      }
    }
    s.ws();
    if (s.p !== bytes.length || !vocab || !merges) return null;
    let text = '', at = 0;
    for (const [from, to, replacement] of cut.sort((a, b) => a[0] - b[0])) {
      text += bytes.toString('utf8', at, from) + replacement;
      at = to;
    }
    text += bytes.toString('utf8', at);
    const rest = JSON.parse(text);
    return { rest, ...vocab, merges };
  } catch (e) {
    if (e instanceof Unsupported || e instanceof SyntaxError) return null;
    throw e;
  }
}

/**
 * GGUF's tokens array for `rows` ids: `override` where it has the id (added tokens), else model.vocab's token,
 * else "[PAD{id}]".
 */
export function encodeTokens(scan: ScannedBpeTokenizer, rows: number, override: Map<number, string>): EncodedStrings {
  const out = new Bytes(scan.tokenBytes.length + rows * 16);
  const { tokenBytes, start, length } = scan;
  for (let id = 0; id < rows; id++) {
    const at = out.n;
    out.room(8);
    out.n += 8;
    const text = override.get(id);
    if (text !== undefined) {
      const encoded = Buffer.from(text, 'utf8');
      out.room(encoded.length).set(encoded, out.n);
      out.n += encoded.length;
    } else if (id < start.length && start[id] >= 0) {
      const from = start[id], n = length[id];
      const b = out.room(n);
      for (let i = 0; i < n; i++) b[out.n + i] = tokenBytes[from + i];
      out.n += n;
    } else {
      // "[PAD" + id + "]", as ASCII
      const b = out.room(16);
      b[out.n++] = 0x5b; b[out.n++] = 0x50; b[out.n++] = 0x41; b[out.n++] = 0x44;
      let digits = 1;
      for (let v = id; v >= 10; v = Math.floor(v / 10)) digits++;
      for (let k = digits - 1, v = id; k >= 0; k--, v = Math.floor(v / 10)) b[out.n + k] = 0x30 + (v % 10);
      out.n += digits;
      b[out.n++] = 0x5d;
    }
    out.setU64(at, out.n - at - 8);
  }
  return new EncodedStrings(rows, out.buf.subarray(0, out.n));
}

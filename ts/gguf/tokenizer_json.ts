// The two large parts of a byte-level BPE tokenizer.json, model.vocab (~150k token → id) and model.merges (~150k
// pairs), read straight from the file's bytes into GGUF's string-array encoding (native/core/tokenizer_json), with no
// JavaScript object per token or merge. A Qwen2-sized tokenizer.json (5.9 MB, 151,643 tokens, 151,387 merges as
// pairs) took ~0.45 s to become GGUF metadata through JSON.parse (~125 ms on the 2-core EPYC VM: V8 builds a
// 151k-key object and 151k two-item arrays) and Object.entries, a Map and a string per merge (~300 ms with their
// garbage collection); a reader of the bytes in TypeScript ~70 ms; in C++ ~10 ms, and ~2 ms to lay the tokens out by
// id (2026-12-03). That time comes before an export's first byte can be written: the header holds the vocabulary.
// The rest of the file (pre-tokenizer, added tokens, post-processor: a few KB) is still read by JSON.parse, with the
// two parts cut out.
//
// The result is JSON.parse's, byte for byte: keys and merges decoded from JSON's escapes to UTF-8, a lone surrogate
// as U+FFFD (as Buffer's encoder writes it), the spaces inside a merge pair's parts as U+0120 (gguf-py SpecialVocab's
// encoding), the pair joined by a space. Where that cannot be promised cheaply (bytes that are not UTF-8, a key given
// twice, two tokens with one id, an id that is not a plain integer, anything malformed) the reader returns null,
// and the caller reads the file with JSON.parse as before: the same result, slower, or JSON.parse's own error.
import { isUtf8 } from 'node:buffer';
import { binding, type NativeBpeScan } from '../binding.js';
import { EncodedStrings } from './writer.js';

export interface ScannedBpeTokenizer extends Omit<NativeBpeScan, 'rest' | 'merges' | 'mergeCount'> {
  /** The file parsed without model.vocab and model.merges (they read as {} and []). */
  rest: Record<string, any>;
  merges: EncodedStrings;
}

/**
 * model.vocab and model.merges of a tokenizer.json's bytes, and the rest of it parsed; null where JSON.parse's
 * path must read it (see the top of this file).
 */
export function scanBpeTokenizerJson(bytes: Buffer): ScannedBpeTokenizer | null {
  if (!isUtf8(bytes)) return null;
  const scan = binding().scanBpeTokenizerJson(bytes);
  if (!scan) return null;
  let rest: Record<string, any>;
  try {
    rest = JSON.parse(scan.rest);
  } catch {
    return null;  // malformed outside the two parts: JSON.parse's path reports it
  }
  return { ...scan, rest, merges: new EncodedStrings(scan.mergeCount, scan.merges) };
}

/**
 * GGUF's tokens array for `rows` ids: `override` where it has the id (added tokens), else model.vocab's token,
 * else "[PAD{id}]" (native: ~9 ms for Qwen2's 151,936 rows in a JavaScript loop, ~2 ms in C++).
 */
export function encodeTokens(scan: ScannedBpeTokenizer, rows: number, override: Map<number, string>): EncodedStrings {
  const bytes = binding().encodeGgufTokens(scan.tokenBytes, scan.start, scan.length, rows, Int32Array.from(override.keys()), [...override.values()]);
  return new EncodedStrings(rows, bytes);
}

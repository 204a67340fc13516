// The GGUF file format (version 3), as llama.cpp's ggml/gguf.cpp reads it and gguf-py's GGUFWriter writes it:
//
//   "GGUF" · u32 version · u64 tensor count · u64 KV count
//   KV pairs:     string key · u32 value type · value (arrays: u32 item type · u64 count · items)
//   tensor infos: string name · u32 n_dims · u64 dims (ggml order: fastest-varying first, the reverse of a
//                 PyTorch shape) · u32 ggml type · u64 offset of its data from the start of the data section
//   padding to ALIGNMENT, then each tensor's data, each padded to ALIGNMENT
//
// Strings are a u64 byte length and UTF-8 bytes, everything little-endian. The header is built in memory (its
// largest part is the vocabulary). A model's tensors are then streamed by the native tensor plan
// (native/core/tensor_plan, format "gguf"); writeGguf writes small files (LoRA adapters) from TypeScript, one tensor
// at a time, the next one produced while the current one is written. Either way the data goes into a temporary
// sibling that is fsynced and renamed over the target, so a reader (or a crash) never sees a partial file under
// the final name.
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fail } from '../errors.js';
import { fsyncDir, tempSibling } from '../io/atomic.js';

export const GGUF_VERSION = 3;
/** general.alignment's default; the writer does not write the key. */
export const GGUF_ALIGNMENT = 32;

/** ggml tensor types litlora writes (ggml.h's enum ggml_type). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = (typeof GGML_TYPE)[keyof typeof GGML_TYPE];

/** Q8_0: blocks of 32 values, each an f16 scale and 32 int8s. */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** GGUF metadata value types (gguf.h's enum gguf_type). */
const VT = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;

export type GgufScalar =
  | { type: 'u32'; value: number } | { type: 'i32'; value: number } | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean } | { type: 'string'; value: string } | { type: 'u64'; value: number };
/**
 * Strings already in GGUF's encoding (each a u64 byte length and its UTF-8 bytes, one after another): a
 * vocabulary read from a tokenizer.json's bytes (tokenizer_json.ts) goes into the header without a JS string per token.
 */
export class EncodedStrings {
  constructor(readonly length: number, readonly bytes: Uint8Array) {}
}

export type GgufArray =
  | { type: 'string[]'; value: readonly string[] | EncodedStrings } | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'f32[]'; value: ArrayLike<number> };
export type GgufValue = GgufScalar | GgufArray;

/** Metadata in insertion order (llama.cpp does not care about the order; gguf-py keeps the writer's). */
export class GgufMetadata {
  readonly entries = new Map<string, GgufValue>();
  set(key: string, value: GgufValue): this {
    this.entries.set(key, value);
    return this;
  }
  u32(key: string, value: number): this { return this.set(key, { type: 'u32', value }); }
  f32(key: string, value: number): this { return this.set(key, { type: 'f32', value }); }
  bool(key: string, value: boolean): this { return this.set(key, { type: 'bool', value }); }
  string(key: string, value: string): this { return this.set(key, { type: 'string', value }); }
}

export interface GgufTensorInfo {
  name: string;
  /** PyTorch order (rows first); written reversed. */
  shape: readonly number[];
  type: GgmlType;
}

/** One tensor to write: its info and a function producing its bytes (called once, in order). */
export interface GgufTensor extends GgufTensorInfo {
  data: () => Promise<Uint8Array>;
}

/** The data size of a tensor of `shape` stored as `type`. */
export function ggmlBytes(shape: readonly number[], type: GgmlType): number {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (type) {
    case GGML_TYPE.F32: return n * 4;
    case GGML_TYPE.F16: case GGML_TYPE.BF16: return n * 2;
    case GGML_TYPE.Q8_0: {
      const cols = shape[shape.length - 1];
      if (cols % Q8_0_BLOCK !== 0) fail('ERR_SHAPE', `Q8_0 needs rows of a multiple of ${Q8_0_BLOCK} values, got ${cols}`);
      return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
    }
  }
}

const pad = (n: number) => (GGUF_ALIGNMENT - (n % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;

/** Raw arrays of at least this many bytes are header parts of their own instead of being copied (a vocabulary's). */
const RAW_PART_BYTES = 1 << 20;

/** True where typed arrays are little-endian (x86-64, arm64): their bytes can then be copied into the header as they are. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A growable little-endian byte buffer for the header. A vocabulary is ~150k tokens and as many merges, each a
 * short string: strings are UTF-8-encoded here in a loop over their UTF-16 units (no Buffer per string, no
 * native call; a lone surrogate goes through Buffer.write, which writes U+FFFD as Buffer.from does), their lengths
 * and u64s written as bytes (no BigInt), number arrays copied as typed arrays, and the buffer sized up front
 * (sizeHint). That took a Qwen-sized header from ~200 ms to ~35 ms (2026-12-02), then to ~8 ms (2026-12-03, median of 25): the
 * header is built before the first tensor byte can be written, so its time adds to the whole export's. A vocabulary
 * read from tokenizer.json's bytes arrives encoded (EncodedStrings) and is not copied here: the header is a list
 * of parts (parts()), those arrays among them, which the native plan joins once (freshly allocated memory is slow
 * to touch on the bench VMs: each copy of a Qwen-sized vocabulary's ~9 MB cost milliseconds).
 */
class ByteWriter {
  #buf: Buffer;
  #at = 0;           // where the next byte goes in #buf
  #segment = 0;      // where #buf's bytes not yet in #parts begin
  #parts: Uint8Array[] = [];
  /** Bytes written so far. */
  length = 0;
  constructor(sizeHint: number) {
    this.#buf = Buffer.allocUnsafe(Math.max(1 << 16, sizeHint));
  }
  /** Room for `n` more bytes at #at (the pending segment moves to a larger buffer). */
  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    const pending = this.#at - this.#segment;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, pending + n));
    this.#buf.copy(next, 0, this.#segment, this.#at);
    this.#buf = next;
    this.#segment = 0;
    this.#at = pending;
  }
  u8(v: number): void { this.#room(1); this.#buf[this.#at++] = v; this.length++; }
  u32(v: number): void { this.#room(4); this.#buf.writeUInt32LE(v >>> 0, this.#at); this.#at += 4; this.length += 4; }
  i32(v: number): void { this.#room(4); this.#buf.writeInt32LE(v | 0, this.#at); this.#at += 4; this.length += 4; }
  f32(v: number): void { this.#room(4); this.#buf.writeFloatLE(v, this.#at); this.#at += 4; this.length += 4; }
  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) fail('ERR_ARG', `GGUF: ${v} is not a u64 this writer can hold (0 … 2^53 - 1)`);
    this.#room(8);
    this.#buf.writeUInt32LE(v % 0x100000000, this.#at);
    this.#buf.writeUInt32LE(Math.floor(v / 0x100000000), this.#at + 4);
    this.#at += 8;
    this.length += 8;
  }
  string(s: string): void {
    this.#room(8 + 3 * s.length);  // UTF-8 takes at most 3 bytes per UTF-16 unit
    const buf = this.#buf, start = this.#at + 8;
    let at = start;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) buf[at++] = c;
      else if (c < 0x800) {
        buf[at++] = 0xc0 | (c >> 6);
        buf[at++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        buf[at++] = 0xe0 | (c >> 12);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      } else {
        at = start + buf.write(s, start, 'utf8');  // surrogate pairs (4 bytes) and lone surrogates (U+FFFD)
        break;
      }
    }
    // Its byte length as a u64: below 2^32, as a JS string has at most 2^29 units of at most 3 bytes.
    const n = at - start, len = start - 8;
    buf[len] = n & 0xff;
    buf[len + 1] = (n >>> 8) & 0xff;
    buf[len + 2] = (n >>> 16) & 0xff;
    buf[len + 3] = n >>> 24;
    buf[len + 4] = buf[len + 5] = buf[len + 6] = buf[len + 7] = 0;
    this.length += at - this.#at;
    this.#at = at;
  }
  /** The values as i32 or f32 items, little-endian. */
  numbers(values: ArrayLike<number>, type: 'i32' | 'f32'): void {
    if (!LITTLE_ENDIAN) {
      for (let i = 0; i < values.length; i++) (type === 'i32' ? this.i32(values[i]) : this.f32(values[i]));
      return;
    }
    const typed = type === 'i32' ? Int32Array.from(values) : Float32Array.from(values);
    this.raw(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
  }
  /** `bytes` as they are; a large array becomes a part of its own (not copied: the caller leaves it unchanged). */
  raw(bytes: Uint8Array): void {
    if (bytes.length >= RAW_PART_BYTES) {
      this.#cut();
      this.#parts.push(bytes);
    } else {
      this.#room(bytes.length);
      this.#buf.set(bytes, this.#at);
      this.#at += bytes.length;
    }
    this.length += bytes.length;
  }
  zeros(n: number): void { this.#room(n); this.#buf.fill(0, this.#at, this.#at + n); this.#at += n; this.length += n; }
  #cut(): void {
    if (this.#at > this.#segment) this.#parts.push(this.#buf.subarray(this.#segment, this.#at));
    this.#segment = this.#at;
  }
  /** The bytes written, in order, as parts (large raw arrays among them as they were given). */
  parts(): Uint8Array[] {
    this.#cut();
    return this.#parts;
  }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'u32': w.u32(VT.U32); w.u32(v.value); return;
    case 'i32': w.u32(VT.I32); w.i32(v.value); return;
    case 'f32': w.u32(VT.F32); w.f32(v.value); return;
    case 'u64': w.u32(VT.U64); w.u64(v.value); return;
    case 'bool': w.u32(VT.BOOL); w.u8(v.value ? 1 : 0); return;
    case 'string': w.u32(VT.STRING); w.string(v.value); return;
    case 'string[]':
      w.u32(VT.ARRAY); w.u32(VT.STRING); w.u64(v.value.length);
      if (v.value instanceof EncodedStrings) w.raw(v.value.bytes);  // a part of its own, not copied
      else for (const s of v.value) w.string(s);
      return;
    case 'i32[]': w.u32(VT.ARRAY); w.u32(VT.I32); w.u64(v.value.length); w.numbers(v.value, 'i32'); return;
    case 'f32[]': w.u32(VT.ARRAY); w.u32(VT.F32); w.u64(v.value.length); w.numbers(v.value, 'f32'); return;
  }
}

/** The header's size if every string is ASCII (more is grown into): what the writer allocates first. */
function headerSizeHint(metadata: GgufMetadata, tensors: readonly GgufTensorInfo[]): number {
  let n = 4096 + tensors.length * 128;
  for (const [key, v] of metadata.entries) {
    n += 32 + key.length;
    if (v.type === 'string') n += v.value.length;
    else if (v.type === 'string[]') {
      if (!(v.value instanceof EncodedStrings)) for (const s of v.value) n += 8 + s.length;  // else a part of its own
    }
    else if (v.type === 'i32[]' || v.type === 'f32[]') n += 4 * v.value.length;
  }
  return n;
}

/** The header (through the padding before the data) and each tensor's offset in the data section. */
export function ggufHeader(metadata: GgufMetadata, tensors: readonly GgufTensorInfo[]): { header: Buffer; offsets: number[]; dataBytes: number } {
  const { parts, offsets, dataBytes } = ggufHeaderParts(metadata, tensors);
  return { header: Buffer.concat(parts), offsets, dataBytes };
}

/**
 * ggufHeader as parts, in order (`length` bytes in all): a vocabulary already encoded (EncodedStrings) is one of
 * them as it is, so that its megabytes are not copied into a header buffer on the way to the native plan.
 */
export function ggufHeaderParts(metadata: GgufMetadata, tensors: readonly GgufTensorInfo[]): { parts: Uint8Array[]; length: number; offsets: number[]; dataBytes: number } {
  const w = new ByteWriter(headerSizeHint(metadata, tensors));
  w.u32(0x46554747);  // "GGUF"
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.entries.size);
  for (const [key, value] of metadata.entries) {
    w.string(key);
    writeValue(w, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) fail('ERR_ARG', `GGUF: the tensor name ${t.name} appears twice`);
    seen.add(t.name);
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offsets.push(offset);
    const bytes = ggmlBytes(t.shape, t.type);
    offset += bytes + pad(bytes);
  }
  w.zeros(pad(w.length));
  return { parts: w.parts(), length: w.length, offsets, dataBytes: offset };
}

export interface GgufWriteStats {
  bytesWritten: number;
  tensors: number;
}

/**
 * Writes a GGUF file atomically: `path` is either the previous file or the complete new one. `onTensor` is
 * called after each tensor's bytes are written.
 */
export async function writeGguf(path: string, metadata: GgufMetadata, tensors: readonly GgufTensor[],
  onTensor?: (done: number, total: number) => void): Promise<GgufWriteStats> {
  const { header, dataBytes } = ggufHeader(metadata, tensors);
  const tmp = tempSibling(path);
  const handle = await open(tmp, 'w', 0o644);
  let ok = false;
  try {
    let position = 0;
    const write = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    };
    await write(header);
    const zeros = new Uint8Array(GGUF_ALIGNMENT);
    // The next tensor is produced while the current one is written.
    let next: Promise<Uint8Array> | null = tensors.length ? tensors[0].data() : null;
    for (let i = 0; i < tensors.length; i++) {
      const bytes = await next!;
      next = i + 1 < tensors.length ? tensors[i + 1].data() : null;
      next?.catch(() => {});  // awaited on the next turn; a failure there is reported then
      const expected = ggmlBytes(tensors[i].shape, tensors[i].type);
      if (bytes.length !== expected) {
        fail('ERR_SHAPE', `GGUF: tensor ${tensors[i].name} has ${bytes.length} bytes of data, expected ${expected}`);
      }
      await write(bytes);
      await write(zeros.subarray(0, pad(bytes.length)));
      onTensor?.(i + 1, tensors.length);
    }
    if (position !== header.length + dataBytes) fail('ERR_IO', `GGUF: wrote ${position} bytes, expected ${header.length + dataBytes}`);
    await handle.sync();
    ok = true;
    return { bytesWritten: position, tensors: tensors.length };
  } finally {
    await handle.close();
    if (ok) {
      try {
        await rename(tmp, path);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      await fsyncDir(dirname(path));
    } else {
      await rm(tmp, { force: true });
    }
  }
}

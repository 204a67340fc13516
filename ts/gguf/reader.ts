// The metadata of a GGUF file (the key-value pairs of its header, see writer.ts), read without its tensor data:
// what convert_lora_to_gguf compares an adapter with its base model's GGUF by. Arrays are skipped (their length is
// kept), so a vocabulary of 150k tokens costs a few MB of reading and nothing held.
import { closeSync, openSync, readSync } from 'node:fs';
import { fail } from '../errors.js';
import { ioError, isFsError } from '../io/fs_errors.js';

export type GgufReadValue = number | bigint | boolean | string | { array: number };

/** Sizes of the fixed-size GGUF value types (gguf.h's enum gguf_type; 8 string and 9 array are variable). */
const SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Sequential reads of a file through a 1 MB window. */
class Cursor {
  #fd: number;
  #buf = Buffer.alloc(1 << 20);
  #start = 0;  // file offset of #buf[0]
  #end = 0;    // valid bytes in #buf
  #at = 0;     // file offset of the next read
  constructor(fd: number) { this.#fd = fd; }
  #need(n: number, path: string): number {
    if (this.#at + n > this.#start + this.#end) {
      if (n > this.#buf.length) this.#buf = Buffer.alloc(n);
      this.#start = this.#at;
      this.#end = readSync(this.#fd, this.#buf, 0, this.#buf.length, this.#start);
      if (this.#end < n) fail('ERR_CHECKPOINT_FORMAT', `${path}: the GGUF header ends early (a truncated file?)`);
    }
    const offset = this.#at - this.#start;
    this.#at += n;
    return offset;
  }
  u32(path: string): number { return this.#buf.readUInt32LE(this.#need(4, path)); }
  u64(path: string): bigint { return this.#buf.readBigUInt64LE(this.#need(8, path)); }
  skip(n: number): void { this.#at += n; }
  string(path: string): string {
    const n = Number(this.u64(path));
    if (n > 1 << 30) fail('ERR_CHECKPOINT_FORMAT', `${path}: a GGUF string of ${n} bytes; the file is damaged`);
    return this.#buf.toString('utf8', this.#need(n, path), this.#at - this.#start);
  }
  scalar(type: number, path: string): GgufReadValue {
    const size = SIZE[type];
    if (size === undefined) fail('ERR_CHECKPOINT_FORMAT', `${path}: unknown GGUF value type ${type}; the file is damaged or newer than litlora`);
    const o = this.#need(size, path);
    switch (type) {
      case 0: return this.#buf.readUInt8(o);
      case 1: return this.#buf.readInt8(o);
      case 2: return this.#buf.readUInt16LE(o);
      case 3: return this.#buf.readInt16LE(o);
      case 4: return this.#buf.readUInt32LE(o);
      case 5: return this.#buf.readInt32LE(o);
      case 6: return this.#buf.readFloatLE(o);
      case 7: return this.#buf.readUInt8(o) !== 0;
      case 10: return this.#buf.readBigUInt64LE(o);
      case 11: return this.#buf.readBigInt64LE(o);
      default: return this.#buf.readDoubleLE(o);
    }
  }
}

/** The key-value metadata of the GGUF file at `path` (arrays as their length). */
export function readGgufMetadata(path: string): Map<string, GgufReadValue> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw isFsError(e) ? ioError(e, `open the GGUF file ${path}`) : e;
  }
  try {
    const c = new Cursor(fd);
    if (c.u32(path) !== 0x46554747) fail('ERR_CHECKPOINT_FORMAT', `${path} is not a GGUF file (no GGUF magic)`);
    const version = c.u32(path);
    if (version !== 2 && version !== 3) fail('ERR_CHECKPOINT_FORMAT', `${path}: GGUF version ${version}; expected 2 or 3`);
    c.u64(path);  // tensor count
    const count = Number(c.u64(path));
    const out = new Map<string, GgufReadValue>();
    for (let i = 0; i < count; i++) {
      const key = c.string(path);
      const type = c.u32(path);
      if (type === 8) out.set(key, c.string(path));
      else if (type === 9) {
        const itemType = c.u32(path);
        const n = Number(c.u64(path));
        if (itemType === 8) for (let k = 0; k < n; k++) c.string(path);
        else if (SIZE[itemType] !== undefined) c.skip(n * SIZE[itemType]);
        else fail('ERR_CHECKPOINT_FORMAT', `${path}: ${key} is an array of GGUF type ${itemType}, which litlora does not read`);
        out.set(key, { array: n });
      } else out.set(key, c.scalar(type, path));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

// Reads and rewrites the RUNPATH of a 64-bit little-endian ELF shared object in place, with no tool (patchelf is
// rarely installed). In place means the new RUNPATH must fit in the old one's bytes: CMakeLists.txt links every
// build with `<libtorch it was built against>/lib:$ORIGIN/libtorch/lib`, so a prebuild can always be cut down to
// its relative entry (scripts/prebuildify.mjs).
import { readFileSync, writeFileSync } from 'node:fs';

const PT_LOAD = 1, PT_DYNAMIC = 2, DT_NULL = 0n, DT_STRTAB = 5n, DT_RPATH = 15n, DT_RUNPATH = 29n;

// Where the RUNPATH (or the older RPATH) string lies in the file: { offset, length, value, entryAt, strOffset }
// (entryAt: the file position of its dynamic entry's value; strOffset: that value) or null.
function locate(buf, file) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) {
    throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  }
  const phoff = Number(buf.readBigUInt64LE(0x20)), phentsize = buf.readUInt16LE(0x36), phnum = buf.readUInt16LE(0x38);
  const loads = [];
  let dynamic = null;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = buf.readUInt32LE(at);
    const header = { offset: Number(buf.readBigUInt64LE(at + 8)), vaddr: Number(buf.readBigUInt64LE(at + 16)),
      filesz: Number(buf.readBigUInt64LE(at + 32)) };
    if (type === PT_LOAD) loads.push(header);
    if (type === PT_DYNAMIC) dynamic = header;
  }
  if (!dynamic) throw new Error(`${file} has no dynamic section`);
  let strtab = null, entry = null, entryAt = null;
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.filesz; at += 16) {
    const tag = buf.readBigInt64LE(at);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = Number(buf.readBigUInt64LE(at + 8));
    if (tag === DT_RUNPATH || (tag === DT_RPATH && entry === null)) {
      entry = Number(buf.readBigUInt64LE(at + 8));
      entryAt = at + 8;
    }
  }
  if (strtab === null || entry === null) return null;
  const load = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
  if (!load) throw new Error(`${file}: its string table is in no loaded segment`);
  const offset = strtab - load.vaddr + load.offset + entry;
  const end = buf.indexOf(0, offset);
  return { offset, length: end - offset, value: buf.toString('utf8', offset, end), entryAt, strOffset: entry };
}

/** The RUNPATH (or RPATH) of `file`, or null when it has none. */
export function readRunpath(file) {
  return locate(readFileSync(file), file)?.value ?? null;
}

/**
 * Sets the RUNPATH of `file` to `value`, which must be no longer than the one it has. The new string is written
 * flush with the old one's end and the entry pointed at it: the linker shares string-table tails between
 * strings, and a tail of the old RUNPATH another string uses stays as it was when `value` is such a tail.
 */
export function setRunpath(file, value) {
  const buf = readFileSync(file);
  const found = locate(buf, file);
  if (!found) throw new Error(`${file} has no RUNPATH to rewrite`);
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > found.length) {
    throw new Error(`${file}: the RUNPATH ${value} is longer than the one there (${found.value}); it cannot be set in place`);
  }
  const shift = found.length - bytes.length;
  buf.fill(0, found.offset, found.offset + shift);
  bytes.copy(buf, found.offset + shift);
  buf.writeBigUInt64LE(BigInt(found.strOffset + shift), found.entryAt);
  writeFileSync(file, buf);
}

// Writes .pth files laid out as torch.save lays them out (a zip of archive/data.pkl + archive/data/<key>
// records), but holding whatever a crafted or foreign-written file can hold: any view (sizes, strides,
// storage offset) over any storage size, and records at any alignment (PyTorch pads each record to 64 bytes;
// most other zip writers pad nothing). The fuzz script uses it for the classes that byte mutations of real
// files never reach, such as a [2^29, 2^29] stride-0 view of one float.
import { crc32 } from 'node:zlib';

export interface CraftedTensor {
  name: string;
  storage: { key: string; className: string; numel: number; bytes?: Buffer };  // className e.g. FloatStorage
  offset: number;
  sizes: number[];
  strides: number[];
}

// ---- pickle (protocol 2), only the opcodes torch.save's pickles use
class Pickle {
  private parts: Buffer[] = [Buffer.from([0x80, 2])];
  private op(...bytes: number[]) { this.parts.push(Buffer.from(bytes)); return this; }
  mark() { return this.op(0x28); }
  tuple() { return this.op(0x74); }
  emptyDict() { return this.op(0x7d); }
  emptyTuple() { return this.op(0x29); }
  setItems() { return this.op(0x75); }
  reduce() { return this.op(0x52); }
  persid() { return this.op(0x51); }
  newFalse() { return this.op(0x89); }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.parts.push(Buffer.from([0x58]), len, b);
    return this;
  }
  global(module: string, name: string) { this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'latin1')); return this; }
  int(v: number | bigint) {
    const big = BigInt(v);
    if (big >= -(2n ** 31n) && big < 2n ** 31n) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(Number(big));
      this.parts.push(Buffer.from([0x4a]), b);
    } else {  // LONG1: little-endian two's complement, 8 bytes is enough for any int64
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(big);
      this.parts.push(Buffer.from([0x8a, 8]), b);
    }
    return this;
  }
  intTuple(values: number[]) { this.mark(); for (const v of values) this.int(v); return this.tuple(); }
  finish(): Buffer { this.op(0x2e); return Buffer.concat(this.parts); }
}

export function pickleStateDict(tensors: CraftedTensor[]): Buffer {
  const p = new Pickle().emptyDict().mark();
  for (const t of tensors) {
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', t.storage.className).str(t.storage.key).str('cpu').int(t.storage.numel).tuple().persid();
    p.int(t.offset).intTuple(t.sizes).intTuple(t.strides).newFalse().global('collections', 'OrderedDict').emptyTuple().reduce();
    p.tuple().reduce();
  }
  return p.setItems().finish();
}

// ---- zip (stored records, zip32), with `padTo` alignment of record data (1: none)
export function zipRecords(records: { name: string; data: Buffer }[], padTo: number): Buffer {
  const out: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer) => { out.push(b); offset += b.length; };
  for (const r of records) {
    const name = Buffer.from(r.name, 'utf8');
    const headerEnd = offset + 30 + name.length;
    const pad = padTo > 1 ? (padTo - ((headerEnd + 4) % padTo)) % padTo : 0;
    const extra = pad || padTo > 1 ? Buffer.concat([Buffer.from([0x46, 0x42]), u16(pad), Buffer.alloc(pad)]) : Buffer.alloc(0);
    const crc = crc32(r.data);
    const local = Buffer.concat([u32(0x04034b50), u16(20), u16(0), u16(0), u16(0), u16(0), u32(crc), u32(r.data.length),
      u32(r.data.length), u16(name.length), u16(extra.length), name, extra]);
    central.push(Buffer.concat([u32(0x02014b50), u16(20), u16(20), u16(0), u16(0), u16(0), u16(0), u32(crc), u32(r.data.length),
      u32(r.data.length), u16(name.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(offset), name]));
    push(local);
    push(r.data);
  }
  const cd = Buffer.concat(central);
  const cdOffset = offset;
  push(cd);
  push(Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(records.length), u16(records.length), u32(cd.length), u32(cdOffset), u16(0)]));
  return Buffer.concat(out);
}

const ELEMENT: Record<string, number> = { FloatStorage: 4, DoubleStorage: 8, HalfStorage: 2, BFloat16Storage: 2, LongStorage: 8, IntStorage: 4, ByteStorage: 1, BoolStorage: 1 };

/**
 * A whole .pth: `tensors` with their storages' bytes (zeros unless given), records aligned to `padTo` bytes;
 * `lead` bytes of a first record named 'archive/pad' move the following records off any alignment when padTo is 1.
 */
export function craftPth(tensors: CraftedTensor[], options: { padTo?: number; lead?: number } = {}): Buffer {
  const records = [{ name: 'archive/data.pkl', data: pickleStateDict(tensors) }];
  if (options.lead) records.unshift({ name: 'archive/pad', data: Buffer.alloc(options.lead) });
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.storage.key)) continue;
    seen.add(t.storage.key);
    const bytes = t.storage.bytes ?? Buffer.alloc(t.storage.numel * (ELEMENT[t.storage.className] ?? 1));
    records.push({ name: `archive/data/${t.storage.key}`, data: bytes });
  }
  records.push({ name: 'archive/version', data: Buffer.from('3\n') }, { name: 'archive/byteorder', data: Buffer.from('little') });
  return zipRecords(records, options.padTo ?? 64);
}

function u16(v: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; }
function u32(v: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; }

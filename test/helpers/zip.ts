// A minimal zip writer for test archives (deflated entries, Unix modes and symbolic links in the external
// attributes, as Info-ZIP writes them): litlora only reads zips, with yauzl, and tests need small ones made on the spot.
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipEntry {
  /** The path in the archive; a name ending in `/` is a folder. */
  name: string;
  data?: Buffer | string;
  /** Permission bits of a file (default 0o644). */
  mode?: number;
  /** Makes the entry a symbolic link to this target. */
  symlink?: string;
}

export function makeZip(entries: readonly ZipEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = Buffer.from(e.symlink ?? e.data ?? '');
    const method = data.length ? 8 : 0;
    const body = method ? deflateRawSync(data) : data;
    const crc = crc32(data) >>> 0;
    const name = Buffer.from(e.name, 'utf8');
    const type = e.symlink !== undefined ? 0o120000 : e.name.endsWith('/') ? 0o040000 : 0o100000;
    const mode = type | (e.symlink !== undefined ? 0o777 : e.name.endsWith('/') ? 0o755 : (e.mode ?? 0o644));
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE((3 << 8) | 30, 4); // made by Unix: the external attributes hold a mode
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(method, 10);
    header.writeUInt16LE(0x21, 14);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(body.length, 20);
    header.writeUInt32LE(data.length, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE((mode << 16) >>> 0, 38);
    header.writeUInt32LE(offset, 42);
    parts.push(local, name, body);
    central.push(header, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, directory, end]);
}

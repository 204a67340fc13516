// Minimal .npy (format 1.0) reader/writer, so tests can hand exact arrays to the Python reference and back.
import { readFileSync, writeFileSync } from 'node:fs';

export type NpyArray = { data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array | Uint8Array; shape: number[] };

const DESCR: [Function, string][] = [
  [Float32Array, '<f4'], [Float64Array, '<f8'], [Int32Array, '<i4'], [BigInt64Array, '<i8'], [Uint16Array, '<u2'], [Uint8Array, '|u1'],
];

export function writeNpy(path: string, array: NpyArray): void {
  const descr = DESCR.find(([c]) => array.data instanceof (c as any))?.[1];
  if (!descr) throw new Error('writeNpy: unsupported array type');
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

export function readNpy(path: string): NpyArray {
  const buf = readFileSync(path);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)![1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)![1];
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const bytes = buf.subarray(start + headerLen);
  const copy = new Uint8Array(bytes).buffer; // aligned copy
  const ctor = DESCR.find(([, d]) => d === descr)?.[0] as any;
  if (!ctor) throw new Error(`readNpy: unsupported dtype ${descr}`);
  return { data: new ctor(copy), shape };
}

// Q8_0 quantization exactly as llama.cpp computes it (gguf-py's quants.py, which ggml's
// quantize_row_q8_0_ref matches): per block of 32 float32 values, d = max|x| / 127 (float32), q = round(x / d)
// rounded half away from zero (as x · (1/d) in float32), and d stored as IEEE half (round to nearest even).
import { Q8_0_BLOCK, Q8_0_BLOCK_BYTES } from './writer.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE half bits of a float32 value, rounded to nearest even (numpy's astype(float16)). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;  // a carry into the exponent is the right result
  return sign | half;
}

/** Q8_0 blocks of `values` (a whole number of 32-value blocks, row after row). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const fr = Math.fround;
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const a = Math.abs(values[base + j]);
      if (a > amax) amax = a;
    }
    const d = fr(amax / 127);
    const id = d === 0 ? 0 : fr(1 / d);
    const o = b * Q8_0_BLOCK_BYTES;
    view.setUint16(o, float16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = fr(values[base + j] * id);
      const q = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
      out[o + 2 + j] = q & 0xff;
    }
  }
  return out;
}

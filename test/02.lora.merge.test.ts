// Merge / unmerge: in place or not, the fp32 round trip (bit-exact wherever the merge itself lost nothing),
// the bf16 round trip within its measured bound, merged forward == unmerged forward.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lora, type Dtype } from '../ts/index.js';
import { assertClose, randomArray } from './helpers/assert.js';
import { caseData, plainCase, rounded, tensor, values } from './02.lora.helpers.js';

const f32 = new Float32Array(1);
const toF32 = (v: number) => { f32[0] = v; return f32[0]; };
// Spacing of `dtype` numbers at |v| (bf16: 8 significant bits, fp32: 24).
function ulp(v: number, bits: number): number {
  const a = Math.abs(v);
  if (a === 0) return 2 ** -133;
  return 2 ** (Math.floor(Math.log2(a)) - (bits - 1));
}
const binade = (v: number) => (v === 0 ? -Infinity : Math.floor(Math.log2(Math.abs(v))));

async function roundTrip(dtype: Dtype, w: Float64Array, shape: number[], a: Float64Array, b: Float64Array, r: number, scaling: number) {
  const W = tensor(w, shape, dtype);
  const A = tensor(a, [r, shape[1]]), B = tensor(b, [shape[0], r]);
  const before = await values(W);
  const merged = await lora.merge(W, A, B, { scaling });
  const after = await values(await lora.unmerge(merged, A, B, { scaling }));
  return { before, merged: await values(merged), after };
}

test('merge → unmerge in fp32 is bit-exact wherever the merged value stays in W\'s binade (or drops below it)', async () => {
  // litgpt-like scales: W ~ U(-0.3, 0.3), A kaiming-uniform, B trained to ~0.05, scaling 2.
  const [out, inF, r] = [256, 192, 16];
  const { before, merged, after } = await roundTrip('float32', randomArray(out * inF, 1, 0.3), [out, inF],
    randomArray(r * inF, 2, 1 / Math.sqrt(inF)), randomArray(out * r, 3, 0.05), r, 2);
  let exact = 0, crossed = 0;
  for (let i = 0; i < before.length; i++) {
    if (binade(merged[i]) > binade(before[i])) {
      // The merge rounded to a coarser grid: no unmerge can recover the dropped bits; within one ulp of the
      // merged value (half from the merge, half from the unmerge).
      crossed++;
      assert.ok(Math.abs(after[i] - before[i]) <= ulp(merged[i], 24), `element ${i}: ${after[i]} vs ${before[i]}`);
      if (after[i] === before[i]) exact++;
    } else {
      assert.is(after[i], before[i], `element ${i} (merged ${merged[i]}) must round-trip exactly`);
      exact++;
    }
  }
  // Measured: 95.9 % of elements exact on this data (the rest crossed a power of two in the merge).
  assert.ok(exact / before.length > 0.9, `exact fraction ${exact / before.length}`);
  assert.ok(crossed < before.length * 0.1);
});

test('fp32 round trip is bit-exact for every element when no merged value crosses a power of two', async () => {
  // W in [1, 1.5) and |ΔW| < 0.25: every merged value stays in [0.75, 2) … so pick W in [1.25, 1.5), |ΔW| < 0.2.
  const [out, inF, r] = [128, 64, 8];
  const w = randomArray(out * inF, 4, 0.125).map((v) => 1.375 + v);
  const { before, merged, after } = await roundTrip('float32', w, [out, inF], randomArray(r * inF, 5, 0.1), randomArray(out * r, 6, 0.1), r, 2);
  assert.ok(merged.every((v) => v >= 1 && v < 2));
  assert.ok(merged.some((v, i) => v !== before[i]), 'the merge changed W');
  assert.equal(Array.from(after), Array.from(before));
});

test('bf16 merge → unmerge: within one bf16 ulp of max(|W|, |merged|) per element (measured, see docs/lora-ops.md)', async () => {
  const [out, inF, r] = [256, 192, 16];
  for (const adapters of ['bfloat16', 'float32'] as const) {
    const W = tensor(randomArray(out * inF, 7, 0.3), [out, inF], 'bfloat16');
    const A = tensor(randomArray(r * inF, 8, 1 / Math.sqrt(inF)), [r, inF], adapters);
    const B = tensor(randomArray(out * r, 9, 0.05), [out, r], adapters);
    const before = await values(W);
    const merged = await values(await lora.merge(W, A, B, { scaling: 2, inPlace: true }));
    assert.ok(merged.some((v, i) => v !== before[i]));
    const after = await values(await lora.unmerge(W, A, B, { scaling: 2, inPlace: true }));
    let changed = 0;
    for (let i = 0; i < before.length; i++) {
      const bound = ulp(Math.max(Math.abs(before[i]), Math.abs(merged[i])), 8);
      assert.ok(Math.abs(after[i] - before[i]) <= bound, `element ${i}: ${after[i]} vs ${before[i]} (bound ${bound})`);
      if (after[i] !== before[i]) changed++;
    }
    // Measured on this data: a few percent of elements move by one ulp; most come back exactly.
    assert.ok(changed / before.length < 0.2, `${adapters} adapters: ${changed} of ${before.length} changed`);
  }
});

test('inPlace merges into the given tensor and returns it; the default leaves W unchanged', async () => {
  const c = plainCase([1], 16, 12, 4);
  const d = caseData(c, 3);
  const W = tensor(d.w, d.wShape), A = tensor(d.a, d.aShape), B = tensor(d.bb, d.bShape);
  const original = await values(W);
  const copy = await lora.merge(W, A, B, { scaling: 2 });
  assert.ok(copy !== W);
  assert.equal(Array.from(await values(W)), Array.from(original), 'not in place');
  const same = await lora.merge(W, A, B, { scaling: 2, inPlace: true });
  assert.ok(same === W);
  assert.equal(Array.from(await values(W)), Array.from(await values(copy)), 'in place = copy result');
});

test('a weight of several row blocks (the CPU merge works in 256 K-element blocks): every element is W + s·BA rounded once', async () => {
  const [out, inF, r, s] = [700, 1000, 8, 2];
  const [w, a, b] = [await rounded(randomArray(out * inF, 7, 0.3), [out, inF], 'float32'),
    await rounded(randomArray(r * inF, 8, 0.03), [r, inF], 'float32'), await rounded(randomArray(out * r, 9, 0.05), [out, r], 'float32')];
  const W = tensor(w, [out, inF]), A = tensor(a, [r, inF]), B = tensor(b, [out, r]);
  const merged = await values(await lora.merge(W, A, B, { scaling: s }));
  let changed = 0;
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inF; j++) {
      let delta = 0;
      for (let k = 0; k < r; k++) delta += b[i * r + k] * a[k * inF + j];
      const want = toF32(w[i * inF + j] + s * delta);
      if (merged[i * inF + j] !== want) assert.unreachable(`element (${i}, ${j}): ${merged[i * inF + j]}, expected ${want}`);
      if (want !== w[i * inF + j]) changed++;
    }
  }
  assert.ok(changed > out * inF / 2, 'the merge changed most elements');
  await lora.merge(W, A, B, { scaling: s, inPlace: true });
  assert.equal(Array.from(await values(W)), Array.from(merged), 'in place, block by block, gives the same bits');
  await lora.unmerge(W, A, B, { scaling: s, inPlace: true });
  const back = await values(W);
  assert.ok(back.filter((v, i) => v === w[i]).length > 0.9 * w.length, 'unmerge restores (nearly) every element exactly');
});

test('merged forward equals unmerged forward: fp32 within fp32 rounding, bf16 within bf16 tolerance', async () => {
  const c = plainCase([8, 16], 64, 48, 8);
  const d = caseData(c, 13);
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 5e-2]] as const) {
    const x = tensor(d.x, d.xShape, dtype), W = tensor(d.w, d.wShape, dtype), b = tensor(d.b, [c.outF], dtype);
    const A = tensor(d.a, d.aShape, dtype), B = tensor(d.bb, d.bShape, dtype);
    const y = await values(await lora.forward(x, W, A, B, { scaling: 2, bias: b }));
    const merged = await lora.merge(W, A, B, { scaling: 2 });
    const yMerged = await values(await lora.forward(x, merged, A, B, { scaling: 0, bias: b }));
    assertClose(yMerged, y, { rtol: tol, atol: tol, what: `${dtype} merged forward` });
  }
  // The reference values really are rounded: a sanity check of the helper.
  assert.is((await rounded(new Float64Array([0.1]), [1], 'float32'))[0], toF32(0.1));
});

test.run();

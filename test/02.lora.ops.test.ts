// lora.forward / lora.backward: float64 finite differences, libtorch autograd on the same math (plain ops and
// the autograd Function), Python PyTorch on the same inputs in every dtype (mixed bf16 + fp32 adapters
// included), dropout masks, both compute paths, and CUDA where a GPU is visible.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lora, type Dtype } from '../ts/index.js';
import { loraInternals } from '../ts/internals.js';
import { assertClose } from './helpers/assert.js';
import { caseData, devices, npy, plainCase, pythonReferences, qkvCase, rounded, tensor, values, type Case } from './02.lora.helpers.js';

async function withPath<T>(path: 'skinny' | 'merged' | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env.LITLORA_LORA_PATH;
  if (path) process.env.LITLORA_LORA_PATH = path; else delete process.env.LITLORA_LORA_PATH;
  try { return await fn(); } finally {
    if (before === undefined) delete process.env.LITLORA_LORA_PATH; else process.env.LITLORA_LORA_PATH = before;
  }
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);

for (const path of ['skinny', 'merged'] as const) {
  for (const dropout of [0, 0.3]) {
    test(`float64 finite differences: gradX, gradA, gradB (${path} path, dropout ${dropout}, bias, 3-D x)`, async () => {
      const c = plainCase([2, 3], 5, 4, 3);
      const d = caseData(c, 11);
      const opts = { scaling: 1.7, dropout, training: dropout > 0, seed: 1234 };
      const W = tensor(d.w, d.wShape, 'float64'), b = tensor(d.b, [c.outF], 'float64');
      const loss = async (x: Float64Array, a: Float64Array, bb: Float64Array) => {
        const y = await lora.forward(tensor(x, d.xShape, 'float64'), W, tensor(a, d.aShape, 'float64'),
          tensor(bb, d.bShape, 'float64'), { ...opts, bias: b });
        return dot(await values(y), d.gy);
      };
      const g = await withPath(path, () => lora.backward(tensor(d.gy, d.yShape, 'float64'), tensor(d.x, d.xShape, 'float64'), W,
        tensor(d.a, d.aShape, 'float64'), tensor(d.bb, d.bShape, 'float64'), opts));
      const h = 1e-6;
      for (const [name, which, grad] of [['gradX', 0, g.gradX], ['gradA', 1, g.gradA], ['gradB', 2, g.gradB]] as const) {
        const base = [d.x, d.a, d.bb][which];
        const fd = new Float64Array(base.length);
        for (let i = 0; i < base.length; i++) {
          const plus = Float64Array.from(base), minus = Float64Array.from(base);
          plus[i] += h; minus[i] -= h;
          const args = (v: Float64Array) => [which === 0 ? v : d.x, which === 1 ? v : d.a, which === 2 ? v : d.bb] as const;
          fd[i] = (await loss(...args(plus)) - await loss(...args(minus))) / (2 * h);
        }
        assertClose(await values(grad), fd, { rtol: 1e-7, atol: 1e-8, what: name });
      }
    });
  }
}

test('forward and backward match libtorch autograd (plain ops, and the autograd Function), with dropout and QKV', async () => {
  const cases: Case[] = [
    plainCase([3, 7], 16, 12, 4),
    qkvCase([9], 16, 2, { nHead: 4, nQueryGroups: 2, headSize: 2, enable: [true, false, true], layout: 'interleaved' }),
    qkvCase([9], 16, 2, { nHead: 4, nQueryGroups: 1, headSize: 2, enable: [false, true, true], layout: 'qkv' }),
  ];
  for (const c of cases) {
    for (const dropout of [0, 0.25]) {
      const d = caseData(c, 21);
      const opts = { scaling: 0.5, dropout, training: true, seed: 77, qkv: c.qkv };
      const [x, W, b, A, B, gy] = [tensor(d.x, d.xShape), tensor(d.w, d.wShape), tensor(d.b, [c.outF]),
        tensor(d.a, d.aShape), tensor(d.bb, d.bShape), tensor(d.gy, d.yShape)];
      const ours = await lora.backward(gy, x, W, A, B, opts);
      const ref = await loraInternals.referenceGrads(gy, x, W, A, B, { ...opts, bias: b }, false);
      const fn = await loraInternals.referenceGrads(gy, x, W, A, B, { ...opts, bias: b }, true);
      for (const k of ['gradX', 'gradA', 'gradB'] as const) {
        assertClose(await values(ours[k]), await values(ref[k]), { rtol: 1e-4, atol: 1e-5, what: `${k} vs autograd reference` });
        assertClose(await values(fn[k]), await values(ref[k]), { rtol: 1e-4, atol: 1e-5, what: `${k} via lora.linear` });
      }
      const y = await lora.forward(x, W, A, B, { ...opts, bias: b });
      const yFn = await loraInternals.linearForward(x, W, A, B, { ...opts, bias: b });
      assert.equal(Array.from(await values(yFn)), Array.from(await values(y)), 'autograd Function forward = lora.forward');
    }
  }
});

test('dropout: same seed → same mask in forward and backward; another seed → another mask; eval mode ignores it', async () => {
  const c = plainCase([64], 32, 8, 4);
  const d = caseData(c, 31);
  const [x, W, A, B] = [tensor(d.x, d.xShape), tensor(d.w, d.wShape), tensor(d.a, d.aShape), tensor(d.bb, d.bShape)];
  const o = { scaling: 2, dropout: 0.5, training: true };
  const y1 = await values(await lora.forward(x, W, A, B, { ...o, seed: 5 }));
  const y2 = await values(await lora.forward(x, W, A, B, { ...o, seed: 5 }));
  const y3 = await values(await lora.forward(x, W, A, B, { ...o, seed: 6 }));
  assert.equal(Array.from(y1), Array.from(y2));
  assert.ok(y1.some((v, i) => v !== y3[i]), 'a different seed gives a different output');
  const mask = await values(await loraInternals.dropoutMask(x, 0.5, 5));
  const zeros = mask.filter((v) => v === 0).length;
  assert.ok(mask.every((v) => v === 0 || v === 2), 'mask values are 0 or 1/(1-p)');
  assert.ok(zeros > mask.length * 0.4 && zeros < mask.length * 0.6, `about half dropped, got ${zeros}/${mask.length}`);
  const evalY = await values(await lora.forward(x, W, A, B, { ...o, training: false }));
  const plain = await values(await lora.forward(x, W, A, B, { scaling: 2 }));
  assert.equal(Array.from(evalY), Array.from(plain));
});

const dtypeCases: { dtype: Dtype; adapter?: Dtype; dropout: boolean; rtol: number; atol: number }[] = [
  { dtype: 'float32', dropout: false, rtol: 1e-5, atol: 1e-5 },
  { dtype: 'float32', dropout: true, rtol: 1e-5, atol: 1e-5 },
  { dtype: 'float64', dropout: false, rtol: 1e-12, atol: 1e-12 },
  { dtype: 'bfloat16', dropout: false, rtol: 2e-2, atol: 3e-2 },
  { dtype: 'float16', dropout: false, rtol: 4e-3, atol: 4e-3 },
  { dtype: 'bfloat16', adapter: 'float32', dropout: false, rtol: 2e-2, atol: 3e-2 },
  { dtype: 'bfloat16', adapter: 'float32', dropout: true, rtol: 2e-2, atol: 3e-2 },
  { dtype: 'float16', adapter: 'float32', dropout: false, rtol: 4e-3, atol: 4e-3 },
];

test('every op matches Python PyTorch on the same inputs: fp32, fp64, bf16, fp16, mixed 16-bit + fp32 adapters, dropout', async () => {
  const c = plainCase([4, 6], 24, 20, 4);
  const prepared = [];
  for (const dc of dtypeCases) {
    const d0 = caseData(c, 41);
    const ad = dc.adapter ?? dc.dtype;
    // The reference gets exactly the values our tensors hold after rounding to their dtypes.
    const d = { ...d0, x: await rounded(d0.x, d0.xShape, dc.dtype), w: await rounded(d0.w, d0.wShape, dc.dtype),
      b: await rounded(d0.b, [c.outF], dc.dtype), gy: await rounded(d0.gy, d0.yShape, dc.dtype),
      a: await rounded(d0.a, d0.aShape, ad), bb: await rounded(d0.bb, d0.bShape, ad) };
    const t = { x: tensor(d.x, d.xShape, dc.dtype), W: tensor(d.w, d.wShape, dc.dtype), b: tensor(d.b, [c.outF], dc.dtype),
      A: tensor(d.a, d.aShape, ad), B: tensor(d.bb, d.bShape, ad), gy: tensor(d.gy, d.yShape, dc.dtype) };
    const inputs: Record<string, any> = { x: npy(d.x, d.xShape), w: npy(d.w, d.wShape), b: npy(d.b, [c.outF]),
      a: npy(d.a, d.aShape), bb: npy(d.bb, d.bShape), gy: npy(d.gy, d.yShape) };
    if (dc.dropout) inputs.mask = npy(await values(await loraInternals.dropoutMask(t.x, 0.2, 99)), d.xShape);
    prepared.push({ dc, ad, d, t, job: { c, inputs, dtype: dc.dtype, adapterDtype: dc.adapter, scaling: 2, bias: true } });
  }
  const refs = pythonReferences(prepared.map((p) => p.job));
  for (const [i, { dc, ad, d, t }] of prepared.entries()) {
    const ref = refs[i];
    const what = `${dc.dtype}${dc.adapter ? `+${dc.adapter} adapters` : ''}${dc.dropout ? ' dropout' : ''}`;
    const opts = { scaling: 2, dropout: dc.dropout ? 0.2 : 0, training: dc.dropout, seed: 99 };
    const y = await lora.forward(t.x, t.W, t.A, t.B, { ...opts, bias: t.b });
    assert.is(y.dtype, dc.dtype);
    assert.equal(y.shape, d.yShape);
    assertClose(await values(y), ref.y, { rtol: dc.rtol, atol: dc.atol, what: `${what} y` });
    const g = await lora.backward(t.gy, t.x, t.W, t.A, t.B, opts);
    assert.is(g.gradX.dtype, dc.dtype);
    assert.is(g.gradA.dtype, ad);
    assert.is(g.gradB.dtype, ad);
    assertClose(await values(g.gradX), ref.gx, { rtol: dc.rtol, atol: dc.atol, what: `${what} gradX` });
    // gradA/gradB sum over all tokens: compare relative to their overall scale.
    const scaleA = Math.max(...ref.ga.map(Math.abs)), scaleB = Math.max(...ref.gb.map(Math.abs));
    assertClose(await values(g.gradA), ref.ga, { rtol: dc.rtol, atol: dc.atol * scaleA, what: `${what} gradA` });
    assertClose(await values(g.gradB), ref.gb, { rtol: dc.rtol, atol: dc.atol * scaleB, what: `${what} gradB` });
    if (!dc.dropout) {
      const merged = await values(await lora.merge(t.W, t.A, t.B, { scaling: 2 }));
      const unmerged = await values(await lora.unmerge(t.W, t.A, t.B, { scaling: 2 }));
      if (dc.dtype === 'bfloat16' || dc.dtype === 'float16') {
        // One rounding of the same float32 value: bit for bit.
        assert.equal(Array.from(merged), Array.from(ref.merged), `${what} merged`);
        assert.equal(Array.from(unmerged), Array.from(ref.unmerged), `${what} unmerged`);
      } else {
        // float64 math on both sides; only the order of an fp64 sum may differ.
        const tol = dc.dtype === 'float64' ? 1e-14 : 1e-7;
        assertClose(merged, ref.merged, { rtol: tol, atol: tol, what: `${what} merged` });
        assertClose(unmerged, ref.unmerged, { rtol: tol, atol: tol, what: `${what} unmerged` });
      }
    }
  }
});

test('skinny and merged paths agree (fp32, within fp32 rounding), and the cost model picks merged for many tokens', async () => {
  const c = plainCase([256], 64, 96, 8);
  const d = caseData(c, 51);
  const [x, W, b, A, B, gy] = [tensor(d.x, d.xShape), tensor(d.w, d.wShape), tensor(d.b, [c.outF]),
    tensor(d.a, d.aShape), tensor(d.bb, d.bShape), tensor(d.gy, d.yShape)];
  const run = (path: 'skinny' | 'merged') => withPath(path, async () => ({
    y: await values(await lora.forward(x, W, A, B, { scaling: 2, bias: b })),
    g: await lora.backward(gy, x, W, A, B, { scaling: 2 }),
  }));
  const s = await run('skinny'), m = await run('merged');
  assertClose(m.y, s.y, { rtol: 1e-5, atol: 1e-5, what: 'y' });
  for (const k of ['gradX', 'gradA', 'gradB'] as const) {
    assertClose(await values(m.g[k]), await values(s.g[k]), { rtol: 1e-5, atol: 1e-4, what: k });
  }
  assert.is(loraInternals.path(4096, 2048, 2048, 16, 1, 'float32'), 'merged');
  assert.is(loraInternals.path(1, 2048, 2048, 16, 1, 'float32'), 'skinny');
  assert.is(loraInternals.path(4096, 2048, 2048, 16, 1, 'bfloat16'), 'skinny', 'never merges into a 16-bit weight');
  // gradX: a merged weight for square layers, the skinny addmm_ into gradX once out is 4× in.
  assert.is(loraInternals.path(4096, 2048, 2048, 8, 1, 'float32', 'gradX'), 'merged');
  assert.is(loraInternals.path(4096, 2048, 8192, 8, 1, 'float32', 'gradX'), 'skinny');
  assert.is(loraInternals.path(4096, 2048, 8192, 8, 1, 'float32', 'forward'), 'merged');
});

for (const path of ['skinny', 'merged'] as const) {
  test(`CPU fp32 forward and backward (${path} path; litlora's own kernels up to r = 16 / 32, MKL above): within fp32 rounding of float64, every tile tail`, async () => {
    // Tokens below and across the kernels' blocks and threads, in/out around their 8-, 16- and 24-column tiles,
    // ranks around their 4-row tiles and r limits. The float64 ops take ATen's GEMMs (checked against finite
    // differences above) on the same fp32-rounded inputs.
    const shapes: [number, number, number, number][] = [
      [1, 3, 5, 1], [2, 17, 20, 3], [3, 8, 24, 2], [7, 29, 33, 4], [100, 64, 50, 5], [257, 48, 40, 13], [611, 33, 70, 32],
      [130, 40, 27, 33],
    ];
    for (const [n, inF, outF, r] of shapes) {
      const c = plainCase([n], inF, outF, r);
      const d = caseData(c, 300 + n);
      const x = await rounded(d.x, d.xShape, 'float32'), W = await rounded(d.w, d.wShape, 'float32');
      const A = await rounded(d.a, d.aShape, 'float32'), B = await rounded(d.bb, d.bShape, 'float32');
      const gy = await rounded(d.gy, d.yShape, 'float32');
      const run = (dtype: Dtype) => withPath(path, async () => {
        const [xt, Wt, At, Bt] = [tensor(x, d.xShape, dtype), tensor(W, d.wShape, dtype), tensor(A, d.aShape, dtype), tensor(B, d.bShape, dtype)];
        return { y: await lora.forward(xt, Wt, At, Bt, { scaling: 1.5 }), ...await lora.backward(tensor(gy, d.yShape, dtype), xt, Wt, At, Bt, { scaling: 1.5 }) };
      });
      const [ours, exact] = [await run('float32'), await run('float64')];
      for (const k of ['y', 'gradX', 'gradA', 'gradB'] as const) {
        const want = await values(exact[k]);
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assertClose(await values(ours[k]), want, { rtol: 1e-5, atol: 1e-5 * scale, what: `${k} (${n} × ${inF}→${outF}, r ${r})` });
      }
    }
  });
}

test('one row of x (the decoding shape, a matrix-vector kernel): fp32 forward within fp32 rounding of float64, every column tail', async () => {
  for (const inF of [1, 7, 8, 31, 32, 45, 100, 515]) {
    for (const outF of [3, 2500]) {
      const c = plainCase([1, 1], inF, outF, 2);
      const d = caseData(c, 71 + inF);
      const [x, W, b, A, B] = [await rounded(d.x, d.xShape, 'float32'), await rounded(d.w, d.wShape, 'float32'),
        await rounded(d.b, [outF], 'float32'), await rounded(d.a, d.aShape, 'float32'), await rounded(d.bb, d.bShape, 'float32')];
      for (const withBias of [true, false]) {
        const y = await values(await lora.forward(tensor(x, d.xShape), tensor(W, d.wShape), tensor(A, d.aShape), tensor(B, d.bShape),
          { scaling: 0.5, ...(withBias ? { bias: tensor(b, [outF]) } : {}) }));
        const xa = [0, 1].map((j) => A.slice(j * inF, (j + 1) * inF).reduce((s, v, k) => s + v * x[k], 0));
        for (let o = 0; o < outF; o++) {
          let want = withBias ? b[o] : 0, scale = Math.abs(want);
          for (let k = 0; k < inF; k++) { want += W[o * inF + k] * x[k]; scale += Math.abs(W[o * inF + k] * x[k]); }
          const lora = 0.5 * (B[o * 2] * xa[0] + B[o * 2 + 1] * xa[1]);
          want += lora;
          scale += Math.abs(lora);
          assert.ok(Math.abs(y[o] - want) <= 1e-6 * scale * Math.max(1, Math.sqrt(inF)),
            `in ${inF}, out ${outF}, bias ${withBias}, row ${o}: ${y[o]} vs float64 ${want}`);
        }
      }
    }
  }
});

test('a few rows of x (the batched decoder\'s shape): every row gets the bits it gets alone, within fp32 rounding of float64', async () => {
  // B = 0, as LoRA initialises it: the adapter adds exact zeros, so y is the base product itself, whose rows must
  // not depend on how many rows share the call (batching must never change a greedy decode). The skinny path is
  // the one the decoder's layers take (the merged path multiplies by W + s·B·A in one sgemm).
  await withPath('skinny', async () => { for (const inF of [7, 45, 515]) {
    for (const rows of [2, 3, 5, 16, 17]) {
      const outF = 130;
      const c = plainCase([rows, 1], inF, outF, 2);
      const d = caseData(c, 19 + inF + rows);
      const [x, W, b, A] = [await rounded(d.x, d.xShape, 'float32'), await rounded(d.w, d.wShape, 'float32'),
        await rounded(d.b, [outF], 'float32'), await rounded(d.a, d.aShape, 'float32')];
      const zeroB = tensor(new Float64Array(outF * 2), d.bShape);
      const opts = { scaling: 0.5, bias: tensor(b, [outF]) };
      const y = await values(await lora.forward(tensor(x, d.xShape), tensor(W, d.wShape), tensor(A, d.aShape), zeroB, opts));
      for (let m = 0; m < rows; m++) {
        const xm = x.slice(m * inF, (m + 1) * inF);
        const alone = await values(await lora.forward(tensor(xm, [1, inF]), tensor(W, d.wShape), tensor(A, d.aShape), zeroB, opts));
        const got = y.slice(m * outF, (m + 1) * outF);
        // 17 rows is past the few-row kernel (sgemm's blocking then): equal within rounding only.
        if (rows <= 16) assert.equal(Array.from(got), Array.from(alone), `in ${inF}, ${rows} rows: row ${m} differs from it alone`);
        for (let o = 0; o < outF; o++) {
          let want = b[o], scale = Math.abs(want);
          for (let k = 0; k < inF; k++) { want += W[o * inF + k] * xm[k]; scale += Math.abs(W[o * inF + k] * xm[k]); }
          assert.ok(Math.abs(got[o] - want) <= 1e-6 * scale * Math.max(1, Math.sqrt(inF)),
            `in ${inF}, ${rows} rows, row ${m}, column ${o}: ${got[o]} vs float64 ${want}`);
        }
      }
    }
  } });
});

test('ops run concurrently off the main thread and accept 1-D x', async () => {
  const c = plainCase([1], 8, 6, 2);
  const d = caseData(c, 61);
  const [W, A, B] = [tensor(d.w, d.wShape), tensor(d.a, d.aShape), tensor(d.bb, d.bShape)];
  const x1 = tensor(d.x, [8]);
  const ys = await Promise.all(Array.from({ length: 8 }, () => lora.forward(x1, W, A, B, { scaling: 3 })));
  const first = await values(ys[0]);
  assert.equal(ys[0].shape, [6]);
  for (const y of ys) assert.equal(Array.from(await values(y)), Array.from(first));
});

test('CUDA (where a GPU is visible): forward, backward, merge match the CPU results in fp32, bf16 and mixed', async () => {
  if (!devices().includes('cuda')) return;
  for (const [dtype, ad, tol] of [['float32', 'float32', 1e-4], ['bfloat16', 'bfloat16', 3e-2], ['bfloat16', 'float32', 3e-2]] as const) {
    for (const c of [plainCase([4, 33], 64, 48, 8),
      qkvCase([17], 32, 4, { nHead: 4, nQueryGroups: 2, headSize: 4, enable: [true, false, true], layout: 'interleaved' })]) {
      const d = caseData(c, 71);
      const make = (dev: 'cpu' | 'cuda') => [tensor(d.x, d.xShape, dtype, dev), tensor(d.w, d.wShape, dtype, dev),
        tensor(d.b, [c.outF], dtype, dev), tensor(d.a, d.aShape, ad, dev), tensor(d.bb, d.bShape, ad, dev),
        tensor(d.gy, d.yShape, dtype, dev)] as const;
      const results: Record<string, Float64Array>[] = [];
      for (const dev of ['cpu', 'cuda'] as const) {
        const [x, W, b, A, B, gy] = make(dev);
        const o = { scaling: 2, qkv: c.qkv };
        const y = await lora.forward(x, W, A, B, { ...o, bias: b });
        assert.is(y.device.startsWith(dev), true);
        const g = await lora.backward(gy, x, W, A, B, o);
        results.push({ y: await values(y), gx: await values(g.gradX), ga: await values(g.gradA), gb: await values(g.gradB),
          m: await values(await lora.merge(W, A, B, o)) });
      }
      for (const k of ['y', 'gx', 'ga', 'gb']) {
        const scale = Math.max(...results[0][k].map(Math.abs));
        assertClose(results[1][k], results[0][k], { rtol: tol, atol: tol * scale, what: `cuda ${dtype}/${ad} ${k}` });
      }
      // Merge is one rounding of the same fp32/fp64 value on both devices: bit for bit.
      assert.equal(Array.from(results[1].m), Array.from(results[0].m), `cuda ${dtype}/${ad} merge bit-exact`);
    }
  }
  // Dropout on CUDA: same seed, same mask; backward reuses it (checked against the autograd reference).
  const c = plainCase([64], 32, 16, 4);
  const d = caseData(c, 81);
  const [x, W, A, B, gy] = [tensor(d.x, d.xShape, 'float32', 'cuda'), tensor(d.w, d.wShape, 'float32', 'cuda'),
    tensor(d.a, d.aShape, 'float32', 'cuda'), tensor(d.bb, d.bShape, 'float32', 'cuda'), tensor(d.gy, d.yShape, 'float32', 'cuda')];
  const o = { scaling: 2, dropout: 0.3, training: true, seed: 3 };
  assert.equal(Array.from(await values(await lora.forward(x, W, A, B, o))), Array.from(await values(await lora.forward(x, W, A, B, o))));
  const ours = await lora.backward(gy, x, W, A, B, o);
  const ref = await loraInternals.referenceGrads(gy, x, W, A, B, o, false);
  for (const k of ['gradX', 'gradA', 'gradB'] as const) {
    assertClose(await values(ours[k]), await values(ref[k]), { rtol: 1e-4, atol: 1e-4, what: `cuda dropout ${k}` });
  }
});

test.run();

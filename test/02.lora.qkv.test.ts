// Fused QKV (litgpt's LoRAQKVLinear): the row indices litgpt's own tests publish (both layouts, MHA / GQA /
// MQA), the no-pad quirk when q, k and v are all enabled, and forward / backward / merge vs a Python
// reference that builds lora_ind and zero_pad literally.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lora } from '../ts/index.js';
import type { QkvOptions } from '../ts/model/lora.js';
import { assertClose } from './helpers/assert.js';
import { caseData, npy, pythonReferences, qkvCase, tensor, values } from './02.lora.helpers.js';

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

// Where each packed row lands: merge a one-column weight of zeros with A = ones and B whose packed row j is
// (j + 1, 0, …), so that merged row i holds j + 1 if packed row j landed there, else 0.
async function landingRows(q: QkvOptions, r = 2): Promise<{ lora_ind: number[]; untouched: number[] }> {
  const c = qkvCase([1], 1, r, q);
  const W = tensor(new Float64Array(c.outF), [c.outF, 1]);
  const A = tensor(new Float64Array(c.parts * r).fill(1), [c.parts * r, 1]);
  const bb = new Float64Array(c.packedRows * r);
  for (let j = 0; j < c.packedRows; j++) bb[j * r] = j + 1;
  const merged = await values(await lora.merge(W, A, tensor(bb, [c.packedRows, r]), { qkv: q }));
  const ind = new Array<number>(c.packedRows).fill(-1);
  const untouched: number[] = [];
  merged.forEach((v, row) => { if (v === 0) untouched.push(row); else ind[v - 1] = row; });
  return { lora_ind: ind, untouched };
}

// litgpt's test config: n_head=4, n_embd=8 ⇒ head_size=2, r=2, lora_query and lora_value.
const qv = (nQueryGroups: number, layout: 'qkv' | 'interleaved'): QkvOptions =>
  ({ nHead: 4, nQueryGroups, headSize: 2, enable: [true, false, true], layout });

test('[Q|K|V] layout (litgpt >= 0.5.5, attn.qkv): the lora_ind vectors of litgpt tests/test_lora.py', async () => {
  assert.equal((await landingRows(qv(4, 'qkv'))).lora_ind, [...range(0, 8), ...range(16, 24)], 'MHA');
  assert.equal((await landingRows(qv(1, 'qkv'))).lora_ind, [...range(0, 8), 10, 11], 'MQA');
  assert.equal((await landingRows(qv(2, 'qkv'))).lora_ind, [...range(0, 8), 12, 13, 14, 15], 'GQA');
});

test('interleaved layout (litgpt <= 0.5.4, attn.attn): the lora_ind vectors of litgpt tests/test_lora.py', async () => {
  assert.equal((await landingRows(qv(4, 'interleaved'))).lora_ind, [0, 1, 6, 7, 12, 13, 18, 19, 4, 5, 10, 11, 16, 17, 22, 23], 'MHA');
  assert.equal((await landingRows(qv(1, 'interleaved'))).lora_ind, [...range(0, 8), 10, 11], 'MQA');
  assert.equal((await landingRows(qv(2, 'interleaved'))).lora_ind, [0, 1, 2, 3, 8, 9, 10, 11, 6, 7, 14, 15], 'GQA');
});

test('zero-pad: rows of disabled parts are untouched; k alone and q+k in both layouts', async () => {
  const k = await landingRows({ nHead: 4, nQueryGroups: 2, headSize: 2, enable: [false, true, false], layout: 'interleaved' });
  assert.equal(k.lora_ind, [4, 5, 12, 13]);
  assert.equal(k.untouched.length, 16 - 4);
  const qk = await landingRows({ nHead: 4, nQueryGroups: 2, headSize: 2, enable: [true, true, false], layout: 'qkv' });
  assert.equal(qk.lora_ind, range(0, 12));
  assert.equal(qk.untouched, range(12, 16));
});

test('quirk: with q, k and v all enabled nothing is padded, so packed rows land on rows 0..out-1 in storage order (both layouts)', async () => {
  for (const nQueryGroups of [4, 2, 1]) {
    for (const layout of ['qkv', 'interleaved'] as const) {
      const rows = await landingRows({ nHead: 4, nQueryGroups, headSize: 2, enable: [true, true, true], layout });
      assert.equal(rows.lora_ind, range(0, (4 + 2 * nQueryGroups) * 2), `${layout} nQueryGroups=${nQueryGroups}`);
    }
  }
});

test('QKV forward, backward, merge and unmerge match litgpt math in PyTorch (MHA/GQA/MQA, both layouts, several enables)', async () => {
  const enables: [boolean, boolean, boolean][] = [[true, false, true], [false, true, false], [true, true, true], [true, true, false]];
  const jobs = [];
  const ours = [];
  let seed = 100;
  for (const nQueryGroups of [4, 2, 1]) {
    for (const layout of ['qkv', 'interleaved'] as const) {
      for (const enable of enables) {
        const q: QkvOptions = { nHead: 4, nQueryGroups, headSize: 3, enable, layout };
        const c = qkvCase([2, 5], 12, 3, q);
        const d = caseData(c, seed++);
        const [x, W, b, A, B, gy] = [tensor(d.x, d.xShape, 'float64'), tensor(d.w, d.wShape, 'float64'), tensor(d.b, [c.outF], 'float64'),
          tensor(d.a, d.aShape, 'float64'), tensor(d.bb, d.bShape, 'float64'), tensor(d.gy, d.yShape, 'float64')];
        const o = { scaling: 1.5, qkv: q };
        const g = await lora.backward(gy, x, W, A, B, o);
        ours.push({
          what: `${layout} nQG=${nQueryGroups} enable=${enable}`,
          y: await values(await lora.forward(x, W, A, B, { ...o, bias: b })),
          gx: await values(g.gradX), ga: await values(g.gradA), gb: await values(g.gradB),
          merged: await values(await lora.merge(W, A, B, o)), unmerged: await values(await lora.unmerge(W, A, B, o)),
        });
        jobs.push({ c, dtype: 'float64' as const, scaling: 1.5, bias: true, inputs: {
          x: npy(d.x, d.xShape), w: npy(d.w, d.wShape), b: npy(d.b, [c.outF]), a: npy(d.a, d.aShape), bb: npy(d.bb, d.bShape), gy: npy(d.gy, d.yShape) } });
      }
    }
  }
  const refs = pythonReferences(jobs);
  ours.forEach((o, i) => {
    for (const k of ['y', 'gx', 'ga', 'gb', 'merged', 'unmerged'] as const) {
      assertClose(o[k], refs[i][k], { rtol: 1e-12, atol: 1e-12, what: `${o.what} ${k}` });
    }
  });
});

test('merged forward equals the unmerged LoRA forward (QKV interleaved GQA, fp32)', async () => {
  const q: QkvOptions = { nHead: 8, nQueryGroups: 2, headSize: 4, enable: [true, false, true], layout: 'interleaved' };
  const c = qkvCase([33], 32, 4, q);
  const d = caseData(c, 7);
  const [x, W, b, A, B] = [tensor(d.x, d.xShape), tensor(d.w, d.wShape), tensor(d.b, [c.outF]), tensor(d.a, d.aShape), tensor(d.bb, d.bShape)];
  const y = await values(await lora.forward(x, W, A, B, { scaling: 2, qkv: q, bias: b }));
  const merged = await lora.merge(W, A, B, { scaling: 2, qkv: q });
  const yMerged = await values(await lora.forward(x, merged, A, B, { scaling: 0, qkv: q, bias: b }));
  assertClose(yMerged, y, { rtol: 1e-5, atol: 1e-5, what: 'merged forward' });
});

test.run();

// Every bad input to the LoRA ops → its stable code, a message naming the argument with what was expected and
// what was got; and the next call still works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lora, Tensor } from '../ts/index.js';
import { assertCode } from './helpers/assert.js';
import { caseData, devices, plainCase, tensor, values } from './02.lora.helpers.js';

const c = plainCase([3], 5, 4, 2);
const d = caseData(c, 1);
const good = () => ({
  x: tensor(d.x, d.xShape), W: tensor(d.w, d.wShape), b: tensor(d.b, [4]), A: tensor(d.a, d.aShape), B: tensor(d.bb, d.bShape),
  gy: tensor(d.gy, d.yShape),
});

async function stillWorks(): Promise<void> {
  const t = good();
  const y = await lora.forward(t.x, t.W, t.A, t.B, { scaling: 2, bias: t.b });
  assert.equal(y.shape, [3, 4]);
  assert.ok((await values(y)).every(Number.isFinite));
  const g = await lora.backward(t.gy, t.x, t.W, t.A, t.B, { scaling: 2 });
  assert.equal(g.gradA.shape, [2, 5]);
  assert.equal((await lora.merge(t.W, t.A, t.B)).shape, [4, 5]);
}

test('shape mismatches → ERR_SHAPE naming the argument, expected and got', async () => {
  const t = good();
  await assertCode(() => lora.forward(tensor(d.x, [5, 3]), t.W, t.A, t.B), 'ERR_SHAPE', /x: expected shape \[\.\.\., 5\], got \[5, 3\]/);
  await assertCode(() => lora.forward(t.x, t.W, tensor(d.a, [5, 2]), t.B), 'ERR_SHAPE', /loraA: expected shape \[r, 5\].*got \[5, 2\]/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, tensor(d.bb, [2, 4])), 'ERR_SHAPE', /loraB: expected shape \[4, 2\].*got \[2, 4\]/);
  await assertCode(() => lora.forward(t.x, tensor(d.w, [20]), t.A, t.B), 'ERR_SHAPE', /weight: expected a 2-D tensor/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { bias: tensor(d.b, [2, 2]) }), 'ERR_SHAPE', /bias: expected shape \[4\], got \[2, 2\]/);
  await assertCode(() => lora.backward(tensor(d.gy, [4, 3]), t.x, t.W, t.A, t.B), 'ERR_SHAPE', /gradY: expected/);
  await assertCode(() => lora.merge(t.W, t.A, tensor(d.bb, [2, 4])), 'ERR_SHAPE', /lora\.merge: loraB: expected shape \[4, 2\]/);
  await stillWorks();
});

test('r = 0, non-finite scaling, bad dropout, missing seed → ERR_RANGE / ERR_ARG', async () => {
  const t = good();
  const A0 = Tensor.from(new Float32Array(0), [0, 5]), B0 = Tensor.from(new Float32Array(0), [4, 0]);
  await assertCode(() => lora.forward(t.x, t.W, A0, B0), 'ERR_RANGE', /loraA: expected rank r >= 1, got r = 0/);
  await assertCode(() => lora.merge(t.W, A0, B0), 'ERR_RANGE', /r = 0/);
  for (const scaling of [NaN, Infinity, -Infinity]) {
    await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { scaling }), 'ERR_RANGE', /scaling: expected a finite number.*got/);
    await assertCode(() => lora.merge(t.W, t.A, t.B, { scaling }), 'ERR_RANGE', /scaling/);
  }
  await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { dropout: 1, training: true, seed: 1 }), 'ERR_RANGE', /dropout: expected a probability in \[0, 1\), got 1/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { dropout: -0.1 }), 'ERR_RANGE', /dropout/);
  await assertCode(() => lora.backward(t.gy, t.x, t.W, t.A, t.B, { dropout: 0.1, training: true }), 'ERR_ARG', /seed: required/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { dropout: 0.1, training: true, seed: -1 }), 'ERR_RANGE', /seed/);
  await stillWorks();
});

test('dtype mismatches → ERR_DTYPE naming the argument, expected and got', async () => {
  const t = good();
  await assertCode(() => lora.forward(tensor(d.x, d.xShape, 'float64'), t.W, t.A, t.B), 'ERR_DTYPE', /x: expected the weight's dtype float32, got float64/);
  await assertCode(() => lora.forward(t.x, t.W, tensor(d.a, d.aShape, 'float64'), tensor(d.bb, d.bShape, 'float64')), 'ERR_DTYPE', /loraA: expected the weight's dtype \(float32\), got float64/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, tensor(d.bb, d.bShape, 'bfloat16')), 'ERR_DTYPE', /loraB: expected the dtype of loraA \(float32\), got bfloat16/);
  await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { bias: tensor(d.b, [4], 'float64') }), 'ERR_DTYPE', /bias: expected the weight's dtype float32, got float64/);
  const Wi = Tensor.from(new Int32Array(20), [4, 5]);
  await assertCode(() => lora.merge(Wi, t.A, t.B), 'ERR_DTYPE', /weight: expected float32, float64, bfloat16 or float16, got int32/);
  // bf16 weights take bf16 or fp32 adapters, not fp64.
  await assertCode(() => lora.merge(tensor(d.w, d.wShape, 'bfloat16'), tensor(d.a, d.aShape, 'float64'), tensor(d.bb, d.bShape, 'float64')),
    'ERR_DTYPE', /loraA: expected the weight's dtype \(bfloat16\) or float32, got float64/);
  await assertCode(() => lora.backward(tensor(d.gy, d.yShape, 'float64'), t.x, t.W, t.A, t.B), 'ERR_DTYPE', /gradY/);
  await stillWorks();
});

test('fused QKV misconfiguration → ERR_SHAPE / ERR_RANGE / ERR_ARG', async () => {
  const W = tensor(new Float64Array(16 * 8), [16, 8]);
  const A = tensor(new Float64Array(4 * 8), [4, 8]), B = tensor(new Float64Array(16 * 2), [16, 2]);
  const q = { nHead: 4, nQueryGroups: 2, headSize: 2, enable: [true, false, true] as [boolean, boolean, boolean], layout: 'qkv' as const };
  await assertCode(() => lora.merge(W, A, B, { qkv: { ...q, headSize: 3 } }), 'ERR_SHAPE', /weight: expected 24 rows for a fused qkv/);
  await assertCode(() => lora.merge(W, A, B, { qkv: { ...q, nQueryGroups: 3 } }), 'ERR_RANGE', /nHead divisible by nQueryGroups/);
  await assertCode(() => lora.merge(W, A, B, { qkv: { ...q, enable: [false, false, false] } }), 'ERR_RANGE', /at least one/);
  await assertCode(() => lora.merge(W, A, B, { qkv: { ...q, layout: 'qvk' as any } }), 'ERR_ARG', /layout/);
  await assertCode(() => lora.merge(W, A, B, { qkv: q }), 'ERR_SHAPE', /loraB: expected shape \[12, 2\]/);
  await assertCode(() => lora.merge(W, tensor(new Float64Array(3 * 8), [3, 8]), B, { qkv: q }), 'ERR_RANGE', /loraA: expected shape \[r·2, 8\]/);
  assert.equal((await lora.merge(W, A, tensor(new Float64Array(12 * 2), [12, 2]), { qkv: q })).shape, [16, 8]);
});

test('disposed tensors → ERR_DISPOSED naming the argument; non-tensors → ERR_TYPE', async () => {
  for (const name of ['x', 'weight', 'loraA', 'loraB', 'bias'] as const) {
    const t = good();
    const victim = { x: t.x, weight: t.W, loraA: t.A, loraB: t.B, bias: t.b }[name];
    victim.dispose();
    await assertCode(() => lora.forward(t.x, t.W, t.A, t.B, { bias: t.b }), 'ERR_DISPOSED', new RegExp(`${name}: the tensor was disposed`));
  }
  const t = good();
  t.gy.dispose();
  await assertCode(() => lora.backward(t.gy, t.x, t.W, t.A, t.B), 'ERR_DISPOSED', /gradY/);
  await assertCode(() => lora.forward(null as any, t.W, t.A, t.B), 'ERR_TYPE', /x: expected a Tensor/);
  await assertCode(() => lora.merge(t.W, t.A, {} as any), 'ERR_TYPE', /loraB: expected a Tensor/);
  await stillWorks();
});

test('device mismatch → ERR_DEVICE (where a GPU is visible)', async () => {
  if (!devices().includes('cuda')) return;
  const t = good();
  const Acuda = tensor(d.a, d.aShape, 'float32', 'cuda');
  await assertCode(() => lora.forward(t.x, t.W, Acuda, t.B), 'ERR_DEVICE', /loraA: expected device cpu \(the weight's\), got cuda:0/);
  await assertCode(() => lora.forward(tensor(d.x, d.xShape, 'float32', 'cuda'), t.W, t.A, t.B), 'ERR_DEVICE', /x: expected device cpu/);
  await stillWorks();
});

test.run();

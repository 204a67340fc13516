// The optimizer and the schedule against PyTorch: AdamW steps equal torch.optim.AdamW on the same gradients,
// the warmup + cosine schedule equals litgpt's SequentialLR(LambdaLR, CosineAnnealingLR), Python float repr.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../ts/index.js';
import { adamwSteps } from '../ts/internals.js';
import { pyFloat } from '../ts/train/metrics_csv.js';
import { learningRate } from '../ts/train/schedule.js';
import { assertClose, randomArray } from './helpers/assert.js';
import { runPython } from './helpers/python.js';

const f32 = (a: Float64Array) => Float32Array.from(a);

test('AdamW equals torch.optim.AdamW (fused and per-tensor paths, lr changing per step, weight decay)', async () => {
  const shapes = [[4, 6], [6, 3], [5]];
  const params = shapes.map((s, i) => randomArray(s.reduce((a, b) => a * b, 1), 10 + i));
  const steps = 3;
  const grads = Array.from({ length: steps }, (_, k) => shapes.map((s, i) => randomArray(s.reduce((a, b) => a * b, 1), 100 + 10 * k + i)));
  const lrs = [0, 1e-2, 5e-3];
  const opts = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.02 };
  const inputs: Record<string, any> = {};
  params.forEach((p, i) => { inputs[`p${i}`] = { data: f32(p), shape: shapes[i] }; });
  grads.forEach((gs, k) => gs.forEach((g, i) => { inputs[`g${k}_${i}`] = { data: f32(g), shape: shapes[i] }; }));
  const py = runPython(`
import torch
n = ${shapes.length}
ps = [torch.nn.Parameter(torch.from_numpy(inp[f"p{i}"]).clone()) for i in range(n)]
opt = torch.optim.AdamW(ps, lr=1.0, betas=(${opts.beta1}, ${opts.beta2}), eps=${opts.eps}, weight_decay=${opts.weightDecay})
for k, lr in enumerate([${lrs.join(', ')}]):
    for g in opt.param_groups: g["lr"] = lr
    for i, p in enumerate(ps): p.grad = torch.from_numpy(inp[f"g{k}_{i}"]).clone()
    opt.step()
for i, p in enumerate(ps): out(f"p{i}", p.detach().numpy())
`, inputs);
  for (const fused of [true, false]) {
    const res = adamwSteps(
      params.map((p, i) => Tensor.from(f32(p), shapes[i]!)),
      grads.map((gs) => gs.map((g, i) => Tensor.from(f32(g), shapes[i]!))), lrs, { ...opts, fused });
    for (let i = 0; i < shapes.length; i++) {
      const ours = await res[i]!.data();
      assertClose(ours as Float32Array, py.outputs[`p${i}`]!.data as Float32Array, { rtol: 1e-6, atol: 1e-7, what: `param ${i} (fused ${fused})` });
    }
  }
});

test('warmup + cosine equals litgpt SequentialLR(LambdaLR, CosineAnnealingLR) in torch', () => {
  const cases = [[3, 10], [1, 7], [5, 17]];
  const n = 20;
  const py = runPython(`
import torch
for c, (warmup, max_steps) in enumerate([${cases.map((c) => `(${c[0]}, ${c[1]})`).join(', ')}]):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=2e-3)
    s1 = torch.optim.lr_scheduler.LambdaLR(opt, lambda step, w=warmup: step / w)
    s2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_steps - warmup)
    sch = torch.optim.lr_scheduler.SequentialLR(opt, [s1, s2], milestones=[warmup])
    lrs = []
    for k in range(min(${n}, max_steps + 1)):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(); sch.step()
    out(f"lr{c}", np.array(lrs, dtype=np.float64))
`);
  cases.forEach(([warmup, maxSteps], c) => {
    const expected = py.outputs[`lr${c}`]!.data as Float64Array;
    const ours = Float64Array.from({ length: expected.length }, (_, k) => learningRate(k, { baseLr: 2e-3, warmupSteps: warmup!, maxSteps: maxSteps! }));
    assertClose(ours, expected, { rtol: 1e-9, atol: 1e-12, what: `lr (warmup ${warmup}, max ${maxSteps})` });
  });
  assert.is(learningRate(0, { baseLr: 1, warmupSteps: 0, maxSteps: 4 }), 1);
});

test('metrics values are written as Python floats', () => {
  assert.equal([0, 1, 0.5, 1e-5, 1.5e-7, 0.0001, 2.345678, 1e16, 123456.0, -3].map(pyFloat),
    ['0.0', '1.0', '0.5', '1e-05', '1.5e-07', '0.0001', '2.345678', '1e+16', '123456.0', '-3.0']);
});

test.run();

#!/usr/bin/env node
// The device half of scripts/gpu-check.sh: plain Node, no TypeScript toolchain, no node_modules. It imports the
// compiled library (--lib, default .device/js/ts/index.js) and checks on --device (cuda or cpu):
//   smoke   tensors go to the device and back bit-exactly (float32, float64, bfloat16, int64)
//   ops     lora.forward / backward / merge in float32, bfloat16 and bf16 weights with fp32 adapters, against
//           Python PyTorch on the same device (PEFT-style eager + autograd) and a float64 reference; fused QKV
//           (both layouts) against litlora's own float64 CPU path, which the op tests check against PyTorch;
//           dropout determinism, merge → unmerge, and a device-mismatch error that leaves the process working.
// Writes <out>/gpu-check-ops.json and prints one line per check. Exit code 1 when a check fails.
//
// Usage: node scripts/gpu-check.mjs [--device cuda] [--lib .device/js/ts/index.js] [--python python3] [--out DIR]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const opts = { device: 'cuda', lib: '.device/js/ts/index.js', python: 'python3', out: '.' };
for (let i = 2; i < process.argv.length; i += 2) opts[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const device = opts.device;
const litlora = await import(pathToFileURL(resolve(opts.lib)).href);
const { Tensor, buildInfo } = litlora;
const lora = litlora.lora;

const results = [];
function record(name, dtype, ok, detail = '', extra = {}) {
  results.push({ name, dtype, ok, detail, ...extra });
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name.padEnd(34)} ${String(dtype).padEnd(9)} ${detail}`);
}
async function check(name, dtype, fn) {
  const t0 = performance.now();
  try {
    const r = await fn();
    record(name, dtype, r.ok, r.detail, { seconds: +((performance.now() - t0) / 1000).toFixed(2) });
  } catch (e) {
    record(name, dtype, false, `threw ${e.code ?? ''} ${String(e.message).split('\n')[0]}`);
  }
}

// ---- data ----
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function uniform(n, seed, scale) {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}
const numel = (shape) => shape.reduce((a, b) => a * b, 1);
// The values a float32 array takes in `dtype` (so that Python and litlora start from identical inputs).
async function roundTo(values, dtype) {
  if (dtype === 'float32') return values;
  return Float32Array.from(await Tensor.from(values, [values.length], { dtype }).data());
}
const on = (values, shape, dtype, dev = device) => Tensor.from(values, shape, { dtype, device: dev });
const f64 = (values, shape) => Tensor.from(Float64Array.from(values), shape, { device: 'cpu' });
async function values(t) { return Float64Array.from(await t.data()); }

// max |a − ref| / max |ref|: one number per output, comparable across dtypes.
function relErr(a, ref) {
  if (a.length !== ref.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - ref[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(ref[i]));
  }
  return num / Math.max(den, 1e-30);
}
// Ours must be within 4× PyTorch's own error in the same dtype, or below a floor that dtype reaches anyway.
const FLOOR = { float32: 2e-5, bfloat16: 1.6e-2 };
const fmt = (x) => x.toExponential(1);

// ---- smoke ----
async function smoke() {
  const info = buildInfo();
  if (device.startsWith('cuda') && !(info.cuda && info.cudaDeviceCount > 0)) {
    record('smoke: CUDA build sees a GPU', '-', false, `buildInfo: ${JSON.stringify(info)}`);
    return;
  }
  record('smoke: build', '-', true, `torch ${info.torchVersion}, cuda ${info.cuda}, GPUs ${info.cudaDeviceCount}, ${info.addon}`);
  const cases = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0, 1e-30, -65504])],
    ['float64', new Float64Array([Math.PI, -1e-300, 2, 0, 1e300, -7])],
    ['bfloat16', new Float32Array([1, -2, 0.5, 0, 256, -0.0078125])],
    ['int64', new BigInt64Array([1n, -2n, 9007199254740993n, 0n, 5n, -7n])],
  ];
  for (const [dtype, data] of cases) {
    await check(`smoke: to ${device} and back`, dtype, async () => {
      const t = Tensor.from(data, [2, 3], { dtype });
      const d = await t.to({ device });
      const back = await d.to({ device: 'cpu' });
      const got = Array.from(await back.data());
      const want = Array.from(await t.data());
      const ok = d.device.startsWith(device) && back.device === 'cpu' && JSON.stringify(got.map(String)) === JSON.stringify(want.map(String));
      return { ok, detail: ok ? `device ${d.device}` : `got ${got} on ${d.device}, expected ${want}` };
    });
  }
}

// ---- ops vs PyTorch ----
const PY_REFERENCE = String.raw`
import json, os, sys
import numpy as np, torch
import torch.nn.functional as F
d, dev = sys.argv[1], sys.argv[2]
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
spec = json.load(open(os.path.join(d, 'cases.json')))
def load(n, k, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, f'{n}.{k}.bin'), dtype=np.float32).reshape(shape)).to(dev)
def save(n, k, t, np_dtype):
    t.detach().to('cpu', torch.float64).numpy().astype(np_dtype).tofile(os.path.join(d, f'{n}.{k}.bin'))
for c in spec['cases']:
    n, s, sh = c['name'], c['scaling'], c['shapes']
    raw = {k: load(n, k, sh[k]) for k in ('x', 'w', 'b', 'a', 'bb', 'gy')}
    dt = getattr(torch, c['dtype'])
    for tag, xdt, adt, np_dtype in (('ref64', torch.float64, torch.float64, np.float64),
                                    ('torch', dt, torch.float32 if c['mixed'] else dt, np.float32)):
        x = raw['x'].to(xdt).requires_grad_()
        w, b = raw['w'].to(xdt), raw['b'].to(xdt)
        a, bb = raw['a'].to(adt).requires_grad_(), raw['bb'].to(adt).requires_grad_()
        # PEFT-style eager; mixed adapters are cast to the compute dtype, as torch.autocast does
        y = F.linear(x, w, b) + F.linear(F.linear(x, a.to(xdt)), bb.to(xdt)) * s
        y.backward(raw['gy'].to(xdt))
        acc = torch.float32 if xdt in (torch.bfloat16, torch.float16) else torch.float64
        merged = (w.to(acc) + s * (bb.detach().to(acc) @ a.detach().to(acc))).to(xdt)
        for k, t in (('y', y), ('gx', x.grad), ('ga', a.grad), ('gb', bb.grad), ('merged', merged)):
            save(n, f'{tag}.{k}', t, np_dtype)
    if dev.startswith('cuda'):
        torch.cuda.synchronize()
print(json.dumps({'torch': torch.__version__, 'device': torch.cuda.get_device_name() if dev.startswith('cuda') else 'cpu'}))
`;

function plainCase(name, dtype, mixed, seed) {
  const [lead, tokens, inF, outF, r] = [2, 128, 512, 768, 16];
  const shapes = { x: [lead, tokens, inF], w: [outF, inF], b: [outF], a: [r, inF], bb: [outF, r], gy: [lead, tokens, outF] };
  const scale = { x: 1, w: 1 / Math.sqrt(inF), b: 0.1, a: 1 / Math.sqrt(inF), bb: 1 / Math.sqrt(r), gy: 1 };
  const data = {};
  Object.keys(shapes).forEach((k, i) => { data[k] = uniform(numel(shapes[k]), seed * 16 + i, scale[k]); });
  return { name, dtype, mixed, scaling: 2, shapes, data };
}

async function oursOn(c, dev) {
  const adt = c.mixed ? 'float32' : c.dtype;
  const t = {
    x: on(c.data.x, c.shapes.x, c.dtype, dev), w: on(c.data.w, c.shapes.w, c.dtype, dev), b: on(c.data.b, c.shapes.b, c.dtype, dev),
    a: on(c.data.a, c.shapes.a, adt, dev), bb: on(c.data.bb, c.shapes.bb, adt, dev), gy: on(c.data.gy, c.shapes.gy, c.dtype, dev),
  };
  const y = await lora.forward(t.x, t.w, t.a, t.bb, { bias: t.b, scaling: c.scaling });
  const g = await lora.backward(t.gy, t.x, t.w, t.a, t.bb, { scaling: c.scaling });
  const merged = await lora.merge(t.w, t.a, t.bb, { scaling: c.scaling });
  return { y: await values(y), gx: await values(g.gradX), ga: await values(g.gradA), gb: await values(g.gradB), merged: await values(merged), shape: y.shape };
}

async function opsVsTorch() {
  const cases = [plainCase('plain_fp32', 'float32', false, 1), plainCase('plain_bf16', 'bfloat16', false, 2),
    plainCase('mixed_bf16', 'bfloat16', true, 3)];
  for (const c of cases) {
    for (const k of Object.keys(c.data)) {
      const dtype = c.mixed && (k === 'a' || k === 'bb') ? 'float32' : c.dtype;
      c.data[k] = await roundTo(c.data[k], dtype);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'litlora-gpu-check-'));
  try {
    writeFileSync(join(dir, 'cases.json'), JSON.stringify({ cases: cases.map(({ data, ...rest }) => rest) }));
    for (const c of cases) for (const [k, v] of Object.entries(c.data)) writeFileSync(join(dir, `${c.name}.${k}.bin`), v);
    const t0 = performance.now();
    const py = spawnSync(opts.python, ['-c', PY_REFERENCE, dir, device], { encoding: 'utf8' });
    if (py.status !== 0) {
      record('ops: PyTorch reference', '-', false, `python failed: ${py.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      return;
    }
    const pyInfo = JSON.parse(py.stdout.trim().split('\n').pop());
    record('ops: PyTorch reference', '-', true, `torch ${pyInfo.torch} on ${pyInfo.device} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const read = (n, k, Type) => new Type(readFileSync(join(dir, `${n}.${k}.bin`)).buffer.slice(0));
    for (const c of cases) {
      const label = c.mixed ? 'bf16+fp32' : c.dtype;
      let ours;
      try {
        ours = await oursOn(c, device);
      } catch (e) {
        record(`ops ${c.name}`, label, false, `threw ${e.code ?? ''} ${String(e.message).split('\n')[0]}`);
        continue;
      }
      const shapeOk = JSON.stringify(ours.shape) === JSON.stringify(c.shapes.gy);
      for (const k of ['y', 'gx', 'ga', 'gb', 'merged']) {
        const ref = Float64Array.from(read(c.name, `ref64.${k}`, Float64Array));
        const theirs = Float64Array.from(read(c.name, `torch.${k}`, Float32Array));
        const eo = relErr(ours[k], ref), et = relErr(theirs, ref);
        const floor = FLOOR[c.dtype];
        const ok = shapeOk && eo <= Math.max(4 * et, floor);
        const what = { y: 'forward y', gx: 'backward gradX', ga: 'backward gradA', gb: 'backward gradB', merged: 'merge W+sBA' }[k];
        record(`ops: ${what} vs PyTorch`, label, ok, `rel.err ours ${fmt(eo)}, PyTorch ${fmt(et)} (floor ${fmt(floor)})`,
          { oursErr: eo, torchErr: et });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- fused QKV and the rest: device vs litlora's own float64 CPU path ----
async function qkvVsCpu() {
  const configs = [
    { name: 'qkv [Q|K|V] GQA q,v', dtype: 'float32', layout: 'qkv', enable: [true, false, true] },
    { name: 'qkv [Q|K|V] GQA q,v', dtype: 'bfloat16', layout: 'qkv', enable: [true, false, true] },
    { name: 'qkv interleaved GQA k', dtype: 'bfloat16', layout: 'interleaved', enable: [false, true, false] },
    { name: 'qkv interleaved q,k,v', dtype: 'bfloat16', layout: 'interleaved', enable: [true, true, true] },
  ];
  const [nHead, nQueryGroups, headSize, inF, r, tokens] = [8, 2, 32, 256, 8, 96];
  const outF = (nHead + 2 * nQueryGroups) * headSize;
  for (const [i, cfg] of configs.entries()) {
    await check(`ops: ${cfg.name}`, cfg.dtype, async () => {
      const parts = [nHead * headSize, nQueryGroups * headSize, nQueryGroups * headSize];
      const nParts = cfg.enable.filter(Boolean).length;
      const bRows = parts.reduce((s, p, j) => s + (cfg.enable[j] ? p : 0), 0);
      const qkv = { nHead, nQueryGroups, headSize, enable: cfg.enable, layout: cfg.layout };
      const shapes = { x: [tokens, inF], w: [outF, inF], a: [r * nParts, inF], bb: [bRows, r], gy: [tokens, outF] };
      const d = {};
      for (const [j, k] of Object.keys(shapes).entries()) {
        d[k] = await roundTo(uniform(numel(shapes[k]), 100 * i + j, k === 'x' || k === 'gy' ? 1 : 0.1), cfg.dtype);
      }
      const run = async (make) => {
        const t = Object.fromEntries(Object.keys(shapes).map((k) => [k, make(d[k], shapes[k])]));
        const y = await lora.forward(t.x, t.w, t.a, t.bb, { scaling: 0.5, qkv });
        const g = await lora.backward(t.gy, t.x, t.w, t.a, t.bb, { scaling: 0.5, qkv });
        const m = await lora.merge(t.w, t.a, t.bb, { scaling: 0.5, qkv });
        return [await values(y), await values(g.gradX), await values(g.gradA), await values(g.gradB), await values(m)];
      };
      const ours = await run((v, s) => on(v, s, cfg.dtype));
      const ref = await run((v, s) => f64(v, s));
      const errs = ours.map((o, j) => relErr(o, ref[j]));
      const worst = Math.max(...errs);
      return { ok: worst <= FLOOR[cfg.dtype], detail: `rel.err vs CPU float64 y/gX/gA/gB/merge ${errs.map(fmt).join(' ')}` };
    });
  }
}

async function extras() {
  await check('ops: dropout is seeded and reproducible', 'bfloat16', async () => {
    const [n, inF, outF, r] = [64, 128, 96, 8];
    const x = on(uniform(n * inF, 7, 1), [n, inF], 'bfloat16'), w = on(uniform(outF * inF, 8, 0.1), [outF, inF], 'bfloat16');
    const a = on(uniform(r * inF, 9, 0.1), [r, inF], 'bfloat16'), b = on(uniform(outF * r, 10, 0.3), [outF, r], 'bfloat16');
    const o = (seed) => ({ scaling: 2, dropout: 0.25, training: true, seed });
    const y1 = await values(await lora.forward(x, w, a, b, o(7))), y2 = await values(await lora.forward(x, w, a, b, o(7)));
    const y3 = await values(await lora.forward(x, w, a, b, o(8)));
    const y0 = await values(await lora.forward(x, w, a, b, { scaling: 2 }));
    const same = relErr(y1, y2) === 0, differs = relErr(y1, y3) > 0 && relErr(y1, y0) > 0;
    return { ok: same && differs, detail: `same seed identical: ${same}; other seed / no dropout differ: ${differs}` };
  });
  await check('ops: merge → unmerge restores W exactly', 'float32', async () => {
    // W in [1.25, 1.5) and small adapters: no merged value crosses a power of two, so no bit is lost.
    const w0 = uniform(256 * 128, 11, 0.125).map((v) => 1.375 + v);
    const w = on(w0, [256, 128], 'float32'), a = on(uniform(8 * 128, 12, 0.1), [8, 128], 'float32');
    const b = on(uniform(256 * 8, 13, 0.1), [256, 8], 'float32');
    const merged = await lora.merge(w, a, b, { scaling: 2 });
    const back = await values(await lora.unmerge(merged, a, b, { scaling: 2 }));
    const err = relErr(back, Float64Array.from(w0));
    return { ok: err === 0, detail: `max rel.err ${fmt(err)}` };
  });
  await check('ops: merge inPlace writes into W', 'bfloat16', async () => {
    const w = on(uniform(64 * 32, 14, 0.05), [64, 32], 'bfloat16'), a = on(uniform(4 * 32, 15, 0.1), [4, 32], 'float32');
    const b = on(uniform(64 * 4, 16, 0.1), [64, 4], 'float32');
    const copy = await lora.merge(w, a, b, { scaling: 1 });
    await lora.merge(w, a, b, { scaling: 1, inPlace: true });
    const err = relErr(await values(w), await values(copy));
    return { ok: err === 0, detail: `in-place vs copy rel.err ${fmt(err)}` };
  });
  if (device !== 'cpu') {
    await check('ops: mixed devices → ERR_DEVICE, then works', 'float32', async () => {
      const x = on(uniform(8 * 16, 17, 1), [8, 16], 'float32'), w = on(uniform(4 * 16, 18, 1), [4, 16], 'float32', 'cpu');
      const a = on(uniform(2 * 16, 19, 1), [2, 16], 'float32'), b = on(uniform(4 * 2, 20, 1), [4, 2], 'float32');
      let code = null;
      try { await lora.forward(x, w, a, b, {}); } catch (e) { code = e.code; }
      const y = await lora.forward(x, await w.to({ device }), a, b, {});
      return { ok: code === 'ERR_DEVICE' && y.device.startsWith(device), detail: `error code ${code}; next call on ${y.device}` };
    });
  }
}

await smoke();
if (typeof lora?.forward !== 'function') {
  record('ops', '-', false, 'lora.forward is not exported by this build (is the compiled JavaScript current?)');
} else {
  await opsVsTorch();
  await qkvVsCpu();
  await extras();
}
mkdirSync(opts.out, { recursive: true });
writeFileSync(join(opts.out, 'gpu-check-ops.json'), JSON.stringify({ device, buildInfo: buildInfo(), results }, null, 2) + '\n');
const failed = results.filter((r) => !r.ok).length;
console.log(`gpu-check.mjs: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

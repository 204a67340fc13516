// Shared pieces of the 02.lora.* suites: tensor builders, the device list (CUDA cases run where a GPU is
// visible) and a Python PyTorch reference that follows litgpt's LoRALinear / LoRAQKVLinear literally
// (lora_ind, zero_pad, and the no-pad quirk when q, k and v are all enabled).
import { Tensor, buildInfo, type Device, type Dtype } from '../ts/index.js';
import type { QkvOptions } from '../ts/model/lora.js';
import { randomArray } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import type { NpyArray } from './helpers/npy.js';

export const devices = (): Device[] => (buildInfo().cudaDeviceCount > 0 ? ['cpu', 'cuda'] : ['cpu']);

export function tensor(data: Float64Array, shape: number[], dtype: Dtype = 'float32', device: Device = 'cpu'): Tensor {
  return Tensor.from(data, shape, { dtype, device });
}

export async function values(t: Tensor): Promise<Float64Array> {
  const cpu = t.device === 'cpu' ? t : await t.to({ device: 'cpu' });
  return Float64Array.from(await cpu.data() as Float32Array | Float64Array);
}

export const npy = (data: Float64Array, shape: number[]): NpyArray => ({ data, shape });

/** Values as they are after rounding to `dtype` (so the reference sees exactly our inputs). */
export async function rounded(data: Float64Array, shape: number[], dtype: Dtype): Promise<Float64Array> {
  return values(tensor(data, shape, dtype));
}

export interface Case {
  tokens: number[];  // leading dims of x
  inF: number;
  outF: number;
  r: number;
  qkv?: QkvOptions;
  packedRows: number;  // rows of loraB
  parts: number;
}

export function plainCase(tokens: number[], inF: number, outF: number, r: number): Case {
  return { tokens, inF, outF, r, packedRows: outF, parts: 1 };
}

export function qkvCase(tokens: number[], inF: number, r: number, qkv: QkvOptions): Case {
  const sizes = [qkv.nHead * qkv.headSize, qkv.nQueryGroups * qkv.headSize, qkv.nQueryGroups * qkv.headSize];
  const parts = qkv.enable.filter(Boolean).length;
  const packedRows = sizes.reduce((s, n, i) => s + (qkv.enable[i] ? n : 0), 0);
  return { tokens, inF, outF: sizes[0] + sizes[1] + sizes[2], r, qkv, packedRows, parts };
}

export interface CaseData {
  x: Float64Array; w: Float64Array; b: Float64Array; a: Float64Array; bb: Float64Array; gy: Float64Array;
  xShape: number[]; yShape: number[]; wShape: number[]; aShape: number[]; bShape: number[];
}

/** Random inputs at litgpt-like scales (kaiming-uniform A; B non-zero so that the LoRA term matters). */
export function caseData(c: Case, seed: number): CaseData {
  const n = c.tokens.reduce((p, v) => p * v, 1);
  const rr = c.r * c.parts;
  return {
    x: randomArray(n * c.inF, seed), w: randomArray(c.outF * c.inF, seed + 1, 0.3), b: randomArray(c.outF, seed + 2, 0.1),
    a: randomArray(rr * c.inF, seed + 3, 1 / Math.sqrt(c.inF)), bb: randomArray(c.packedRows * c.r, seed + 4, 0.5),
    gy: randomArray(n * c.outF, seed + 5),
    xShape: [...c.tokens, c.inF], yShape: [...c.tokens, c.outF], wShape: [c.outF, c.inF], aShape: [rr, c.inF], bShape: [c.packedRows, c.r],
  };
}

export interface ReferenceJob {
  c: Case;
  inputs: Record<string, NpyArray>;  // x, w, b, a, bb, gy (+ mask)
  dtype: Dtype;
  adapterDtype?: Dtype;
  scaling: number;
  bias: boolean;
}

/**
 * Python (one process for all jobs): forward and autograd backward of litgpt's math in `dtype` (adapters cast
 * from `adapterDtype` as torch.autocast would), with an optional explicit dropout mask. Outputs per job: y, gx,
 * ga, gb, and the merged / unmerged weights (float32 math, float64 for fp32/fp64 weights, rounded once).
 */
export function pythonReferences(jobs: ReferenceJob[]): Record<string, Float64Array>[] {
  const inputs: Record<string, NpyArray> = {};
  jobs.forEach((j, i) => { for (const [k, v] of Object.entries(j.inputs)) inputs[`j${i}_${k}`] = v; });
  const cfgs = jobs.map((j) => ({ dtype: j.dtype, adt: j.adapterDtype ?? j.dtype, s: j.scaling, bias: j.bias, qkv: j.c.qkv ?? null }));
  const code = `
import json, torch, torch.nn.functional as F
torch.set_num_threads(2)

def lora_ind(q):
    nh, ng, hs = q['nHead'], q['nQueryGroups'], q['headSize']
    out = (nh + 2 * ng) * hs
    if q['layout'] == 'qkv':
        parts = [list(range(0, nh * hs)), list(range(nh * hs, nh * hs + ng * hs)), list(range(nh * hs + ng * hs, out))]
    else:  # litgpt <= 0.5.4 (#900): row x belongs to q, k or v by its head position inside its group
        qpk = nh // ng; T = qpk + 2
        parts = [[x for x in range(out) if (x // hs) % T < qpk], [x for x in range(out) if (x // hs) % T == qpk],
                 [x for x in range(out) if (x // hs) % T == qpk + 1]]
    return [i for p, e in zip(parts, q['enable']) if e for i in p]

def job(i, cfg):
    dt = getattr(torch, cfg['dtype']); adt = getattr(torch, cfg['adt']); s = cfg['s']; qkv = cfg['qkv']
    def t(name, d): return torch.from_numpy(inp[f'j{i}_{name}']).to(torch.float64).to(d)
    x = t('x', dt).requires_grad_(True); W = t('w', dt); b = t('b', dt) if cfg['bias'] else None
    A32 = t('a', adt).requires_grad_(True); B32 = t('bb', adt).requires_grad_(True)
    A = A32.to(dt); B = B32.to(dt)
    mask = t('mask', dt) if f'j{i}_mask' in inp else None
    xd = x * mask if mask is not None else x
    if qkv is None:
        lora = (xd @ A.T) @ B.T
    else:
        nh, ng, hs = qkv['nHead'], qkv['nQueryGroups'], qkv['headSize']
        sizes = [s_ for s_, e in zip([nh * hs, ng * hs, ng * hs], qkv['enable']) if e]
        r = A.shape[0] // len(sizes)
        packed = torch.cat([(xd @ a.T) @ bb.T for a, bb in zip(A.split(r, 0), B.split(sizes, 0))], -1)
        if all(qkv['enable']):
            lora = packed   # litgpt's zero_pad returns its input unchanged
        else:
            lora = packed.new_zeros(*packed.shape[:-1], W.shape[0]).index_copy(-1, torch.tensor(lora_ind(qkv)), packed)
    y = F.linear(x, W, b) + lora * s
    y.backward(t('gy', dt))
    out(f'j{i}_y', y.detach().double().numpy()); out(f'j{i}_gx', x.grad.double().numpy())
    out(f'j{i}_ga', A32.grad.double().numpy()); out(f'j{i}_gb', B32.grad.double().numpy())
    # merge as litgpt's get_lora_AB, in float32 (float64 for fp32/fp64 weights), rounded once
    cd = torch.float32 if dt in (torch.bfloat16, torch.float16) else torch.float64
    A64, B64 = A32.detach().to(cd), B32.detach().to(cd)
    if qkv is None:
        delta = B64 @ A64
    else:
        packedW = torch.cat([bb @ a for a, bb in zip(A64.split(r, 0), B64.split(sizes, 0))], 0)
        delta = packedW if all(qkv['enable']) else packedW.new_zeros(W.shape).index_copy(0, torch.tensor(lora_ind(qkv)), packedW)
    out(f'j{i}_merged', (W.to(cd) + s * delta).to(dt).double().numpy())
    out(f'j{i}_unmerged', (W.to(cd) - s * delta).to(dt).double().numpy())

for i, cfg in enumerate(json.loads(${JSON.stringify(JSON.stringify(cfgs))})):
    job(i, cfg)
`;
  const r = runPython(code, inputs);
  return jobs.map((_, i) => {
    const res: Record<string, Float64Array> = {};
    for (const k of ['y', 'gx', 'ga', 'gb', 'merged', 'unmerged']) res[k] = r.outputs[`j${i}_${k}`].data as Float64Array;
    return res;
  });
}

// The LoRA ops: forward, backward, merge, unmerge on libtorch tensors (CPU or CUDA), Promise-returning; the
// work runs off the main thread. Conventions are litgpt's: weight (out, in), loraA (r, in), loraB (out, r),
// scaling = alpha / r, and y = x·Wᵀ + b + scaling·(dropout(x)·Aᵀ)·Bᵀ.
//
// dtypes: x, weight and bias share one dtype; loraA and loraB share the weight's dtype, or float32 next to a
// bfloat16/float16 weight (then the GEMMs run in the weight's dtype, as torch.autocast does, and the adapter
// gradients come back in float32). Merge computes in float32 (float64 for float32 weights) and rounds once.
// See docs/lora-ops.md.
import { binding, type NativeLoraOptions, type NativeTensor } from '../binding.js';
import { fail } from '../errors.js';
import { Tensor } from '../tensor.js';

/** litgpt's fused q/k/v projection (`attn.qkv`, or `attn.attn` in litgpt <= 0.5.4). */
export interface QkvOptions {
  nHead: number;
  nQueryGroups: number;
  headSize: number;
  /** Which of q, k, v carry LoRA (litgpt's lora_query, lora_key, lora_value). */
  enable: readonly [boolean, boolean, boolean];
  /** 'qkv': rows [Q|K|V] (litgpt >= 0.5.5); 'interleaved': per-group [q… k v] rows (litgpt <= 0.5.4). */
  layout: 'qkv' | 'interleaved';
}

export interface LoraOpOptions {
  /** alpha / r. Default 1. */
  scaling?: number;
  /** Dropout probability on the LoRA branch's input, in [0, 1); applied only when training. Default 0. */
  dropout?: number;
  /** Default false. */
  training?: boolean;
  /** Dropout mask seed; the same seed gives the same mask. Required when dropout > 0 and training. */
  seed?: number | bigint;
  /** Fused q/k/v semantics (packed loraA/loraB and litgpt's zero-pad). */
  qkv?: QkvOptions;
}

export interface ForwardOptions extends LoraOpOptions {
  bias?: Tensor;
}

export interface MergeOptions {
  scaling?: number;
  qkv?: QkvOptions;
  /** Write into `weight` and return it (default false: a new tensor, weight unchanged). */
  inPlace?: boolean;
}

export interface LoraGrads {
  gradX: Tensor;
  gradA: Tensor;
  gradB: Tensor;
}

/** @internal The native handle of a live Tensor argument (ERR_TYPE, ERR_DISPOSED otherwise). */
export function handleOf(t: unknown, op: string, name: string): NativeTensor {
  if (!(t instanceof Tensor)) fail('ERR_TYPE', `${op}: ${name}: expected a Tensor, got ${t === null ? 'null' : typeof t}`);
  if (t.disposed) fail('ERR_DISPOSED', `${op}: ${name}: the tensor was disposed; it can no longer be used`);
  return t.handle;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** @internal The LoRA options checked and defaulted, as the native ops take them. */
export function nativeOptions(op: string, o: LoraOpOptions | MergeOptions, withDropout: boolean): NativeLoraOptions {
  if (o === null || typeof o !== 'object') fail('ERR_TYPE', `${op}: options: expected an object, got ${o === null ? 'null' : typeof o}`);
  const scaling = o.scaling ?? 1;
  if (typeof scaling !== 'number' || !Number.isFinite(scaling)) {
    fail('ERR_RANGE', `${op}: scaling: expected a finite number (alpha / r), got ${String(scaling)}`);
  }
  let dropout = 0, training = false, seed = 0n;
  if (withDropout) {
    const lo = o as LoraOpOptions;
    dropout = lo.dropout ?? 0;
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
      fail('ERR_RANGE', `${op}: dropout: expected a probability in [0, 1), got ${String(dropout)}`);
    }
    training = lo.training ?? false;
    if (typeof training !== 'boolean') fail('ERR_TYPE', `${op}: training: expected a boolean, got ${typeof training}`);
    if (lo.seed === undefined) {
      if (dropout > 0 && training) {
        fail('ERR_ARG', `${op}: seed: required when dropout > 0 and training (backward must reuse the forward's mask: pass the same seed to both)`);
      }
    } else if (typeof lo.seed === 'bigint') {
      if (lo.seed < 0n || lo.seed >= 1n << 64n) fail('ERR_RANGE', `${op}: seed: expected an integer in [0, 2^64), got ${lo.seed}`);
      seed = lo.seed;
    } else if (typeof lo.seed === 'number' && Number.isSafeInteger(lo.seed) && lo.seed >= 0) {
      seed = BigInt(lo.seed);
    } else {
      fail('ERR_RANGE', `${op}: seed: expected a non-negative safe integer or a bigint, got ${String(lo.seed)}`);
    }
  }
  let qkv: NativeLoraOptions['qkv'] = null;
  if (o.qkv !== undefined) {
    const q = o.qkv;
    if (q === null || typeof q !== 'object') fail('ERR_TYPE', `${op}: qkv: expected an object`);
    for (const key of ['nHead', 'nQueryGroups', 'headSize'] as const) {
      if (!isPositiveInt(q[key])) fail('ERR_RANGE', `${op}: qkv.${key}: expected a positive integer, got ${String(q[key])}`);
    }
    if (q.nHead % q.nQueryGroups !== 0) {
      fail('ERR_RANGE', `${op}: qkv: expected nHead divisible by nQueryGroups, got nHead=${q.nHead}, nQueryGroups=${q.nQueryGroups}`);
    }
    if (!Array.isArray(q.enable) || q.enable.length !== 3 || !q.enable.every((e) => typeof e === 'boolean')) {
      fail('ERR_TYPE', `${op}: qkv.enable: expected [q, k, v] booleans, got ${JSON.stringify(q.enable)}`);
    }
    if (!q.enable.some(Boolean)) fail('ERR_RANGE', `${op}: qkv.enable: expected at least one of q, k, v enabled, got none`);
    if (q.layout !== 'qkv' && q.layout !== 'interleaved') {
      fail('ERR_ARG', `${op}: qkv.layout: expected 'qkv' or 'interleaved', got ${JSON.stringify(q.layout)}`);
    }
    qkv = { nHead: q.nHead, nQueryGroups: q.nQueryGroups, headSize: q.headSize, enable: [...q.enable], interleaved: q.layout === 'interleaved' };
  }
  return { scaling, dropout, training, seed, qkv };
}

/** y = x·Wᵀ + b + scaling·(dropout(x)·Aᵀ)·Bᵀ for x of shape (..., in). */
async function forward(x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor, options: ForwardOptions = {}): Promise<Tensor> {
  const op = 'lora.forward';
  const o = nativeOptions(op, options, true);
  const bias = options.bias === undefined ? null : handleOf(options.bias, op, 'bias');
  return new Tensor(await binding().loraForward(handleOf(x, op, 'x'), handleOf(weight, op, 'weight'), bias,
    handleOf(loraA, op, 'loraA'), handleOf(loraB, op, 'loraB'), o));
}

/**
 * Gradients of forward w.r.t. x, loraA and loraB for the output gradient gradY (weight and bias frozen).
 * With dropout in training mode, pass the forward's seed: the mask is regenerated from it.
 */
async function backward(gradY: Tensor, x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor,
  options: LoraOpOptions = {}): Promise<LoraGrads> {
  const op = 'lora.backward';
  const o = nativeOptions(op, options, true);
  const g = await binding().loraBackward(handleOf(gradY, op, 'gradY'), handleOf(x, op, 'x'), handleOf(weight, op, 'weight'),
    handleOf(loraA, op, 'loraA'), handleOf(loraB, op, 'loraB'), o);
  return { gradX: new Tensor(g.gradX), gradA: new Tensor(g.gradA), gradB: new Tensor(g.gradB) };
}

async function mergeOrUnmerge(which: 'merge' | 'unmerge', weight: Tensor, loraA: Tensor, loraB: Tensor,
  options: MergeOptions): Promise<Tensor> {
  const op = `lora.${which}`;
  const o = nativeOptions(op, options, false);
  const inPlace = options.inPlace ?? false;
  if (typeof inPlace !== 'boolean') fail('ERR_TYPE', `${op}: inPlace: expected a boolean, got ${typeof inPlace}`);
  const fn = which === 'merge' ? binding().loraMerge : binding().loraUnmerge;
  const result = await fn(handleOf(weight, op, 'weight'), handleOf(loraA, op, 'loraA'), handleOf(loraB, op, 'loraB'), o, inPlace);
  return inPlace ? weight : new Tensor(result!);
}

/** W + scaling·zero_pad(B·A), computed in float32 (float64 for float32 weights) and rounded once to W's dtype. */
function merge(weight: Tensor, loraA: Tensor, loraB: Tensor, options: MergeOptions = {}): Promise<Tensor> {
  return mergeOrUnmerge('merge', weight, loraA, loraB, options);
}

/** The inverse of merge: W − scaling·zero_pad(B·A), with the same precision rule. */
function unmerge(weight: Tensor, loraA: Tensor, loraB: Tensor, options: MergeOptions = {}): Promise<Tensor> {
  return mergeOrUnmerge('unmerge', weight, loraA, loraB, options);
}

/** The LoRA ops (all Promise-returning; work runs off the main thread). */
export const lora = { forward, backward, merge, unmerge };

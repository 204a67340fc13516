// Hooks into the native addon for tests and benchmarks only: the addon's `internals` export, with Tensors in
// and out. Not part of litlora's API (ts/index.ts does not export this module).
import { binding } from './binding.js';
import { handleOf, nativeOptions, type ForwardOptions, type LoraGrads } from './model/lora.js';
import { Tensor } from './tensor.js';

const native = () => binding().internals;

/** The scaled dropout mask (0 or 1/(1−p)) that lora.forward/backward use for this seed. */
async function dropoutMask(like: Tensor, dropout: number, seed: number | bigint): Promise<Tensor> {
  const o = nativeOptions('lora.dropoutMask', { dropout, seed, training: true }, true);
  return new Tensor(await native().loraDropoutMask(handleOf(like, 'lora.dropoutMask', 'like'), o));
}

/** LoRA gradients by libtorch autograd: through the autograd Function (viaLinear) or the plain-op reference. */
async function referenceGrads(gradY: Tensor, x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor, options: ForwardOptions,
  viaLinear: boolean): Promise<LoraGrads> {
  const o = nativeOptions('lora.referenceGrads', options, true);
  const g = await native().loraReferenceGrads(gradY.handle, x.handle, weight.handle, options.bias?.handle ?? null,
    loraA.handle, loraB.handle, o, viaLinear);
  return { gradX: new Tensor(g.gradX), gradA: new Tensor(g.gradA), gradB: new Tensor(g.gradB) };
}

/** The LoRA autograd Function's forward (seed used as given). */
async function linearForward(x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor, options: ForwardOptions): Promise<Tensor> {
  const o = nativeOptions('lora.linear', options, true);
  return new Tensor(await native().loraLinearForward(x.handle, weight.handle, options.bias?.handle ?? null, loraA.handle, loraB.handle, o));
}

/** x·Wᵀ and gradY·W: the two GEMMs any LoRA linear's forward+backward needs (benchmarks). */
function denseFloor(x: Tensor, weight: Tensor, gradY: Tensor): Promise<void> {
  return native().loraDenseFloor(x.handle, weight.handle, gradY.handle);
}

/** Waits for the device's queued work (benchmarks). */
function synchronize(device: string): Promise<void> {
  return native().loraSynchronize(device);
}

/**
 * Which path the LoRA forward (stage 'forward') or the backward's gradX (stage 'gradX') takes without dropout:
 * 'skinny' or 'merged' (LITLORA_LORA_PATH forces one).
 */
function path(tokens: number, inFeatures: number, outFeatures: number, r: number, parts: number, dtype: string,
  stage: 'forward' | 'gradX' = 'forward'): 'skinny' | 'merged' {
  return native().loraPath(tokens, inFeatures, outFeatures, r, parts, dtype, stage);
}

/** The LoRA ops' test and benchmark hooks. */
export const loraInternals = { dropoutMask, referenceGrads, linearForward, denseFloor, synchronize, path };

/**
 * The sum of every element, touching every byte: accumulated in float64 when exact (the default), else in the
 * tensor's own type at memory speed (benchmarks).
 */
export function tensorChecksum(tensor: Tensor, options: { exact?: boolean } = {}): Promise<number> {
  return native().tensorChecksum(tensor.handle, options.exact ?? true);
}

/**
 * The trainer's AdamW applied to `params` for each list of `grads` in turn, with the learning rate `lrs[k]` at
 * step k; returns the updated parameters (new tensors; the inputs are unchanged).
 */
export function adamwSteps(params: Tensor[], grads: Tensor[][], lrs: number[],
  options: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; fused?: boolean }): Tensor[] {
  return native().adamwSteps(params.map((p) => p.handle), grads.map((gs) => gs.map((g) => g.handle)), lrs, options)
    .map((t) => new Tensor(t));
}

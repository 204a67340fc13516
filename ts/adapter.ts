// Adapter: a Model's LoRA layers as one object — hyperparameters, the trainable tensors, merge/unmerge, and
// the lit_model.pth.lora file (`{"model": {lora_* tensors}}`). It holds its Model, so the model outlives it.
import { fail } from './errors.js';
import type { Model } from './model.js';
import { Tensor } from './tensor.js';

export type LoraTarget = 'query' | 'key' | 'value' | 'projection' | 'mlp' | 'head';
const TARGETS: LoraTarget[] = ['query', 'key', 'value', 'projection', 'mlp', 'head'];

export class Adapter {
  readonly #model: Model;

  /** @internal Use model.adapter. */
  constructor(model: Model) {
    this.#model = model;
  }

  /** The model this adapter belongs to. */
  get model(): Model { return this.#model; }
  get r(): number { return this.#model.lora?.r ?? 0; }
  get alpha(): number { return this.#model.lora?.alpha ?? 1; }
  /** alpha / r: the factor on B·A. */
  get scaling(): number { return this.r > 0 ? this.alpha / this.r : 0; }
  get dropout(): number { return this.#model.lora?.dropout ?? 0; }
  /** Which modules carry LoRA (litgpt's lora_query … lora_head flags that are on). */
  get targets(): LoraTarget[] { return TARGETS.filter((t) => this.#model.lora?.[t] === true); }
  /** Number of trainable (lora_*) values. */
  get parameterCount(): number { return this.#model.handle.info().loraParameterCount; }
  /** True while B·A is folded into the base weights (merged mode); false in runtime mode. */
  get merged(): boolean { return this.#model.handle.info().merged; }

  /** Folds alpha/r·B·A into every LoRA layer's base weight (in place, base dtype). Forward then skips the LoRA branch. */
  async merge(): Promise<void> { await this.#model.handle.merge(); }

  /** Subtracts what merge() added (exact in float32; rounding-limited in bfloat16/float16). */
  async unmerge(): Promise<void> { await this.#model.handle.unmerge(); }

  /**
   * The lora_* tensors with litgpt's names (`transformer.h.0.attn.qkv.lora_A`, …), copies-free views of the
   * parameters — exactly the "model" dict of lit_model.pth.lora.
   */
  async tensors(): Promise<Map<string, Tensor>> {
    const pairs = await this.#model.handle.stateDict('lora');
    return new Map(pairs.map(([n, t]) => [n, new Tensor(t)]));
  }

  /**
   * The trainable tensors themselves (their .grad accumulates in loss({ backward: true })).
   * @internal For the trainer.
   */
  parameters(): [string, Tensor][] {
    return this.#model.handle.loraParameters().map(([n, t]) => [n, new Tensor(t)]);
  }

  /** @internal The accumulated gradients of the LoRA parameters (zeros where none yet), by name. */
  async gradients(): Promise<Map<string, Tensor>> {
    const pairs = await this.#model.handle.stateDict('grad');
    return new Map(pairs.map(([n, t]) => [n, new Tensor(t)]));
  }

  /** @internal Drops the accumulated gradients. */
  zeroGrad(): void { this.#model.handle.zeroGrad(); }

  /**
   * Replaces the LoRA weights with `entries` (litgpt names; litgpt ≤ 0.5.4's `attn.attn.lora_*` accepted).
   * Strict: names, count and shapes must match this model's r and targets; the error names every mismatch.
   */
  async loadTensors(entries: Iterable<[string, Tensor]>): Promise<void> {
    if (this.merged) fail('ERR_ARG', 'the adapter is merged; unmerge() before loading other LoRA weights');
    await this.#model.handle.loadStateDict([...entries].map(([n, t]) => [n, t.handle]), 'adapter');
  }

  toString(): string {
    return `Adapter(r=${this.r}, alpha=${this.alpha}, targets=[${this.targets.join(', ')}], ${this.merged ? 'merged' : 'runtime'})`;
  }
}

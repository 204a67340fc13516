// Adapter: a Model's LoRA layers as one object — hyperparameters, the trainable tensors, merge/unmerge, and
// the lit_model.pth.lora file (`{"model": {lora_* tensors}}`). It holds its Model, so the model outlives it.
// It needs only what AdapterHost names of the model (its LoRA settings and native handle), so this module does
// not import the Model class (which imports this one).
import { resolve } from 'node:path';
import { fail, LitloraError } from '../errors.js';
import type { NativeGpt, NativeTensor } from '../binding.js';
import { adaptedLayers } from './lora_placement.js';
import { LORA_CONFIG_DEFAULTS, LORA_TARGETS, type LoraSettings, type LoraTarget } from './lora_settings.js';
import { Tensor } from '../tensor.js';
import { saveTensors, TensorFile } from '../io/tensorfile.js';

/** What an Adapter uses of its model. */
export interface AdapterHost {
  readonly lora: Readonly<LoraSettings> | null;
  /** @internal */
  readonly handle: NativeGpt;
  /** @internal Runs `fn` alone on the model, in its queue's turn (ts/model/scheduler.ts). */
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T>;
}

export class Adapter<M extends AdapterHost = AdapterHost> {
  readonly #model: M;

  /** @internal Use model.adapter. */
  constructor(model: M) {
    this.#model = model;
  }

  // A model without LoRA settings has litgpt's lora Config defaults: r 0, nothing targeted.
  get #settings(): Readonly<LoraSettings> { return this.#model.lora ?? LORA_CONFIG_DEFAULTS; }

  /** The model this adapter belongs to. */
  get model(): M { return this.#model; }
  get r(): number { return this.#settings.r; }
  get alpha(): number { return this.#settings.alpha; }
  /** alpha / r: the factor on B·A. */
  get scaling(): number { return this.r > 0 ? this.alpha / this.r : 0; }
  get dropout(): number { return this.#settings.dropout; }
  /** Which modules carry LoRA (litgpt's lora_query … lora_head flags that are on). */
  get targets(): LoraTarget[] { return LORA_TARGETS.filter((t) => this.#settings[t]); }
  /** Number of trainable (lora_*) values. */
  get parameterCount(): number { return this.#model.handle.info().loraParameterCount; }
  /** True while B·A is folded into the base weights (merged mode); false in runtime mode. */
  get merged(): boolean { return this.#model.handle.info().merged; }

  /** Folds alpha/r·B·A into every LoRA layer's base weight (in place, base dtype). Forward then skips the LoRA branch. */
  async merge(): Promise<void> { await this.#model.exclusive('adapter.merge', () => this.#model.handle.merge()); }

  /** Subtracts what merge() added (exact in float32; rounding-limited in bfloat16/float16). */
  async unmerge(): Promise<void> { await this.#model.exclusive('adapter.unmerge', () => this.#model.handle.unmerge()); }

  /**
   * The lora_* tensors with litgpt's names (`transformer.h.0.attn.qkv.lora_A`, …), copies-free views of the
   * parameters — exactly the "model" dict of lit_model.pth.lora.
   */
  async tensors(): Promise<Map<string, Tensor>> {
    const pairs = await this.#model.exclusive('adapter.tensors', () => this.#model.handle.stateDict('lora'));
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
    const pairs = await this.#model.exclusive('adapter.gradients', () => this.#model.handle.stateDict('grad'));
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
    const pairs: [string, NativeTensor][] = [...entries].map(([n, t]) => [n, t.handle]);
    await this.#model.exclusive('adapter.loadTensors', () => this.#model.handle.loadStateDict(pairs, 'adapter'));
  }

  /**
   * Writes the adapter as litgpt's lit_model.pth.lora: `{"model": {lora_* tensors}}`, readable by
   * torch.load(weights_only=True) and litgpt's merge_lora. Atomic (temp file, fsync, rename).
   */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || !path) fail('ERR_ARG', `adapter.save: expected a file path, got ${String(path)}`);
    const tensors = await this.tensors();
    await saveTensors(path, tensors, { format: 'pth', wrap: 'model' });
  }

  /**
   * Reads a lit_model.pth.lora (wrapped in "model" or flat; litgpt ≤ 0.5.4 `attn.attn` names too) into this
   * adapter. The file must hold exactly this model's LoRA tensors: other targets, another r or another model's
   * shapes are refused with every mismatch named.
   */
  async load(path: string): Promise<void> {
    if (typeof path !== 'string' || !path) fail('ERR_ARG', `adapter.load: expected a file path, got ${String(path)}`);
    const full = resolve(path);
    const file = await TensorFile.open(full);
    try {
      const loraNames = file.names.filter((n) => /\.lora_[AB]$/.test(n));
      const others = file.names.filter((n) => !/\.lora_[AB]$/.test(n));
      if (others.length) {
        fail('ERR_CHECKPOINT_FORMAT', `${full} is not a LoRA file: it holds ${others.length} tensor(s) that are not lora_A/lora_B ` +
          `(e.g. ${others.slice(0, 3).join(', ')}). Expected litgpt's lit_model.pth.lora.`);
      }
      const theirs = adaptedLayers(loraNames), ours = adaptedLayers((await this.tensors()).keys());
      if (theirs.join() !== ours.join()) {
        fail('ERR_CHECKPOINT_FORMAT', `${full} adapts ${theirs.join(', ') || 'nothing'}, but this model's LoRA layers are on ` +
          `${ours.join(', ') || 'nothing'} (targets ${this.targets.join(', ')}); build the model with the LoRA settings the ` +
          'adapter was trained with (its hyperparameters.yaml lora_* values).');
      }
      const entries = await file.getAll(); // only lora_A/lora_B tensors: the others were refused above
      try {
        await this.loadTensors(entries);
      } catch (e) {
        if (e instanceof LitloraError || (e instanceof Error && 'code' in e)) e.message = `${full}: ${e.message}`;
        throw e;
      } finally {
        for (const t of entries.values()) t.dispose();
      }
    } finally {
      await file.close();
    }
  }

  toString(): string {
    return `Adapter(r=${this.r}, alpha=${this.alpha}, targets=[${this.targets.join(', ')}], ${this.merged ? 'merged' : 'runtime'})`;
  }
}

// model.adapters: many LoRA adapters on one loaded base, in runtime mode (S-LoRA / Punica style). Each adapter's
// A and B stay beside the base weights; a generation request names one (`adapter: 'name'`) and the batched
// decoder adds that adapter's delta to that request's row only, so one batch mixes requests for different
// adapters and the base.
//
//   await model.adapters.add('support', 'out/support/final');   // a litgpt LoRA folder (lit_model.pth.lora)
//   generateText(model, tokenizer, 'Hi', { adapter: 'support' });
//
// How this relates to the model's own LoRA: Model.load of a LoRA folder still merges that folder into the base
// (or keeps it as the model's runtime adapter with mode 'runtime'), and that is what every request sees, with
// `adapter: null` as without it. Adapters added here are deltas on top of that model; for requests that should see
// a plain base, load the base folder and add each LoRA folder here.
import { resolve } from 'node:path';
import { Checkpoint } from '../io/checkpoint.js';
import { adapterLoraSettings } from '../io/hyperparameters.js';
import { TensorFile } from '../io/tensorfile.js';
import { fail } from '../errors.js';
import type { NativeGpt, NativeTensor } from '../binding.js';
import type { Config } from './config.js';
import { nativeGptConfig } from './native_config.js';

/** What the registry uses of its model. */
export interface AdaptersHost {
  readonly config: Readonly<Config>;
  /** @internal */
  readonly handle: NativeGpt;
  /** @internal */
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T>;
}

// The config fields that decide the shapes and meaning of the layers an adapter's LoRA sits on.
const SHAPE_FIELDS = [
  'padded_vocab_size', 'n_layer', 'n_head', 'n_embd', 'n_query_groups', 'head_size', 'intermediate_size', 'mlp_class_name',
  'norm_class_name', 'bias', 'lm_head_bias', 'rotary_percentage', 'parallel_residual', 'shared_attention_norm',
  'n_expert', 'n_expert_per_token', 'moe_intermediate_size',  // LLaMAMoE: top-k changes the routing, not a shape
] as const;

export class ModelAdapters {
  readonly #model: AdaptersHost;

  /** @internal Use model.adapters. */
  constructor(model: AdaptersHost) {
    this.#model = model;
  }

  /** The names of the adapters loaded, in the order they were added. */
  names(): string[] { return this.#model.handle.adapterNames(); }

  has(name: string): boolean { return this.names().includes(name); }

  /**
   * Loads a litgpt LoRA folder (lit_model.pth.lora with its hyperparameters.yaml and model_config.yaml) as adapter
   * `name`. The folder's model config must match this base's shapes, and its tensors must be what its LoRA settings
   * place on this base (ERR_ADAPTER_MISMATCH otherwise); a name already loaded is ERR_ARG. Waits its turn in the
   * model's queue; requests decoding meanwhile are not disturbed.
   */
  async add(name: string, dir: string): Promise<void> {
    if (typeof name !== 'string' || name.length === 0) fail('ERR_ARG', `adapters.add: expected a non-empty adapter name, got ${String(name)}`);
    if (typeof dir !== 'string' || !dir) fail('ERR_ARG', `adapters.add: expected a LoRA folder path, got ${String(dir)}`);
    if (this.has(name)) fail('ERR_ARG', `adapters.add: an adapter named '${name}' is already loaded; remove it first or pick another name`);
    const checkpoint = await Checkpoint.open(resolve(dir), { ignoreTokenizerFiles: true });
    if (!checkpoint.files.lora) {
      fail('ERR_CHECKPOINT_MISSING', `adapters.add: ${checkpoint.dir} has no lit_model.pth.lora (it is a ${checkpoint.kind} folder); ` +
        'give a LoRA finetune folder (out_dir/final or out_dir/step-XXXXXX)');
    }
    const base = this.#model.config as Record<string, unknown>;
    const theirs = checkpoint.config as unknown as Record<string, unknown>;
    const differ = SHAPE_FIELDS.filter((k) => JSON.stringify(base[k]) !== JSON.stringify(theirs[k]));
    if (differ.length) {
      fail('ERR_ADAPTER_MISMATCH', `adapters.add: ${checkpoint.files.config} was made for another base model: ` +
        differ.map((k) => `${k} ${JSON.stringify(theirs[k])} (this base: ${JSON.stringify(base[k])})`).join(', ') +
        '. Load an adapter trained on this base.');
    }
    const lora = adapterLoraSettings(checkpoint.hyperparameters ?? {}, checkpoint.files.hyperparameters ?? checkpoint.dir, checkpoint.files.lora);
    const config = nativeGptConfig(this.#model.config as Config, lora);
    const file = await TensorFile.open(checkpoint.files.lora);
    try {
      const entries = await file.getAll(); // memory-mapped; the model copies what it keeps
      try {
        const pairs: [string, NativeTensor][] = [...entries].map(([n, t]) => [n, t.handle]);
        await this.#model.exclusive('adapters.add', () => this.#model.handle.addAdapter(name, config, pairs));
      } catch (e) {
        if (e instanceof Error && 'code' in e) e.message = `${checkpoint.files.lora}: ${e.message}`;
        throw e;
      } finally {
        for (const [, t] of entries) t.dispose();
      }
    } finally {
      await file.close();
    }
  }

  /** Unloads adapter `name` (ERR_ADAPTER_NOT_FOUND when none is loaded), after the requests queued before. */
  async remove(name: string): Promise<void> {
    if (typeof name !== 'string') fail('ERR_ARG', `adapters.remove: expected an adapter name, got ${String(name)}`);
    await this.#model.exclusive('adapters.remove', () => this.#model.handle.removeAdapter(name));
  }
}

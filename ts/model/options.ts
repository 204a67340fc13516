// The options a Model is made with: its config, dtype and device, and its LoRA layers. Their own module so
// that the model's collaborators (load, adapter, trainer) can name them without importing the Model class.
import type { Device } from '../tensor.js';

/**
 * litgpt's Config fields (model_config.yaml, snake_case), e.g. from readConfig or configFromName; any subset
 * takes litgpt's defaults and derived values. litgpt's lora Config fields (lora_r, …) are accepted too.
 */
export type ModelConfig = Record<string, unknown>;

export type ModelDtype = 'float32' | 'bfloat16' | 'float16';

/** LoRA placement and hyperparameters; litgpt's `finetune lora` defaults apply to what is left out. */
export interface LoraOptions {
  /** Rank (default 8). 0 turns LoRA off. */
  r?: number;
  /** Scaling numerator: ΔW = (alpha / r)·B·A (default 16). */
  alpha?: number;
  /** Dropout on the LoRA branch input while training (default 0.05). */
  dropout?: number;
  query?: boolean; // default true
  key?: boolean; // default false
  value?: boolean; // default true
  projection?: boolean; // default false
  mlp?: boolean; // default false
  head?: boolean; // default false
}

export interface ModelOptions {
  device?: Device;
  /** float32 (default), bfloat16, or float16 (CUDA only). */
  dtype?: ModelDtype;
  /** LoRA layers to add. Without it, the config's own lora_* fields decide (none by default). */
  lora?: LoraOptions;
}

export interface FromConfigOptions extends ModelOptions {
  /** Seed for litgpt's initialisation (N(0, 0.02) weights, LoRA A kaiming-uniform, B zeros). Default 0. */
  seed?: number;
}

/** LoRA settings with every field filled (litgpt's lora Config fields without the `lora_` prefix). */
export type LoraSettings = Required<LoraOptions>;

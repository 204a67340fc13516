// The options a Model is made with: its config, dtype and device, and its LoRA layers. Their own module so
// that the model's collaborators (load, adapter, trainer) can name them without importing the Model class.
import type { Device } from '../tensor.js';
import type { LoraOptions } from './lora_settings.js';

/**
 * litgpt's Config fields (model_config.yaml, snake_case), e.g. from readConfig or configFromName; any subset
 * takes litgpt's defaults and derived values. litgpt's lora Config fields (lora_r, …) are accepted too.
 */
export type ModelConfig = Record<string, unknown>;

export type ModelDtype = 'float32' | 'bfloat16' | 'float16';

export interface ModelOptions {
  device?: Device;
  /** float32 (default), bfloat16, or float16 (CUDA only). */
  dtype?: ModelDtype;
  /**
   * LoRA layers to add (LORA_DEFAULTS for what is left out). Without it, the config's own lora_* fields decide
   * (none by default).
   */
  lora?: LoraOptions;
}

export interface FromConfigOptions extends ModelOptions {
  /** Seed for litgpt's initialisation (N(0, 0.02) weights, LoRA A kaiming-uniform, B zeros). Default 0. */
  seed?: number;
}

// litlora's public surface: exports only.
export { Tensor } from './tensor.js';
export type { Dtype, Device, TensorData, TensorOptions } from './tensor.js';
export { LitloraError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { buildInfo, getNumThreads, setNumThreads } from './binding.js';
export { Model } from './model.js';
export type { ModelConfig, ModelDtype, ModelOptions, FromConfigOptions, LoraOptions, LoraSettings, Tokens } from './model.js';
export { Adapter } from './adapter.js';
export type { LoraTarget } from './adapter.js';

// litlora's public surface: exports only.
export { Tensor } from './tensor.js';
export type { Dtype, Device, TensorData, TensorOptions } from './tensor.js';
export { LitloraError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { buildInfo, getNumThreads, setNumThreads } from './binding.js';
export { lora } from './lora.js';
export type { ForwardOptions, LoraGrads, LoraOptions, MergeOptions, QkvOptions } from './lora.js';

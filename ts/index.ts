// litlora's public surface: exports only.
export { Tensor } from './tensor.js';
export type { Dtype, Device, TensorData, TensorOptions } from './tensor.js';
export { LitloraError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { buildInfo, getNumThreads, setNumThreads } from './binding.js';
export { Tokenizer, StreamDecoder } from './data/tokenizer.js';
export type { EncodeOptions, DecodeOptions } from './data/tokenizer.js';
export { PromptStyle, PROMPT_STYLES, modelNameToPromptStyle, loadPromptStyle, savePromptStyle, promptStyleYaml } from './data/prompts.js';
export { createDataModule, dataModuleFromHyperparameters } from './data/module.js';
export type { DataModule, DataModuleName, SetupOptions } from './data/module.js';
export { JSONData, AlpacaData, loadInstructionFile } from './data/instruction.js';
export { TextFilesData } from './data/text_files.js';
export { encodeSample, collate } from './data/sft.js';
export type { Batch, InstructionSample, EncodedSample } from './data/sft.js';
export * as synthetic from './data/synthetic.js';

// litlora's public surface: exports only.
export { Tensor } from './tensor.js';
export type { Dtype, Device, TensorData, TensorOptions } from './tensor.js';
export { LitloraError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { buildInfo, getNumThreads, setNumThreads } from './binding.js';
export { Checkpoint } from './checkpoint.js';
export type { CheckpointKind, CheckpointFiles, OpenOptions } from './checkpoint.js';
export { configFromName, configNames, configToYaml, normalizeConfig, readConfig, writeConfig } from './config.js';
export type { Config, ConfigInput, RopeAdjustments } from './config.js';
export { OutDir } from './outdir.js';
export type { LoraCheckpointContents, StepFolder } from './outdir.js';
export {
  loraSettings, readHyperparameters, readPromptStyle, resolveCheckpointDir, writeHyperparameters, writePromptStyle,
} from './hyperparameters.js';
export type { Hyperparameters, LoraSettings, PromptStyleRef, ResolvedCheckpointDir } from './hyperparameters.js';
export { initCheckpoint } from './init.js';
export type { InitOptions, InitResult } from './init.js';
export { migrateCheckpoint, registerQkvRelayout } from './migrate.js';
export type { MigrateOptions, MigrationResult, QkvRelayout } from './migrate.js';

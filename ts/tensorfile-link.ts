// A typed late link to ts/tensorfile.ts (.pth / .safetensors I/O), which is written on another branch.
// Importing it by a computed specifier keeps this branch compiling and its tests running before it lands;
// once it is in main, callers can import './tensorfile.js' directly and this file goes away.
import { LitloraError } from './errors.js';
import type { Dtype, Device, Tensor } from './tensor.js';

export interface SaveTensorsOptions {
  format: 'pth' | 'safetensors';
  /** 'model' writes `{"model": {...}}` (litgpt's .lora files and full-finetune lit_model.pth). */
  wrap?: 'model';
  metadata?: Record<string, string>;
}

export type SaveTensorsFn = (
  path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, options: SaveTensorsOptions,
) => Promise<void>;

export interface TensorFileHandle {
  readonly names: string[];
  info(name: string): { shape: number[]; dtype: Dtype; bytes: number };
  get(name: string, options?: { device?: Device; dtype?: Dtype }): Promise<Tensor>;
  close(): Promise<void>;
}

export interface TensorFileModule {
  saveTensors: SaveTensorsFn;
  TensorFile: { open(path: string): Promise<TensorFileHandle> };
}

let cached: TensorFileModule | null = null;

/** The tensorfile module, or ERR_LOAD when this build does not have it yet. */
export async function tensorfile(): Promise<TensorFileModule> {
  if (cached) return cached;
  const specifier = './tensorfile.js';
  try {
    cached = (await import(specifier)) as TensorFileModule;
  } catch (e) {
    throw new LitloraError('ERR_LOAD', `litlora's tensor file I/O (ts/tensorfile.ts) is not available in this build: ${(e as Error).message}`);
  }
  return cached;
}

/** True when the tensorfile module can be loaded (tests that need it use this to decide). */
export async function hasTensorfile(): Promise<boolean> {
  try { await tensorfile(); return true; } catch { return false; }
}

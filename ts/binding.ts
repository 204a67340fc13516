// The native addon's whole surface, typed in one place: every export native/addon.cc registers (and the
// members of every class it defines) is declared here and nowhere else, and NATIVE_SURFACE lists the same
// names as values, checked against these types at compile time and against the loaded addon by
// test/01.native.binding.test.ts. Exports that only tests and benchmarks use sit under `internals`
// (ts/internals.ts wraps them), apart from the product API.
//
// binding() loads the addon on first use (ts/addon_loader.ts finds the .node) and prepares it: errors raised
// in native code are made LitloraErrors (setErrorClass), and libtorch gets its default thread count.
import { availableParallelism } from 'node:os';
import { loadAddon } from './addon_loader.js';
import { LitloraError } from './errors.js';
import type { NativeGptConfig } from './model/native_config.js';

/** @internal */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  readonly disposed: boolean;
  dispose(): void;
  data(raw?: boolean): Promise<ArrayBufferView>;
  to(dtype: string | null, device: string | null): Promise<NativeTensor>;
}

/** @internal The NativeTensor class's statics. */
export interface NativeTensorClass {
  fromArray(data: ArrayBufferView, shape: number[], dtype: string, device: string): NativeTensor;
}

/** @internal What open() of a tensor file resolves to. */
export interface NativeTensorFileDescription {
  format: 'pth' | 'safetensors';
  wrapped: string | null;
  entries: { name: string; shape: number[]; dtype: string; bytes: number }[];
  metadata: Record<string, string>;
  /** Non-tensor leaves (io/tensorfile.ts's PlainValue). */
  values: Record<string, number | bigint | string | boolean | null>;
}

/** @internal */
export interface NativeTensorFile {
  open(path: string): Promise<NativeTensorFileDescription>;
  get(name: string, dtype: string | null, device: string | null): Promise<NativeTensor>;
  getAll(dtype: string | null, device: string | null): Promise<[string[], NativeTensor[]]>;
  close(): Promise<void>;
}

/** @internal The LoRA ops' options, checked and defaulted by ts/model/lora.ts. */
export interface NativeLoraOptions {
  scaling: number;
  dropout: number;
  training: boolean;
  seed: bigint;
  qkv: null | { nHead: number; nQueryGroups: number; headSize: number; enable: boolean[]; interleaved: boolean };
}

/** @internal */
export interface NativeLoraGrads {
  gradX: NativeTensor;
  gradA: NativeTensor;
  gradB: NativeTensor;
}

/** @internal */
export interface NativeGpt {
  readonly disposed: boolean;
  forward(tokens: Int32Array | BigInt64Array, shape: number[], options?: { inputPos?: number; lastOnly?: boolean }): Promise<NativeTensor>;
  loss(tokens: Int32Array | BigInt64Array, targets: Int32Array | BigInt64Array, shape: number[],
    options?: { backward?: boolean; gradScale?: number }): Promise<{ loss: number; tokens: number }>;
  loadStateDict(entries: [string, NativeTensor][], kind: 'base' | 'adapter'): Promise<void>;
  stateDict(kind: 'base' | 'lora' | 'merged' | 'grad'): Promise<[string, NativeTensor][]>;
  loraParameters(): [string, NativeTensor][];
  zeroGrad(): void;
  merge(): Promise<void>;
  unmerge(): Promise<void>;
  setKvCache(batch: number, maxLength: number): Promise<void>;
  clearKvCache(): void;
  addAdapter(name: string, config: NativeGptConfig, entries: [string, NativeTensor][]): Promise<void>;
  removeAdapter(name: string): Promise<void>;
  adapterNames(): string[];
  info(): {
    parameterCount: number; loraParameterCount: number; merged: boolean; hasLora: boolean; legacyQkvAdapter: boolean;
    dtype: string; device: string; busy: boolean;
    /** Per layer, the most positions a KV cache of this model has allocated there (a sliding layer: ≤ its window). */
    kvCacheSlots: number[];
  };
  dispose(): void;
}

/** @internal The NativeGpt class's statics. */
export interface NativeGptClass {
  create(config: NativeGptConfig, options: { dtype: string; device: string; seed?: number }): Promise<NativeGpt>;
}

/** @internal What the trainer needs of a model's native handle. */
export type TrainModelHandle = Pick<NativeGpt, 'info' | 'stateDict' | 'loadStateDict'>;

/** @internal */
export interface NativeTrainer {
  microStep(tokens: Int32Array, targets: Int32Array, shape: number[], options: { accumulate: number; step: boolean; lr: number; maxNorm: number }):
    Promise<{ loss: number; tokens: number; stepped: boolean; gradNorm: number }>;
  evaluate(tokens: Int32Array, targets: Int32Array, shape: number[]): Promise<{ loss: number; tokens: number }>;
  forward(tokens: Int32Array, shape: number[], options: { lastOnly: boolean }): Promise<NativeTensor>;
  state(): Promise<[string, NativeTensor][]>;
  loadState(entries: [string, NativeTensor][]): Promise<void>;
  restoreDtype(): Promise<void>;
  setProcessGroup(group: NativeProcessGroup | null, sync?: { overlap: boolean; bucketBytes: number }): Promise<void>;
  info(): { optimizerSteps: number; fusedAdamW: boolean; precision: string };
  dispose(): void;
}

/** @internal The NativeTrainer class's statics. */
export interface NativeTrainerClass {
  create(model: TrainModelHandle, options: { precision: string; beta1: number; beta2: number; eps: number; weightDecay: number; fused?: boolean }): NativeTrainer;
  manualSeed(seed: number): void;
}

/** @internal A c10d process group (native/distributed_wrap.cc): gradients average inside NativeTrainer.microStep. */
export interface NativeProcessGroup {
  allReduceSum(values: number[]): Promise<number[]>;
  allReduceMean(tensors: NativeTensor[], bucketBytes?: number): Promise<void>;
  barrier(): Promise<void>;
  stats(): { allReduceCalls: number; buckets: number; overlappedBuckets: number; bytes: number; seconds: number; lastWaitStart: number };
  dispose(): void;
}

/** @internal The NativeProcessGroup class's statics. */
export interface NativeProcessGroupClass {
  create(options: { rank: number; worldSize: number; localRank: number; masterAddr: string; masterPort: number; timeoutMs: number; backend: 'gloo' | 'nccl' }):
    Promise<NativeProcessGroup>;
  backends(): string[];
}

/** @internal The handle generate() returns at once; tokens, the end and errors arrive through onEvent. */
export interface NativeGeneration {
  cancel(): void;
}

/** @internal Entry points for tests and benchmarks only (ts/internals.ts wraps them). */
export interface NativeInternals {
  loraDropoutMask(like: NativeTensor, o: NativeLoraOptions): Promise<NativeTensor>;
  loraReferenceGrads(gy: NativeTensor, x: NativeTensor, w: NativeTensor, bias: NativeTensor | null, a: NativeTensor,
    b: NativeTensor, o: NativeLoraOptions, viaLinear: boolean): Promise<NativeLoraGrads>;
  loraLinearForward(x: NativeTensor, w: NativeTensor, bias: NativeTensor | null, a: NativeTensor, b: NativeTensor,
    o: NativeLoraOptions): Promise<NativeTensor>;
  loraSynchronize(device: string): Promise<void>;
  loraDenseFloor(x: NativeTensor, w: NativeTensor, gy: NativeTensor): Promise<void>;
  loraPath(tokens: number, inF: number, outF: number, r: number, parts: number, dtype: string, stage: string): 'skinny' | 'merged';
  tensorChecksum(tensor: NativeTensor, exact: boolean): Promise<number>;
  adamwSteps(params: NativeTensor[], grads: NativeTensor[][], lrs: number[],
    options: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; fused?: boolean }): NativeTensor[];
}

/** @internal Every export of the addon. */
export interface NativeBinding {
  // The addon itself (native/addon.cc)
  buildInfo(): { torchVersion: string; torchCmakeVersion?: string; cuda: boolean; cudaDeviceCount: number;
    mklVendorCheck: MklVendorCheck };
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** The class native errors are made of, constructed with (code, message) (native/errors.cc). */
  setErrorClass(errorClass: typeof LitloraError): void;
  // Tensors and tensor files (native/tensor_wrap.cc, native/tensorfile_wrap.cc)
  NativeTensor: NativeTensorClass;
  NativeTensorFile: new () => NativeTensorFile;
  saveTensors(path: string, names: string[], tensors: NativeTensor[], format: string, wrap: string | null,
    metadata: Record<string, string> | null): Promise<void>;
  // LoRA ops (native/lora_wrap.cc)
  loraForward(x: NativeTensor, w: NativeTensor, bias: NativeTensor | null, a: NativeTensor, b: NativeTensor,
    o: NativeLoraOptions): Promise<NativeTensor>;
  loraBackward(gy: NativeTensor, x: NativeTensor, w: NativeTensor, a: NativeTensor, b: NativeTensor,
    o: NativeLoraOptions): Promise<NativeLoraGrads>;
  loraMerge(w: NativeTensor, a: NativeTensor, b: NativeTensor, o: NativeLoraOptions, inPlace: boolean): Promise<NativeTensor | undefined>;
  loraUnmerge(w: NativeTensor, a: NativeTensor, b: NativeTensor, o: NativeLoraOptions, inPlace: boolean): Promise<NativeTensor | undefined>;
  // The model (native/gpt_wrap.cc), decoding (native/generate_wrap.cc), merging files (native/merge_wrap.cc)
  NativeGpt: NativeGptClass;
  gptQkvReassemble(tensor: NativeTensor, nHead: number, nQueryGroups: number, headSize: number): Promise<NativeTensor>;
  generate(model: NativeGpt, prompt: Int32Array, options: Record<string, unknown>,
    onEvent: (kind: 'token' | 'done' | 'error', value: any) => void): NativeGeneration;
  decodeSubmit(model: NativeGpt, prompt: Int32Array, options: Record<string, unknown>, adapter: string | null,
    onEvent: (kind: 'token' | 'done' | 'error', value: any) => void): NativeGeneration;
  mergeLoraFiles(base: string, lora: string, out: string, config: NativeGptConfig, options: { dtype?: string }):
    Promise<{ tensors: number; mergedLayers: number; bytesWritten: number; seconds: number }>;
  // Rewriting tensor files by a plan, streamed (native/tensor_plan_wrap.cc; ts/interop/)
  writeTensorPlan(plan: NativeTensorPlan, onProgress?: (done: number, total: number) => void): Promise<{ tensors: number; bytesWritten: number; seconds: number }>;
  tensorsEqual(path: string, a: string, b: string): Promise<boolean>;
  scanBpeTokenizerJson(bytes: Uint8Array): NativeBpeScan | null;
  encodeGgufTokens(tokenBytes: Uint8Array, start: Int32Array, length: Int32Array, rows: number, overrideIds: Int32Array, overrideTexts: string[]): Buffer;
  // Training (native/train_wrap.cc)
  NativeTrainer: NativeTrainerClass;
  // Data-parallel training over c10d (native/distributed_wrap.cc)
  NativeProcessGroup: NativeProcessGroupClass;
  internals: NativeInternals;
}

/** One output tensor of a plan: rows of input tensors concatenated along dim 0 (native/core/tensor_plan.h). */
export interface NativeTensorPlanOutput {
  name: string;
  pieces?: { source: number; name: string; rowStart?: number; rows?: number }[];
  dtype?: string;
  shape?: number[];
  /** .pth only: share the storage of this earlier output (tied weights). */
  aliasOf?: string;
  /** .gguf only: the tensor's ggml type; llama.cpp's rotary row permutation with this many heads; or its bytes, as they are. */
  ggml?: 'f32' | 'f16' | 'bf16' | 'q8_0';
  permuteHeads?: number;
  /** .gguf only: added in the pieces' dtype before conversion (Gemma's norm weights + 1). */
  addend?: number;
  data?: Uint8Array;
}

/** A tokenizer.json's model.vocab and model.merges read from its bytes (native/core/tokenizer_json.h). */
export interface NativeBpeScan {
  /** The file's text with model.vocab as {} and model.merges as []. */
  rest: string;
  /** model.vocab's tokens (UTF-8), one after another; token `id` is [start[id], start[id] + length[id]), start -1 for none. */
  tokenBytes: Buffer;
  start: Int32Array;
  length: Int32Array;
  maxId: number;
  /** GGUF strings (u64 byte length, bytes) one after another. */
  merges: Buffer;
  mergeCount: number;
}

export interface NativeTensorPlan {
  sources: string[];
  outputs: NativeTensorPlanOutput[];
  outPath: string;
  format: 'pth' | 'safetensors' | 'gguf';
  wrap?: 'model';
  metadata?: Record<string, string>;
  /** .gguf: everything before the tensor data (ts/gguf/writer.ts's ggufHeaderParts), in one array or parts. */
  header?: Uint8Array | Uint8Array[];
}

/**
 * @internal The same surface as names: the addon's exports, its `internals`, and each class's statics and
 * instance members (methods and accessors). Compile-time checks below hold it equal to the interfaces.
 */
export const NATIVE_SURFACE = {
  exports: ['buildInfo', 'setNumThreads', 'getNumThreads', 'setErrorClass', 'NativeTensor', 'NativeTensorFile', 'saveTensors',
    'loraForward', 'loraBackward', 'loraMerge', 'loraUnmerge', 'NativeGpt', 'gptQkvReassemble', 'generate',
    'decodeSubmit', 'mergeLoraFiles', 'writeTensorPlan', 'tensorsEqual', 'scanBpeTokenizerJson', 'encodeGgufTokens', 'NativeTrainer', 'NativeProcessGroup', 'internals'],
  internals: ['loraDropoutMask', 'loraReferenceGrads', 'loraLinearForward', 'loraSynchronize', 'loraDenseFloor', 'loraPath',
    'tensorChecksum', 'adamwSteps'],
  classes: {
    NativeTensor: { statics: ['fromArray'], members: ['shape', 'dtype', 'device', 'disposed', 'dispose', 'data', 'to'] },
    NativeTensorFile: { statics: [], members: ['open', 'get', 'getAll', 'close'] },
    NativeGpt: {
      statics: ['create'],
      members: ['disposed', 'forward', 'loss', 'loadStateDict', 'stateDict', 'loraParameters', 'zeroGrad', 'merge', 'unmerge',
        'setKvCache', 'clearKvCache', 'addAdapter', 'removeAdapter', 'adapterNames', 'info', 'dispose'],
    },
    NativeTrainer: {
      statics: ['create', 'manualSeed'],
      members: ['microStep', 'evaluate', 'forward', 'state', 'loadState', 'restoreDtype', 'setProcessGroup', 'info', 'dispose'],
    },
    NativeProcessGroup: { statics: ['create', 'backends'], members: ['allReduceSum', 'allReduceMean', 'barrier', 'stats', 'dispose'] },
  },
} as const;

// A type error in NativeSurfaceChecks means NATIVE_SURFACE and the interfaces above disagree: keep both equal
// to what the addon registers.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
type Surface = typeof NATIVE_SURFACE;
type Listed<K extends keyof Surface['classes'], P extends 'statics' | 'members'> = Surface['classes'][K][P][number];
/** @internal */
export type NativeSurfaceChecks = [
  Holds<Same<keyof NativeBinding, Surface['exports'][number]>>,
  Holds<Same<keyof NativeInternals, Surface['internals'][number]>>,
  Holds<Same<keyof NativeTensorClass, Listed<'NativeTensor', 'statics'>>>,
  Holds<Same<keyof NativeTensor, Listed<'NativeTensor', 'members'>>>,
  Holds<Same<never, Listed<'NativeTensorFile', 'statics'>>>,
  Holds<Same<keyof NativeTensorFile, Listed<'NativeTensorFile', 'members'>>>,
  Holds<Same<keyof NativeGptClass, Listed<'NativeGpt', 'statics'>>>,
  Holds<Same<keyof NativeGpt, Listed<'NativeGpt', 'members'>>>,
  Holds<Same<keyof NativeTrainerClass, Listed<'NativeTrainer', 'statics'>>>,
  Holds<Same<keyof NativeTrainer, Listed<'NativeTrainer', 'members'>>>,
  Holds<Same<keyof NativeProcessGroupClass, Listed<'NativeProcessGroup', 'statics'>>>,
  Holds<Same<keyof NativeProcessGroup, Listed<'NativeProcessGroup', 'members'>>>,
];

// LITLORA_THREADS if set (a positive integer), else the machine's cores: libtorch alone may pick 1 on VMs.
function defaultThreads(): number {
  const raw = process.env.LITLORA_THREADS;
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (Number.isInteger(n) && n >= 1) return n;
    process.emitWarning(`LITLORA_THREADS=${raw} is not a positive integer; using ${availableParallelism()} threads`);
  }
  return availableParallelism();
}

// Readies a freshly loaded addon; throwing refuses it (the loader then tries the next candidate).
function prepare(exports: unknown): void {
  const b = exports as NativeBinding;
  if (typeof b.setErrorClass !== 'function') throw new Error('it is an older build of litlora\'s addon (no setErrorClass)');
  b.setErrorClass(LitloraError);
  b.setNumThreads(defaultThreads());
}

let cached: NativeBinding | null = null;
let loadedFrom = '';

/** @internal The addon, loaded on first use. */
export function binding(): NativeBinding {
  if (!cached) {
    const { exports, file } = loadAddon(prepare);
    cached = exports as NativeBinding;
    loadedFrom = file;
  }
  return cached;
}

/** Sets libtorch's intra-op thread count (default: LITLORA_THREADS or the machine's cores). */
export function setNumThreads(n: number): void {
  binding().setNumThreads(n);
}

export function getNumThreads(): number {
  return binding().getNumThreads();
}

/**
 * MKL (libtorch's CPU BLAS) picks kernels by CPU vendor as well as by instruction set; the addon answers its vendor
 * check (native/core/mkl_vendor.cc) so that a non-Intel CPU with AVX2 and FMA gets MKL's AVX2 kernels.
 * `answersIntel`: what the addon answers (false with LITLORA_MKL_VENDOR_CHECK=1 or without AVX2/FMA); `queries`: how
 * many times MKL has asked (0 before the first GEMM, or where libtorch has no MKL).
 */
export interface MklVendorCheck { answersIntel: boolean; queries: number }

/** What the loaded addon was built with, what it sees, and which file it was loaded from (`addon`). */
export function buildInfo(): { torchVersion: string; cuda: boolean; cudaDeviceCount: number; addon: string;
  mklVendorCheck: MklVendorCheck } {
  const info = binding().buildInfo();
  return { torchVersion: info.torchVersion, cuda: info.cuda, cudaDeviceCount: info.cudaDeviceCount, addon: loadedFrom,
    mklVendorCheck: info.mklVendorCheck };
}

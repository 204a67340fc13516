// Tensor files: PyTorch .pth (torch.save's zip format) and Hugging Face .safetensors.
//
//   const f = await TensorFile.open('checkpoints/x/lit_model.pth');   // lists names without reading tensors
//   f.names; f.info('lm_head.weight');                                 // { shape, dtype, bytes }
//   const w = await f.get('lm_head.weight');                           // memory-mapped, zero-copy on CPU
//   await f.close();
//   await saveTensors('out/lit_model.pth.lora', tensors, { format: 'pth', wrap: 'model' });
//
// Reading executes nothing from the file: .pth pickles go through an allowlist of PyTorch's weights-only
// globals. Writing is atomic (temp file, fsync, rename): the target is either the old file or the new one.
import { resolve } from 'node:path';
import { binding, type NativeTensor, type NativeTensorFile, type NativeTensorFileDescription } from '../binding.js';
import { fail } from '../errors.js';
import { Tensor, type Device, type Dtype } from '../tensor.js';

export type TensorFileFormat = 'pth' | 'safetensors';

export interface TensorInfo {
  shape: number[];
  dtype: Dtype;
  /** numel × element size */
  bytes: number;
}

export interface GetOptions {
  /** Copies to this device (default: CPU, memory-mapped). */
  device?: Device;
  /** Converts to this dtype (default: the file's). */
  dtype?: Dtype;
}

/** A non-tensor value stored next to the tensors in a .pth (ints, floats, strings, bools, None). */
export type PlainValue = number | bigint | string | boolean | null;

export interface SaveOptions {
  /** Default: from the extension (.safetensors → 'safetensors', anything else → 'pth'). */
  format?: TensorFileFormat;
  /** .pth only: 'model' writes {"model": {...}} as litgpt's lit_model.pth.lora files are. */
  wrap?: 'model';
  /** .safetensors only: the header's __metadata__ (string values). */
  metadata?: Record<string, string>;
}

const FORMATS: readonly string[] = ['pth', 'safetensors'];

export class TensorFile {
  /** Absolute path of the file. */
  readonly path: string;
  /** Told from the content, not the file name. */
  readonly format: TensorFileFormat;
  /** Tensor names in file order; nested containers are joined with '.' ("layers.0.weight"). */
  readonly names: string[];
  /** 'model' when the file is {"model": {...}} (names are then the inner ones); otherwise undefined. */
  readonly wrapped: 'model' | undefined;
  /** A .safetensors file's __metadata__; {} for .pth. */
  readonly metadata: Record<string, string>;
  /** Plain (non-tensor) values found in a .pth, by flattened name. */
  readonly values: Record<string, PlainValue>;
  #native: NativeTensorFile;
  #infos: Map<string, TensorInfo>;
  #closed = false;

  private constructor(path: string, handle: NativeTensorFile, d: NativeTensorFileDescription) {
    this.path = path;
    this.#native = handle;
    this.format = d.format;
    this.wrapped = d.wrapped === 'model' ? 'model' : undefined;
    this.metadata = d.metadata;
    this.values = d.values;
    this.names = d.entries.map((e) => e.name);
    this.#infos = new Map(d.entries.map((e) => [e.name, { shape: e.shape, dtype: e.dtype as Dtype, bytes: e.bytes }]));
  }

  /**
   * Opens a tensor file and lists its tensors without reading their bytes. Errors: ERR_CHECKPOINT_MISSING (no
   * such file), ERR_CHECKPOINT_FORMAT (not a tensor file, corrupt, or a pickle that would run code).
   */
  static async open(path: string): Promise<TensorFile> {
    if (typeof path !== 'string' || !path) fail('ERR_ARG', `TensorFile.open: expected a file path, got ${String(path)}`);
    const full = resolve(path);
    const handle = new (binding().NativeTensorFile)();
    const description = await handle.open(full);
    return new TensorFile(full, handle, description);
  }

  has(name: string): boolean {
    return this.#infos.has(name);
  }

  /** Shape, dtype and byte size of one tensor, from the file's index (no data is read). */
  info(name: string): TensorInfo {
    const info = this.#infos.get(name);
    if (!info) this.#missing(name);
    return { shape: [...info.shape], dtype: info.dtype, bytes: info.bytes };
  }

  /**
   * One tensor. On CPU with its own dtype it is backed by a private memory map of the file (zero-copy where
   * the file aligns it; in-place changes stay in this process). Other devices or dtypes get a converted copy.
   */
  async get(name: string, options: GetOptions = {}): Promise<Tensor> {
    this.#checkOpen('get');
    if (typeof name !== 'string') fail('ERR_ARG', `TensorFile.get: expected a tensor name, got ${typeof name}`);
    if (!this.#infos.has(name)) this.#missing(name);
    return new Tensor(await this.#native.get(name, options.dtype ?? null, options.device ?? null));
  }

  /** Every tensor, by name in file order. Views of one storage in the file share memory here too. */
  async getAll(options: GetOptions = {}): Promise<Map<string, Tensor>> {
    this.#checkOpen('getAll');
    const [names, handles] = await this.#native.getAll(options.dtype ?? null, options.device ?? null);
    return new Map(names.map((name, i) => [name, new Tensor(handles[i])]));
  }

  /** Releases the file. Idempotent; tensors already handed out stay valid (they keep their own maps). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#native.close();
  }

  #checkOpen(what: string): void {
    if (this.#closed) fail('ERR_DISPOSED', `TensorFile.${what}: ${this.path} was closed; open it again`);
  }

  #missing(name: string): never {
    const some = this.names.slice(0, 3).join(', ');
    fail('ERR_CHECKPOINT_MISSING', `${this.path} has no tensor named '${name}' (it has ${this.names.length}` +
      `${some ? `: ${some}${this.names.length > 3 ? ', …' : ''}` : ''})`);
  }
}

/**
 * Writes tensors to a .pth (loadable by torch.load, weights_only=True included, bit-exact) or a .safetensors
 * file, atomically: a crash mid-write leaves any previous file at `path` intact.
 */
/** The signature of saveTensors, for code that accepts another tensor writer (tests). */
export type SaveTensorsFn = typeof saveTensors;

export async function saveTensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>,
  options: SaveOptions = {}): Promise<void> {
  if (typeof path !== 'string' || !path) fail('ERR_ARG', `saveTensors: expected a file path, got ${String(path)}`);
  const format = options.format ?? (path.endsWith('.safetensors') ? 'safetensors' : 'pth');
  if (!FORMATS.includes(format)) fail('ERR_ARG', `saveTensors: format must be 'pth' or 'safetensors', got '${String(format)}'`);
  if (options.wrap !== undefined && options.wrap !== 'model') {
    fail('ERR_ARG', `saveTensors: wrap must be 'model' or left out, got '${String(options.wrap)}'`);
  }
  if (options.wrap && format !== 'pth') fail('ERR_ARG', "saveTensors: wrap: 'model' applies to the pth format only");
  if (options.metadata !== undefined) {
    if (format !== 'safetensors') fail('ERR_ARG', 'saveTensors: metadata applies to the safetensors format only');
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') fail('ERR_ARG', `saveTensors: metadata['${k}'] must be a string, got ${typeof v}`);
    }
  }
  if (tensors === null || typeof tensors !== 'object') fail('ERR_ARG', 'saveTensors: expected a Map or a record of name → Tensor');
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const names: string[] = [];
  const handles: NativeTensor[] = [];
  for (const [name, tensor] of entries) {
    if (typeof name !== 'string' || !name) fail('ERR_ARG', 'saveTensors: tensor names must be non-empty strings');
    if (!(tensor instanceof Tensor)) fail('ERR_TYPE', `saveTensors: '${name}' is not a Tensor`);
    names.push(name);
    handles.push(tensor.handle);
  }
  await binding().saveTensors(resolve(path), names, handles, format, options.wrap ?? null,
    options.metadata ?? null);
}

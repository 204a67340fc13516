// Tensor: a handle on a libtorch tensor. Data stays in native memory; JS sees shape, dtype and device,
// and copies values out only through `await t.data()`. dispose() frees now; the GC frees what is forgotten.
import { binding, type NativeTensor } from './binding.js';
import { fail, LitloraError } from './errors.js';

export type Dtype = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int8' | 'uint8' | 'int16' | 'int32' | 'int64' | 'bool';

const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  float64: 8, int64: 8, float32: 4, int32: 4, bfloat16: 2, float16: 2, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** Bytes per element of a dtype (sizes of files and tensors without touching them). */
export function dtypeBytes(dtype: Dtype): number {
  return DTYPE_BYTES[dtype];
}
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array | Int8Array | Uint8Array | Int16Array;

export interface TensorOptions {
  /** Defaults to the typed array's own type (float32 for Float32Array, int64 for BigInt64Array, …). */
  dtype?: Dtype;
  device?: Device;
}

const DEFAULT_DTYPE = new Map<Function, Dtype>([
  [Float32Array, 'float32'], [Float64Array, 'float64'], [Int32Array, 'int32'], [BigInt64Array, 'int64'],
  [Int8Array, 'int8'], [Uint8Array, 'uint8'], [Int16Array, 'int16'],
]);

export class Tensor {
  #native: NativeTensor;

  /** @internal Use Tensor.from or an op's result. */
  constructor(handle: NativeTensor) {
    this.#native = handle;
  }

  /**
   * A new tensor holding a copy of `data`. bfloat16 / float16 come from a Float32Array (rounded to nearest
   * even) or from a Uint16Array of raw bit patterns.
   */
  static from(data: TensorData, shape: readonly number[], options: TensorOptions = {}): Tensor {
    if (!ArrayBuffer.isView(data)) fail('ERR_TYPE', `Tensor.from: expected a typed array, got ${typeof data}`);
    let dtype = options.dtype ?? DEFAULT_DTYPE.get(data.constructor);
    if (!dtype) {
      fail('ERR_DTYPE', `Tensor.from: a ${data.constructor.name} needs an explicit dtype ('bfloat16' or 'float16' for raw bits)`);
    }
    return new Tensor(binding().NativeTensor.fromArray(data, [...shape], dtype, options.device ?? 'cpu'));
  }

  get shape(): number[] { return this.#native.shape; }
  get dtype(): Dtype { return this.#native.dtype as Dtype; }
  get device(): Device { return this.#native.device as Device; }
  get disposed(): boolean { return this.#native.disposed; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }

  /** A converted copy; this tensor is unchanged. */
  async to(options: TensorOptions): Promise<Tensor> {
    return new Tensor(await this.#native.to(options.dtype ?? null, options.device ?? null));
  }

  /**
   * The values as a typed array (a copy): float32, bfloat16 and float16 as Float32Array (or, with raw,
   * bfloat16/float16 as Uint16Array bits), float64 as Float64Array, int64 as BigInt64Array, bool as Uint8Array.
   */
  async data(options: { raw?: boolean } = {}): Promise<TensorData> {
    return (await this.#native.data(options.raw ?? false)) as TensorData;
  }

  /** Frees the tensor's memory now. Idempotent; any later use throws ERR_DISPOSED. */
  dispose(): void {
    this.#native.dispose();
  }

  /** @internal The native handle, for other litlora modules. */
  get handle(): NativeTensor {
    if (this.#native.disposed) throw new LitloraError('ERR_DISPOSED', 'the tensor was disposed; it can no longer be used');
    return this.#native;
  }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}

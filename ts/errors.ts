// Errors thrown by litlora carry a stable `code` (ERR_SHAPE, ERR_DTYPE, ERR_DEVICE, ERR_DISPOSED, …) so that
// callers can branch on it; messages say what was expected, what was got, and what to do.
export type ErrorCode =
  | 'ERR_TORCH' | 'ERR_SHAPE' | 'ERR_DTYPE' | 'ERR_DEVICE' | 'ERR_DISPOSED' | 'ERR_BUSY' | 'ERR_TYPE'
  | 'ERR_RANGE' | 'ERR_CHECKPOINT_FORMAT' | 'ERR_CHECKPOINT_MISSING' | 'ERR_CONFIG' | 'ERR_DATA'
  | 'ERR_CUDA_OOM' | 'ERR_OOM' | 'ERR_LOAD' | 'ERR_ARG' | 'ERR_IO' | 'ERR_NONFINITE'
  | 'ERR_EXISTS' | 'ERR_QUEUE_FULL' | 'ERR_ADAPTER_MISMATCH' | 'ERR_ADAPTER_NOT_FOUND'
  | 'ERR_HUB_AUTH' | 'ERR_HUB_NOT_FOUND' | 'ERR_HUB_INTEGRITY' | 'ERR_NETWORK'
  | 'ERR_TOOLCHAIN' | 'ERR_LIBTORCH_DOWNLOAD' | 'ERR_LIBTORCH_INTEGRITY'
  | 'ERR_DISTRIBUTED' | 'ERR_DISTRIBUTED_UNAVAILABLE' | 'ERR_GGUF_UNSUPPORTED';

export class LitloraError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'LitloraError';
    this.code = code;
  }
}

export function fail(code: ErrorCode, message: string): never {
  throw new LitloraError(code, message);
}

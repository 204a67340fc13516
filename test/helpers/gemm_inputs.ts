// The GEMM test/01.native.mkl checks: x (m × k) · wᵀ (w: n × k), float32 values from a formula that numpy
// reproduces (sin(i · 0.618) / 10 and cos(i · 0.377) / 10, rounded to float32).
export function gemmInputs(): { x: Float32Array; w: Float32Array; m: number; k: number; n: number } {
  const m = 256, k = 384, n = 320;
  const x = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.618) / 10);
  const w = Float32Array.from({ length: n * k }, (_, i) => Math.cos(i * 0.377) / 10);
  return { x, w, m, k, n };
}

export const GEMM_INPUTS_NUMPY = `
m, k, n = 256, 384, 320
x = (np.sin(np.arange(m * k) * 0.618) / 10).astype(np.float32).reshape(m, k)
w = (np.cos(np.arange(n * k) * 0.377) / 10).astype(np.float32).reshape(n, k)
`;

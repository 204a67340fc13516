// x·Wᵀ + b for one row of x, or a few, on the CPU: the shape of every linear layer while decoding (one row at
// batch 1; one row per request in the batched decoder, core/batch_decode).
//
// At one row a linear layer is a matrix-vector product whose speed is the speed of streaming W from memory.
// MKL's sgemm/sgemv (what at::linear calls) reads a 50304 × 512 fp32 head at ~17 GB/s on the 2-core EPYC VMs
// litlora is measured on, where a plain sum over the same bytes runs at 45–51 GB/s. This kernel reads W once as
// a sequential stream, row by row (AVX2 FMA where the CPU has it), split across the intra-op threads. (Until the
// addon was built with OpenMP, at::parallel_for ran everything on the calling thread; using both cores raised
// batch-1 decoding another 1.3–1.4×.) The sums are those of any fp32 dot product in another order: results differ
// from MKL's by float32 rounding only.
// With a few rows, MKL's sgemm copies (packs) W for every call and reads it again per panel, which on that VM made
// a 16-row product of the head cost ~3× the one-row product; here W is read once, in blocks that stay in L1 while
// tiles of 3 rows of x by 4 rows of W multiply them, and every row gets the same bits it gets alone (so batching
// never changes a greedy decode).
#pragma once

#include <ATen/ATen.h>

namespace litlora::row_linear {

// The most rows of x `rowLinear` takes; beyond it, the product is compute-bound and sgemm's blocking wins.
constexpr int64_t kMaxRows = 16;

// True when `rowLinear` handles this call: no autograd, CPU float32, contiguous W (out, in) and bias, and x
// holding 1 to kMaxRows rows of `in` values (any leading shape).
bool applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// x·Wᵀ + b with x's leading shape, for the calls `applies` accepts.
at::Tensor rowLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// rowLinear where it applies, at::linear otherwise.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace litlora::row_linear

// The rank-r half of a LoRA backward on the CPU, in one pass over x and gradY: x·Aᵀ, gradY·B, gradA and gradB.
//
// gradA = s·(gradY·B)ᵀ·x and gradB = s·gradYᵀ·(x·Aᵀ) take four GEMMs with one side r wide. Through MKL each is
// its own pass over a (tokens × in) or (tokens × out) operand: for r = 8 at 4096 tokens × 2048 they took
// 2.8–3.7 ms each on the 2-core EPYC VM (11–13 GB/s), 12 ms together, 3.6 % of the two dense GEMMs a LoRA step
// cannot avoid. Here the tokens go in blocks that fit in L2: a block's rows of x and gradY come from memory
// once, give their rows of x·Aᵀ and gradY·B, and are accumulated into gradA and gradB while still in cache.
// Each intra-op thread takes a contiguous run of blocks and sums into its own gradA/gradB, added up at the end.
// The sums are the same products in another order: results differ from MKL's by float32 rounding only.
#pragma once

#include <ATen/ATen.h>

namespace litlora::lora_lowrank {

struct Grads {
  at::Tensor gradA;         // (r, in)  = s·(gradY·B)ᵀ·x
  at::Tensor gradB;         // (out, r) = s·gradYᵀ·(x·Aᵀ)
  at::Tensor scaledGradYB;  // (N, r)   = s·gradY·B, the input of gradX's LoRA term
};

// Up to this rank the pass beats MKL's four GEMMs (4096 tokens, 2048→2048 on the EPYC VM: 4.7 against 12.7 ms at
// r = 8, 8.3 against 13.3 ms at r = 16); at r = 64 the GEMMs are compute-bound and MKL's are as fast or faster
// (28 against 29 ms at 2048→2048, 75 against 72 ms at 2048→8192).
constexpr int64_t kMaxRank = 32;

// True when `grads` takes these operands: CPU float32, x (N, in) and gradY (N, out) contiguous, A (r, in) and
// B (out, r) with r <= kMaxRank, and a CPU with AVX2 + FMA.
bool applies(const at::Tensor& x, const at::Tensor& gradY, const at::Tensor& A, const at::Tensor& B);

Grads grads(const at::Tensor& x, const at::Tensor& gradY, const at::Tensor& A, const at::Tensor& B, double scaling);

// The merged weight W + s·B·A that the merged path's GEMMs use, in one pass over W: ATen's addmm_out copies W into
// the output and then runs the rank-r GEMM over it with beta = 1, two passes (1.8 ms for 2048 × 2048 at r = 8 on
// the EPYC VM, against 0.7–1.1 ms here). The rank-r sum is formed in fp32 and added to W once, as addmm does. Up to
// r = 16 (even with MKL there; at r = 64 MKL's GEMM is faster). mergeApplies: CPU float32, W contiguous, A (r, in),
// B (out, r), r <= kMaxMergeRank, AVX2 + FMA. `out` is a contiguous float32 tensor of W's shape.
constexpr int64_t kMaxMergeRank = 16;
bool mergeApplies(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B);
void mergeInto(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, double scaling, at::Tensor& out);

}  // namespace litlora::lora_lowrank

// LoRA linear ops over libtorch: forward, hand-derived backward, merge / unmerge, fused-QKV zero-pad
// semantics (litgpt's LoRAQKVLinear, both row layouts) and an autograd function for the GPT model.
// Conventions are litgpt's: weight W (out, in), lora_A (r, in), lora_B (out, r), scaling = alpha / r,
//   y = x·Wᵀ + b + scaling·(dropout(x)·Aᵀ)·Bᵀ.
//
// dtype rule. x, weight and bias share one dtype (fp32, fp64, bf16 or fp16): the compute dtype. A and B share
// one dtype: the weight's, or float32 next to a bf16/fp16 weight ("mixed", litgpt's *-mixed training). In the
// mixed case the adapters are cast to the compute dtype for the forward and backward GEMMs (what torch.autocast
// does for litgpt's bf16-mixed: GEMMs in bf16 with fp32 accumulation) and gradA/gradB come back in float32.
// Merge and unmerge compute in float32 for 16-bit weights and in float64 for fp32/fp64 weights, and round once.
//
// Pure libtorch: no N-API here. Bad input throws litlora::Error with ERR_SHAPE / ERR_DTYPE / ERR_DEVICE /
// ERR_RANGE / ERR_ARG and a message naming the argument, what was expected and what was got.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace litlora::lora {

// litgpt's fused q/k/v projection: weight rows are (nHead + 2·nQueryGroups)·headSize; enable says which of
// q, k, v carry LoRA. A is (r·N, in) and B is (Σ enabled part sizes, r) with N = number of enabled parts.
// interleaved = the per-group [q…q k v] rows of litgpt <= 0.5.4 (`attn.attn`); false = [Q|K|V] (`attn.qkv`).
struct QkvSpec {
  int64_t nHead = 0, nQueryGroups = 0, headSize = 0;
  bool enable[3] = {false, false, false};
  bool interleaved = false;
};

struct Options {
  double scaling = 1.0;
  double dropout = 0.0;   // probability of zeroing an input of the LoRA branch; only in training mode
  bool training = false;
  uint64_t seed = 0;      // dropout mask seed: the same seed gives the same mask (forward and backward)
  std::optional<QkvSpec> qkv;
};

// y (..., out) for x (..., in). bias may be undefined.
at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                   const at::Tensor& B, const Options& options, const at::Tensor& mask = {});

struct Grads {
  at::Tensor gradX, gradA, gradB;
};
// Gradients of forward w.r.t. x, A and B (weight and bias are frozen) for gradY (..., out). With dropout in
// training mode it regenerates the forward's mask from options.seed. wantGradX = false leaves gradX undefined
// and skips its GEMM (autograd passes it when x does not require grad). forward and backward take the dropout
// mask ready-made when the caller has it (dropoutMask(x as (N, in), dropout, seed): the one they would draw).
Grads backward(const at::Tensor& gradY, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& A,
               const at::Tensor& B, const Options& options, bool wantGradX = true, const at::Tensor& mask = {});

// W + scaling·zero_pad(B·A) (merge) or W − scaling·zero_pad(B·A) (unmerge), rounded once to W's dtype. With
// inPlace the result is written into weight and weight is returned; otherwise weight is unchanged.
// Only scaling and qkv of options are used.
at::Tensor merge(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& options,
                 bool inPlace);
at::Tensor unmerge(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& options,
                   bool inPlace);
// Rows [row0, row0 + out.size(0)) of merge(weight, ...) written into `out` (contiguous, the weight's dtype) with
// merge's arithmetic, so the rows equal merge's bit for bit; weight is only read. `scratch` holds ΔW between
// calls (allocated or grown here), so a caller that streams a large weight block by block allocates it once.
void mergeRows(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& options, int64_t row0,
               at::Tensor& out, at::Tensor& scratch);

// forward as a torch::autograd::Function: differentiable w.r.t. x, A and B; weight and bias must not require
// grad. With dropout in training mode each call draws a fresh mask: its seed is options.seed mixed with a
// process-wide call counter, and the backward reuses that call's mask.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                  const at::Tensor& B, const Options& options);

// ---- exposed for tests and benchmarks ----

// The scaled keep-mask dropout(x) multiplies x by: values 0 or 1/(1−p), in x's dtype and device.
at::Tensor dropoutMask(const at::Tensor& like, double p, uint64_t seed);

// One contiguous run of rows: packed B rows [bRow, bRow+rows) of part `part` (A rows [part·r, (part+1)·r))
// land on weight rows [outRow, outRow+rows). A plain LoRA linear is one segment.
struct Segment {
  int64_t part, bRow, outRow, rows;
};
// litgpt's lora_ind as segments (validated spec; out = weight rows).
std::vector<Segment> qkvSegments(const QkvSpec& spec);

// Which path forward/backward take when dropout is off: the skinny pair of GEMMs over all tokens, or the
// merged weight W + s·BA built once (fp32/fp64 weights only). Chosen by a cost model; overridable for tests
// and benchmarks through LITLORA_LORA_PATH=skinny|merged.
enum class Path { Skinny, Merged };
Path choosePath(int64_t tokens, int64_t in, int64_t out, int64_t r, int64_t parts, at::ScalarType dtype,
                bool dropoutActive);
// The same choice for the backward's gradX = gradY·W + s·(gradY·B)·A, whose costs differ: gradY·B is computed
// anyway, and the skinny term touches gradX (N × in) rather than the output (N × out).
Path chooseGradXPath(int64_t tokens, int64_t in, int64_t out, int64_t r, int64_t parts, at::ScalarType dtype,
                     bool dropoutActive);

// linear with options.seed used as given (no per-call draw): the autograd path, testable against a reference.
at::Tensor linearWithSeed(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                          const at::Tensor& B, const Options& options);

// Gradients w.r.t. (x, A, B) by libtorch autograd: through linearWithSeed (viaLinear) or through the same math
// composed from plain differentiable ATen ops (the reference).
Grads referenceGrads(const at::Tensor& gradY, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     const at::Tensor& A, const at::Tensor& B, const Options& options, bool viaLinear);

// The dense floor of a LoRA linear's forward+backward, x·Wᵀ and gradY·W, for benchmarks.
void denseFloor(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& gradY);

// Blocks until queued work on device has finished (a no-op on CPU); for benchmarks.
void synchronize(const at::Device& device);

}  // namespace litlora::lora

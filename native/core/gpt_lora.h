// The GPT's view of LoRA: one function for a LoRA linear layer's forward (`loraLinear`), the merge delta
// (`mergeLora`) and the fused-QKV row bookkeeping, including litgpt's two QKV layouts.
//
// litgpt packs the enabled q/k/v parts of a fused QKV layer into lora_A (r·N × in, N parts of r rows)
// and lora_B (Σ part sizes × r); part i's update is B_i·A_i and its rows land at `rowIndex` in the
// output. One index describes every case:
//   * current layout ([Q|K|V], litgpt ≥ 0.5.5): rowIndex = litgpt's lora_ind;
//   * files from litgpt ≤ 0.5.4 (interleaved rows) with some parts off: after re-laying the base weight
//     out to [Q|K|V], the rows land exactly where the current lora_ind puts them (heads keep their order);
//   * those files with q, k and v all on: litgpt added the packed [ΔQ;ΔK;ΔV] rows to the *interleaved*
//     rows in storage order (no scatter), so after re-layout packed row j lands on the row that interleaved
//     row j moved to — a permutation that the current naming cannot express ("legacy quirk").
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace litlora::gpt {

struct QkvLoraLayout {
  int64_t nHead = 0, nQueryGroups = 0, headSize = 0;
  bool enable[3] = {false, false, false};
  std::vector<int64_t> partSizes;  // enabled parts, in q, k, v order
  std::vector<int64_t> rowIndex;   // output row (current layout) of each packed lora_B row
  bool legacyQuirk = false;        // rowIndex came from an all-enabled interleaved-era file (see above)

  int64_t outFeatures() const { return (nHead + 2 * nQueryGroups) * headSize; }
  int64_t nParts() const { return static_cast<int64_t>(partSizes.size()); }
};

// The layout for the current [Q|K|V] rows (litgpt's lora_ind, litgpt/lora.py era C).
QkvLoraLayout qkvLoraLayout(int64_t nHead, int64_t nQueryGroups, int64_t headSize, const bool enable[3]);

// The layout an interleaved-era (≤ 0.5.4) adapter has once its base weight is re-laid out to [Q|K|V].
QkvLoraLayout legacyQkvLoraLayout(int64_t nHead, int64_t nQueryGroups, int64_t headSize, const bool enable[3]);

// litgpt's qkv_reassemble: interleaved per-group [q…q k v] rows → [Q|K|V] rows (dim 0 of a weight or bias).
at::Tensor qkvReassemble(const at::Tensor& interleaved, int64_t nHead, int64_t nQueryGroups, int64_t headSize);

struct LoraCall {
  double scaling = 1.0;
  double dropout = 0.0;
  bool training = false;
  const QkvLoraLayout* qkv = nullptr;  // fused QKV layer, or null for a plain linear
};

// y = x·Wᵀ + b + scaling · place(dropout(x)·Aᵀ·B_partsᵀ), through the LoRA ops (lora.h: lora::linear) —
// except for a legacy all-enabled QKV adapter, which they cannot place. Differentiable w.r.t. x, A and B;
// weight and bias are frozen. A undefined → a plain linear.
at::Tensor loraLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                      const at::Tensor& B, const LoraCall& call);

// The packed lora_B of a fused QKV layer spread to its output rows: (out × r·N), zeros elsewhere, so that
// a·placedᵀ (a = x·Aᵀ) is the layer's whole update.
at::Tensor placedLoraB(const at::Tensor& B, const QkvLoraLayout& qkv, int64_t r);

// W ± scaling · place(B_parts·A_parts), rounded once to W's dtype (lora::merge / lora::unmerge). With inPlace the
// result is written into weight.
at::Tensor mergeLora(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const LoraCall& call, bool inPlace,
                     bool subtract);
// Rows [row0, row0 + out.size(0)) of mergeLora(weight, A, B, call, …) — the merge, not the unmerge — written into
// `out` bit for bit (lora::mergeRows; `scratch` is its reusable ΔW), for writers that stream a weight in blocks.
// Not for litgpt's legacy all-parts QKV quirk (call.qkv->legacyQuirk), which merges whole weights only.
void mergeLoraRows(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const LoraCall& call, int64_t row0,
                   at::Tensor& out, at::Tensor& scratch);

}  // namespace litlora::gpt

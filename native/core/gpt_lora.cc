#include "gpt_lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "compat.h"
#include "error.h"
#include "lora.h"

namespace litlora::gpt {

namespace {

std::vector<int64_t> enabledSizes(int64_t nHead, int64_t nQueryGroups, int64_t headSize, const bool enable[3]) {
  const int64_t sizes[3] = {nHead * headSize, nQueryGroups * headSize, nQueryGroups * headSize};
  std::vector<int64_t> out;
  for (int i = 0; i < 3; ++i)
    if (enable[i]) out.push_back(sizes[i]);
  return out;
}

// For each current-layout row, the interleaved row it came from (qkv_reassemble as an index map).
std::vector<int64_t> currentFromInterleaved(int64_t nHead, int64_t nQueryGroups, int64_t headSize) {
  const int64_t qPerKv = nHead / nQueryGroups, groupRows = (qPerKv + 2) * headSize;
  std::vector<int64_t> out;
  for (int64_t g = 0; g < nQueryGroups; ++g)
    for (int64_t i = 0; i < qPerKv * headSize; ++i) out.push_back(g * groupRows + i);
  for (int part = 0; part < 2; ++part)
    for (int64_t g = 0; g < nQueryGroups; ++g)
      for (int64_t i = 0; i < headSize; ++i) out.push_back(g * groupRows + (qPerKv + part) * headSize + i);
  return out;
}

// The packed lora_B (Σ sizes × r) spread into a block matrix (out × r·N): part i's rows keep only the
// columns of A's block i, and every packed row is placed at its output row. Zeros elsewhere.
at::Tensor placedB(const at::Tensor& B, const QkvLoraLayout& qkv, int64_t r) {
  const int64_t n = qkv.nParts();
  std::vector<at::Tensor> rows;
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t size = qkv.partSizes[i];
    at::Tensor part = B.narrow(0, offset, size);
    offset += size;
    std::vector<at::Tensor> cols;
    if (i > 0) cols.push_back(at::zeros({size, i * r}, B.options()));
    cols.push_back(part);
    if (i < n - 1) cols.push_back(at::zeros({size, (n - 1 - i) * r}, B.options()));
    rows.push_back(cols.size() == 1 ? part : at::cat(cols, 1));
  }
  at::Tensor packed = rows.size() == 1 ? rows[0] : at::cat(rows, 0);  // (Σ sizes, r·N)
  const int64_t out = qkv.outFeatures();
  bool identity = static_cast<int64_t>(qkv.rowIndex.size()) == out;
  for (int64_t j = 0; identity && j < out; ++j) identity = qkv.rowIndex[j] == j;
  if (identity) return packed;
  at::Tensor index = at::tensor(qkv.rowIndex, at::TensorOptions().dtype(at::kLong)).to(B.device());
  return at::zeros({out, r * n}, B.options()).index_copy(0, index, packed);
}

}  // namespace

QkvLoraLayout qkvLoraLayout(int64_t nHead, int64_t nQueryGroups, int64_t headSize, const bool enable[3]) {
  QkvLoraLayout l;
  l.nHead = nHead;
  l.nQueryGroups = nQueryGroups;
  l.headSize = headSize;
  for (int i = 0; i < 3; ++i) l.enable[i] = enable[i];
  l.partSizes = enabledSizes(nHead, nQueryGroups, headSize, enable);
  const int64_t starts[3] = {0, nHead * headSize, (nHead + nQueryGroups) * headSize};
  const int64_t sizes[3] = {nHead * headSize, nQueryGroups * headSize, nQueryGroups * headSize};
  for (int i = 0; i < 3; ++i)
    if (enable[i])
      for (int64_t k = 0; k < sizes[i]; ++k) l.rowIndex.push_back(starts[i] + k);
  return l;
}

QkvLoraLayout legacyQkvLoraLayout(int64_t nHead, int64_t nQueryGroups, int64_t headSize, const bool enable[3]) {
  QkvLoraLayout l = qkvLoraLayout(nHead, nQueryGroups, headSize, enable);
  const int64_t qPerKv = nHead / nQueryGroups, period = qPerKv + 2;
  const int64_t out = l.outFeatures();
  // Where each packed row went in the interleaved era: litgpt B's lora_ind, or storage order when all are on.
  std::vector<int64_t> interleavedRows;
  if (enable[0] && enable[1] && enable[2]) {
    for (int64_t x = 0; x < out; ++x) interleavedRows.push_back(x);
  } else {
    for (int part = 0; part < 3; ++part) {
      if (!enable[part]) continue;
      for (int64_t x = 0; x < out; ++x) {
        const int64_t slot = (x / headSize) % period;
        const int which = slot < qPerKv ? 0 : (slot == qPerKv ? 1 : 2);
        if (which == part) interleavedRows.push_back(x);
      }
    }
  }
  // …and where that interleaved row lives after re-layout.
  const std::vector<int64_t> fromInterleaved = currentFromInterleaved(nHead, nQueryGroups, headSize);
  std::vector<int64_t> toCurrent(out);
  for (int64_t i = 0; i < out; ++i) toCurrent[fromInterleaved[i]] = i;
  std::vector<int64_t> rows;
  for (int64_t x : interleavedRows) rows.push_back(toCurrent[x]);
  l.legacyQuirk = rows != l.rowIndex;
  l.rowIndex = std::move(rows);
  return l;
}

at::Tensor qkvReassemble(const at::Tensor& interleaved, int64_t nHead, int64_t nQueryGroups, int64_t headSize) {
  const int64_t out = (nHead + 2 * nQueryGroups) * headSize;
  LITLORA_CHECK(interleaved.dim() >= 1 && interleaved.size(0) == out, "ERR_SHAPE",
                "qkv_reassemble: expected " << out << " rows, got " << shapeString(interleaved.sizes()));
  auto index = currentFromInterleaved(nHead, nQueryGroups, headSize);
  return interleaved.index_select(0, at::tensor(index, at::kLong).to(interleaved.device()));
}

namespace {

// The LoRA ops' options for a call; the fused QKV spec only for layouts the ops know ([Q|K|V] rows).
lora::Options opsOptions(const LoraCall& call) {
  lora::Options o;
  o.scaling = call.scaling;
  o.dropout = call.dropout;
  o.training = call.training;
  if (call.qkv) {
    lora::QkvSpec spec;
    spec.nHead = call.qkv->nHead;
    spec.nQueryGroups = call.qkv->nQueryGroups;
    spec.headSize = call.qkv->headSize;
    for (int i = 0; i < 3; ++i) spec.enable[i] = call.qkv->enable[i];
    spec.interleaved = false;
    o.qkv = spec;
  }
  return o;
}

// Under autocast (the trainer's bf16-mixed) the GEMMs must go through the dispatcher's autocast casts, which
// the LoRA ops' own dtype rule does not take part in; plain ATen ops do.
bool autocastOn(const at::Tensor& x) { return compat::autocastEnabled(x.device().type()); }

bool opsCanDo(const LoraCall& call, const at::Tensor& x) { return !(call.qkv && call.qkv->legacyQuirk) && !autocastOn(x); }

// A dropout-mask seed from libtorch's default CPU generator, so that seeding it (and saving / restoring its
// state, as the trainer's resume does) makes the LoRA dropout masks reproducible.
uint64_t drawSeed() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

}  // namespace

at::Tensor loraLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                      const at::Tensor& B, const LoraCall& call) {
  if (!A.defined()) return at::linear(x, weight, bias);
  if (opsCanDo(call, x)) {
    // lora::linear is a C++ autograd Function, whose inputs must all be defined tensors: a bias-free layer
    // passes zeros (x·Wᵀ + 0 is exact).
    at::Tensor b = bias.defined() ? bias : at::zeros({weight.size(0)}, weight.options());
    lora::Options o = opsOptions(call);
    if (!(call.training && call.dropout > 0)) return lora::linearWithSeed(x, weight, b, A, B, o);
    o.seed = drawSeed();
    return lora::linearWithSeed(x, weight, b, A, B, o);
  }
  // Under autocast, or for a legacy all-enabled adapter whose packed rows go to a permutation of the output
  // rows (which the ops' layouts do not describe): plain differentiable ATen ops.
  at::Tensor y = at::linear(x, weight, bias);
  at::Tensor xd = call.training && call.dropout > 0 ? at::dropout(x, call.dropout, true) : x;
  at::Tensor a = at::linear(xd, A);  // (…, r·N)
  at::Tensor placed = call.qkv ? placedB(B, *call.qkv, A.size(0) / call.qkv->nParts()) : B;
  auto shape = y.sizes().vec();
  at::Tensor out = at::addmm(y.reshape({-1, y.size(-1)}), a.reshape({-1, a.size(-1)}), placed.t(), 1.0, call.scaling);
  return out.view(shape);
}

at::Tensor placedLoraB(const at::Tensor& B, const QkvLoraLayout& qkv, int64_t r) { return placedB(B, qkv, r); }

at::Tensor mergeLora(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const LoraCall& call, bool inPlace,
                     bool subtract) {
  if (!(call.qkv && call.qkv->legacyQuirk)) {
    return subtract ? lora::unmerge(weight, A, B, opsOptions(call), inPlace) : lora::merge(weight, A, B, opsOptions(call), inPlace);
  }
  at::Tensor a = A.to(at::kDouble), b = B.to(at::kDouble);
  at::Tensor delta = at::mm(placedB(b, *call.qkv, a.size(0) / call.qkv->nParts()), a).mul_(subtract ? -call.scaling : call.scaling);
  at::Tensor result = (weight.to(at::kDouble) + delta).to(weight.scalar_type());
  if (!inPlace) return result;
  weight.copy_(result);
  return weight;
}

void mergeLoraRows(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const LoraCall& call, int64_t row0,
                   at::Tensor& out, at::Tensor& scratch) {
  LITLORA_CHECK(!(call.qkv && call.qkv->legacyQuirk), "ERR_ARG",
                "mergeLoraRows: litgpt's legacy QKV quirk merges whole weights only; use mergeLora");
  lora::mergeRows(weight, A, B, opsOptions(call), row0, out, scratch);
}

}  // namespace litlora::gpt

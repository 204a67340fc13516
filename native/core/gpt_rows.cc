// The GPT over many sequences at once (the batched decoder's forward, batch_decode.cc) and its runtime adapters.
//
// Every row has its own KV cache and position. The linear layers run over all rows together (that is where
// batching pays: one read of each weight for B rows); attention runs row by row against that row's cache with
// exactly the calls a batch-1 forward makes, so a row computes what it computes alone, up to the float32 rounding
// of a B-row matrix product against a one-row one.
//
// Runtime adapters (Punica / S-LoRA's per-row adapter index): each adapter's A and placed B sit beside the base
// weight of every layer it reaches; a batch adds adapter a's delta scaling·(x_g·Aᵀ)·Bᵀ to the rows g that named
// it, one small product per adapter present in the batch, however the rows are ordered.
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "decode_attention.h"
#include "error.h"
#include "gpt.h"
#include "lora_placement.h"

namespace litlora::gpt {

RowCache Gpt::newRowCache(int64_t maxLen) const {
  LITLORA_CHECK(maxLen >= 1 && maxLen <= config_.blockSize, "ERR_RANGE",
                "a sequence cache of " << maxLen << " positions does not fit the model's block_size " << config_.blockSize);
  RowCache cache;
  for (size_t i = 0; i < blocks_.size(); ++i) cache.layers.push_back(newLayerCache(i, 1, maxLen));
  cache.length = maxLen;
  return cache;
}

at::Tensor Gpt::forwardRows(const at::Tensor& tokens, const std::vector<Row>& rows, bool lastOnly, const std::vector<int64_t>& lengths) {
  at::NoGradGuard noGrad;
  LITLORA_CHECK(tokens.dim() == 2 && tokens.size(0) == static_cast<int64_t>(rows.size()), "ERR_SHAPE",
                "forwardRows: expected tokens (" << rows.size() << ", time), got " << shapeString(tokens.sizes()));
  const int64_t B = tokens.size(0), T = tokens.size(1);
  int64_t end = 0;
  for (const Row& r : rows) {
    LITLORA_CHECK(r.cache && r.position >= 0 && r.position + T <= r.cache->length, "ERR_RANGE",
                  "forwardRows: positions " << r.position << ".." << r.position + T - 1 << " do not fit the row's cache of "
                                            << (r.cache ? r.cache->length : 0) << " positions");
    LITLORA_CHECK(r.adapter < 0 || (r.adapter < static_cast<int64_t>(adapterNames_.size()) && !adapterNames_[r.adapter].empty()),
                  "ERR_ADAPTER_NOT_FOUND", "forwardRows: no adapter at index " << r.adapter);
    end = std::max(end, r.position + T);
  }
  LITLORA_CHECK(lengths.empty() || lengths.size() == rows.size(), "ERR_SHAPE",
                "forwardRows: " << lengths.size() << " lengths for " << rows.size() << " rows");
  for (int64_t n : lengths) LITLORA_CHECK(n >= 1 && n <= T, "ERR_RANGE", "forwardRows: a row length of " << n << " for " << T << " tokens");
  at::Tensor ids = checkedTokens(tokens, std::nullopt);
  ropeCache(end);
  // Row b's rope rows are its own positions: (B, 1, T, n), broadcast over the heads as (T, n) is for one row.
  std::vector<int64_t> positions;
  positions.reserve(B * T);
  for (const Row& r : rows)
    for (int64_t t = 0; t < T; ++t) positions.push_back(r.position + t);
  at::Tensor index = at::tensor(positions, at::kLong).to(cos_.device());
  at::Tensor cos = cos_.index_select(0, index).view({B, 1, T, -1}), sin = sin_.index_select(0, index).view({B, 1, T, -1});
  at::Tensor cosLocal = cosLocal_.defined() ? cosLocal_.index_select(0, index).view({B, 1, T, -1}) : cos;
  at::Tensor sinLocal = sinLocal_.defined() ? sinLocal_.index_select(0, index).view({B, 1, T, -1}) : sin;

  std::map<int64_t, std::vector<int64_t>> byAdapter;
  for (int64_t b = 0; b < B; ++b)
    if (rows[b].adapter >= 0) byAdapter[rows[b].adapter].push_back(b);
  adapterGroups_.clear();
  for (auto& [adapter, members] : byAdapter) {
    at::Tensor which = static_cast<int64_t>(members.size()) == B ? at::Tensor() : at::tensor(members, at::kLong).to(options_.device);
    adapterGroups_.push_back({adapter, which});
  }
  rows_ = &rows;
  struct Reset {
    Gpt* self;
    ~Reset() {
      self->rows_ = nullptr;
      self->adapterGroups_.clear();
    }
  } reset{this};

  at::Tensor x = at::embedding(wte_, ids);
  if (config_.scaleEmbeddings) x = x * at::scalar_tensor(std::sqrt(static_cast<double>(config_.nEmbd)), x.options());
  for (Block& b : blocks_) x = block(b, x, b.localRope ? cosLocal : cos, b.localRope ? sinLocal : sin, std::nullopt, false);
  at::Tensor h = norm(lnF_, x);
  if (lastOnly && !lengths.empty()) {
    std::vector<int64_t> last(B);
    for (int64_t b = 0; b < B; ++b) last[b] = b * T + lengths[b] - 1;
    h = h.reshape({B * T, -1}).index_select(0, at::tensor(last, at::kLong).to(h.device())).view({B, 1, -1});
  } else if (lastOnly) {
    h = h.narrow(1, h.size(1) - 1, 1);
  }
  return head(h);
}

// q (B, nh, T, hs), k and v (B, nqg, T, hs) after rope → y (B, T, nh·hs), each row against its own cache as
// Gpt::attention does for a batch of one.
at::Tensor Gpt::attendRows(Block& b, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const GptConfig& c = config_;
  const int64_t B = q.size(0), T = q.size(2), hs = c.headSize;
  const size_t layer = static_cast<size_t>(&b - blocks_.data());
  if (T == 1) {  // a decode step: every row's heads in one parallel loop (decode_attention.h)
    std::vector<decode_attention::Keys> keys;
    keys.reserve(B);
    for (int64_t r = 0; r < B; ++r) {
      const Row& row = (*rows_)[r];
      KvSpan kv = cacheAppend(b, row.cache->layers[layer], k.narrow(0, r, 1), v.narrow(0, r, 1), row.position);
      keys.push_back({kv.k, kv.v, kv.first});
    }
    if (decode_attention::applies(q, keys))
      return decode_attention::attend(q, keys, decodeOptions(b)).transpose(1, 2).reshape({B, T, c.nHead * hs});
    std::vector<at::Tensor> outputs;
    for (int64_t r = 0; r < B; ++r)
      outputs.push_back(attend(b, q.narrow(0, r, 1), {keys[r].k, keys[r].v, keys[r].first}, (*rows_)[r].position, /*cached=*/true));
    at::Tensor y = B == 1 ? outputs[0] : at::cat(outputs, 0);
    return y.transpose(1, 2).reshape({B, T, c.nHead * hs});
  }
  std::vector<at::Tensor> outputs;
  outputs.reserve(B);
  for (int64_t r = 0; r < B; ++r) {
    const Row& row = (*rows_)[r];
    const int64_t pos = row.position;
    KvSpan kv = cacheAppend(b, row.cache->layers[layer], k.narrow(0, r, 1), v.narrow(0, r, 1), pos);
    outputs.push_back(attend(b, q.narrow(0, r, 1), kv, pos, /*cached=*/true));
  }
  at::Tensor y = B == 1 ? outputs[0] : at::cat(outputs, 0);  // (B, nh, T, hs)
  return y.transpose(1, 2).reshape({B, T, c.nHead * hs});
}

// x's dim 0 is the batch row, or (tokenRows defined) a token of row tokenRows[i]: the MoE's router and experts see
// flattened, gathered tokens, so a group's tokens are those whose row is in the group.
at::Tensor Gpt::addRowAdapters(const LinearLayer& l, const at::Tensor& x, at::Tensor y, const at::Tensor& tokenRows) const {
  for (const AdapterGroup& g : adapterGroups_) {
    if (g.adapter >= static_cast<int64_t>(l.adapters.size())) continue;
    const AdapterLora& a = l.adapters[g.adapter];
    if (!a.A.defined()) continue;
    at::Tensor which = g.rows;
    if (which.defined() && tokenRows.defined()) {
      which = at::isin(tokenRows, g.rows).nonzero().squeeze(1);
      if (which.numel() == 0) continue;
    }
    at::Tensor xg = which.defined() ? x.index_select(0, which) : x;
    at::Tensor delta = at::linear(at::linear(xg, a.A), a.placedB).mul_(a.scaling);
    if (which.defined()) y.index_add_(0, which, delta);
    else y.add_(delta);
  }
  return y;
}

// ---- runtime adapters ----------------------------------------------------------------------------------

int64_t Gpt::addAdapter(const std::string& name, const LoraSettings& lora, const std::vector<NamedTensor>& entries) {
  at::NoGradGuard noGrad;
  LITLORA_CHECK(!name.empty(), "ERR_ARG", "adapters.add: the adapter needs a non-empty name");
  LITLORA_CHECK(!adapterIndex(name), "ERR_ARG",
                "adapters.add: an adapter named '" << name << "' is already loaded; remove it first or pick another name");
  GptConfig c = config_;
  c.lora = lora;
  const std::vector<LoraPlacement> places = loraPlacements(c);
  LITLORA_CHECK(!places.empty(), "ERR_ADAPTER_MISMATCH",
                "adapters.add: adapter '" << name << "' has no LoRA layers (lora_r " << lora.r << ", no target on)");
  std::map<std::string, const at::Tensor*> byName;
  for (const NamedTensor& e : entries) byName[e.name] = &e.tensor;

  std::map<std::string, LinearLayer*> layers;
  for (LinearLayer* l : linearLayers()) layers[l->path] = l;
  std::vector<std::pair<LinearLayer*, AdapterLora>> found;
  std::set<std::string> used;
  std::vector<std::string> problems;
  for (const LoraPlacement& place : places) {
    auto layer = layers.find(place.path);
    if (layer == layers.end()) {
      problems.push_back(place.path + " is not a layer of this model");
      continue;
    }
    const std::string aName = place.path + ".lora_A", bName = place.path + ".lora_B";
    auto a = byName.find(aName), b = byName.find(bName);
    if (a == byName.end() || b == byName.end()) {
      problems.push_back("missing " + (a == byName.end() ? aName : bName));
      continue;
    }
    used.insert(aName);
    used.insert(bName);
    const std::vector<int64_t> wantA{place.aRows(lora.r), place.in}, wantB{place.bRows(), lora.r};
    if (a->second->sizes().vec() != wantA || b->second->sizes().vec() != wantB) {
      problems.push_back(place.path + ": lora_A " + shapeString(a->second->sizes()) + ", lora_B " + shapeString(b->second->sizes()) +
                         " where this base with r " + std::to_string(lora.r) + " needs " + shapeString(wantA) + " and " +
                         shapeString(wantB));
      continue;
    }
    AdapterLora adapter;
    adapter.A = a->second->to(options_.device, options_.dtype).contiguous().clone();
    at::Tensor B = b->second->to(options_.device, options_.dtype);
    adapter.placedB = (place.qkv ? placedLoraB(B, *place.qkv, lora.r) : B).contiguous().clone();
    adapter.scaling = lora.scaling();
    found.push_back({layer->second, std::move(adapter)});
  }
  for (const NamedTensor& e : entries)
    if (!used.count(e.name)) problems.push_back("unexpected " + e.name);
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 6; ++i) list += (i ? "; " : "") + problems[i];
    if (problems.size() > 6) list += "; … (" + std::to_string(problems.size() - 6) + " more)";
    LITLORA_CHECK(false, "ERR_ADAPTER_MISMATCH", "adapters.add: adapter '" << name << "' does not fit this base model: " << list
                                                                   << ". Load an adapter trained on this base (same model config).");
  }
  int64_t index = 0;
  while (index < static_cast<int64_t>(adapterNames_.size()) && !adapterNames_[index].empty()) ++index;
  if (index == static_cast<int64_t>(adapterNames_.size())) adapterNames_.push_back("");
  for (auto& [layer, adapter] : found) {
    if (static_cast<int64_t>(layer->adapters.size()) <= index) layer->adapters.resize(index + 1);
    layer->adapters[index] = std::move(adapter);
  }
  adapterNames_[index] = name;
  return index;
}

void Gpt::removeAdapter(const std::string& name) {
  auto index = adapterIndex(name);
  LITLORA_CHECK(index, "ERR_ADAPTER_NOT_FOUND", "adapters.remove: no adapter named '" << name << "' is loaded");
  for (LinearLayer* l : linearLayers())
    if (static_cast<int64_t>(l->adapters.size()) > *index) l->adapters[*index] = AdapterLora{};
  adapterNames_[*index].clear();
}

std::optional<int64_t> Gpt::adapterIndex(const std::string& name) const {
  for (size_t i = 0; i < adapterNames_.size(); ++i)
    if (!name.empty() && adapterNames_[i] == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

std::vector<std::string> Gpt::adapterNames() const {
  std::vector<std::string> out;
  for (const std::string& n : adapterNames_)
    if (!n.empty()) out.push_back(n);
  return out;
}

}  // namespace litlora::gpt

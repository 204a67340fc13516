// The GPT's construction, initialisation and forward pass. State dicts, loading and merging live in
// gpt_state.cc; the fused head + cross-entropy in gpt_loss.cc.
#include "gpt.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <limits>
#include <map>

#include "error.h"
#include "gpt_loss.h"
#include "lora_placement.h"
#include "decode_attention.h"
#include "row_linear.h"

namespace litlora::gpt {

namespace {

at::TensorOptions paramOptions(const GptOptions& o) { return at::TensorOptions().dtype(o.dtype).device(o.device); }

LinearLayer makeLinear(const std::string& path, int64_t in, int64_t out, bool bias, const GptOptions& o) {
  LinearLayer l;
  l.path = path;
  l.weight = at::empty({out, in}, paramOptions(o));
  if (bias) l.bias = at::empty({out}, paramOptions(o));
  return l;
}

void addLora(LinearLayer& l, const LoraPlacement& place, const LoraSettings& s, const GptOptions& o) {
  LITLORA_CHECK(l.weight.size(0) == place.out && l.weight.size(1) == place.in, "ERR_CONFIG",
                place.path << ": LoRA placed on a [" << place.out << ", " << place.in << "] layer, but the layer is "
                           << shapeString(l.weight.sizes()));
  l.qkv = place.qkv;
  l.loraA = at::zeros({place.aRows(s.r), place.in}, paramOptions(o));
  l.loraB = at::zeros({place.bRows(), s.r}, paramOptions(o));
  l.scaling = s.scaling();
}

NormLayer makeNorm(const GptConfig& c, const GptOptions& o, int64_t size) {
  NormLayer n;
  n.weight = at::empty({size}, paramOptions(o));
  if (c.norm == NormKind::LayerNorm) n.bias = at::empty({size}, paramOptions(o));
  return n;
}

NormLayer makeNorm(const GptConfig& c, const GptOptions& o) { return makeNorm(c, o, c.nEmbd); }

}  // namespace

Gpt::Gpt(GptConfig config, GptOptions options) : config_(std::move(config)), options_(options) {
  const GptConfig& c = config_;
  at::NoGradGuard noGrad;
  lmHead_ = makeLinear("lm_head", c.nEmbd, c.paddedVocabSize, c.lmHeadBias, options_);
  wte_ = at::empty({c.paddedVocabSize, c.nEmbd}, paramOptions(options_));
  blocks_.resize(c.nLayer);
  for (int64_t i = 0; i < c.nLayer; ++i) {
    Block& b = blocks_[i];
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    if (c.norm1) b.norm1 = makeNorm(c, options_);
    b.qkv = makeLinear(p + "attn.qkv", c.nEmbd, c.qkvOutFeatures(), c.qkvHasBias(), options_);
    b.proj = makeLinear(p + "attn.proj", c.nHead * c.headSize, c.nEmbd, c.bias, options_);
    if (c.normQk != NormQk::None) {
      const bool full = c.normQk == NormQk::Full;
      b.normQ = makeNorm(c, options_, full ? c.nHead * c.headSize : c.headSize);
      b.normK = makeNorm(c, options_, full ? c.nQueryGroups * c.headSize : c.headSize);
    }
    if (c.postAttentionNorm) b.postAttentionNorm = makeNorm(c, options_);
    if (!c.sharedAttentionNorm && c.norm2) b.norm2 = makeNorm(c, options_);
    if (c.postMlpNorm) b.postMlpNorm = makeNorm(c, options_);
    b.slidingWindow = c.slidingWindowSize > 0 && c.slidingWindowLayers[i];
    b.localRope = c.ropeLocalBase > 0 && c.ropeLocalLayers[i];
    if (c.mlp == MlpKind::LLaMAMoE) {  // litgpt's LLaMAMoE: a bias-free router, experts as LLaMAMLP(moe_intermediate_size)
      b.gate = makeLinear(p + "mlp.gate", c.nEmbd, c.nExpert, false, options_);
      b.experts.resize(c.nExpert);
      for (int64_t e = 0; e < c.nExpert; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        b.experts[e].fc1 = makeLinear(x + "fc_1", c.nEmbd, c.moeIntermediateSize, c.bias, options_);
        b.experts[e].fc2 = makeLinear(x + "fc_2", c.nEmbd, c.moeIntermediateSize, c.bias, options_);
        b.experts[e].proj = makeLinear(x + "proj", c.moeIntermediateSize, c.nEmbd, c.bias, options_);
      }
      continue;
    }
    if (c.mlp == MlpKind::GptNeox) {
      b.fc1 = makeLinear(p + "mlp.fc", c.nEmbd, c.intermediateSize, c.bias, options_);
    } else {
      b.fc1 = makeLinear(p + "mlp.fc_1", c.nEmbd, c.intermediateSize, c.bias, options_);
      b.fc2 = makeLinear(p + "mlp.fc_2", c.nEmbd, c.intermediateSize, c.bias, options_);
    }
    b.mlpProj = makeLinear(p + "mlp.proj", c.intermediateSize, c.nEmbd, c.bias, options_);
  }
  lnF_ = makeNorm(c, options_);
  kvSlotsPeak_ = std::make_unique<std::atomic<int64_t>[]>(c.nLayer);
  for (int64_t i = 0; i < c.nLayer; ++i) kvSlotsPeak_[i].store(0);
  std::map<std::string, LinearLayer*> byPath;
  for (LinearLayer* l : linearLayers()) byPath[l->path] = l;
  for (const LoraPlacement& place : loraPlacements(c)) {
    auto it = byPath.find(place.path);
    LITLORA_CHECK(it != byPath.end(), "ERR_CONFIG", place.path << ": LoRA placed on a layer this model does not have");
    addLora(*it->second, place, c.lora, options_);
  }
  initialise(options_.seed.value_or(0), options_.seed.has_value());
  for (LinearLayer* l : linearLayers())
    if (l->hasLora()) {
      l->loraA.requires_grad_(true);
      l->loraB.requires_grad_(true);
    }
}

// litgpt's GPT._init_weights (N(0, 0.02) linears and embedding, zero biases), norms at their defaults (ones,
// zeros), LoRALinear.reset_parameters (A: kaiming_uniform_(a=√5) = U(±1/√fan_in), B: zeros). Values are drawn
// in float32 on the CPU from one seeded generator in state-dict order, so a seed gives the same model on
// every device and dtype.
void Gpt::initialise(uint64_t seed, bool base) {
  at::NoGradGuard noGrad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto fill = [&](at::Tensor& t, auto&& sample) {
    at::Tensor cpu = at::empty(t.sizes(), at::kFloat);
    sample(cpu);
    t.copy_(cpu);
  };
  if (base) {
    for (auto& [name, slot] : baseSlots()) {
      at::Tensor& t = *slot;
      const bool isBias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
      const bool isNorm = name.find("norm") != std::string::npos || name.find("ln_f") != std::string::npos;
      if (isNorm) isBias ? t.zero_() : t.fill_(1.0);
      else if (isBias) t.zero_();
      else fill(t, [&](at::Tensor& cpu) { cpu.normal_(0.0, 0.02, gen); });
    }
  }
  for (LinearLayer* l : linearLayers()) {
    if (!l->hasLora()) continue;
    const double bound = 1.0 / std::sqrt(static_cast<double>(l->loraA.size(1)));
    fill(l->loraA, [&](at::Tensor& cpu) { cpu.uniform_(-bound, bound, gen); });
    l->loraB.zero_();
  }
}

std::vector<LinearLayer*> Gpt::linearLayers() {
  std::vector<LinearLayer*> out{&lmHead_};
  for (Block& b : blocks_) {
    for (LinearLayer* l : {&b.qkv, &b.proj, &b.fc1, &b.fc2, &b.mlpProj, &b.gate})
      if (l->weight.defined()) out.push_back(l);
    for (Expert& e : b.experts)
      for (LinearLayer* l : {&e.fc1, &e.fc2, &e.proj}) out.push_back(l);
  }
  return out;
}

std::vector<const LinearLayer*> Gpt::linearLayers() const {
  std::vector<const LinearLayer*> out;
  for (LinearLayer* l : const_cast<Gpt*>(this)->linearLayers()) out.push_back(l);
  return out;
}

// ---- forward ----------------------------------------------------------------------------------------

// litgpt's build_rope_cache in float32: theta_i = 1/base^(2i/n) (optionally Llama-3 or linearly rescaled),
// positions / condense_ratio, idx_theta = outer(pos, theta).repeat(1, 2). With rope_local_base_freq, a second
// table with that base and no rescaling (litgpt stacks the two and picks one per layer by rope_indices).
void Gpt::ropeCache(int64_t length) {
  const int64_t n = config_.ropeNElem;
  if (cos_.defined() && cos_.size(0) >= length) return;
  length = std::min(config_.blockSize, std::max<int64_t>(length, cos_.defined() ? 2 * cos_.size(0) : 256));
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  auto thetaOf = [&](double base) {
    return at::reciprocal(at::pow(base, at::arange(0, n, 2, f32.dtype(at::kLong)).to(at::kFloat) / n));
  };
  at::Tensor positions = at::arange(length, f32.dtype(at::kLong)).to(at::kFloat) / config_.ropeCondenseRatio;
  if (config_.ropeLocalBase > 0) {
    at::Tensor idxTheta = at::outer(positions, thetaOf(config_.ropeLocalBase)).repeat({1, 2});
    cosLocal_ = at::cos(idxTheta).to(options_.device);
    sinLocal_ = at::sin(idxTheta).to(options_.device);
  }
  at::Tensor theta = thetaOf(config_.ropeBase);
  if (config_.ropeScaling == RopeScaling::Llama3) {
    at::Tensor wavelen = at::reciprocal(theta) * (2 * M_PI);
    at::Tensor ratio = at::reciprocal(wavelen) * config_.ropeOriginalMaxSeqLen;
    at::Tensor smooth = ((ratio - config_.ropeLowFreqFactor) / (config_.ropeHighFreqFactor - config_.ropeLowFreqFactor)).clamp(0.0, 1.0);
    theta = (1 - smooth) * (theta / config_.ropeFactor) + smooth * theta;
  } else if (config_.ropeScaling == RopeScaling::Linear) {
    theta = theta / config_.ropeFactor;
  }
  at::Tensor idxTheta = at::outer(positions, theta).repeat({1, 2});
  cos_ = at::cos(idxTheta).to(options_.device);
  sin_ = at::sin(idxTheta).to(options_.device);
}

at::Tensor Gpt::checkedTokens(const at::Tensor& tokens, std::optional<int64_t> inputPos) const {
  LITLORA_CHECK(tokens.dim() == 2, "ERR_SHAPE", "tokens: expected shape (batch, time), got " << shapeString(tokens.sizes()));
  LITLORA_CHECK(!at::isFloatingType(tokens.scalar_type()) && tokens.scalar_type() != at::kBool, "ERR_DTYPE",
                "tokens: expected integer ids");
  const int64_t t = tokens.size(1);
  LITLORA_CHECK(t >= 1, "ERR_SHAPE", "tokens: expected at least one position, got " << shapeString(tokens.sizes()));
  const int64_t end = inputPos.value_or(0) + t;
  LITLORA_CHECK(end <= config_.blockSize, "ERR_RANGE",
                "tokens: a sequence of " << end << " positions is longer than the model's block_size " << config_.blockSize
                                         << "; shorten the input (e.g. max_seq_length ≤ " << config_.blockSize << ")");
  if (tokens.numel() > 0) {
    const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    LITLORA_CHECK(lo >= 0 && hi < config_.paddedVocabSize, "ERR_RANGE",
                  "tokens: expected ids in [0, " << config_.paddedVocabSize << ") (the model's padded_vocab_size), got "
                                                 << (lo < 0 ? lo : hi) << "; was the text tokenized for another model?");
  }
  return tokens.to(options_.device, at::kLong);
}

at::Tensor Gpt::norm(const NormLayer& n, const at::Tensor& x) const {
  if (config_.norm == NormKind::LayerNorm) return at::layer_norm(x, {n.weight.size(0)}, n.weight, n.bias, config_.normEps);
  // litgpt's RMSNorm: in float32, x · rsqrt(mean(x²) + eps) · weight (or 1 + weight for Gemma), cast back.
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt((xf * xf).mean({-1}, true) + config_.normEps);
  at::Tensor w = n.weight.to(at::kFloat);
  if (config_.normUnitOffset) w = w + 1;
  return (normed * w).to(x.scalar_type());
}

at::Tensor Gpt::linear(const LinearLayer& l, const at::Tensor& x, bool training, const at::Tensor& tokenRows) const {
  at::Tensor y;
  if (!l.hasLora() || l.merged) {
    y = row_linear::linear(x, l.weight, l.bias);
  } else {
    LoraCall call;
    call.scaling = l.scaling;
    call.dropout = config_.lora.dropout;
    call.training = training;
    call.qkv = l.qkv ? &*l.qkv : nullptr;
    y = loraLinear(x, l.weight, l.bias, l.loraA, l.loraB, call);
  }
  if (adapterGroups_.empty() || l.adapters.empty()) return y;
  return addRowAdapters(l, x, std::move(y), tokenRows);
}

namespace {

// GPT-NeoX rotate-half on the first rope_n_elem channels: x·cos + cat(−x2, x1)·sin, back in x's dtype.
at::Tensor applyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t nElem) {
  if (nElem == 0) return x;
  at::Tensor head = nElem == x.size(-1) ? x : x.narrow(-1, 0, nElem);
  at::Tensor x1 = head.narrow(-1, 0, nElem / 2), x2 = head.narrow(-1, nElem / 2, nElem / 2);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  at::Tensor roped = (head * cos + rotated * sin).to(x.scalar_type());
  if (nElem == x.size(-1)) return roped;
  return at::cat({roped, x.narrow(-1, nElem, x.size(-1) - nElem)}, -1);
}

}  // namespace

at::Tensor Gpt::attention(Block& b, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                          std::optional<int64_t> inputPos, bool training) {
  const GptConfig& c = config_;
  const int64_t B = x.size(0), T = x.size(1), hs = c.headSize;
  at::Tensor qkv = linear(b.qkv, x, training);  // (B, T, (nh + 2·nqg)·hs)
  auto parts = qkv.split_with_sizes({c.nHead * hs, c.nQueryGroups * hs, c.nQueryGroups * hs}, -1);
  if (c.normQk == NormQk::Full) {  // OLMo 2: over all heads' channels, before the head split
    parts[0] = norm(b.normQ, parts[0]);
    parts[1] = norm(b.normK, parts[1]);
  }
  at::Tensor q = parts[0].view({B, T, c.nHead, hs}).transpose(1, 2);         // (B, nh, T, hs)
  at::Tensor k = parts[1].view({B, T, c.nQueryGroups, hs}).transpose(1, 2);  // (B, nqg, T, hs)
  at::Tensor v = parts[2].view({B, T, c.nQueryGroups, hs}).transpose(1, 2);
  if (c.normQk == NormQk::PerHead) {  // Qwen3: each head over head_size, before RoPE and the KV cache
    q = norm(b.normQ, q);
    k = norm(b.normK, k);
  }
  q = applyRope(q, cos, sin, c.ropeNElem);
  k = applyRope(k, cos, sin, c.ropeNElem);
  if (rows_) return linear(b.proj, attendRows(b, q, k, v), training);

  const int64_t start = inputPos.value_or(0);
  KvSpan kv{k, v, 0};
  if (inputPos) kv = cacheAppend(b, {b.cache.k.narrow(0, 0, B), b.cache.v.narrow(0, 0, B)}, k, v, start);
  if (inputPos && T == 1) {  // a decode step: the same kernel as the batched decoder's rows (decode_attention.h)
    std::vector<decode_attention::Keys> rows;
    for (int64_t r = 0; r < B; ++r) rows.push_back({kv.k.narrow(0, r, 1), kv.v.narrow(0, r, 1), kv.first});
    if (decode_attention::applies(q, rows))
      return linear(b.proj, decode_attention::attend(q, rows, decodeOptions(b)).transpose(1, 2).reshape({B, T, c.nHead * hs}), training);
  }
  at::Tensor y = attend(b, q, kv, start, inputPos.has_value());
  y = y.transpose(1, 2).reshape({B, T, c.nHead * hs});
  return linear(b.proj, y, training);
}

decode_attention::Options Gpt::decodeOptions(const Block& b) const {
  const GptConfig& c = config_;
  decode_attention::Options o;
  o.scale = 1.0 / std::sqrt(c.attentionScoresScalar.value_or(static_cast<double>(c.headSize)));
  o.softcap = c.attentionLogitSoftcapping;
  o.window = b.slidingWindow ? c.slidingWindowSize : 0;
  o.qPerKv = c.qPerKv();
  return o;
}

// The slots a layer's cache needs for a sequence of up to maxLen positions: a sliding layer never looks further
// back than its window, so it keeps only that many (litgpt's build_kv_cache: min(max_seq_length, window)).
int64_t Gpt::cacheSlots(const Block& b, int64_t maxLen) const {
  return b.slidingWindow ? std::min(maxLen, config_.slidingWindowSize) : maxLen;
}

KvCache Gpt::newLayerCache(size_t layer, int64_t batch, int64_t maxLen) const {
  const int64_t slots = cacheSlots(blocks_[layer], maxLen);
  int64_t peak = kvSlotsPeak_[layer].load();
  while (peak < slots && !kvSlotsPeak_[layer].compare_exchange_weak(peak, slots)) {
    // a failed exchange reloaded `peak`: retry only while ours is still the larger
  }
  const std::vector<int64_t> shape{batch, config_.nQueryGroups, slots, config_.headSize};
  return {at::zeros(shape, paramOptions(options_)), at::zeros(shape, paramOptions(options_))};
}

std::vector<int64_t> Gpt::kvCacheSlots() const {
  std::vector<int64_t> out(blocks_.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = kvSlotsPeak_[i].load();
  return out;
}

// While positions fit the slots (always, in a full layer), position p is slot p and the span is slots 0..start+T−1.
// Once a sliding layer's ring wraps, the span is the positions it still holds (the last `slots` before start),
// gathered into position order, then the new ones; the ring then keeps the last `slots` of those new positions.
// A prefill longer than the window so attends over all of its own keys, and the mask (Gpt::attend) limits each
// query to its window.
KvSpan Gpt::cacheAppend(const Block& b, const KvCache& cache, const at::Tensor& k, const at::Tensor& v, int64_t start) const {
  const int64_t slots = cache.k.size(2), T = k.size(2), end = start + T;
  if (end <= slots) {
    cache.k.narrow(2, start, T).copy_(k);
    cache.v.narrow(2, start, T).copy_(v);
    return {cache.k.narrow(2, 0, end), cache.v.narrow(2, 0, end), 0};
  }
  LITLORA_CHECK(b.slidingWindow, "ERR_RANGE",
                "KV cache: positions " << start << ".." << end - 1 << " do not fit the layer's cache of " << slots << " positions");
  auto longs = at::TensorOptions().dtype(at::kLong).device(cache.k.device());
  const int64_t first = std::max<int64_t>(0, start - slots);
  KvSpan span{k, v, start};
  if (first < start) {
    at::Tensor held = at::arange(first, start, longs).remainder(slots);
    span = {at::cat({cache.k.index_select(2, held), k}, 2), at::cat({cache.v.index_select(2, held), v}, 2), first};
  }
  const int64_t keep = std::min(T, slots);
  at::Tensor into = at::arange(end - keep, end, longs).remainder(slots);
  cache.k.index_copy_(2, into, k.narrow(2, T - keep, keep));
  cache.v.index_copy_(2, into, v.narrow(2, T - keep, keep));
  return span;
}

// q (B, nh, T, hs) at positions start.., against keys and values (B, nqg, ·, hs) at positions kv.first..start+T−1
// → (B, nh, T, hs). Query i (at start + i) sees keys j ≤ start + i, and in a sliding-window layer only the last
// slidingWindowSize of them. A plain causal forward needs no mask tensor, nor does a one-token decode step
// (`cached`, T = 1) whose window reaches back to position 0; softcapping computes the scores itself, so it always
// takes one. A span that starts after position 0 comes from a wrapped sliding-window ring, where start + T exceeds
// the window, so it always has a mask. Shared by the batch forward (Gpt::attention) and the per-row decode of
// continuous batching (Gpt::attendRows).
at::Tensor Gpt::attend(const Block& b, const at::Tensor& q, const KvSpan& kv, int64_t start, bool cached) const {
  const GptConfig& c = config_;
  const int64_t T = q.size(2);
  at::Tensor k = kv.k, v = kv.v;
  const bool windowed = b.slidingWindow && start + T > c.slidingWindowSize;
  const bool softcap = c.attentionLogitSoftcapping.has_value();
  at::Tensor mask;
  if (windowed || softcap || (start > 0 && T > 1)) {
    auto longs = at::TensorOptions().dtype(at::kLong).device(q.device());
    at::Tensor rows = at::arange(T, longs).unsqueeze(1) + start;
    at::Tensor cols = at::arange(kv.first, start + T, longs).unsqueeze(0);
    mask = cols.le(rows);
    if (b.slidingWindow) mask = mask.logical_and(rows - cols < c.slidingWindowSize);
  }
  if (c.nQueryGroups != c.nHead) {
    k = k.repeat_interleave(c.qPerKv(), 1);
    v = v.repeat_interleave(c.qPerKv(), 1);
  }
  const double scale = 1.0 / std::sqrt(c.attentionScoresScalar.value_or(static_cast<double>(c.headSize)));
  if (softcap) {  // litgpt: scores = q·kᵀ·scale, tanh-capped, masked, softmax in float32
    const double cap = *c.attentionLogitSoftcapping;
    at::Tensor scores = at::tanh(at::matmul(q, k.transpose(-2, -1)) * (scale / cap)) * cap;
    scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
    return at::matmul(at::softmax(scores, -1, at::kFloat).to(q.scalar_type()), v);
  }
  const bool causal = !mask.defined() && !(cached && T == 1);
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt, 0.0, causal, scale);
}

at::Tensor Gpt::mlp(Block& b, const at::Tensor& x, bool training) {
  if (config_.mlp == MlpKind::LLaMAMoE) return moe(b, x, training);
  const char* approx = config_.geluTanh ? "tanh" : "none";
  if (config_.mlp == MlpKind::GptNeox) return linear(b.mlpProj, at::gelu(linear(b.fc1, x, training), approx), training);
  at::Tensor a = linear(b.fc1, x, training), g = linear(b.fc2, x, training);
  at::Tensor act = config_.mlp == MlpKind::LLaMA ? at::silu(a) : at::gelu(a, approx);
  return linear(b.mlpProj, act * g, training);
}

// litgpt's LLaMAMoE.forward: router logits → top-k (at::topk, so ties pick what torch.topk picks) → softmax over
// those k logits in float32, cast back (× routed_scaling_factor); each token's output is Σ prob · expert(x) over its
// k experts, added in expert order as litgpt's loop adds them. Each expert runs once over the tokens routed to it
// (gathered, then index_add'ed back), never over all tokens. Differentiable (the gate's and experts' LoRA train).
at::Tensor Gpt::moe(Block& b, const at::Tensor& x, bool training) {
  const GptConfig& c = config_;
  const int64_t k = c.nExpertPerToken;
  at::Tensor flat = x.reshape({-1, x.size(-1)});  // (B·T, C)
  const auto longs = at::TensorOptions().dtype(at::kLong).device(flat.device());
  at::Tensor tokenRows;
  if (!adapterGroups_.empty()) tokenRows = at::arange(flat.size(0), longs).div(x.size(1), "floor");
  at::Tensor router = linear(b.gate, flat, training, tokenRows);  // (B·T, n_expert)
  auto [topLogits, indices] = at::topk(router, k);               // (B·T, k)
  at::Tensor probs = at::softmax(topLogits, 1, at::kFloat).to(flat.scalar_type());
  if (c.routedScalingFactor != 1.0) probs = probs * c.routedScalingFactor;
  // The (token, slot) pairs grouped by expert; within an expert the tokens ascend, as litgpt's torch.where gives them.
  at::Tensor expertOf = indices.reshape({-1});
  at::Tensor order = std::get<1>(at::sort(expertOf, /*stable=*/true, 0, false));
  at::Tensor tokenOf = order.div(k, "floor");
  at::Tensor weightOf = probs.reshape({-1}).index_select(0, order).unsqueeze(1);
  at::Tensor counts = at::bincount(expertOf, {}, c.nExpert).cpu();
  const int64_t* count = counts.data_ptr<int64_t>();
  at::Tensor y = at::zeros_like(flat);
  int64_t offset = 0;
  for (int64_t e = 0; e < c.nExpert; ++e) {
    const int64_t n = count[e];
    if (n == 0) continue;
    at::Tensor tokens = tokenOf.narrow(0, offset, n);
    at::Tensor weights = weightOf.narrow(0, offset, n);
    offset += n;
    at::Tensor xe = flat.index_select(0, tokens);
    at::Tensor rows = tokenRows.defined() ? tokenRows.index_select(0, tokens) : at::Tensor();
    Expert& ex = b.experts[e];
    at::Tensor h = at::silu(linear(ex.fc1, xe, training, rows)) * linear(ex.fc2, xe, training, rows);
    y.index_add_(0, tokens, (weights * linear(ex.proj, h, training, rows)).to(y.scalar_type()));
  }
  return y.view(x.sizes());
}

at::Tensor Gpt::block(Block& b, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                      std::optional<int64_t> inputPos, bool training) {
  // Gemma 2/3's post norms apply to each branch's output before it joins the residual; a norm the block does not
  // have (no post norm, or OLMo 2's norm_1 / norm_2 = false) is litgpt's nn.Identity.
  auto maybeNorm = [&](const NormLayer& n, const at::Tensor& y) { return n.weight.defined() ? norm(n, y) : y; };
  at::Tensor normed = maybeNorm(b.norm1, x);
  at::Tensor attn = maybeNorm(b.postAttentionNorm, attention(b, normed, cos, sin, inputPos, training));
  if (config_.parallelResidual) {
    if (!config_.sharedAttentionNorm) normed = maybeNorm(b.norm2, x);
    at::Tensor residual = attn + x;
    return maybeNorm(b.postMlpNorm, mlp(b, normed, training)) + residual;
  }
  at::Tensor residual = attn + x;
  return maybeNorm(b.postMlpNorm, mlp(b, maybeNorm(b.norm2, residual), training)) + residual;
}

at::Tensor Gpt::hidden(const at::Tensor& tokens, std::optional<int64_t> inputPos, bool training) {
  const int64_t start = inputPos.value_or(0), T = tokens.size(1);
  ropeCache(start + T);
  at::Tensor cos = cos_.narrow(0, start, T), sin = sin_.narrow(0, start, T);
  at::Tensor cosLocal = cosLocal_.defined() ? cosLocal_.narrow(0, start, T) : cos;
  at::Tensor sinLocal = sinLocal_.defined() ? sinLocal_.narrow(0, start, T) : sin;
  at::Tensor x = at::embedding(wte_, tokens);  // (B, T, C)
  if (config_.scaleEmbeddings) x = x * at::scalar_tensor(std::sqrt(static_cast<double>(config_.nEmbd)), x.options());
  for (Block& b : blocks_) x = block(b, x, b.localRope ? cosLocal : cos, b.localRope ? sinLocal : sin, inputPos, training);
  return norm(lnF_, x);
}

at::Tensor Gpt::forward(const at::Tensor& tokens, std::optional<int64_t> inputPos, bool lastOnly) {
  at::NoGradGuard noGrad;
  at::Tensor ids = checkedTokens(tokens, inputPos);
  if (inputPos) {
    LITLORA_CHECK(cacheLen_ > 0, "ERR_ARG", "forward with inputPos needs a KV cache; call setKvCache(batch, maxLength) first");
    LITLORA_CHECK(*inputPos >= 0 && *inputPos + ids.size(1) <= cacheLen_, "ERR_RANGE",
                  "forward: positions " << *inputPos << ".." << *inputPos + ids.size(1) - 1 << " do not fit the KV cache of "
                                        << cacheLen_ << " positions");
    LITLORA_CHECK(ids.size(0) <= cacheBatch_, "ERR_SHAPE",
                  "forward: batch " << ids.size(0) << " is larger than the KV cache's batch " << cacheBatch_);
  }
  at::Tensor h = hidden(ids, inputPos, false);
  if (lastOnly) h = h.narrow(1, h.size(1) - 1, 1);
  return head(h);
}

// The LM head, and Gemma 2's final tanh cap of the logits (the forward of every path: full, cached, per row).
at::Tensor Gpt::head(const at::Tensor& h) const {
  at::Tensor logits = linear(lmHead_, h, false);
  if (config_.finalLogitSoftcapping) {
    const double cap = *config_.finalLogitSoftcapping;
    logits = at::tanh(logits / cap) * cap;
  }
  return logits;
}

LossResult Gpt::loss(const at::Tensor& tokens, const at::Tensor& targets, bool backward, double gradScale) {
  LITLORA_CHECK(!backward || !merged(), "ERR_ARG", "the adapter is merged into the base weights; unmerge() before training");
  at::Tensor ids = checkedTokens(tokens, std::nullopt);
  LITLORA_CHECK(targets.sizes() == tokens.sizes(), "ERR_SHAPE",
                "targets: expected the shape of tokens " << shapeString(tokens.sizes()) << ", got " << shapeString(targets.sizes()));
  at::Tensor tgt = targets.to(options_.device, at::kLong).reshape({-1});
  {
    at::Tensor bad = tgt.ne(kIgnoreIndex).logical_and(tgt.lt(0).logical_or(tgt.ge(config_.paddedVocabSize)));
    LITLORA_CHECK(!bad.any().item<bool>(), "ERR_RANGE",
                  "targets: expected ids in [0, " << config_.paddedVocabSize << ") or −100 (ignored)");
  }
  at::AutoGradMode gradMode(backward);
  at::Tensor h = hidden(ids, std::nullopt, backward).reshape({-1, config_.nEmbd});
  at::Tensor hLora;
  if (lmHead_.hasLora() && backward && config_.lora.dropout > 0) hLora = at::dropout(h, config_.lora.dropout, true);
  HeadLoss result = headCrossEntropy(h, hLora, lmHead_.weight, lmHead_.bias, lmHead_.merged ? at::Tensor() : lmHead_.loraA,
                                     lmHead_.merged ? at::Tensor() : lmHead_.loraB, lmHead_.scaling, tgt, /*chunkRows=*/0,
                                     &headWorkspace_, config_.finalLogitSoftcapping.value_or(0.0));
  LossResult out;
  out.tokens = result.tokens;
  out.loss = result.loss.item<double>();
  if (backward && result.loss.requires_grad())
    result.loss.backward(at::full({}, gradScale, result.loss.options()));
  return out;
}

void Gpt::setKvCache(int64_t batch, int64_t maxLen) {
  LITLORA_CHECK(batch >= 1 && maxLen >= 1 && maxLen <= config_.blockSize, "ERR_RANGE",
                "setKvCache: expected batch ≥ 1 and 1 ≤ maxLength ≤ block_size (" << config_.blockSize << "), got batch "
                                                                                  << batch << ", maxLength " << maxLen);
  for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].cache = newLayerCache(i, batch, maxLen);
  cacheBatch_ = batch;
  cacheLen_ = maxLen;
  headWorkspace_ = at::Tensor();  // generation has no use for the training loss's logits buffer
}

void Gpt::clearKvCache() {
  for (Block& b : blocks_) b.cache = KvCache{};
  cacheBatch_ = cacheLen_ = 0;
}

}  // namespace litlora::gpt

// litgpt's GPT (litgpt/model.py + litgpt/lora.py) for the Pythia/GPT-NeoX, Llama and Gemma-style families,
// with LoRA layers placed from the config's lora_* fields. Pure libtorch; device- and dtype-agnostic.
//
// Parameters keep litgpt's names exactly: base weights as a plain GPT names them
// (`transformer.h.0.attn.qkv.weight`, the [Q|K|V] row layout of litgpt ≥ 0.5.5), LoRA tensors as the LoRA
// GPT names them (`transformer.h.0.attn.qkv.lora_A`). Loading also takes LoRA-model base names
// (`….linear.weight`) and files of litgpt ≤ 0.5.4 (`attn.attn`, interleaved rows), re-laid out on load.
// Only lora_* parameters require grad. One caller at a time (the wrap serialises operations).
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "decode_attention.h"
#include "gpt_config.h"
#include "gpt_lora.h"

namespace litlora::gpt {

struct GptOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  // Seed for litgpt's initialisation of every parameter (_init_weights: N(0, 0.02) for linears and the
  // embedding, zero biases, unit norms; LoRA A kaiming-uniform(a=√5), B zero). Without it the base weights
  // are left uninitialised for a following load, and the LoRA tensors get their init from seed 0.
  std::optional<uint64_t> seed;
};

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

// One runtime adapter's LoRA on one layer (Gpt::addAdapter): A (r·N × in) and B already placed at its output
// rows (out × r·N, zeros where the adapter does not reach), so that its delta is scaling·(x·Aᵀ)·Bᵀ.
struct AdapterLora {
  at::Tensor A, placedB;  // undefined: this adapter does not touch the layer
  double scaling = 0;
};

struct LinearLayer {
  std::string path;  // module path, e.g. "transformer.h.0.attn.qkv"
  at::Tensor weight, bias;
  at::Tensor loraA, loraB;             // defined iff this layer carries LoRA (r > 0 and targeted)
  std::optional<QkvLoraLayout> qkv;    // fused QKV: where the packed LoRA rows go
  double scaling = 0;
  bool merged = false;
  std::vector<AdapterLora> adapters;   // runtime adapters by index (Gpt::addAdapter); the layer's own LoRA is above
  bool hasLora() const { return loraA.defined(); }
};

struct NormLayer {
  at::Tensor weight, bias;
};

// One layer's keys (after rope) and values. A full layer holds every position p at slot p: (batch, n_query_groups,
// maxLen, head_size). A sliding-window layer holds only the last min(maxLen, window) positions, as litgpt's
// build_kv_cache sizes it, in a ring: position p at slot p % slots (Gpt::cacheAppend). Keys are stored after rope,
// so a slot's contents do not depend on where in the ring it sits.
struct KvCache {
  at::Tensor k, v;
};

// What one step attends over: keys and values in position order, the first at position `first`.
struct KvSpan {
  at::Tensor k, v;
  int64_t first = 0;
};

// One sequence's own KV cache for a batched forward (forwardRows): a KvCache of batch 1 per block.
struct RowCache {
  std::vector<KvCache> layers;
  int64_t length = 0;  // positions the sequence may reach (a sliding layer's ring holds fewer)
};

// One row of a batched forward: its tokens sit at position…position+T−1 of its own cache; `adapter` is the index
// of a runtime adapter (addAdapter) whose LoRA is added to this row only, or −1 for the model alone.
struct Row {
  RowCache* cache = nullptr;
  int64_t position = 0;
  int64_t adapter = -1;
};

// One expert of a LLaMAMoE layer: a LLaMAMLP (transformer.h.N.mlp.experts.E.fc_1, fc_2, proj).
struct Expert {
  LinearLayer fc1, fc2, proj;
};

struct Block {
  NormLayer norm1, norm2;
  NormLayer normQ, normK;  // attn.norm_q / attn.norm_k, defined iff norm_qk
  NormLayer postAttentionNorm, postMlpNorm;  // defined iff post_attention_norm / post_mlp_norm
  bool slidingWindow = false;  // this layer attends within config.slidingWindowSize
  bool localRope = false;      // this layer rotates by config.ropeLocalBase (Gemma 3's sliding layers)
  LinearLayer qkv, proj;
  LinearLayer fc1, fc2, mlpProj;  // GptNeoxMLP: fc1 = mlp.fc (fc2 unused); LLaMA/Gemma: fc_1, fc_2
  LinearLayer gate;                // LLaMAMoE: the router mlp.gate (fc1, fc2, mlpProj unused)
  std::vector<Expert> experts;     // LLaMAMoE: mlp.experts.0 … n_expert − 1
  KvCache cache;
};

struct LossResult {
  double loss = 0;
  int64_t tokens = 0;
};

enum class LoadKind {
  Base,     // every base weight required; lora_* entries optional (loaded when present)
  Adapter,  // exactly the model's lora_* tensors
};

class Gpt {
 public:
  Gpt(GptConfig config, GptOptions options);

  const GptConfig& config() const { return config_; }
  at::ScalarType dtype() const { return options_.dtype; }
  at::Device device() const { return options_.device; }

  // tokens: (B, T) integer ids. Without inputPos: a plain causal forward over positions 0..T-1. With it: the
  // tokens sit at positions inputPos…inputPos+T-1 and attend to the KV cache (setKvCache first).
  // Returns logits (B, T, padded_vocab) in the model dtype, or (B, 1, V) for the last position only.
  at::Tensor forward(const at::Tensor& tokens, std::optional<int64_t> inputPos = std::nullopt, bool lastOnly = false);

  // Mean cross-entropy over targets ≠ −100 (targets[b, t] is the token that should follow tokens[b, t]).
  // With backward: gradients of loss·gradScale accumulate into the lora_* parameters' .grad.
  LossResult loss(const at::Tensor& tokens, const at::Tensor& targets, bool backward, double gradScale = 1.0);

  void setKvCache(int64_t batch, int64_t maxLen);
  void clearKvCache();
  // Per layer, the most positions a KV cache of this model (setKvCache or newRowCache) has allocated in that layer:
  // maxLen for a full layer, at most the window for a sliding one. Safe to read while a forward runs.
  std::vector<int64_t> kvCacheSlots() const;

  // ---- many sequences at once (gpt_rows.cc; the batched decoder's forward) ----
  // A cache for one sequence of up to maxLen positions.
  RowCache newRowCache(int64_t maxLen) const;
  // tokens (B, T): row b's tokens continue rows[b] at its position in its own cache (attention runs per row, so
  // each row computes what a batch-1 forward over its cache computes). Returns logits (B, T or 1, V).
  // `lengths` (B, optional): row b's first lengths[b] tokens are its own and the rest padding at the end, which
  // attention's causal mask keeps from the row's tokens (its cache slots are overwritten as the row goes on);
  // lastOnly then takes each row's logits at its last own token.
  at::Tensor forwardRows(const at::Tensor& tokens, const std::vector<Row>& rows, bool lastOnly,
                         const std::vector<int64_t>& lengths = {});

  // Runtime adapters: LoRA tensors (litgpt's lora_* names) under the LoRA settings `lora`, kept beside the base
  // weights and added per row by forwardRows. A tensor set that does not fit this model's shapes under those
  // settings is ERR_ADAPTER_MISMATCH; a taken name is ERR_ARG. Returns the adapter's index.
  int64_t addAdapter(const std::string& name, const LoraSettings& lora, const std::vector<NamedTensor>& entries);
  void removeAdapter(const std::string& name);  // ERR_ADAPTER_NOT_FOUND when there is none of that name
  std::optional<int64_t> adapterIndex(const std::string& name) const;
  std::vector<std::string> adapterNames() const;

  std::vector<NamedTensor> baseStateDict() const;    // plain GPT names; current (possibly merged) weights
  std::vector<NamedTensor> loraStateDict() const;    // lora_* tensors (the lit_model.pth.lora "model" dict)
  std::vector<NamedTensor> mergedStateDict() const;  // what litgpt's merge_lora writes: base + ΔW, base dtype
  std::vector<NamedTensor> loraParameters() const;   // the trainable tensors themselves (share .grad)
  std::vector<NamedTensor> loraGradients() const;    // their accumulated .grad (zeros where none yet)
  void zeroGrad();                                   // drops the accumulated gradients

  // Strict: throws ERR_CHECKPOINT_FORMAT listing missing keys, unexpected keys and shape mismatches
  // (ERR_SHAPE when shapes are all that is wrong). Values are copied into the model's dtype and device.
  void loadStateDict(const std::vector<NamedTensor>& entries, LoadKind kind);

  void merge();
  void unmerge();
  bool merged() const;
  bool hasLora() const;
  // True when the loaded adapter came from a litgpt ≤ 0.5.4 file with q, k and v all on (see gpt_lora.h):
  // loraStateDict then names its QKV tensors `attn.attn.lora_*` again, so that the file keeps its meaning.
  bool legacyQkvAdapter() const;

  int64_t parameterCount() const;
  int64_t loraParameterCount() const;

 private:
  at::Tensor hidden(const at::Tensor& tokens, std::optional<int64_t> inputPos, bool training);
  at::Tensor block(Block& b, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                   std::optional<int64_t> inputPos, bool training);
  at::Tensor attention(Block& b, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       std::optional<int64_t> inputPos, bool training);
  at::Tensor mlp(Block& b, const at::Tensor& x, bool training);
  at::Tensor moe(Block& b, const at::Tensor& x, bool training);
  at::Tensor norm(const NormLayer& n, const at::Tensor& x) const;
  // tokenRows: for an input of flattened tokens (the MoE's router and experts), each token's row in the batch, so
  // that forwardRows' per-row adapters reach the right tokens; undefined when x's dim 0 is the batch row.
  at::Tensor linear(const LinearLayer& l, const at::Tensor& x, bool training, const at::Tensor& tokenRows = {}) const;
  void ropeCache(int64_t length);
  at::Tensor checkedTokens(const at::Tensor& tokens, std::optional<int64_t> inputPos) const;
  at::Tensor attendRows(Block& b, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
  at::Tensor head(const at::Tensor& h) const;
  at::Tensor attend(const Block& b, const at::Tensor& q, const KvSpan& kv, int64_t start, bool cached) const;
  // The layer's cache slots for a sequence of up to maxLen positions, and that cache (zeros, of `batch` rows).
  int64_t cacheSlots(const Block& b, int64_t maxLen) const;
  KvCache newLayerCache(size_t layer, int64_t batch, int64_t maxLen) const;
  // Stores k, v (B, nqg, T, hs) at positions start.. in `cache` (views of the layer's cache for these rows) and
  // returns the keys and values positions start..start+T−1 attend over.
  KvSpan cacheAppend(const Block& b, const KvCache& cache, const at::Tensor& k, const at::Tensor& v, int64_t start) const;
  // The block's attention settings for core/decode_attention (scale, soft-capping, window, query groups).
  decode_attention::Options decodeOptions(const Block& b) const;
  at::Tensor addRowAdapters(const LinearLayer& l, const at::Tensor& x, at::Tensor y, const at::Tensor& tokenRows) const;
  void initialise(uint64_t seed, bool base);
  std::vector<LinearLayer*> linearLayers();
  std::vector<const LinearLayer*> linearLayers() const;
  // Every base parameter with its plain litgpt name, in litgpt's state-dict order.
  std::vector<std::pair<std::string, at::Tensor*>> baseSlots();
  std::vector<std::pair<std::string, const at::Tensor*>> baseSlots() const;

  GptConfig config_;
  GptOptions options_;
  at::Tensor wte_;
  std::vector<Block> blocks_;
  NormLayer lnF_;
  LinearLayer lmHead_;
  at::Tensor cos_, sin_;            // (length, rope_n_elem) float32
  at::Tensor cosLocal_, sinLocal_;  // the same for ropeLocalBase; undefined without it
  // Set for the duration of a forwardRows: its rows, and which rows each runtime adapter serves.
  const std::vector<Row>* rows_ = nullptr;
  struct AdapterGroup {
    int64_t adapter;
    at::Tensor rows;  // row indices (long); undefined when the group is every row
  };
  std::vector<AdapterGroup> adapterGroups_;
  std::vector<std::string> adapterNames_;  // by index; "" marks a freed index
  int64_t cacheBatch_ = 0, cacheLen_ = 0;
  // kvCacheSlots' per-layer maxima; atomic because info() reads them while the decoding thread allocates caches.
  std::unique_ptr<std::atomic<int64_t>[]> kvSlotsPeak_;
  // The training loss's logits buffer on the CPU (headCrossEntropy's workspace: up to 256 MB), kept between
  // steps: a fresh one each step made the kernel fault in and zero its pages again, ~45 ms per pythia-70m step.
  at::Tensor headWorkspace_;
};

}  // namespace litlora::gpt

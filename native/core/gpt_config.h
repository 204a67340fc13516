// GptConfig: the model litlora's GPT (gpt.h) builds — the part of litgpt's Config it implements, with the
// values litgpt's Config.__post_init__ derives already filled in, plus the LoRA settings.
//
// It is made in TS (ts/model/native_config.ts: normalizeConfig, litgpt's defaults, the features litlora
// implements, normalizeLora) and read field by field at the boundary (native/config_wrap.cc), so native code
// neither defaults nor parses a config. checkGptConfig re-checks only what native code needs to stay safe on
// any input: positive sizes and the divisibility the layer shapes rely on.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace litlora::gpt {

enum class NormKind { LayerNorm, RMSNorm };
// LLaMAMoE: a router (mlp.gate) picks nExpertPerToken of nExpert LLaMAMLP experts per token (litgpt's LLaMAMoE).
enum class MlpKind { GptNeox, LLaMA, Gemma, LLaMAMoE };
enum class RopeScaling { None, Linear, Llama3 };
// litgpt's norm_qk / norm_qk_type: no q/k norm, one per head over head_size after the head split ("default",
// Qwen3), or one over all heads' channels before it ("olmo2").
enum class NormQk { None, PerHead, Full };

// ts/model/lora_settings.ts's LoraSettings (litgpt's lora_* fields without the prefix). r == 0 means no LoRA.
// Zero-initialised: what TS sends for a model without LoRA.
struct LoraSettings {
  int64_t r = 0;
  double alpha = 0;
  double dropout = 0;
  bool query = false, key = false, value = false, projection = false, mlp = false, head = false;
  double scaling() const { return r > 0 ? alpha / static_cast<double>(r) : 0.0; }
  bool any() const { return r > 0 && (query || key || value || projection || mlp || head); }
};

// Every field is set by the reader (config_wrap.cc); the initialisers only keep a default-constructed value
// defined.
struct GptConfig {
  int64_t blockSize = 0;
  int64_t paddedVocabSize = 0;
  int64_t nLayer = 0;
  int64_t nHead = 0;
  int64_t headSize = 0;
  int64_t nEmbd = 0;
  int64_t nQueryGroups = 0;
  int64_t intermediateSize = 0;
  int64_t ropeNElem = 0;  // int(rotary_percentage * head_size)
  bool parallelResidual = false;
  bool bias = false;
  bool attnBias = false;  // era C: the fused qkv has a bias if bias or attn_bias
  bool lmHeadBias = false;
  bool sharedAttentionNorm = false;
  bool norm1 = true, norm2 = true;  // litgpt's norm_1 / norm_2: false makes the block's norm an identity (OLMo 2)
  NormKind norm = NormKind::LayerNorm;
  bool normUnitOffset = false;  // Gemma's RMSNorm: x̂ · (1 + weight)
  double normEps = 0;
  MlpKind mlp = MlpKind::GptNeox;
  bool geluTanh = false;  // gelu_approximate == "tanh"
  double ropeCondenseRatio = 0;
  double ropeBase = 0;
  bool scaleEmbeddings = false;
  NormQk normQk = NormQk::None;
  bool postAttentionNorm = false, postMlpNorm = false;  // Gemma 2/3: a norm on the attention / MLP output
  std::optional<double> attentionLogitSoftcapping;      // scores → tanh(scores / cap) · cap before the softmax
  std::optional<double> finalLogitSoftcapping;          // logits → tanh(logits / cap) · cap
  // Sliding-window attention: in a layer i with slidingWindowLayers[i], a query at position p sees keys at
  // positions p − slidingWindowSize < j ≤ p (litgpt's sliding_window_size / sliding_window_indices). 0: none.
  int64_t slidingWindowSize = 0;
  std::vector<bool> slidingWindowLayers;  // n_layer entries when slidingWindowSize > 0
  // Gemma 3's local rope (litgpt's rope_local_base_freq / rope_indices): the layers marked here rotate by
  // ropeLocalBase without rope scaling; the others by ropeBase with it. 0: one rope for every layer.
  double ropeLocalBase = 0;
  std::vector<bool> ropeLocalLayers;  // n_layer entries when ropeLocalBase > 0
  std::optional<double> attentionScoresScalar;
  RopeScaling ropeScaling = RopeScaling::None;
  double ropeFactor = 0, ropeLowFreqFactor = 0, ropeHighFreqFactor = 0, ropeOriginalMaxSeqLen = 0;
  // LLaMAMoE only (0 otherwise): the experts, how many each token uses, each expert's intermediate size (litgpt's
  // moe_intermediate_size, else intermediate_size) and the factor on the routing weights (routed_scaling_factor).
  int64_t nExpert = 0, nExpertPerToken = 0, moeIntermediateSize = 0;
  double routedScalingFactor = 1;
  LoraSettings lora;

  int64_t qPerKv() const { return nHead / nQueryGroups; }
  int64_t qkvOutFeatures() const { return (nHead + 2 * nQueryGroups) * headSize; }
  bool qkvHasBias() const { return bias || attnBias; }
};

// The invariants the GPT's shapes and arithmetic rely on (sizes > 0, n_head divisible by n_query_groups, an even
// rope_n_elem ≤ head_size, finite positive scales, 0 ≤ dropout < 1, r ≥ 0); ERR_CONFIG naming the field
// otherwise. TS has already given the user's error for all of these; this guards calls that bypass it.
void checkGptConfig(const GptConfig& c);

}  // namespace litlora::gpt

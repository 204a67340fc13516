// GptConfig: the part of litgpt's Config (litgpt/config.py, incl. its lora_* fields) that the GPT in gpt.h
// implements, parsed from a generic field map so that native/core stays free of napi.h.
//
// parseGptConfig accepts every field of today's model_config.yaml (about 55) as long as it holds a value
// that keeps the Pythia / GPT-NeoX / Llama / Gemma math; a field that switches on something not implemented
// (MoE, sliding windows, softcapping, QK norm, …) is ERR_CONFIG naming it — never silently different math.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace litlora::gpt {

// A YAML/JSON-like value, as the wrap hands it over from a JS object.
struct ConfigValue {
  enum class Kind { Null, Bool, Number, String, Object, Array };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<std::pair<std::string, ConfigValue>> fields;  // Object
  std::vector<ConfigValue> items;                           // Array

  const ConfigValue* find(const std::string& key) const;
  bool isNull() const { return kind == Kind::Null; }
};

using ConfigFields = std::vector<std::pair<std::string, ConfigValue>>;

enum class NormKind { LayerNorm, RMSNorm };
enum class MlpKind { GptNeox, LLaMA, Gemma };
enum class RopeScaling { None, Linear, Llama3 };

// litgpt's lora Config fields (lora_r, lora_alpha, …). r == 0 means no LoRA anywhere.
struct LoraSettings {
  int64_t r = 0;
  double alpha = 1;
  double dropout = 0;
  bool query = false, key = false, value = false, projection = false, mlp = false, head = false;
  double scaling() const { return r > 0 ? alpha / static_cast<double>(r) : 0.0; }
  bool any() const { return r > 0 && (query || key || value || projection || mlp || head); }
};

struct GptConfig {
  std::string name;
  int64_t blockSize = 4096;
  int64_t vocabSize = 50254;
  int64_t paddedVocabSize = 0;
  int64_t nLayer = 16;
  int64_t nHead = 32;
  int64_t headSize = 0;
  int64_t nEmbd = 4096;
  int64_t nQueryGroups = 0;
  int64_t intermediateSize = 0;
  double rotaryPercentage = 0.25;
  int64_t ropeNElem = 0;  // int(rotary_percentage * head_size)
  bool parallelResidual = true;
  bool bias = true;
  bool attnBias = false;  // era C: the fused qkv has a bias if bias or attn_bias
  bool lmHeadBias = false;
  bool sharedAttentionNorm = false;
  NormKind norm = NormKind::LayerNorm;
  bool normUnitOffset = false;  // Gemma's RMSNorm: x̂ · (1 + weight)
  double normEps = 1e-5;
  MlpKind mlp = MlpKind::GptNeox;
  bool geluTanh = false;  // gelu_approximate == "tanh"
  double ropeCondenseRatio = 1;
  double ropeBase = 10000;
  bool scaleEmbeddings = false;
  std::optional<double> attentionScoresScalar;
  RopeScaling ropeScaling = RopeScaling::None;
  double ropeFactor = 1, ropeLowFreqFactor = 0, ropeHighFreqFactor = 0, ropeOriginalMaxSeqLen = 0;
  LoraSettings lora;

  int64_t qPerKv() const { return nHead / nQueryGroups; }
  int64_t qkvOutFeatures() const { return (nHead + 2 * nQueryGroups) * headSize; }
  bool qkvHasBias() const { return bias || attnBias; }
};

// Fills derived fields as litgpt's Config.__post_init__ does, validates, and throws ERR_CONFIG naming the
// field for anything malformed or not implemented.
GptConfig parseGptConfig(const ConfigFields& fields);

}  // namespace litlora::gpt

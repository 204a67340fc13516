#include "config_wrap.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace litlora {

namespace {

// Typed reads of one object's fields, each naming `where.field` when the field is absent or of the wrong type.
class FieldReader {
 public:
  FieldReader(const Napi::Value& value, std::string where) : where_(std::move(where)) {
    LITLORA_CHECK(value.IsObject() && !value.IsArray(), "ERR_CONFIG",
                  where_ << ": expected the config object litlora's TS layer makes (NativeGptConfig)");
    object_ = value.As<Napi::Object>();
  }

  Napi::Value get(const char* key) const {
    Napi::Value v = object_.Get(key);
    LITLORA_CHECK(!v.IsUndefined(), "ERR_CONFIG", where_ << "." << key << ": missing");
    return v;
  }
  double number(const char* key) const {
    Napi::Value v = get(key);
    LITLORA_CHECK(v.IsNumber(), "ERR_CONFIG", where_ << "." << key << ": expected a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    LITLORA_CHECK(std::isfinite(d), "ERR_CONFIG", where_ << "." << key << ": expected a finite number, got " << d);
    return d;
  }
  int64_t integer(const char* key) const {
    const double d = number(key);
    // Integers beyond 2^53 are not exact in a JS number; no size of a real model comes near.
    LITLORA_CHECK(std::floor(d) == d && std::fabs(d) <= 9007199254740992.0, "ERR_CONFIG",
                  where_ << "." << key << ": expected an integer, got " << d);
    return static_cast<int64_t>(d);
  }
  bool boolean(const char* key) const {
    Napi::Value v = get(key);
    LITLORA_CHECK(v.IsBoolean(), "ERR_CONFIG", where_ << "." << key << ": expected true or false");
    return v.As<Napi::Boolean>().Value();
  }
  std::optional<double> optionalNumber(const char* key) const {
    if (get(key).IsNull()) return std::nullopt;
    return number(key);
  }
  // The index of the value among `choices`.
  size_t choice(const char* key, std::initializer_list<const char*> choices) const {
    Napi::Value v = get(key);
    LITLORA_CHECK(v.IsString(), "ERR_CONFIG", where_ << "." << key << ": expected a string");
    const std::string s = v.As<Napi::String>().Utf8Value();
    size_t i = 0;
    for (const char* c : choices) {
      if (s == c) return i;
      ++i;
    }
    std::string list;
    for (const char* c : choices) list += (list.empty() ? "'" : ", '") + std::string(c) + "'";
    throw Error("ERR_CONFIG", where_ + "." + key + ": expected one of " + list + ", got '" + s + "'");
  }
  std::vector<bool> booleans(const char* key) const {
    Napi::Value v = get(key);
    LITLORA_CHECK(v.IsArray(), "ERR_CONFIG", where_ << "." << key << ": expected a list of true/false");
    Napi::Array a = v.As<Napi::Array>();
    std::vector<bool> out;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      LITLORA_CHECK(e.IsBoolean(), "ERR_CONFIG", where_ << "." << key << "[" << i << "]: expected true or false");
      out.push_back(e.As<Napi::Boolean>().Value());
    }
    return out;
  }
  FieldReader object(const char* key) const { return FieldReader(get(key), where_ + "." + key); }

 private:
  Napi::Object object_;
  std::string where_;
};

}  // namespace

gpt::GptConfig gptConfigFromJs(const Napi::Value& value, const std::string& argName) {
  const FieldReader f(value, argName);
  gpt::GptConfig c;
  c.blockSize = f.integer("blockSize");
  c.paddedVocabSize = f.integer("paddedVocabSize");
  c.nLayer = f.integer("nLayer");
  c.nHead = f.integer("nHead");
  c.headSize = f.integer("headSize");
  c.nEmbd = f.integer("nEmbd");
  c.nQueryGroups = f.integer("nQueryGroups");
  c.intermediateSize = f.integer("intermediateSize");
  c.ropeNElem = f.integer("ropeNElem");
  c.parallelResidual = f.boolean("parallelResidual");
  c.bias = f.boolean("bias");
  c.attnBias = f.boolean("attnBias");
  c.lmHeadBias = f.boolean("lmHeadBias");
  c.sharedAttentionNorm = f.boolean("sharedAttentionNorm");
  c.norm1 = f.boolean("norm1");
  c.norm2 = f.boolean("norm2");
  c.norm = f.choice("norm", {"LayerNorm", "RMSNorm"}) == 0 ? gpt::NormKind::LayerNorm : gpt::NormKind::RMSNorm;
  c.normUnitOffset = f.boolean("normUnitOffset");
  c.normEps = f.number("normEps");
  static constexpr gpt::MlpKind kMlps[] = {gpt::MlpKind::GptNeox, gpt::MlpKind::LLaMA, gpt::MlpKind::Gemma, gpt::MlpKind::LLaMAMoE};
  c.mlp = kMlps[f.choice("mlp", {"GptNeoxMLP", "LLaMAMLP", "GemmaMLP", "LLaMAMoE"})];
  c.geluTanh = f.boolean("geluTanh");
  c.ropeCondenseRatio = f.number("ropeCondenseRatio");
  c.ropeBase = f.number("ropeBase");
  c.scaleEmbeddings = f.boolean("scaleEmbeddings");
  static constexpr gpt::NormQk kNormQks[] = {gpt::NormQk::None, gpt::NormQk::PerHead, gpt::NormQk::Full};
  c.normQk = kNormQks[f.choice("normQk", {"none", "default", "olmo2"})];
  c.postAttentionNorm = f.boolean("postAttentionNorm");
  c.postMlpNorm = f.boolean("postMlpNorm");
  c.attentionLogitSoftcapping = f.optionalNumber("attentionLogitSoftcapping");
  c.finalLogitSoftcapping = f.optionalNumber("finalLogitSoftcapping");
  c.slidingWindowSize = f.integer("slidingWindowSize");
  c.slidingWindowLayers = f.booleans("slidingWindowLayers");
  c.ropeLocalBase = f.number("ropeLocalBase");
  c.ropeLocalLayers = f.booleans("ropeLocalLayers");
  c.attentionScoresScalar = f.optionalNumber("attentionScoresScalar");
  static constexpr gpt::RopeScaling kScalings[] = {gpt::RopeScaling::None, gpt::RopeScaling::Linear, gpt::RopeScaling::Llama3};
  c.ropeScaling = kScalings[f.choice("ropeScaling", {"none", "linear", "llama3"})];
  c.ropeFactor = f.number("ropeFactor");
  c.ropeLowFreqFactor = f.number("ropeLowFreqFactor");
  c.ropeHighFreqFactor = f.number("ropeHighFreqFactor");
  c.ropeOriginalMaxSeqLen = f.number("ropeOriginalMaxSeqLen");
  c.nExpert = f.integer("nExpert");
  c.nExpertPerToken = f.integer("nExpertPerToken");
  c.moeIntermediateSize = f.integer("moeIntermediateSize");
  c.routedScalingFactor = f.number("routedScalingFactor");
  const FieldReader l = f.object("lora");
  c.lora.r = l.integer("r");
  c.lora.alpha = l.number("alpha");
  c.lora.dropout = l.number("dropout");
  c.lora.query = l.boolean("query");
  c.lora.key = l.boolean("key");
  c.lora.value = l.boolean("value");
  c.lora.projection = l.boolean("projection");
  c.lora.mlp = l.boolean("mlp");
  c.lora.head = l.boolean("head");
  gpt::checkGptConfig(c);
  return c;
}

}  // namespace litlora

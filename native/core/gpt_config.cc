#include "gpt_config.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "error.h"

namespace litlora::gpt {

const ConfigValue* ConfigValue::find(const std::string& key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return &v;
  return nullptr;
}

namespace {

std::string describe(const ConfigValue& v) {
  switch (v.kind) {
    case ConfigValue::Kind::Null: return "null";
    case ConfigValue::Kind::Bool: return v.boolean ? "true" : "false";
    case ConfigValue::Kind::Number: {
      std::ostringstream s;
      s << v.number;
      return s.str();
    }
    case ConfigValue::Kind::String: return "'" + v.string + "'";
    case ConfigValue::Kind::Object: return "an object";
    case ConfigValue::Kind::Array: return "a list";
  }
  return "?";
}

[[noreturn]] void bad(const std::string& field, const std::string& expected, const ConfigValue& got) {
  throw Error("ERR_CONFIG", "config field " + field + ": expected " + expected + ", got " + describe(got));
}

[[noreturn]] void unsupported(const std::string& field, const ConfigValue& got, const std::string& what) {
  throw Error("ERR_CONFIG", "config field " + field + " = " + describe(got) + " switches on " + what +
                                ", which litlora does not implement; only the Pythia/GPT-NeoX, Llama and Gemma-style "
                                "dense models are supported. Use a model without it.");
}

class Reader {
 public:
  explicit Reader(const ConfigFields& fields) {
    for (const auto& [k, v] : fields) values_[k] = &v;
  }
  const ConfigValue* get(const std::string& key) {
    used_.insert(key);
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : it->second;
  }
  bool present(const std::string& key) {
    const ConfigValue* v = get(key);
    return v && !v->isNull();
  }
  int64_t integer(const std::string& key, int64_t fallback, int64_t min = 1) {
    const ConfigValue* v = get(key);
    if (!v || v->isNull()) return fallback;
    if (v->kind != ConfigValue::Kind::Number || std::floor(v->number) != v->number || v->number < min)
      bad(key, "an integer ≥ " + std::to_string(min), *v);
    return static_cast<int64_t>(v->number);
  }
  double number(const std::string& key, double fallback) {
    const ConfigValue* v = get(key);
    if (!v || v->isNull()) return fallback;
    if (v->kind != ConfigValue::Kind::Number || !std::isfinite(v->number)) bad(key, "a finite number", *v);
    return v->number;
  }
  bool boolean(const std::string& key, bool fallback) {
    const ConfigValue* v = get(key);
    if (!v || v->isNull()) return fallback;
    if (v->kind != ConfigValue::Kind::Bool) bad(key, "true or false", *v);
    return v->boolean;
  }
  std::string string(const std::string& key, const std::string& fallback) {
    const ConfigValue* v = get(key);
    if (!v || v->isNull()) return fallback;
    if (v->kind != ConfigValue::Kind::String) bad(key, "a string", *v);
    return v->string;
  }
  // A field that must keep its no-op value: `isNoop` says whether the given value is one.
  void requireNoop(const std::string& key, const std::function<bool(const ConfigValue&)>& isNoop, const std::string& what) {
    const ConfigValue* v = get(key);
    if (v && !isNoop(*v)) unsupported(key, *v, what);
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_)
      if (!used_.count(k)) out.push_back(k);
    return out;
  }

 private:
  std::map<std::string, const ConfigValue*> values_;
  std::set<std::string> used_;
};

bool isNullOrFalse(const ConfigValue& v) { return v.isNull() || (v.kind == ConfigValue::Kind::Bool && !v.boolean); }
bool isNullOrZero(const ConfigValue& v) { return v.isNull() || (v.kind == ConfigValue::Kind::Number && v.number == 0); }
bool isNullOrTrue(const ConfigValue& v) { return v.isNull() || (v.kind == ConfigValue::Kind::Bool && v.boolean); }
bool isNull(const ConfigValue& v) { return v.isNull(); }
bool anything(const ConfigValue&) { return true; }

int64_t findMultiple(int64_t n, int64_t k) { return n % k == 0 ? n : n + k - (n % k); }

void readRopeAdjustments(const ConfigValue* v, GptConfig& c) {
  if (!v || v->isNull()) return;
  if (v->kind != ConfigValue::Kind::Object) bad("rope_adjustments", "null or a mapping", *v);
  auto num = [&](const char* key) -> std::optional<double> {
    const ConfigValue* f = v->find(key);
    if (!f || f->isNull()) return std::nullopt;
    if (f->kind != ConfigValue::Kind::Number || !std::isfinite(f->number))
      bad(std::string("rope_adjustments.") + key, "a finite number", *f);
    return f->number;
  };
  for (const auto& [k, f] : v->fields) {
    static const std::set<std::string> known = {"factor", "low_freq_factor", "high_freq_factor", "original_max_seq_len",
                                                "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate",
                                                "rope_type"};
    if (!known.count(k)) throw Error("ERR_CONFIG", "config field rope_adjustments." + k + " is not known to litgpt");
  }
  if (v->find("beta_fast") || v->find("beta_slow"))
    unsupported("rope_adjustments", *v, "YaRN rope scaling (beta_fast / beta_slow)");
  const bool llama3 = v->find("low_freq_factor") || v->find("high_freq_factor");
  auto factor = num("factor");
  if (llama3) {
    auto low = num("low_freq_factor"), high = num("high_freq_factor"), orig = num("original_max_seq_len");
    if (!factor || !low || !high || !orig)
      throw Error("ERR_CONFIG", "config field rope_adjustments: Llama 3 rope scaling needs factor, low_freq_factor, "
                                "high_freq_factor and original_max_seq_len together");
    LITLORA_CHECK(*high != *low, "ERR_CONFIG", "config field rope_adjustments: high_freq_factor must differ from low_freq_factor");
    c.ropeScaling = RopeScaling::Llama3;
    c.ropeFactor = *factor;
    c.ropeLowFreqFactor = *low;
    c.ropeHighFreqFactor = *high;
    c.ropeOriginalMaxSeqLen = *orig;
  } else if (factor) {
    c.ropeScaling = RopeScaling::Linear;
    c.ropeFactor = *factor;
  }
}

}  // namespace

GptConfig parseGptConfig(const ConfigFields& fields) {
  Reader r(fields);
  GptConfig c;
  c.name = r.string("name", "");
  if (c.name.empty()) {
    const ConfigValue* hf = r.get("hf_config");
    if (hf && hf->kind == ConfigValue::Kind::Object)
      if (const ConfigValue* n = hf->find("name"); n && n->kind == ConfigValue::Kind::String) c.name = n->string;
  } else {
    r.get("hf_config");
  }
  c.blockSize = r.integer("block_size", 4096);
  c.vocabSize = r.integer("vocab_size", 50254);
  const int64_t paddingMultiple = r.integer("padding_multiple", 512);
  c.nLayer = r.integer("n_layer", 16, 0);
  c.nHead = r.integer("n_head", 32);
  c.nEmbd = r.integer("n_embd", 4096);
  c.headSize = r.integer("head_size", 0, 0);
  if (c.headSize == 0) {
    LITLORA_CHECK(c.nEmbd % c.nHead == 0, "ERR_CONFIG",
                  "config: n_embd (" << c.nEmbd << ") must be divisible by n_head (" << c.nHead << ") when head_size is not given");
    c.headSize = c.nEmbd / c.nHead;
  }
  c.paddedVocabSize = r.integer("padded_vocab_size", 0, 0);
  if (c.paddedVocabSize == 0) c.paddedVocabSize = findMultiple(c.vocabSize, paddingMultiple);
  else c.vocabSize = std::min(c.vocabSize, c.paddedVocabSize);
  c.nQueryGroups = r.integer("n_query_groups", c.nHead);
  LITLORA_CHECK(c.nHead % c.nQueryGroups == 0, "ERR_CONFIG",
                "config field n_query_groups: n_head (" << c.nHead << ") must be divisible by it, got " << c.nQueryGroups);

  c.rotaryPercentage = r.number("rotary_percentage", 0.25);
  c.ropeNElem = static_cast<int64_t>(c.rotaryPercentage * static_cast<double>(c.headSize));
  if (const ConfigValue* v = r.get("rope_n_elem"); v && !v->isNull()) {
    LITLORA_CHECK(v->kind == ConfigValue::Kind::Number && v->number == static_cast<double>(c.ropeNElem), "ERR_CONFIG",
                  "config field rope_n_elem: expected int(rotary_percentage * head_size) = " << c.ropeNElem << ", got "
                                                                                          << describe(*v));
  }
  LITLORA_CHECK(c.ropeNElem >= 0 && c.ropeNElem <= c.headSize && c.ropeNElem % 2 == 0, "ERR_CONFIG",
                "config field rotary_percentage: rope_n_elem = int(rotary_percentage * head_size) must be even and ≤ head_size, got "
                    << c.ropeNElem);
  c.parallelResidual = r.boolean("parallel_residual", true);
  c.bias = r.boolean("bias", true);
  c.attnBias = r.boolean("attn_bias", false);
  c.lmHeadBias = r.boolean("lm_head_bias", false);
  c.sharedAttentionNorm = r.boolean("shared_attention_norm", false);
  if (!c.parallelResidual && c.sharedAttentionNorm)
    throw Error("ERR_CONFIG", "config fields parallel_residual = false with shared_attention_norm = true: litgpt does not "
                              "implement this combination either");

  std::string norm = r.string("norm_class_name", "");
  if (norm.empty()) norm = r.string("_norm_class", "LayerNorm");
  else r.get("_norm_class");
  if (norm == "LayerNorm") c.norm = NormKind::LayerNorm;
  else if (norm == "RMSNorm") c.norm = NormKind::RMSNorm;
  else throw Error("ERR_CONFIG", "config field norm_class_name: expected 'LayerNorm' or 'RMSNorm', got '" + norm + "'");
  c.normUnitOffset = c.norm == NormKind::RMSNorm && c.name.find("Gemma") != std::string::npos;
  c.normEps = r.number("norm_eps", 1e-5);

  std::string mlp = r.string("mlp_class_name", "");
  if (mlp.empty()) mlp = r.string("_mlp_class", "GptNeoxMLP");
  else r.get("_mlp_class");
  if (mlp == "GptNeoxMLP") c.mlp = MlpKind::GptNeox;
  else if (mlp == "LLaMAMLP") c.mlp = MlpKind::LLaMA;
  else if (mlp == "GemmaMLP") c.mlp = MlpKind::Gemma;
  else if (mlp == "LLaMAMoE") unsupported("mlp_class_name", *r.get("mlp_class_name"), "a mixture of experts");
  else throw Error("ERR_CONFIG", "config field mlp_class_name: expected 'GptNeoxMLP', 'LLaMAMLP' or 'GemmaMLP', got '" + mlp + "'");
  c.intermediateSize = r.integer("intermediate_size", 0, 0);
  if (c.intermediateSize == 0) {
    LITLORA_CHECK(c.mlp == MlpKind::GptNeox, "ERR_CONFIG",
                  "config field intermediate_size: " << mlp << " requires it to be set");
    c.intermediateSize = 4 * c.nEmbd;
  }
  const std::string gelu = r.string("gelu_approximate", "none");
  LITLORA_CHECK(gelu == "none" || gelu == "tanh", "ERR_CONFIG",
                "config field gelu_approximate: expected 'none' or 'tanh', got '" << gelu << "'");
  c.geluTanh = gelu == "tanh";
  c.ropeCondenseRatio = r.number("rope_condense_ratio", 1);
  LITLORA_CHECK(c.ropeCondenseRatio > 0, "ERR_CONFIG", "config field rope_condense_ratio: expected > 0, got " << c.ropeCondenseRatio);
  c.ropeBase = r.number("rope_base", 10000);
  c.scaleEmbeddings = r.boolean("scale_embeddings", false);
  if (r.present("attention_scores_scalar")) {
    c.attentionScoresScalar = r.number("attention_scores_scalar", 0);
    LITLORA_CHECK(*c.attentionScoresScalar > 0, "ERR_CONFIG", "config field attention_scores_scalar: expected > 0");
  }
  readRopeAdjustments(r.get("rope_adjustments"), c);

  // Fields whose non-default values switch on what litlora does not implement.
  r.requireNoop("n_expert", isNullOrZero, "a mixture of experts");
  r.requireNoop("n_expert_per_token", isNullOrZero, "a mixture of experts");
  r.requireNoop("n_shared_expert", isNullOrZero, "shared experts");
  r.requireNoop("moe_intermediate_size", isNull, "a mixture of experts");
  r.requireNoop("first_k_dense_replace", isNull, "a mixture of experts");
  r.requireNoop("n_expert_groups", isNullOrZero, "grouped expert routing");
  r.requireNoop("n_topk_groups", isNullOrZero, "grouped expert routing");
  r.requireNoop("n_topk_scores_per_group", isNullOrZero, "grouped expert routing");
  r.requireNoop("norm_topk_prob", anything, "");      // only read by MoE routers
  r.requireNoop("routed_scaling_factor", anything, "");  // only read by MoE routers
  r.requireNoop("sliding_window_size", isNull, "sliding-window attention");
  r.requireNoop("sliding_window_indices", isNull, "sliding-window attention");
  r.requireNoop("sliding_window_layer_placing", isNull, "sliding-window attention");
  r.requireNoop("attention_logit_softcapping", isNull, "attention logit softcapping");
  r.requireNoop("final_logit_softcapping", isNull, "final logit softcapping");
  r.requireNoop("norm_qk", isNullOrFalse, "query/key normalisation");
  r.requireNoop("norm_qk_type", anything, "");  // only read when norm_qk
  r.requireNoop("post_attention_norm", isNullOrFalse, "a post-attention norm");
  r.requireNoop("post_mlp_norm", isNullOrFalse, "a post-MLP norm");
  r.requireNoop("norm_1", isNullOrTrue, "a block without its first norm");
  r.requireNoop("norm_2", isNullOrTrue, "a block without its second norm");
  r.requireNoop("latent_attention", isNull, "multi-head latent attention");
  r.requireNoop("rope_interleave", isNullOrFalse, "interleaved rotary embeddings");
  r.requireNoop("rope_local_base_freq", isNull, "a separate local rope base");
  r.requireNoop("rope_indices", isNull, "per-layer rope selection");

  LoraSettings& l = c.lora;
  l.r = r.integer("lora_r", 0, 0);
  l.alpha = r.number("lora_alpha", 1);
  l.dropout = r.number("lora_dropout", 0);
  LITLORA_CHECK(l.dropout >= 0 && l.dropout < 1, "ERR_CONFIG", "config field lora_dropout: expected 0 ≤ p < 1, got " << l.dropout);
  l.query = r.boolean("lora_query", false);
  l.key = r.boolean("lora_key", false);
  l.value = r.boolean("lora_value", false);
  l.projection = r.boolean("lora_projection", false);
  l.mlp = r.boolean("lora_mlp", false);
  l.head = r.boolean("lora_head", false);

  const auto unknown = r.unused();
  if (!unknown.empty()) {
    std::string list;
    for (const auto& k : unknown) list += (list.empty() ? "" : ", ") + k;
    throw Error("ERR_CONFIG", "unknown config field(s): " + list + " — litgpt's Config has no such field; check the spelling");
  }
  return c;
}

}  // namespace litlora::gpt

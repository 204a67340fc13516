#include "lora_placement.h"

namespace litlora::gpt {

std::vector<LoraPlacement> loraPlacements(const GptConfig& c) {
  const LoraSettings& l = c.lora;
  std::vector<LoraPlacement> out;
  if (l.r <= 0) return out;
  if (l.head) out.push_back({"lm_head", c.nEmbd, c.paddedVocabSize, std::nullopt});
  const bool enable[3] = {l.query, l.key, l.value};
  for (int64_t i = 0; i < c.nLayer; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    if (l.query || l.key || l.value)
      out.push_back({p + "attn.qkv", c.nEmbd, c.qkvOutFeatures(), qkvLoraLayout(c.nHead, c.nQueryGroups, c.headSize, enable)});
    if (l.projection) out.push_back({p + "attn.proj", c.nHead * c.headSize, c.nEmbd, std::nullopt});
    if (l.mlp && c.mlp == MlpKind::LLaMAMoE) {  // litgpt's lora.LLaMAMoE: the router and every expert's LLaMAMLP
      out.push_back({p + "mlp.gate", c.nEmbd, c.nExpert, std::nullopt});
      for (int64_t e = 0; e < c.nExpert; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        out.push_back({x + "fc_1", c.nEmbd, c.moeIntermediateSize, std::nullopt});
        out.push_back({x + "fc_2", c.nEmbd, c.moeIntermediateSize, std::nullopt});
        out.push_back({x + "proj", c.moeIntermediateSize, c.nEmbd, std::nullopt});
      }
    } else if (l.mlp) {
      if (c.mlp == MlpKind::GptNeox) {
        out.push_back({p + "mlp.fc", c.nEmbd, c.intermediateSize, std::nullopt});
      } else {
        out.push_back({p + "mlp.fc_1", c.nEmbd, c.intermediateSize, std::nullopt});
        out.push_back({p + "mlp.fc_2", c.nEmbd, c.intermediateSize, std::nullopt});
      }
      out.push_back({p + "mlp.proj", c.intermediateSize, c.nEmbd, std::nullopt});
    }
  }
  return out;
}

}  // namespace litlora::gpt

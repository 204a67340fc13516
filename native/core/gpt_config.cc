#include "gpt_config.h"

#include <cmath>
#include <utility>

#include "error.h"

namespace litlora::gpt {

void checkGptConfig(const GptConfig& c) {
  auto positive = [](const char* field, int64_t v) {
    LITLORA_CHECK(v > 0, "ERR_CONFIG", "config field " << field << ": expected a positive integer, got " << v);
  };
  positive("blockSize", c.blockSize);
  positive("paddedVocabSize", c.paddedVocabSize);
  positive("nHead", c.nHead);
  positive("headSize", c.headSize);
  positive("nEmbd", c.nEmbd);
  positive("nQueryGroups", c.nQueryGroups);
  positive("intermediateSize", c.intermediateSize);
  LITLORA_CHECK(c.nLayer >= 0, "ERR_CONFIG", "config field nLayer: expected an integer ≥ 0, got " << c.nLayer);
  LITLORA_CHECK(c.nHead % c.nQueryGroups == 0, "ERR_CONFIG",
                "config field nQueryGroups: nHead (" << c.nHead << ") must be divisible by it, got " << c.nQueryGroups);
  LITLORA_CHECK(c.ropeNElem >= 0 && c.ropeNElem <= c.headSize && c.ropeNElem % 2 == 0, "ERR_CONFIG",
                "config field ropeNElem: expected an even number ≤ headSize (" << c.headSize << "), got " << c.ropeNElem);
  LITLORA_CHECK(std::isfinite(c.normEps), "ERR_CONFIG", "config field normEps: expected a finite number, got " << c.normEps);
  LITLORA_CHECK(std::isfinite(c.ropeBase) && c.ropeBase > 0, "ERR_CONFIG", "config field ropeBase: expected a positive number, got " << c.ropeBase);
  LITLORA_CHECK(std::isfinite(c.ropeCondenseRatio) && c.ropeCondenseRatio > 0, "ERR_CONFIG",
                "config field ropeCondenseRatio: expected a positive number, got " << c.ropeCondenseRatio);
  LITLORA_CHECK(!c.attentionScoresScalar || (std::isfinite(*c.attentionScoresScalar) && *c.attentionScoresScalar > 0), "ERR_CONFIG",
                "config field attentionScoresScalar: expected a positive number or null");
  for (double v : {c.ropeFactor, c.ropeLowFreqFactor, c.ropeHighFreqFactor, c.ropeOriginalMaxSeqLen})
    LITLORA_CHECK(std::isfinite(v), "ERR_CONFIG", "config field ropeScaling: its factors must be finite numbers, got " << v);
  LITLORA_CHECK(c.ropeScaling != RopeScaling::Llama3 || c.ropeHighFreqFactor != c.ropeLowFreqFactor, "ERR_CONFIG",
                "config field ropeHighFreqFactor: must differ from ropeLowFreqFactor for Llama 3 rope scaling");
  for (const auto& [field, cap] : {std::pair{"attentionLogitSoftcapping", c.attentionLogitSoftcapping},
                                   std::pair{"finalLogitSoftcapping", c.finalLogitSoftcapping}})
    LITLORA_CHECK(!cap || (std::isfinite(*cap) && *cap > 0), "ERR_CONFIG", "config field " << field << ": expected a positive number or null");
  LITLORA_CHECK(std::isfinite(c.ropeLocalBase) && c.ropeLocalBase >= 0, "ERR_CONFIG",
                "config field ropeLocalBase: expected 0 or a positive number, got " << c.ropeLocalBase);
  LITLORA_CHECK(c.ropeLocalBase == 0 || static_cast<int64_t>(c.ropeLocalLayers.size()) == c.nLayer, "ERR_CONFIG",
                "config field ropeLocalLayers: expected " << c.nLayer << " entries (one per layer), got " << c.ropeLocalLayers.size());
  LITLORA_CHECK(c.slidingWindowSize >= 0, "ERR_CONFIG", "config field slidingWindowSize: expected an integer ≥ 0, got " << c.slidingWindowSize);
  LITLORA_CHECK(c.slidingWindowSize == 0 || static_cast<int64_t>(c.slidingWindowLayers.size()) == c.nLayer, "ERR_CONFIG",
                "config field slidingWindowLayers: expected " << c.nLayer << " entries (one per layer), got " << c.slidingWindowLayers.size());
  if (c.mlp == MlpKind::LLaMAMoE) {
    positive("nExpert", c.nExpert);
    positive("moeIntermediateSize", c.moeIntermediateSize);
    LITLORA_CHECK(c.nExpertPerToken >= 1 && c.nExpertPerToken <= c.nExpert, "ERR_CONFIG",
                  "config field nExpertPerToken: expected 1 ≤ nExpertPerToken ≤ nExpert (" << c.nExpert << "), got " << c.nExpertPerToken);
    LITLORA_CHECK(std::isfinite(c.routedScalingFactor), "ERR_CONFIG",
                  "config field routedScalingFactor: expected a finite number, got " << c.routedScalingFactor);
  }
  const LoraSettings& l = c.lora;
  LITLORA_CHECK(l.r >= 0, "ERR_CONFIG", "config field lora.r: expected an integer ≥ 0, got " << l.r);
  LITLORA_CHECK(std::isfinite(l.alpha), "ERR_CONFIG", "config field lora.alpha: expected a finite number, got " << l.alpha);
  LITLORA_CHECK(l.dropout >= 0 && l.dropout < 1, "ERR_CONFIG", "config field lora.dropout: expected 0 ≤ p < 1, got " << l.dropout);
}

}  // namespace litlora::gpt

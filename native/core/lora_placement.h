// Where litgpt puts LoRA in its GPT (litgpt/lora.py: GPT, CausalSelfAttention, LoRAQKVLinear): which linear layer carries
// which of the LoRA settings' targets, with the shapes of its lora_A and lora_B.
//
//   query / key / value → transformer.h.N.attn.qkv, one fused layer over the enabled q/k/v parts (QkvLoraLayout)
//   projection          → transformer.h.N.attn.proj
//   mlp                 → every MLP linear: mlp.fc, mlp.proj (GptNeoxMLP); mlp.fc_1, mlp.fc_2, mlp.proj (LLaMA, Gemma)
//                         LLaMAMoE: the router mlp.gate and every expert's mlp.experts.E.fc_1, fc_2, proj
//   head                → lm_head
//
// The model (Gpt's constructor) and the streaming merge (merge.cc) both place LoRA with loraPlacements, so an
// adapter the model writes has exactly the tensors the merge expects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gpt_config.h"
#include "gpt_lora.h"

namespace litlora::gpt {

struct LoraPlacement {
  std::string path;  // module path, e.g. "transformer.h.0.attn.qkv"
  int64_t in = 0, out = 0;
  std::optional<QkvLoraLayout> qkv;  // the fused QKV layer: which parts carry LoRA and where their rows go

  // lora_A is (aRows(r), in), lora_B is (bRows(), r): the fused QKV packs one r-row block of A per enabled part
  // and the enabled parts' rows of B.
  int64_t aRows(int64_t r) const { return qkv ? r * qkv->nParts() : r; }
  int64_t bRows() const { return qkv ? static_cast<int64_t>(qkv->rowIndex.size()) : out; }
};

// Every layer that carries LoRA under c.lora, lm_head first, then block by block (qkv, proj, MLP); empty when
// c.lora.r == 0.
std::vector<LoraPlacement> loraPlacements(const GptConfig& c);

}  // namespace litlora::gpt

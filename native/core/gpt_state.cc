// The GPT's state dicts with litgpt's names, strict loading (incl. litgpt ≤ 0.5.4's `attn.attn` files), and
// merging LoRA into the base weights.
#include <ATen/core/grad_mode.h>

#include <map>
#include <set>
#include <sstream>

#include "error.h"
#include "gpt.h"

namespace litlora::gpt {

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string replaceOnce(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// A checkpoint key in today's plain names: LoRA-model base names lose `.linear`, and the interleaved era's
// `attn.attn` (or era C's transitional `attn.linear`) becomes `attn.qkv`. `legacy` says whether the
// key came from the interleaved era, so its rows need re-layout.
std::string canonicalName(const std::string& key, bool& legacy) {
  legacy = false;
  std::string name = key;
  if (name.find(".attn.attn.") != std::string::npos) {
    name = replaceOnce(name, ".attn.attn.", ".attn.qkv.");
    legacy = true;
  } else if (name.find(".attn.linear.") != std::string::npos) {  // era C's legacy LoRA-model name for the qkv
    name = replaceOnce(name, ".attn.linear.", ".attn.qkv.");
    legacy = true;
  }
  for (const char* suffix : {".linear.weight", ".linear.bias"}) {
    if (endsWith(name, suffix)) {
      name = name.substr(0, name.size() - std::string(suffix).size()) + (endsWith(suffix, "weight") ? ".weight" : ".bias");
      break;
    }
  }
  return name;
}

std::string joinList(const std::vector<std::string>& items, size_t limit = 12) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += ", … (" + std::to_string(items.size() - limit) + " more)";
  return out;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor*>> Gpt::baseSlots() {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  auto linearSlots = [&](LinearLayer& l) {
    out.emplace_back(l.path + ".weight", &l.weight);
    if (l.bias.defined()) out.emplace_back(l.path + ".bias", &l.bias);
  };
  auto normSlots = [&](NormLayer& n, const std::string& path) {
    out.emplace_back(path + ".weight", &n.weight);
    if (n.bias.defined()) out.emplace_back(path + ".bias", &n.bias);
  };
  linearSlots(lmHead_);
  out.emplace_back("transformer.wte.weight", &wte_);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = blocks_[i];
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    if (b.norm1.weight.defined()) normSlots(b.norm1, p + "norm_1");
    linearSlots(b.qkv);
    linearSlots(b.proj);
    if (b.normQ.weight.defined()) {  // litgpt's CausalSelfAttention registers norm_q, norm_k after proj
      normSlots(b.normQ, p + "attn.norm_q");
      normSlots(b.normK, p + "attn.norm_k");
    }
    if (b.postAttentionNorm.weight.defined()) normSlots(b.postAttentionNorm, p + "post_attention_norm");
    if (b.norm2.weight.defined()) normSlots(b.norm2, p + "norm_2");
    for (LinearLayer* l : {&b.fc1, &b.fc2, &b.mlpProj})
      if (l->weight.defined()) linearSlots(*l);
    if (b.gate.weight.defined()) linearSlots(b.gate);
    for (Expert& e : b.experts)
      for (LinearLayer* l : {&e.fc1, &e.fc2, &e.proj}) linearSlots(*l);
    if (b.postMlpNorm.weight.defined()) normSlots(b.postMlpNorm, p + "post_mlp_norm");
  }
  normSlots(lnF_, "transformer.ln_f");
  return out;
}

std::vector<std::pair<std::string, const at::Tensor*>> Gpt::baseSlots() const {
  std::vector<std::pair<std::string, const at::Tensor*>> out;
  for (auto& [name, slot] : const_cast<Gpt*>(this)->baseSlots()) out.emplace_back(name, slot);
  return out;
}

std::vector<NamedTensor> Gpt::baseStateDict() const {
  std::vector<NamedTensor> out;
  for (auto& [name, slot] : baseSlots()) out.push_back({name, *slot});
  return out;
}

static std::string loraPath(const LinearLayer& l) {
  return l.qkv && l.qkv->legacyQuirk ? replaceOnce(l.path, ".attn.qkv", ".attn.attn") : l.path;
}

std::vector<NamedTensor> Gpt::loraStateDict() const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& p : loraParameters()) out.push_back({p.name, p.tensor.detach()});
  return out;
}

std::vector<NamedTensor> Gpt::loraParameters() const {
  // litgpt's state-dict order: lm_head first, then the blocks (qkv, proj, mlp).
  std::vector<NamedTensor> out;
  for (const LinearLayer* l : linearLayers()) {
    if (!l->hasLora()) continue;
    out.push_back({loraPath(*l) + ".lora_A", l->loraA});
    out.push_back({loraPath(*l) + ".lora_B", l->loraB});
  }
  return out;
}

std::vector<NamedTensor> Gpt::loraGradients() const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& p : loraParameters()) {
    at::Tensor g = p.tensor.grad();
    out.push_back({p.name, g.defined() ? g.detach() : at::zeros_like(p.tensor).detach()});
  }
  return out;
}

void Gpt::zeroGrad() {
  for (const NamedTensor& p : loraParameters()) p.tensor.mutable_grad() = at::Tensor();
}

std::vector<NamedTensor> Gpt::mergedStateDict() const {
  at::NoGradGuard noGrad;
  std::map<const at::Tensor*, const LinearLayer*> loraWeights;
  for (const LinearLayer* l : linearLayers())
    if (l->hasLora() && !l->merged) loraWeights[&l->weight] = l;
  std::vector<NamedTensor> out;
  for (auto& [name, slot] : baseSlots()) {
    auto it = loraWeights.find(slot);
    if (it == loraWeights.end()) {
      out.push_back({name, *slot});
      continue;
    }
    const LinearLayer& l = *it->second;
    LoraCall call;
    call.scaling = l.scaling;
    call.qkv = l.qkv ? &*l.qkv : nullptr;
    // As litgpt's merge: W + ΔW in the base dtype (computed in float64/float32, rounded once).
    out.push_back({name, mergeLora(l.weight, l.loraA, l.loraB, call, /*inPlace=*/false, /*subtract=*/false)});
  }
  return out;
}

void Gpt::loadStateDict(const std::vector<NamedTensor>& entries, LoadKind kind) {
  at::NoGradGuard noGrad;
  const GptConfig& c = config_;
  std::map<std::string, at::Tensor*> base;
  for (auto& [name, slot] : baseSlots()) base[name] = slot;
  std::map<std::string, LinearLayer*> loraLayers;  // path → layer
  for (LinearLayer* l : linearLayers())
    if (l->hasLora()) loraLayers[l->path] = l;

  struct Pending {
    at::Tensor* slot;
    at::Tensor value;
  };
  std::vector<Pending> pending;
  std::vector<std::string> unexpected, mismatched, duplicated;
  std::set<std::string> seen;
  std::map<LinearLayer*, bool> legacyLora;  // qkv layers whose LoRA tensors came with legacy names

  for (const NamedTensor& e : entries) {
    bool legacy = false;
    const std::string name = canonicalName(e.name, legacy);
    if (!seen.insert(name).second) {
      duplicated.push_back(e.name);
      continue;
    }
    at::Tensor value = e.tensor;
    at::Tensor* slot = nullptr;
    if (endsWith(name, ".lora_A") || endsWith(name, ".lora_B")) {
      const std::string path = name.substr(0, name.size() - 7);
      auto it = loraLayers.find(path);
      if (it != loraLayers.end()) {
        slot = endsWith(name, ".lora_A") ? &it->second->loraA : &it->second->loraB;
        if (legacy) legacyLora[it->second] = true;
      }
    } else if (kind == LoadKind::Base) {
      auto it = base.find(name);
      if (it != base.end()) {
        slot = it->second;
        if (legacy && value.dim() >= 1 && value.size(0) == c.qkvOutFeatures())
          value = qkvReassemble(value, c.nHead, c.nQueryGroups, c.headSize);
      }
    }
    if (!slot) {
      unexpected.push_back(e.name);
      continue;
    }
    if (value.sizes() != slot->sizes()) {
      mismatched.push_back(e.name + " (expected " + shapeString(slot->sizes()) + ", got " + shapeString(value.sizes()) + ")");
      continue;
    }
    pending.push_back({slot, value});
  }

  std::vector<std::string> missing;
  if (kind == LoadKind::Base) {
    for (auto& [name, slot] : baseSlots())
      if (!seen.count(name)) missing.push_back(name);
  } else {
    for (const NamedTensor& p : loraParameters()) {
      bool legacy = false;
      if (!seen.count(canonicalName(p.name, legacy))) missing.push_back(p.name);
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !duplicated.empty()) {
    std::ostringstream msg;
    msg << (kind == LoadKind::Base ? "the checkpoint does not match this model's base weights"
                                   : "the LoRA weights do not match this model's adapter (r, targets and config must be the ones it was trained with)");
    if (!missing.empty()) msg << "; missing keys (" << missing.size() << "): " << joinList(missing);
    if (!unexpected.empty()) msg << "; unexpected keys (" << unexpected.size() << "): " << joinList(unexpected);
    if (!mismatched.empty()) msg << "; shape mismatches (" << mismatched.size() << "): " << joinList(mismatched);
    if (!duplicated.empty()) msg << "; keys given twice (old and new names): " << joinList(duplicated);
    const bool onlyShapes = missing.empty() && unexpected.empty() && duplicated.empty();
    throw Error(onlyShapes ? "ERR_SHAPE" : "ERR_CHECKPOINT_FORMAT", msg.str());
  }
  bool loadsLora = false;
  for (const NamedTensor& e : entries) loadsLora = loadsLora || endsWith(e.name, ".lora_A") || endsWith(e.name, ".lora_B");
  LITLORA_CHECK(!(loadsLora && merged()), "ERR_ARG", "the adapter is merged; unmerge() before loading other LoRA weights");

  for (Pending& p : pending) p.slot->copy_(p.value);
  // Every qkv layer whose LoRA tensors were (re)loaded takes the layout of the era they came from.
  std::set<LinearLayer*> touchedQkv;
  for (const NamedTensor& e : entries) {
    bool legacy = false;
    const std::string name = canonicalName(e.name, legacy);
    if (!(endsWith(name, ".lora_A") || endsWith(name, ".lora_B"))) continue;
    auto it = loraLayers.find(name.substr(0, name.size() - 7));
    if (it != loraLayers.end() && it->second->qkv) touchedQkv.insert(it->second);
  }
  for (LinearLayer* l : touchedQkv) {
    const bool enable[3] = {l->qkv->enable[0], l->qkv->enable[1], l->qkv->enable[2]};
    l->qkv = legacyLora.count(l) ? legacyQkvLoraLayout(c.nHead, c.nQueryGroups, c.headSize, enable)
                                 : qkvLoraLayout(c.nHead, c.nQueryGroups, c.headSize, enable);
  }
  if (kind == LoadKind::Base)
    for (LinearLayer* l : linearLayers()) l->merged = false;  // fresh base weights hold no ΔW
}

void Gpt::merge() {
  at::NoGradGuard noGrad;
  for (LinearLayer* l : linearLayers()) {
    if (!l->hasLora() || l->merged) continue;
    LoraCall call;
    call.scaling = l->scaling;
    call.qkv = l->qkv ? &*l->qkv : nullptr;
    mergeLora(l->weight, l->loraA, l->loraB, call, /*inPlace=*/true, /*subtract=*/false);
    l->merged = true;
  }
}

void Gpt::unmerge() {
  at::NoGradGuard noGrad;
  for (LinearLayer* l : linearLayers()) {
    if (!l->hasLora() || !l->merged) continue;
    LoraCall call;
    call.scaling = l->scaling;
    call.qkv = l->qkv ? &*l->qkv : nullptr;
    mergeLora(l->weight, l->loraA, l->loraB, call, /*inPlace=*/true, /*subtract=*/true);
    l->merged = false;
  }
}

bool Gpt::merged() const {
  for (const LinearLayer* l : linearLayers())
    if (l->hasLora() && l->merged) return true;
  return false;
}

bool Gpt::hasLora() const {
  for (const LinearLayer* l : linearLayers())
    if (l->hasLora()) return true;
  return false;
}

bool Gpt::legacyQkvAdapter() const {
  for (const LinearLayer* l : linearLayers())
    if (l->qkv && l->qkv->legacyQuirk) return true;
  return false;
}

int64_t Gpt::parameterCount() const {
  int64_t n = 0;
  for (auto& [name, slot] : baseSlots()) n += slot->numel();
  return n + loraParameterCount();
}

int64_t Gpt::loraParameterCount() const {
  int64_t n = 0;
  for (const NamedTensor& p : loraParameters()) n += p.tensor.numel();
  return n;
}

}  // namespace litlora::gpt

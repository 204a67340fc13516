#include "train.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <cmath>
#include <map>
#include <mutex>

#include "compat.h"
#include "error.h"

namespace litlora::train {

namespace {

Error nonfiniteOnARank() {
  return Error("ERR_NONFINITE", "the training loss was NaN or infinite on at least one rank in this accumulation window; the "
                                "LoRA weights were not updated on any rank. Lower the learning rate, check the data, or use a "
                                "float32 / bf16-mixed precision.");
}

// Autocast on `device` to bfloat16 for the lifetime of the scope (torch.autocast(device, torch.bfloat16)).
class AutocastScope {
 public:
  AutocastScope(bool enable, at::DeviceType device) : enable_(enable), device_(device) {
    if (!enable_) return;
    prevEnabled_ = compat::autocastEnabled(device_);
    prevDtype_ = compat::autocastDtype(device_);
    compat::setAutocast(device_, true, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enable_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::setAutocast(device_, prevEnabled_, prevDtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enable_;
  at::DeviceType device_;
  bool prevEnabled_ = false;
  at::ScalarType prevDtype_ = at::kBFloat16;
};

std::vector<at::Tensor> definedGrads(const std::vector<NamedTensor>& params) {
  std::vector<at::Tensor> out;
  for (const NamedTensor& p : params)
    if (p.tensor.grad().defined()) out.push_back(p.tensor.grad());
  return out;
}

// bf16-mixed: the trainable weights become float32 (litgpt's fp32 master weights).
std::vector<NamedTensor> prepareParameters(const std::shared_ptr<gpt::Gpt>& model, Precision precision) {
  LITLORA_CHECK(model != nullptr, "ERR_ARG", "trainer: no model");
  std::vector<NamedTensor> params = model->loraParameters();
  LITLORA_CHECK(!params.empty(), "ERR_ARG",
                "trainer: the model has no LoRA parameters to train; create it with lora: { r > 0, targets … }");
  LITLORA_CHECK(!model->merged(), "ERR_ARG", "trainer: the adapter is merged into the base weights; unmerge() before training");
  const at::ScalarType dtype = model->dtype();
  switch (precision) {
    case Precision::Float32:
      LITLORA_CHECK(dtype == at::kFloat, "ERR_DTYPE",
                    "precision 32-true: expected a float32 model, got " << c10::toString(dtype) << "; load it with dtype 'float32'");
      break;
    case Precision::Bf16True:
      LITLORA_CHECK(dtype == at::kBFloat16, "ERR_DTYPE",
                    "precision bf16-true: expected a bfloat16 model, got " << c10::toString(dtype) << "; load it with dtype 'bfloat16'");
      break;
    case Precision::Bf16Mixed: {
      LITLORA_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "ERR_DTYPE",
                    "precision bf16-mixed: expected a float32 or bfloat16 model, got " << c10::toString(dtype));
      at::NoGradGuard noGrad;
      for (NamedTensor& p : params)
        if (p.tensor.scalar_type() != at::kFloat) p.tensor.set_data(p.tensor.detach().to(at::kFloat));
      break;
    }
  }
  return params;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// AdamW

AdamW::AdamW(std::vector<NamedTensor> params, AdamWOptions options) : params_(std::move(params)), options_(options) {
  LITLORA_CHECK(options_.beta1 >= 0 && options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1, "ERR_RANGE",
                "AdamW: expected betas in [0, 1), got (" << options_.beta1 << ", " << options_.beta2 << ")");
  LITLORA_CHECK(options_.eps >= 0, "ERR_RANGE", "AdamW: expected eps ≥ 0, got " << options_.eps);
  LITLORA_CHECK(options_.weightDecay >= 0, "ERR_RANGE", "AdamW: expected weight_decay ≥ 0, got " << options_.weightDecay);
  fusedAvailable_ = compat::kHasFusedAdamW && options_.fused;
  for (const NamedTensor& p : params_) {
    const at::ScalarType t = p.tensor.scalar_type();
    const bool floating = t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
    if (!floating || !(p.tensor.is_cpu() || p.tensor.is_cuda()) || p.tensor.device() != params_.front().tensor.device())
      fusedAvailable_ = false;
  }
}

void AdamW::ensureState() {
  if (!expAvg_.empty()) return;
  at::NoGradGuard noGrad;
  for (const NamedTensor& p : params_) {
    expAvg_.push_back(at::zeros_like(p.tensor, at::MemoryFormat::Preserve));
    expAvgSq_.push_back(at::zeros_like(p.tensor, at::MemoryFormat::Preserve));
    steps_.push_back(at::zeros({}, p.tensor.options().dtype(at::kFloat)));
  }
}

void AdamW::syncStateDtype() {
  if (expAvg_.empty()) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::TensorOptions o = params_[i].tensor.options();
    expAvg_[i] = expAvg_[i].to(o);
    expAvgSq_[i] = expAvgSq_[i].to(o);
    steps_[i] = steps_[i].to(o.device());
  }
  fusedAvailable_ = fusedAvailable_ && options_.fused;
}

void AdamW::step(double lr) {
  LITLORA_CHECK(std::isfinite(lr) && lr >= 0, "ERR_RANGE", "AdamW: expected a learning rate ≥ 0, got " << lr);
  ensureState();
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> p, g, m, v, s;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& grad = params_[i].tensor.grad();
    if (!grad.defined()) continue;
    p.push_back(params_[i].tensor);
    g.push_back(grad);
    m.push_back(expAvg_[i]);
    v.push_back(expAvgSq_[i]);
    s.push_back(steps_[i]);
  }
  ++stepCount_;
  if (p.empty()) return;
  const double b1 = options_.beta1, b2 = options_.beta2, wd = options_.weightDecay, eps = options_.eps;
  if (fusedAvailable_) {
    // The fused kernel wants tensors grouped by device and dtype; LoRA parameters share both.
    std::map<std::pair<int, int>, std::vector<size_t>> groups;
    for (size_t i = 0; i < p.size(); ++i)
      groups[{static_cast<int>(p[i].device().type()) * 1000 + p[i].device().index(), static_cast<int>(p[i].scalar_type())}].push_back(i);
    for (auto& [key, idx] : groups) {
      std::vector<at::Tensor> gp, gg, gm, gv, gs;
      for (size_t i : idx) {
        gp.push_back(p[i]);
        gg.push_back(g[i].scalar_type() == p[i].scalar_type() ? g[i] : g[i].to(p[i].scalar_type()));
        gm.push_back(m[i]);
        gv.push_back(v[i]);
        gs.push_back(s[i]);
      }
      at::_foreach_add_(gs, 1.0);  // the kernel reads the incremented step, as torch's _fused_adamw does
      compat::fusedAdamW(gp, gg, gm, gv, gs, lr, b1, b2, wd, eps);
    }
    return;
  }
  // torch/optim/adamw.py _single_tensor_adamw (amsgrad=False, maximize=False, capturable=False).
  for (size_t i = 0; i < p.size(); ++i) {
    s[i].add_(1.0);
    const double step = s[i].item<double>();
    p[i].mul_(1.0 - lr * wd);
    at::Tensor grad = g[i].scalar_type() == p[i].scalar_type() ? g[i] : g[i].to(p[i].scalar_type());
    m[i].lerp_(grad, 1.0 - b1);
    v[i].mul_(b2).addcmul_(grad, grad, 1.0 - b2);
    const double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
    const double stepSize = lr / bc1;
    at::Tensor denom = (v[i].sqrt() / std::sqrt(bc2)).add_(eps);
    p[i].addcdiv_(m[i], denom, -stepSize);
  }
}

std::vector<NamedTensor> AdamW::state() const {
  std::vector<NamedTensor> out;
  out.push_back({"step", at::full({}, static_cast<double>(stepCount_), at::kFloat)});
  for (size_t i = 0; i < expAvg_.size(); ++i) {
    out.push_back({params_[i].name + ".exp_avg", expAvg_[i].detach().clone()});
    out.push_back({params_[i].name + ".exp_avg_sq", expAvgSq_[i].detach().clone()});
  }
  return out;
}

void AdamW::loadState(const std::vector<NamedTensor>& entries) {
  std::map<std::string, at::Tensor> byName;
  for (const NamedTensor& e : entries) byName[e.name] = e.tensor;
  auto stepIt = byName.find("step");
  LITLORA_CHECK(stepIt != byName.end() && stepIt->second.numel() == 1, "ERR_CHECKPOINT_FORMAT",
                "optimizer state: expected a scalar 'step' entry; the training state file is incomplete");
  const double step = stepIt->second.item<double>();
  LITLORA_CHECK(step >= 0 && std::floor(step) == step, "ERR_CHECKPOINT_FORMAT", "optimizer state: bad step " << step);
  if (step == 0) {
    expAvg_.clear();
    expAvgSq_.clear();
    steps_.clear();
    stepCount_ = 0;
    return;
  }
  std::vector<std::string> problems;
  for (const NamedTensor& p : params_) {
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto it = byName.find(p.name + suffix);
      if (it == byName.end())
        problems.push_back("missing " + p.name + suffix);
      else if (it->second.sizes() != p.tensor.sizes())
        problems.push_back(p.name + suffix + ": expected " + shapeString(p.tensor.sizes()) + ", got " + shapeString(it->second.sizes()));
    }
  }
  if (!problems.empty()) {
    std::string joined;
    for (const std::string& s : problems) joined += (joined.empty() ? "" : "; ") + s;
    throw Error("ERR_CHECKPOINT_FORMAT", "optimizer state does not match this model's LoRA parameters: " + joined +
                                             ". Resume with the same lora_* settings as the run that wrote it.");
  }
  at::NoGradGuard noGrad;
  expAvg_.clear();
  expAvgSq_.clear();
  steps_.clear();
  for (const NamedTensor& p : params_) {
    expAvg_.push_back(byName[p.name + ".exp_avg"].to(p.tensor.options()).clone());
    expAvgSq_.push_back(byName[p.name + ".exp_avg_sq"].to(p.tensor.options()).clone());
    steps_.push_back(at::full({}, step, p.tensor.options().dtype(at::kFloat)));
  }
  stepCount_ = static_cast<int64_t>(step);
}

// ---------------------------------------------------------------------------------------------------------
// Gradients

double gradNorm(const std::vector<NamedTensor>& params) {
  std::vector<at::Tensor> grads = definedGrads(params);
  if (grads.empty()) return 0;
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  std::vector<at::Tensor> asFloat;
  for (const at::Tensor& n : norms) asFloat.push_back(n.to(at::kFloat));
  return at::linalg_vector_norm(at::stack(asFloat), 2).item<double>();
}

double clipGradNorm(const std::vector<NamedTensor>& params, double maxNorm) {
  const double norm = gradNorm(params);
  if (maxNorm > 0 && std::isfinite(norm) && norm > maxNorm) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> grads = definedGrads(params);
    at::_foreach_mul_(grads, maxNorm / (norm + 1e-6));
  }
  return norm;
}

void zeroGrad(const std::vector<NamedTensor>& params) {
  for (const NamedTensor& p : params) p.tensor.mutable_grad() = at::Tensor();  // set_to_none=True, torch's default
}

Precision parsePrecision(const std::string& name) {
  if (name == "32-true" || name == "32") return Precision::Float32;
  if (name == "bf16-true") return Precision::Bf16True;
  if (name == "bf16-mixed") return Precision::Bf16Mixed;
  throw Error("ERR_ARG", "precision: expected '32-true', 'bf16-true' or 'bf16-mixed', got '" + name + "'");
}

std::string precisionName(Precision p) {
  switch (p) {
    case Precision::Float32: return "32-true";
    case Precision::Bf16True: return "bf16-true";
    case Precision::Bf16Mixed: return "bf16-mixed";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------
// Trainer

Trainer::Trainer(std::shared_ptr<gpt::Gpt> model, AdamWOptions options, Precision precision)
    : model_(std::move(model)), params_(prepareParameters(model_, precision)), precision_(precision),
      optimizer_(params_, options) {}

MicroStepResult Trainer::microStep(const at::Tensor& tokens, const at::Tensor& targets, const MicroStepOptions& o) {
  LITLORA_CHECK(o.accumulateCount >= 1, "ERR_RANGE", "microStep: expected accumulateCount ≥ 1, got " << o.accumulateCount);
  MicroStepResult out;
  {
    AutocastScope autocast(precision_ == Precision::Bf16Mixed, model_->device().type());
    gpt::LossResult r;
    // The window's last backward averages gradients over the ranks as they become final; earlier ones only accumulate.
    if (reducer_ && o.step) reducer_->arm();
    try {
      r = model_->loss(tokens, targets, /*backward=*/true, 1.0 / static_cast<double>(o.accumulateCount));
    } catch (...) {
      if (reducer_) reducer_->disarm();
      zeroGrad(params_);  // a half-finished backward must not leak into the next window
      throw;
    }
    out.loss = r.loss;
    out.tokens = r.tokens;
  }
  if (!std::isfinite(out.loss) && group_) {
    // Every rank must reach the step's all-reduce: the flag travels with the gradients and stops all of them there.
    windowNonfinite_ = true;
  } else if (!std::isfinite(out.loss)) {
    zeroGrad(params_);
    throw Error("ERR_NONFINITE", "the training loss is " + std::string(std::isnan(out.loss) ? "NaN" : "infinite") +
                                     "; the LoRA weights were not updated. Lower the learning rate, check the data, or "
                                     "use a float32 / bf16-mixed precision.");
  }
  if (!o.step) return out;
  if (reducer_) {
    const bool nonfinite = reducer_->finish(windowNonfinite_ ? 1.0 : 0.0) > 0;
    windowNonfinite_ = false;
    if (nonfinite) {
      zeroGrad(params_);
      throw nonfiniteOnARank();
    }
  } else if (group_) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> grads;
    for (const NamedTensor& p : params_) {
      // Every rank sends the same list: a parameter without a gradient this window contributes zeros.
      if (!p.tensor.grad().defined()) p.tensor.mutable_grad() = at::zeros_like(p.tensor);
      grads.push_back(p.tensor.grad());
    }
    at::Tensor flag = at::full({1}, windowNonfinite_ ? 1.0 : 0.0, grads.empty() ? at::TensorOptions(at::kFloat) : grads.front().options());
    grads.push_back(flag);
    windowNonfinite_ = false;
    group_->allReduceMean(grads, sync_.bucketBytes);
    if (flag.item<double>() > 0) {
      zeroGrad(params_);
      throw nonfiniteOnARank();
    }
  }
  const double norm = clipGradNorm(params_, o.maxNorm);
  if (!std::isfinite(norm)) {
    zeroGrad(params_);
    throw Error("ERR_NONFINITE", "the gradients are NaN or infinite (global norm " + std::to_string(norm) +
                                     "); the LoRA weights were not updated. Lower the learning rate or set a gradient clip.");
  }
  optimizer_.step(o.lr);
  zeroGrad(params_);
  {
    // An update can overflow even from finite gradients (a huge learning rate): refuse to continue, so that no
    // checkpoint with Inf/NaN weights is ever written.
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> values;
    for (const NamedTensor& p : params_) values.push_back(p.tensor.detach());
    std::vector<at::Tensor> norms;
    for (const at::Tensor& n : at::_foreach_norm(values, 2)) norms.push_back(n.to(at::kFloat));
    const double weightNorm = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
    if (!std::isfinite(weightNorm))
      LITLORA_CHECK(false, "ERR_NONFINITE", "the optimizer step made the LoRA weights NaN or infinite (learning rate " << o.lr
                                                << "); the in-memory adapter is no longer usable. Lower the learning rate or set a gradient clip.");
  }
  out.stepped = true;
  out.gradNorm = norm;
  return out;
}

gpt::LossResult Trainer::evaluate(const at::Tensor& tokens, const at::Tensor& targets) {
  AutocastScope autocast(precision_ == Precision::Bf16Mixed, model_->device().type());
  return model_->loss(tokens, targets, /*backward=*/false);
}

at::Tensor Trainer::forward(const at::Tensor& tokens, bool lastOnly) {
  AutocastScope autocast(precision_ == Precision::Bf16Mixed, model_->device().type());
  at::Tensor logits = model_->forward(tokens, std::nullopt, lastOnly);
  return logits.scalar_type() == at::kFloat ? logits : logits.to(at::kFloat);
}

std::vector<NamedTensor> Trainer::state() const {
  std::vector<NamedTensor> out;
  for (NamedTensor& e : optimizer_.state()) out.push_back({"optimizer." + e.name, e.tensor.to(at::kCPU)});
  out.push_back({"rng.cpu", at::detail::getDefaultCPUGenerator().get_state()});
  if (model_->device().is_cuda() && at::globalContext().hasCUDA()) {
    const auto& gen = at::globalContext().defaultGenerator(model_->device());
    out.push_back({"rng.cuda", gen.get_state()});
  }
  return out;
}

void Trainer::loadState(const std::vector<NamedTensor>& entries) {
  std::vector<NamedTensor> optimizer;
  for (const NamedTensor& e : entries) {
    if (e.name.rfind("optimizer.", 0) == 0) {
      optimizer.push_back({e.name.substr(10), e.tensor});
    } else if (e.name == "rng.cpu") {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(e.tensor.to(at::kCPU).contiguous());
    } else if (e.name == "rng.cuda" && model_->device().is_cuda()) {
      at::Generator gen = at::globalContext().defaultGenerator(model_->device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(e.tensor.to(at::kCPU).contiguous());
    }
  }
  optimizer_.loadState(optimizer);
}

void Trainer::restoreDtype() {
  if (precision_ != Precision::Bf16Mixed || model_->dtype() == at::kFloat) return;
  at::NoGradGuard noGrad;
  for (NamedTensor& p : params_)
    if (p.tensor.scalar_type() != model_->dtype()) p.tensor.set_data(p.tensor.detach().to(model_->dtype()));
  optimizer_.syncStateDtype();
}

void Trainer::setProcessGroup(std::shared_ptr<distributed::ProcessGroup> group, GradientSync sync) {
  LITLORA_CHECK(sync.bucketBytes >= 1, "ERR_RANGE", "distributed.bucketBytes: expected ≥ 1, got " << sync.bucketBytes);
  if (group) {
    std::vector<at::Tensor> values;
    for (const NamedTensor& p : params_) values.push_back(p.tensor.detach());
    group->broadcast(values, 0);
  }
  reducer_.reset();
  group_ = std::move(group);
  sync_ = sync;
  if (group_ && sync.overlap) {
    std::vector<at::Tensor> tensors;
    for (const NamedTensor& p : params_) tensors.push_back(p.tensor);
    reducer_ = std::make_unique<distributed::GradReducer>(group_, tensors, sync.bucketBytes);
  }
  windowNonfinite_ = false;
}

void manualSeed(uint64_t seed) {
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  if (!at::globalContext().hasCUDA()) return;
  const int64_t devices = static_cast<int64_t>(at::detail::getCUDAHooks().deviceCount());
  for (int64_t i = 0; i < devices; ++i) {
    at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
}

}  // namespace litlora::train

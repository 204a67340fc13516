// The training step: AdamW over the LoRA parameters (torch.optim.AdamW's math, decoupled weight decay),
// gradient accumulation, optional global grad-norm clipping, non-finite detection, and the precisions
// litgpt trains LoRA in. Pure libtorch; the TS trainer owns the schedule, data order, logging and files.
//
// One micro-step = forward + chunked cross-entropy + backward of loss/accumulateCount (gradients add up in
// the lora_* .grad), and, when the caller says the accumulation window is complete, the optimizer step and
// zero_grad. That is litgpt's loop (litgpt/finetune/lora.py fit(): `backward(loss / grad_accum_iters)`,
// `optimizer.step(); optimizer.zero_grad(); scheduler.step()`), in one native call.
//
// Precisions (litgpt's Fabric names):
//   "32-true"    float32 everything.
//   "bf16-true"  the model and the LoRA parameters in bfloat16; AdamW state in bfloat16 (torch keeps the
//                state in the parameter dtype).
//   "bf16-mixed" litgpt runs a float32 model under torch.autocast(bfloat16): matmuls in bfloat16, norms,
//                softmax and the loss in float32, float32 trainable weights and AdamW state. Here the LoRA
//                parameters are float32 (upcast on construction if the model was made in bfloat16, which
//                saves the base weights' memory: frozen weights are only ever read as bfloat16 matmul
//                inputs under autocast, so storing them in bfloat16 gives the same products as litgpt's
//                cast-on-use), and forward/backward/evaluate run under autocast(bfloat16) on the model's
//                device. restoreDtype() casts the LoRA parameters back to the model dtype afterwards.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distributed.h"
#include "gpt.h"
#include "grad_reducer.h"

namespace litlora::train {

using gpt::NamedTensor;

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.01;
  // Use at::_fused_adamw_ (one kernel for all parameters) where this libtorch has it for the device; else a
  // per-tensor loop with torch's single-tensor formulas. Both follow torch.optim.AdamW.
  bool fused = true;
};

// torch.optim.AdamW (amsgrad=False, maximize=False) over a fixed list of parameters that carry .grad.
class AdamW {
 public:
  AdamW(std::vector<NamedTensor> params, AdamWOptions options);

  // One update with learning rate lr. Parameters whose .grad is undefined are skipped (as torch does).
  void step(double lr);
  int64_t stepCount() const { return stepCount_; }
  const AdamWOptions& options() const { return options_; }
  bool usesFused() const { return fusedAvailable_; }

  // State as named tensors: `step` (0-dim float32, the common step count) and per parameter
  // `<param>.exp_avg`, `<param>.exp_avg_sq` (copies). loadState checks names and shapes strictly.
  std::vector<NamedTensor> state() const;
  void loadState(const std::vector<NamedTensor>& entries);

  // Moves/casts the moments to the parameters' current dtype (after a precision change of the parameters).
  void syncStateDtype();

 private:
  void ensureState();
  std::vector<NamedTensor> params_;
  AdamWOptions options_;
  std::vector<at::Tensor> expAvg_, expAvgSq_, steps_;  // steps_: one 0-dim float32 per param (fused API)
  int64_t stepCount_ = 0;
  bool fusedAvailable_ = false;
};

// Global L2 norm of the gradients (as torch.nn.utils.clip_grad_norm_ computes it), in float64 on the host.
double gradNorm(const std::vector<NamedTensor>& params);
// Scales every gradient by maxNorm / (norm + 1e-6) when norm > maxNorm (clip_grad_norm_). Returns norm.
double clipGradNorm(const std::vector<NamedTensor>& params, double maxNorm);
void zeroGrad(const std::vector<NamedTensor>& params);

enum class Precision { Float32, Bf16True, Bf16Mixed };
Precision parsePrecision(const std::string& name);
std::string precisionName(Precision p);

struct MicroStepOptions {
  int64_t accumulateCount = 1;  // micro-batches per optimizer step: the loss is backpropagated as loss / count
  bool step = false;            // this micro-batch completes the window: clip, AdamW step, zero_grad
  double lr = 1e-3;
  double maxNorm = 0;           // > 0: clip the global grad norm before the step
};

struct MicroStepResult {
  double loss = 0;       // mean cross-entropy of this micro-batch (unscaled)
  int64_t tokens = 0;    // targets that are not −100
  bool stepped = false;
  double gradNorm = -1;  // global grad norm before clipping, when a step was taken
};

// How a data-parallel trainer averages gradients over the ranks (Trainer::setProcessGroup).
struct GradientSync {
  bool overlap = true;            // each bucket as soon as the backward has finished its gradients
  int64_t bucketBytes = 1 << 20;  // largest bucket
};

// The optimizer, precision handling and step bookkeeping for one model.
class Trainer {
 public:
  Trainer(std::shared_ptr<gpt::Gpt> model, AdamWOptions options, Precision precision);

  // tokens, targets: (B, T) int64 on any device. Throws ERR_NONFINITE (gradients dropped, weights untouched)
  // when the loss or the gradients are NaN/Inf.
  MicroStepResult microStep(const at::Tensor& tokens, const at::Tensor& targets, const MicroStepOptions& options);
  // Loss without gradients, under the training precision (validation).
  gpt::LossResult evaluate(const at::Tensor& tokens, const at::Tensor& targets);
  // Logits under the training precision (sampling during validation).
  at::Tensor forward(const at::Tensor& tokens, bool lastOnly);

  // Optimizer state (see AdamW::state) with an `optimizer.` prefix, plus the random generators' states
  // (`rng.cpu`, and `rng.cuda` where CUDA is initialised) as uint8 tensors.
  std::vector<NamedTensor> state() const;
  void loadState(const std::vector<NamedTensor>& entries);

  // bf16-mixed with a bfloat16 model: casts the LoRA parameters back to the model dtype (for inference
  // after training). No-op otherwise.
  void restoreDtype();

  const AdamW& optimizer() const { return optimizer_; }
  Precision precision() const { return precision_; }
  const std::shared_ptr<gpt::Gpt>& model() const { return model_; }

  // Data-parallel training: copies rank 0's LoRA parameters to every rank (so that all start identical, also
  // after a resume), and from then on averages the gradients over the ranks before each optimizer step (so that
  // the AdamW state stays identical on every rank), in buckets of at most bucketBytes: with overlap, each bucket
  // as soon as the backward of the window's last micro-batch has finished its gradients (grad_reducer.h); without,
  // all after that backward. A non-finite loss on any rank then stops every rank at the step with ERR_NONFINITE,
  // instead of one rank alone.
  void setProcessGroup(std::shared_ptr<distributed::ProcessGroup> group, GradientSync sync = {});
  const std::shared_ptr<distributed::ProcessGroup>& processGroup() const { return group_; }

 private:
  std::shared_ptr<gpt::Gpt> model_;
  std::vector<NamedTensor> params_;
  Precision precision_;
  AdamW optimizer_;
  std::shared_ptr<distributed::ProcessGroup> group_;
  GradientSync sync_;
  std::unique_ptr<distributed::GradReducer> reducer_;  // overlap on; removes its hooks before group_ goes
  bool windowNonfinite_ = false;  // data-parallel: a micro-batch of this window had a non-finite loss
};

// Seeds the default CPU generator (and every CUDA device's) as torch.manual_seed does.
void manualSeed(uint64_t seed);

}  // namespace litlora::train

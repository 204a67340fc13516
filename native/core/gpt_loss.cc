#include "gpt_loss.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "error.h"

namespace litlora::gpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Grads {
  bool hidden = false, hiddenLora = false, lora = false;
};

// Rows per chunk: up to 64M logits (256 MB in float32; 1334 rows of a 50k vocabulary), split evenly. The
// head's two GEMMs run at half speed on small row counts (2 cores, MKL: ~75 GFLOP/s at 333 rows, ~180 at
// 1024 for a 512 × 50304 weight), which costs more than a bigger buffer, and the buffer is still far below
// the several full-size logits tensors eager PyTorch keeps.
int64_t pickChunkRows(int64_t vocab, int64_t rows) {
  const int64_t maxRows = std::max<int64_t>((int64_t{64} << 20) / std::max<int64_t>(vocab, 1), 16);
  const int64_t chunks = std::max<int64_t>((rows + maxRows - 1) / maxRows, 1);
  return std::max<int64_t>((rows + chunks - 1) / chunks, 1);
}

struct Frozen {
  at::Tensor weight, bias, targets;
  at::Tensor* workspace = nullptr;  // the caller's logits buffer (CPU), or null
  double softcap = 0;               // > 0: logits → tanh(logits / softcap) · softcap
};

class FusedHeadLoss : public torch::autograd::Function<FusedHeadLoss> {
 public:
  // C++ custom functions take only defined tensors as inputs: absent optional ones arrive as empty
  // placeholders (flags say which are real), and the frozen inputs travel in `Frozen`, outside autograd.
  static at::Tensor forward(AutogradContext* ctx, at::Tensor hidden, at::Tensor hiddenLora, at::Tensor loraA,
                            at::Tensor loraB, Frozen frozen, double scaling, int64_t chunkRows, bool separateLora,
                            bool lora, bool wantHidden, bool wantHiddenLora, bool wantLora) {
    const at::Tensor& weight = frozen.weight;
    const at::Tensor& bias = frozen.bias;
    const at::Tensor& targets = frozen.targets;
    const at::Tensor& hl = separateLora ? hiddenLora : hidden;
    const int64_t n = hidden.size(0), c = hidden.size(1);

    at::Tensor rows = targets.ne(kIgnoreIndex).nonzero().squeeze(1);  // valid rows
    const int64_t count = rows.numel();
    if (chunkRows <= 0) chunkRows = pickChunkRows(weight.size(0), count);
    at::Tensor hv = hidden.index_select(0, rows);
    at::Tensor hlv = separateLora ? hl.index_select(0, rows) : hv;
    at::Tensor tv = targets.index_select(0, rows);
    at::Tensor la = lora ? at::mm(hlv, loraA.t()) : at::Tensor();  // (count, r)

    const bool anyGrad = wantHidden || wantHiddenLora || wantLora;
    at::Tensor dh = wantHidden ? at::empty({count, c}, hidden.options()) : at::Tensor();
    at::Tensor dhl = (lora && (wantHiddenLora || (!separateLora && wantHidden))) ? at::zeros({count, c}, hl.options().dtype(at::kFloat)) : at::Tensor();
    at::Tensor dA = lora && wantLora ? at::zeros(loraA.sizes(), loraA.options().dtype(at::kFloat)) : at::Tensor();
    at::Tensor dB = lora && wantLora ? at::zeros(loraB.sizes(), loraB.options().dtype(at::kFloat)) : at::Tensor();
    at::Tensor lossSum = at::zeros({}, hidden.options().dtype(at::kFloat));

    for (int64_t start = 0; start < count; start += chunkRows) {
      const int64_t len = std::min(chunkRows, count - start);
      at::Tensor h = hv.narrow(0, start, len);
      at::Tensor t = tv.narrow(0, start, len).unsqueeze(1);
      at::Tensor logits;
      if (frozen.workspace && weight.device().is_cpu() && hidden.scalar_type() == weight.scalar_type()) {
        at::Tensor& ws = *frozen.workspace;
        const int64_t need = len * weight.size(0);
        if (!ws.defined() || ws.numel() < need || ws.scalar_type() != weight.scalar_type())
          ws = at::empty({chunkRows * weight.size(0)}, weight.options());
        logits = ws.narrow(0, 0, need).view({len, weight.size(0)});
        if (bias.defined()) at::addmm_out(logits, bias, h, weight.t());
        else at::mm_out(logits, h, weight.t());
      } else {
        logits = bias.defined() ? at::addmm(bias, h, weight.t()) : at::mm(h, weight.t());
      }
      at::Tensor laChunk = lora ? la.narrow(0, start, len) : at::Tensor();
      // In-place and out= GEMMs are outside autocast's casts (bf16-mixed): give them one dtype explicitly.
      if (lora) logits.addmm_(laChunk.to(logits.scalar_type()), loraB.t().to(logits.scalar_type()), 1.0, scaling);
      at::Tensor z = logits.scalar_type() == at::kFloat ? logits : logits.to(at::kFloat);
      at::Tensor capSlope;  // d(capped)/d(logits) = 1 − tanh², kept for the gradient
      if (frozen.softcap > 0) {
        z.div_(frozen.softcap).tanh_();
        if (anyGrad) capSlope = 1 - z * z;
        z.mul_(frozen.softcap);
      }
      if (!anyGrad) {
        at::_log_softmax_out(z, z, 1, false);  // in place: one fused, row-cached pass
        lossSum.sub_(z.gather(1, t).sum());
        continue;
      }
      // softmax in place, with one exp per logit (log_softmax, then exp, took two). The loss comes from the
      // softmax at each row's largest logit, p_max = 1 / Σ exp(z − max) ≥ 1/V, which never underflows:
      // −log p_t = logsumexp − z_t = max − log p_max − z_t.
      auto [rowMax, argMax] = z.max(1, /*keepdim=*/true);
      const at::Tensor zt = z.gather(1, t);
      at::_softmax_out(z, z, 1, false);
      lossSum.add_((rowMax - z.gather(1, argMax).log() - zt).sum());
      // softmax − onehot(target) = d(loss_sum)/d(logits), in place.
      z.scatter_add_(1, t, at::full({len, 1}, -1.0, z.options()));
      if (capSlope.defined()) z.mul_(capSlope);  // through the cap: d(loss_sum)/d(logits before it)
      at::Tensor p = z.scalar_type() == weight.scalar_type() ? z : z.to(weight.scalar_type());
      if (wantHidden) {
        at::Tensor slot = dh.narrow(0, start, len);
        // CUDA's mm_out wants the output in the inputs' dtype (bf16 weights, fp32 hidden under bf16-mixed).
        if (slot.scalar_type() == p.scalar_type()) at::mm_out(slot, p, weight);
        else slot.copy_(at::mm(p, weight));
      }
      if (lora) {
        at::Tensor pB = at::mm(p, loraB);  // (len, r)
        at::Tensor hlChunk = hlv.narrow(0, start, len);
        if (dhl.defined()) dhl.narrow(0, start, len).add_(at::mm(pB, loraA).to(at::kFloat), scaling);
        if (wantLora) {
          dA.add_(at::mm(pB.t(), hlChunk).to(at::kFloat), scaling);
          dB.add_(at::mm(p.t(), laChunk).to(at::kFloat), scaling);
        }
      }
    }

    // Spread the valid rows' gradients back to (N, C).
    auto spread = [&](const at::Tensor& valid, const at::Tensor& like) {
      return at::zeros({n, c}, like.options()).index_copy_(0, rows, valid.to(like.scalar_type()));
    };
    at::Tensor gradHidden, gradHiddenLora;
    if (wantHidden) gradHidden = spread(dh, hidden);
    if (dhl.defined()) {
      if (separateLora) gradHiddenLora = spread(dhl, hl);
      else gradHidden.index_add_(0, rows, dhl.to(hidden.scalar_type()));
    }
    ctx->saved_data["gradHidden"] = gradHidden;
    ctx->saved_data["gradHiddenLora"] = gradHiddenLora;
    ctx->saved_data["gradA"] = dA.defined() ? dA.to(loraA.scalar_type()) : at::Tensor();
    ctx->saved_data["gradB"] = dB.defined() ? dB.to(loraB.scalar_type()) : at::Tensor();
    ctx->saved_data["count"] = count;
    return lossSum.div_(static_cast<double>(std::max<int64_t>(count, 1)));
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    at::Tensor g = gradOutputs[0].to(at::kFloat) / static_cast<double>(std::max<int64_t>(ctx->saved_data["count"].toInt(), 1));
    auto scaled = [&](const char* key) -> at::Tensor {
      at::Tensor t = ctx->saved_data[key].toTensor();
      return t.defined() ? t * g.to(t.scalar_type()) : at::Tensor();
    };
    variable_list grads = {scaled("gradHidden"), scaled("gradHiddenLora"), scaled("gradA"), scaled("gradB")};
    grads.resize(12);  // no gradient for the non-tensor arguments
    return grads;
  }
};

}  // namespace

HeadLoss headCrossEntropy(const at::Tensor& hidden, const at::Tensor& hiddenLora, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& loraA, const at::Tensor& loraB, double scaling,
                          const at::Tensor& targets, int64_t chunkRows, at::Tensor* workspace, double softcap) {
  LITLORA_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1), "ERR_SHAPE",
                "head loss: expected hidden (N, C) and weight (V, C), got " << shapeString(hidden.sizes()) << " and "
                                                                             << shapeString(weight.sizes()));
  LITLORA_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0), "ERR_SHAPE",
                "head loss: expected targets (" << hidden.size(0) << "), got " << shapeString(targets.sizes()));
  const bool gradMode = at::GradMode::is_enabled();
  const bool wantHidden = gradMode && hidden.requires_grad();
  const bool wantHiddenLora = gradMode && hiddenLora.defined() && hiddenLora.requires_grad();
  const bool wantLora = gradMode && loraA.defined() && (loraA.requires_grad() || loraB.requires_grad());
  HeadLoss out;
  at::Tensor placeholder = at::empty({0}, hidden.options());
  out.loss = FusedHeadLoss::apply(hidden, hiddenLora.defined() ? hiddenLora : placeholder,
                                  loraA.defined() ? loraA : placeholder, loraB.defined() ? loraB : placeholder,
                                  Frozen{weight, bias, targets, workspace, softcap}, scaling, chunkRows, hiddenLora.defined(), loraA.defined(),
                                  wantHidden, wantHiddenLora, wantLora);
  out.tokens = targets.ne(kIgnoreIndex).sum().item<int64_t>();
  return out;
}

}  // namespace litlora::gpt

// LoRA linear ops (see lora.h for the math, the dtype rule and the error contract).
//
// Two ways to compute the same thing when dropout is off:
//   skinny  y = x·Wᵀ (+b), then y += s·(x·Aᵀ)·Bᵀ accumulated into y's columns (addmm_, beta = 1)
//   merged  y = x·(W + s·BA)ᵀ (+b): the rank-r update costs 2·out·r·in flops once instead of two skinny
//           GEMMs over every token. Only for fp32/fp64 weights: merging into a 16-bit weight would round it.
// The backward's gradX is gradY·W + s·(gradY·B)·A, fused the same way (addmm_ into gradX, or gradY·(W + s·BA)).
// gradA and gradB need x·Aᵀ and gradY·B on either path.
#include "lora.h"

#include <ATen/ATen.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

#include "dtype.h"
#include "error.h"
#include "lora_lowrank.h"
#include "row_linear.h"
#include "scratch_pool.h"

namespace litlora::lora {

namespace {

bool isSupportedFloat(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}

bool is16Bit(at::ScalarType t) { return t == at::kBFloat16 || t == at::kHalf; }

std::string deviceString(const at::Device& d) { return d.str(); }

// Everything an op needs to know about the adapter pair, validated once.
struct Plan {
  int64_t in = 0, out = 0, r = 0, parts = 1, packedRows = 0;
  std::vector<Segment> segments;
  at::ScalarType compute = at::kFloat;  // the weight's dtype
  bool mixed = false;                   // fp32 adapters next to a 16-bit weight

  // One segment over every weight row: a plain LoRA linear (or q, k and v all enabled), no zero-pad.
  bool plain() const { return segments.size() == 1 && segments[0].rows == out; }
};

void checkDefined(const at::Tensor& t, const char* op, const char* name) {
  LITLORA_CHECK(t.defined(), "ERR_ARG", op << ": " << name << " is required, got an undefined tensor");
}

void checkScalars(const Options& o, const char* op, bool withDropout) {
  LITLORA_CHECK(std::isfinite(o.scaling), "ERR_RANGE",
                op << ": scaling: expected a finite number (alpha / r), got " << o.scaling);
  if (withDropout) {
    LITLORA_CHECK(std::isfinite(o.dropout) && o.dropout >= 0 && o.dropout < 1, "ERR_RANGE",
                  op << ": dropout: expected a probability in [0, 1), got " << o.dropout);
  }
}

Plan planFor(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& o, const char* op) {
  checkDefined(weight, op, "weight");
  checkDefined(A, op, "loraA");
  checkDefined(B, op, "loraB");
  LITLORA_CHECK(weight.dim() == 2, "ERR_SHAPE",
                op << ": weight: expected a 2-D tensor [out, in], got shape " << shapeString(weight.sizes()));
  LITLORA_CHECK(A.dim() == 2, "ERR_SHAPE",
                op << ": loraA: expected a 2-D tensor [r, in], got shape " << shapeString(A.sizes()));
  LITLORA_CHECK(B.dim() == 2, "ERR_SHAPE",
                op << ": loraB: expected a 2-D tensor [out, r], got shape " << shapeString(B.sizes()));
  Plan p;
  p.out = weight.size(0);
  p.in = weight.size(1);
  p.compute = weight.scalar_type();
  LITLORA_CHECK(isSupportedFloat(p.compute), "ERR_DTYPE",
                op << ": weight: expected float32, float64, bfloat16 or float16, got " << dtypeName(p.compute));
  LITLORA_CHECK(A.scalar_type() == B.scalar_type(), "ERR_DTYPE",
                op << ": loraB: expected the dtype of loraA (" << dtypeName(A.scalar_type()) << "), got "
                   << dtypeName(B.scalar_type()));
  p.mixed = A.scalar_type() != p.compute;
  LITLORA_CHECK(!p.mixed || (A.scalar_type() == at::kFloat && is16Bit(p.compute)), "ERR_DTYPE",
                op << ": loraA: expected the weight's dtype (" << dtypeName(p.compute) << ")"
                   << (is16Bit(p.compute) ? " or float32" : "") << ", got " << dtypeName(A.scalar_type()));
  LITLORA_CHECK(A.device() == weight.device(), "ERR_DEVICE",
                op << ": loraA: expected device " << deviceString(weight.device()) << " (the weight's), got "
                   << deviceString(A.device()) << "; move it with tensor.to({ device })");
  LITLORA_CHECK(B.device() == weight.device(), "ERR_DEVICE",
                op << ": loraB: expected device " << deviceString(weight.device()) << " (the weight's), got "
                   << deviceString(B.device()) << "; move it with tensor.to({ device })");
  LITLORA_CHECK(A.size(1) == p.in, "ERR_SHAPE",
                op << ": loraA: expected shape [r, " << p.in << "] (in = weight.shape[1]), got "
                   << shapeString(A.sizes()));

  if (!o.qkv) {
    p.r = A.size(0);
    LITLORA_CHECK(p.r > 0, "ERR_RANGE", op << ": loraA: expected rank r >= 1, got r = 0 (shape "
                                           << shapeString(A.sizes()) << "); r = 0 means no LoRA: use the plain linear");
    LITLORA_CHECK(B.size(0) == p.out && B.size(1) == p.r, "ERR_SHAPE",
                  op << ": loraB: expected shape [" << p.out << ", " << p.r << "] (out = weight.shape[0], r = loraA.shape[0]), got "
                     << shapeString(B.sizes()));
    p.parts = 1;
    p.packedRows = p.out;
    p.segments = {Segment{0, 0, 0, p.out}};
    return p;
  }

  const QkvSpec& q = *o.qkv;
  LITLORA_CHECK(q.nHead > 0 && q.nQueryGroups > 0 && q.headSize > 0 && q.nHead % q.nQueryGroups == 0, "ERR_RANGE",
                op << ": qkv: expected positive nHead, nQueryGroups, headSize with nHead % nQueryGroups == 0, got nHead="
                   << q.nHead << " nQueryGroups=" << q.nQueryGroups << " headSize=" << q.headSize);
  const int64_t fusedRows = (q.nHead + 2 * q.nQueryGroups) * q.headSize;
  LITLORA_CHECK(p.out == fusedRows, "ERR_SHAPE",
                op << ": weight: expected " << fusedRows << " rows for a fused qkv ((nHead + 2·nQueryGroups)·headSize), got shape "
                   << shapeString(weight.sizes()));
  p.parts = int64_t(q.enable[0]) + int64_t(q.enable[1]) + int64_t(q.enable[2]);
  LITLORA_CHECK(p.parts > 0, "ERR_RANGE", op << ": qkv.enable: expected at least one of q, k, v enabled, got none");
  LITLORA_CHECK(A.size(0) > 0 && A.size(0) % p.parts == 0, "ERR_RANGE",
                op << ": loraA: expected shape [r·" << p.parts << ", " << p.in << "] with r >= 1 (" << p.parts
                   << " enabled parts), got " << shapeString(A.sizes()));
  p.r = A.size(0) / p.parts;
  p.segments = qkvSegments(q);
  p.packedRows = 0;
  const int64_t sizes[3] = {q.nHead * q.headSize, q.nQueryGroups * q.headSize, q.nQueryGroups * q.headSize};
  for (int i = 0; i < 3; ++i) p.packedRows += q.enable[i] ? sizes[i] : 0;
  LITLORA_CHECK(B.size(0) == p.packedRows && B.size(1) == p.r, "ERR_SHAPE",
                op << ": loraB: expected shape [" << p.packedRows << ", " << p.r
                   << "] (rows of the enabled q/k/v parts, r = loraA.shape[0] / " << p.parts << "), got "
                   << shapeString(B.sizes()));
  return p;
}

void checkActivation(const at::Tensor& t, const Plan& p, const at::Tensor& weight, const char* op, const char* name,
                     int64_t lastDim) {
  checkDefined(t, op, name);
  LITLORA_CHECK(t.dim() >= 1 && t.size(-1) == lastDim, "ERR_SHAPE",
                op << ": " << name << ": expected shape [..., " << lastDim << "], got " << shapeString(t.sizes()));
  LITLORA_CHECK(t.scalar_type() == p.compute, "ERR_DTYPE",
                op << ": " << name << ": expected the weight's dtype " << dtypeName(p.compute) << ", got "
                   << dtypeName(t.scalar_type()) << "; convert it with tensor.to({ dtype })");
  LITLORA_CHECK(t.device() == weight.device(), "ERR_DEVICE",
                op << ": " << name << ": expected device " << deviceString(weight.device()) << " (the weight's), got "
                   << deviceString(t.device()));
}

void checkBias(const at::Tensor& bias, const Plan& p, const at::Tensor& weight, const char* op) {
  if (!bias.defined()) return;
  LITLORA_CHECK(bias.dim() == 1 && bias.size(0) == p.out, "ERR_SHAPE",
                op << ": bias: expected shape [" << p.out << "], got " << shapeString(bias.sizes()));
  LITLORA_CHECK(bias.scalar_type() == p.compute, "ERR_DTYPE",
                op << ": bias: expected the weight's dtype " << dtypeName(p.compute) << ", got " << dtypeName(bias.scalar_type()));
  LITLORA_CHECK(bias.device() == weight.device(), "ERR_DEVICE",
                op << ": bias: expected device " << deviceString(weight.device()) << ", got " << deviceString(bias.device()));
}

bool dropoutActive(const Options& o) { return o.training && o.dropout > 0; }

// W + s·zero_pad(BA) in W's dtype (fp32/fp64 only), for the merged path: a temporary that lives for one GEMM,
// so on the CPU it comes from the scratch pool (a fresh weight-sized buffer page-faults on every call).
at::Tensor mergedWeight(const at::Tensor& weight, const at::Tensor& Ac, const at::Tensor& Bc, const Plan& p, double s) {
  at::Tensor merged = weight.device().is_cpu() ? scratch_pool::lease(weight.sizes(), weight.scalar_type())
                                               : at::empty_like(weight, at::MemoryFormat::Contiguous);
  if (p.plain()) {
    if (lora_lowrank::mergeApplies(weight, Ac, Bc)) {
      lora_lowrank::mergeInto(weight, Ac, Bc, s, merged);  // CPU fp32: one pass over W
    } else {
      at::addmm_out(merged, weight, Bc, Ac, /*beta=*/1, /*alpha=*/s);  // W copied in, then the rank-r GEMM with beta = 1
    }
    return merged;
  }
  merged.copy_(weight);
  for (const Segment& seg : p.segments) {
    merged.narrow(0, seg.outRow, seg.rows)
        .addmm_(Bc.narrow(0, seg.bRow, seg.rows), Ac.narrow(0, seg.part * p.r, p.r), /*beta=*/1, /*alpha=*/s);
  }
  return merged;
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<Segment> qkvSegments(const QkvSpec& q) {
  const int64_t hs = q.headSize;
  const int64_t sizes[3] = {q.nHead * hs, q.nQueryGroups * hs, q.nQueryGroups * hs};
  const bool all = q.enable[0] && q.enable[1] && q.enable[2];
  std::vector<Segment> segments;
  int64_t part = 0, bRow = 0;
  for (int i = 0; i < 3; ++i) {
    if (!q.enable[i]) continue;
    if (!q.interleaved || all) {
      // [Q|K|V] rows; or litgpt's quirk: with q, k and v all enabled, zero_pad is skipped and the packed
      // [ΔQ;ΔK;ΔV] rows land on rows 0..out-1 in storage order, whatever the layout.
      const int64_t outRow = i == 0 ? 0 : (i == 1 ? sizes[0] : sizes[0] + sizes[1]);
      segments.push_back({part, bRow, outRow, sizes[i]});
    } else {
      // Interleaved: group g holds [q_per_kv heads of q | k head | v head]; a part's packed rows follow its
      // rows in ascending order, i.e. group by group.
      const int64_t qPerKv = q.nHead / q.nQueryGroups;
      const int64_t groupRows = (qPerKv + 2) * hs;
      const int64_t rowsPerGroup = i == 0 ? qPerKv * hs : hs;
      const int64_t offsetInGroup = i == 0 ? 0 : (i == 1 ? qPerKv * hs : (qPerKv + 1) * hs);
      for (int64_t g = 0; g < q.nQueryGroups; ++g) {
        segments.push_back({part, bRow + g * rowsPerGroup, g * groupRows + offsetInGroup, rowsPerGroup});
      }
    }
    bRow += sizes[i];
    ++part;
  }
  return segments;
}

namespace {

// Flop-equivalent costs weigh bytes moved as kFlopsPerByte flops (a CPU's GEMM rate over its memory bandwidth,
// order of magnitude).
constexpr double kFlopsPerByte = 16.0;

// The choice that needs no cost model: dropout acts on x before A, which no merged weight can express, and a
// 16-bit merged weight would be rounded; LITLORA_LORA_PATH forces a path (tests, benchmarks).
std::optional<Path> fixedPath(at::ScalarType dtype, bool dropoutOn) {
  if (dropoutOn || (dtype != at::kFloat && dtype != at::kDouble)) return Path::Skinny;
  if (const char* forced = std::getenv("LITLORA_LORA_PATH")) {
    if (std::strcmp(forced, "skinny") == 0) return Path::Skinny;
    if (std::strcmp(forced, "merged") == 0) return Path::Merged;
  }
  return std::nullopt;
}

// W + s·BA built into a buffer: B·A once, plus copying W in and the GEMM's read and write of the copy.
double mergedWeightCost(int64_t in, int64_t out, int64_t r, at::ScalarType dtype) {
  const double elt = dtype == at::kDouble ? 8.0 : 4.0;
  return 2.0 * out * double(r) * in + kFlopsPerByte * elt * 4.0 * out * in;
}

}  // namespace

Path choosePath(int64_t tokens, int64_t in, int64_t out, int64_t r, int64_t parts, at::ScalarType dtype,
                bool dropoutOn) {
  if (auto fixed = fixedPath(dtype, dropoutOn)) return *fixed;
  // Skinny: x·Aᵀ and (xA)·Bᵀ over all tokens, plus reading x and re-reading/writing the output columns.
  const double elt = dtype == at::kDouble ? 8.0 : 4.0;
  const double rr = double(r) * double(parts);
  const double skinny = 2.0 * tokens * rr * in + 2.0 * tokens * out * r + kFlopsPerByte * elt * tokens * (in + 2.0 * out);
  return mergedWeightCost(in, out, r, dtype) < skinny ? Path::Merged : Path::Skinny;
}

Path chooseGradXPath(int64_t tokens, int64_t in, int64_t out, int64_t r, int64_t parts, at::ScalarType dtype,
                     bool dropoutOn) {
  if (auto fixed = fixedPath(dtype, dropoutOn)) return *fixed;
  // gradY·B is at hand either way (gradA needs it). Skinny: (gradY·B)·A added into gradX, reading and writing
  // its N·in values. The merged weight wins for square layers and loses once out is several times in (8 ms
  // against 2.4 ms at 4096 tokens × 2048→8192, r = 8).
  const double elt = dtype == at::kDouble ? 8.0 : 4.0;
  const double skinny = 2.0 * tokens * double(r) * double(parts) * in + kFlopsPerByte * elt * 2.0 * tokens * in;
  return mergedWeightCost(in, out, r, dtype) < skinny ? Path::Merged : Path::Skinny;
}

at::Tensor dropoutMask(const at::Tensor& like, double p, uint64_t seed) {
  at::Generator gen;
  {
    // A private generator of the right kind (CPU or CUDA), so the mask depends on the seed alone.
    at::Generator base = at::globalContext().defaultGenerator(like.device());
    std::lock_guard<std::mutex> lock(base.mutex());
    gen = base.clone();
  }
  gen.set_current_seed(seed);
  at::Tensor mask = at::empty(like.sizes(), like.options().memory_format(at::MemoryFormat::Contiguous));
  mask.bernoulli_(1.0 - p, gen);
  mask.div_(1.0 - p);  // as torch's dropout: input · (mask / (1 − p))
  return mask;
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                   const at::Tensor& B, const Options& o, const at::Tensor& mask) {
  const char* op = "lora.forward";
  const Plan p = planFor(weight, A, B, o, op);
  checkScalars(o, op, /*withDropout=*/true);
  checkActivation(x, p, weight, op, "x", p.in);
  checkBias(bias, p, weight, op);

  const at::Tensor x2 = x.reshape({-1, p.in});  // (N, in)
  const at::Tensor Ac = A.to(p.compute), Bc = B.to(p.compute);
  const bool drop = dropoutActive(o);
  const double s = o.scaling;
  at::Tensor y;
  if (choosePath(x2.size(0), p.in, p.out, p.r, p.parts, p.compute, drop) == Path::Merged) {
    const at::Tensor merged = mergedWeight(weight, Ac, Bc, p, s);
    y = bias.defined() ? at::addmm(bias, x2, merged.t()) : at::mm(x2, merged.t());
  } else {
    if (row_linear::applies(x2, weight, bias)) {
      y = row_linear::rowLinear(x2, weight, bias);  // one row (decoding): a bandwidth-bound matrix-vector product
    } else {
      y = bias.defined() ? at::addmm(bias, x2, weight.t()) : at::mm(x2, weight.t());  // (N, out)
    }
    const at::Tensor xd = drop ? x2 * (mask.defined() ? mask.view({-1, p.in}) : dropoutMask(x2, o.dropout, o.seed)) : x2;
    const at::Tensor xA = at::mm(xd, Ac.t());  // (N, r·parts)
    for (const Segment& seg : p.segments) {
      // Accumulate into y's columns: no second (N, out) tensor.
      y.narrow(1, seg.outRow, seg.rows)
          .addmm_(xA.narrow(1, seg.part * p.r, p.r), Bc.narrow(0, seg.bRow, seg.rows).t(), /*beta=*/1, /*alpha=*/s);
    }
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = p.out;
  return y.view(shape);
}

namespace {

// gradA, gradB and s·gradY·B through ATen GEMMs: any dtype and device, dropout, fused q/k/v segments.
void lowRankGrads(const at::Tensor& x2, const at::Tensor& g2, const at::Tensor& Ac, const at::Tensor& Bc, const Plan& p,
                  double s, const at::Tensor& mask, Grads& g, at::Tensor& gYB) {
  const int64_t n = x2.size(0), rr = p.r * p.parts;
  const at::Tensor xd = mask.defined() ? x2 * mask : x2;
  at::Tensor xA = at::mm(xd, Ac.t());  // (N, r·parts)
  if (p.plain()) {
    gYB = at::mm(g2, Bc);
  } else {
    gYB = at::zeros({n, rr}, g2.options());
    for (const Segment& seg : p.segments) {
      gYB.narrow(1, seg.part * p.r, p.r)
          .addmm_(g2.narrow(1, seg.outRow, seg.rows), Bc.narrow(0, seg.bRow, seg.rows));
    }
  }
  gYB.mul_(s);
  xA.mul_(s);

  g.gradA = at::mm(gYB.t(), xd);  // (r·parts, in)
  g.gradB = at::empty({p.packedRows, p.r}, Bc.options());
  for (const Segment& seg : p.segments) {
    at::Tensor dst = g.gradB.narrow(0, seg.bRow, seg.rows);  // contiguous rows
    if (p.r < 16 && x2.device().is_cpu()) {
      // gradBᵀ = (xA)ᵀ·gradY, transposed back: MKL's (rows × N)·(N × r) product with a transposed left operand
      // runs ~8× slower at r = 8 than this (r × N)·(N × rows) one (19 ms vs 2.6 ms at 4096 tokens, 2048 rows);
      // from r = 16 on the two are even.
      dst.copy_(at::mm(xA.narrow(1, seg.part * p.r, p.r).t(), g2.narrow(1, seg.outRow, seg.rows)).t());
    } else {
      at::mm_out(dst, g2.narrow(1, seg.outRow, seg.rows).t(), xA.narrow(1, seg.part * p.r, p.r));
    }
  }
}

}  // namespace

Grads backward(const at::Tensor& gradY, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& A,
               const at::Tensor& B, const Options& o, bool wantGradX, const at::Tensor& givenMask) {
  const char* op = "lora.backward";
  const Plan p = planFor(weight, A, B, o, op);
  checkScalars(o, op, /*withDropout=*/true);
  checkActivation(x, p, weight, op, "x", p.in);
  checkActivation(gradY, p, weight, op, "gradY", p.out);
  std::vector<int64_t> yShape(x.sizes().begin(), x.sizes().end());
  yShape.back() = p.out;
  LITLORA_CHECK(gradY.sizes().vec() == yShape, "ERR_SHAPE",
                op << ": gradY: expected the output's shape " << shapeString(yShape) << ", got " << shapeString(gradY.sizes()));

  const at::Tensor x2 = x.reshape({-1, p.in});     // (N, in)
  const at::Tensor g2 = gradY.reshape({-1, p.out});  // (N, out)
  const at::Tensor Ac = A.to(p.compute), Bc = B.to(p.compute);
  const bool drop = dropoutActive(o);
  const double s = o.scaling;
  const int64_t n = x2.size(0);

  const at::Tensor mask =
      !drop ? at::Tensor() : (givenMask.defined() ? givenMask.view({-1, p.in}) : dropoutMask(x2, o.dropout, o.seed));
  Grads g;
  at::Tensor gYB;  // s · gradY·B per part: (N, r·parts)
  if (!drop && p.plain() && lora_lowrank::applies(x2, g2, Ac, Bc)) {
    // CPU fp32: x·Aᵀ, gradY·B, gradA and gradB in one pass over x and gradY (lora_lowrank.h).
    lora_lowrank::Grads low = lora_lowrank::grads(x2, g2, Ac, Bc, s);
    g.gradA = std::move(low.gradA);
    g.gradB = std::move(low.gradB);
    gYB = std::move(low.scaledGradYB);
  } else {
    lowRankGrads(x2, g2, Ac, Bc, p, s, mask, g, gYB);
  }
  if (!wantGradX) {
    // The caller's x needs no gradient (the first block's input, from a frozen embedding): the largest GEMM of
    // the backward is skipped.
  } else if (drop) {
    // The mask sits between x and A, so the LoRA part of gradX is masked element-wise after its GEMM: one
    // (N, in) temporary here, as in any dropout backward.
    g.gradX = at::mm(g2, weight);
    g.gradX.addcmul_(at::mm(gYB, Ac), mask);
  } else if (chooseGradXPath(n, p.in, p.out, p.r, p.parts, p.compute, false) == Path::Merged) {
    g.gradX = at::mm(g2, mergedWeight(weight, Ac, Bc, p, s));
  } else {
    g.gradX = at::mm(g2, weight);
    g.gradX.addmm_(gYB, Ac);  // fused into gradX's storage (beta = 1)
  }
  if (g.gradX.defined()) g.gradX = g.gradX.view(x.sizes());
  if (p.mixed) {
    g.gradA = g.gradA.to(A.scalar_type());
    g.gradB = g.gradB.to(B.scalar_type());
  }
  return g;
}

namespace {

at::Tensor mergeImpl(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& o, bool inPlace,
                     double sign, const char* op) {
  const Plan p = planFor(weight, A, B, o, op);
  checkScalars(o, op, /*withDropout=*/false);
  at::Tensor target = inPlace ? weight : weight.clone();
  const double alpha = sign * o.scaling;
  // One cuBLAS addmm_ straight into a bf16 weight would avoid the fp32 temporary, but on an H200 it came out
  // up to 2 bf16 ulps away from W + s·BA rounded once (twice PyTorch's error): cuBLAS does not round once
  // there. So every dtype takes the exact path below.
  // fp32 for 16-bit weights; fp64 for fp32 weights, so that W + ΔW is rounded exactly once and unmerge with
  // the identical ΔW restores W bit for bit wherever the merge itself lost nothing (see docs/lora-ops.md).
  if (target.device().is_cpu() && target.is_contiguous()) {
    // On the CPU, in row blocks of 256 K elements through mergeRows (the same arithmetic, element for element),
    // whose float64 scratch stays in cache and is allocated once: the chunked loop below allocates a full-size
    // mixed-dtype temporary per chunk and took 28–34 ms for a 2048 × 2048 merge, 3–12× litgpt's fp32 merge.
    // CUDA keeps the loop: it was checked against PyTorch on an H200, the block path has not been yet.
    Options signedOptions = o;
    signedOptions.scaling = alpha;
    const int64_t blockRows = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, p.in));
    at::Tensor scratch;
    for (int64_t row = 0; row < p.out; row += blockRows) {
      at::Tensor block = target.narrow(0, row, std::min(blockRows, p.out - row));
      mergeRows(weight, A, B, signedOptions, row, block, scratch);  // in place: each block reads its rows first
    }
    return target;
  }
  const at::ScalarType compute = is16Bit(p.compute) ? at::kFloat : at::kDouble;
  const at::Tensor Ac = A.to(compute), Bc = B.to(compute);
  // Row chunks bound the temporary ΔW (about 4 M elements) for huge weights such as lm_head.
  const int64_t chunkRows = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, p.in));
  for (const Segment& seg : p.segments) {
    for (int64_t start = 0; start < seg.rows; start += chunkRows) {
      const int64_t rows = std::min(chunkRows, seg.rows - start);
      const at::Tensor delta = at::mm(Bc.narrow(0, seg.bRow + start, rows), Ac.narrow(0, seg.part * p.r, p.r));
      // add_ promotes to the compute dtype, adds there, and rounds once into the weight's dtype.
      target.narrow(0, seg.outRow + start, rows).add_(delta, alpha);
    }
  }
  return target;
}

// ---- autograd ----

void saveOptions(torch::autograd::AutogradContext* ctx, const Options& o) {
  ctx->saved_data["scaling"] = o.scaling;
  ctx->saved_data["dropout"] = o.dropout;
  ctx->saved_data["training"] = o.training;
  ctx->saved_data["seed"] = static_cast<int64_t>(o.seed);
  if (o.qkv) {
    const QkvSpec& q = *o.qkv;
    ctx->saved_data["qkv"] = std::vector<int64_t>{q.nHead, q.nQueryGroups, q.headSize, q.enable[0], q.enable[1],
                                                  q.enable[2], q.interleaved};
  }
}

Options loadOptions(torch::autograd::AutogradContext* ctx) {
  Options o;
  o.scaling = ctx->saved_data["scaling"].toDouble();
  o.dropout = ctx->saved_data["dropout"].toDouble();
  o.training = ctx->saved_data["training"].toBool();
  o.seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
  auto it = ctx->saved_data.find("qkv");
  if (it != ctx->saved_data.end()) {
    auto v = it->second.toIntVector();
    QkvSpec q;
    q.nHead = v[0];
    q.nQueryGroups = v[1];
    q.headSize = v[2];
    q.enable[0] = v[3];
    q.enable[1] = v[4];
    q.enable[2] = v[5];
    q.interleaved = v[6];
    o.qkv = q;
  }
  return o;
}

struct LinearFunction : public torch::autograd::Function<LinearFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& A, const at::Tensor& B, const Options& o) {
    // The inputs are saved, and the dropout mask when dropout is on: the backward recomputes x·Aᵀ (N × r), but
    // drawing the mask again from the seed took as long as a small GEMM (bernoulli_ on the CPU generator: 2 ms
    // for 1024 × 512), while keeping it costs one (N, in) float tensor per layer until the backward.
    const at::Tensor mask = dropoutActive(o) ? dropoutMask(x.reshape({-1, weight.size(1)}), o.dropout, o.seed) : at::Tensor();
    ctx->save_for_backward({x, weight, A, B, mask});
    saveOptions(ctx, o);
    return lora::forward(x, weight, bias, A, B, o, mask);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const Grads g = lora::backward(grads[0].contiguous(), saved[0], saved[1], saved[2], saved[3], loadOptions(ctx),
                                   /*wantGradX=*/ctx->needs_input_grad(0), /*mask=*/saved[4]);
    return {g.gradX, at::Tensor(), at::Tensor(), g.gradA, g.gradB, at::Tensor()};
  }
};

std::atomic<uint64_t> linearCalls{0};

}  // namespace

at::Tensor merge(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& o, bool inPlace) {
  return mergeImpl(weight, A, B, o, inPlace, +1.0, "lora.merge");
}

at::Tensor unmerge(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& o, bool inPlace) {
  return mergeImpl(weight, A, B, o, inPlace, -1.0, "lora.unmerge");
}

void mergeRows(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, const Options& o, int64_t row0,
               at::Tensor& out, at::Tensor& scratch) {
  const char* op = "lora.mergeRows";
  const Plan p = planFor(weight, A, B, o, op);
  checkScalars(o, op, /*withDropout=*/false);
  const int64_t n = out.size(0);
  LITLORA_CHECK(out.dim() == 2 && out.size(1) == p.in && row0 >= 0 && row0 + n <= p.out && out.scalar_type() == weight.scalar_type() &&
                    out.is_contiguous(),
                "ERR_ARG", op << ": out must be a contiguous [rows, " << p.in << "] block of the weight's dtype within its " << p.out
                              << " rows");
  // The arithmetic of mergeImpl, element for element: ΔW rows from the same B rows and the same A in the same
  // compute dtype, W + s·ΔW in that dtype, rounded once into the weight's dtype. mergeImpl's mixed-dtype add_
  // does exactly this through TensorIterator, but with a fresh compute-dtype copy of the block's inputs and
  // output on every call; here both live in `scratch`, allocated once (streaming lm_head block by block
  // otherwise churned hundreds of MB through malloc's arenas).
  const at::ScalarType compute = is16Bit(p.compute) ? at::kFloat : at::kDouble;
  const bool widen = compute != p.compute;
  const int64_t need = (widen ? 2 : 1) * n * p.in;
  if (!scratch.defined() || scratch.scalar_type() != compute || scratch.numel() < need)
    scratch = at::empty({need}, weight.options().dtype(compute));
  at::Tensor wide = widen ? scratch.narrow(0, 0, n * p.in).view({n, p.in}) : out;  // W + s·ΔW in the compute dtype
  wide.copy_(weight.narrow(0, row0, n));
  const at::Tensor Ac = A.to(compute);
  for (const Segment& seg : p.segments) {
    const int64_t lo = std::max(seg.outRow, row0), hi = std::min(seg.outRow + seg.rows, row0 + n);
    if (lo >= hi) continue;
    const at::Tensor Bc = B.narrow(0, seg.bRow + (lo - seg.outRow), hi - lo).to(compute);
    at::Tensor delta = scratch.narrow(0, need - n * p.in, (hi - lo) * p.in).view({hi - lo, p.in});
    at::mm_out(delta, Bc, Ac.narrow(0, seg.part * p.r, p.r));
    wide.narrow(0, lo - row0, hi - lo).add_(delta, o.scaling);
  }
  if (widen) out.copy_(wide);
}

at::Tensor linearWithSeed(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                          const at::Tensor& B, const Options& o) {
  LITLORA_CHECK(!weight.requires_grad() && !(bias.defined() && bias.requires_grad()), "ERR_ARG",
                "lora.linear: weight and bias must be frozen (requires_grad = false); LoRA trains only loraA and loraB");
  return LinearFunction::apply(x, weight, bias, A, B, o);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& A,
                  const at::Tensor& B, const Options& o) {
  if (!dropoutActive(o)) return linearWithSeed(x, weight, bias, A, B, o);
  Options drawn = o;
  drawn.seed = splitmix64(o.seed ^ splitmix64(linearCalls.fetch_add(1) + 1));  // a fresh mask per call
  return linearWithSeed(x, weight, bias, A, B, drawn);
}

Grads referenceGrads(const at::Tensor& gradY, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     const at::Tensor& A, const at::Tensor& B, const Options& o, bool viaLinear) {
  const Plan p = planFor(weight, A, B, o, "lora.referenceGrads");
  at::Tensor xv = x.detach().clone().requires_grad_(true);
  at::Tensor Av = A.detach().clone().requires_grad_(true);
  at::Tensor Bv = B.detach().clone().requires_grad_(true);
  at::Tensor y;
  {
    at::AutoGradMode enable(true);
    if (viaLinear) {
      y = linearWithSeed(xv, weight, bias, Av, Bv, o);
    } else {
      // The same math from differentiable ATen ops: dropout by the same mask, per-part products, zero-pad by
      // index_add into the output's columns (litgpt's lora_ind), then the base linear.
      const at::Tensor Ac = Av.to(p.compute), Bc = Bv.to(p.compute);
      at::Tensor xd = dropoutActive(o) ? xv * dropoutMask(xv, o.dropout, o.seed) : xv;
      at::Tensor xA = at::matmul(xd, Ac.t());
      at::Tensor delta = at::zeros_like(at::matmul(xv, weight.t()));
      for (const Segment& seg : p.segments) {
        at::Tensor part = at::matmul(xA.narrow(-1, seg.part * p.r, p.r), Bc.narrow(0, seg.bRow, seg.rows).t());
        at::Tensor idx = at::arange(seg.outRow, seg.outRow + seg.rows, x.options().dtype(at::kLong));
        delta = delta.index_add(-1, idx, part);
      }
      y = at::linear(xv, weight, bias) + delta * o.scaling;
    }
    auto grads = torch::autograd::grad({y}, {xv, Av, Bv}, {gradY});
    return {grads[0], grads[1], grads[2]};
  }
}

void denseFloor(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& gradY) {
  at::mm(x.reshape({-1, weight.size(1)}), weight.t());
  at::mm(gradY.reshape({-1, weight.size(0)}), weight);
}

void synchronize(const at::Device& device) {
  if (device.is_cpu()) return;
  c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.index() < 0 ? 0 : device.index());
}

}  // namespace litlora::lora

// See decode_attention.h.
#include "decode_attention.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "avx2.h"

namespace litlora::decode_attention {

namespace {

// a·b over n values with eight partial sums (which compilers vectorise), added pairwise, then the tail.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

#if defined(__x86_64__)
// Scores of keys [j0, L) with AVX2 (head sizes that are a multiple of 8): four keys at a time, each with its own
// accumulator over the head's channels, so every score is the same sum in the same order however many keys there are.
LITLORA_AVX2 void scoresAvx2(const float* q, const float* k, int64_t kStep, int64_t j0, int64_t L, int64_t hs, float* out) {
  int64_t j = j0;
  for (; j + 4 <= L; j += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float *k0 = k + j * kStep, *k1 = k0 + kStep, *k2 = k1 + kStep, *k3 = k2 + kStep;
    for (int64_t d = 0; d < hs; d += 8) {
      const __m256 qd = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k1 + d), a1);
      a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k2 + d), a2);
      a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k3 + d), a3);
    }
    out[j] = avx2::horizontalSum(a0);
    out[j + 1] = avx2::horizontalSum(a1);
    out[j + 2] = avx2::horizontalSum(a2);
    out[j + 3] = avx2::horizontalSum(a3);
  }
  for (; j < L; ++j) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < hs; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + j * kStep + d), a);
    out[j] = avx2::horizontalSum(a);
  }
}

// out = Σ_j p[j]·v_j over [j0, L), with AVX2, in the order of j: up to 64 channels at a time, one accumulator
// each, so that the accumulations do not wait on one another.
LITLORA_AVX2 void weightedSumAvx2(const float* p, const float* v, int64_t vStep, int64_t j0, int64_t L, int64_t hs, float* out) {
  for (int64_t d0 = 0; d0 < hs; d0 += 64) {
    const int n = static_cast<int>(std::min<int64_t>(8, (hs - d0) / 8));
    __m256 o[8];
    for (int b = 0; b < 8; ++b) o[b] = _mm256_setzero_ps();
    if (n == 8) {
      for (int64_t j = j0; j < L; ++j) {
        const __m256 pj = _mm256_set1_ps(p[j]);
        const float* vj = v + j * vStep + d0;
        for (int b = 0; b < 8; ++b) o[b] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * b), o[b]);
      }
    } else {
      for (int64_t j = j0; j < L; ++j) {
        const __m256 pj = _mm256_set1_ps(p[j]);
        const float* vj = v + j * vStep + d0;
        for (int b = 0; b < n; ++b) o[b] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * b), o[b]);
      }
    }
    for (int b = 0; b < n; ++b) _mm256_storeu_ps(out + d0 + 8 * b, o[b]);
  }
}
#endif

}  // namespace

bool applies(const at::Tensor& q, const std::vector<Keys>& rows) {
  if (!q.device().is_cpu() || q.scalar_type() != at::kFloat || q.dim() != 4 || q.size(2) != 1 ||
      static_cast<int64_t>(rows.size()) != q.size(0))
    return false;
  if (at::GradMode::is_enabled() && q.requires_grad()) return false;
  for (const Keys& r : rows)
    if (!r.k.device().is_cpu() || r.k.scalar_type() != at::kFloat || r.v.scalar_type() != at::kFloat || r.k.dim() != 4 ||
        r.k.size(0) != 1 || r.k.size(3) != q.size(3) || r.v.sizes() != r.k.sizes() || r.k.size(2) < 1 ||
        (at::GradMode::is_enabled() && (r.k.requires_grad() || r.v.requires_grad())))
      return false;
  return true;
}

at::Tensor attend(const at::Tensor& q, const std::vector<Keys>& rows, const Options& o) {
  const int64_t B = q.size(0), nh = q.size(1), hs = q.size(3);
  const at::Tensor qc = q.contiguous();
  at::Tensor y = at::empty({B, nh, 1, hs}, q.options());
  std::vector<at::Tensor> ks(B), vs(B);
  int64_t longest = 1;
  for (int64_t b = 0; b < B; ++b) {
    ks[b] = rows[b].k.stride(3) == 1 ? rows[b].k : rows[b].k.contiguous();
    vs[b] = rows[b].v.stride(3) == 1 ? rows[b].v : rows[b].v.contiguous();
    longest = std::max(longest, ks[b].size(2));
  }
  const float* qs = qc.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  const float scale = static_cast<float>(o.scale);
  const float cap = o.softcap ? static_cast<float>(*o.softcap) : 0.0f;
  const float capScale = o.softcap ? static_cast<float>(o.scale / *o.softcap) : 0.0f;
#if defined(__x86_64__)
  const bool vector = avx2::available() && hs % 8 == 0;
#endif
  // Pairs of ≥ ~32k multiply-adds per thread: a short step stays on the calling thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / (2 * longest * hs));
  at::parallel_for(0, B * nh, grain, [&](int64_t lo, int64_t hi) {
    std::vector<float> p;
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / nh, h = i % nh, g = h / o.qPerKv;
      const at::Tensor &k = ks[b], &v = vs[b];
      const int64_t L = k.size(2), position = rows[b].first + L - 1;
      const float* kg = k.data_ptr<float>() + g * k.stride(1);
      const float* vg = v.data_ptr<float>() + g * v.stride(1);
      const int64_t kStep = k.stride(2), vStep = v.stride(2);
      const float* qh = qs + i * hs;
      float* out = ys + i * hs;
      // The window keeps positions p with position − p < window.
      const int64_t j0 = o.window > 0 ? std::max<int64_t>(0, position - o.window + 1 - rows[b].first) : 0;
      p.resize(static_cast<size_t>(L));
#if defined(__x86_64__)
      if (vector) scoresAvx2(qh, kg, kStep, j0, L, hs, p.data());
      else
#endif
        for (int64_t j = j0; j < L; ++j) p[j] = dot(qh, kg + j * kStep, hs);
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t j = j0; j < L; ++j) {
        const float qk = p[j];
        p[j] = o.softcap ? std::tanh(qk * capScale) * cap : qk * scale;
        top = std::max(top, p[j]);
      }
      float sum = 0;
      for (int64_t j = j0; j < L; ++j) {
        p[j] = std::exp(p[j] - top);
        sum += p[j];
      }
#if defined(__x86_64__)
      if (vector) weightedSumAvx2(p.data(), vg, vStep, j0, L, hs, out);
      else
#endif
      {
        std::fill(out, out + hs, 0.0f);
        for (int64_t j = j0; j < L; ++j) {
          const float* vj = vg + j * vStep;
          const float pj = p[j];
          for (int64_t d = 0; d < hs; ++d) out[d] += pj * vj[d];
        }
      }
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < hs; ++d) out[d] *= inv;
    }
  });
  return y;
}

}  // namespace litlora::decode_attention

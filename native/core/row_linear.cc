#include "row_linear.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "avx2.h"

namespace litlora::row_linear {

namespace {

// Rows [n0, n1) of y = W·x (+ b) for one row of x, portable: eight partial sums per row, which compilers vectorise.
void rowsPortable(const float* W, const float* x, const float* b, float* y, int64_t n0, int64_t n1, int64_t K) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* w = W + n * K;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
      for (int j = 0; j < 8; ++j) acc[j] += w[k + j] * x[k + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; k < K; ++k) s += w[k] * x[k];
    y[n] = b ? s + b[n] : s;
  }
}

#if defined(__x86_64__)
// A tile of y = W·x (+ b): rows n … n+C−1 of W by R rows of x, with AVX2 FMA. Each (x row, W row) pair has one
// 8-lane accumulator over k in steps of 8, then the same scalar tail and horizontal sum, whatever R and C are —
// so a row of x computes the same bits whether it is decoded alone or in a batch. Per step of 8 columns the tile
// loads R + C vectors for R·C FMAs: 7 loads per 12 FMAs at R = 3, C = 4 (12 accumulators, 3 x vectors and the W
// vector fill the 16 ymm registers). The previous kernel (one W row, four accumulators along k per x row) loaded
// 16 per 12 and was bound by the loads where W is in cache; on the 2-core EPYC VM (2026-12-02, evening, two
// threads) a 16-row product of the 50304 × 512 head took 9.3–9.5 ms here against 10.1–10.5 ms with it, and 16
// concurrent decodes of pythia-70m ran 5.4–7.5× one request alone against 5.1–6.0×.
// With `prefetch`, each tile first asks for the next `prefetch->linesPerTile` cache lines of what comes after.
struct Prefetch {
  const char* next;
  const char* end;
  int64_t linesPerTile;
};

// The sums of four 8-lane accumulators, each as ((v0+v1)+(v2+v3)) + ((v4+v5)+(v6+v7)). Lane j of the result
// depends on aj alone, so a single accumulator (a0 = a1 = a2 = a3) gets the same bits in lane 0.
LITLORA_AVX2 inline __m128 sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

template <int R, int C>
LITLORA_AVX2 inline void tileAvx2(const float* W, const float* x, const float* b, float* y, int64_t n, int64_t K, int64_t N,
                                  Prefetch* prefetch) {
  static_assert(C == 1 || C == 4, "a tile is one or four W rows (sum4 reduces four accumulators)");
  if (prefetch)
    for (int64_t i = 0; i < prefetch->linesPerTile && prefetch->next < prefetch->end; ++i, prefetch->next += 64)
      _mm_prefetch(prefetch->next, _MM_HINT_T1);
  const float* w = W + n * K;
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t k8 = K / 8 * 8;
  for (int64_t k = 0; k < k8; k += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * K + k);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_loadu_ps(w + c * K + k);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv, xv[r], acc[r][c]);
    }
  }
  // The epilogue is a few vector operations per tile: with the sums one output at a time (spilled accumulators,
  // scalar adds, a tail loop per output), a 12-output tile spent ~250 cycles here against ~380 in the loop above at
  // K = 512 (2026-12-02).
  for (int r = 0; r < R; ++r) {
    float out[4];
    _mm_storeu_ps(out, sum4(acc[r][0], acc[r][C > 1 ? 1 : 0], acc[r][C > 2 ? 2 : 0], acc[r][C > 3 ? 3 : 0]));
    const float* xr = x + r * K;
    for (int c = 0; c < C; ++c) {
      float s = out[c];
      for (int64_t t = k8; t < K; ++t) s += w[c * K + t] * xr[t];
      y[r * N + n + c] = b ? s + b[n + c] : s;
    }
  }
}

// Rows [n0, n1) of y for R rows of x: tiles of four W rows, then the one to three left.
template <int R>
LITLORA_AVX2 void rowsAvx2(const float* W, const float* x, const float* b, float* y, int64_t n0, int64_t n1, int64_t K,
                           int64_t N, Prefetch* prefetch) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) tileAvx2<R, 4>(W, x, b, y, n, K, N, prefetch);
  for (; n < n1; ++n) tileAvx2<R, 1>(W, x, b, y, n, K, N, prefetch);
}

// Rows [n0, n1) of y for all M rows of x: groups of three rows, then the one or two left (four left: two and two,
// as a one-row tile loads five vectors per four FMAs).
LITLORA_AVX2 void rowsAvx2All(const float* W, const float* x, const float* b, float* y, int64_t n0, int64_t n1, int64_t K,
                              int64_t N, int64_t M) {
  if (M == 1) {
    // One row of x (a request decoded alone): W read as one sequential stream, row after row. Tiles of four W rows
    // read four streams 2 KB apart, which the 2-core EPYC VM fed at ~30 GB/s against ~42 for one stream; one
    // accumulator per W row is a chain of K / 8 dependent FMAs, but consecutive rows' chains overlap.
    for (int64_t n = n0; n < n1; ++n) tileAvx2<1, 1>(W, x, b, y, n, K, N, nullptr);
    return;
  }
  // The W rows are visited in blocks small enough to stay in L1 while every group of x rows reads them.
  constexpr int64_t kBlockBytes = 16 << 10;
  const int64_t block = std::max<int64_t>(4, kBlockBytes / static_cast<int64_t>(K * sizeof(float)) / 4 * 4);
  const int64_t threes = M % 3 == 1 && M > 1 ? M / 3 - 1 : M / 3, rest = M - 3 * threes;
  const int64_t groups = threes + rest / 2 + rest % 2;
  for (int64_t lo = n0; lo < n1; lo += block) {
    const int64_t hi = std::min(n1, lo + block);
    // While the groups multiply this block, the next one is prefetched into L2, spread evenly over the tiles: the
    // memory would otherwise sit idle while the later groups work from L1. (With the previous kernel, on the
    // 2-core EPYC VM, one thread: a 16-row product of a 50304 × 512 head 37.7 ms without, 25.2 ms with it.)
    const char* next = reinterpret_cast<const char*>(W + hi * K);
    const char* nextEnd = reinterpret_cast<const char*>(W + std::min(n1, hi + block) * K);
    const int64_t tiles = groups * ((hi - lo) / 4 + (hi - lo) % 4);
    Prefetch prefetch{next, nextEnd, tiles > 0 ? ((nextEnd - next + 63) / 64 + tiles - 1) / tiles : 0};
    int64_t m = 0;
    for (; m < 3 * threes; m += 3) rowsAvx2<3>(W, x + m * K, b, y + m * N, lo, hi, K, N, &prefetch);
    for (; m + 2 <= M; m += 2) rowsAvx2<2>(W, x + m * K, b, y + m * N, lo, hi, K, N, &prefetch);
    if (m < M) rowsAvx2<1>(W, x + m * K, b, y + m * N, lo, hi, K, N, &prefetch);
  }
}
#endif

}  // namespace

bool applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad())))
    return false;
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || weight.scalar_type() != at::kFloat || weight.dim() != 2 ||
      !weight.device().is_cpu() || !weight.is_contiguous() || x.dim() < 1 || x.size(-1) != weight.size(1) ||
      x.numel() % weight.size(1) != 0 || x.numel() / weight.size(1) > kMaxRows || x.numel() == 0)
    return false;
  if (bias.defined() && (bias.scalar_type() != at::kFloat || !bias.device().is_cpu() || bias.dim() != 1 ||
                         bias.size(0) != weight.size(0) || !bias.is_contiguous()))
    return false;
  return true;
}

at::Tensor rowLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t N = weight.size(0), K = weight.size(1), M = x.numel() / K;
  const at::Tensor xc = x.contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  at::Tensor y = at::empty(shape, x.options());
  const float* W = weight.data_ptr<float>();
  const float* xs = xc.data_ptr<float>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* ys = y.data_ptr<float>();
  // Chunks of at least ~256 KB of W per thread (less as there are more rows to multiply by it): smaller layers run
  // on one thread, without waking the other.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(K * M, 1));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
#if defined(__x86_64__)
    if (avx2::available()) return rowsAvx2All(W, xs, b, ys, n0, n1, K, N, M);
#endif
    for (int64_t m = 0; m < M; ++m) rowsPortable(W, xs + m * K, b, ys + m * N, n0, n1, K);
  });
  return y;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return applies(x, weight, bias) ? rowLinear(x, weight, bias) : at::linear(x, weight, bias);
}

}  // namespace litlora::row_linear

#include "lora_lowrank.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "avx2.h"

namespace litlora::lora_lowrank {

namespace {

#if defined(__x86_64__)

// C[t·ldc + j] = s·Σ_k X[t·ldx + k]·M[j·ldm + k] for TR rows of X and MR rows of M. TR·MR accumulators of 8
// lanes each: 3 × 4 = 12, which with the TR + 1 operand registers fills the 16 ymm registers, and is enough
// independent FMA chains to hide the FMA latency.
template <int TR, int MR>
LITLORA_AVX2 void dotTile(const float* X, int64_t ldx, const float* M, int64_t ldm, int64_t K, float s, float* C,
                          int64_t ldc) {
  __m256 acc[TR][MR];
  for (int t = 0; t < TR; ++t)
    for (int j = 0; j < MR; ++j) acc[t][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 xv[TR];
    for (int t = 0; t < TR; ++t) xv[t] = _mm256_loadu_ps(X + t * ldx + k);
    for (int j = 0; j < MR; ++j) {
      const __m256 mv = _mm256_loadu_ps(M + j * ldm + k);
      for (int t = 0; t < TR; ++t) acc[t][j] = _mm256_fmadd_ps(xv[t], mv, acc[t][j]);
    }
  }
  for (int t = 0; t < TR; ++t)
    for (int j = 0; j < MR; ++j) {
      float v = avx2::horizontalSum(acc[t][j]);
      for (int64_t i = k; i < K; ++i) v += X[t * ldx + i] * M[j * ldm + i];
      C[t * ldc + j] = s * v;
    }
}

using DotTile = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);
constexpr int kDotRows = 3, kDotCols = 4;
const DotTile kDotTiles[kDotRows][kDotCols] = {
    {dotTile<1, 1>, dotTile<1, 2>, dotTile<1, 3>, dotTile<1, 4>},
    {dotTile<2, 1>, dotTile<2, 2>, dotTile<2, 3>, dotTile<2, 4>},
    {dotTile<3, 1>, dotTile<3, 2>, dotTile<3, 3>, dotTile<3, 4>},
};

// C (T × R, leading dimension ldc) = s·X·Mᵀ for X (T × K, leading dimension ldx) and M (R × K, contiguous). Each
// tile of X rows stays in L1 while it sweeps all of M (R·K floats, from L2).
void dots(const float* X, int64_t ldx, int64_t T, const float* M, int64_t R, int64_t K, float s, float* C, int64_t ldc) {
  for (int64_t t = 0; t < T; t += kDotRows) {
    const int64_t tr = std::min<int64_t>(kDotRows, T - t);
    for (int64_t j = 0; j < R; j += kDotCols) {
      const int64_t mr = std::min<int64_t>(kDotCols, R - j);
      kDotTiles[tr - 1][mr - 1](X + t * ldx, ldx, M + j * K, K, K, s, C + t * ldc + j, ldc);
    }
  }
}

// G[j·ldg + c] += Σ_t S[t·lds + j]·X[t·ldx + c] for MR rows of G and CV·8 of its columns, over T rows of S and X:
// the tile of G is held in MR·CV accumulators (4 × 3 = 12) while the T rows go by.
template <int MR, int CV>
LITLORA_AVX2 void outerTile(const float* S, int64_t lds, const float* X, int64_t ldx, int64_t T, float* G, int64_t ldg) {
  __m256 acc[MR][CV];
  for (int j = 0; j < MR; ++j)
    for (int c = 0; c < CV; ++c) acc[j][c] = _mm256_loadu_ps(G + j * ldg + 8 * c);
  for (int64_t t = 0; t < T; ++t) {
    __m256 xv[CV];
    for (int c = 0; c < CV; ++c) xv[c] = _mm256_loadu_ps(X + t * ldx + 8 * c);
    for (int j = 0; j < MR; ++j) {
      const __m256 sv = _mm256_broadcast_ss(S + t * lds + j);
      for (int c = 0; c < CV; ++c) acc[j][c] = _mm256_fmadd_ps(sv, xv[c], acc[j][c]);
    }
  }
  for (int j = 0; j < MR; ++j)
    for (int c = 0; c < CV; ++c) _mm256_storeu_ps(G + j * ldg + 8 * c, acc[j][c]);
}

using OuterTile = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);
constexpr int kOuterRows = 4, kOuterVectors = 3;
const OuterTile kOuterTiles[kOuterRows][kOuterVectors] = {
    {outerTile<1, 1>, outerTile<1, 2>, outerTile<1, 3>},
    {outerTile<2, 1>, outerTile<2, 2>, outerTile<2, 3>},
    {outerTile<3, 1>, outerTile<3, 2>, outerTile<3, 3>},
    {outerTile<4, 1>, outerTile<4, 2>, outerTile<4, 3>},
};

// G (R × K, contiguous) += Sᵀ·X for S (T × R, leading dimension lds) and X (T × K, leading dimension ldx). For
// each band of G rows the T rows of X are swept once from L2.
void outer(const float* S, int64_t lds, int64_t R, const float* X, int64_t ldx, int64_t T, int64_t K, float* G) {
  for (int64_t j = 0; j < R; j += kOuterRows) {
    const int64_t mr = std::min<int64_t>(kOuterRows, R - j);
    float* band = G + j * K;
    int64_t c = 0;
    for (; c + 8 * kOuterVectors <= K; c += 8 * kOuterVectors)
      kOuterTiles[mr - 1][kOuterVectors - 1](S + j, lds, X + c, ldx, T, band + c, K);
    for (; c + 8 <= K; c += 8) kOuterTiles[mr - 1][0](S + j, lds, X + c, ldx, T, band + c, K);
    for (; c < K; ++c)
      for (int64_t jj = 0; jj < mr; ++jj) {
        float v = band[jj * K + c];
        for (int64_t t = 0; t < T; ++t) v += S[t * lds + j + jj] * X[t * ldx + c];
        band[jj * K + c] = v;
      }
  }
}

// out[m·K + c] = W[m·K + c] + Σ_j sB[m·r + j]·A[j·K + c] for MR rows and CV·8 columns: the rank-r sum is
// accumulated on its own and added to W once at the end, as addmm adds its product to W.
template <int MR, int CV>
LITLORA_AVX2 void mergeTile(const float* W, const float* sB, int64_t r, const float* A, int64_t K, float* out) {
  __m256 acc[MR][CV];
  for (int m = 0; m < MR; ++m)
    for (int c = 0; c < CV; ++c) acc[m][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < r; ++j) {
    __m256 a[CV];
    for (int c = 0; c < CV; ++c) a[c] = _mm256_loadu_ps(A + j * K + 8 * c);
    for (int m = 0; m < MR; ++m) {
      const __m256 b = _mm256_broadcast_ss(sB + m * r + j);
      for (int c = 0; c < CV; ++c) acc[m][c] = _mm256_fmadd_ps(b, a[c], acc[m][c]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int c = 0; c < CV; ++c)
      _mm256_storeu_ps(out + m * K + 8 * c, _mm256_add_ps(_mm256_loadu_ps(W + m * K + 8 * c), acc[m][c]));
}

using MergeTile = void (*)(const float*, const float*, int64_t, const float*, int64_t, float*);
constexpr int kMergeRows = 4, kMergeVectors = 2;
const MergeTile kMergeTiles[kMergeRows][kMergeVectors] = {
    {mergeTile<1, 1>, mergeTile<1, 2>},
    {mergeTile<2, 1>, mergeTile<2, 2>},
    {mergeTile<3, 1>, mergeTile<3, 2>},
    {mergeTile<4, 1>, mergeTile<4, 2>},
};

// Rows [m0, m1) of out = W + sB·A (W and out R × K, sB R × r, A r × K).
void mergeRowRange(const float* W, const float* sB, int64_t r, const float* A, int64_t K, float* out, int64_t m0, int64_t m1) {
  for (int64_t m = m0; m < m1; m += kMergeRows) {
    const int64_t mr = std::min<int64_t>(kMergeRows, m1 - m);
    const float *w = W + m * K, *b = sB + m * r;
    float* o = out + m * K;
    int64_t c = 0;
    for (; c + 8 * kMergeVectors <= K; c += 8 * kMergeVectors) kMergeTiles[mr - 1][kMergeVectors - 1](w + c, b, r, A + c, K, o + c);
    for (; c + 8 <= K; c += 8) kMergeTiles[mr - 1][0](w + c, b, r, A + c, K, o + c);
    for (; c < K; ++c)
      for (int64_t i = 0; i < mr; ++i) {
        float v = 0;
        for (int64_t j = 0; j < r; ++j) v += b[i * r + j] * A[j * K + c];
        o[i * K + c] = w[i * K + c] + v;
      }
  }
}

#endif

// What both kernels need of their operands: an AVX2 + FMA CPU, and defined CPU float32 matrices.
bool cpuFloatMatrices(std::initializer_list<const at::Tensor*> tensors) {
  if (!avx2::available()) return false;
  for (const at::Tensor* t : tensors)
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != at::kFloat || t->dim() != 2) return false;
  return true;
}

}  // namespace

bool applies(const at::Tensor& x, const at::Tensor& gradY, const at::Tensor& A, const at::Tensor& B) {
  return cpuFloatMatrices({&x, &gradY, &A, &B}) && x.is_contiguous() && gradY.is_contiguous() &&
         x.size(0) == gradY.size(0) && A.size(1) == x.size(1) && B.size(0) == gradY.size(1) && B.size(1) == A.size(0) &&
         A.size(0) > 0 && A.size(0) <= kMaxRank;
}

Grads grads(const at::Tensor& x, const at::Tensor& gradY, const at::Tensor& A, const at::Tensor& B, double scaling) {
  const int64_t n = x.size(0), in = x.size(1), out = gradY.size(1), r = A.size(0);
  Grads result;
  result.scaledGradYB = at::empty({n, r}, x.options());
  const at::Tensor Ac = A.contiguous();
  const at::Tensor Bt = B.t().contiguous();  // (r, out): gradY·B as dot products of gradY rows with Bt rows
  // Tokens per block: the block's x and gradY rows take ~192 KB, well inside a core's L2 (1 MB on the EPYC VMs,
  // 512 KB and up on other x86 cores), with room for A, Bᵀ and this thread's gradA/gradB. A multiple of 3, the
  // rows of a dot tile. On the EPYC VM 6 to 12 rows ran within 5 % of each other at 2048→2048 and 2048→8192
  // (r = 8); 48 and more rows ran 15–45 % slower.
  const int64_t blockRows =
      std::clamp<int64_t>((int64_t(192) << 10) / (int64_t(sizeof(float)) * (in + out)) / 3 * 3, 6, 240);
  const int64_t blocks = (n + blockRows - 1) / blockRows;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  const int64_t partialSize = r * (in + out);  // one chunk's gradA (r × in) then gradBᵀ (r × out)
  at::Tensor partials = at::zeros({chunks, partialSize}, x.options());
#if defined(__x86_64__)
  const float* xs = x.data_ptr<float>();
  const float* gs = gradY.data_ptr<float>();
  const float* As = Ac.data_ptr<float>();
  const float* Bts = Bt.data_ptr<float>();
  float* gYB = result.scaledGradYB.data_ptr<float>();
  float* partial0 = partials.data_ptr<float>();
  const float s = static_cast<float>(scaling);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> xA(blockRows * r);  // s·x·Aᵀ for the block's rows
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      float* gradA = partial0 + chunk * partialSize;
      float* gradBt = gradA + r * in;
      for (int64_t b = chunk * blocks / chunks; b < (chunk + 1) * blocks / chunks; ++b) {
        const int64_t t0 = b * blockRows, rows = std::min(blockRows, n - t0);
        const float* xb = xs + t0 * in;
        const float* gb = gs + t0 * out;
        float* yb = gYB + t0 * r;
        dots(xb, in, rows, As, r, in, s, xA.data(), r);  // s·x·Aᵀ
        dots(gb, out, rows, Bts, r, out, s, yb, r);      // s·gradY·B
        outer(yb, r, r, xb, in, rows, in, gradA);        // gradA  += (s·gradY·B)ᵀ·x
        outer(xA.data(), r, r, gb, out, rows, out, gradBt);  // gradBᵀ += (s·x·Aᵀ)ᵀ·gradY
      }
    }
  });
#endif
  const at::Tensor sum = chunks == 1 ? partials[0] : partials.sum(0);
  result.gradA = sum.narrow(0, 0, r * in).view({r, in}).clone();
  result.gradB = sum.narrow(0, r * in, r * out).view({r, out}).t().contiguous();
  return result;
}

bool mergeApplies(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B) {
  return cpuFloatMatrices({&weight, &A, &B}) && weight.is_contiguous() && A.size(1) == weight.size(1) && B.size(0) == weight.size(0) && B.size(1) == A.size(0) &&
         A.size(0) <= kMaxMergeRank;
}

void mergeInto(const at::Tensor& weight, const at::Tensor& A, const at::Tensor& B, double scaling, at::Tensor& out) {
  const int64_t rows = weight.size(0), K = weight.size(1), r = A.size(0);
  const at::Tensor Ac = A.contiguous();
  const at::Tensor sB = (B * scaling).contiguous();  // (rows, r): s folded into B once, as addmm's alpha
#if defined(__x86_64__)
  const float* W = weight.data_ptr<float>();
  const float* As = Ac.data_ptr<float>();
  const float* sBs = sB.data_ptr<float>();
  float* o = out.data_ptr<float>();
  // Row chunks of at least ~256 KB of W per thread.
  const int64_t grain = std::max<int64_t>(kMergeRows, (int64_t(1) << 16) / std::max<int64_t>(K, 1));
  at::parallel_for(0, rows, grain, [&](int64_t m0, int64_t m1) { mergeRowRange(W, sBs, r, As, K, o, m0, m1); });
#endif
}

}  // namespace litlora::lora_lowrank

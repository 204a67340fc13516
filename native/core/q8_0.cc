#include "core/q8_0.h"

#include <c10/util/Half.h>

#include <cmath>
#include <cstring>

#include "core/avx2.h"
#include "core/error.h"

namespace litlora::q8_0 {

namespace {

// float32 of bfloat16 bits: exact (the upper half of the float's bits).
inline float fromBf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline void storeScale(float d, uint8_t* out) {
  const uint16_t half = c10::Half(d).x;  // round to nearest even, as numpy's astype(float16)
  std::memcpy(out, &half, 2);
}

// One block, portable. q = round(x · id) half away from zero as numpy's np_roundf: |v| split into its integer
// part and an exact fraction, so no addition rounds (v + 0.5f in float32 would round 0.49999997 up to 1).
inline void blockScalar(const float* x, uint8_t* out) {
  float amax = 0;
  for (int j = 0; j < kBlock; j++) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  storeScale(d, out);
  int8_t* q = reinterpret_cast<int8_t*>(out + 2);
  for (int j = 0; j < kBlock; j++) {
    const float v = x[j] * id;
    const float a = std::fabs(v);
    const int whole = static_cast<int>(a);
    const int r = whole + ((a - static_cast<float>(whole)) >= 0.5f ? 1 : 0);
    q[j] = static_cast<int8_t>(v < 0 ? -r : r);
  }
}

#if defined(__x86_64__)
// The same block with AVX2: the same float32 operations lane by lane (max, one division, one multiply, truncation,
// an exact subtraction), so the bytes are the scalar path's.
LITLORA_AVX2 inline void blockAvx2(const __m256 v[4], uint8_t* out) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], absMask), _mm256_and_ps(v[1], absMask)),
                           _mm256_max_ps(_mm256_and_ps(v[2], absMask), _mm256_and_ps(v[3], absMask)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  storeScale(d, out);
  const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
  __m256i q[4];
  for (int k = 0; k < 4; k++) {
    const __m256 x = _mm256_mul_ps(v[k], vid);
    const __m256 a = _mm256_and_ps(x, absMask);
    const __m256i whole = _mm256_cvttps_epi32(a);
    const __m256 frac = _mm256_sub_ps(a, _mm256_cvtepi32_ps(whole));
    const __m256i up = _mm256_castps_si256(_mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_castsi256_ps(_mm256_set1_epi32(1))));
    const __m256i r = _mm256_add_epi32(whole, up);
    const __m256 negative = _mm256_cmp_ps(x, zero, _CMP_LT_OQ);
    q[k] = _mm256_blendv_epi8(r, _mm256_sub_epi32(_mm256_setzero_si256(), r), _mm256_castps_si256(negative));
  }
  // int32 → int8 in order (packs interleave 128-bit lanes; the permutation undoes it), as ggml's quantize_row_q8_0.
  const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
  const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), p8);
}

LITLORA_AVX2 void quantizeAvx2(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kBlock; b++, x += kBlock, out += kBlockBytes) {
    const __m256 v[4] = {_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8), _mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24)};
    blockAvx2(v, out);
  }
}

LITLORA_AVX2 void quantizeBf16Avx2(const uint16_t* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kBlock; b++, x += kBlock, out += kBlockBytes) {
    __m256 v[4];
    for (int k = 0; k < 4; k++) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 8 * k)));
      v[k] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    blockAvx2(v, out);
  }
}
#endif

}  // namespace

void quantize(const float* x, int64_t n, uint8_t* out) {
  LITLORA_CHECK(n % kBlock == 0, "ERR_SHAPE", "Q8_0 needs a multiple of " << kBlock << " values, got " << n);
#if defined(__x86_64__)
  if (avx2::available()) return quantizeAvx2(x, n, out);
#endif
  for (int64_t b = 0; b < n / kBlock; b++) blockScalar(x + b * kBlock, out + b * kBlockBytes);
}

void quantizeBf16(const uint16_t* x, int64_t n, uint8_t* out) {
  LITLORA_CHECK(n % kBlock == 0, "ERR_SHAPE", "Q8_0 needs a multiple of " << kBlock << " values, got " << n);
#if defined(__x86_64__)
  if (avx2::available()) return quantizeBf16Avx2(x, n, out);
#endif
  float block[kBlock];
  for (int64_t b = 0; b < n / kBlock; b++) {
    for (int j = 0; j < kBlock; j++) block[j] = fromBf16(x[b * kBlock + j]);
    blockScalar(block, out + b * kBlockBytes);
  }
}

}  // namespace litlora::q8_0

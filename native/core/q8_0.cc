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
// Blocks with AVX2, eight at a time: the same float32 operations lane by lane as the scalar path (max, the
// divisions d = amax / 127 and 1 / d, one multiply, truncation, an exact subtraction), so the bytes are its bytes.
// Eight blocks' maxima are reduced into one vector and their scales divided and converted to half (F16C, round to
// nearest even: IEEE's rounding, as c10::Half and numpy's astype(float16)) together; block by block, the reduction,
// the two divisions and the half conversion form a chain of latency per 32 values that nothing else overlaps:
// quantizing a bfloat16 Qwen2.5-0.5B took ~0.29 s of the export's reading thread that way on the 2-core EPYC VM
// (perf samples, 2026-12-02), ~0.21 s eight blocks at a time, the rest now mostly the stores' cache misses.
constexpr int kGroup = 8;  // blocks per step

LITLORA_AVX2 inline __m256 absMax4(const __m256 v[4]) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  return _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], absMask), _mm256_and_ps(v[1], absMask)),
                       _mm256_max_ps(_mm256_and_ps(v[2], absMask), _mm256_and_ps(v[3], absMask)));
}

// Lanes 0-3 of the result: the maxima of adjacent pairs of a's lanes 0-3 and b's; lanes 4-7: the same of 4-7.
LITLORA_AVX2 inline __m256 pairMax(__m256 a, __m256 b) {
  return _mm256_max_ps(_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xdd));
}

// The 32 int8s of a block of `v` scaled by `id`, rounded half away from zero.
LITLORA_AVX2 inline void storeQuants(const __m256 v[4], __m256 vid, uint8_t* out) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
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
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), p8);
}

// Eight blocks: v[b * 4 + k] holds values 8k … 8k + 7 of block b.
LITLORA_AVX2_F16C inline void groupAvx2(const __m256 v[kGroup * 4], uint8_t* out) {
  __m256 m[kGroup];
  for (int b = 0; b < kGroup; b++) m[b] = absMax4(v + 4 * b);
  // Lane b of amax: block b's maximum (three rounds of pairwise maxima, then the two 128-bit halves).
  const __m256 q0 = pairMax(pairMax(m[0], m[1]), pairMax(m[2], m[3]));
  const __m256 q1 = pairMax(pairMax(m[4], m[5]), pairMax(m[6], m[7]));
  const __m256 amax = _mm256_max_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
  const __m256 d = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
  const __m256 id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d), _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_OQ));
  alignas(32) float ids[kGroup];
  alignas(16) uint16_t scales[kGroup];
  _mm256_store_ps(ids, id);
  _mm_store_si128(reinterpret_cast<__m128i*>(scales), _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (int b = 0; b < kGroup; b++, out += kBlockBytes) {
    std::memcpy(out, &scales[b], 2);
    storeQuants(v + 4 * b, _mm256_set1_ps(ids[b]), out + 2);
  }
}

// One block (the last n / 32 mod 8 of a call).
LITLORA_AVX2 inline void blockAvx2(const __m256 v[4], uint8_t* out) {
  const __m256 m = absMax4(v);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  storeScale(d, out);
  storeQuants(v, _mm256_set1_ps(id), out + 2);
}

LITLORA_AVX2 inline void loadBlockBf16(const uint16_t* x, __m256 v[4]) {
  for (int k = 0; k < 4; k++) v[k] = avx2::loadBf16(x + 8 * k);
}

LITLORA_AVX2 inline void loadBlockF32(const float* x, __m256 v[4]) {
  for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
}

template <typename T, void (*Load)(const T*, __m256*)>
LITLORA_AVX2_F16C void quantizeAvx2(const T* x, int64_t n, uint8_t* out) {
  const int64_t blocks = n / kBlock;
  int64_t b = 0;
  for (; b + kGroup <= blocks; b += kGroup, x += kGroup * kBlock, out += kGroup * kBlockBytes) {
    __m256 v[kGroup * 4];
    for (int g = 0; g < kGroup; g++) Load(x + g * kBlock, v + 4 * g);
    groupAvx2(v, out);
  }
  for (; b < blocks; b++, x += kBlock, out += kBlockBytes) {
    __m256 v[4];
    Load(x, v);
    blockAvx2(v, out);
  }
}
#endif

}  // namespace

void quantize(const float* x, int64_t n, uint8_t* out) {
  LITLORA_CHECK(n % kBlock == 0, "ERR_SHAPE", "Q8_0 needs a multiple of " << kBlock << " values, got " << n);
#if defined(__x86_64__)
  if (avx2::f16cAvailable()) return quantizeAvx2<float, loadBlockF32>(x, n, out);
#endif
  for (int64_t b = 0; b < n / kBlock; b++) blockScalar(x + b * kBlock, out + b * kBlockBytes);
}

void quantizeBf16(const uint16_t* x, int64_t n, uint8_t* out) {
  LITLORA_CHECK(n % kBlock == 0, "ERR_SHAPE", "Q8_0 needs a multiple of " << kBlock << " values, got " << n);
#if defined(__x86_64__)
  if (avx2::f16cAvailable()) return quantizeAvx2<uint16_t, loadBlockBf16>(x, n, out);
#endif
  float block[kBlock];
  for (int64_t b = 0; b < n / kBlock; b++) {
    for (int j = 0; j < kBlock; j++) block[j] = fromBf16(x[b * kBlock + j]);
    blockScalar(block, out + b * kBlockBytes);
  }
}

}  // namespace litlora::q8_0

// What the hand-written CPU kernels (row_linear, lora_lowrank, q8_0, half_convert) share: the AVX2 + FMA (and
// F16C) target attributes, run-time checks for them, bfloat16 loads and an 8-lane horizontal sum. The kernels are compiled for AVX2 function by function, so
// the addon still loads on CPUs without it and takes the portable path there.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#define LITLORA_AVX2 __attribute__((target("avx2,fma")))

namespace litlora::avx2 {

inline bool available() {
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
}

// AVX2 with F16C (IEEE half conversions): the half and Q8_0 writers' kernels.
#define LITLORA_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

inline bool f16cAvailable() {
  static const bool have = available() && __builtin_cpu_supports("f16c");
  return have;
}

// Eight bfloat16 values as float32 (exact: a bfloat16 is the upper half of its float32's bits).
LITLORA_AVX2 inline __m256 loadBf16(const uint16_t* x) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))), 16));
}

LITLORA_AVX2 inline float horizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace litlora::avx2

#else

namespace litlora::avx2 {
inline bool available() { return false; }
inline bool f16cAvailable() { return false; }
}  // namespace litlora::avx2

#endif

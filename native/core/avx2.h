// What the hand-written CPU kernels (row_linear, lora_lowrank) share: the AVX2 + FMA target attribute, a
// run-time check for it, and an 8-lane horizontal sum. The kernels are compiled for AVX2 function by function, so
// the addon still loads on CPUs without it and takes the portable path there.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#define LITLORA_AVX2 __attribute__((target("avx2,fma")))

namespace litlora::avx2 {

inline bool available() {
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
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
}  // namespace litlora::avx2

#endif

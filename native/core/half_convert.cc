#include "core/half_convert.h"

#include "core/avx2.h"

namespace litlora::halfconvert {

#if defined(__x86_64__)
namespace {

LITLORA_AVX2_F16C void fromFloat(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) out[i] = static_cast<uint16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

LITLORA_AVX2_F16C void fromBf16(const uint16_t* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(avx2::loadBf16(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; i++) {
    const uint32_t u = static_cast<uint32_t>(x[i]) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    out[i] = static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
  }
}

}  // namespace
#endif

bool toHalf(const void* x, at::ScalarType from, int64_t n, uint16_t* out) {
#if defined(__x86_64__)
  if (!avx2::f16cAvailable()) return false;
  if (from == at::kFloat) {
    fromFloat(static_cast<const float*>(x), n, out);
    return true;
  }
  if (from == at::kBFloat16) {
    fromBf16(static_cast<const uint16_t*>(x), n, out);
    return true;
  }
#endif
  return false;
}

}  // namespace litlora::halfconvert

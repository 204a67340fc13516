#include "core/q8_0.h"

#include <c10/util/Half.h>

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace litlora::q8_0 {

void quantize(const float* x, int64_t n, uint8_t* out) {
  LITLORA_CHECK(n % kBlock == 0, "ERR_SHAPE", "Q8_0 needs a multiple of " << kBlock << " values, got " << n);
  for (int64_t b = 0; b < n / kBlock; b++, x += kBlock, out += kBlockBytes) {
    float amax = 0;
    for (int j = 0; j < kBlock; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t half = c10::Half(d).x;  // round to nearest even, as numpy's astype(float16)
    std::memcpy(out, &half, 2);
    int8_t* q = reinterpret_cast<int8_t*>(out + 2);
    for (int j = 0; j < kBlock; j++) {
      // numpy's np_roundf: |v| split into its integer part and an exact fraction, so no addition rounds
      // (v + 0.5f in float32 would round 0.49999997 up to 1).
      const float v = x[j] * id;
      const float a = std::fabs(v);
      const int whole = static_cast<int>(a);
      const int r = whole + ((a - static_cast<float>(whole)) >= 0.5f ? 1 : 0);
      q[j] = static_cast<int8_t>(v < 0 ? -r : r);
    }
  }
}

}  // namespace litlora::q8_0

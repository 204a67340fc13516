// IEEE half from float32 or bfloat16 values with F16C (round to nearest even, as at::Tensor::to(kHalf) and numpy's
// astype(float16) round), for the tensor plan's f16 outputs: libtorch's own conversion of a bfloat16 tensor costs
// several times the disk's write time of the result.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace litlora::halfconvert {

// Converts the `n` values at `x` (float32 or bfloat16) to half at `out`. False (nothing written) when the CPU has
// no AVX2/F16C or `from` is another dtype: the caller converts with libtorch then.
bool toHalf(const void* x, at::ScalarType from, int64_t n, uint16_t* out);

}  // namespace litlora::halfconvert

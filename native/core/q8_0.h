// llama.cpp's Q8_0 blocks, exactly as gguf-py's quants.py (and ggml's quantize_row_q8_0_ref) compute them: per
// block of 32 float32 values, d = max|x| / 127 (float32), q = round(x · (1/d)) rounded half away from zero, and d
// stored as IEEE half (round to nearest even) before the 32 int8s. GGUF export (core/tensor_plan) quantizes half
// the blocks on its reading thread and half on the calling thread, which writes them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace litlora::q8_0 {

constexpr int64_t kBlock = 32;
constexpr int64_t kBlockBytes = 2 + kBlock;

// Quantizes `n` values (a whole number of blocks) into n / 32 · 34 bytes at `out`.
void quantize(const float* x, int64_t n, uint8_t* out);
// The same from bfloat16 values (exactly their float32 values), without a float32 copy of them. `out` may be `x`
// itself (in place): each step loads its blocks' values before it stores them, and a block's 34 bytes never reach
// past its own 64 (the writer of core/tensor_plan quantizes its share of the blocks so).
void quantizeBf16(const uint16_t* x, int64_t n, uint8_t* out);

}  // namespace litlora::q8_0

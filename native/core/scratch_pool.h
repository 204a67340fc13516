// A reusable CPU buffer for the large temporaries of the LoRA ops (the merged weight W + s·BA).
//
// glibc serves allocations of 32 MB and more with a fresh mmap and unmaps them on free, so a temporary that size
// page-faults through all of its pages on every call: building a merged 8192 × 2048 fp32 weight took 26 ms in a
// fresh tensor and 8 ms in a reused one on the 2-core EPYC VM, next to a 670 ms GEMM. The pool keeps one buffer,
// the largest handed back so far: a lease takes it when it is large enough and allocates otherwise, and the
// tensor's deleter hands its memory back when the last reference goes. At most one weight-sized buffer (the
// largest fp32 weight merged on the fly) stays allocated between calls, for the life of the process.
#pragma once

#include <ATen/ATen.h>

namespace litlora::scratch_pool {

// An uninitialised contiguous CPU tensor of `sizes` and `dtype` whose memory comes from (and returns to) the pool.
at::Tensor lease(at::IntArrayRef sizes, at::ScalarType dtype);

}  // namespace litlora::scratch_pool

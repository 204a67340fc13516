// MKL's kernels for CPUs that are not Intel's.
//
// libtorch's CPU build does its fp32 GEMMs with MKL, which picks kernels by CPU vendor as well as by instruction
// set: on an AMD CPU it runs a generic path whatever the CPU supports. On the 2-core AMD EPYC (Zen 3) VMs litlora is
// benchmarked on, that path multiplies 1024 × 1024 × 3072 at ~47 GFLOP/s per core, half of what the core's two FMA
// pipes give (~90); MKL's AVX2 kernels reach 113–137 GFLOP/s on the two cores. Training a model the size of
// Qwen3-0.6B is almost all GEMM, so this is most of its step time.
//
// MKL asks `mkl_serv_intel_cpu_true()` for the vendor. libtorch_cpu.so exports that function and calls it through
// its PLT, so the dynamic linker resolves the call in the lookup scope of the object that loaded it — the addon,
// which comes before its own dependencies there. The definition below therefore answers in MKL's place: "Intel"
// when the CPU has AVX2 and FMA and the OS saves the YMM registers (avx2::available(), the test the hand-written
// kernels use; MKL then still picks among its kernels by CPUID's feature bits, so it never runs an instruction the
// CPU lacks), otherwise MKL's own answer.
// LITLORA_MKL_VENDOR_CHECK=1 keeps MKL's own answer everywhere (to compare, or should a future MKL misbehave).
//
// Only the addon's process is affected: PyTorch run beside it (the reference tests, the benchmarks' baselines)
// keeps stock MKL.
#include "mkl_vendor.h"

#if defined(__linux__) && defined(__x86_64__)
#include "avx2.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace {

std::atomic<uint64_t> queries{0};

using VendorCheck = int (*)();

// MKL's own definition: the next one after the addon's in the lookup order (libtorch_cpu.so's).
VendorCheck mklOwnCheck() {
  static const VendorCheck own = reinterpret_cast<VendorCheck>(dlsym(RTLD_NEXT, "mkl_serv_intel_cpu_true"));
  return own;
}

bool keepMklAnswer() {
  static const bool keep = [] {
    const char* v = std::getenv("LITLORA_MKL_VENDOR_CHECK");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return keep;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int mkl_serv_intel_cpu_true() {
  queries.fetch_add(1, std::memory_order_relaxed);
  if (!keepMklAnswer() && litlora::avx2::available()) return 1;
  const VendorCheck own = mklOwnCheck();
  return own != nullptr && own != &mkl_serv_intel_cpu_true ? own() : 0;
}

namespace litlora {

MklVendorAnswer mklVendorAnswer() {
  return {!keepMklAnswer() && avx2::available(), queries.load(std::memory_order_relaxed)};
}

}  // namespace litlora

#else

namespace litlora {

MklVendorAnswer mklVendorAnswer() { return {false, 0}; }

}  // namespace litlora

#endif

#include "scratch_pool.h"

#include <cstdlib>
#include <mutex>
#include <new>

namespace litlora::scratch_pool {

namespace {

struct Pool {
  std::mutex mutex;
  void* data = nullptr;
  size_t bytes = 0;
};

// Never destroyed: a tensor freed during static destruction may still hand its memory back.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

void giveBack(void* data, size_t bytes) {
  Pool& p = pool();
  void* drop = data;
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (bytes > p.bytes) {  // keep the larger of the two
      drop = p.data;
      p.data = data;
      p.bytes = bytes;
    }
  }
  if (drop) std::free(drop);
}

}  // namespace

at::Tensor lease(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t need = std::max<size_t>(1, size_t(numel) * c10::elementSize(dtype));
  Pool& p = pool();
  void* data = nullptr;
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.data && p.bytes >= need) {
      data = p.data;
      bytes = p.bytes;
      p.data = nullptr;
      p.bytes = 0;
    }
  }
  if (!data) {
    // 64-byte aligned, as ATen's CPU allocator aligns.
    if (posix_memalign(&data, 64, need) != 0) throw std::bad_alloc();
    bytes = need;
  }
  return at::from_blob(data, sizes, [bytes](void* d) { giveBack(d, bytes); },
                       at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace litlora::scratch_pool

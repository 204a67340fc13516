// ReadAhead: asks the kernel to read the next tens of MB of a stream of file ranges before the reader gets there.
//
// The streamed tensor writer (core/tensor_plan) reads its sources in order, a few hundred KB at a time. A page
// that is not in the page cache then costs a synchronous read, and while the output is being made durable that
// read waits in the disk's queue behind the output's flushes: on the 2-core EPYC VM, whose host takes pages back
// from the guest's page cache now and then, reading a 1 GB "cached" checkpoint next to a durable 1 GB write took
// 1.0–1.5 s in half the tries instead of 0.1 s (2026-12-03, dd blocked in folio_wait_bit_common). posix_fadvise
// (POSIX_FADV_WILLNEED) starts those reads early and returns; for pages already cached it only looks them up. The
// same keeps a cold checkpoint's reads ahead of the converter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace litlora::files {

class ReadAhead {
 public:
  // Appends the next `length` bytes of the stream: [offset, offset + length) of `fd`, or, with fd < 0, bytes read
  // some other way (nothing to advise, but they count for the position).
  void add(int fd, uint64_t offset, uint64_t length);
  // The reader is at `position` bytes into the stream: advises until kAhead bytes past it.
  void reached(uint64_t position);

 private:
  static constexpr uint64_t kAhead = 64u << 20;
  static constexpr uint64_t kStep = 8u << 20;
  struct Range {
    int fd;
    uint64_t offset;
    uint64_t length;
  };
  std::vector<Range> ranges_;
  size_t next_ = 0;          // the first range not advised whole
  uint64_t intoNext_ = 0;    // bytes of it advised
  uint64_t advisedEnd_ = 0;  // stream position up to which everything was advised
};

}  // namespace litlora::files

#include "core/read_ahead.h"

#include <fcntl.h>

#include <algorithm>

namespace litlora::files {

void ReadAhead::add(int fd, uint64_t offset, uint64_t length) {
  if (length > 0) ranges_.push_back({fd, offset, length});
}

void ReadAhead::reached(uint64_t position) {
  while (advisedEnd_ < position + kAhead && next_ < ranges_.size()) {
    const Range& r = ranges_[next_];
    const uint64_t n = std::min(kStep, r.length - intoNext_);
#ifdef POSIX_FADV_WILLNEED
    // Advice only: a failure (a file system without readahead) leaves the reads as they were.
    if (r.fd >= 0) (void)posix_fadvise(r.fd, static_cast<off_t>(r.offset + intoNext_), static_cast<off_t>(n), POSIX_FADV_WILLNEED);
#endif
    intoNext_ += n;
    advisedEnd_ += n;
    if (intoNext_ == r.length) {
      next_++;
      intoNext_ = 0;
    }
  }
}

}  // namespace litlora::files

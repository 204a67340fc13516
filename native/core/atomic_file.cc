#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "core/error.h"
#include "core/mapped_guard.h"

namespace litlora::files {

namespace {

// Written (and handed to the disk's writeback) in pieces of this size.
constexpr uint64_t kWritebackChunk = 64u << 20;

std::string folderOf(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string baseOf(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- AtomicFile

AtomicFile::AtomicFile(const std::string& path) : path_(path), faultsAtStart_(mapped_guard::faults()) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  const std::string folder = folderOf(path);
  const std::string base = baseOf(path);
  LITLORA_CHECK(!base.empty(), "ERR_ARG", "expected a file path, got the folder '" << path << "'");
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    tempPath_ = folder + "/." + base + ".tmp-" + std::to_string(getpid()) + "-" +
                std::to_string((salt + counter++) % 1000000007);
    fd_ = ::open(tempPath_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw Error("ERR_CHECKPOINT_MISSING", "cannot write " + path + ": the folder " + folder + " does not exist");
    throw Error("ERR_IO", "cannot create a file in " + folder + ": " + std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tempPath_.empty()) ::unlink(tempPath_.c_str());
}

void AtomicFile::fail(const std::string& what) const {
  std::string reason = std::strerror(errno);
  throw Error("ERR_IO", "writing " + path_ + " failed (" + what + "): " + reason + "; the previous file, if any, is unchanged");
}

void AtomicFile::write(const void* data, uint64_t length) {
  const char* p = static_cast<const char*>(data);
  while (length > 0) {
    ssize_t n = ::write(fd_, p, static_cast<size_t>(std::min<uint64_t>(length, kWritebackChunk)));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    p += n;
    length -= static_cast<uint64_t>(n);
    position_ += static_cast<uint64_t>(n);
    startWriteback();
  }
}

void AtomicFile::reserve(uint64_t bytes) {
#ifdef __linux__
  // fallocate itself, not posix_fallocate: where the file system has no fallocate, glibc's posix_fallocate would
  // write zeros over the whole length first, doubling the writes. Such a file system writes as it goes.
  if (bytes == 0 || ::fallocate(fd_, 0, 0, static_cast<off_t>(bytes)) == 0) return;
  if (errno == ENOSPC) {
    throw Error("ERR_IO", "writing " + path_ + " needs " + std::to_string(bytes) +
                              " bytes, more than the disk has free: free some space (or choose another disk) and run again; "
                              "the previous file, if any, is unchanged");
  }
#else
  (void)bytes;
#endif
}

// Starts the disk writing of what was written so far without waiting for it, so that the fsync in
// commit() finds most of the file already on disk: the disk works while we produce the rest.
void AtomicFile::startWriteback() {
#ifdef __linux__
  if (position_ - writebackFrom_ < kWritebackChunk) return;
  sync_file_range(fd_, static_cast<off_t>(writebackFrom_), static_cast<off_t>(position_ - writebackFrom_), SYNC_FILE_RANGE_WRITE);
  writebackFrom_ = position_;
#endif
}

void AtomicFile::pwrite(const void* data, uint64_t length, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (length > 0) {
    ssize_t n = ::pwrite(fd_, p, static_cast<size_t>(std::min<uint64_t>(length, kWritebackChunk)), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("pwrite");
    }
#ifdef __linux__
    // Small pwrites (a streamed conversion hands over 256 KB at a time) start the disk's writeback every
    // kWritebackChunk bytes too, as write() does, so that commit()'s fsync finds most of the file written.
    pwrittenSince_ += static_cast<uint64_t>(n);
    if (pwrittenSince_ >= kWritebackChunk) {
      sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
      pwrittenSince_ = 0;
    }
#endif
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  LITLORA_CHECK(!committed_, "ERR_ARG", path_ << ": already written");
  // Bytes copied from a mapped file that shrank meanwhile are zeros, not data: never let them land.
  mapped_guard::throwIfFaultedSince(faultsAtStart_, "writing " + path_);
  if (fsync(fd_) != 0) fail("fsync");
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("close");
  }
  fd_ = -1;
  if (::rename(tempPath_.c_str(), path_.c_str()) != 0) fail("rename");
  committed_ = true;
  // The rename itself must reach the disk for the new file to survive a power cut.
  int dir = ::open(folderOf(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    ::close(dir);
  }
}

}  // namespace litlora::files

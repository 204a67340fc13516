// Atomic file writes: a temp file in the target's folder, fsync, rename over the target, fsync of the folder.
// An interrupted write leaves the previous file untouched. The zip and safetensors writers write through it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct iovec;

namespace litlora::files {

// A file written to a temp file next to `path` and moved over it by commit() after an fsync. Until then
// `path` is untouched; destroying an uncommitted AtomicFile removes the temp file. A large file is made durable as
// it grows (fdatasync on a thread of its own, see atomic_file.cc), so that the disk flushes the first bytes while the
// writer produces the rest and commit() waits only for the last ones.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, uint64_t length);
  // The pieces one after the other, in as few system calls as the kernel takes (writev).
  void write(const struct iovec* pieces, size_t count);
  void pwrite(const void* data, uint64_t length, uint64_t offset);
  // Allocates `bytes` on the disk for the file before it is written, where the file system can (fallocate): a
  // disk too small fails at once (ERR_IO) instead of after most of the bytes are written, and the file gets its
  // extents in one piece.
  void reserve(uint64_t bytes);
  uint64_t position() const { return position_; }
  void commit();
  const std::string& path() const { return path_; }
  const std::string& tempPath() const { return tempPath_; }

 private:
  class Syncer;
  [[noreturn]] void fail(const std::string& what) const;
  void wrote(uint64_t bytes);
  std::string path_;
  std::string tempPath_;
  int fd_ = -1;
  uint64_t position_ = 0;
  uint64_t unsynced_ = 0;         // bytes written since the Syncer was last asked to sync
  std::unique_ptr<Syncer> syncer_;  // started once a file grows past kSyncStep bytes; none for small files
  bool noSyncer_ = false;           // its thread could not be started: commit()'s fsync does all the work
  uint64_t faultsAtStart_ = 0;  // mapped_guard::faults() when the file was started
  bool committed_ = false;
};

}  // namespace litlora::files

// Tensor files read in place: a read-only map of a whole file (MappedFile, for parsing headers and directories)
// and private copy-on-write maps of parts of it (Region, the bytes of tensors handed out). Both register with
// mapped_guard (mapped_guard.h), so a file that shrinks underneath them is an error, never a SIGBUS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace litlora::files {

// A read-only memory map of a whole file, plus its descriptor (kept open for private maps and preads).
class MappedFile {
 public:
  // ERR_CHECKPOINT_MISSING when the file does not exist, ERR_CHECKPOINT_FORMAT when it cannot be read.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  std::string_view bytes(uint64_t offset, uint64_t length) const;  // checked against the size

  // Throws ERR_CHECKPOINT_FORMAT when the file shrank since open: touching a mapped page past the new end
  // would be a SIGBUS, so every tensor read checks first.
  void checkUnchanged() const;

 private:
  MappedFile() = default;
  uint32_t guardSlot_ = 0;
  std::string path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// A private copy-on-write map of [offset, offset + length) of a file. Tensors built over it may be changed
// in place: the changes stay in this process's pages, never reach the file or any other tensor.
class Region {
 public:
  // `path` names the file in errors (see mapped_guard.h: a region whose file shrinks underneath is caught).
  static std::shared_ptr<Region> map(int fd, uint64_t offset, uint64_t length, const std::string& path);
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  uint8_t* data() const { return data_; }
  // True once a page of this region was lost because the file shrank underneath it.
  bool lost() const;
  std::string path() const;

 private:
  Region() = default;
  uint32_t guardSlot_ = 0;
  void* base_ = nullptr;
  size_t mappedLength_ = 0;
  uint8_t* data_ = nullptr;
};

}  // namespace litlora::files

#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/mapped_guard.h"

namespace litlora::files {

// ---------------------------------------------------------------------------------------------- MappedFile

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd_ < 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw Error("ERR_CHECKPOINT_MISSING", "no such file: " + path);
    throw Error("ERR_CHECKPOINT_FORMAT", "cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(file->fd_, &st) != 0) throw Error("ERR_CHECKPOINT_FORMAT", "cannot stat " + path + ": " + std::strerror(errno));
  LITLORA_CHECK(S_ISREG(st.st_mode), "ERR_CHECKPOINT_FORMAT",
                path << " is not a regular file; expected a .pth or .safetensors file");
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, file->fd_, 0);
    if (p == MAP_FAILED) throw Error("ERR_CHECKPOINT_FORMAT", "cannot map " + path + ": " + std::strerror(errno));
    file->data_ = static_cast<const uint8_t*>(p);
    file->guardSlot_ = mapped_guard::add(p, file->size_, PROT_READ, path);
  }
  return file;
}

MappedFile::~MappedFile() {
  mapped_guard::remove(guardSlot_);
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

std::string_view MappedFile::bytes(uint64_t offset, uint64_t length) const {
  LITLORA_CHECK(offset <= size_ && length <= size_ - offset, "ERR_CHECKPOINT_FORMAT",
                path_ << ": expected " << length << " bytes at offset " << offset << ", but the file has only " << size_
                      << " bytes; it is truncated or corrupt");
  return {reinterpret_cast<const char*>(data_) + offset, static_cast<size_t>(length)};
}

void MappedFile::checkUnchanged() const {
  struct stat st {};
  LITLORA_CHECK(fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) >= size_, "ERR_CHECKPOINT_FORMAT",
                path_ << " shrank while open (it was " << size_ << " bytes); it was overwritten in place. Open it again.");
}

// ---------------------------------------------------------------------------------------------- Region

std::shared_ptr<Region> Region::map(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::shared_ptr<Region> region(new Region());
  uint64_t start = offset - offset % page;
  region->mappedLength_ = static_cast<size_t>(offset - start + length);
  void* p = mmap(nullptr, region->mappedLength_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, static_cast<off_t>(start));
  if (p == MAP_FAILED) throw Error("ERR_OOM", "cannot map " + std::to_string(length) + " bytes of the file: " + std::strerror(errno));
  region->base_ = p;
  region->data_ = static_cast<uint8_t*>(p) + (offset - start);
  // Pages are mapped on first touch, not up front: a read fault maps 16 neighbouring pages of the page cache at
  // once ("fault-around"), where MADV_POPULATE_READ walked them one at a time (bench:io, a cached 1.6 GB
  // checkpoint: populating took ~110 ms; getting every tensor lazily and summing it all now takes ~90 ms). For an
  // uncached file, WILLNEED starts readahead of the whole region without waiting for it.
  madvise(p, region->mappedLength_, MADV_WILLNEED);
  region->guardSlot_ = mapped_guard::add(p, region->mappedLength_, PROT_READ | PROT_WRITE, path);
  return region;
}

Region::~Region() {
  mapped_guard::remove(guardSlot_);
  if (base_) munmap(base_, mappedLength_);
}

bool Region::lost() const { return mapped_guard::lost(guardSlot_); }
std::string Region::path() const { return mapped_guard::path(guardSlot_); }

}  // namespace litlora::files

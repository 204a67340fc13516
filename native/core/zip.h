// Zip archives as PyTorch uses them: stored (never compressed) records, read in place from a memory map,
// written with every record's data 64-byte aligned (like torch.save ≥ 2.x), atomically.
//
// The reader trusts nothing in the file: every offset and length is checked against the file size before
// use, so a truncated or corrupted archive is an ERR_CHECKPOINT_FORMAT error, never a read out of bounds.
// Files also get written atomically here (AtomicFile): a temp file in the target's folder, fsync, rename,
// fsync of the folder — an interrupted write leaves the previous file untouched.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace litlora::zip {

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

struct Entry {
  std::string name;
  uint64_t localHeaderOffset = 0;
  uint64_t size = 0;            // uncompressed
  uint64_t compressedSize = 0;
  uint16_t method = 0;          // 0 = stored
  uint16_t flags = 0;
};

class Reader {
 public:
  // Parses the end-of-central-directory record (zip64 too) and the central directory. Touches only the
  // tail of the file, never record data.
  explicit Reader(std::shared_ptr<MappedFile> file);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;
  // Where a stored entry's bytes start in the file; checks the local header and that the bytes lie inside
  // the file. ERR_CHECKPOINT_FORMAT for compressed or encrypted entries (torch.save never writes those).
  uint64_t dataOffset(const Entry& entry) const;
  std::string_view read(const Entry& entry) const;
  const MappedFile& file() const { return *file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t centralDirectoryOffset_ = 0;
};

uint32_t crc32(uint32_t crc, const void* data, size_t length);

// A file written to a temp file next to `path` and moved over it by commit() after an fsync. Until then
// `path` is untouched; destroying an uncommitted AtomicFile removes the temp file.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, uint64_t length);
  void pwrite(const void* data, uint64_t length, uint64_t offset);
  uint64_t position() const { return position_; }
  void commit();
  const std::string& path() const { return path_; }
  const std::string& tempPath() const { return tempPath_; }

 private:
  [[noreturn]] void fail(const std::string& what) const;
  void startWriteback();
  std::string path_;
  std::string tempPath_;
  int fd_ = -1;
  uint64_t position_ = 0;
  uint64_t writebackFrom_ = 0;
  uint64_t faultsAtStart_ = 0;  // mapped_guard::faults() when the file was started
  bool committed_ = false;
};

// Writes a zip of stored records whose data start on 64-byte boundaries (padding in an "FB" extra field,
// as PyTorch's writer does), with CRC-32s, zip64 where sizes need it, and PyTorch's zip64 end records.
class Writer {
 public:
  explicit Writer(const std::string& path);

  void add(const std::string& name, const void* data, uint64_t size);
  // A record written in pieces: begin with its final size, write exactly that many bytes, end.
  void begin(const std::string& name, uint64_t size);
  void write(const void* data, uint64_t length);
  void end();
  // Central directory, fsync, rename over the target.
  void finish();
  const AtomicFile& file() const { return file_; }

 private:
  struct Written {
    std::string name;
    uint64_t offset;
    uint64_t size;
    uint32_t crc;
  };
  AtomicFile file_;
  std::vector<Written> written_;
  bool open_ = false;  // a record is between begin and end
  uint64_t remaining_ = 0;
  uint32_t crc_ = 0;
  bool finished_ = false;
};

}  // namespace litlora::zip

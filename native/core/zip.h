// Zip archives as PyTorch uses them: stored (never compressed) records, read in place from a memory map
// (files::MappedFile), written with every record's data 64-byte aligned (like torch.save ≥ 2.x), atomically
// (files::AtomicFile).
//
// The reader trusts nothing in the file: every offset and length is checked against the file size before
// use, so a truncated or corrupted archive is an ERR_CHECKPOINT_FORMAT error, never a read out of bounds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/atomic_file.h"
#include "core/mapped_file.h"

namespace litlora::zip {

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
  explicit Reader(std::shared_ptr<files::MappedFile> file);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;
  // Where a stored entry's bytes start in the file; checks the local header and that the bytes lie inside
  // the file. ERR_CHECKPOINT_FORMAT for compressed or encrypted entries (torch.save never writes those).
  uint64_t dataOffset(const Entry& entry) const;
  std::string_view read(const Entry& entry) const;
  const files::MappedFile& file() const { return *file_; }

 private:
  std::shared_ptr<files::MappedFile> file_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t centralDirectoryOffset_ = 0;
};

uint32_t crc32(uint32_t crc, const void* data, size_t length);

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
  // The same for a caller that computes the record's CRC-32 itself (zip::crc32 over the bytes, in order: e.g. on
  // another thread, where the bytes are still in cache): write without checksumming, end with that CRC. A record
  // is written one way or the other, never both.
  void writeUnchecked(const void* data, uint64_t length);
  void end(uint32_t crc);
  // Central directory, fsync, rename over the target.
  void finish();
  const files::AtomicFile& file() const { return file_; }

 private:
  struct Written {
    std::string name;
    uint64_t offset;
    uint64_t size;
    uint32_t crc;
  };
  files::AtomicFile file_;
  std::vector<Written> written_;
  bool open_ = false;  // a record is between begin and end
  uint64_t remaining_ = 0;
  uint32_t crc_ = 0;
  bool checked_ = false;    // the open record had write()s (CRC kept here)
  bool unchecked_ = false;  // the open record had writeUnchecked()s (CRC given to end)
  bool finished_ = false;
};

}  // namespace litlora::zip

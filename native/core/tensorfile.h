// Tensor files (.pth and .safetensors) read lazily: open() lists names, shapes and dtypes from the zip
// directory + pickle or the safetensors header without touching tensor bytes; get() maps one tensor's
// bytes privately (copy-on-write, so in-place changes never reach the file or other tensors) or copies
// them when the file's layout leaves them unaligned for their dtype.
//
//   auto file = litlora::tensorfile::open("lit_model.pth");
//   for (const auto& e : file->entries()) … e.name, e.shape, e.dtype, e.bytes …
//   at::Tensor w = file->get("transformer.h.0.attn.qkv.weight");
//
// Writers live in pth.h and safetensors.h (both stream tensor by tensor); what their parsers hand over is in
// tensorfile_types.h.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensorfile_types.h"

namespace litlora::tensorfile {

class Reader {
 public:
  Reader(std::shared_ptr<files::MappedFile> file, Contents contents);

  Format format() const { return c_.format; }
  const std::string& path() const { return path_; }
  const std::vector<EntryInfo>& entries() const { return c_.entries; }
  const EntryInfo* find(const std::string& name) const;
  const std::string& wrapped() const { return c_.wrapped; }
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return c_.metadata; }
  const std::vector<std::pair<std::string, PlainValue>>& values() const { return c_.values; }

  // A CPU tensor; ERR_CHECKPOINT_MISSING for an unknown name, ERR_DISPOSED after close().
  at::Tensor get(const std::string& name);
  // Where a tensor's bytes lie in the file, when they lie there contiguously in its row-major order (what a
  // streamed copy can read with pread, never mapping them): the descriptor stays valid until close().
  struct ByteRange {
    int fd = -1;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  std::optional<ByteRange> contiguousBytes(const std::string& name);
  // Every tensor, in file order; views of one storage in the file share one storage here too.
  std::vector<std::pair<std::string, at::Tensor>> getAll();
  // Releases the file; tensors handed out keep their own maps and stay valid. Idempotent.
  void close();

 private:
  at::Tensor storageOf(const Source& source);  // 1-D tensor over the whole storage
  at::Tensor view(const Source& source, const at::Tensor& storage);
  // ERR_CHECKPOINT_FORMAT for entry i when it is an overlapping view too large to ever copy.
  void checkViewSize(size_t i) const;

  std::string path_;
  std::shared_ptr<files::MappedFile> file_;
  Contents c_;
  std::unordered_map<std::string, size_t> index_;
  std::shared_mutex mutex_;  // get() shares it; close() takes it alone
};

// Opens a .pth (zip) or .safetensors file, telling the format from the content, not the name.
std::shared_ptr<Reader> open(const std::string& path);

// This machine's physical memory in bytes (what a dense tensor could ever occupy).
uint64_t hostMemoryBytes();
// ERR_OOM when making `t` dense (a copy, a dtype conversion, a typed array) would need more bytes than the
// machine has: a stride-0 or overlapping view can claim a shape far beyond its storage, and asking libtorch to
// allocate it fails with a raw allocator message (or worse, takes all the memory there is).
void checkMaterializable(const at::Tensor& t, const std::string& what);

// True for a tensor whose storage is a private map of a tensor file (what Reader::get returns without a copy):
// its pages belong to the page cache until written, so it is not counted as memory the process allocated.
bool isFileMapped(const at::Tensor& t);
// ERR_IO when `t` maps a file that shrank underneath it since (see mapped_guard.h): its bytes are gone.
void checkMappingIntact(const at::Tensor& t, const std::string& what);

// The sum of every element: reads every byte once (benchmarks and tests use it to touch data). exact:
// accumulate in float64 (tests); otherwise in the tensor's own type, at memory speed (benchmarks).
double checksum(const at::Tensor& t, bool exact = true);

}  // namespace litlora::tensorfile

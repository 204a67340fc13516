// Hugging Face .safetensors: an 8-byte little-endian header length, a JSON header
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, …}, then the bytes.
//
// parse() reads and checks the header only (tensors are mapped lazily by tensorfile::Reader). The writer
// produces the same bytes as the `safetensors` Python package: tensors ordered by dtype (widest first, as
// its Dtype enum sorts) then name, so every tensor is aligned for its dtype; compact JSON with
// __metadata__ first; header padded with spaces to a multiple of 8.
//
//   litlora::safetensors::Writer w(path, specs, metadata);   // specs: every (name, dtype, shape) up front
//   w.add(name, tensor);  …                                   // any order, written in place
//   w.finish();                                               // fsync + rename
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "core/mapped_file.h"
#include "core/tensorfile_types.h"

namespace litlora::safetensors {

tensorfile::Contents parse(const std::shared_ptr<files::MappedFile>& file);

struct Spec {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
};

class Writer {
 public:
  Writer(const std::string& path, std::vector<Spec> specs,
         const std::vector<std::pair<std::string, std::string>>& metadata = {});
  // The tensor must match its spec's dtype and shape; it is written at its place in the file now.
  void add(const std::string& name, const at::Tensor& tensor);
  // A tensor written in pieces by producers that never hold it whole (a streamed conversion): `length` bytes at
  // `offset` within its slot. It counts as written once every byte of it has been given.
  void addBytes(const std::string& name, uint64_t offset, const void* data, uint64_t length);
  // Tensor names in the order of their bytes in the file (write in this order for sequential I/O).
  std::vector<std::string> fileOrder() const;
  // ERR_ARG if a spec'd tensor was never added.
  void finish();

 private:
  struct Slot {
    Spec spec;
    uint64_t begin = 0;
    uint64_t end = 0;
    uint64_t bytesGiven = 0;  // addBytes
    bool written = false;
  };
  files::AtomicFile file_;
  std::vector<Slot> slots_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t dataStart_ = 0;
};

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace litlora::safetensors

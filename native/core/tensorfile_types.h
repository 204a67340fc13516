// What a tensor-file format parser (pth.h, safetensors.h) hands to tensorfile::Reader (tensorfile.h): the
// entries it found and where their bytes lie, plus the small checks every parser uses. Apart from tensorfile.h
// so that the reader includes the parsers and the parsers include only this, never the reader.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace litlora::tensorfile {

enum class Format { Pth, Safetensors };

struct EntryInfo {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype = at::ScalarType::Undefined;  // Undefined: a type litlora cannot hold (see dtypeName)
  std::string dtypeName;                             // "float32", "bfloat16", … or the file's own name
  uint64_t bytes = 0;                                // numel × element size
};

// A non-tensor leaf next to the tensors (an int, float, string, bool or None in a .pth).
struct PlainValue {
  enum class Kind { None, Bool, Int, Float, Str } kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;
};

// Where one tensor's bytes are: a strided view (in elements of dtype) of a storage at fileOffset.
struct Source {
  uint64_t fileOffset = 0;
  uint64_t storageBytes = 0;
  at::ScalarType dtype = at::ScalarType::Undefined;
  int64_t offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  std::string storageId;  // views with the same id share one storage in getAll()
};

// What a format parser found; Reader takes it over.
struct Contents {
  Format format = Format::Pth;
  std::vector<EntryInfo> entries;
  std::vector<Source> sources;  // parallel to entries
  std::string wrapped;          // "model" when the names are those of {"model": {...}}
  std::vector<std::pair<std::string, std::string>> metadata;  // safetensors __metadata__
  std::vector<std::pair<std::string, PlainValue>> values;
};

// Element size in bytes for a dtype litlora can hold.
inline uint64_t bytesPerElement(at::ScalarType t) { return static_cast<uint64_t>(c10::elementSize(t)); }

// The highest element index a strided view reaches, +1 (0 for an empty view); -1 on overflow.
int64_t viewExtent(int64_t offset, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides);

// Names must be valid UTF-8 to survive the trip to JavaScript strings and back.
bool validUtf8(std::string_view s);

}  // namespace litlora::tensorfile

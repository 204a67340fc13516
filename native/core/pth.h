// PyTorch's .pth format (torch.save's zip archive), weights only.
//
// Reading: parse() lists what a torch.save file holds (parseLegacy(), in pth_legacy.cc, the same for the
// pre-1.6 non-zip format) — flat dicts, {"model": {...}} wrappers, OrderedDicts
// (model.state_dict()), nested dicts/lists/tuples of tensors and plain values, any archive folder name,
// aligned or unaligned records, views sharing one storage — through the allowlist unpickler (pickle.h).
// Names are flattened with "." ("layers.0.weight"); {"model": {...}} reports the inner names.
//
// Writing: Writer streams tensors into the archive one by one (only their metadata stays in memory) and
// writes data.pkl last, exactly as torch.save pickles a dict. The file loads with torch.load(path) and
// torch.load(path, weights_only=True), bit-exact, and appears atomically on finish():
//
//   litlora::pth::Writer w("final/lit_model.pth");          // or Writer(path, "model") for {"model": {...}}
//   for (...) w.add(name, mergedTensor);
//   w.finish();
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/pickle.h"
#include "core/tensorfile_types.h"
#include "core/zip.h"

namespace litlora::pth {

tensorfile::Contents parse(const std::shared_ptr<files::MappedFile>& file);
tensorfile::Contents parseLegacy(const std::shared_ptr<files::MappedFile>& file);

// Where a storage's bytes lie in the file (a zip record, or a legacy file's data section); found by the
// container format, checked by flatten(). `tensor` names the first tensor using it, for messages.
struct StorageBytes {
  uint64_t fileOffset = 0;
  uint64_t size = 0;
  std::string what;  // for messages: "the data entry 'archive/data/0'"
};
using StorageLocator = std::function<StorageBytes(const pickle::StorageRef& storage, const std::string& tensor)>;

// The unpickled object as flat "a.b.0" names: tensors (each view checked to lie inside its storage, each
// storage inside its bytes) and plain values. Shared by both container formats.
tensorfile::Contents flatten(const pickle::Unpickled& u, const std::string& path, const StorageLocator& locate);

class Writer {
 public:
  // wrapKey "" writes {name: tensor}; "model" writes {"model": {name: tensor}} (litgpt's .lora files).
  explicit Writer(const std::string& path, const std::string& wrapKey = "");

  // Writes the tensor's storage now (views of a storage already written reuse it, as torch.save does).
  void add(const std::string& name, const at::Tensor& tensor);
  // A contiguous tensor written in pieces, for producers that never hold it whole (a streamed merge): begin
  // with its name, dtype and shape, hand over exactly its bytes in order, end.
  void beginTensor(const std::string& name, at::ScalarType dtype, at::IntArrayRef sizes);
  void writeTensorBytes(const void* data, uint64_t length);
  void endTensor();
  // For a caller that computes the CRC-32 of the tensor's bytes itself (zip::crc32): see zip::Writer.
  void writeTensorBytesUnchecked(const void* data, uint64_t length);
  void endTensor(uint32_t crc);
  // `name` shares the storage (and view) of the tensor written before as `existing`, as torch.save writes two
  // names of one tensor (litgpt's tied lm_head.weight and transformer.wte.weight).
  void addAlias(const std::string& name, const std::string& existing);
  // data.pkl and PyTorch's bookkeeping records, then fsync and rename over the target.
  void finish();

 private:
  // Checks a new record's name (non-empty, not given before) and dtype (one the .pth format stores); records it.
  void claimName(const std::string& name, at::ScalarType dtype);
  struct SeenStorage {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    std::string key;
    at::ScalarType dtype;
    int64_t numel;
    int64_t version;  // the tensor's version counter when written: an in-place change since means "write again"
  };
  std::string path_;
  std::string prefix_;  // archive folder, "<file stem>/"
  std::string wrapKey_;
  zip::Writer zip_;
  std::vector<pickle::TensorRecord> records_;
  std::unordered_set<std::string> names_;
  std::unordered_map<const c10::StorageImpl*, SeenStorage> seen_;
  int64_t nextKey_ = 0;
};

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::string& wrapKey = "");

}  // namespace litlora::pth

// The pickle subset of PyTorch checkpoints, both ways, executing nothing.
//
// unpickle(): a weights-only unpickler. It knows the opcodes torch.save emits (protocol 2, plus the
// protocol 3-5 forms of the same values) and only the globals PyTorch's `weights_only=True` loader allows
// for dense tensors and containers; any other global (os.system, builtins.eval, …) is refused with
// ERR_CHECKPOINT_FORMAT naming it, at the GLOBAL opcode, before anything could refer to it. Results are
// plain data in an arena (indices, no pointers), so cyclic or deeply nested pickles cannot leak or
// overflow the stack when freed.
//
// pickleTensorDict(): the untagged pickle torch.save writes for a dict of tensors, byte for byte
// (PyTorch's C pickler's memo and batching rules included), so `torch.load(weights_only=True)` reads it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace litlora::pickle {

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

struct Object {
  Kind kind = Kind::None;
  int64_t integer = 0;          // Bool, Int; Storage and Tensor: index into Unpickled::storages / tensors
  double real = 0;              // Float
  std::string text;             // Str, Bytes, Global ("module.name")
  std::vector<uint32_t> items;  // Tuple, List; Dict: key, value, key, value, …
};

// A storage named by a persistent id: ('storage', torch.FloatStorage, '0', 'cpu', numel).
struct StorageRef {
  std::string key;            // the record is <archive>/data/<key>
  at::ScalarType dtype;       // element type (uint8 for UntypedStorage)
  int64_t numel;              // in elements of dtype
  std::string location;       // 'cpu', 'cuda:0', … (litlora loads to CPU first)
};

// _rebuild_tensor_v2/v3: a strided view of a storage.
struct TensorRef {
  uint32_t storage;
  at::ScalarType dtype;       // the tensor's type (v3 may view an untyped storage)
  int64_t offset;             // in elements of dtype
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  bool requiresGrad = false;
};

struct Unpickled {
  std::vector<Object> objects;
  std::vector<StorageRef> storages;
  std::vector<TensorRef> tensors;
  uint32_t root = 0;
};

// `where` names the file in error messages.
Unpickled unpickle(std::string_view bytes, const std::string& where);

// Storage class name for a dtype ("FloatStorage"); empty when torch.save has none (it then uses v3).
std::string storageClassName(at::ScalarType dtype);

// What pickleTensorDict writes for one tensor: a view (offset, sizes, strides, in elements) of storage
// `storageKey`, which holds `storageNumel` elements of `dtype`.
struct TensorRecord {
  std::string name;
  std::string storageKey;
  at::ScalarType dtype;
  int64_t storageNumel;
  int64_t offset;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// The data.pkl of torch.save({name: tensor, …}) or, with wrapKey "model", torch.save({"model": {…}}).
std::string pickleTensorDict(const std::vector<TensorRecord>& tensors, const std::string& wrapKey);

}  // namespace litlora::pickle

// The pickle subset of PyTorch checkpoints, both ways, executing nothing.
//
// unpickle(): a weights-only unpickler. It knows the opcodes torch.save emits (protocol 2, plus the
// protocol 3-5 forms of the same values) and only the globals PyTorch's `weights_only=True` loader allows
// for dense tensors and containers; any other global (os.system, builtins.eval, …) is refused with
// ERR_CHECKPOINT_FORMAT naming it, at the GLOBAL opcode, before anything could refer to it. Results are
// plain data in an arena (indices, no pointers), so cyclic or deeply nested pickles cannot leak or
// overflow the stack when freed.
//
// Numpy scalars (a numpy.float64 loss, a numpy.int64 step that old training scripts stored next to the
// weights) are read as plain numbers through exactly the globals PyTorch's loader needs allowlisted for
// them (add_safe_globals([numpy.core.multiarray.scalar, numpy.dtype, type(numpy.dtype(...))])): `scalar`
// under its numpy 1.x and 2.x module names, and `numpy.dtype` with its BUILD state. Arrays
// (numpy.core.multiarray._reconstruct, numpy.ndarray) and every other numpy global stay refused.
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

// NumpyDtype: the result of numpy.dtype('<kind><size>', …): text holds 'f8', integer the byte order ('<', '>', '|', '=').
enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, NumpyDtype };

struct Object {
  Kind kind = Kind::None;
  int64_t integer = 0;          // Bool, Int; Storage and Tensor: index into Unpickled::storages / tensors
  double real = 0;              // Float
  std::string text;             // Str, Bytes, Global ("module.name")
  std::vector<uint32_t> items;  // Tuple, List; Dict: key, value, key, value, …
};

// A storage named by a persistent id: ('storage', torch.FloatStorage, '0', 'cpu', numel), or in the legacy
// (non-zip) format ('storage', torch.FloatStorage, root_key, 'cpu', numel, view_metadata), where
// view_metadata is None or (view_key, offset, size): the storage is then elements [offset, offset + size)
// of the root storage.
struct StorageRef {
  std::string key;            // the record is <archive>/data/<key> (legacy: the root storage's key)
  at::ScalarType dtype;       // element type (uint8 for UntypedStorage)
  int64_t numel;              // in elements of dtype (legacy: of the root storage)
  std::string location;       // 'cpu', 'cuda:0', … (litlora loads to CPU first)
  int64_t viewOffset = 0;     // legacy views: where the view starts in the root storage, in elements
  int64_t viewNumel = -1;     // legacy views: the view's length in elements; -1 when not a view
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
  uint64_t length = 0;        // bytes read, through the STOP opcode (a legacy file holds several pickles in a row)
};

// The persistent ids a pickle may hold: a zip archive's 5-tuples, or the legacy format's 6-tuples.
enum class StorageIds { Zip, Legacy };

// `where` names the file in error messages, `stream` the pickle within it ("data.pkl"), `base` the pickle's
// offset in that stream (error messages give byte offsets in it). Bytes after the STOP opcode are not read.
Unpickled unpickle(std::string_view bytes, const std::string& where, StorageIds ids = StorageIds::Zip,
                   const std::string& stream = "data.pkl", uint64_t base = 0);

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

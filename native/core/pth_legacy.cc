// PyTorch's legacy .pth format: what torch.save wrote before PyTorch 1.6 (and still writes with
// _use_new_zipfile_serialization=False), which old lit-llama / lit-gpt checkpoints use. The file is a row of
// pickles followed by raw storage bytes (torch/serialization.py, _legacy_save and _legacy_load):
//
//   pickle   the magic number 0x1950a86a20f9469cfc6c
//   pickle   the protocol version, 1001
//   pickle   sys info: {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}
//   pickle   the saved object; storages are persistent ids ('storage', torch.FloatStorage, root_key,
//            location, numel, view_metadata)
//   pickle   the list of storage keys
//   then, for each key in that list: its element count (int64, little-endian) and count × element size bytes
//
// The object pickle goes through the same allowlist unpickler as a zip archive's data.pkl (pickle.h), and
// the same flattening and bounds checks (pth.h). Every length is checked against the file size before use:
// a truncated or hostile file is ERR_CHECKPOINT_FORMAT, never a read out of bounds.
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "core/pth.h"

namespace litlora::pth {

namespace {

using pickle::Kind;

// 0x1950a86a20f9469cfc6c, little-endian, as pickle's LONG1 opcode stores it.
constexpr uint8_t kMagic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kProtocolVersion = 1001;

[[noreturn]] void fail(const std::string& path, const std::string& message) {
  throw Error("ERR_CHECKPOINT_FORMAT", path + ": " + message);
}

// The magic number is wider than the int64 the unpickler holds, so its pickle is matched byte by byte:
// PROTO n, an optional FRAME (protocol 4+), LONG1 of 10 bytes, STOP. Returns the offset after it.
uint64_t magicEnd(const uint8_t* d, uint64_t size, const std::string& path) {
  uint64_t pos = 0;
  if (size >= 2 && d[0] == 0x80) pos = 2;
  if (pos + 9 <= size && d[pos] == 0x95) pos += 9;
  const bool ok = pos + 13 <= size && d[pos] == 0x8a && d[pos + 1] == 10 && std::memcmp(d + pos + 2, kMagic, 10) == 0 &&
                  d[pos + 12] == '.';
  if (!ok)
    fail(path, "is a pickle, but not a file torch.save wrote: it does not start with PyTorch's magic number "
               "(0x1950a86a20f9469cfc6c); the file is truncated, corrupt or not a PyTorch checkpoint");
  return pos + 13;
}

const pickle::Object* dictGet(const pickle::Unpickled& u, const pickle::Object& dict, const std::string& key) {
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const pickle::Object& k = u.objects[dict.items[i]];
    if (k.kind == Kind::Str && k.text == key) return &u.objects[dict.items[i + 1]];
  }
  return nullptr;
}

}  // namespace

tensorfile::Contents parseLegacy(const std::shared_ptr<files::MappedFile>& file) {
  const std::string& path = file->path();
  const uint64_t size = file->size();
  const std::string_view all(reinterpret_cast<const char*>(file->data()), size);
  uint64_t pos = magicEnd(file->data(), size, path);
  auto next = [&](const std::string& what, pickle::StorageIds ids) {
    pickle::Unpickled u = pickle::unpickle(all.substr(pos), path, ids, what, pos);
    pos += u.length;
    return u;
  };

  const pickle::Unpickled version = next("the protocol version pickle", pickle::StorageIds::Zip);
  const pickle::Object& v = version.objects[version.root];
  if (v.kind != Kind::Int || v.integer != kProtocolVersion)
    fail(path, "has a legacy torch.save protocol version other than 1001; the file is corrupt or from an unknown PyTorch");

  const pickle::Unpickled sys = next("the system info pickle", pickle::StorageIds::Zip);
  const pickle::Object& info = sys.objects[sys.root];
  if (info.kind != Kind::Dict) fail(path, "has no system info dict after the protocol version; the file is corrupt");
  const pickle::Object* little = dictGet(sys, info, "little_endian");
  if (little && little->kind == Kind::Bool && !little->integer)
    fail(path, "was saved on a big-endian machine, which litlora does not read; re-save it with the default zip "
               "format in Python: torch.save(torch.load(path, weights_only=True), path)");

  const pickle::Unpickled object = next("the object pickle", pickle::StorageIds::Legacy);

  const pickle::Unpickled keyList = next("the storage key pickle", pickle::StorageIds::Zip);
  const pickle::Object& keys = keyList.objects[keyList.root];
  if (keys.kind != Kind::List) fail(path, "has no list of storage keys after the object; the file is corrupt");

  // The element size of each storage is its dtype's as the object names it (the first reference decides, as
  // in PyTorch); the data section stores the element count, which must match.
  std::unordered_map<std::string, const pickle::StorageRef*> firstRef;
  for (const pickle::StorageRef& s : object.storages) firstRef.emplace(s.key, &s);

  std::unordered_map<std::string, StorageBytes> data;
  for (uint32_t item : keys.items) {
    const pickle::Object& k = keyList.objects[item];
    if (k.kind != Kind::Str && k.kind != Kind::Int) fail(path, "has a storage key that is not a string");
    const std::string key = k.kind == Kind::Str ? k.text : std::to_string(k.integer);
    auto ref = firstRef.find(key);
    if (ref == firstRef.end()) fail(path, "lists data for storage '" + key + "', which the object never uses; the file is corrupt");
    if (data.count(key)) fail(path, "lists storage '" + key + "' twice; the file is corrupt");
    if (size - pos < 8)
      fail(path, "ends at byte " + std::to_string(size) + ", inside the header of storage '" + key + "'; the file is truncated");
    int64_t count;
    std::memcpy(&count, file->data() + pos, 8);
    const uint64_t element = tensorfile::bytesPerElement(ref->second->dtype);
    if (count != ref->second->numel)
      fail(path, "storage '" + key + "' holds " + std::to_string(count) + " elements, but the object says " +
                     std::to_string(ref->second->numel) + "; the file is corrupt");
    const uint64_t available = size - pos - 8;
    if (static_cast<uint64_t>(count) > available / element)
      fail(path, "storage '" + key + "' needs " + std::to_string(count) + " × " + std::to_string(element) +
                     " bytes at byte " + std::to_string(pos + 8) + ", but the file ends at byte " + std::to_string(size) +
                     "; the file is truncated");
    const uint64_t bytes = static_cast<uint64_t>(count) * element;
    data.emplace(key, StorageBytes{pos + 8, bytes, "storage '" + key + "'"});
    pos += 8 + bytes;
  }

  return flatten(object, path, [&](const pickle::StorageRef& s, const std::string& tensor) {
    auto found = data.find(s.key);
    if (found == data.end())
      fail(path, "storage '" + s.key + "' of '" + tensor + "' has no data in the file; the file is truncated or corrupt");
    return found->second;
  });
}

}  // namespace litlora::pth

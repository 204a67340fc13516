#include "core/pth.h"

#include <random>

#include "core/dtype.h"
#include "core/error.h"

namespace litlora::pth {

namespace {

using pickle::Kind;

// Walks the unpickled object into flat "a.b.0" names, resolving each tensor's bytes through the container's
// locator and checking that every view stays inside its storage and every storage inside its bytes.
class Flattener {
 public:
  Flattener(const pickle::Unpickled& u, const StorageLocator& locate, const std::string& path, tensorfile::Contents& out)
      : u_(u), locate_(locate), out_(out), path_(path) {}

  void run() {
    const pickle::Object& root = u_.objects[u_.root];
    if (root.kind == Kind::Dict) {
      for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
        const pickle::Object& key = u_.objects[root.items[i]];
        const pickle::Object& value = u_.objects[root.items[i + 1]];
        if (key.kind == Kind::Str && key.text == "model" && value.kind == Kind::Dict) {
          // litgpt's {"model": {...}} (and readers' ckpt.get("model", ckpt)): the names are the inner ones.
          out_.wrapped = "model";
          return walk(root.items[i + 1], "", 1);
        }
      }
    }
    LITLORA_CHECK(root.kind == Kind::Dict || root.kind == Kind::List || root.kind == Kind::Tuple, "ERR_CHECKPOINT_FORMAT",
                  path_ << " holds a single " << (root.kind == Kind::Tensor ? "tensor" : "value")
                        << ", not a dict of tensors; save a dict instead (torch.save({'name': tensor}, path))");
    walk(u_.root, "", 0);
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error("ERR_CHECKPOINT_FORMAT", path_ + ": " + message);
  }

  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

  std::string keyText(uint32_t ref) const {
    const pickle::Object& k = u_.objects[ref];
    switch (k.kind) {
      case Kind::Str: return k.text;
      case Kind::Int: return std::to_string(k.integer);
      case Kind::Bool: return k.integer ? "True" : "False";
      case Kind::None: return "None";
      default: fail("a dict key that is not a string or an int");
    }
  }

  void walk(uint32_t ref, const std::string& name, int depth) {
    // Shared sub-objects (memo references) could make a tiny pickle expand exponentially; real files visit
    // each object about once.
    if (depth > 64) fail("containers nested deeper than 64 levels (or a cycle) at '" + name + "'");
    if (++visits_ > 4 * u_.objects.size() + 10000) fail("the pickle's containers expand too much (shared sub-objects)");
    const pickle::Object& o = u_.objects[ref];
    switch (o.kind) {
      case Kind::Dict:
        for (size_t i = 0; i + 1 < o.items.size(); i += 2) walk(o.items[i + 1], join(name, keyText(o.items[i])), depth + 1);
        break;
      case Kind::List:
      case Kind::Tuple:
        for (size_t i = 0; i < o.items.size(); ++i) walk(o.items[i], join(name, std::to_string(i)), depth + 1);
        break;
      case Kind::Tensor: addTensor(name, u_.tensors[static_cast<size_t>(o.integer)]); break;
      case Kind::None: addValue(name, {}); break;
      case Kind::Bool: addValue(name, {tensorfile::PlainValue::Kind::Bool, o.integer != 0, 0, 0, ""}); break;
      case Kind::Int: addValue(name, {tensorfile::PlainValue::Kind::Int, false, o.integer, 0, ""}); break;
      case Kind::Float: addValue(name, {tensorfile::PlainValue::Kind::Float, false, 0, o.real, ""}); break;
      case Kind::Str: addValue(name, {tensorfile::PlainValue::Kind::Str, false, 0, 0, o.text}); break;
      default: break;  // bytes, bare storages, dtypes: not tensors, not plain values
    }
  }

  void claim(const std::string& name) {
    if (name.empty()) fail("a tensor or value without a name at the top level; expected a dict of tensors");
    if (!names_.insert(name).second) fail("the name '" + name + "' appears twice once nested names are joined with '.'");
  }

  void addValue(const std::string& name, tensorfile::PlainValue value) {
    claim(name);
    out_.values.emplace_back(name, std::move(value));
  }

  void addTensor(const std::string& name, const pickle::TensorRef& t) {
    claim(name);
    const pickle::StorageRef& s = u_.storages[t.storage];
    const uint64_t storageElement = tensorfile::bytesPerElement(s.dtype);
    if (static_cast<uint64_t>(s.numel) > UINT64_MAX / 16 / storageElement) fail("the storage of '" + name + "' is impossibly large");
    const uint64_t storageBytes = static_cast<uint64_t>(s.numel) * storageElement;
    const StorageBytes where = locate_(s, name);
    if (storageBytes > where.size)
      fail(where.what + " has " + std::to_string(where.size) + " bytes, shorter than the storage of '" +
           name + "' (" + std::to_string(s.numel) + " × " + std::to_string(storageElement) + " = " +
           std::to_string(storageBytes) + " bytes); the file is truncated or corrupt");
    const uint64_t element = tensorfile::bytesPerElement(t.dtype);
    // A legacy storage view: the tensor's offset counts from the view's start, and it must stay inside the view.
    int64_t offset = t.offset;
    uint64_t reachable = storageBytes / element;
    if (s.viewNumel >= 0) {
      if (t.dtype != s.dtype) fail("'" + name + "' views a storage view of another dtype");
      if (offset > INT64_MAX - s.viewOffset) fail("'" + name + "' has an impossibly large storage offset");
      offset += s.viewOffset;
      reachable = static_cast<uint64_t>(s.viewNumel);
    }
    const int64_t extent = tensorfile::viewExtent(t.offset, t.sizes, t.strides);
    if (extent < 0 || static_cast<uint64_t>(extent) > reachable)
      fail("'" + name + "' (shape " + shapeString(t.sizes) + ", stride " + shapeString(t.strides) + ", offset " +
           std::to_string(t.offset) + ") reaches past its storage" + (s.viewNumel >= 0 ? " view" : "") + " of " +
           std::to_string(s.viewNumel >= 0 ? reachable * element : storageBytes) + " bytes");
    __int128 numel = 1;
    for (int64_t d : t.sizes) {
      numel *= d;
      if (numel > INT64_MAX / 16) fail("'" + name + "' has an impossibly large shape " + shapeString(t.sizes));
    }
    tensorfile::EntryInfo info;
    info.name = name;
    info.shape = t.sizes;
    info.dtype = t.dtype;
    info.dtypeName = dtypeName(t.dtype);
    info.bytes = static_cast<uint64_t>(numel) * element;
    tensorfile::Source src;
    src.fileOffset = where.fileOffset;
    src.storageBytes = storageBytes;
    src.dtype = t.dtype;
    src.offset = offset;
    src.sizes = t.sizes;
    src.strides = t.strides;
    src.storageId = s.key + "/" + info.dtypeName;
    out_.entries.push_back(std::move(info));
    out_.sources.push_back(std::move(src));
  }

  const pickle::Unpickled& u_;
  const StorageLocator& locate_;
  tensorfile::Contents& out_;
  std::string path_;
  std::unordered_set<std::string> names_;
  size_t visits_ = 0;
};

std::string archiveFolder(const std::string& path) {
  // torch.save names the folder after the file name without its last extension ("lit_model.pth.lora" →
  // "lit_model.pth"); readers accept any name.
  auto slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base.empty() ? "archive" : base;
}

}  // namespace

tensorfile::Contents parse(const std::shared_ptr<files::MappedFile>& file) {
  zip::Reader zip(file);
  const std::string& path = file->path();
  LITLORA_CHECK(!zip.entries().empty(), "ERR_CHECKPOINT_FORMAT", path << " is an empty zip archive, not a PyTorch checkpoint");
  // PyTorch takes the archive folder from the first record; accept any one folder holding data.pkl.
  const std::string& first = zip.entries().front().name;
  auto slash = first.find('/');
  std::string prefix = slash == std::string::npos ? "" : first.substr(0, slash + 1);
  const zip::Entry* pkl = zip.find(prefix + "data.pkl");
  for (size_t i = 0; !pkl && i < zip.entries().size(); ++i) {
    const std::string& n = zip.entries()[i].name;
    auto s = n.find('/');
    if (s != std::string::npos && n.compare(s, std::string::npos, "/data.pkl") == 0) {
      prefix = n.substr(0, s + 1);
      pkl = &zip.entries()[i];
    }
  }
  LITLORA_CHECK(pkl, "ERR_CHECKPOINT_FORMAT",
                path << " is a zip archive without a data.pkl record, so not a torch.save checkpoint");
  LITLORA_CHECK(!zip.find(prefix + "constants.pkl"), "ERR_CHECKPOINT_FORMAT",
                path << " is a TorchScript archive (torch.jit.save), not a checkpoint; save model.state_dict() with "
                        "torch.save instead");
  pickle::Unpickled u = pickle::unpickle(zip.read(*pkl), path);
  return flatten(u, path, [&](const pickle::StorageRef& s, const std::string& tensor) {
    const std::string record = prefix + "data/" + s.key;
    const zip::Entry* entry = zip.find(record);
    LITLORA_CHECK(entry, "ERR_CHECKPOINT_FORMAT",
                  path << ": the storage record '" << record << "' of '" << tensor << "' is missing; the file is truncated or corrupt");
    return StorageBytes{zip.dataOffset(*entry), entry->size, "the data entry '" + record + "'"};
  });
}

tensorfile::Contents flatten(const pickle::Unpickled& u, const std::string& path, const StorageLocator& locate) {
  tensorfile::Contents contents;
  contents.format = tensorfile::Format::Pth;
  Flattener(u, locate, path, contents).run();
  return contents;
}

// ------------------------------------------------------------------------------------------------- Writer

Writer::Writer(const std::string& path, const std::string& wrapKey)
    : path_(path), prefix_(archiveFolder(path) + "/"), wrapKey_(wrapKey), zip_(path) {}

void Writer::claimName(const std::string& name, at::ScalarType dtype) {
  LITLORA_CHECK(!name.empty(), "ERR_ARG", "saving " << path_ << ": a tensor name is empty");
  LITLORA_CHECK(!pickle::storageClassName(dtype).empty(), "ERR_DTYPE",
                "saving " << path_ << ": '" << name << "' has dtype " << dtypeName(dtype)
                          << ", which the .pth writer does not support; convert it first");
  LITLORA_CHECK(names_.insert(name).second, "ERR_ARG", "saving " << path_ << ": the name '" << name << "' is given twice");
}

void Writer::add(const std::string& name, const at::Tensor& tensor) {
  LITLORA_CHECK(tensor.defined(), "ERR_ARG", "saving " << path_ << ": '" << name << "' is not a tensor");
  LITLORA_CHECK(tensor.layout() == at::kStrided, "ERR_ARG",
                "saving " << path_ << ": '" << name << "' is not a dense tensor; convert it with to_dense() first");
  const at::ScalarType dtype = tensor.scalar_type();
  claimName(name, dtype);

  at::Tensor t = tensor;
  if (!t.device().is_cpu()) t = t.contiguous().to(at::kCPU);
  if (t.is_conj()) t = t.resolve_conj();
  if (t.is_neg()) t = t.resolve_neg();
  const uint64_t element = tensorfile::bytesPerElement(dtype);
  if (t.storage().nbytes() % element != 0 || (t.storage().nbytes() > 0 && !t.storage().data())) t = t.contiguous().clone();
  const bool callersStorage = t.storage().is_alias_of(tensor.storage());
  c10::StorageImpl* impl = t.storage().unsafeGetStorageImpl();

  // A storage written before is reused (views and tied weights stay shared, as with torch.save) if it is
  // still alive, has the same dtype, and its tensor was not modified in place since.
  std::string key;
  int64_t numel = 0;
  auto seen = seen_.find(impl);
  if (callersStorage && seen != seen_.end() && seen->second.dtype == dtype && seen->second.storage.lock() &&
      seen->second.version == static_cast<int64_t>(t._version())) {
    key = seen->second.key;
    numel = seen->second.numel;
  } else {
    if (seen != seen_.end()) {  // same storage, but another dtype or modified: store a copy of this view
      t = t.clone(at::MemoryFormat::Contiguous);
      impl = t.storage().unsafeGetStorageImpl();
    }
    key = std::to_string(nextKey_++);
    const uint64_t bytes = t.storage().nbytes();
    numel = static_cast<int64_t>(bytes / element);
    zip_.add(prefix_ + "data/" + key, t.storage().data(), bytes);
    if (t.storage().is_alias_of(tensor.storage()))
      seen_.insert_or_assign(impl, SeenStorage{c10::weak_intrusive_ptr<c10::StorageImpl>(
                                       c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(impl)),
                                   key, dtype, numel, static_cast<int64_t>(t._version())});
  }
  records_.push_back({name, key, dtype, numel, t.storage_offset(), t.sizes().vec(), t.strides().vec()});
}

void Writer::beginTensor(const std::string& name, at::ScalarType dtype, at::IntArrayRef sizes) {
  claimName(name, dtype);
  int64_t numel = 1;
  std::vector<int64_t> strides(sizes.size());
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = numel;
    numel *= sizes[i];
  }
  const std::string key = std::to_string(nextKey_++);
  zip_.begin(prefix_ + "data/" + key, static_cast<uint64_t>(numel) * tensorfile::bytesPerElement(dtype));
  records_.push_back({name, key, dtype, numel, 0, sizes.vec(), strides});
}

void Writer::writeTensorBytes(const void* data, uint64_t length) { zip_.write(data, length); }

void Writer::endTensor() { zip_.end(); }

void Writer::writeTensorBytesUnchecked(const void* data, uint64_t length) { zip_.writeUnchecked(data, length); }

void Writer::endTensor(uint32_t crc) { zip_.end(crc); }

void Writer::addAlias(const std::string& name, const std::string& existing) {
  const pickle::TensorRecord* found = nullptr;
  for (const auto& r : records_)
    if (r.name == existing) found = &r;
  LITLORA_CHECK(found, "ERR_ARG", "saving " << path_ << ": '" << name << "' aliases '" << existing << "', which was not written before it");
  pickle::TensorRecord copy = *found;
  claimName(name, copy.dtype);
  copy.name = name;
  records_.push_back(std::move(copy));
}

void Writer::finish() {
  const std::string pkl = pickle::pickleTensorDict(records_, wrapKey_);
  zip_.add(prefix_ + "data.pkl", pkl.data(), pkl.size());
  // The bookkeeping records torch.save ≥ 2.x writes.
  zip_.add(prefix_ + ".format_version", "1", 1);
  zip_.add(prefix_ + ".storage_alignment", "64", 2);
  zip_.add(prefix_ + "byteorder", "little", 6);
  zip_.add(prefix_ + "version", "3\n", 2);
  std::mt19937_64 rng{std::random_device{}()};
  std::string id;
  while (id.size() < 40) id += std::to_string(rng() % 10);
  zip_.add(prefix_ + ".data/serialization_id", id.data(), id.size());
  zip_.finish();
}

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& wrapKey) {
  Writer writer(path, wrapKey);
  for (const auto& [name, tensor] : tensors) writer.add(name, tensor);
  writer.finish();
}

}  // namespace litlora::pth

#include "core/tensorfile.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/pth.h"
#include "core/safetensors.h"

namespace litlora::tensorfile {

namespace {

// The deleter of every storage that maps a file's bytes (its context owns the map): isFileMapped tells those
// storages by it.
void releaseRegion(void* context) { delete static_cast<std::shared_ptr<files::Region>*>(context); }

std::string leadingBytes(const files::MappedFile& f) {
  std::string out;
  char buf[4];
  for (uint64_t i = 0; i < std::min<uint64_t>(f.size(), 8); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", f.data()[i]);
    out += (i ? " " : "") + std::string(buf);
  }
  return out;
}

}  // namespace

bool isFileMapped(const at::Tensor& t) {
  return t.defined() && t.has_storage() && t.storage().data_ptr().get_deleter() == &releaseRegion;
}

uint64_t hostMemoryBytes() {
  static const uint64_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
  }();
  return bytes;
}

void checkMaterializable(const at::Tensor& t, const std::string& what) {
  if (!t.defined()) return;
  const uint64_t bytes = static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
  LITLORA_CHECK(bytes <= hostMemoryBytes(), "ERR_OOM",
                what << ": this tensor of shape " << t.sizes() << " would need " << bytes
                     << " bytes as a dense tensor, more than this machine's " << hostMemoryBytes()
                     << " bytes of memory (it is a view over a storage of only " << (t.has_storage() ? t.storage().nbytes() : 0)
                     << " bytes). Work on a slice of it, or check where it came from.");
}

void checkMappingIntact(const at::Tensor& t, const std::string& what) {
  if (!isFileMapped(t)) return;
  const auto& region = *static_cast<std::shared_ptr<files::Region>*>(t.storage().data_ptr().get_context());
  LITLORA_CHECK(!region->lost(), "ERR_IO",
                what << ": this tensor maps " << region->path()
                     << ", which was truncated or overwritten in place after it was read, so its bytes are gone. Open the "
                        "file again (and replace files by renaming a new one over them, as litlora's writers do).");
}

double checksum(const at::Tensor& t, bool exact) {
  return exact ? t.sum(at::kDouble).item<double>() : t.sum().item<double>();
}

Reader::Reader(std::shared_ptr<files::MappedFile> file, Contents contents)
    : path_(file->path()), file_(std::move(file)), c_(std::move(contents)) {
  for (size_t i = 0; i < c_.entries.size(); ++i) index_.emplace(c_.entries[i].name, i);
}

const EntryInfo* Reader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &c_.entries[it->second];
}

at::Tensor Reader::storageOf(const Source& s) {
  LITLORA_CHECK(s.dtype != at::ScalarType::Undefined, "ERR_DTYPE",
                path_ << ": this tensor's dtype cannot be held by litlora; convert the file in Python first");
  file_->checkUnchanged();
  const uint64_t esize = bytesPerElement(s.dtype);
  const int64_t numel = static_cast<int64_t>(s.storageBytes / esize);
  const auto options = at::TensorOptions().dtype(s.dtype).device(at::kCPU);
  if (numel == 0) return at::empty({0}, options);
  const uint64_t length = static_cast<uint64_t>(numel) * esize;
  if (s.fileOffset % esize == 0) {
    // Zero-copy: a private map of just these bytes, kept alive by the tensor's storage.
    auto region = files::Region::map(file_->fd(), s.fileOffset, length, path_);
    c10::DataPtr data(region->data(), new std::shared_ptr<files::Region>(region), &releaseRegion, at::Device(at::kCPU));
    c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<size_t>(length), std::move(data), nullptr, false);
    return at::empty({0}, options).set_(storage, 0, {numel}, {1});
  }
  // The file puts these bytes at an offset unaligned for the dtype (a zip written without PyTorch's
  // padding): copy them into an aligned tensor.
  at::Tensor t = at::empty({numel}, options);
  char* dst = static_cast<char*>(t.data_ptr());
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(file_->fd(), dst + done, static_cast<size_t>(std::min<uint64_t>(length - done, 1u << 30)),
                        static_cast<off_t>(s.fileOffset + done));
    if (n < 0 && errno == EINTR) continue;
    LITLORA_CHECK(n > 0, "ERR_CHECKPOINT_FORMAT",
                  path_ << ": reading " << length << " bytes at offset " << s.fileOffset << " failed"
                        << (n < 0 ? std::string(": ") + std::strerror(errno) : std::string(" (the file ends early)")));
    done += static_cast<uint64_t>(n);
  }
  return t;
}

at::Tensor Reader::view(const Source& s, const at::Tensor& storage) {
  return storage.as_strided(s.sizes, s.strides, s.offset);
}

void Reader::checkViewSize(size_t i) const {
  // A view larger than its storage overlaps itself (stride 0, as torch.save writes an expanded tensor). That is
  // legal and cheap while it stays a view, but anything litlora does with a checkpoint tensor copies it somewhere
  // (into a model, to another dtype, to JavaScript); a view that could never be copied in this machine's memory
  // is no checkpoint tensor (a crafted [2^29, 2^29] view of one float claims 2^60 bytes).
  const EntryInfo& e = c_.entries[i];
  const Source& s = c_.sources[i];
  if (e.bytes <= s.storageBytes || e.bytes <= hostMemoryBytes()) return;
  std::ostringstream shape;
  for (size_t d = 0; d < e.shape.size(); ++d) shape << (d ? ", " : "[") << e.shape[d];
  if (e.shape.empty()) shape << "[";
  shape << "]";
  throw Error("ERR_CHECKPOINT_FORMAT",
              path_ + ": '" + e.name + "' claims the shape " + shape.str() + " (" + std::to_string(e.bytes) +
                  " bytes) as an overlapping view of a storage of " + std::to_string(s.storageBytes) +
                  " bytes: more than this machine's " + std::to_string(hostMemoryBytes()) +
                  " bytes of memory could hold once copied. The file is corrupt or was crafted; re-save it with torch.save.");
}

at::Tensor Reader::get(const std::string& name) {
  std::shared_lock lock(mutex_);
  LITLORA_CHECK(file_, "ERR_DISPOSED", path_ << ": the file was closed; open it again to read '" << name << "'");
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string some;
    for (size_t i = 0; i < c_.entries.size() && i < 3; ++i) some += (i ? ", " : "") + c_.entries[i].name;
    throw Error("ERR_CHECKPOINT_MISSING", path_ + " has no tensor named '" + name + "' (it has " +
                                              std::to_string(c_.entries.size()) + (some.empty() ? "" : ": " + some) +
                                              (c_.entries.size() > 3 ? ", …" : "") + ")");
  }
  const Source& s = c_.sources[it->second];
  LITLORA_CHECK(s.dtype != at::ScalarType::Undefined, "ERR_DTYPE",
                path_ << ": '" << name << "' has dtype " << c_.entries[it->second].dtypeName
                      << ", which litlora cannot hold; convert it in Python first");
  checkViewSize(it->second);
  return view(s, storageOf(s));
}

std::optional<Reader::ByteRange> Reader::contiguousBytes(const std::string& name) {
  std::shared_lock lock(mutex_);
  LITLORA_CHECK(file_, "ERR_DISPOSED", path_ << ": the file was closed; open it again to read '" << name << "'");
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  const Source& s = c_.sources[it->second];
  if (s.dtype == at::ScalarType::Undefined) return std::nullopt;
  int64_t expected = 1;
  for (size_t d = s.sizes.size(); d-- > 0;) {
    if (s.sizes[d] != 1 && s.strides[d] != expected) return std::nullopt;
    expected *= s.sizes[d];
  }
  const uint64_t esize = bytesPerElement(s.dtype);
  const uint64_t begin = static_cast<uint64_t>(s.offset) * esize, length = static_cast<uint64_t>(expected) * esize;
  if (s.offset < 0 || begin + length > s.storageBytes || s.fileOffset + begin + length > file_->size()) return std::nullopt;
  file_->checkUnchanged();
  return ByteRange{file_->fd(), s.fileOffset + begin, length};
}

std::vector<std::pair<std::string, at::Tensor>> Reader::getAll() {
  std::shared_lock lock(mutex_);
  LITLORA_CHECK(file_, "ERR_DISPOSED", path_ << ": the file was closed; open it again");
  std::unordered_map<std::string, at::Tensor> storages;
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(c_.entries.size());
  for (size_t i = 0; i < c_.entries.size(); ++i) {
    const Source& s = c_.sources[i];
    LITLORA_CHECK(s.dtype != at::ScalarType::Undefined, "ERR_DTYPE",
                  path_ << ": '" << c_.entries[i].name << "' has dtype " << c_.entries[i].dtypeName
                        << ", which litlora cannot hold; convert it in Python first");
    checkViewSize(i);
    auto found = storages.find(s.storageId);
    if (found == storages.end()) found = storages.emplace(s.storageId, storageOf(s)).first;
    out.emplace_back(c_.entries[i].name, view(s, found->second));
  }
  return out;
}

void Reader::close() {
  std::unique_lock lock(mutex_);
  file_.reset();
}

std::shared_ptr<Reader> open(const std::string& path) {
  auto file = files::MappedFile::open(path);
  const uint8_t* d = file->data();
  const uint64_t size = file->size();
  LITLORA_CHECK(size > 0, "ERR_CHECKPOINT_FORMAT", path << " is empty (0 bytes); expected a .pth or .safetensors file");
  if (size >= 4 && d[0] == 'P' && d[1] == 'K' && ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6)))
    return std::make_shared<Reader>(file, pth::parse(file));
  if (size >= 10 && d[8] == '{') return std::make_shared<Reader>(file, safetensors::parse(file));
  // PyTorch's legacy (pre-1.6, non-zip) format starts with a pickle (PROTO); it is told from other pickles by
  // its magic number (pth_legacy.cc).
  if (d[0] == 0x80) return std::make_shared<Reader>(file, pth::parseLegacy(file));
  bool legacyTar = size > 262 && std::memcmp(d + 257, "ustar", 5) == 0;
  LITLORA_CHECK(!legacyTar, "ERR_CHECKPOINT_FORMAT",
                path << " uses PyTorch's oldest (tar) serialization, which litlora does not read (PyTorch's weights-only "
                        "loader refuses it too). If you trust the file, re-save it with the default zip format in Python: "
                        "torch.save(torch.load(path, weights_only=False), path)");
  throw Error("ERR_CHECKPOINT_FORMAT", path + " is neither a PyTorch .pth (zip) nor a .safetensors file (it starts with " +
                                           leadingBytes(*file) + ")");
}

}  // namespace litlora::tensorfile

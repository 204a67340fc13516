#include "core/safetensors.h"

#include <algorithm>
#include <unordered_set>

#include "core/dtype.h"
#include "core/error.h"
#include "core/utf8.h"

namespace litlora::safetensors {

namespace {

struct DtypeInfo {
  const char* code;
  at::ScalarType type;  // Undefined: a type the file may hold that litlora cannot
  uint64_t size;
  int rank;  // position in the safetensors Dtype enum; the writer puts higher ranks first
};

constexpr DtypeInfo kDtypes[] = {
    {"BOOL", at::kBool, 1, 0},          {"U8", at::kByte, 1, 4},          {"I8", at::kChar, 1, 5},
    {"F8_E5M2", at::kFloat8_e5m2, 1, 6}, {"F8_E4M3", at::kFloat8_e4m3fn, 1, 7},
    {"F8_E8M0", at::ScalarType::Undefined, 1, 8},
    {"I16", at::kShort, 2, 9},          {"U16", at::ScalarType::Undefined, 2, 10},
    {"F16", at::kHalf, 2, 11},          {"BF16", at::kBFloat16, 2, 12},   {"I32", at::kInt, 4, 13},
    {"U32", at::ScalarType::Undefined, 4, 14},
    {"F32", at::kFloat, 4, 15},         {"C64", at::kComplexFloat, 8, 16}, {"F64", at::kDouble, 8, 17},
    {"I64", at::kLong, 8, 18},          {"U64", at::ScalarType::Undefined, 8, 19},
};

const DtypeInfo* byCode(const std::string& code) {
  for (const auto& d : kDtypes)
    if (code == d.code) return &d;
  return nullptr;
}

const DtypeInfo* byType(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type && type != at::ScalarType::Undefined) return &d;
  return nullptr;
}

// A strict reader for the one JSON shape a safetensors header has. Depth is bounded; numbers are
// non-negative integers (all a header needs).
class Json {
 public:
  Json(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("ERR_CHECKPOINT_FORMAT", path_ + ": malformed safetensors header: " + what + " at byte " +
                                             std::to_string(p_) + "; the file is corrupt or not a .safetensors file");
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool atEnd() {
    ws();
    return p_ == s_.size();
  }
  bool peekNull() {
    ws();
    if (s_.substr(p_, 4) == "null") {
      p_ += 4;
      return true;
    }
    return false;
  }

  std::string str() {
    expect('"');
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) fail("unterminated string");
      char c = s_[p_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("a control character inside a string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (p_ >= s_.size()) fail("unterminated escape");
      char e = s_[p_++];
      switch (e) {
        case '"': case '\\': case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {  // a surrogate pair
            if (s_.substr(p_, 2) != "\\u") fail("a lone surrogate");
            p_ += 2;
            uint32_t low = hex4();
            if (low < 0xdc00 || low >= 0xe000) fail("a bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail("a lone surrogate");
          }
          utf8::append(out, cp);
          break;
        }
        default: fail("a bad escape");
      }
    }
  }

  uint64_t uint() {
    ws();
    if (p_ >= s_.size() || s_[p_] < '0' || s_[p_] > '9') fail("expected a non-negative integer");
    uint64_t v = 0;
    while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') {
      uint64_t digit = static_cast<uint64_t>(s_[p_++] - '0');
      if (v > (UINT64_MAX - digit) / 10) fail("an integer too large");
      v = v * 10 + digit;
    }
    if (p_ < s_.size() && (s_[p_] == '.' || s_[p_] == 'e' || s_[p_] == 'E')) fail("expected an integer");
    return v;
  }

  std::vector<uint64_t> uintArray(size_t maxItems) {
    expect('[');
    std::vector<uint64_t> out;
    if (eat(']')) return out;
    do {
      if (out.size() >= maxItems) fail("an array that is too long");
      out.push_back(uint());
    } while (eat(','));
    expect(']');
    return out;
  }

  void skip(int depth) {
    if (depth > 32) fail("nesting too deep");
    ws();
    if (p_ >= s_.size()) fail("unexpected end");
    char c = s_[p_];
    if (c == '"') {
      str();
    } else if (c == '{') {
      ++p_;
      if (eat('}')) return;
      do {
        str();
        expect(':');
        skip(depth + 1);
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++p_;
      if (eat(']')) return;
      do skip(depth + 1);
      while (eat(','));
      expect(']');
    } else {
      size_t start = p_;
      while (p_ < s_.size() && std::string_view("+-.0123456789eEtruefalsn").find(s_[p_]) != std::string_view::npos) ++p_;
      if (p_ == start) fail("an unexpected character");
    }
  }

 private:
  uint32_t hex4() {
    if (s_.size() - p_ < 4) fail("a short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[p_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else fail("a bad \\u escape");
    }
    return v;
  }

  std::string_view s_;
  std::string path_;
  size_t p_ = 0;
};

// serde_json's escaping, so headers match the Python package byte for byte.
void jsonString(std::string& out, const std::string& s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

tensorfile::Contents parse(const std::shared_ptr<files::MappedFile>& file) {
  const std::string& path = file->path();
  const uint64_t size = file->size();
  LITLORA_CHECK(size >= 8, "ERR_CHECKPOINT_FORMAT", path << " is too short for a .safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file->data()[i];
  LITLORA_CHECK(n <= 100'000'000 && n <= size - 8, "ERR_CHECKPOINT_FORMAT",
                path << ": the safetensors header claims " << n << " bytes, but the file has " << size
                     << " bytes in all; it is truncated or corrupt");
  const uint64_t dataStart = 8 + n, dataLength = size - dataStart;
  const std::string_view header = file->bytes(8, n);
  LITLORA_CHECK(tensorfile::validUtf8(header), "ERR_CHECKPOINT_FORMAT",
                path << ": the safetensors header is not valid UTF-8; the file is corrupt");
  Json json(header, path);

  struct Parsed {
    tensorfile::EntryInfo info;
    tensorfile::Source source;
    uint64_t begin;
  };
  std::vector<Parsed> parsed;
  tensorfile::Contents contents;
  contents.format = tensorfile::Format::Safetensors;
  std::unordered_set<std::string> names;

  json.expect('{');
  if (!json.eat('}')) {
    do {
      std::string key = json.str();
      json.expect(':');
      if (key == "__metadata__") {
        if (json.peekNull()) continue;
        json.expect('{');
        if (!json.eat('}')) {
          do {
            std::string k = json.str();
            json.expect(':');
            contents.metadata.emplace_back(std::move(k), json.str());
          } while (json.eat(','));
          json.expect('}');
        }
        continue;
      }
      LITLORA_CHECK(names.insert(key).second, "ERR_CHECKPOINT_FORMAT", path << ": the tensor '" << key << "' appears twice");
      std::string dtype;
      std::vector<uint64_t> shape, offsets;
      bool haveDtype = false, haveShape = false, haveOffsets = false;
      json.expect('{');
      if (!json.eat('}')) {
        do {
          std::string field = json.str();
          json.expect(':');
          if (field == "dtype") dtype = json.str(), haveDtype = true;
          else if (field == "shape") shape = json.uintArray(64), haveShape = true;
          else if (field == "data_offsets") offsets = json.uintArray(2), haveOffsets = true;
          else json.skip(1);
        } while (json.eat(','));
        json.expect('}');
      }
      LITLORA_CHECK(haveDtype && haveShape && haveOffsets && offsets.size() == 2, "ERR_CHECKPOINT_FORMAT",
                    path << ": the header entry for '" << key << "' lacks dtype, shape or data_offsets [begin, end]");
      const DtypeInfo* d = byCode(dtype);
      LITLORA_CHECK(d, "ERR_CHECKPOINT_FORMAT", path << ": '" << key << "' has an unknown dtype '" << dtype << "'");
      __int128 numel = 1;
      for (uint64_t dim : shape) {
        numel *= dim;
        LITLORA_CHECK(numel <= (__int128)INT64_MAX / 16, "ERR_CHECKPOINT_FORMAT", path << ": '" << key << "' has an impossibly large shape");
      }
      const uint64_t bytes = static_cast<uint64_t>(numel) * d->size;
      LITLORA_CHECK(offsets[0] <= offsets[1] && offsets[1] <= dataLength && offsets[1] - offsets[0] == bytes,
                    "ERR_CHECKPOINT_FORMAT",
                    path << ": '" << key << "' (" << dtype << ", shape " << shapeString(shape) << ", " << bytes
                         << " bytes) has data_offsets [" << offsets[0] << ", " << offsets[1] << "] that do not fit the "
                         << dataLength << " data bytes; the file is truncated or corrupt");
      Parsed p;
      p.begin = offsets[0];
      p.info.name = key;
      for (uint64_t dim : shape) p.info.shape.push_back(static_cast<int64_t>(dim));
      p.info.dtype = d->type;
      p.info.dtypeName = d->type == at::ScalarType::Undefined ? dtype : dtypeName(d->type);
      p.info.bytes = bytes;
      p.source.fileOffset = dataStart + offsets[0];
      p.source.storageBytes = bytes;
      p.source.dtype = d->type;
      p.source.sizes = p.info.shape;
      p.source.strides.assign(shape.size(), 1);
      for (size_t i = shape.size(); i-- > 1;) p.source.strides[i - 1] = p.source.strides[i] * std::max<int64_t>(p.info.shape[i], 1);
      p.source.storageId = key;
      parsed.push_back(std::move(p));
    } while (json.eat(','));
    json.expect('}');
  }
  LITLORA_CHECK(json.atEnd(), "ERR_CHECKPOINT_FORMAT", path << ": unexpected bytes after the safetensors header");
  std::stable_sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) { return a.begin < b.begin; });
  for (auto& p : parsed) {
    contents.entries.push_back(std::move(p.info));
    contents.sources.push_back(std::move(p.source));
  }
  return contents;
}

// ------------------------------------------------------------------------------------------------- Writer

Writer::Writer(const std::string& path, std::vector<Spec> specs, const std::vector<std::pair<std::string, std::string>>& metadata)
    : file_(path) {
  for (auto& spec : specs) {
    LITLORA_CHECK(!spec.name.empty(), "ERR_ARG", "saving " << path << ": a tensor name is empty");
    LITLORA_CHECK(spec.name != "__metadata__", "ERR_ARG", "saving " << path << ": '__metadata__' cannot name a tensor");
    LITLORA_CHECK(byType(spec.dtype), "ERR_DTYPE",
                  "saving " << path << ": '" << spec.name << "' has dtype " << dtypeName(spec.dtype)
                            << ", which safetensors cannot store");
    LITLORA_CHECK(index_.emplace(spec.name, slots_.size()).second, "ERR_ARG",
                  "saving " << path << ": the name '" << spec.name << "' is given twice");
    slots_.push_back({std::move(spec)});
  }
  // The Python package's order: dtype rank descending, then name; offsets follow that order.
  std::vector<size_t> order(slots_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    int ra = byType(slots_[a].spec.dtype)->rank, rb = byType(slots_[b].spec.dtype)->rank;
    return ra != rb ? ra > rb : slots_[a].spec.name < slots_[b].spec.name;
  });
  std::string header = "{";
  if (!metadata.empty()) {
    auto sorted = metadata;
    std::sort(sorted.begin(), sorted.end());
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i) header += ",";
      jsonString(header, sorted[i].first);
      header += ":";
      jsonString(header, sorted[i].second);
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    Slot& slot = slots_[order[k]];
    uint64_t numel = 1;
    for (int64_t d : slot.spec.shape) {
      LITLORA_CHECK(d >= 0, "ERR_SHAPE", "saving " << path << ": '" << slot.spec.name << "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    slot.begin = offset;
    slot.end = offset + numel * byType(slot.spec.dtype)->size;
    offset = slot.end;
    if (header.size() > 1) header += ",";
    jsonString(header, slot.spec.name);
    header += ":{\"dtype\":\"" + std::string(byType(slot.spec.dtype)->code) + "\",\"shape\":[";
    for (size_t i = 0; i < slot.spec.shape.size(); ++i) header += (i ? "," : "") + std::to_string(slot.spec.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(slot.begin) + "," + std::to_string(slot.end) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xff);
  file_.write(prefix.data(), 8);
  file_.write(header.data(), header.size());
  dataStart_ = 8 + header.size();
}

void Writer::add(const std::string& name, const at::Tensor& tensor) {
  auto it = index_.find(name);
  LITLORA_CHECK(it != index_.end(), "ERR_ARG", "saving " << file_.path() << ": '" << name << "' was not declared up front");
  Slot& slot = slots_[it->second];
  LITLORA_CHECK(!slot.written, "ERR_ARG", "saving " << file_.path() << ": '" << name << "' is given twice");
  LITLORA_CHECK(tensor.defined() && tensor.layout() == at::kStrided, "ERR_ARG",
                "saving " << file_.path() << ": '" << name << "' is not a dense tensor");
  LITLORA_CHECK(tensor.scalar_type() == slot.spec.dtype, "ERR_DTYPE",
                "saving " << file_.path() << ": '" << name << "' was declared " << dtypeName(slot.spec.dtype)
                          << " but is " << dtypeName(tensor.scalar_type()));
  LITLORA_CHECK(tensor.sizes().vec() == slot.spec.shape, "ERR_SHAPE",
                "saving " << file_.path() << ": '" << name << "' was declared with shape " << shapeString(slot.spec.shape)
                          << " but has " << shapeString(tensor.sizes()));
  at::Tensor t = tensor.to(at::kCPU).contiguous().resolve_conj().resolve_neg();
  file_.pwrite(t.data_ptr(), slot.end - slot.begin, dataStart_ + slot.begin);
  slot.written = true;
}

void Writer::addBytes(const std::string& name, uint64_t offset, const void* data, uint64_t length) {
  auto it = index_.find(name);
  LITLORA_CHECK(it != index_.end(), "ERR_ARG", "saving " << file_.path() << ": '" << name << "' was not declared up front");
  Slot& slot = slots_[it->second];
  const uint64_t size = slot.end - slot.begin;
  LITLORA_CHECK(!slot.written && offset <= size && length <= size - offset && slot.bytesGiven + length <= size, "ERR_ARG",
                "saving " << file_.path() << ": bytes [" << offset << ", " << offset + length << ") of '" << name
                          << "' do not fit its " << size << " bytes, or were given twice");
  file_.pwrite(data, length, dataStart_ + slot.begin + offset);
  slot.bytesGiven += length;
  if (slot.bytesGiven == size) slot.written = true;
}

std::vector<std::string> Writer::fileOrder() const {
  std::vector<const Slot*> sorted;
  for (const Slot& s : slots_) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(), [](const Slot* a, const Slot* b) { return a->begin < b->begin; });
  std::vector<std::string> out;
  for (const Slot* s : sorted) out.push_back(s->spec.name);
  return out;
}

void Writer::finish() {
  for (const Slot& slot : slots_)
    LITLORA_CHECK(slot.written, "ERR_ARG", "saving " << file_.path() << ": '" << slot.spec.name << "' was declared but never added");
  file_.commit();
}

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<Spec> specs;
  for (const auto& [name, t] : tensors) {
    LITLORA_CHECK(t.defined(), "ERR_ARG", "saving " << path << ": '" << name << "' is not a tensor");
    specs.push_back({name, t.scalar_type(), t.sizes().vec()});
  }
  Writer writer(path, std::move(specs), metadata);
  for (const auto& [name, t] : tensors) writer.add(name, t);
  writer.finish();
}

}  // namespace litlora::safetensors

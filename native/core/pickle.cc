#include "core/pickle.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "core/tensorfile_types.h"

namespace litlora::pickle {

namespace {

struct NamedType {
  const char* name;
  at::ScalarType type;
};

// torch.<name> dtype globals (what _rebuild_tensor_v3 receives).
constexpr NamedType kDtypes[] = {
    {"float64", at::kDouble}, {"float32", at::kFloat},   {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong},   {"int32", at::kInt},
    {"int16", at::kShort},    {"int8", at::kChar},       {"uint8", at::kByte},
    {"bool", at::kBool},      {"complex64", at::kComplexFloat}, {"complex128", at::kComplexDouble},
    {"float8_e4m3fn", at::kFloat8_e4m3fn}, {"float8_e5m2", at::kFloat8_e5m2},
};

// torch.<Name>Storage legacy storage classes, as torch.save names them in persistent ids.
constexpr NamedType kStorages[] = {
    {"DoubleStorage", at::kDouble}, {"FloatStorage", at::kFloat}, {"HalfStorage", at::kHalf},
    {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool}, {"ComplexFloatStorage", at::kComplexFloat}, {"ComplexDoubleStorage", at::kComplexDouble},
};

// Globals PyTorch's weights-only loader allows that litlora understands. Everything else is refused.
const char* const kSupportedGlobals[] = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",  // torch < 0.4, in legacy-format files
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Size",
    "torch.device",
    "torch.serialization._get_layout",
    "torch.nn.parameter.Parameter",
    "torch.Tensor",
    "torch.storage.UntypedStorage",
    "builtins.set",
    "builtins.bytearray",
    "_codecs.encode",
    // Numpy scalars (see pickle.h): numpy 1.x and 2.x name the same function differently.
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
};

// Allowed by PyTorch's weights-only loader but outside what litlora reads (dense tensors and containers).
const char* const kAllowedButUnsupported[] = {
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_qtensor", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._utils._rebuild_device_tensor_from_numpy",
    "collections.Counter", "builtins.complex", "torch.storage.TypedStorage",
};

std::optional<at::ScalarType> dtypeGlobal(const std::string& full) {
  if (full.rfind("torch.", 0) != 0) return std::nullopt;
  const std::string name = full.substr(6);
  for (const auto& d : kDtypes)
    if (name == d.name) return d.type;
  return std::nullopt;
}

std::optional<at::ScalarType> storageGlobal(const std::string& full) {
  if (full == "torch.storage.UntypedStorage" || full == "torch.UntypedStorage") return at::kByte;
  std::string name;
  if (full.rfind("torch.cuda.", 0) == 0) name = full.substr(11);
  else if (full.rfind("torch.", 0) == 0) name = full.substr(6);
  else return std::nullopt;
  for (const auto& s : kStorages)
    if (name == s.name) return s.type;
  return std::nullopt;
}

// Python 2 module names that protocol-2 pickles written by Python 3 use (fix_imports).
std::string canonicalGlobal(const std::string& module, const std::string& name) {
  if (module == "__builtin__") return "builtins." + name;
  return module + "." + name;
}

class Unpickler {
 public:
  Unpickler(std::string_view bytes, const std::string& where, StorageIds ids, const std::string& stream, uint64_t base)
      : b_(bytes), where_(where), ids_(ids), stream_(stream), base_(base) {}

  Unpickled run() {
    for (;;) {
      if (pos_ >= b_.size()) fail("the pickle ends without a STOP opcode");
      opStart_ = pos_;
      const uint8_t op = static_cast<uint8_t>(b_[pos_++]);
      switch (op) {
        case 0x80: take(1); break;  // PROTO
        case 0x95: take(8); break;  // FRAME
        case '.': {                 // STOP
          if (stack_.size() != 1 || !marks_.empty()) fail("STOP with " + std::to_string(stack_.size()) + " values on the stack");
          out_.root = stack_[0];
          out_.length = pos_;
          return std::move(out_);
        }
        case '(': marks_.push_back(stack_.size()); break;
        case ')': push(make(Kind::Tuple)); break;
        case 't': pushSequence(Kind::Tuple, popMark()); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          size_t n = op - 0x84;
          if (frameSize() < n) fail("TUPLE" + std::to_string(n) + " on a stack with fewer values");
          std::vector<uint32_t> items(stack_.end() - static_cast<long>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          pushSequence(Kind::Tuple, std::move(items));
          break;
        }
        case ']': push(make(Kind::List)); break;
        case 'l': pushSequence(Kind::List, popMark()); break;
        case 'a': { uint32_t v = pop(); append(top(), {v}); break; }
        case 'e': { auto items = popMark(); append(top(), items); break; }
        case 0x8f: push(make(Kind::List)); break;                  // EMPTY_SET (kept as a list)
        case 0x90: { auto items = popMark(); append(top(), items); break; }  // ADDITEMS
        case 0x91: pushSequence(Kind::List, popMark()); break;     // FROZENSET
        case '}': push(make(Kind::Dict)); break;
        case 'd': { auto items = popMark(); uint32_t d = make(Kind::Dict); setItems(d, items); push(d); break; }
        case 's': { uint32_t v = pop(); uint32_t k = pop(); setItems(top(), {k, v}); break; }
        case 'u': { auto items = popMark(); setItems(top(), items); break; }
        case 'N': push(make(Kind::None)); break;
        case 0x88: case 0x89: { uint32_t r = make(Kind::Bool); obj(r).integer = op == 0x88; push(r); break; }
        case 'J': { int32_t v; std::memcpy(&v, take(4).data(), 4); pushInt(v); break; }
        case 'K': pushInt(static_cast<uint8_t>(take(1)[0])); break;
        case 'M': pushInt(static_cast<int64_t>(le(2))); break;
        case 0x8a: pushInt(decodeLong(take(static_cast<uint8_t>(take(1)[0])))); break;  // LONG1
        case 0x8b: pushInt(decodeLong(take(le(4)))); break;                             // LONG4
        case 'G': {  // BINFLOAT, big-endian
          auto s = take(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(s[i]);
          uint32_t r = make(Kind::Float);
          std::memcpy(&obj(r).real, &bits, 8);
          push(r);
          break;
        }
        case 'X': pushText(Kind::Str, take(le(4))); break;                            // BINUNICODE
        case 0x8c: pushText(Kind::Str, take(static_cast<uint8_t>(take(1)[0]))); break;  // SHORT_BINUNICODE
        case 0x8d: pushText(Kind::Str, take(le(8))); break;                           // BINUNICODE8
        case 'U': pushText(Kind::Str, take(static_cast<uint8_t>(take(1)[0]))); break;  // SHORT_BINSTRING
        case 'T': pushText(Kind::Str, take(le(4))); break;                            // BINSTRING
        case 'C': pushText(Kind::Bytes, take(static_cast<uint8_t>(take(1)[0]))); break;
        case 'B': pushText(Kind::Bytes, take(le(4))); break;
        case 0x8e: pushText(Kind::Bytes, take(le(8))); break;
        case 'q': memo_[static_cast<uint8_t>(take(1)[0])] = top(); break;
        case 'r': memo_[static_cast<uint32_t>(le(4))] = top(); break;
        case 0x94: memo_[static_cast<uint32_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(memoGet(static_cast<uint8_t>(take(1)[0]))); break;
        case 'j': push(memoGet(static_cast<uint32_t>(le(4)))); break;
        case 'c': {  // GLOBAL module\nname\n
          std::string module(line()), name(line());
          push(global(canonicalGlobal(module, name)));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          uint32_t name = pop(), module = pop();
          if (obj(name).kind != Kind::Str || obj(module).kind != Kind::Str) fail("STACK_GLOBAL without two strings");
          push(global(canonicalGlobal(obj(module).text, obj(name).text)));
          break;
        }
        case 'R': {  // REDUCE
          uint32_t args = pop();
          uint32_t& slot = top();
          slot = call(slot, args, 0);
          break;
        }
        case 'b': {  // BUILD: an OrderedDict's attributes (state_dict's _metadata), a Parameter's state, a numpy dtype's
          uint32_t state = pop();
          Kind k = obj(top()).kind;
          if (k == Kind::NumpyDtype) {
            buildNumpyDtype(top(), state);
            break;
          }
          if (k != Kind::Dict && k != Kind::Tensor) fail("BUILD on a " + kindName(k) + "; only dicts, tensors and numpy dtypes are rebuilt");
          break;
        }
        case 0x81: {  // NEWOBJ: only nn.Parameter(data, requires_grad)
          uint32_t args = pop(), cls = pop();
          if (obj(cls).kind != Kind::Global || obj(cls).text != "torch.nn.parameter.Parameter")
            fail("NEWOBJ of " + describe(cls) + "; only torch.nn.Parameter may be created");
          push(call(cls, args, 0));
          break;
        }
        case 'Q': push(persistentLoad(pop())); break;
        case '0': if (frameSize() == 0 && !marks_.empty()) popMark(); else pop(); break;  // POP
        case '1': popMark(); break;  // POP_MARK
        case '2': push(top()); break;  // DUP
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + hex + " (PyTorch's weights-only loader refuses it too)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error("ERR_CHECKPOINT_FORMAT", where_ + ": " + message + " (" + stream_ + " byte " + std::to_string(base_ + opStart_) +
                                             "); the file is corrupt or not a PyTorch checkpoint");
  }

  std::string_view take(uint64_t n) {
    if (n > b_.size() - pos_) fail("the pickle is truncated");
    std::string_view s = b_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  uint64_t le(int n) {
    auto s = take(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[i]);
    return v;
  }
  std::string_view line() {
    size_t end = b_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 1024) fail("a GLOBAL name without its newline");
    std::string_view s = b_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  Object& obj(uint32_t r) { return out_.objects[r]; }
  uint32_t make(Kind kind) {
    // Every opcode adds at most one object, so this bounds memory by the pickle's size; the cap is a backstop.
    if (out_.objects.size() >= (8u << 20)) fail("more than 8M objects in the pickle");
    out_.objects.emplace_back();
    out_.objects.back().kind = kind;
    return static_cast<uint32_t>(out_.objects.size() - 1);
  }
  void push(uint32_t r) { stack_.push_back(r); }
  size_t frameSize() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  uint32_t pop() {
    if (frameSize() == 0) fail("stack underflow");
    uint32_t r = stack_.back();
    stack_.pop_back();
    return r;
  }
  uint32_t& top() {
    if (frameSize() == 0) fail("stack underflow");
    return stack_.back();
  }
  std::vector<uint32_t> popMark() {
    if (marks_.empty()) fail("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  uint32_t memoGet(uint32_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " is missing");
    return it->second;
  }
  void pushInt(int64_t v) {
    uint32_t r = make(Kind::Int);
    obj(r).integer = v;
    push(r);
  }
  void pushText(Kind kind, std::string_view s) {
    if (kind == Kind::Str && !tensorfile::validUtf8(s)) fail("a string that is not valid UTF-8");
    uint32_t r = make(kind);
    obj(r).text.assign(s);
    push(r);
  }
  void pushSequence(Kind kind, std::vector<uint32_t> items) {
    uint32_t r = make(kind);
    obj(r).items = std::move(items);
    push(r);
  }
  void append(uint32_t list, const std::vector<uint32_t>& items) {
    if (obj(list).kind != Kind::List) fail("APPEND to a " + kindName(obj(list).kind));
    auto& dst = obj(list).items;
    dst.insert(dst.end(), items.begin(), items.end());
  }
  void setItems(uint32_t dict, const std::vector<uint32_t>& items) {
    if (obj(dict).kind != Kind::Dict) fail("SETITEM on a " + kindName(obj(dict).kind));
    if (items.size() % 2) fail("SETITEMS with an odd number of values");
    auto& dst = obj(dict).items;
    dst.insert(dst.end(), items.begin(), items.end());
  }
  int64_t decodeLong(std::string_view s) {
    if (s.size() > 8) fail("an integer wider than 64 bits");
    if (s.empty()) return 0;
    uint64_t v = 0;
    for (size_t i = s.size(); i-- > 0;) v = (v << 8) | static_cast<uint8_t>(s[i]);
    if (s.size() < 8 && (static_cast<uint8_t>(s.back()) & 0x80)) v |= ~uint64_t(0) << (8 * s.size());  // sign-extend
    return static_cast<int64_t>(v);
  }

  static std::string kindName(Kind k) {
    switch (k) {
      case Kind::None: return "None";
      case Kind::Bool: return "bool";
      case Kind::Int: return "int";
      case Kind::Float: return "float";
      case Kind::Str: return "str";
      case Kind::Bytes: return "bytes";
      case Kind::Tuple: return "tuple";
      case Kind::List: return "list";
      case Kind::Dict: return "dict";
      case Kind::Global: return "global";
      case Kind::Storage: return "storage";
      case Kind::Tensor: return "tensor";
      case Kind::NumpyDtype: return "numpy dtype";
    }
    return "?";
  }
  std::string describe(uint32_t r) {
    const Object& o = obj(r);
    return o.kind == Kind::Global ? o.text : kindName(o.kind);
  }

  uint32_t global(const std::string& full) {
    bool ok = dtypeGlobal(full) || storageGlobal(full);
    for (const char* g : kSupportedGlobals) ok = ok || full == g;
    if (!ok) {
      for (const char* g : kAllowedButUnsupported)
        if (full == g)
          fail("the checkpoint uses " + full + ", which litlora does not support (it reads dense tensors and plain "
               "containers); convert it in Python, e.g. tensor.to_dense() / dequantize(), and save again");
      throw Error("ERR_CHECKPOINT_FORMAT",
                  where_ + ": refused the global '" + full + "': it is not one that PyTorch's weights-only loader "
                  "allows for tensors and containers, and loading it would run code. Nothing was executed. Only "
                  "load checkpoints you trust; re-save trusted ones as plain tensor dicts (torch.save(state_dict)).");
    }
    uint32_t r = make(Kind::Global);
    obj(r).text = full;
    return r;
  }

  const Object& arg(const std::vector<uint32_t>& args, size_t i, Kind kind, const char* fn, const char* what) {
    if (i >= args.size() || out_.objects[args[i]].kind != kind)
      fail(std::string(fn) + ": argument " + std::to_string(i) + " (" + what + ") should be a " + kindName(kind));
    return out_.objects[args[i]];
  }

  std::vector<int64_t> intSequence(uint32_t r, const char* fn, const char* what) {
    const Object& o = obj(r);
    if (o.kind != Kind::Tuple && o.kind != Kind::List) fail(std::string(fn) + ": " + what + " should be a tuple of ints");
    if (o.items.size() > 64) fail(std::string(fn) + ": " + what + " has more than 64 dimensions");
    std::vector<int64_t> out;
    for (uint32_t item : o.items) {
      const Object& v = obj(item);
      if (v.kind != Kind::Int || v.integer < 0) fail(std::string(fn) + ": " + what + " should hold non-negative ints");
      out.push_back(v.integer);
    }
    return out;
  }

  // version 1: _rebuild_tensor(storage, offset, size, stride) of torch < 0.4; 2 and 3 add requires_grad,
  // backward hooks (and v3 the dtype).
  uint32_t rebuildTensor(const std::vector<uint32_t>& a, int version) {
    const char* fn = version == 1 ? "_rebuild_tensor" : version == 2 ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3";
    const bool v3 = version == 3;
    size_t minArgs = version == 1 ? 4 : v3 ? 7 : 6;
    size_t maxArgs = version == 1 ? 4 : minArgs + 1;
    if (a.size() < minArgs || a.size() > maxArgs) fail(std::string(fn) + ": unexpected number of arguments");
    TensorRef t;
    t.storage = static_cast<uint32_t>(arg(a, 0, Kind::Storage, fn, "storage").integer);
    t.offset = arg(a, 1, Kind::Int, fn, "storage_offset").integer;
    if (t.offset < 0) fail(std::string(fn) + ": negative storage offset");
    t.sizes = intSequence(a[2], fn, "size");
    t.strides = intSequence(a[3], fn, "stride");
    if (t.sizes.size() != t.strides.size()) fail(std::string(fn) + ": size and stride differ in length");
    if (version > 1) t.requiresGrad = arg(a, 4, Kind::Bool, fn, "requires_grad").integer != 0;
    t.dtype = out_.storages[t.storage].dtype;
    if (v3) {
      const Object& d = arg(a, 6, Kind::Global, fn, "dtype");
      auto type = dtypeGlobal(d.text);
      if (!type) fail(std::string(fn) + ": " + d.text + " is not a dtype litlora supports");
      t.dtype = *type;
    }
    out_.tensors.push_back(std::move(t));
    uint32_t r = make(Kind::Tensor);
    obj(r).integer = static_cast<int64_t>(out_.tensors.size() - 1);
    return r;
  }

  uint32_t call(uint32_t fnRef, uint32_t argsRef, int depth) {
    if (obj(fnRef).kind != Kind::Global) fail("REDUCE on a " + kindName(obj(fnRef).kind) + ", which is not callable");
    if (obj(argsRef).kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const std::string fn = obj(fnRef).text;
    const std::vector<uint32_t> a = obj(argsRef).items;
    if (fn == "torch._utils._rebuild_tensor") return rebuildTensor(a, 1);
    if (fn == "torch._utils._rebuild_tensor_v2") return rebuildTensor(a, 2);
    if (fn == "torch._utils._rebuild_tensor_v3") return rebuildTensor(a, 3);
    if (fn == "numpy.dtype") return numpyDtype(a);
    if (fn == "numpy.core.multiarray.scalar" || fn == "numpy._core.multiarray.scalar") return numpyScalar(a);
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state" ||
        fn == "torch.nn.parameter.Parameter") {
      const Object& data = arg(a, 0, Kind::Tensor, fn.c_str(), "data");
      if (a.size() > 1 && obj(a[1]).kind == Kind::Bool)
        out_.tensors[static_cast<size_t>(data.integer)].requiresGrad = obj(a[1]).integer != 0;
      return a[0];
    }
    if (fn == "torch._tensor._rebuild_from_type_v2") {  // (func, new_type, args, state): plain Tensor/Parameter only
      if (depth > 4) fail("_rebuild_from_type_v2 nested too deeply");
      if (a.size() != 4) fail("_rebuild_from_type_v2: expected 4 arguments");
      const Object& type = arg(a, 1, Kind::Global, fn.c_str(), "new_type");
      if (type.text != "torch.Tensor" && type.text != "torch.nn.parameter.Parameter")
        fail("_rebuild_from_type_v2 to " + type.text + "; only plain tensors and parameters are supported");
      return call(a[0], a[2], depth + 1);
    }
    if (fn == "collections.OrderedDict") {
      uint32_t d = make(Kind::Dict);
      if (a.size() == 1) {
        const Object& pairs = obj(a[0]);
        if (pairs.kind != Kind::List && pairs.kind != Kind::Tuple) fail("OrderedDict(x): x should be a list of pairs");
        for (uint32_t p : pairs.items) {
          const Object& pair = obj(p);
          if ((pair.kind != Kind::Tuple && pair.kind != Kind::List) || pair.items.size() != 2)
            fail("OrderedDict(x): x should be a list of pairs");
          obj(d).items.push_back(pair.items[0]);
          obj(d).items.push_back(pair.items[1]);
        }
      } else if (!a.empty()) {
        fail("OrderedDict: unexpected arguments");
      }
      return d;
    }
    if (fn == "torch.Size") {
      if (a.size() != 1) fail("torch.Size: expected one argument");
      intSequence(a[0], "torch.Size", "its argument");
      uint32_t t = make(Kind::Tuple);
      obj(t).items = obj(a[0]).items;
      return t;
    }
    if (fn == "torch.device" || fn == "torch.serialization._get_layout") {
      std::string text = arg(a, 0, Kind::Str, fn.c_str(), "name").text;
      uint32_t r = make(Kind::Str);
      obj(r).text = std::move(text);
      if (fn == "torch.device" && a.size() > 1 && obj(a[1]).kind == Kind::Int)
        obj(r).text += ":" + std::to_string(obj(a[1]).integer);
      return r;
    }
    if (fn == "builtins.set") {
      uint32_t r = make(Kind::List);
      if (!a.empty()) {
        const Object& src = obj(a[0]);
        if (src.kind != Kind::List && src.kind != Kind::Tuple) fail("set(x): x should be a list");
        obj(r).items = src.items;
      }
      return r;
    }
    if (fn == "builtins.bytearray" || fn == "_codecs.encode") {
      uint32_t r = make(Kind::Bytes);
      if (a.empty()) return r;
      const Object& src = obj(a[0]);
      if (src.kind == Kind::Bytes) {
        obj(r).text = src.text;
      } else if (src.kind == Kind::Str) {
        // Protocol 2 pickles bytes as _codecs.encode(latin1_text, 'latin1'): turn the UTF-8 text back into bytes.
        const std::string& s = src.text;
        std::string bytes;
        for (size_t i = 0; i < s.size(); ++i) {
          uint8_t c = static_cast<uint8_t>(s[i]);
          if (c < 0x80) bytes.push_back(static_cast<char>(c));
          else if ((c == 0xc2 || c == 0xc3) && i + 1 < s.size()) bytes.push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(s[++i]) & 0x3f)));
          else fail("_codecs.encode: text outside latin-1");
        }
        obj(r).text = std::move(bytes);
      } else {
        fail(fn + ": unexpected argument");
      }
      return r;
    }
    fail("calling " + fn + " is not supported");
  }

  // numpy.dtype(name, align, copy): numpy pickles a dtype as this call with name = kind + item size ('f8'),
  // then BUILDs it with a state tuple whose second item is the byte order.
  uint32_t numpyDtype(const std::vector<uint32_t>& a) {
    const Object& name = arg(a, 0, Kind::Str, "numpy.dtype", "name");
    if (a.size() != 3) fail("numpy.dtype: expected 3 arguments (name, align, copy)");
    for (size_t i = 1; i < 3; ++i)
      if (obj(a[i]).kind != Kind::Bool && obj(a[i]).kind != Kind::Int) fail("numpy.dtype: align and copy should be bools");
    if (name.text.empty() || name.text.size() > 8) fail("numpy.dtype: a malformed dtype name");
    std::string text = name.text;
    uint32_t r = make(Kind::NumpyDtype);
    obj(r).text = std::move(text);
    obj(r).integer = '=';
    return r;
  }

  void buildNumpyDtype(uint32_t dtype, uint32_t stateRef) {
    const Object& state = obj(stateRef);
    if (state.kind != Kind::Tuple || state.items.size() < 2 || obj(state.items[1]).kind != Kind::Str)
      fail("BUILD of a numpy dtype without its (version, byte order, …) state");
    const std::string& order = obj(state.items[1]).text;
    if (order.size() != 1 || std::string_view("<>|=").find(order[0]) == std::string_view::npos)
      fail("BUILD of a numpy dtype with byte order '" + order + "'; expected one of < > | =");
    obj(dtype).integer = order[0];
  }

  // numpy.core.multiarray.scalar(dtype, bytes): a numpy bool, int or float scalar, kept as a plain value.
  uint32_t numpyScalar(const std::vector<uint32_t>& a) {
    const char* fn = "numpy scalar";
    if (a.size() != 2) fail("numpy.core.multiarray.scalar: expected 2 arguments (dtype, bytes)");
    const Object& dtype = arg(a, 0, Kind::NumpyDtype, fn, "dtype");
    const Object& data = arg(a, 1, Kind::Bytes, fn, "data");
    const std::string& name = dtype.text;
    const char kind = name[0];
    const std::string digits = name.substr(1);
    const size_t size = digits == "1" ? 1 : digits == "2" ? 2 : digits == "4" ? 4 : digits == "8" ? 8 : 0;
    const bool known = size && ((kind == 'b' && size == 1) || kind == 'i' || kind == 'u' || (kind == 'f' && size >= 2));
    if (!known)
      fail("a numpy scalar of dtype '" + name + "'; litlora reads numpy bool, int and float scalars only. Convert it "
           "in Python (e.g. float(x)) and save again");
    if (data.text.size() != size)
      fail("a numpy scalar of dtype '" + name + "' with " + std::to_string(data.text.size()) + " bytes; expected " +
           std::to_string(size));
    uint8_t bytes[8];
    std::memcpy(bytes, data.text.data(), size);
    if (dtype.integer == '>') std::reverse(bytes, bytes + size);  // litlora runs on little-endian machines only
    uint64_t bits = 0;
    for (size_t i = size; i-- > 0;) bits = (bits << 8) | bytes[i];
    uint32_t r;
    if (kind == 'b') {
      r = make(Kind::Bool);
      obj(r).integer = bits != 0;
    } else if (kind == 'f') {
      r = make(Kind::Float);
      if (size == 2) {
        obj(r).real = static_cast<float>(c10::Half(static_cast<uint16_t>(bits), c10::Half::from_bits()));
      } else if (size == 4) {
        float f;
        uint32_t b32 = static_cast<uint32_t>(bits);
        std::memcpy(&f, &b32, 4);
        obj(r).real = f;
      } else {
        std::memcpy(&obj(r).real, &bits, 8);
      }
    } else {
      if (kind == 'u' && size == 8 && bits > static_cast<uint64_t>(INT64_MAX))
        fail("a numpy uint64 scalar " + std::to_string(bits) + " beyond the int64 range litlora holds");
      if (kind == 'i' && size < 8 && (bits >> (8 * size - 1)) & 1) bits |= ~uint64_t(0) << (8 * size);  // sign-extend
      r = make(Kind::Int);
      obj(r).integer = static_cast<int64_t>(bits);
    }
    return r;
  }

  uint32_t persistentLoad(uint32_t pidRef) {
    const Object& pid = obj(pidRef);
    const size_t length = ids_ == StorageIds::Legacy ? 6 : 5;
    if (pid.kind != Kind::Tuple || pid.items.size() != length || obj(pid.items[0]).kind != Kind::Str ||
        obj(pid.items[0]).text != "storage")
      fail(ids_ == StorageIds::Legacy ? "a persistent id that is not ('storage', type, key, location, numel, view)"
                                      : "a persistent id that is not ('storage', type, key, location, numel)");
    const Object& type = obj(pid.items[1]);
    const Object& key = obj(pid.items[2]);
    const Object& location = obj(pid.items[3]);
    const Object& numel = obj(pid.items[4]);
    if (type.kind != Kind::Global) fail("a storage whose type is not a storage class");
    auto dtype = storageGlobal(type.text);
    if (!dtype) fail("wrong storage type " + type.text + "; expected a torch.*Storage class");
    // torch.save writes string keys; litgpt's incremental_save writes ints.
    if ((key.kind != Kind::Str && key.kind != Kind::Int) || location.kind != Kind::Str || numel.kind != Kind::Int ||
        numel.integer < 0)
      fail("a malformed storage reference ('storage', type, key, location, numel)");
    std::string keyText = key.kind == Kind::Str ? key.text : std::to_string(key.integer);
    StorageRef ref{std::move(keyText), *dtype, numel.integer, location.text};
    if (length == 6 && obj(pid.items[5]).kind != Kind::None) {
      // An old storage view: (view_key, offset, size) in elements of the root storage.
      const Object& view = obj(pid.items[5]);
      if (view.kind != Kind::Tuple || view.items.size() != 3 || obj(view.items[1]).kind != Kind::Int ||
          obj(view.items[2]).kind != Kind::Int)
        fail("a storage view that is not (key, offset, size)");
      const int64_t offset = obj(view.items[1]).integer, size = obj(view.items[2]).integer;
      if (offset < 0 || size < 0 || offset > numel.integer || size > numel.integer - offset)
        fail("a storage view [" + std::to_string(offset) + ", +" + std::to_string(size) + ") outside its storage of " +
             std::to_string(numel.integer) + " elements");
      ref.viewOffset = offset;
      ref.viewNumel = size;
    }
    out_.storages.push_back(std::move(ref));
    uint32_t r = make(Kind::Storage);
    obj(r).integer = static_cast<int64_t>(out_.storages.size() - 1);
    return r;
  }

  std::string_view b_;
  std::string where_;
  StorageIds ids_;
  std::string stream_;
  uint64_t base_;
  size_t pos_ = 0;
  size_t opStart_ = 0;
  Unpickled out_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
};

// ------------------------------------------------------------------------------------------------- pickler

// Emits pickle opcodes the way CPython's C pickler does at protocol 2, including which objects it
// memoizes and when a repeated object becomes a BINGET.
class Pickler {
 public:
  std::string out;

  void raw(char c) { out.push_back(c); }
  void put() {
    if (memo_ < 256) {
      raw('q');
      raw(static_cast<char>(memo_));
    } else {
      raw('r');
      le32(memo_);
    }
    ++memo_;
  }
  void get(uint32_t index) {
    if (index < 256) {
      raw('h');
      raw(static_cast<char>(index));
    } else {
      raw('j');
      le32(index);
    }
  }
  void global(const std::string& module, const std::string& name) {
    const std::string key = module + "\n" + name;
    auto it = globals_.find(key);
    if (it != globals_.end()) return get(it->second);
    out += "c" + key + "\n";
    globals_[key] = memo_;
    put();
  }
  // `sharedObject`: the same Python object every time (a literal such as 'storage', a storage key), so a
  // repeat is a memo hit. CPython also shares every one-character latin-1 string.
  void str(const std::string& s, bool sharedObject) {
    bool oneChar = s.size() == 1 || (s.size() == 2 && (static_cast<uint8_t>(s[0]) == 0xc2 || static_cast<uint8_t>(s[0]) == 0xc3));
    auto& table = oneChar ? oneChar_ : shared_;
    bool memoByValue = sharedObject || oneChar;
    if (memoByValue) {
      auto it = table.find(s);
      if (it != table.end()) return get(it->second);
    }
    raw('X');
    le32(static_cast<uint32_t>(s.size()));
    out += s;
    if (memoByValue) table[s] = memo_;
    put();
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      raw('K');
      raw(static_cast<char>(v));
    } else if (v >= 0 && v < 65536) {
      raw('M');
      raw(static_cast<char>(v & 0xff));
      raw(static_cast<char>(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      raw('J');
      le32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {  // LONG1, minimal two's complement (only non-negative values are written here)
      std::string bytes;
      uint64_t u = static_cast<uint64_t>(v);
      while (u) {
        bytes.push_back(static_cast<char>(u & 0xff));
        u >>= 8;
      }
      if (static_cast<uint8_t>(bytes.back()) & 0x80) bytes.push_back(0);
      raw(static_cast<char>(0x8a));
      raw(static_cast<char>(bytes.size()));
      out += bytes;
    }
  }
  void intTuple(const std::vector<int64_t>& v) {
    if (v.empty()) return raw(')');
    if (v.size() <= 3) {
      for (int64_t x : v) integer(x);
      raw(static_cast<char>(0x84 + v.size()));
    } else {
      raw('(');
      for (int64_t x : v) integer(x);
      raw('t');
    }
    put();
  }

 private:
  void le32(uint32_t v) {
    for (int i = 0; i < 4; ++i) raw(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  uint32_t memo_ = 0;
  std::unordered_map<std::string, uint32_t> globals_, shared_, oneChar_;
};

void pickleTensor(Pickler& p, const TensorRecord& t) {
  const std::string storageClass = storageClassName(t.dtype);
  LITLORA_CHECK(!storageClass.empty(), "ERR_DTYPE", "cannot save '" << t.name << "' of dtype " << c10::toString(t.dtype)
                                                                   << "; convert it to a supported dtype first");
  p.global("torch._utils", "_rebuild_tensor_v2");
  p.raw('(');
  p.raw('(');
  p.str("storage", true);
  p.global("torch", storageClass);
  p.str(t.storageKey, true);
  p.str("cpu", true);
  p.integer(t.storageNumel);
  p.raw('t');
  p.put();
  p.raw('Q');
  p.integer(t.offset);
  p.intTuple(t.sizes);
  p.intTuple(t.strides);
  p.raw(static_cast<char>(0x89));  // requires_grad=False
  p.global("collections", "OrderedDict");  // backward_hooks = OrderedDict()
  p.raw(')');
  p.raw('R');
  p.put();
  p.raw('t');
  p.put();
  p.raw('R');
  p.put();
}

// A plain dict's items the way the C pickler's batch_dict_exact writes them: one item as SETITEM; more in
// MARK … SETITEMS batches of 1000 (with a trailing empty batch when the count is a multiple of 1000).
void pickleItems(Pickler& p, const std::vector<TensorRecord>& tensors) {
  if (tensors.empty()) return;
  if (tensors.size() == 1) {
    p.str(tensors[0].name, false);
    pickleTensor(p, tensors[0]);
    p.raw('s');
    return;
  }
  size_t next = 0, inBatch = 0;
  do {
    p.raw('(');
    inBatch = 0;
    while (next < tensors.size()) {
      p.str(tensors[next].name, false);
      pickleTensor(p, tensors[next]);
      ++next;
      if (++inBatch == 1000) break;
    }
    p.raw('u');
  } while (inBatch == 1000);
}

}  // namespace

Unpickled unpickle(std::string_view bytes, const std::string& where, StorageIds ids, const std::string& stream, uint64_t base) {
  return Unpickler(bytes, where, ids, stream, base).run();
}

std::string storageClassName(at::ScalarType dtype) {
  for (const auto& s : kStorages)
    if (s.type == dtype) return s.name;
  return "";
}

std::string pickleTensorDict(const std::vector<TensorRecord>& tensors, const std::string& wrapKey) {
  Pickler p;
  p.raw(static_cast<char>(0x80));
  p.raw(2);
  p.raw('}');
  p.put();
  if (!wrapKey.empty()) {
    p.str(wrapKey, false);
    p.raw('}');
    p.put();
    pickleItems(p, tensors);
    p.raw('s');
  } else {
    pickleItems(p, tensors);
  }
  p.raw('.');
  return std::move(p.out);
}

}  // namespace litlora::pickle

#include "core/tensor_plan.h"

#include <ATen/core/grad_mode.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "core/dtype.h"
#include "core/error.h"
#include "core/pth.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"

namespace litlora::tensorplan {

namespace {

// Bytes per streamed block: large enough that the per-block overhead (a map lookup, a write call) vanishes,
// small enough to stay in L2/L3 while converting dtypes and to keep resident memory flat.
constexpr uint64_t kBlockBytes = uint64_t(4) << 20;

// A piece resolved against its file: the rows to copy and the tensor they come from.
struct Resolved {
  std::shared_ptr<tensorfile::Reader> file;
  std::string name;
  int64_t rowStart = 0;
  int64_t rows = 0;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> trailing;  // dims after the first
  int64_t rowElements = 1;
};

struct Planned {
  const Output* out = nullptr;
  std::vector<Resolved> pieces;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t bytes = 0;
};

std::vector<int64_t> concatShape(const std::vector<Resolved>& pieces) {
  std::vector<int64_t> shape{0};
  for (const auto& p : pieces) shape[0] += p.rows;
  if (!pieces.empty()) shape.insert(shape.end(), pieces[0].trailing.begin(), pieces[0].trailing.end());
  return shape;
}

Planned resolve(const Plan& plan, const Output& o, std::vector<std::shared_ptr<tensorfile::Reader>>& files) {
  Planned p;
  p.out = &o;
  LITLORA_CHECK(!o.name.empty(), "ERR_ARG", "tensor plan: an output has no name");
  LITLORA_CHECK(!o.pieces.empty(), "ERR_ARG", "tensor plan: output '" << o.name << "' has no pieces");
  for (const Piece& piece : o.pieces) {
    LITLORA_CHECK(piece.source < plan.sources.size(), "ERR_ARG", "tensor plan: output '" << o.name << "' names source #" << piece.source);
    auto& file = files[piece.source];
    if (!file) file = tensorfile::open(plan.sources[piece.source]);
    const tensorfile::EntryInfo* e = file->find(piece.name);
    LITLORA_CHECK(e, "ERR_CHECKPOINT_FORMAT",
                  plan.sources[piece.source] << " has no tensor '" << piece.name << "', which " << o.name
                                             << " is made from; the file is incomplete or belongs to another model");
    LITLORA_CHECK(!e->shape.empty(), "ERR_SHAPE", plan.sources[piece.source] << ": '" << piece.name << "' is a scalar; expected a tensor");
    Resolved r;
    r.file = file;
    r.name = piece.name;
    r.dtype = e->dtype;
    r.trailing.assign(e->shape.begin() + 1, e->shape.end());
    for (int64_t d : r.trailing) r.rowElements *= d;
    r.rowStart = piece.rowStart;
    r.rows = piece.rows < 0 ? e->shape[0] - piece.rowStart : piece.rows;
    LITLORA_CHECK(r.rowStart >= 0 && r.rows >= 0 && r.rowStart + r.rows <= e->shape[0], "ERR_SHAPE",
                  plan.sources[piece.source] << ": '" << piece.name << "' has shape " << shapeString(e->shape) << "; " << o.name
                                             << " needs its rows [" << r.rowStart << ", " << r.rowStart + r.rows
                                             << "), which it does not have (a checkpoint of another size than its config?)");
    if (!p.pieces.empty()) {
      LITLORA_CHECK(r.trailing == p.pieces[0].trailing, "ERR_SHAPE",
                    o.name << " joins '" << p.pieces[0].name << "' and '" << piece.name << "', whose shapes after the first dimension differ ("
                           << shapeString(p.pieces[0].trailing) << " and " << shapeString(r.trailing) << ")");
      LITLORA_CHECK(o.dtype || r.dtype == p.pieces[0].dtype, "ERR_DTYPE",
                    o.name << " joins '" << p.pieces[0].name << "' (" << dtypeName(p.pieces[0].dtype) << ") and '" << piece.name << "' ("
                           << dtypeName(r.dtype) << "); give the output a dtype");
    }
    p.pieces.push_back(std::move(r));
  }
  p.dtype = o.dtype.value_or(p.pieces[0].dtype);
  if (p.dtype != p.pieces[0].dtype)
    for (const auto& r : p.pieces)
      LITLORA_CHECK(at::isFloatingType(r.dtype) || !at::isFloatingType(p.dtype), "ERR_DTYPE",
                    r.file->path() << ": '" << r.name << "' is " << dtypeName(r.dtype) << ", not a floating-point tensor; it cannot be converted to "
                                   << dtypeName(p.dtype));
  p.shape = concatShape(p.pieces);
  int64_t numel = 1;
  for (int64_t d : p.shape) numel *= d;
  if (o.shape) {
    int64_t want = 1;
    for (int64_t d : *o.shape) want *= d;
    LITLORA_CHECK(want == numel, "ERR_SHAPE", o.name << ": a shape of " << shapeString(*o.shape) << " was asked for " << numel << " elements");
    p.shape = *o.shape;
  }
  p.bytes = static_cast<uint64_t>(numel) * c10::elementSize(p.dtype);
  return p;
}

// Drops the pages of [begin, end) of a file map from this process (whole pages inside the range only). They are
// clean (only read), so they stay in the page cache, and reading them again faults them back in from the file.
void releasePages(const void* begin, const void* end) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t b = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  uintptr_t e = reinterpret_cast<uintptr_t>(end) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// Bytes per pread of a piece copied as it is: small enough that the buffer stays in L2 between the read, the
// zip CRC and the write into the page cache. On the 2-core EPYC VM, copying a warm 592 MB shard + fsync took
// 0.46–0.52 s through a 128 KB buffer (as cp does) and 0.83–2.0 s through 4 MB blocks (dd bs=4M).
constexpr uint64_t kCopyBytes = uint64_t(256) << 10;

// Copies [offset, offset + length) of a file to `sink` through a reused buffer (no map: nothing becomes resident).
template <typename Sink>
void copyRange(const tensorfile::Reader::ByteRange& range, uint64_t offset, uint64_t length, const std::string& what, Sink&& sink) {
  static thread_local std::vector<char> buffer(kCopyBytes);
  uint64_t done = 0;
  while (done < length) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyBytes, length - done));
    ssize_t n = ::pread(range.fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    LITLORA_CHECK(n > 0, n < 0 ? "ERR_IO" : "ERR_CHECKPOINT_FORMAT",
                  what << ": reading its bytes failed (" << (n < 0 ? std::strerror(errno) : "the file ends early: truncated since it was opened?") << ")");
    sink(buffer.data(), static_cast<uint64_t>(n));
    done += static_cast<uint64_t>(n);
  }
}

// Streams one output's bytes, block by block, to `sink(data, length)`.
template <typename Sink>
void streamOutput(const Planned& p, Sink&& sink) {
  const uint64_t outElement = c10::elementSize(p.dtype);
  for (const Resolved& r : p.pieces) {
    if (r.rows == 0 || r.rowElements == 0) continue;
    if (r.dtype == p.dtype) {
      if (auto range = r.file->contiguousBytes(r.name)) {
        const uint64_t rowBytes = static_cast<uint64_t>(r.rowElements) * outElement;
        copyRange(*range, range->offset + static_cast<uint64_t>(r.rowStart) * rowBytes, static_cast<uint64_t>(r.rows) * rowBytes,
                  r.file->path() + ": '" + r.name + "'", sink);
        continue;
      }
    }
    at::Tensor t = r.file->get(r.name);
    const bool mapped = tensorfile::isFileMapped(t);
    t = t.narrow(0, r.rowStart, r.rows);
    const int64_t rowsPerBlock = std::max<int64_t>(1, static_cast<int64_t>(kBlockBytes / (static_cast<uint64_t>(r.rowElements) * outElement)));
    for (int64_t row = 0; row < r.rows; row += rowsPerBlock) {
      const int64_t n = std::min(rowsPerBlock, r.rows - row);
      at::Tensor block = t.narrow(0, row, n);
      const bool direct = block.is_contiguous() && block.scalar_type() == p.dtype;
      at::Tensor bytes = direct ? block : block.to(p.dtype, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous).contiguous();
      sink(bytes.data_ptr(), static_cast<uint64_t>(bytes.numel()) * outElement);
      if (mapped && block.is_contiguous()) {
        const char* start = static_cast<const char*>(block.data_ptr());
        releasePages(start, start + block.numel() * block.element_size());
      }
    }
  }
}

}  // namespace

Stats write(const Plan& plan, const std::function<void(int64_t, int64_t)>& progress) {
  at::NoGradGuard noGrad;
  const auto start = std::chrono::steady_clock::now();
  LITLORA_CHECK(plan.format == "pth" || plan.format == "safetensors", "ERR_ARG",
                "tensor plan: format must be 'pth' or 'safetensors', got '" << plan.format << "'");
  std::vector<std::shared_ptr<tensorfile::Reader>> files(plan.sources.size());
  std::vector<Planned> planned;
  std::unordered_map<std::string, size_t> byName;
  for (const Output& o : plan.outputs) {
    LITLORA_CHECK(byName.emplace(o.name, planned.size()).second, "ERR_ARG", "tensor plan: the output '" << o.name << "' is given twice");
    if (!o.aliasOf.empty()) {
      LITLORA_CHECK(plan.format == "pth", "ERR_ARG", "tensor plan: '" << o.name << "' aliases another tensor; only .pth files share storages");
      auto it = byName.find(o.aliasOf);
      LITLORA_CHECK(it != byName.end() && it->second < planned.size() && !planned[it->second].out->aliasOf.size(), "ERR_ARG",
                    "tensor plan: '" << o.name << "' aliases '" << o.aliasOf << "', which is not an earlier output");
      Planned a;
      a.out = &o;
      planned.push_back(std::move(a));
      continue;
    }
    planned.push_back(resolve(plan, o, files));
  }
  Stats stats;
  const int64_t total = static_cast<int64_t>(planned.size());
  auto done = [&] {
    stats.tensors++;
    if (progress) progress(stats.tensors, total);
  };
  if (plan.format == "pth") {
    pth::Writer writer(plan.outPath, plan.wrap);
    for (const Planned& p : planned) {
      if (!p.out->aliasOf.empty()) {
        writer.addAlias(p.out->name, p.out->aliasOf);
        done();
        continue;
      }
      writer.beginTensor(p.out->name, p.dtype, p.shape);
      streamOutput(p, [&](const void* data, uint64_t length) { writer.writeTensorBytes(data, length); });
      writer.endTensor();
      stats.bytesWritten += p.bytes;
      done();
    }
    writer.finish();
  } else {
    std::vector<safetensors::Spec> specs;
    for (const Planned& p : planned) specs.push_back({p.out->name, p.dtype, p.shape});
    safetensors::Writer writer(plan.outPath, specs, plan.metadata);
    for (const std::string& name : writer.fileOrder()) {
      const Planned& p = planned[byName.at(name)];
      uint64_t offset = 0;
      streamOutput(p, [&](const void* data, uint64_t length) {
        writer.addBytes(name, offset, data, length);
        offset += length;
      });
      if (p.bytes == 0) writer.addBytes(name, 0, nullptr, 0);
      stats.bytesWritten += p.bytes;
      done();
    }
    writer.finish();
  }
  for (auto& f : files)
    if (f) f->close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

bool sameBytes(const std::string& path, const std::string& a, const std::string& b) {
  auto file = tensorfile::open(path);
  for (const std::string& name : {a, b})
    LITLORA_CHECK(file->find(name), "ERR_CHECKPOINT_FORMAT", path << " has no tensor '" << name << "'");
  const tensorfile::EntryInfo& ea = *file->find(a);
  const tensorfile::EntryInfo& eb = *file->find(b);
  if (ea.dtype != eb.dtype || ea.shape != eb.shape) return false;
  auto ra = file->contiguousBytes(a), rb = file->contiguousBytes(b);
  bool same = true;
  if (ra && rb) {
    // Two names of one storage (torch.save of a tied head) are equal without reading a byte; otherwise both are
    // read through small buffers (nothing mapped, nothing left resident).
    if (ra->offset == rb->offset) return true;
    std::vector<char> x(kCopyBytes), y(kCopyBytes);
    for (uint64_t off = 0; off < ra->length && same; off += kCopyBytes) {
      const uint64_t n = std::min(kCopyBytes, ra->length - off);
      uint64_t got = 0;
      copyRange(*ra, ra->offset + off, n, path + ": '" + a + "'", [&](const void* d, uint64_t len) { std::memcpy(x.data() + got, d, len); got += len; });
      got = 0;
      copyRange(*rb, rb->offset + off, n, path + ": '" + b + "'", [&](const void* d, uint64_t len) { std::memcpy(y.data() + got, d, len); got += len; });
      same = std::memcmp(x.data(), y.data(), n) == 0;
    }
  } else {
    at::Tensor ta = file->get(a).contiguous(), tb = file->get(b).contiguous();
    same = ta.numel() == tb.numel() &&
           std::memcmp(ta.data_ptr(), tb.data_ptr(), static_cast<size_t>(ta.numel()) * ta.element_size()) == 0;
  }
  file->close();
  return same;
}

}  // namespace litlora::tensorplan

#include "core/tensor_plan.h"

#include <ATen/core/grad_mode.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/bounded_queue.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half_convert.h"
#include "core/pth.h"
#include "core/q8_0.h"
#include "core/read_ahead.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/zip.h"

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
  bool q8 = false;  // .gguf Q8_0: `dtype` (float32) is what the blocks are quantized from
};

// The dtype a .gguf tensor's pieces are converted to (Q8_0 quantizes from float32).
at::ScalarType ggmlDtype(const Output& o) {
  if (o.ggml == "f32" || o.ggml == "q8_0") return at::kFloat;
  if (o.ggml == "f16") return at::kHalf;
  if (o.ggml == "bf16") return at::kBFloat16;
  throw Error("ERR_ARG", "tensor plan: '" + o.name + "' asks for the ggml type '" + o.ggml + "'; expected f32, f16, bf16 or q8_0");
}

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
  LITLORA_CHECK(plan.format == "gguf" || (o.ggml.empty() && !o.permuteHeads && o.addend == 0 && o.data.empty()), "ERR_ARG",
                "tensor plan: '" << o.name << "' has a ggml type, a permutation or bytes of its own; only a .gguf plan writes those");
  if (!o.data.empty()) {
    p.bytes = o.data.size();
    return p;
  }
  LITLORA_CHECK(plan.format != "gguf" || !o.ggml.empty(), "ERR_ARG", "tensor plan: '" << o.name << "' has no ggml type");
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
      LITLORA_CHECK(o.dtype || !o.ggml.empty() || r.dtype == p.pieces[0].dtype, "ERR_DTYPE",
                    o.name << " joins '" << p.pieces[0].name << "' (" << dtypeName(p.pieces[0].dtype) << ") and '" << piece.name << "' ("
                           << dtypeName(r.dtype) << "); give the output a dtype");
    }
    p.pieces.push_back(std::move(r));
  }
  p.dtype = !o.ggml.empty() ? ggmlDtype(o) : o.dtype.value_or(p.pieces[0].dtype);
  p.q8 = o.ggml == "q8_0";
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
  if (p.q8) {
    LITLORA_CHECK(p.shape.size() >= 2 && p.shape.back() % q8_0::kBlock == 0, "ERR_SHAPE",
                  o.name << ": Q8_0 needs rows of a multiple of " << q8_0::kBlock << " values; its shape is " << shapeString(p.shape));
    p.bytes = static_cast<uint64_t>(numel / q8_0::kBlock * q8_0::kBlockBytes);
  }
  if (o.permuteHeads) {
    LITLORA_CHECK(o.permuteHeads > 0 && p.shape[0] % (2 * o.permuteHeads) == 0, "ERR_SHAPE",
                  o.name << ": cannot permute " << p.shape[0] << " rows for " << o.permuteHeads << " heads (each head needs an even number of rows)");
  }
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

// Reads exactly `length` bytes at `offset` of `fd` into `into` (pread from the page cache; nothing is mapped).
void readFully(int fd, char* into, uint64_t length, uint64_t offset, const std::string& what) {
  uint64_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, into + got, static_cast<size_t>(length - got), static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    LITLORA_CHECK(n > 0, n < 0 ? "ERR_IO" : "ERR_CHECKPOINT_FORMAT",
                  what << ": reading its bytes failed (" << (n < 0 ? std::strerror(errno) : "the file ends early: truncated since it was opened?") << ")");
    got += static_cast<uint64_t>(n);
  }
}

// Copies [offset, offset + length) of a file to `sink` through a reused buffer (no map: nothing becomes resident).
template <typename Sink>
void copyRange(const tensorfile::Reader::ByteRange& range, uint64_t offset, uint64_t length, const std::string& what, Sink&& sink) {
  static thread_local std::vector<char> buffer(kCopyBytes);
  for (uint64_t done = 0; done < length;) {
    const uint64_t want = std::min<uint64_t>(kCopyBytes, length - done);
    readFully(range.fd, buffer.data(), want, offset + done, what);
    sink(buffer.data(), want);
    done += want;
  }
}

// The write runs as two threads joined by bounded queues, so that the two halves of the work overlap on two
// cores: a producer reads every output's bytes (pread from the page cache into pooled buffers, or dtype-converted
// blocks) and computes the .pth CRC-32 while they are still in its cache; the calling thread hands them to the
// kernel (the copy into the page cache, ext4's block allocation, the writeback). On the 2-core EPYC VM the two
// halves cost about the same (0.2–0.3 s each per GB), so doing them one after the other cost ~1.5× the disk's
// durable-write floor. 8 MB in flight (32 × 256 KB) lets the reader run ahead while the writer waits on the disk's
// writeback; 2 MB stalled it (a Qwen2.5-0.5B conversion took ~1.0 s instead of ~0.8 s), 16 MB gained nothing.
// The reader's sources are read ahead 64 MB (files::ReadAhead): a page missing from the page cache would otherwise be
// read when the reader gets there, queued behind the output's flushes (Syncer in atomic_file.cc).
constexpr size_t kInFlight = 32;  // chunks between the threads: 32 × 256 KB buffers (or ≤ 4 MB converted blocks)

// One event of the stream, in the writer's order.
struct Chunk {
  enum class Kind { Begin, Bytes, End } kind = Kind::Bytes;
  size_t output = 0;          // index into the planned outputs
  const char* data = nullptr;  // Bytes
  uint64_t length = 0;
  int token = -1;             // Bytes: the in-flight token to give back (and the pooled buffer when `keep` is undefined)
  at::Tensor keep;            // Bytes: a converted or mapped block, alive until written
  bool release = false;       // Bytes: drop the block's mapped pages after the write
  uint32_t crc = 0;           // End: CRC-32 of the output's bytes (.pth)
  int64_t quantizeBf16 = 0;   // Bytes: `data` holds this many bfloat16 values, which the writer quantizes to Q8_0 in
                              // place (into `length` bytes) before writing them
};

class Producer {
 public:
  Producer(const std::vector<Planned>& planned, bool checksum, BoundedQueue<int>& tokens, BoundedQueue<Chunk>& chunks,
           std::vector<std::vector<char>>& buffers)
      : planned_(planned), checksum_(checksum), tokens_(tokens), chunks_(chunks), buffers_(buffers) {}

  // Streams the outputs in `order`; returns early (quietly) when the consumer closed the queues.
  void run(const std::vector<size_t>& order) {
    at::NoGradGuard noGrad;
    // Every piece's source bytes in the order they are read, for the read-ahead.
    for (size_t index : order) {
      const Planned& p = planned_[index];
      if (!p.out->aliasOf.empty() || !p.out->data.empty()) continue;
      for (const Resolved& r : p.pieces) {
        auto range = r.file->contiguousBytes(r.name);
        if (range) readAhead_.add(range->fd, firstByte(r, *range), sourceBytes(r));
        else readAhead_.add(-1, 0, sourceBytes(r));
      }
    }
    for (size_t index : order) {
      if (!chunks_.push(Chunk{Chunk::Kind::Begin, index})) return;
      uint32_t crc = 0;
      if (planned_[index].out->aliasOf.empty() && !stream(planned_[index], index, crc)) return;
      Chunk end{Chunk::Kind::End, index};
      end.crc = crc;
      if (!chunks_.push(std::move(end))) return;
    }
  }

 private:
  static uint64_t rowBytes(const Resolved& r) { return static_cast<uint64_t>(r.rowElements) * c10::elementSize(r.dtype); }
  static uint64_t sourceBytes(const Resolved& r) { return static_cast<uint64_t>(r.rows) * rowBytes(r); }
  // Where the piece's rows begin in its file.
  static uint64_t firstByte(const Resolved& r, const tensorfile::Reader::ByteRange& range) {
    return range.offset + static_cast<uint64_t>(r.rowStart) * rowBytes(r);
  }

  // Starts the piece `r`: the read-ahead learns where the reading is; pieceStart_ is its first byte's position.
  void beginPiece(const Resolved& r) {
    pieceStart_ = position_;
    readAhead_.reached(pieceStart_);
    position_ += sourceBytes(r);
  }

  bool emit(Chunk chunk, uint32_t& crc) {
    if (checksum_) crc = zip::crc32(crc, chunk.data, static_cast<size_t>(chunk.length));
    return chunks_.push(std::move(chunk));
  }

  bool stream(const Planned& p, size_t index, uint32_t& crc) {
    if (!p.out->data.empty()) return emit(Chunk{Chunk::Kind::Bytes, index, p.out->data.data(), p.out->data.size()}, crc);
    if (p.out->permuteHeads || p.out->addend != 0) return streamWhole(p, index, crc);
    const uint64_t outElement = c10::elementSize(p.dtype);
    for (const Resolved& r : p.pieces) {
      if (r.rows == 0 || r.rowElements == 0) continue;
      beginPiece(r);
      if (auto range = r.file->contiguousBytes(r.name)) {
        const uint64_t offset = firstByte(r, *range);
        const int64_t elements = r.rows * r.rowElements;
        const std::string what = r.file->path() + ": '" + r.name + "'";
        if (r.dtype == p.dtype && !p.q8) {
          if (!copy(*range, offset, sourceBytes(r), what, index, crc)) return false;
          continue;
        }
        if (!p.q8 || elements % q8_0::kBlock == 0) {
          if (!convert(p, *range, offset, elements, r.dtype, what, index, crc)) return false;
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
        // Q8_0 quantizes bfloat16 blocks as they are (the quantizer reads them as float32).
        const bool direct = block.is_contiguous() && (block.scalar_type() == p.dtype || (p.q8 && block.scalar_type() == at::kBFloat16));
        if (!direct && p.dtype == at::kHalf && block.is_contiguous()) {
          at::Tensor half = at::empty(block.sizes(), at::kHalf);
          if (halfconvert::toHalf(block.data_ptr(), block.scalar_type(), block.numel(), static_cast<uint16_t*>(half.data_ptr()))) {
            if (mapped) {
              const char* start = static_cast<const char*>(block.data_ptr());
              releasePages(start, start + block.numel() * block.element_size());
            }
            if (!emitBlock(p, index, std::move(half), false, crc)) return false;
            continue;
          }
        }
        at::Tensor bytes = direct ? block : block.to(p.dtype, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous).contiguous();
        if (!emitBlock(p, index, std::move(bytes), mapped && direct, crc)) return false;
      }
    }
    return true;
  }

  // A contiguous block of `p.dtype` values, quantized first for Q8_0. `release`: its bytes are mapped file pages,
  // dropped from this process once used.
  bool emitBlock(const Planned& p, size_t index, at::Tensor bytes, bool release, uint32_t& crc) {
    std::optional<int> token = tokens_.pop();
    if (!token) return false;
    if (p.q8) {
      at::Tensor q = at::empty({bytes.numel() / q8_0::kBlock * q8_0::kBlockBytes}, at::kByte);
      if (bytes.scalar_type() == at::kBFloat16)
        q8_0::quantizeBf16(static_cast<const uint16_t*>(bytes.data_ptr()), bytes.numel(), q.data_ptr<uint8_t>());
      else
        q8_0::quantize(bytes.data_ptr<float>(), bytes.numel(), q.data_ptr<uint8_t>());
      if (release) {
        const char* start = static_cast<const char*>(bytes.data_ptr());
        releasePages(start, start + bytes.numel() * bytes.element_size());
      }
      bytes = std::move(q);
      release = false;
    }
    Chunk chunk{Chunk::Kind::Bytes, index, static_cast<const char*>(bytes.data_ptr()), static_cast<uint64_t>(bytes.numel()) * bytes.element_size(), *token};
    chunk.release = release;
    chunk.keep = std::move(bytes);
    return emit(std::move(chunk), crc);
  }

  // A tensor changed whole before it is written (a Q or K projection, a norm: a few MB at most), then written in
  // blocks: convert_hf_to_gguf's `data_torch + addend` in the pieces' dtype (Gemma's norm weights + 1), and its
  // LlamaModel.permute of a Llama Q or K projection (weights or bias), which llama.cpp's rotary embedding expects:
  // reshape(heads, 2, rows/heads/2, …).swapaxes(1, 2).
  bool streamWhole(const Planned& p, size_t index, uint32_t& crc) {
    std::vector<at::Tensor> parts;
    for (const Resolved& r : p.pieces) {
      beginPiece(r);
      parts.push_back(r.file->get(r.name).narrow(0, r.rowStart, r.rows));
    }
    at::Tensor t = parts.size() == 1 ? parts[0] : at::cat(parts);
    const int64_t rows = t.size(0), heads = p.out->permuteHeads;
    const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (p.out->addend != 0) t = t + p.out->addend;
    t = t.to(p.dtype);
    if (heads) t = t.reshape({heads, 2, rows / heads / 2, -1}).transpose(1, 2).contiguous().reshape(shape);
    t = t.contiguous();
    parts.clear();
    const int64_t rowElements = rows ? t.numel() / rows : 1;
    const int64_t rowsPerBlock = std::max<int64_t>(1, static_cast<int64_t>(kBlockBytes / (static_cast<uint64_t>(rowElements) * t.element_size())));
    for (int64_t row = 0; row < rows; row += rowsPerBlock)
      if (!emitBlock(p, index, t.narrow(0, row, std::min(rowsPerBlock, rows - row)), false, crc)) return false;
    return true;
  }

  // [offset, offset + length) of a file, through the pooled buffers (no map: nothing becomes resident).
  bool copy(const tensorfile::Reader::ByteRange& range, uint64_t offset, uint64_t length, const std::string& what, size_t index, uint32_t& crc) {
    uint64_t done = 0;
    while (done < length) {
      std::optional<int> token = tokens_.pop();
      if (!token) return false;
      char* buffer = buffers_[static_cast<size_t>(*token)].data();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyBytes, length - done));
      readFully(range.fd, buffer, want, offset + done, what);
      done += want;
      readAhead_.reached(pieceStart_ + done);
      if (!emit(Chunk{Chunk::Kind::Bytes, index, buffer, want, *token}, crc)) return false;
    }
    return true;
  }

  // `elements` values of the dtype `from` at `offset` of a file, converted to the output's type (or quantized to
  // Q8_0) a pooled buffer at a time: pread into this thread's source buffer, then converted into the pooled one,
  // both small enough to stay in L2. As for plain copies, nothing of the source is mapped into this process (no
  // page faults, no MADV_DONTNEED after each block), and the chunks are the copies' size, so the writer sees one
  // stream of 256 KB pieces whatever the conversion.
  bool convert(const Planned& p, const tensorfile::Reader::ByteRange& range, uint64_t offset, int64_t elements, at::ScalarType from,
               const std::string& what, size_t index, uint32_t& crc) {
    const uint64_t inSize = c10::elementSize(from);
    const bool viaFloat = p.q8 && from != at::kFloat && from != at::kBFloat16;  // Q8_0 of f16 (or f64) values
    const uint64_t widest = std::max<uint64_t>({inSize, p.q8 ? uint64_t(2) : c10::elementSize(p.dtype), viaFloat ? uint64_t(4) : 0});
    int64_t step = static_cast<int64_t>(kCopyBytes / widest);
    if (p.q8) step -= step % q8_0::kBlock;
    static thread_local std::vector<char> source(kCopyBytes);
    static thread_local std::vector<float> floats;
    for (int64_t done = 0; done < elements; done += step) {
      const int64_t n = std::min(step, elements - done);
      if (p.q8 && from == at::kBFloat16 && !checksum_ && (++converted_ & 1)) {
        // Every other block is read straight into the pooled buffer and quantized there, in place, by the writer:
        // quantizing is most of the reading thread's work (~0.18 of ~0.3 s for a Qwen2.5-0.5B), and the writer's
        // share (the copy into the page cache, ~0.14 s) leaves it room. The sooner the reading is over, the sooner
        // the disk flushes at full speed (it runs at about half while the source is being read, BENCHMARKS.md).
        // Q8_0 exports alternating with and without, 22 pairs in three rounds (2026-12-03): mean ratio to the
        // durable-write floor 0.76 against 0.73.
        std::optional<int> token = tokens_.pop();
        if (!token) return false;
        char* out = buffers_[static_cast<size_t>(*token)].data();
        readFully(range.fd, out, static_cast<uint64_t>(n) * inSize, offset + static_cast<uint64_t>(done) * inSize, what);
        readAhead_.reached(pieceStart_ + static_cast<uint64_t>(done + n) * inSize);
        Chunk chunk{Chunk::Kind::Bytes, index, out, static_cast<uint64_t>(n / q8_0::kBlock * q8_0::kBlockBytes), *token};
        chunk.quantizeBf16 = n;
        if (!emit(std::move(chunk), crc)) return false;
        continue;
      }
      readFully(range.fd, source.data(), static_cast<uint64_t>(n) * inSize, offset + static_cast<uint64_t>(done) * inSize, what);
      readAhead_.reached(pieceStart_ + static_cast<uint64_t>(done + n) * inSize);
      std::optional<int> token = tokens_.pop();
      if (!token) return false;
      char* out = buffers_[static_cast<size_t>(*token)].data();
      uint64_t outBytes = 0;
      if (p.q8) {
        uint8_t* q = reinterpret_cast<uint8_t*>(out);
        if (from == at::kBFloat16) {
          q8_0::quantizeBf16(reinterpret_cast<const uint16_t*>(source.data()), n, q);
        } else if (from == at::kFloat) {
          q8_0::quantize(reinterpret_cast<const float*>(source.data()), n, q);
        } else {
          floats.resize(static_cast<size_t>(n));
          at::from_blob(floats.data(), {n}, at::kFloat).copy_(at::from_blob(source.data(), {n}, from));
          q8_0::quantize(floats.data(), n, q);
        }
        outBytes = static_cast<uint64_t>(n / q8_0::kBlock * q8_0::kBlockBytes);
      } else {
        outBytes = static_cast<uint64_t>(n) * c10::elementSize(p.dtype);
        if (p.dtype != at::kHalf || !halfconvert::toHalf(source.data(), from, n, reinterpret_cast<uint16_t*>(out)))
          at::from_blob(out, {n}, p.dtype).copy_(at::from_blob(source.data(), {n}, from));
      }
      if (!emit(Chunk{Chunk::Kind::Bytes, index, out, outBytes, *token}, crc)) return false;
    }
    return true;
  }

  const std::vector<Planned>& planned_;
  const bool checksum_;
  BoundedQueue<int>& tokens_;
  BoundedQueue<Chunk>& chunks_;
  std::vector<std::vector<char>>& buffers_;
  files::ReadAhead readAhead_;
  uint64_t position_ = 0;    // source bytes of the pieces begun so far, in reading order
  uint64_t pieceStart_ = 0;  // position_ where the current piece begins
  uint64_t converted_ = 0;   // bfloat16 blocks read for Q8_0 so far: the odd ones the writer quantizes
};

// Chunks taken at a time by the writing thread, as many as are already queued (at least one): their writes go to
// the kernel together (`flush`, a GGUF's writev). On the 2-core EPYC VM, writing 504 MB in 136 KB pieces (a Q8_0
// export's chunks) cost 0.13 s of a core one piece per call and 0.09 s eight per call (larger page-cache folios,
// fewer calls), 2026-12-03.
constexpr size_t kBatch = 8;

// Runs `consume(chunk)` on this thread for every chunk a Producer makes of `order` on another, then `flush()` after
// each batch of them (the chunks' bytes stay valid until then); either side's error stops the other and is
// rethrown here.
template <typename Consume, typename Flush>
void pipeline(const std::vector<Planned>& planned, const std::vector<size_t>& order, bool checksum, Consume&& consume, Flush&& flush) {
  std::vector<std::vector<char>> buffers(kInFlight, std::vector<char>(kCopyBytes));
  BoundedQueue<int> tokens(kInFlight);
  for (size_t i = 0; i < kInFlight; i++) tokens.push(static_cast<int>(i));
  BoundedQueue<Chunk> chunks(kInFlight + 2);  // + the Begin/End markers around a full set of Bytes
  Producer producer(planned, checksum, tokens, chunks, buffers);
  std::thread thread([&] {
    try {
      producer.run(order);
      chunks.close();
    } catch (...) {
      chunks.close(std::current_exception());
    }
  });
  try {
    std::vector<Chunk> batch;
    while (std::optional<Chunk> first = chunks.pop()) {
      batch.clear();
      batch.push_back(std::move(*first));
      chunks.popQueued(batch, kBatch - 1);
      for (Chunk& chunk : batch) {
        if (chunk.quantizeBf16) {
          char* data = const_cast<char*>(chunk.data);  // a pooled buffer, this thread's until its token goes back
          q8_0::quantizeBf16(reinterpret_cast<const uint16_t*>(data), chunk.quantizeBf16, reinterpret_cast<uint8_t*>(data));
        }
        consume(chunk);
      }
      flush();
      for (Chunk& chunk : batch) {
        if (chunk.release) releasePages(chunk.data, chunk.data + chunk.length);
        if (chunk.token >= 0) {
          chunk.keep = at::Tensor();
          tokens.push(chunk.token);
        }
      }
    }
  } catch (...) {
    tokens.close();
    chunks.close();
    thread.join();
    throw;
  }
  thread.join();
}

}  // namespace

Stats write(const Plan& plan, const std::function<void(int64_t, int64_t)>& progress) {
  at::NoGradGuard noGrad;
  const auto start = std::chrono::steady_clock::now();
  LITLORA_CHECK(plan.format == "pth" || plan.format == "safetensors" || plan.format == "gguf", "ERR_ARG",
                "tensor plan: format must be 'pth', 'safetensors' or 'gguf', got '" << plan.format << "'");
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
  std::vector<size_t> order;
  if (plan.format == "pth") {
    pth::Writer writer(plan.outPath, plan.wrap);
    for (size_t i = 0; i < planned.size(); i++) order.push_back(i);
    pipeline(planned, order, /*checksum=*/true, [&](const Chunk& c) {
      const Planned& p = planned[c.output];
      switch (c.kind) {
        case Chunk::Kind::Begin:
          if (p.out->aliasOf.empty()) writer.beginTensor(p.out->name, p.dtype, p.shape);
          break;
        case Chunk::Kind::Bytes:
          writer.writeTensorBytesUnchecked(c.data, c.length);
          break;
        case Chunk::Kind::End:
          if (p.out->aliasOf.empty()) {
            writer.endTensor(c.crc);
            stats.bytesWritten += p.bytes;
          } else {
            writer.addAlias(p.out->name, p.out->aliasOf);
          }
          done();
          break;
      }
    }, [] {});
    writer.finish();
  } else if (plan.format == "gguf") {
    LITLORA_CHECK(plan.header.size() >= 24 && plan.header.size() % kGgufAlignment == 0 && plan.header.compare(0, 4, "GGUF") == 0, "ERR_ARG",
                  "tensor plan: a .gguf needs its header (GGUF magic, padded to " << kGgufAlignment << " bytes); got " << plan.header.size() << " bytes");
    files::AtomicFile file(plan.outPath);
    uint64_t total = plan.header.size();
    for (const Planned& p : planned) total += p.bytes + (kGgufAlignment - p.bytes % kGgufAlignment) % kGgufAlignment;
    file.reserve(total);
    file.write(plan.header.data(), plan.header.size());
    for (size_t i = 0; i < planned.size(); i++) order.push_back(i);
    static const char zeros[kGgufAlignment] = {};
    uint64_t written = 0;
    std::vector<struct iovec> pending;  // a batch's bytes and paddings, written together
    pipeline(planned, order, /*checksum=*/false, [&](const Chunk& c) {
      const Planned& p = planned[c.output];
      switch (c.kind) {
        case Chunk::Kind::Begin:
          written = 0;
          break;
        case Chunk::Kind::Bytes:
          pending.push_back({const_cast<char*>(c.data), static_cast<size_t>(c.length)});
          written += c.length;
          break;
        case Chunk::Kind::End:
          LITLORA_CHECK(written == p.bytes, "ERR_SHAPE", "GGUF: tensor " << p.out->name << " has " << written << " bytes of data, expected " << p.bytes);
          pending.push_back({const_cast<char*>(zeros), static_cast<size_t>((kGgufAlignment - written % kGgufAlignment) % kGgufAlignment)});
          stats.bytesWritten += p.bytes;
          done();
          break;
      }
    }, [&] {
      file.write(pending.data(), pending.size());
      pending.clear();
    });
    LITLORA_CHECK(file.position() == total, "ERR_SHAPE", "GGUF: wrote " << file.position() << " bytes, expected " << total);
    file.commit();
  } else {
    std::vector<safetensors::Spec> specs;
    for (const Planned& p : planned) specs.push_back({p.out->name, p.dtype, p.shape});
    safetensors::Writer writer(plan.outPath, specs, plan.metadata);
    for (const std::string& name : writer.fileOrder()) order.push_back(byName.at(name));
    uint64_t offset = 0;
    pipeline(planned, order, /*checksum=*/false, [&](const Chunk& c) {
      const Planned& p = planned[c.output];
      switch (c.kind) {
        case Chunk::Kind::Begin:
          offset = 0;
          break;
        case Chunk::Kind::Bytes:
          writer.addBytes(p.out->name, offset, c.data, c.length);
          offset += c.length;
          break;
        case Chunk::Kind::End:
          if (p.bytes == 0) writer.addBytes(p.out->name, 0, nullptr, 0);
          stats.bytesWritten += p.bytes;
          done();
          break;
      }
    }, [] {});
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

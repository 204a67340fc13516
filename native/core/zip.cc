#include "core/zip.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace litlora::zip {

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kAlignment = 64;
constexpr uint32_t kMax32 = 0xffffffffu;

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                                        (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint64_t u64(const uint8_t* p) { return static_cast<uint64_t>(u32(p)) | (static_cast<uint64_t>(u32(p + 4)) << 32); }

void put16(std::string& out, uint16_t v) { out.push_back(char(v & 0xff)); out.push_back(char(v >> 8)); }
void put32(std::string& out, uint32_t v) { put16(out, uint16_t(v & 0xffff)); put16(out, uint16_t(v >> 16)); }
void put64(std::string& out, uint64_t v) { put32(out, uint32_t(v & kMax32)); put32(out, uint32_t(v >> 32)); }

// Slice-by-8 CRC-32 (the zip polynomial), about 2 GB/s; tables built once.
struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};
const CrcTables& crcTables() {
  static const CrcTables tables;
  return tables;
}


// The table CRC on the pre-inverted register (no ~ on entry or exit).
uint32_t crcTable(uint32_t crc, const uint8_t* p, size_t length) {
  const auto& t = crcTables().t;
  while (length >= 8) {
    uint32_t a = crc ^ u32(p);
    uint32_t b = u32(p + 4);
    crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^ t[3][b & 0xff] ^
          t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
    p += 8;
    length -= 8;
  }
  while (length--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// Carry-less multiplication folding (Intel, "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ"),
// with the bit-reflected constants for the zip polynomial as zlib and Linux use them: ~10 GB/s, so the
// checksum of a checkpoint costs far less than writing it. Needs length >= 64 and a multiple of 16; works
// on the pre-inverted register.
#define LITLORA_CLMUL __attribute__((target("pclmul,sse4.1")))
LITLORA_CLMUL inline __m128i load(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
LITLORA_CLMUL inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), _mm_clmulepi64_si128(x, k, 0x00)), next);
}

LITLORA_CLMUL uint32_t crcFold(uint32_t crc, const uint8_t* buf, size_t len) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  __m128i x1 = load(buf), x2 = load(buf + 16), x3 = load(buf + 32), x4 = load(buf + 48);
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  buf += 64;
  len -= 64;
  while (len >= 64) {  // four 128-bit lanes folded 512 bits ahead
    x1 = fold(x1, k, load(buf));
    x2 = fold(x2, k, load(buf + 16));
    x3 = fold(x3, k, load(buf + 32));
    x4 = fold(x4, k, load(buf + 48));
    buf += 64;
    len -= 64;
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));  // the lanes into one, 128 bits at a time
  x1 = fold(x1, k, x2);
  x1 = fold(x1, k, x3);
  x1 = fold(x1, k, x4);
  while (len >= 16) {
    x1 = fold(x1, k, load(buf));
    buf += 16;
    len -= 16;
  }
  // 128 → 64 bits, then a Barrett reduction to 32.
  __m128i x0 = _mm_clmulepi64_si128(x1, k, 0x10);
  const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x0);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x0 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x00), x0);
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x0 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x10);
  x0 = _mm_clmulepi64_si128(_mm_and_si128(x0, mask), k, 0x00);
  return static_cast<uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, x0), 1));
}

// Whether the folding path is available and agrees with the table on a self-test (if not, tables only).
bool foldUsable() {
  static const bool usable = [] {
    if (!__builtin_cpu_supports("pclmul") || !__builtin_cpu_supports("sse4.1")) return false;
    uint8_t probe[1024];
    for (size_t i = 0; i < sizeof probe; ++i) probe[i] = static_cast<uint8_t>(i * 131 + 7);
    for (size_t n : {64, 80, 528, 1024})
      if (crcFold(0x12345678u, probe, n) != crcTable(0x12345678u, probe, n)) return false;
    return true;
  }();
  return usable;
}
#endif

}  // namespace

uint32_t crc32(uint32_t crc, const void* data, size_t length) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (length >= 64 && foldUsable()) {
    const size_t bulk = length & ~size_t(15);
    crc = crcFold(crc, p, bulk);
    p += bulk;
    length -= bulk;
  }
#endif
  return ~crcTable(crc, p, length);
}
// ---------------------------------------------------------------------------------------------- Reader

Reader::Reader(std::shared_ptr<files::MappedFile> file) : file_(std::move(file)) {
  const files::MappedFile& f = *file_;
  const std::string& path = f.path();
  const uint64_t size = f.size();
  LITLORA_CHECK(size >= 22, "ERR_CHECKPOINT_FORMAT",
                path << ": " << size << " bytes is too short for a zip archive; the file is truncated");
  const uint8_t* d = f.data();

  // The end record sits in the last 22 + 65535 (comment) bytes; search backwards for one that fits.
  uint64_t end = UINT64_MAX;
  uint64_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t pos = size - 22 + 1; pos-- > lowest;) {
    if (u32(d + pos) == kEndSig && pos + 22 + u16(d + pos + 20) <= size) {
      end = pos;
      break;
    }
  }
  LITLORA_CHECK(end != UINT64_MAX, "ERR_CHECKPOINT_FORMAT",
                path << ": no zip end-of-central-directory record; the file is truncated or not a zip archive");
  uint64_t count = u16(d + end + 10);
  uint64_t cdSize = u32(d + end + 12);
  uint64_t cdOffset = u32(d + end + 16);

  if (end >= 20 && u32(d + end - 20) == kZip64LocatorSig) {
    uint64_t z = u64(d + end - 20 + 8);
    LITLORA_CHECK(z <= end - 20 && end - 20 - z >= 56 && u32(d + z) == kZip64EndSig, "ERR_CHECKPOINT_FORMAT",
                  path << ": corrupt zip64 end record (offset " << z << "); the file is truncated or corrupt");
    count = u64(d + z + 32);
    cdSize = u64(d + z + 40);
    cdOffset = u64(d + z + 48);
  } else {
    LITLORA_CHECK(count != 0xffff && cdSize != kMax32 && cdOffset != kMax32, "ERR_CHECKPOINT_FORMAT",
                  path << ": the end record points to a zip64 record that is missing; the file is corrupt");
  }
  LITLORA_CHECK(cdOffset <= end && cdSize <= end - cdOffset, "ERR_CHECKPOINT_FORMAT",
                path << ": the central directory (offset " << cdOffset << ", " << cdSize
                     << " bytes) lies outside the file; the file is truncated or corrupt");
  LITLORA_CHECK(count <= cdSize / 46, "ERR_CHECKPOINT_FORMAT",
                path << ": the central directory claims " << count << " entries in " << cdSize << " bytes; it is corrupt");
  centralDirectoryOffset_ = cdOffset;

  entries_.reserve(static_cast<size_t>(count));
  uint64_t pos = cdOffset;
  const uint64_t cdEnd = cdOffset + cdSize;
  for (uint64_t i = 0; i < count; ++i) {
    LITLORA_CHECK(cdEnd - pos >= 46 && u32(d + pos) == kCentralHeaderSig, "ERR_CHECKPOINT_FORMAT",
                  path << ": central directory entry " << i << " is corrupt (bad signature at offset " << pos << ")");
    const uint8_t* h = d + pos;
    Entry e;
    e.flags = u16(h + 8);
    e.method = u16(h + 10);
    e.compressedSize = u32(h + 20);
    e.size = u32(h + 24);
    uint64_t nameLen = u16(h + 28), extraLen = u16(h + 30), commentLen = u16(h + 32);
    e.localHeaderOffset = u32(h + 42);
    LITLORA_CHECK(cdEnd - pos - 46 >= nameLen + extraLen + commentLen, "ERR_CHECKPOINT_FORMAT",
                  path << ": central directory entry " << i << " overruns the directory; the file is corrupt");
    e.name.assign(reinterpret_cast<const char*>(h + 46), nameLen);
    // zip64 extra field: the 64-bit values, in this order, for exactly the fields that read 0xffffffff.
    const uint8_t* x = h + 46 + nameLen;
    const uint8_t* xEnd = x + extraLen;
    while (xEnd - x >= 4) {
      uint16_t id = u16(x), len = u16(x + 2);
      LITLORA_CHECK(xEnd - x - 4 >= len, "ERR_CHECKPOINT_FORMAT",
                    path << ": corrupt extra field in entry '" << e.name << "'");
      if (id == 0x0001) {
        const uint8_t* v = x + 4;
        const uint8_t* vEnd = v + len;
        auto take = [&](uint64_t& field) {
          if (field != kMax32) return;
          LITLORA_CHECK(vEnd - v >= 8, "ERR_CHECKPOINT_FORMAT", path << ": short zip64 field in entry '" << e.name << "'");
          field = u64(v);
          v += 8;
        };
        take(e.size);
        take(e.compressedSize);
        take(e.localHeaderOffset);
      }
      x += 4 + len;
    }
    LITLORA_CHECK(index_.emplace(e.name, entries_.size()).second, "ERR_CHECKPOINT_FORMAT",
                  path << ": the entry '" << e.name << "' appears twice; the archive is corrupt or crafted");
    entries_.push_back(std::move(e));
    pos += 46 + nameLen + extraLen + commentLen;
  }
}

const Entry* Reader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

uint64_t Reader::dataOffset(const Entry& e) const {
  const files::MappedFile& f = *file_;
  LITLORA_CHECK(!(e.flags & 1), "ERR_CHECKPOINT_FORMAT", f.path() << ": entry '" << e.name << "' is encrypted");
  LITLORA_CHECK(e.method == 0 && e.compressedSize == e.size, "ERR_CHECKPOINT_FORMAT",
                f.path() << ": entry '" << e.name << "' is compressed (method " << e.method
                         << "); PyTorch stores records uncompressed. Re-save the file with torch.save.");
  // The 30-byte local header is read with pread, not through the map: on kernels whose page cache holds large
  // folios, touching one mapped byte can map a whole folio (up to megabytes) into this process, and a streamed
  // conversion that reads the records themselves with pread (core/tensor_plan) found ~210 MB of a Qwen2.5-0.5B
  // lit_model.pth resident from its 195 headers alone (bench:convert's peak RSS 177 → 397 MB, 2026-12-03).
  uint8_t h[30];
  bool headerRead = e.localHeaderOffset <= centralDirectoryOffset_ && centralDirectoryOffset_ - e.localHeaderOffset >= 30;
  for (size_t got = 0; headerRead && got < sizeof h;) {
    const ssize_t n = ::pread(f.fd(), h + got, sizeof h - got, static_cast<off_t>(e.localHeaderOffset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) headerRead = false;
    else got += static_cast<size_t>(n);
  }
  LITLORA_CHECK(headerRead && u32(h) == kLocalHeaderSig, "ERR_CHECKPOINT_FORMAT",
                f.path() << ": the local header of entry '" << e.name << "' (offset " << e.localHeaderOffset
                         << ") is missing or corrupt");
  uint64_t start = e.localHeaderOffset + 30 + u16(h + 26) + u16(h + 28);
  LITLORA_CHECK(start <= f.size() && e.size <= f.size() - start, "ERR_CHECKPOINT_FORMAT",
                f.path() << ": entry '" << e.name << "' needs " << e.size << " bytes at offset " << start
                         << ", past the end of the file (" << f.size() << " bytes); the file is truncated");
  return start;
}

std::string_view Reader::read(const Entry& e) const { return file_->bytes(dataOffset(e), e.size); }

// ---------------------------------------------------------------------------------------------- Writer

Writer::Writer(const std::string& path) : file_(path) {}

void Writer::add(const std::string& name, const void* data, uint64_t size) {
  begin(name, size);
  write(data, size);
  end();
}

void Writer::begin(const std::string& name, uint64_t size) {
  LITLORA_CHECK(!open_ && !finished_, "ERR_ARG", "zip writer: begin('" << name << "') while a record is open");
  LITLORA_CHECK(name.size() < 0xffff, "ERR_ARG", "zip writer: record name too long");
  const uint64_t offset = file_.position();
  const bool zip64 = size >= kMax32;
  std::string header;
  put32(header, kLocalHeaderSig);
  put16(header, zip64 ? 45 : 20);  // version needed
  put16(header, 0x0800);           // names are UTF-8
  put16(header, 0);                // stored
  put16(header, 0);                // time
  put16(header, 0);                // date
  put32(header, 0);                // CRC-32, patched in end()
  put32(header, zip64 ? kMax32 : uint32_t(size));
  put32(header, zip64 ? kMax32 : uint32_t(size));
  put16(header, uint16_t(name.size()));
  std::string extra;
  if (zip64) {
    put16(extra, 0x0001);
    put16(extra, 16);
    put64(extra, size);
    put64(extra, size);
  }
  // Pad with an "FB" extra field (as PyTorch does) so that the data starts on a 64-byte boundary.
  uint64_t unpadded = offset + 30 + name.size() + extra.size() + 4;
  uint16_t pad = uint16_t((kAlignment - unpadded % kAlignment) % kAlignment);
  put16(extra, 0x4246);
  put16(extra, pad);
  extra.append(pad, 'Z');
  put16(header, uint16_t(extra.size()));
  header += name;
  header += extra;
  file_.write(header.data(), header.size());
  written_.push_back({name, offset, size, 0});
  open_ = true;
  remaining_ = size;
  crc_ = 0;
  checked_ = unchecked_ = false;
}

void Writer::write(const void* data, uint64_t length) {
  LITLORA_CHECK(open_ && length <= remaining_ && !unchecked_, "ERR_ARG",
                "zip writer: writing " << length << " bytes into a record with " << remaining_ << " left"
                                       << (unchecked_ ? " whose CRC the caller computes" : ""));
  checked_ = true;
  // The checksum of a large block runs on a second thread while this one hands the same bytes to the kernel.
  if (length >= (8u << 20)) {
    uint32_t crc = crc_;
    std::thread checksum([&crc, data, length] { crc = crc32(crc, data, static_cast<size_t>(length)); });
    try {
      file_.write(data, length);
    } catch (...) {
      checksum.join();
      throw;
    }
    checksum.join();
    crc_ = crc;
  } else {
    crc_ = crc32(crc_, data, static_cast<size_t>(length));
    file_.write(data, length);
  }
  remaining_ -= length;
}

void Writer::writeUnchecked(const void* data, uint64_t length) {
  LITLORA_CHECK(open_ && length <= remaining_ && !checked_, "ERR_ARG",
                "zip writer: writing " << length << " bytes into a record with " << remaining_ << " left"
                                       << (checked_ ? " whose CRC the writer computes" : ""));
  unchecked_ = true;
  file_.write(data, length);
  remaining_ -= length;
}

void Writer::end(uint32_t crc) {
  LITLORA_CHECK(!checked_, "ERR_ARG", "zip writer: end(crc) for a record whose CRC the writer computed");
  crc_ = crc;
  unchecked_ = false;
  end();
}

void Writer::end() {
  LITLORA_CHECK(open_ && remaining_ == 0, "ERR_ARG", "zip writer: record ended with " << remaining_ << " bytes missing");
  LITLORA_CHECK(!unchecked_, "ERR_ARG", "zip writer: a record written unchecked must end with its CRC (end(crc))");
  Written& w = written_.back();
  w.crc = crc_;
  std::string crc;
  put32(crc, crc_);
  file_.pwrite(crc.data(), 4, w.offset + 14);
  open_ = false;
}

void Writer::finish() {
  LITLORA_CHECK(!open_ && !finished_, "ERR_ARG", "zip writer: finish() with a record still open");
  const uint64_t cdOffset = file_.position();
  std::string cd;
  for (const Written& w : written_) {
    const bool big = w.size >= kMax32, far = w.offset >= kMax32;
    std::string extra;
    if (big || far) {
      put16(extra, 0x0001);
      put16(extra, uint16_t((big ? 16 : 0) + (far ? 8 : 0)));
      if (big) {
        put64(extra, w.size);
        put64(extra, w.size);
      }
      if (far) put64(extra, w.offset);
    }
    put32(cd, kCentralHeaderSig);
    put16(cd, 45);  // made by
    put16(cd, (big || far) ? 45 : 20);
    put16(cd, 0x0800);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, w.crc);
    put32(cd, big ? kMax32 : uint32_t(w.size));
    put32(cd, big ? kMax32 : uint32_t(w.size));
    put16(cd, uint16_t(w.name.size()));
    put16(cd, uint16_t(extra.size()));
    put16(cd, 0);  // comment
    put16(cd, 0);  // disk
    put16(cd, 0);  // internal attributes
    put32(cd, 0);  // external attributes
    put32(cd, far ? kMax32 : uint32_t(w.offset));
    cd += w.name;
    cd += extra;
  }
  const uint64_t count = written_.size(), cdSize = cd.size(), zip64End = cdOffset + cdSize;
  // PyTorch always ends with zip64 records; so do we (readers take the 64-bit values from them).
  put32(cd, kZip64EndSig);
  put64(cd, 44);
  put16(cd, 45);
  put16(cd, 45);
  put32(cd, 0);
  put32(cd, 0);
  put64(cd, count);
  put64(cd, count);
  put64(cd, cdSize);
  put64(cd, cdOffset);
  put32(cd, kZip64LocatorSig);
  put32(cd, 0);
  put64(cd, zip64End);
  put32(cd, 1);
  put32(cd, kEndSig);
  put16(cd, 0);
  put16(cd, 0);
  put16(cd, uint16_t(std::min<uint64_t>(count, 0xffff)));
  put16(cd, uint16_t(std::min<uint64_t>(count, 0xffff)));
  put32(cd, uint32_t(std::min<uint64_t>(cdSize, kMax32)));
  put32(cd, uint32_t(std::min<uint64_t>(cdOffset, kMax32)));
  put16(cd, 0);
  file_.write(cd.data(), cd.size());
  file_.commit();
  finished_ = true;
}

}  // namespace litlora::zip

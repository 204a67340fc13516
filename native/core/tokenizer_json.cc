#include "core/tokenizer_json.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/utf8.h"

namespace litlora::tokenizerjson {

namespace {

constexpr int kMaxDepth = 512;

// Thrown where the reader gives up; caught in scanBpe.
struct Unsupported {};
[[noreturn]] void giveUp() { throw Unsupported{}; }

// A code point as UTF-8; a lone surrogate as U+FFFD, as Node's UTF-8 encoder writes it.
void appendCodePoint(std::string& out, uint32_t c) { utf8::append(out, c >= 0xd800 && c <= 0xdfff ? 0xfffd : c); }

void appendU64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; i++) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 8);
}

void setU64(std::string& out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

class Scanner {
 public:
  Scanner(const char* data, size_t size) : b_(reinterpret_cast<const uint8_t*>(data)), n_(size) {}

  size_t pos() const { return p_; }
  bool atEnd() { ws(); return p_ == n_; }
  int peek() const { return p_ < n_ ? b_[p_] : -1; }

  void ws() {
    while (p_ < n_ && (b_[p_] == ' ' || b_[p_] == '\n' || b_[p_] == '\r' || b_[p_] == '\t')) p_++;
  }

  void expect(uint8_t c) {
    ws();
    if (p_ >= n_ || b_[p_] != c) giveUp();
    p_++;
  }

  // True (and past `close`) when it comes next; else past the comma before an item (none before the first).
  bool closes(uint8_t close, bool first) {
    ws();
    if (p_ >= n_) giveUp();
    if (b_[p_] == close) {
      p_++;
      return true;
    }
    if (!first) {
      if (b_[p_] != ',') giveUp();
      p_++;
      ws();
    }
    return false;
  }

  // The JSON string at p decoded into `out` as UTF-8; `spaceAsG`: a space as U+0120.
  void string(std::string& out, bool spaceAsG = false) {
    if (p_ >= n_ || b_[p_] != '"') giveUp();
    size_t p = p_ + 1;
    int32_t high = -1;  // a \u high surrogate waiting for its low half
    for (;;) {
      // The run up to the next quote, backslash or control character is copied as it is.
      size_t run = stop(p, spaceAsG);
      if (run > p) {
        if (high >= 0) {
          appendCodePoint(out, 0xfffd);
          high = -1;
        }
        out.append(reinterpret_cast<const char*>(b_ + p), run - p);
        p = run;
      }
      if (p >= n_ || b_[p] < 0x20) giveUp();
      if (b_[p] == '"') break;
      uint32_t unit;
      if (b_[p] == ' ') {  // spaceAsG
        unit = ' ';
        p++;
      } else {
        if (p + 1 >= n_) giveUp();
        const uint8_t e = b_[p + 1];
        p += 2;
        switch (e) {
          case '"': unit = '"'; break;
          case '\\': unit = '\\'; break;
          case '/': unit = '/'; break;
          case 'b': unit = 0x08; break;
          case 'f': unit = 0x0c; break;
          case 'n': unit = 0x0a; break;
          case 'r': unit = 0x0d; break;
          case 't': unit = 0x09; break;
          case 'u': {
            if (p + 4 > n_) giveUp();
            unit = 0;
            for (int k = 0; k < 4; k++) {
              const uint8_t h = b_[p + k];
              const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
              if (d < 0) giveUp();
              unit = unit * 16 + static_cast<uint32_t>(d);
            }
            p += 4;
            break;
          }
          default: giveUp();
        }
      }
      if (high >= 0) {
        if (unit >= 0xdc00 && unit <= 0xdfff) {
          appendCodePoint(out, 0x10000 + ((static_cast<uint32_t>(high) - 0xd800) << 10) + (unit - 0xdc00));
          high = -1;
          continue;
        }
        appendCodePoint(out, 0xfffd);
        high = -1;
      }
      if (unit >= 0xd800 && unit <= 0xdbff) high = static_cast<int32_t>(unit);
      else appendCodePoint(out, unit == ' ' && spaceAsG ? 0x120 : unit);
    }
    if (high >= 0) appendCodePoint(out, 0xfffd);
    p_ = p + 1;
  }

  // The first byte from `p` on that a string's copy stops at: a quote, a backslash, a control character, a space
  // where spaces are replaced (or the end). Sixteen bytes at a time with SSE2 (most of a tokenizer.json's bytes are
  // the tokens' own: a byte at a time, this loop was ~40% of the reading).
  size_t stop(size_t p, bool spaceToo) const {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(' ');
    const __m128i high3 = _mm_set1_epi8(static_cast<char>(0xe0)), zero = _mm_setzero_si128();
    for (; p + 16 <= n_; p += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b_ + p));
      __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                 _mm_cmpeq_epi8(_mm_and_si128(v, high3), zero));  // bytes below 0x20
      if (spaceToo) hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, space));
      if (const int mask = _mm_movemask_epi8(hit)) return p + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
#endif
    while (p < n_ && b_[p] != '"' && b_[p] != '\\' && b_[p] >= 0x20 && !(spaceToo && b_[p] == ' ')) p++;
    return p;
  }

  // A key with no escapes (an escaped key could spell one of the names looked for), then the colon.
  std::string_view key() {
    ws();
    if (p_ >= n_ || b_[p_] != '"') giveUp();
    size_t p = p_ + 1;
    while (p < n_ && b_[p] != '"') {
      if (b_[p] == '\\') giveUp();
      p++;
    }
    if (p >= n_) giveUp();
    std::string_view k(reinterpret_cast<const char*>(b_ + p_ + 1), p - p_ - 1);
    p_ = p + 1;
    expect(':');
    ws();
    return k;
  }

  // Past the value at p (JSON.parse checks the skipped parts, which stay in the rest).
  void skipValue() {
    int depth = 0;
    for (;;) {
      if (p_ >= n_) giveUp();
      const uint8_t c = b_[p_];
      if (c == '"') {
        p_++;
        while (p_ < n_ && b_[p_] != '"') p_ += b_[p_] == '\\' ? 2 : 1;
        if (p_ >= n_) giveUp();
        p_++;
      } else if (c == '{' || c == '[') {
        if (++depth > kMaxDepth) giveUp();
        p_++;
      } else if (c == '}' || c == ']') {
        if (--depth < 0) giveUp();
        p_++;
      } else {
        p_++;
        if (depth == 0) {  // a number or a literal: up to the next delimiter
          while (p_ < n_ && b_[p_] != ',' && b_[p_] != '}' && b_[p_] != ']' && b_[p_] != ' ' && b_[p_] != '\n' && b_[p_] != '\r' && b_[p_] != '\t') p_++;
          return;
        }
        continue;
      }
      if (depth == 0) return;
    }
  }

  // A non-negative integer below 2^31 written plainly (no sign, fraction, exponent or leading zero).
  int32_t id() {
    const size_t first = p_;
    int64_t v = 0;
    while (p_ < n_ && b_[p_] >= '0' && b_[p_] <= '9') {
      v = v * 10 + (b_[p_] - '0');
      if (v > 0x7fffffff) giveUp();
      p_++;
    }
    if (p_ == first || (b_[first] == '0' && p_ - first > 1)) giveUp();
    if (p_ < n_ && (b_[p_] == '.' || b_[p_] == 'e' || b_[p_] == 'E')) giveUp();
    return static_cast<int32_t>(v);
  }

 private:
  const uint8_t* b_;
  size_t n_;
  size_t p_ = 0;
};

// A hash of a token's bytes, eight at a time (a token is a few bytes; equal hashes are compared byte for byte).
uint32_t hashBytes(const char* s, size_t n) {
  uint64_t h = (n + 1) * 0x9e3779b97f4a7c15ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  for (size_t k = 0; i + k < n; k++) w |= static_cast<uint64_t>(static_cast<uint8_t>(s[i + k])) << (8 * k);  // no memcpy call
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  return static_cast<uint32_t>(h ^ (h >> 29));
}

// True when two of the tokens are the same bytes (a key given twice: JSON.parse would keep one of them). Open
// addressing over the ids by the hash of their bytes; the hashes are computed first and each probe's slot is
// prefetched a few tokens ahead, so that the table's cache misses overlap (inserting as the tokens were read took
// ~14 ms of a Qwen2-sized file's ~20 ms on the 2-core EPYC VM, most of it waiting on the table).
bool anyKeyTwice(const BpeScan& scan) {
  std::vector<int32_t> ids;
  std::vector<uint32_t> hashes;
  for (int64_t id = 0; id <= scan.maxId; id++) {
    if (scan.start[id] < 0) continue;
    ids.push_back(static_cast<int32_t>(id));
    hashes.push_back(hashBytes(scan.tokenBytes.data() + scan.start[id], static_cast<size_t>(scan.length[id])));
  }
  size_t size = 1024;
  while (size < ids.size() * 2) size *= 2;
  const size_t mask = size - 1;
  std::vector<int32_t> table(size, -1);
  constexpr size_t kAhead = 32;
  const char* bytes = scan.tokenBytes.data();
  for (size_t i = 0; i < ids.size(); i++) {
    if (i + kAhead < ids.size()) __builtin_prefetch(&table[hashes[i + kAhead] & mask], 1);
    const int32_t id = ids[i];
    size_t slot = hashes[i] & mask;
    for (int32_t other = table[slot]; other >= 0; other = table[slot]) {
      if (scan.length[other] == scan.length[id] &&
          std::memcmp(bytes + scan.start[other], bytes + scan.start[id], static_cast<size_t>(scan.length[id])) == 0)
        return true;
      slot = (slot + 1) & mask;
    }
    table[slot] = id;
  }
  return false;
}

// model.vocab into `scan`; an id used twice gives up (which of the two JSON.parse keeps depends on the keys).
void scanVocab(Scanner& s, BpeScan& scan) {
  scan.start.assign(1 << 17, -1);
  scan.length.assign(1 << 17, 0);
  s.expect('{');
  for (bool first = true; !s.closes('}', first); first = false) {
    const size_t at = scan.tokenBytes.size();
    s.string(scan.tokenBytes);
    s.expect(':');
    s.ws();
    const int32_t id = s.id();
    if (static_cast<size_t>(id) >= scan.start.size()) {
      const size_t size = std::max(scan.start.size() * 2, static_cast<size_t>(id) + 1);
      scan.start.resize(size, -1);
      scan.length.resize(size, 0);
    }
    if (scan.start[id] >= 0 || scan.tokenBytes.size() > 0x7fffffff) giveUp();
    scan.start[id] = static_cast<int32_t>(at);
    scan.length[id] = static_cast<int32_t>(scan.tokenBytes.size() - at);
    if (id > scan.maxId) scan.maxId = id;
  }
  if (anyKeyTwice(scan)) giveUp();
}

// model.merges as GGUF strings: a string as it is, an array's parts (spaces as U+0120) joined by a space.
void scanMerges(Scanner& s, BpeScan& scan) {
  s.expect('[');
  for (bool first = true; !s.closes(']', first); first = false) {
    const size_t at = scan.merges.size();
    appendU64(scan.merges, 0);
    if (s.peek() == '"') {
      s.string(scan.merges);
    } else {
      s.expect('[');
      for (bool part = true; !s.closes(']', part); part = false) {
        if (!part) scan.merges.push_back(' ');
        s.string(scan.merges, true);
      }
    }
    setU64(scan.merges, at, scan.merges.size() - at - 8);
    scan.mergeCount++;
  }
}

}  // namespace

std::optional<BpeScan> scanBpe(const char* data, size_t size) {
  Scanner s(data, size);
  BpeScan scan;
  try {
    struct Cut {
      size_t from, to;
      const char* replacement;
    };
    std::vector<Cut> cuts;
    bool sawModel = false, sawVocab = false, sawMerges = false;
    // Neither part decodes to more bytes than it takes in the file but for merge pairs' spaces (U+0120) and
    // their length prefixes; reserved once, grown where a file needs it.
    scan.tokenBytes.reserve(size);
    scan.merges.reserve(size + size / 2);
    s.expect('{');
    for (bool first = true; !s.closes('}', first); first = false) {
      if (s.key() != "model") {
        s.skipValue();
        continue;
      }
      if (sawModel) giveUp();
      sawModel = true;
      s.expect('{');
      for (bool inner = true; !s.closes('}', inner); inner = false) {
        const std::string_view k = s.key();
        const size_t from = s.pos();
        if (k == "vocab") {
          if (sawVocab) giveUp();
          sawVocab = true;
          scanVocab(s, scan);
          cuts.push_back({from, s.pos(), "{}"});
        } else if (k == "merges") {
          if (sawMerges) giveUp();
          sawMerges = true;
          scanMerges(s, scan);
          cuts.push_back({from, s.pos(), "[]"});
        } else {
          s.skipValue();
        }
      }
    }
    if (!s.atEnd() || !sawVocab || !sawMerges) return std::nullopt;
    if (cuts.size() == 2 && cuts[0].from > cuts[1].from) std::swap(cuts[0], cuts[1]);
    size_t at = 0;
    for (const Cut& c : cuts) {
      scan.rest.append(data + at, c.from - at);
      scan.rest.append(c.replacement);
      at = c.to;
    }
    scan.rest.append(data + at, size - at);
    scan.start.resize(static_cast<size_t>(scan.maxId + 1));
    scan.length.resize(static_cast<size_t>(scan.maxId + 1));
    return scan;
  } catch (const Unsupported&) {
    return std::nullopt;
  }
}

std::string encodeTokens(const char* tokenBytes, const int32_t* start, const int32_t* length, size_t count, int64_t rows,
                         const std::vector<std::pair<int64_t, std::string>>& overrides) {
  std::vector<const std::string*> byId(static_cast<size_t>(std::max<int64_t>(rows, 0)), nullptr);
  size_t size = 0;
  for (const auto& [id, text] : overrides) {
    if (id >= 0 && id < rows) byId[static_cast<size_t>(id)] = &text;
    size += text.size();
  }
  for (size_t id = 0; id < count; id++) size += start[id] >= 0 ? static_cast<size_t>(length[id]) : 0;
  std::string out;
  out.reserve(size + static_cast<size_t>(std::max<int64_t>(rows, 0)) * 24);
  char pad[24];
  for (int64_t id = 0; id < rows; id++) {
    const std::string* text = byId[static_cast<size_t>(id)];
    if (text) {
      appendU64(out, text->size());
      out.append(*text);
    } else if (static_cast<size_t>(id) < count && start[id] >= 0) {
      appendU64(out, static_cast<uint64_t>(length[id]));
      out.append(tokenBytes + start[id], static_cast<size_t>(length[id]));
    } else {
      const int n = std::snprintf(pad, sizeof pad, "[PAD%lld]", static_cast<long long>(id));
      appendU64(out, static_cast<uint64_t>(n));
      out.append(pad, static_cast<size_t>(n));
    }
  }
  return out;
}

}  // namespace litlora::tokenizerjson

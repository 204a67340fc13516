// The two large parts of a byte-level BPE tokenizer.json, model.vocab (~150k token → id) and model.merges (~150k
// pairs), read straight from the file's bytes into GGUF's string encoding (ts/gguf/tokenizer_json.ts gives the
// reasons and the contract): each key and merge decoded from JSON's escapes to UTF-8 (a lone surrogate as U+FFFD,
// as Node's encoder writes it), a merge pair's parts with their spaces as U+0120 joined by a space, and the rest of
// the file as JSON text with those two values replaced by {} and [] (JSON.parse reads it in TypeScript).
//
// What this reader cannot promise to read as JSON.parse would (a key or an id given twice, an id that is not a
// plain integer, a key spelt with escapes where the reader looks for "model", "vocab" or "merges", malformed JSON)
// gives nothing, and the caller reads the file with JSON.parse. The bytes must be valid UTF-8 (checked by the
// caller: Node's isUtf8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace litlora::tokenizerjson {

struct BpeScan {
  std::string rest;             // the file's text with model.vocab → {} and model.merges → []
  std::string tokenBytes;       // model.vocab's keys, decoded, one after another
  std::vector<int32_t> start;   // by id: offset into tokenBytes, -1 where no token has the id
  std::vector<int32_t> length;  // by id: byte length
  int64_t maxId = -1;
  std::string merges;           // GGUF strings (u64 byte length, bytes) one after another
  int64_t mergeCount = 0;
};

std::optional<BpeScan> scanBpe(const char* data, size_t size);

// GGUF's tokens array for ids [0, rows): `overrides` (UTF-8, by id: the added tokens) where it has the id, else the
// scanned token (tokenBytes, start, length as in BpeScan; ids past `count` have none), else "[PAD{id}]".
std::string encodeTokens(const char* tokenBytes, const int32_t* start, const int32_t* length, size_t count, int64_t rows,
                         const std::vector<std::pair<int64_t, std::string>>& overrides);

}  // namespace litlora::tokenizerjson

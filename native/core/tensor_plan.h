// Rewriting tensor files by a plan, streamed: how Hugging Face checkpoints become litgpt's lit_model.pth and back
// (ts/interop/). Each output tensor is the concatenation, along dim 0, of row ranges of input tensors (a whole
// tensor, a fused QKV made of q/k/v, one of q/k/v cut out of a fused QKV, per-head interleavings), in an output
// dtype, written to a .pth or a .safetensors:
//
//   for each output tensor, in the writer's order:
//     for each piece: read its rows (pread from the page cache into small pooled buffers when the file stores the
//       tensor's bytes contiguously, as they are or converted to the output dtype / quantized buffer by buffer;
//       else blocks of ~4 MB of the mapped tensor, converted, each block's pages dropped from this process after
//       its write), so resident memory never holds a whole tensor
//   the reading (and the .pth CRC-32) runs on a second thread, a few buffers ahead of the writes on the calling
//   thread (core/bounded_queue.h), so that both cores work
//   finish(): the writer fsyncs and renames over the target (atomic)
//
// An output may instead alias an earlier one (.pth only): the two names share one storage, as torch.save writes
// litgpt's tied `lm_head.weight` = `transformer.wte.weight`.
//
// A .gguf (ts/gguf/): the caller's header (magic, metadata, tensor infos, padded to 32 bytes), then each output's
// bytes as its ggml type (f32, f16, bf16, or Q8_0 quantized on the reading thread, core/q8_0.h), after llama.cpp's
// rotary row permutation where asked, each padded to 32 bytes; or bytes the caller computed (`data`). The whole
// file's size is allocated on the disk first (a disk too small fails before any tensor is written).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace litlora::tensorplan {

struct Piece {
  size_t source = 0;   // index into Plan::sources
  std::string name;    // tensor name in that file
  int64_t rowStart = 0;
  int64_t rows = -1;   // -1: to the end of dim 0
};

struct Output {
  std::string name;
  std::vector<Piece> pieces;                 // concatenated along dim 0; trailing dims must agree
  std::optional<at::ScalarType> dtype;       // default: the pieces' (which must then agree)
  std::optional<std::vector<int64_t>> shape; // a reshape of the concatenation (same element count)
  std::string aliasOf;                       // non-empty: share this earlier output's storage (.pth only)
  // .gguf only:
  std::string ggml;                          // "f32" | "f16" | "bf16" | "q8_0": the tensor's type in the file
  int64_t permuteHeads = 0;                  // > 0: convert_hf_to_gguf's LlamaModel.permute with this many heads
  double addend = 0;                         // added in the pieces' dtype before any conversion (Gemma's norms + 1)
  std::string data;                          // non-empty: these bytes, as they are (no pieces)
};

constexpr uint64_t kGgufAlignment = 32;

struct Plan {
  std::vector<std::string> sources;  // .pth / .bin / .safetensors files
  std::vector<Output> outputs;
  std::string outPath;
  std::string format = "pth";        // "pth" | "safetensors" | "gguf"
  std::string wrap;                  // .pth: "model" writes {"model": {...}}
  std::vector<std::pair<std::string, std::string>> metadata;  // .safetensors __metadata__
  std::string header;                // .gguf: everything before the tensor data, a multiple of kGgufAlignment
};

struct Stats {
  int64_t tensors = 0;
  uint64_t bytesWritten = 0;  // tensor bytes (aliases count once)
  double seconds = 0;
};

// progress(done, total) after each output tensor. Errors name the input file and tensor: a missing tensor
// (ERR_CHECKPOINT_FORMAT), rows out of range or trailing dims that disagree (ERR_SHAPE), a non-floating tensor
// converted to a floating dtype (ERR_DTYPE).
Stats write(const Plan& plan, const std::function<void(int64_t, int64_t)>& progress = {});

// True when the tensors `a` and `b` of the file at `path` have the same dtype, shape and bytes (a tied head and
// embedding), compared block by block without holding either whole. ERR_CHECKPOINT_FORMAT for a missing name.
bool sameBytes(const std::string& path, const std::string& a, const std::string& b);

}  // namespace litlora::tensorplan

// merge_lora, streamed: base lit_model.pth + lit_model.pth.lora → a merged lit_model.pth, one tensor at a time.
//
//   for each tensor of the base file, in file order:
//     read it (a private memory map of just its bytes; only read, so its pages stay the page cache's)
//     a LoRA layer's weight: W + scaling·place(B·A), rounded once, computed in row blocks of ~256 K elements
//       into reused buffers (gpt::mergeLoraRows → lora::mergeRows, the arithmetic of lora::merge that
//       Gpt::mergedStateDict uses, so the file equals model.mergedStateDict() bit for bit; fused QKV rows
//       placed by litgpt's lora_ind, i.e. its zero_pad)
//     hand it, or each block, to a writer thread that appends it to the .pth (CRC, copy into the page cache,
//       writeback started as it goes) while this thread merges the next block
//   the writer's finish() writes data.pkl, fsyncs, and renames the temp file over the target (atomic)
//
// Peak memory ≈ the adapter + three output blocks + one ΔW block — never the model, nor one whole weight.
// The output keeps the base file's names, order and (by default) dtypes, so a plain litgpt GPT loads it with
// strict=True. Files with litgpt ≤ 0.5.4's `attn.attn` names are refused here (ERR_CHECKPOINT_FORMAT); the TS
// side merges those through the model instead.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "gpt_config.h"

namespace litlora::merge {

struct MergeOptions {
  std::string basePath;   // the base lit_model.pth
  std::string loraPath;   // lit_model.pth.lora ({"model": {...}} or flat)
  std::string outPath;    // the merged lit_model.pth to write
  gpt::GptConfig config;  // model_config.yaml + the run's lora_* settings
  std::optional<at::ScalarType> outDtype;  // every floating tensor in this dtype; default: each as in the base
};

struct MergeStats {
  int64_t tensors = 0;        // written
  int64_t mergedLayers = 0;   // LoRA layers folded in
  uint64_t bytesWritten = 0;  // tensor bytes
  double seconds = 0;
};

// progress(done, total) is called after each tensor is written, on the merge's writer thread.
MergeStats mergeLoraFiles(const MergeOptions& options, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace litlora::merge

// Text generation with a Gpt: the decode loop over the model's KV cache and litgpt's sampling
// (litgpt/generate/base.py `sample`: top-k, then temperature, then top-p, then a multinomial draw).
//
//   generate(model, promptIds, options, onToken, &cancelled)
//     prefill: one forward over the prompt at positions 0…P−1 (last position's logits only)
//     decode:  sample → emit → forward of that one token at position P+i, until max_new_tokens,
//              a stop sequence, the block size, or cancellation
//
// Stop sequences (EOS and the prompt style's stop tokens) are never emitted: a token that could still be the
// start of one is held back until it no longer can, exactly as litgpt's chat holds back its stop tokens.
// Sampling runs on the CPU in float32 from one seeded generator, so a seed gives the same text on every device.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gpt.h"

namespace litlora::generate {

struct SamplingOptions {
  double temperature = 0.0;           // 0: greedy (argmax); > 0 divides the logits before the draw
  std::optional<int64_t> topK;        // keep the k largest logits (litgpt's top_k)
  double topP = 1.0;                  // nucleus: keep the smallest set whose probability exceeds top_p
  uint64_t seed = 0;                  // the draw's generator seed (only used when temperature > 0)
  int64_t maxNewTokens = 50;
  std::vector<std::vector<int64_t>> stopSequences;  // e.g. {{eos}}, {{eos}, {"<|im_end|>"}} …
  std::optional<int64_t> vocabLimit;  // ids ≥ this (the padded part of the vocabulary) are never drawn
};

enum class StopReason { MaxNewTokens, StopSequence, BlockSize, Cancelled };
const char* stopReasonName(StopReason reason);

struct Result {
  std::vector<int64_t> tokens;  // what was emitted (no stop sequence)
  StopReason reason = StopReason::MaxNewTokens;
  int64_t promptTokens = 0;
  int64_t generatedTokens = 0;   // model steps taken after the prompt (stop tokens included)
  double prefillSeconds = 0;     // the prompt's forward and the first sample
  int64_t prefillRows = 1;       // prompts in that forward (the batched decoder prefills prompts that arrive together)
  double decodeSeconds = 0;      // every later step
};

// The id litgpt's sample() picks from one position's logits (shape (V) or (1, 1, V)).
int64_t sample(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

// Runs the loop; onToken is called (on the calling thread) for every emitted id, in order. `cancelled`, when
// given, is polled before each step. The model's KV cache is (re)allocated for prompt + max_new_tokens.
Result generate(gpt::Gpt& model, const std::vector<int64_t>& prompt, const SamplingOptions& options,
                const std::function<void(int64_t)>& onToken, const std::atomic<bool>* cancelled = nullptr);

// Length of the longest suffix of `tokens` that is a proper prefix of some stop sequence: those tokens may
// still turn into a stop sequence, so they are held back.
size_t heldBack(const std::vector<int64_t>& tokens, const std::vector<std::vector<int64_t>>& stops);
// The length of the stop sequence that `tokens` ends with, or 0.
size_t endsWithStop(const std::vector<int64_t>& tokens, const std::vector<std::vector<int64_t>>& stops);

// Validates options against the model (ERR_RANGE / ERR_ARG with what was expected).
void checkOptions(const gpt::Gpt& model, int64_t promptLength, const SamplingOptions& options);

}  // namespace litlora::generate

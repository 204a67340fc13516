// Attention for one new token per sequence while decoding (T = 1 against a KV cache), on the CPU in float32: the
// step both decoders take every token (core/generate's single-request loop and core/batch_decode's rows).
//
// at::scaled_dot_product_attention costs, at one query, far more than its arithmetic: per sequence and layer it
// dispatches, allocates and forks the intra-op threads for a few thousand multiply-adds (16 rows of a
// pythia-70m-shaped model: 96 forks per step, ~10% of the batched decoder's time in MKL's gemv and as much again
// in the threads' barriers). This computes every (sequence, head) pair of a step in one parallel loop, each pair
// whole on one thread, so a sequence gets the same bits whatever else is in the batch and however the pairs are
// split between threads; both decoders use it, so batching never changes a decode.
//
// The arithmetic is litgpt's: scores q·k·scale (attention_scores_scalar or head_size), Gemma 2's soft-capping
// tanh(q·k·scale / cap)·cap, a sliding window keeping the last `window` positions, softmax in float32, then the
// probabilities' sum of v. Results differ from SDPA's by float32 rounding only.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace litlora::decode_attention {

// One sequence's keys and values (1, n_query_groups, L, head_size) for positions first … first + L − 1, the last
// being the new token's.
struct Keys {
  at::Tensor k, v;
  int64_t first = 0;
};

struct Options {
  double scale = 1;
  std::optional<double> softcap;
  int64_t window = 0;   // > 0: only positions p with query − p < window
  int64_t qPerKv = 1;   // query heads per key/value group (group = head / qPerKv, litgpt's repeat_interleave)
};

// True when `attend` takes this step: q (B, nh, 1, hs) float32 on the CPU without autograd, each sequence's keys
// and values float32 with the same head size.
bool applies(const at::Tensor& q, const std::vector<Keys>& rows);

// q (B, nh, 1, hs), rows[b] the keys of sequence b → (B, nh, 1, hs).
at::Tensor attend(const at::Tensor& q, const std::vector<Keys>& rows, const Options& options);

}  // namespace litlora::decode_attention

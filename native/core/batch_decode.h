// Continuous batching: one decode step for many requests at once (Orca-style iteration-level scheduling).
//
//   Engine engine(model, maxRows);
//   engine.admit(requests);  // prefill each prompt into a row of its own (its own KV cache), several per forward
//   while (engine.step()) {  // sample every row, end the finished ones, then one forward over the rest
//     … admit more between steps …
//   }
//
// Each row keeps what generate() (generate.h) keeps for one request: its sampling options, its own seeded
// generator, its stop sequences and held-back tokens, and its position; it follows the same steps in the same
// order, so a row emits what the same request emits alone (greedy: token for token; sampled: the same draws),
// up to the float32 rounding of a many-row matrix product. A row may name a runtime adapter (Gpt::addAdapter):
// its LoRA delta is added to that row only (Gpt::forwardRows).
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include "generate.h"
#include "gpt.h"

namespace litlora::batch_decode {

struct Request {
  std::vector<int64_t> prompt;
  generate::SamplingOptions options;
  int64_t adapter = -1;  // Gpt::adapterIndex, or −1 for the model alone
  std::shared_ptr<std::atomic<bool>> cancelled;
  // Called on the engine's thread: every emitted id in order, then exactly one of onDone / onError.
  std::function<void(int64_t)> onToken;
  std::function<void(const generate::Result&)> onDone;
  std::function<void(std::exception_ptr)> onError;
};

class Engine {
 public:
  Engine(gpt::Gpt& model, int64_t maxRows);

  // Takes requests into free rows and runs their prompts' forwards; a request that fails there (bad options,
  // out of memory) gets its onError and takes no row. Needs freeRows() ≥ requests.size().
  // Prompts are prefilled together, right-padded to the longest of a group (one forward reads every weight once
  // for the group, where one forward per prompt read them per prompt: 16 prompts of 20–32 tokens arriving at once
  // on a pythia-70m-shaped model no longer wait for 16 forwards in turn). A group holds at most kPrefillTokens
  // padded tokens, at least half of them the prompts' own; a sliding-window model pads only within its window
  // (a ring of fewer slots than the padded length would lose the row's own tokens to its padding).
  void admit(std::vector<Request> requests);
  void admit(Request request);

  static constexpr int64_t kPrefillTokens = 4096;
  // One iteration: every row samples its next token (and ends when it is done), then the rows that go on run
  // one forward together. Returns whether any row is left. An error in the shared forward ends every row with it.
  bool step();

  int64_t rows() const { return static_cast<int64_t>(rows_.size()); }
  int64_t freeRows() const { return maxRows_ - rows(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct RowState {
    Request request;
    gpt::RowCache cache;
    at::Generator generator;
    std::vector<int64_t> generated;
    size_t emitted = 0;
    generate::Result result;
    int64_t position = 0;
    at::Tensor logits;  // the row's next-token logits (V)
    bool first = true;
    Clock::time_point start;
  };
  // A row for the request with its options checked and its generator seeded; null when it ended already
  // (cancelled while it waited, or bad options: its onDone / onError has been called).
  std::unique_ptr<RowState> prepare(Request request);
  // One forward over rows [first, last) of `ready` (prompts of at most `padded` tokens), which then join rows_;
  // if a group's forward fails, each of its rows is prefilled alone.
  void prefill(std::vector<std::unique_ptr<RowState>>& ready, size_t first, size_t last, int64_t padded);
  // Samples one token; returns true when the row is finished (its onDone has been called).
  bool advance(RowState& row);
  void finish(RowState& row);

  gpt::Gpt& model_;
  int64_t maxRows_;
  std::vector<std::unique_ptr<RowState>> rows_;
};

}  // namespace litlora::batch_decode

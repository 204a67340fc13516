#include "batch_decode.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "error.h"

namespace litlora::batch_decode {

namespace {
double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

Engine::Engine(gpt::Gpt& model, int64_t maxRows) : model_(model), maxRows_(std::max<int64_t>(1, maxRows)) {}

void Engine::admit(Request request) {
  std::vector<Request> one;
  one.push_back(std::move(request));
  admit(std::move(one));
}

void Engine::admit(std::vector<Request> requests) {
  LITLORA_CHECK(static_cast<int64_t>(requests.size()) <= freeRows(), "ERR_ARG",
                "batch decode: " << requests.size() << " requests for " << freeRows() << " free rows");
  std::vector<std::unique_ptr<RowState>> ready;
  for (Request& request : requests)
    if (auto row = prepare(std::move(request))) ready.push_back(std::move(row));
  // Longest first, so that each group pads to its first prompt.
  std::stable_sort(ready.begin(), ready.end(), [](const auto& a, const auto& b) { return a->request.prompt.size() > b->request.prompt.size(); });
  const int64_t window = model_.config().slidingWindowSize;
  for (size_t first = 0; first < ready.size();) {
    const int64_t padded = static_cast<int64_t>(ready[first]->request.prompt.size());
    int64_t own = padded;
    size_t last = first + 1;
    if (window <= 0 || padded <= window) {
      for (; last < ready.size(); ++last) {
        const int64_t length = static_cast<int64_t>(ready[last]->request.prompt.size());
        const int64_t count = static_cast<int64_t>(last - first) + 1;
        if (count * padded > kPrefillTokens || 2 * (own + length) < count * padded) break;
        own += length;
      }
    }
    prefill(ready, first, last, padded);
    first = last;
  }
}

std::unique_ptr<Engine::RowState> Engine::prepare(Request request) {
  auto row = std::make_unique<RowState>();
  row->request = std::move(request);
  row->start = Clock::now();
  const Request& r = row->request;
  try {
    const int64_t promptLength = static_cast<int64_t>(r.prompt.size());
    row->result.promptTokens = promptLength;
    generate::checkOptions(model_, promptLength, r.options);
    if (r.cancelled && r.cancelled->load()) {  // cancelled while it waited: no work for it
      row->result.reason = generate::StopReason::Cancelled;
      row->result.prefillRows = 0;  // no prompt forward ran, as GenerationStats says of a request cancelled before it
      finish(*row);
      return nullptr;
    }
    row->generator = at::make_generator<at::CPUGeneratorImpl>(r.options.seed);
  } catch (...) {
    if (r.onError) r.onError(std::current_exception());
    return nullptr;
  }
  return row;
}

void Engine::prefill(std::vector<std::unique_ptr<RowState>>& ready, size_t first, size_t last, int64_t padded) {
  at::NoGradGuard noGrad;
  const int64_t G = static_cast<int64_t>(last - first);
  try {
    at::Tensor tokens = at::zeros({G, padded}, at::kLong);  // padding: token 0, which only padding attends to
    std::vector<gpt::Row> views(G);
    std::vector<int64_t> lengths(G);
    const int64_t blockSize = model_.config().blockSize;
    for (int64_t g = 0; g < G; ++g) {
      RowState& row = *ready[first + g];
      const Request& r = row.request;
      const int64_t promptLength = static_cast<int64_t>(r.prompt.size());
      // The cache generate() allocates (the prompt, then every sampled token but the last), and room for the padding.
      const int64_t cacheLength = std::min(blockSize, promptLength + r.options.maxNewTokens - 1);
      row.cache = model_.newRowCache(std::max({cacheLength, promptLength, padded}));
      tokens[g].narrow(0, 0, promptLength).copy_(at::tensor(r.prompt, at::kLong));
      views[g] = {&row.cache, 0, r.adapter};
      lengths[g] = promptLength;
    }
    at::Tensor logits = model_.forwardRows(tokens, views, /*lastOnly=*/true, lengths).view({G, -1});
    for (int64_t g = 0; g < G; ++g) {
      RowState& row = *ready[first + g];
      row.logits = logits.select(0, g);
      row.position = lengths[g];
      row.result.prefillRows = G;
    }
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    for (size_t i = first; i < last; ++i) ready[i]->cache = gpt::RowCache{};
    if (G > 1) {  // each alone, so that only the request that fails (out of memory, say) gets the error
      for (size_t i = first; i < last; ++i) prefill(ready, i, i + 1, static_cast<int64_t>(ready[i]->request.prompt.size()));
      return;
    }
    if (ready[first]->request.onError) ready[first]->request.onError(error);
    return;
  }
  for (size_t i = first; i < last; ++i) rows_.push_back(std::move(ready[i]));
}

bool Engine::advance(RowState& row) {
  const generate::SamplingOptions& o = row.request.options;
  if (row.request.cancelled && row.request.cancelled->load()) {
    row.result.reason = generate::StopReason::Cancelled;
    finish(row);
    return true;
  }
  const int64_t id = generate::sample(row.logits, o, row.generator);
  row.generated.push_back(id);
  row.result.generatedTokens++;
  if (row.first) {
    row.result.prefillSeconds = secondsSince(row.start);
    row.start = Clock::now();
    row.first = false;
  }
  auto emitUpTo = [&](size_t end) {
    for (; row.emitted < end; ++row.emitted) {
      row.result.tokens.push_back(row.generated[row.emitted]);
      row.request.onToken(row.generated[row.emitted]);
    }
  };
  if (size_t stopLength = generate::endsWithStop(row.generated, o.stopSequences)) {
    emitUpTo(std::max(row.emitted, row.generated.size() - stopLength));
    row.result.reason = generate::StopReason::StopSequence;
    finish(row);
    return true;
  }
  emitUpTo(row.generated.size() - generate::heldBack(row.generated, o.stopSequences));
  if (row.result.generatedTokens >= o.maxNewTokens || row.position >= model_.config().blockSize) {
    row.result.reason = row.result.generatedTokens >= o.maxNewTokens ? generate::StopReason::MaxNewTokens
                                                                     : generate::StopReason::BlockSize;
    // A held-back prefix that never became a stop sequence is text after all.
    emitUpTo(row.generated.size());
    finish(row);
    return true;
  }
  return false;
}

void Engine::finish(RowState& row) {
  if (!row.first) row.result.decodeSeconds = secondsSince(row.start);
  else row.result.prefillSeconds = secondsSince(row.start);
  row.cache = gpt::RowCache{};  // its memory goes back before the caller hears "done"
  if (row.request.onDone) row.request.onDone(row.result);
}

bool Engine::step() {
  at::NoGradGuard noGrad;
  std::vector<std::unique_ptr<RowState>> going;
  going.reserve(rows_.size());
  for (auto& row : rows_) {
    bool done;
    try {
      done = advance(*row);
    } catch (...) {
      if (row->request.onError) row->request.onError(std::current_exception());
      done = true;
    }
    if (!done) going.push_back(std::move(row));
  }
  rows_ = std::move(going);
  if (rows_.empty()) return false;

  const int64_t B = rows();
  std::vector<int64_t> next(B);
  std::vector<gpt::Row> views(B);
  for (int64_t b = 0; b < B; ++b) {
    next[b] = rows_[b]->generated.back();
    views[b] = {&rows_[b]->cache, rows_[b]->position, rows_[b]->request.adapter};
  }
  try {
    at::Tensor logits = model_.forwardRows(at::tensor(next, at::kLong).view({B, 1}), views, /*lastOnly=*/true).view({B, -1});
    for (int64_t b = 0; b < B; ++b) {
      rows_[b]->logits = logits.select(0, b);
      rows_[b]->position++;
    }
  } catch (...) {
    auto error = std::current_exception();
    for (auto& row : rows_)
      if (row->request.onError) row->request.onError(error);
    rows_.clear();
    return false;
  }
  return true;
}

}  // namespace litlora::batch_decode

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
  LITLORA_CHECK(freeRows() > 0, "ERR_ARG", "batch decode: every row is taken");
  auto row = std::make_unique<RowState>();
  row->request = std::move(request);
  row->start = Clock::now();
  const Request& r = row->request;
  try {
    at::NoGradGuard noGrad;
    const int64_t promptLength = static_cast<int64_t>(r.prompt.size());
    row->result.promptTokens = promptLength;
    generate::checkOptions(model_, promptLength, r.options);
    if (r.cancelled && r.cancelled->load()) {  // cancelled while it waited: no work for it
      row->result.reason = generate::StopReason::Cancelled;
      finish(*row);
      return;
    }
    // The cache generate() allocates: the prompt, then every sampled token but the last.
    const int64_t blockSize = model_.config().blockSize;
    const int64_t cacheLength = std::min(blockSize, promptLength + r.options.maxNewTokens - 1);
    row->cache = model_.newRowCache(std::max(cacheLength, promptLength));
    row->generator = at::make_generator<at::CPUGeneratorImpl>(r.options.seed);
    at::Tensor prompt = at::tensor(r.prompt, at::kLong).view({1, promptLength});
    std::vector<gpt::Row> one{{&row->cache, 0, r.adapter}};
    row->logits = model_.forwardRows(prompt, one, /*lastOnly=*/true).reshape({-1});
    row->position = promptLength;
  } catch (...) {
    row->cache = gpt::RowCache{};
    if (r.onError) r.onError(std::current_exception());
    return;
  }
  rows_.push_back(std::move(row));
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

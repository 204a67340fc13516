#include "generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "error.h"

namespace litlora::generate {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// litgpt's sample_top_p: sort ascending, drop the low tail whose cumulative probability is ≤ 1 − top_p,
// always keep the most probable token.
at::Tensor topPFilter(const at::Tensor& logits, double topP) {
  auto [sorted, indices] = at::sort(logits, /*dim=*/-1, /*descending=*/false);
  at::Tensor cumulative = at::softmax(sorted, -1).cumsum(-1);
  at::Tensor remove = cumulative.le(1.0 - topP);
  remove.narrow(0, remove.size(0) - 1, 1).fill_(false);
  at::Tensor removeAt = remove.scatter(0, indices, remove);
  return logits.masked_fill(removeAt, -std::numeric_limits<float>::infinity());
}

}  // namespace

size_t heldBack(const std::vector<int64_t>& tokens, const std::vector<std::vector<int64_t>>& stops) {
  size_t best = 0;
  for (const auto& stop : stops) {
    for (size_t len = std::min(stop.size() - 1, tokens.size()); len > best; --len) {
      if (std::equal(stop.begin(), stop.begin() + len, tokens.end() - len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

size_t endsWithStop(const std::vector<int64_t>& tokens, const std::vector<std::vector<int64_t>>& stops) {
  for (const auto& stop : stops) {
    if (!stop.empty() && stop.size() <= tokens.size() && std::equal(stop.begin(), stop.end(), tokens.end() - stop.size()))
      return stop.size();
  }
  return 0;
}

const char* stopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::MaxNewTokens: return "max_new_tokens";
    case StopReason::StopSequence: return "stop";
    case StopReason::BlockSize: return "block_size";
    case StopReason::Cancelled: return "cancelled";
  }
  return "unknown";
}

void checkOptions(const gpt::Gpt& model, int64_t promptLength, const SamplingOptions& o) {
  const int64_t blockSize = model.config().blockSize;
  LITLORA_CHECK(promptLength >= 1, "ERR_ARG", "generate: the prompt has no tokens; give at least one (e.g. BOS)");
  LITLORA_CHECK(promptLength < blockSize, "ERR_RANGE",
                "generate: the prompt has " << promptLength << " tokens, but the model's block_size is " << blockSize
                                            << "; shorten the prompt to at most " << blockSize - 1 << " tokens");
  LITLORA_CHECK(o.maxNewTokens >= 1, "ERR_RANGE", "generate: max_new_tokens must be ≥ 1, got " << o.maxNewTokens);
  LITLORA_CHECK(o.temperature >= 0, "ERR_RANGE", "generate: temperature must be ≥ 0 (0 = greedy), got " << o.temperature);
  LITLORA_CHECK(o.topP >= 0 && o.topP <= 1, "ERR_RANGE", "generate: top_p must be in [0, 1], got " << o.topP);
  LITLORA_CHECK(!o.topK || *o.topK >= 1, "ERR_RANGE", "generate: top_k must be ≥ 1, got " << o.topK.value_or(0));
  LITLORA_CHECK(!o.vocabLimit || (*o.vocabLimit >= 1 && *o.vocabLimit <= model.config().paddedVocabSize), "ERR_RANGE",
                "generate: vocabLimit must be in [1, " << model.config().paddedVocabSize << "], got " << o.vocabLimit.value_or(0));
  for (const auto& stop : o.stopSequences) LITLORA_CHECK(!stop.empty(), "ERR_ARG", "generate: a stop sequence is empty");
}

int64_t sample(const at::Tensor& logitsIn, const SamplingOptions& o, at::Generator& generator) {
  at::Tensor logits = logitsIn.reshape({-1}).to(at::kCPU, at::kFloat);
  if (o.vocabLimit && *o.vocabLimit < logits.size(0)) logits = logits.narrow(0, 0, *o.vocabLimit);
  if (o.topK && *o.topK < logits.size(0)) {
    auto [values, indices] = at::topk(logits, *o.topK);
    // A scatter, not a threshold, so that ties at the k-th value do not let more than k tokens through.
    logits = at::full_like(logits, -std::numeric_limits<float>::infinity()).scatter_(0, indices, values);
  }
  if (o.temperature <= 0) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  if (o.topP < 1.0) logits = topPFilter(logits, o.topP);
  at::Tensor probs = at::softmax(logits, -1);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

Result generate(gpt::Gpt& model, const std::vector<int64_t>& prompt, const SamplingOptions& o,
                const std::function<void(int64_t)>& onToken, const std::atomic<bool>* cancelled) {
  at::NoGradGuard noGrad;
  const int64_t promptLength = static_cast<int64_t>(prompt.size());
  checkOptions(model, promptLength, o);
  const int64_t blockSize = model.config().blockSize;
  // Positions forwarded: the prompt, then every sampled token but the last.
  const int64_t cacheLength = std::min(blockSize, promptLength + o.maxNewTokens - 1);
  model.setKvCache(1, std::max(cacheLength, promptLength));

  Result result;
  result.promptTokens = promptLength;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::vector<int64_t> generated;
  size_t emitted = 0;
  auto emitUpTo = [&](size_t end) {
    for (; emitted < end; ++emitted) {
      result.tokens.push_back(generated[emitted]);
      onToken(generated[emitted]);
    }
  };

  auto start = Clock::now();
  at::Tensor promptTensor = at::tensor(prompt, at::kLong).view({1, promptLength});
  at::Tensor logits = model.forward(promptTensor, /*inputPos=*/0, /*lastOnly=*/true);
  int64_t position = promptLength;
  bool first = true;
  while (true) {
    if (cancelled && cancelled->load()) {
      result.reason = StopReason::Cancelled;
      break;
    }
    const int64_t id = sample(logits, o, generator);
    generated.push_back(id);
    result.generatedTokens++;
    if (first) {
      result.prefillSeconds = secondsSince(start);
      start = Clock::now();
      first = false;
    }
    if (size_t stopLength = endsWithStop(generated, o.stopSequences)) {
      emitUpTo(std::max(emitted, generated.size() - stopLength));
      result.reason = StopReason::StopSequence;
      break;
    }
    emitUpTo(generated.size() - heldBack(generated, o.stopSequences));
    if (result.generatedTokens >= o.maxNewTokens) {
      result.reason = StopReason::MaxNewTokens;
      break;
    }
    if (position >= blockSize) {
      result.reason = StopReason::BlockSize;
      break;
    }
    logits = model.forward(at::full({1, 1}, id, at::kLong), position, /*lastOnly=*/true);
    position++;
  }
  // A held-back prefix that never became a stop sequence is text after all.
  if (result.reason != StopReason::StopSequence && result.reason != StopReason::Cancelled) emitUpTo(generated.size());
  if (!first) result.decodeSeconds = secondsSince(start);
  else result.prefillSeconds = secondsSince(start);
  return result;
}

}  // namespace litlora::generate

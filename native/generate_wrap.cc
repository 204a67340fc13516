#include "generate_wrap.h"

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "convert.h"
#include "core/error.h"
#include "core/generate.h"
#include "errors.h"
#include "event_channel.h"
#include "gpt_wrap.h"

namespace litlora {

namespace {

std::optional<double> numberOption(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return std::nullopt;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  LITLORA_CHECK(v.IsNumber(), "ERR_TYPE", "generate: option " << key << " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

}  // namespace

generate::SamplingOptions parseSamplingOptions(const Napi::Object& o) {
  generate::SamplingOptions s;
  if (auto v = numberOption(o, "temperature")) s.temperature = *v;
  if (auto v = numberOption(o, "topK")) s.topK = static_cast<int64_t>(*v);
  if (auto v = numberOption(o, "topP")) s.topP = *v;
  if (auto v = numberOption(o, "seed")) s.seed = static_cast<uint64_t>(*v);
  if (auto v = numberOption(o, "maxNewTokens")) s.maxNewTokens = static_cast<int64_t>(*v);
  if (auto v = numberOption(o, "vocabLimit")) s.vocabLimit = static_cast<int64_t>(*v);
  if (o.Has("stopSequences") && o.Get("stopSequences").IsArray()) {
    Napi::Array list = o.Get("stopSequences").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value item = list.Get(i);
      LITLORA_CHECK(item.IsArray(), "ERR_TYPE", "generate: stopSequences[" << i << "] must be an array of token ids");
      Napi::Array ids = item.As<Napi::Array>();
      std::vector<int64_t> seq;
      for (uint32_t j = 0; j < ids.Length(); ++j) seq.push_back(ids.Get(j).As<Napi::Number>().Int64Value());
      s.stopSequences.push_back(std::move(seq));
    }
  }
  return s;
}

namespace {

class GenerateWorker : public Napi::AsyncWorker {
 public:
  GenerateWorker(Napi::Env env, std::shared_ptr<gpt::Gpt> model, std::shared_ptr<SerialExecutor> executor,
                 std::shared_ptr<GptWrap::Lease> lease, std::vector<int64_t> prompt, generate::SamplingOptions options,
                 std::unique_ptr<EventChannel> events, std::shared_ptr<std::atomic<bool>> cancelled)
      : Napi::AsyncWorker(env, "litlora.generate"), model_(std::move(model)), executor_(std::move(executor)),
        lease_(std::move(lease)), prompt_(std::move(prompt)), options_(std::move(options)), events_(std::move(events)),
        cancelled_(std::move(cancelled)) {}

  void Execute() override {
    generate::Result result;
    std::optional<ErrorInfo> error;
    try {
      // On the model's own thread, like every other operation on it (see core/serial_executor.h).
      result = executor_->run([&] {
        return generate::generate(*model_, prompt_, options_, [this](int64_t id) { events_->token(id); }, cancelled_.get());
      });
    } catch (...) {
      error = describeException(std::current_exception(), "generating tokens");
    }
    lease_.reset();  // the model is free again before JS hears "done"
    if (error) events_->error(*error);
    else events_->done(result);
  }

  void OnOK() override {}

 private:
  std::shared_ptr<gpt::Gpt> model_;
  std::shared_ptr<SerialExecutor> executor_;
  std::shared_ptr<GptWrap::Lease> lease_;
  std::vector<int64_t> prompt_;
  generate::SamplingOptions options_;
  std::unique_ptr<EventChannel> events_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

// generate(nativeGpt, promptIds, options, onEvent(kind, value)) → { cancel() }
// kind: 'token' (an id), then exactly one of 'done' ({reason, promptTokens, …}) or 'error' (an Error with .code).
Napi::Value generateEntry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "generating tokens", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 4 && info[1].IsTypedArray() && info[2].IsObject() && info[3].IsFunction(), "ERR_TYPE",
                  "generate: expected (model, promptIds: Int32Array, options, onEvent)");
    GptWrap* wrap = GptWrap::fromValue(info[0], "model");
    auto model = wrap->model("generate");
    Napi::TypedArray ids = info[1].As<Napi::TypedArray>();
    at::Tensor promptTensor = tensorFromTypedArray(ids, {static_cast<int64_t>(ids.ElementLength())}, at::kLong, "promptIds");
    std::vector<int64_t> prompt(promptTensor.data_ptr<int64_t>(), promptTensor.data_ptr<int64_t>() + promptTensor.numel());
    generate::SamplingOptions options = parseSamplingOptions(info[2].As<Napi::Object>());
    generate::checkOptions(*model, static_cast<int64_t>(prompt.size()), options);
    for (int64_t id : prompt)
      LITLORA_CHECK(id >= 0 && id < model->config().paddedVocabSize, "ERR_RANGE",
                    "generate: prompt id " << id << " is outside [0, " << model->config().paddedVocabSize << ")");
    auto lease = wrap->lease("generate");
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    auto events = std::make_unique<EventChannel>(env, info[3].As<Napi::Function>(), "litlora.generate.events");
    auto* worker = new GenerateWorker(env, model, wrap->executor(), lease, std::move(prompt), std::move(options), std::move(events), cancelled);
    worker->Queue();
    return cancelHandle(env, cancelled);
  });
}

}  // namespace

void initGenerate(Napi::Env env, Napi::Object exports) { exports.Set("generate", Napi::Function::New(env, generateEntry, "generate")); }

}  // namespace litlora

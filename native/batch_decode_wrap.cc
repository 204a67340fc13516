#include "batch_decode_wrap.h"

#include <atomic>
#include <optional>
#include <string>

#include "convert.h"
#include "decode_host.h"
#include "core/error.h"
#include "errors.h"
#include "event_channel.h"
#include "generate_wrap.h"
#include "gpt_wrap.h"

namespace litlora {

namespace {

class DecodeSession : public Napi::AsyncWorker {
 public:
  DecodeSession(Napi::Env env, std::shared_ptr<gpt::Gpt> model, std::shared_ptr<SerialExecutor> executor,
                std::shared_ptr<DecodeHost> host)
      : Napi::AsyncWorker(env, "litlora.decode"), model_(std::move(model)), executor_(std::move(executor)), host_(std::move(host)) {}

  void Execute() override {
    try {
      executor_->run([&] { host_->run(*model_); });
    } catch (...) {
      // run() hands every error to its requests; this is a last resort that keeps the model usable.
      std::lock_guard<std::mutex> lock(host_->mutex);
      host_->running = false;
      host_->lease.reset();
    }
  }
  void OnOK() override {}

 private:
  std::shared_ptr<gpt::Gpt> model_;
  std::shared_ptr<SerialExecutor> executor_;
  std::shared_ptr<DecodeHost> host_;
};

std::optional<std::string> adapterArg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  LITLORA_CHECK(v.IsString(), "ERR_TYPE", "decodeSubmit: adapter must be a string or null");
  return v.As<Napi::String>().Utf8Value();
}

// decodeSubmit(model, promptIds: Int32Array, options, adapter: string | null, onEvent) → { cancel() }
Napi::Value decodeSubmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "generating tokens", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 5 && info[1].IsTypedArray() && info[2].IsObject() && info[4].IsFunction(), "ERR_TYPE",
                  "decodeSubmit: expected (model, promptIds: Int32Array, options, adapter, onEvent)");
    GptWrap* wrap = GptWrap::fromValue(info[0], "model");
    auto model = wrap->model("generate");
    Napi::TypedArray ids = info[1].As<Napi::TypedArray>();
    at::Tensor promptTensor = tensorFromTypedArray(ids, {static_cast<int64_t>(ids.ElementLength())}, at::kLong, "promptIds");
    batch_decode::Request request;
    request.prompt.assign(promptTensor.data_ptr<int64_t>(), promptTensor.data_ptr<int64_t>() + promptTensor.numel());
    request.options = parseSamplingOptions(info[2].As<Napi::Object>());
    generate::checkOptions(*model, static_cast<int64_t>(request.prompt.size()), request.options);
    for (int64_t id : request.prompt)
      LITLORA_CHECK(id >= 0 && id < model->config().paddedVocabSize, "ERR_RANGE",
                    "generate: prompt id " << id << " is outside [0, " << model->config().paddedVocabSize << ")");
    if (auto name = adapterArg(info[3])) {
      auto index = model->adapterIndex(*name);
      std::string known;
      for (const std::string& n : model->adapterNames()) known += (known.empty() ? "" : ", ") + n;
      LITLORA_CHECK(index, "ERR_ADAPTER_NOT_FOUND",
                    "generate: no adapter named '" << *name << "' is loaded on this model (loaded: "
                                                   << (known.empty() ? "none" : known) << "); add it with model.adapters.add(name, dir)");
      request.adapter = *index;
    }
    auto host = wrap->decodeHost();
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    request.cancelled = cancelled;
    bool start = false;
    std::lock_guard<std::mutex> lock(host->mutex);
    if (!host->running) {
      host->lease = wrap->lease("generate");  // ERR_BUSY: another operation runs (ts/model/scheduler.ts prevents it)
      host->running = true;
      start = true;
    }
    // A request's own channel, released after its last event.
    auto channel = std::make_shared<EventChannel>(env, info[4].As<Napi::Function>(), "litlora.decode.events");
    request.onToken = [channel](int64_t id) { channel->token(id); };
    DecodeHost* h = host.get();  // the session (which calls these) holds the host
    request.onDone = [channel, h](const generate::Result& r) { h->outbox.push_back([channel, r] { channel->done(r); }); };
    request.onError = [channel, h](std::exception_ptr error) {
      ErrorInfo info = describeException(error, "generating tokens");
      h->outbox.push_back([channel, info] { channel->error(info); });
    };
    host->pending.push_back(std::move(request));
    if (start) (new DecodeSession(env, model, wrap->executor(), host))->Queue();
    return cancelHandle(env, cancelled);
  });
}

}  // namespace

void initBatchDecode(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeSubmit", Napi::Function::New(env, decodeSubmit, "decodeSubmit"));
}

}  // namespace litlora

#include "generate_wrap.h"

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "convert.h"
#include "core/error.h"
#include "core/generate.h"
#include "errors.h"
#include "gpt_wrap.h"

namespace litlora {

namespace {

// One message from the worker to JS; the thread-safe function's queue keeps them in order, so "done" or
// "error" always arrives after the last token.
struct Event {
  enum class Kind { Token, Done, Error } kind = Kind::Token;
  int64_t token = 0;
  generate::Result result;
  ErrorInfo error;
};

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

Napi::Object generationResultToJs(Napi::Env env, const generate::Result& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("reason", generate::stopReasonName(r.reason));
  out.Set("promptTokens", static_cast<double>(r.promptTokens));
  out.Set("generatedTokens", static_cast<double>(r.generatedTokens));
  out.Set("emittedTokens", static_cast<double>(r.tokens.size()));
  out.Set("prefillSeconds", r.prefillSeconds);
  out.Set("decodeSeconds", r.decodeSeconds);
  return out;
}

namespace {

class GenerateWorker : public Napi::AsyncWorker {
 public:
  GenerateWorker(Napi::Env env, std::shared_ptr<gpt::Gpt> model, std::shared_ptr<SerialExecutor> executor,
                 std::shared_ptr<GptWrap::Lease> lease, std::vector<int64_t> prompt, generate::SamplingOptions options,
                 Napi::ThreadSafeFunction events, std::shared_ptr<std::atomic<bool>> cancelled)
      : Napi::AsyncWorker(env, "litlora.generate"), model_(std::move(model)), executor_(std::move(executor)),
        lease_(std::move(lease)), prompt_(std::move(prompt)), options_(std::move(options)), events_(std::move(events)),
        cancelled_(std::move(cancelled)) {}

  void Execute() override {
    auto event = std::make_unique<Event>();
    try {
      // On the model's own thread, like every other operation on it (see core/serial_executor.h).
      event->result = executor_->run([&] {
        return generate::generate(*model_, prompt_, options_, [this](int64_t id) {
          auto e = new Event;
          e->token = id;
          send(e);
        }, cancelled_.get());
      });
      event->kind = Event::Kind::Done;
    } catch (...) {
      event->kind = Event::Kind::Error;
      event->error = describeException(std::current_exception(), "generating tokens");
    }
    lease_.reset();  // the model is free again before JS hears "done"
    send(event.release());
    events_.Release();
  }

  void OnOK() override {}

 private:
  void send(Event* e) {
    napi_status status = events_.BlockingCall(e, [](Napi::Env env, Napi::Function onEvent, Event* raw) {
      std::unique_ptr<Event> e(raw);
      if (env == nullptr || onEvent.IsEmpty()) return;
      switch (e->kind) {
        case Event::Kind::Token:
          onEvent.Call({Napi::String::New(env, "token"), Napi::Number::New(env, static_cast<double>(e->token))});
          break;
        case Event::Kind::Done: onEvent.Call({Napi::String::New(env, "done"), generationResultToJs(env, e->result)}); break;
        case Event::Kind::Error: onEvent.Call({Napi::String::New(env, "error"), makeJsError(env, e->error).Value()}); break;
      }
    });
    if (status != napi_ok) delete e;  // the environment is shutting down
  }

  std::shared_ptr<gpt::Gpt> model_;
  std::shared_ptr<SerialExecutor> executor_;
  std::shared_ptr<GptWrap::Lease> lease_;
  std::vector<int64_t> prompt_;
  generate::SamplingOptions options_;
  Napi::ThreadSafeFunction events_;
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
    Napi::ThreadSafeFunction events =
        Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "litlora.generate.events", 0, 1);
    auto* worker = new GenerateWorker(env, model, wrap->executor(), lease, std::move(prompt), std::move(options), events, cancelled);
    worker->Queue();
    Napi::Object handle = Napi::Object::New(env);
    handle.Set("cancel", Napi::Function::New(env, [cancelled](const Napi::CallbackInfo& info) {
      cancelled->store(true);
      return info.Env().Undefined();
    }, "cancel"));
    return handle;
  });
}

}  // namespace

void initGenerate(Napi::Env env, Napi::Object exports) { exports.Set("generate", Napi::Function::New(env, generateEntry, "generate")); }

}  // namespace litlora

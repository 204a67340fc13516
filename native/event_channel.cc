#include "event_channel.h"

namespace litlora {

Napi::Object generationResultToJs(Napi::Env env, const generate::Result& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("reason", generate::stopReasonName(r.reason));
  out.Set("promptTokens", static_cast<double>(r.promptTokens));
  out.Set("generatedTokens", static_cast<double>(r.generatedTokens));
  out.Set("emittedTokens", static_cast<double>(r.tokens.size()));
  out.Set("prefillSeconds", r.prefillSeconds);
  out.Set("prefillRows", static_cast<double>(r.prefillRows));
  out.Set("decodeSeconds", r.decodeSeconds);
  return out;
}

struct EventChannel::Event {
  enum class Kind { Token, Done, Error } kind = Kind::Token;
  int64_t token = 0;
  generate::Result result;
  ErrorInfo error;
};

EventChannel::EventChannel(Napi::Env env, Napi::Function onEvent, const char* name)
    : events_(Napi::ThreadSafeFunction::New(env, onEvent, name, 0, 1)) {}

void EventChannel::token(int64_t id) {
  auto e = new Event;
  e->token = id;
  send(e);
}

void EventChannel::done(const generate::Result& result) {
  auto e = new Event;
  e->kind = Event::Kind::Done;
  e->result = result;
  last(e);
}

void EventChannel::error(const ErrorInfo& error) {
  auto e = new Event;
  e->kind = Event::Kind::Error;
  e->error = error;
  last(e);
}

void EventChannel::send(Event* e) {
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

void EventChannel::last(Event* e) {
  send(e);
  events_.Release();
}

Napi::Object cancelHandle(Napi::Env env, std::shared_ptr<std::atomic<bool>> cancelled) {
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("cancel", Napi::Function::New(env, [cancelled](const Napi::CallbackInfo& info) {
    cancelled->store(true);
    return info.Env().Undefined();
  }, "cancel"));
  return handle;
}

}  // namespace litlora

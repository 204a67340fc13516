// A generation's events on their way from the thread that decodes to JS, through one Napi::ThreadSafeFunction
// whose queue keeps them in order: 'token' (an id) any number of times, then exactly one 'done' (the generation's
// statistics, generationResultToJs below) or 'error' (an Error with .code), after which the channel is released. The
// single-request loop (generate_wrap.cc) and the batched decoder (batch_decode_wrap.cc) both stream through it.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/generate.h"
#include "errors.h"

namespace litlora {

class EventChannel {
 public:
  // onEvent(kind, value) is called on the JS thread; name labels the thread-safe function.
  EventChannel(Napi::Env env, Napi::Function onEvent, const char* name);

  void token(int64_t id);
  // The last event (done or error): the channel is released after it and takes no more.
  void done(const generate::Result& result);
  void error(const ErrorInfo& error);

 private:
  struct Event;
  void send(Event* e);
  void last(Event* e);
  Napi::ThreadSafeFunction events_;
};

// The 'done' event's value: {reason, promptTokens, generatedTokens, emittedTokens, prefillSeconds, decodeSeconds}.
Napi::Object generationResultToJs(Napi::Env env, const generate::Result& result);

// The { cancel() } handle JS gets for a running generation: cancel() sets the flag the decode loop polls.
Napi::Object cancelHandle(Napi::Env env, std::shared_ptr<std::atomic<bool>> cancelled);

}  // namespace litlora

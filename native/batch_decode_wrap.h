// The N-API face of native/core/batch_decode: `decodeSubmit(nativeGpt, promptIds, options, adapter, onEvent)` adds a
// request to the model's batched decoder and returns {cancel} at once; its tokens, then 'done' or 'error', arrive
// through onEvent as generate()'s do (generate_wrap.h).
//
// One DecodeHost per model: requests wait in its `pending` list until the engine has a free row. While any request
// is pending or decoding, one session runs on the model's executor thread (serial_executor.h) and holds the model's
// lease; it takes new requests between decode steps and ends (giving the lease back) when nothing is left. A
// request's 'done' is sent only after that decision, so a JS caller that starts another operation on hearing the
// last 'done' finds the model free.
#pragma once

#include <napi.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/batch_decode.h"
#include "gpt_wrap.h"

namespace litlora {

struct DecodeHost {
  std::mutex mutex;
  std::deque<batch_decode::Request> pending;  // guarded by mutex
  bool running = false;                       // a session is on (guarded by mutex)
  std::shared_ptr<GptWrap::Lease> lease;      // held by the running session
  int64_t maxRows = 16;
  // Done / error deliveries of the current step, sent once the session knows whether it goes on (session thread).
  std::vector<std::function<void()>> outbox;

  // The session: runs until no request is pending or decoding.
  void run(gpt::Gpt& model);
};

void initBatchDecode(Napi::Env env, Napi::Object exports);

}  // namespace litlora

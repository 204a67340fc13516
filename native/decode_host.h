// DecodeHost: a model's batched decoder between JS and native/core/batch_decode (one per NativeGpt).
//
// Requests wait in `pending` until the engine has a free row. While any request is pending or decoding, one session
// runs on the model's executor thread (core/serial_executor.h) and holds the model's lease; it takes new requests
// between decode steps and ends (giving the lease back) when nothing is left. A request's 'done' is delivered only
// after that decision, so a JS caller that starts another operation on hearing the last 'done' finds the model free.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/batch_decode.h"
#include "model_lease.h"

namespace litlora {

struct DecodeHost {
  std::mutex mutex;
  std::deque<batch_decode::Request> pending;  // guarded by mutex
  bool running = false;                       // a session is on (guarded by mutex)
  std::shared_ptr<ModelLease> lease;          // held by the running session (guarded by mutex)
  int64_t maxRows = 16;
  // Done / error deliveries of the current step, sent once the session knows whether it goes on (session thread).
  std::vector<std::function<void()>> outbox;

  // The session: runs until no request is pending or decoding.
  void run(gpt::Gpt& model);
};

}  // namespace litlora

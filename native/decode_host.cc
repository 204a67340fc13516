#include "decode_host.h"

namespace litlora {

void DecodeHost::run(gpt::Gpt& model) {
  batch_decode::Engine engine(model, maxRows);
  auto flush = [this] {
    std::vector<std::function<void()>> deliveries;
    deliveries.swap(outbox);
    for (auto& deliver : deliveries) deliver();
  };
  while (true) {
    std::vector<batch_decode::Request> taken;
    {
      std::lock_guard<std::mutex> lock(mutex);
      while (!pending.empty() && static_cast<int64_t>(taken.size()) < engine.freeRows()) {
        taken.push_back(std::move(pending.front()));
        pending.pop_front();
      }
    }
    if (!taken.empty()) engine.admit(std::move(taken));
    const bool more = engine.step();
    if (!more) {
      std::unique_lock<std::mutex> lock(mutex);
      if (pending.empty()) {
        running = false;
        lease.reset();
        lock.unlock();
        flush();
        return;
      }
    }
    flush();
  }
}

}  // namespace litlora

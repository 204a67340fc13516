#include "mapped_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "error.h"

namespace litlora::mapped_guard {

namespace {

// The handler may only read what it finds without locks or allocation: a fixed table of atomics. 16 K live maps
// is far more than a process holds (one per tensor storage handed out, one per open file); past that a map is
// left unprotected rather than refused.
constexpr uint32_t kSlots = 16384;

struct Range {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};  // 0: free
  std::atomic<int> prot{0};
  std::atomic<bool> lost{false};
};

Range ranges[kSlots];
std::atomic<uint64_t> faultCount{0};
std::mutex registry;                // add/remove only; never taken by the handler
std::vector<std::string>* paths = nullptr;  // by slot, under `registry`; never freed (used at exit too)
struct sigaction previous {};
std::once_flag installed;

void chain(int sig, siginfo_t* info, void* context) {
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) return previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    return previous.sa_handler(sig);
  }
  // Default action: restore it and return; the faulting instruction runs again and the fault ends the process
  // as it would have without us.
  signal(sig, SIG_DFL);
}

void onSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (uint32_t i = 1; i < kSlots; ++i) {
    Range& r = ranges[i];
    const uintptr_t end = r.end.load(std::memory_order_acquire);
    if (end == 0 || address >= end || address < r.begin.load(std::memory_order_acquire)) continue;
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    void* at = reinterpret_cast<void*>(address - address % page);
    // mmap is a plain system call: safe here in practice, as the JVM's and LMDB's handlers rely on.
    void* p = mmap(at, page, r.prot.load(std::memory_order_relaxed) | PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;  // cannot repair: fall through to the previous handler
    r.lost.store(true, std::memory_order_release);
    faultCount.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  chain(sig, info, context);
}

void install() {
  struct sigaction action {};
  action.sa_sigaction = &onSigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &previous);
}

}  // namespace

Slot add(const void* begin, size_t length, int prot, const std::string& path) {
  if (length == 0) return 0;
  std::call_once(installed, install);
  std::lock_guard<std::mutex> lock(registry);
  if (!paths) paths = new std::vector<std::string>(kSlots);
  for (uint32_t i = 1; i < kSlots; ++i) {
    Range& r = ranges[i];
    if (r.end.load(std::memory_order_relaxed) != 0) continue;
    (*paths)[i] = path;
    r.lost.store(false, std::memory_order_relaxed);
    r.prot.store(prot, std::memory_order_relaxed);
    r.begin.store(reinterpret_cast<uintptr_t>(begin), std::memory_order_release);
    r.end.store(reinterpret_cast<uintptr_t>(begin) + length, std::memory_order_release);
    return i;
  }
  return 0;
}

void remove(Slot slot) {
  if (slot == 0) return;
  std::lock_guard<std::mutex> lock(registry);
  ranges[slot].end.store(0, std::memory_order_release);
  ranges[slot].begin.store(0, std::memory_order_release);
  (*paths)[slot].clear();
}

bool lost(Slot slot) { return slot != 0 && ranges[slot].lost.load(std::memory_order_acquire); }

std::string path(Slot slot) {
  if (slot == 0) return "";
  std::lock_guard<std::mutex> lock(registry);
  return (*paths)[slot];
}

uint64_t faults() { return faultCount.load(std::memory_order_acquire); }

void throwIfFaultedSince(uint64_t before, const std::string& what) {
  if (faults() == before) return;
  throw Error("ERR_IO", what + ": a tensor file mapped into memory was truncated or overwritten in place while it was "
                               "in use, so its pages are gone (a SIGBUS, caught); nothing was computed or written from them. "
                               "Replace files by writing a new one and renaming it over the old (as litlora's own writers do), "
                               "then open the file again.");
}

}  // namespace litlora::mapped_guard

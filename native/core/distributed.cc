// See distributed.h.
//
// Gloo's headers. PyTorch's pip wheels ship c10d's headers and ProcessGroupGloo's symbols in libtorch_cpu, but not
// Gloo's own headers, which ProcessGroupGloo.hpp includes. Where they are missing, CMakeLists.txt puts
// native/core/c10d_gloo_decls first on the include path: it declares only the Gloo names that
// ProcessGroupGloo.hpp mentions (gloo::Context, gloo::rendezvous::Store, gloo::transport::Device and
// UnboundBuffer), each of which the header holds only behind shared_ptr/unique_ptr or names in an inline member
// this file never calls. So the class layout, the constructor and every virtual call still come from libtorch's
// own header and library; litlora never touches a Gloo object itself. With a libtorch that ships Gloo's headers
// (include/gloo), those are used instead.
#include "distributed.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "error.h"

#ifdef LITLORA_WITH_GLOO
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef LITLORA_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace litlora::distributed {

std::vector<std::string> availableBackends() {
  std::vector<std::string> out;
#ifdef LITLORA_WITH_GLOO
  out.push_back("gloo");
#endif
#ifdef LITLORA_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

namespace {

[[noreturn]] void unavailable(const std::string& backend) {
  throw Error("ERR_DISTRIBUTED_UNAVAILABLE",
              "data-parallel training needs libtorch's c10d " + backend + " process group, and this litlora build has " +
                  (availableBackends().empty() ? std::string("none") : "only " + availableBackends().front()) +
                  ": its libtorch was built without USE_DISTRIBUTED" + (backend == "nccl" ? " or without CUDA" : "") +
                  ". Rebuild litlora against PyTorch's own libtorch (the pip wheel or the libtorch zip from pytorch.org" +
                  (backend == "nccl" ? ", a CUDA variant" : "") + "), or train with one process.");
}

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

bool mentions(const std::string& text, std::initializer_list<const char*> needles) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* n : needles)
    if (lower.find(n) != std::string::npos) return true;
  return false;
}

}  // namespace

std::vector<std::pair<size_t, size_t>> bucketRanges(const std::vector<at::Tensor>& tensors, int64_t bucketBytes) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < tensors.size()) {
    int64_t bytes = tensors[i].numel() * tensors[i].element_size();
    size_t j = i + 1;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() && tensors[j].device() == tensors[i].device() &&
           bytes + tensors[j].numel() * tensors[j].element_size() <= bucketBytes) {
      bytes += tensors[j].numel() * tensors[j].element_size();
      ++j;
    }
    out.emplace_back(i, j);
    i = j;
  }
  return out;
}

at::Tensor flattenBucket(const std::vector<at::Tensor>& members) {
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> flat;
  for (const at::Tensor& t : members) flat.push_back(t.reshape({-1}));
  return at::cat(flat);
}

void unflattenMean(at::Tensor& summed, const std::vector<at::Tensor>& members, int worldSize) {
  at::NoGradGuard noGrad;
  summed.div_(worldSize);
  int64_t offset = 0;
  for (const at::Tensor& t : members) {
    t.copy_(summed.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

void ProcessGroup::addStats(const Stats& s) {
  std::lock_guard<std::mutex> lock(statsMutex_);
  stats_.allReduceCalls += s.allReduceCalls;
  stats_.buckets += s.buckets;
  stats_.overlappedBuckets += s.overlappedBuckets;
  stats_.bytes += s.bytes;
  stats_.seconds += s.seconds;
  stats_.lastWaitStart = s.lastWaitStart;
}

#ifdef LITLORA_WITH_GLOO

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;  // the TCPStore itself (rank 0 hosts it)
  c10::intrusive_ptr<c10d::Backend> backend;
};

namespace {

std::string where(const Options& o) { return o.masterAddr + ":" + std::to_string(o.masterPort); }

bool isLoopback(const std::string& addr) { return addr == "127.0.0.1" || addr == "localhost" || addr == "::1"; }

}  // namespace

ProcessGroup::ProcessGroup(const Options& o) : options_(o), impl_(std::make_unique<Impl>()) {
  LITLORA_CHECK(o.worldSize >= 1, "ERR_ARG", "distributed: expected a world size ≥ 1, got " << o.worldSize);
  LITLORA_CHECK(o.rank >= 0 && o.rank < o.worldSize, "ERR_ARG",
                "distributed: expected a rank in [0, " << o.worldSize << "), got " << o.rank
                                                        << "; ranks count from 0 to the world size − 1");
  LITLORA_CHECK(o.masterPort > 0 && o.masterPort < 65536, "ERR_ARG",
                "distributed: expected a master port in 1..65535, got " << o.masterPort);
  LITLORA_CHECK(o.timeoutMs > 0, "ERR_ARG", "distributed: expected a timeout > 0 ms, got " << o.timeoutMs);
  if (o.backend != "gloo" && o.backend != "nccl")
    throw Error("ERR_ARG", "distributed: expected the backend 'gloo' or 'nccl', got '" + o.backend + "'");
#ifndef LITLORA_WITH_NCCL
  if (o.backend == "nccl") unavailable("nccl");
#endif
  const std::chrono::milliseconds timeout(o.timeoutMs);
  const std::string rankName = "rank " + std::to_string(o.rank);

  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.masterPort);
  so.isServer = o.rank == 0;
  so.numWorkers = o.worldSize;
  so.waitWorkers = false;  // joining is checked below, with litlora's own message
  so.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.masterAddr, so);
  } catch (const std::exception& e) {
    const std::string what = firstLine(e.what());
    if (o.rank == 0 && mentions(what, {"address already in use", "eaddrinuse", "errno: 98"}))
      throw Error("ERR_DISTRIBUTED", "rank 0 could not host the rendezvous on " + where(o) +
                                         ": the port is in use (" + what + "). Choose a free MASTER_PORT (--master_port).");
    throw Error("ERR_DISTRIBUTED", rankName + " could not reach the rendezvous of rank 0 at " + where(o) + " within " +
                                       std::to_string(o.timeoutMs) + " ms (" + what +
                                       "). Check MASTER_ADDR/MASTER_PORT and that rank 0 is running.");
  }
  try {
    c10d::Store& s = *impl_->store;
    // A rank number taken twice, and ranks that disagree on the world size, are errors before anything trains.
    if (s.add("litlora/rank/" + std::to_string(o.rank), 1) > 1)
      throw Error("ERR_DISTRIBUTED", "two processes joined as " + rankName + " of " + std::to_string(o.worldSize) +
                                         "; give each process its own RANK");
    const std::string ws = std::to_string(o.worldSize);
    const auto mismatch = [&](int r, const std::string& theirs) {
      return Error("ERR_DISTRIBUTED", "world size mismatch: " + rankName + " was started with a world size of " + ws + ", rank " +
                                          std::to_string(r) + " with " + theirs +
                                          ". Start every rank with the same WORLD_SIZE (--devices × --num_nodes).");
    };
    // Another rank reads rank 0's world size before it writes its own: rank 0 (the store's host) stops as soon as it
    // sees a different one, and the other rank must already know why by then. A rank with another world size than
    // rank 0's then stops here, before waiting for ranks that may not exist.
    std::string rank0;
    if (o.rank != 0) {
      std::vector<uint8_t> v = s.get("litlora/world_size/0");
      rank0.assign(v.begin(), v.end());
    }
    s.set("litlora/world_size/" + std::to_string(o.rank), std::vector<uint8_t>(ws.begin(), ws.end()));
    s.add("litlora/joined", 1);
    if (o.rank != 0 && rank0 != ws) throw mismatch(0, rank0);
    std::vector<std::string> keys;
    for (int r = 0; r < o.worldSize; ++r) keys.push_back("litlora/world_size/" + std::to_string(r));
    try {
      s.wait(keys, timeout);
    } catch (const std::exception& e) {
      const int64_t n = s.add("litlora/joined", 0);
      throw Error("ERR_DISTRIBUTED", rankName + ": only " + std::to_string(n) + " of " + ws + " ranks joined the rendezvous at " +
                                         where(o) + " within " + std::to_string(o.timeoutMs) +
                                         " ms. Start every rank (WORLD_SIZE " + ws + ") or check that all use the same world size.");
    }
    for (int r = 0; r < o.worldSize; ++r) {
      std::vector<uint8_t> v = s.get("litlora/world_size/" + std::to_string(r));
      const std::string theirs(v.begin(), v.end());
      if (theirs != ws) throw mismatch(r, theirs);
    }
    // A rank started with a larger world size than the others writes a key past their last rank.
    if (s.check({"litlora/world_size/" + ws}))
      throw Error("ERR_DISTRIBUTED", "world size mismatch: " + rankName + " was started with a world size of " + ws +
                                         ", and a rank numbered " + ws + " or more joined. Start every rank with the same WORLD_SIZE.");

    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("litlora/pg", impl_->store);
    if (o.backend == "gloo") {
      auto gopts = c10d::ProcessGroupGloo::Options::create(timeout);
      // One rendezvous on one machine stays on the loopback device; across machines Gloo picks the interface
      // (GLOO_SOCKET_IFNAME, or the one this host's name resolves to), as torch.distributed does.
      if (isLoopback(o.masterAddr))
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        gopts = c10d::ProcessGroupGloo::Options::create_default(timeout);
      gopts->threads = 1;  // one collective at a time: the gradients of a step go in order
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, o.rank, o.worldSize, gopts);
    } else {
#ifdef LITLORA_WITH_NCCL
      auto nopts = c10d::ProcessGroupNCCL::Options::create();
      nopts->timeout = timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, o.rank, o.worldSize, nopts);
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("ERR_DISTRIBUTED", rankName + " could not connect the " + o.backend + " process group through " + where(o) +
                                       " within " + std::to_string(o.timeoutMs) + " ms (" + firstLine(e.what()) +
                                       "). A rank may have stopped; check every rank's output.");
  }
}

ProcessGroup::~ProcessGroup() = default;

template <typename Fn>
void ProcessGroup::collective(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string detail = firstLine(e.what());
    failed(what, detail, mentions(detail, {"timed out", "timeout"}));
  }
}

void ProcessGroup::failed(const char* what, const std::string& detail, bool timedOut) {
  // Which ranks are gone: every rank that saw the failure marks itself in the store; after a grace period the
  // unmarked ones are the ones that died or hang. The store lives in rank 0: if it cannot be reached, rank 0 is gone.
  const int me = options_.rank;
  std::vector<int> missing;
  bool storeGone = false;
  try {
    c10d::Store& s = *impl_->store;
    s.setTimeout(std::chrono::milliseconds(std::min<int64_t>(options_.timeoutMs, 5000)));
    s.set("litlora/failed/" + std::to_string(me), std::vector<uint8_t>{'1'});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::min<int64_t>(options_.timeoutMs, 2000));
    while (true) {
      missing.clear();
      for (int r = 0; r < options_.worldSize; ++r)
        if (r != me && !s.check({"litlora/failed/" + std::to_string(r)})) missing.push_back(r);
      if (missing.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (const std::exception&) {
    storeGone = true;
    missing = {0};
  }
  std::string names;
  for (size_t i = 0; i < missing.size(); ++i)
    names += (i == 0 ? "" : (i + 1 == missing.size() ? " and " : ", ")) + std::to_string(missing[i]);
  const std::string culprit = missing.empty()
                                  ? "another rank failed"
                                  : std::string(missing.size() == 1 ? "rank " : "ranks ") + names +
                                        (timedOut ? " did not answer within the distributed timeout (" + std::to_string(options_.timeoutMs) + " ms)"
                                                  : " stopped (its connection closed)") +
                                        (storeGone ? "; rank 0 hosted the rendezvous store, which is gone" : "");
  throw Error("ERR_DISTRIBUTED", "rank " + std::to_string(me) + " of " + std::to_string(options_.worldSize) + ", while " + what +
                                     ": " + culprit + " [" + detail + "]. Training stopped on every rank; the checkpoints " +
                                     "already written are complete. Check that rank's output, then --resume.");
}

struct PendingSum {
  c10::intrusive_ptr<c10d::Work> work;
  std::vector<at::Tensor> buffer;
};

std::shared_ptr<PendingSum> ProcessGroup::startSum(const at::Tensor& flat) {
  auto pending = std::make_shared<PendingSum>();
  pending->buffer = {flat};
  collective("averaging the gradients", [&] {
    c10d::AllreduceOptions ar;
    ar.reduceOp = c10d::ReduceOp::SUM;
    pending->work = impl_->backend->allreduce(pending->buffer, ar);
  });
  return pending;
}

void ProcessGroup::finishSum(const std::shared_ptr<PendingSum>& pending) {
  collective("averaging the gradients", [&] { pending->work->wait(); });
}

void ProcessGroup::allReduceMean(const std::vector<at::Tensor>& tensors, int64_t bucketBytes) {
  const auto start = std::chrono::steady_clock::now();
  at::NoGradGuard noGrad;
  Stats add;
  for (const auto& [first, last] : bucketRanges(tensors, bucketBytes)) {
    const std::vector<at::Tensor> members(tensors.begin() + first, tensors.begin() + last);
    at::Tensor flat = flattenBucket(members);
    finishSum(startSum(flat));
    unflattenMean(flat, members, options_.worldSize);
    add.buckets++;
    add.bytes += flat.numel() * flat.element_size();
  }
  add.allReduceCalls = 1;
  add.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  add.lastWaitStart = std::chrono::duration<double>(start.time_since_epoch()).count();
  addStats(add);
}

std::vector<double> ProcessGroup::allReduceSum(const std::vector<double>& values) {
  if (values.empty()) return {};
  std::vector<at::Tensor> buffer{at::tensor(values, at::kDouble)};
  if (options_.backend == "nccl") buffer[0] = buffer[0].to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(options_.localRank)));
  collective("summing numbers over the ranks", [&] {
    c10d::AllreduceOptions ar;
    ar.reduceOp = c10d::ReduceOp::SUM;
    impl_->backend->allreduce(buffer, ar)->wait();
  });
  at::Tensor host = buffer[0].to(at::kCPU).contiguous();
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  at::NoGradGuard noGrad;
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> buffer{t.is_contiguous() ? t : t.contiguous()};
    collective("broadcasting rank 0's LoRA weights", [&] {
      c10d::BroadcastOptions bo;
      bo.rootRank = root;
      impl_->backend->broadcast(buffer, bo)->wait();
    });
    if (!buffer[0].is_same(t)) t.copy_(buffer[0]);
  }
}

void ProcessGroup::barrier() {
  collective("waiting for every rank (barrier)", [&] {
    // Gloo's barrier; NCCL's runs an all-reduce on the current device.
    impl_->backend->barrier()->wait();
  });
}

#else  // no c10d Gloo in the found libtorch

struct ProcessGroup::Impl {};
struct PendingSum {};

ProcessGroup::ProcessGroup(const Options& o) : options_(o) { unavailable(o.backend); }
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::failed(const char*, const std::string&, bool) { unavailable(options_.backend); }
void ProcessGroup::allReduceMean(const std::vector<at::Tensor>&, int64_t) { unavailable(options_.backend); }
std::shared_ptr<PendingSum> ProcessGroup::startSum(const at::Tensor&) { unavailable(options_.backend); }
void ProcessGroup::finishSum(const std::shared_ptr<PendingSum>&) { unavailable(options_.backend); }
std::vector<double> ProcessGroup::allReduceSum(const std::vector<double>&) { unavailable(options_.backend); }
void ProcessGroup::broadcast(const std::vector<at::Tensor>&, int) { unavailable(options_.backend); }
void ProcessGroup::barrier() { unavailable(options_.backend); }

#endif

}  // namespace litlora::distributed

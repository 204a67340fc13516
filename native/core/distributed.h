// Data-parallel training over libtorch's own c10d: a TCPStore rendezvous (rank 0 hosts it), a ProcessGroupGloo
// (CPU tensors) or ProcessGroupNCCL (CUDA builds, CUDA tensors), and the few collectives a LoRA data-parallel
// run needs: the gradients averaged in flattened buckets, the initial LoRA weights broadcast from rank 0, sums
// of host numbers (validation loss, token counts) and a barrier.
//
// Failures are litlora::Error with code ERR_DISTRIBUTED and a message that names the rank that went away:
// after a collective fails (a peer closed its connections, or nothing arrived within the timeout), every
// surviving rank marks itself failed in the store, waits a moment, and names the ranks that did not; when the
// store itself is gone, rank 0 (its host) is the one named. A build whose libtorch has no c10d gives
// ERR_DISTRIBUTED_UNAVAILABLE.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace litlora::distributed {

struct Options {
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  int64_t timeoutMs = 1800000;  // torch.distributed's default: 30 minutes
  std::string backend = "gloo";  // "gloo" (CPU) or "nccl" (CUDA)
  int localRank = 0;             // NCCL: this rank's CUDA device index
};

// The backends this build can create ("gloo", "nccl").
std::vector<std::string> availableBackends();

struct Stats {
  int64_t allReduceCalls = 0;     // bucketed gradient all-reduces (one per optimizer step)
  int64_t buckets = 0;
  int64_t overlappedBuckets = 0;  // buckets whose sum started during the backward (grad_reducer.h)
  int64_t bytes = 0;              // payload bytes this rank contributed to all-reduces
  double seconds = 0;             // exposed time: wall time the training thread spent averaging gradients after the
                                  // backward (all of it without overlap; with overlap, the waits for the sums)
  // When the latest exposed wait began (this rank's backward had ended), in seconds of the steady clock, which is
  // CLOCK_MONOTONIC and so comparable between the processes of one machine: bench:ddp takes from each rank's wait
  // the part spent waiting for the other rank to finish its backward (ranks sharing two cores drift apart), which
  // is skew, not communication.
  double lastWaitStart = 0;
};

// Gradient buckets: consecutive runs of tensors (in the order given) of one dtype and device, each of at most
// bucketBytes (at least one tensor), as index ranges [first, second).
std::vector<std::pair<size_t, size_t>> bucketRanges(const std::vector<at::Tensor>& tensors, int64_t bucketBytes);
// One bucket's payload: its tensors flattened into one new tensor.
at::Tensor flattenBucket(const std::vector<at::Tensor>& members);
// Divides the summed payload by the world size and copies it back into the bucket's tensors.
void unflattenMean(at::Tensor& summed, const std::vector<at::Tensor>& members, int worldSize);

// A sum over the ranks running in the background (c10d's asynchronous work), from ProcessGroup::startSum.
struct PendingSum;

class ProcessGroup {
 public:
  // Rendezvous: blocks until every rank has joined (or the timeout passes), checks that all ranks agree on the
  // world size and that no rank is taken twice, then connects the process group.
  explicit ProcessGroup(const Options& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int worldSize() const { return options_.worldSize; }
  const std::string& backend() const { return options_.backend; }

  // Averages the tensors over ranks in place (a sum, then a division by the world size), in flattened buckets
  // of at most bucketBytes of one dtype and device each (DDP's default bucket is 25 MiB).
  void allReduceMean(const std::vector<at::Tensor>& tensors, int64_t bucketBytes = 25 << 20);
  // The overlapped gradient path (grad_reducer.h): starts the in-place sum over the ranks of one flat tensor and
  // returns at once. Safe to call from autograd's threads; c10d runs the sums in the order they were started, so
  // every rank must start its sums in the same order. finishSum waits for one (ERR_DISTRIBUTED as every collective).
  std::shared_ptr<PendingSum> startSum(const at::Tensor& flat);
  void finishSum(const std::shared_ptr<PendingSum>& pending);
  // Adds the counts of one averaging of the gradients done outside allReduceMean.
  void addStats(const Stats& s);
  // Element-wise sums over ranks of host numbers (float64).
  std::vector<double> allReduceSum(const std::vector<double>& values);
  // Copies rank root's tensors into every rank's, in place.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void barrier();

  Stats stats() const {
    std::lock_guard<std::mutex> lock(statsMutex_);
    return stats_;
  }

 private:
  struct Impl;
  template <typename Fn>
  void collective(const char* what, Fn&& fn);
  [[noreturn]] void failed(const char* what, const std::string& detail, bool timedOut);

  Options options_;
  std::unique_ptr<Impl> impl_;
  mutable std::mutex statsMutex_;  // stats() is read from the JS thread while a step runs
  Stats stats_;
};

}  // namespace litlora::distributed

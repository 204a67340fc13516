#include "merge.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

#include "error.h"
#include "gpt_lora.h"
#include "lora_placement.h"
#include "pth.h"
#include "tensorfile.h"

namespace litlora::merge {

namespace {

// One layer that carries LoRA, where gpt::loraPlacements puts it (as the model does), with its adapter tensors.
struct LoraLayer : gpt::LoraPlacement {
  at::Tensor A, B;
};

std::vector<LoraLayer> loraLayers(const gpt::GptConfig& c) {
  std::vector<LoraLayer> out;
  for (gpt::LoraPlacement& place : gpt::loraPlacements(c)) out.push_back({std::move(place), {}, {}});
  return out;
}

std::string listNames(const std::vector<std::string>& names, size_t limit = 6) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += ", … (" + std::to_string(names.size() - limit) + " more)";
  return out;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Reads the adapter strictly: exactly the lora_A / lora_B tensors the config's lora_* settings place, with
// their shapes. Anything else is an error that lists what differs.
void readAdapter(tensorfile::Reader& file, std::vector<LoraLayer>& layers, const gpt::GptConfig& c, const std::string& path) {
  std::map<std::string, LoraLayer*> byName;
  for (LoraLayer& l : layers) {
    byName[l.path + ".lora_A"] = &l;
    byName[l.path + ".lora_B"] = &l;
  }
  std::vector<std::string> unexpected, missing, shapes;
  std::set<std::string> present;
  for (const auto& e : file.entries()) {
    LITLORA_CHECK(e.name.find(".attn.attn.") == std::string::npos, "ERR_CHECKPOINT_FORMAT",
                  path << " uses litgpt ≤ 0.5.4's attn.attn names; it cannot be merged by streaming (load it with Model.load, "
                       "or rewrite it with `litlora migrate`)");
    auto it = byName.find(e.name);
    if (it == byName.end()) {
      unexpected.push_back(e.name);
      continue;
    }
    present.insert(e.name);
    LoraLayer& l = *it->second;
    const bool isA = endsWith(e.name, ".lora_A");
    const std::vector<int64_t> want = isA ? std::vector<int64_t>{l.aRows(c.lora.r), l.in} : std::vector<int64_t>{l.bRows(), c.lora.r};
    if (e.shape != want) {
      shapes.push_back(e.name + " (expected " + shapeString(want) + ", got " + shapeString(e.shape) + ")");
      continue;
    }
    (isA ? l.A : l.B) = file.get(e.name);
  }
  for (const auto& [name, layer] : byName)
    if (!present.count(name)) missing.push_back(name);
  if (missing.empty() && unexpected.empty() && shapes.empty()) return;
  std::string message = path + " does not match the LoRA settings (r=" + std::to_string(c.lora.r) + " and the lora_* targets of " +
                        "hyperparameters.yaml) on this model:";
  if (!missing.empty()) message += " missing " + listNames(missing) + ";";
  if (!unexpected.empty()) message += " unexpected " + listNames(unexpected) + ";";
  if (!shapes.empty()) message += " wrong shape " + listNames(shapes) + ";";
  message += " was the adapter trained with other lora_* settings or on another base?";
  throw Error(shapes.size() && missing.empty() && unexpected.empty() ? "ERR_SHAPE" : "ERR_CHECKPOINT_FORMAT", message);
}

// Elements per streamed block of a merged weight: 256 K (1 MB of fp32 output, 4 MB of float64 scratch for
// lora::mergeRows), allocated once per merge and reused, so a block's passes over W, ΔW and the output stay in
// cache. On pythia-410m (2-core EPYC VM) whole merges took 0.9–1.0 s at 128–256 K and 1.8 s at 512 K.
int64_t blockElements() {
  const char* env = std::getenv("LITLORA_MERGE_BLOCK");  // elements per block, for experiments
  return env && std::atoll(env) > 0 ? std::atoll(env) : (int64_t(1) << 18);
}

// The file writes of a merge on a second thread: the kernel's copy into the page cache, the CRC and the
// writeback hints of one block overlap the merge arithmetic of the next. Jobs run in submission order.
class WriteQueue {
 public:
  WriteQueue() : thread_([this] { loop(); }) {}
  ~WriteQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  void submit(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mutex_);
    rethrowLocked();
    jobs_.push_back(std::move(job));
    changed_.notify_all();
  }
  // Blocks until at most n jobs are waiting or running; rethrows the error of a failed job.
  void waitPendingAtMost(size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return error_ || jobs_.size() + running_ <= n; });
    rethrowLocked();
  }

 private:
  void rethrowLocked() {
    if (error_) std::rethrow_exception(error_);
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty() || error_) {
        if (stopping_) return;
        jobs_.clear();  // after a failure the rest is dropped; the producer sees error_ at its next call
        continue;
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      running_ = 1;
      lock.unlock();
      std::exception_ptr failed;
      try {
        job();
      } catch (...) {
        failed = std::current_exception();
      }
      lock.lock();
      running_ = 0;
      if (failed && !error_) error_ = failed;
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  size_t running_ = 0;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread thread_;
};

// Reusable block buffers for the merged rows, taken in turn. kBlockBuffers − 1 writes may be in flight while
// the next buffer is filled: the writer has then finished with it (WriteQueue runs jobs in order).
constexpr size_t kBlockBuffers = 3;

}  // namespace

// Runs the merge with one intra-op thread and restores the count afterwards. The merge is bound by memory
// and by the kernel copying the output into the page cache, on the writer thread; extra OpenMP workers only
// spin-wait between the small parallel regions and take the CPU that copy needs (perf on a 2-core VM:
// ~40% of samples in libgomp's wait loop; 7.7–8.5 s with 2 threads, 4.4–4.9 s with 1, on pythia-410m).
class SingleThreaded {
 public:
  SingleThreaded() : before_(at::get_num_threads()) {
    const char* env = std::getenv("LITLORA_MERGE_THREADS");  // for experiments: the merge's intra-op threads
    at::set_num_threads(env && std::atoi(env) > 0 ? std::atoi(env) : 1);
  }
  ~SingleThreaded() { at::set_num_threads(before_); }

 private:
  int before_;
};

MergeStats mergeLoraFiles(const MergeOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  at::NoGradGuard noGrad;
  SingleThreaded oneThread;
  const auto start = std::chrono::steady_clock::now();
  const gpt::GptConfig& c = o.config;
  LITLORA_CHECK(c.lora.any(), "ERR_CONFIG", "merge_lora: the LoRA settings have lora_r = 0 or no lora_* target; nothing to merge");
  std::vector<LoraLayer> layers = loraLayers(c);
  {
    auto adapter = tensorfile::open(o.loraPath);
    readAdapter(*adapter, layers, c, o.loraPath);
    adapter->close();  // the A/B tensors keep their own maps
  }
  std::map<std::string, LoraLayer*> byWeight;
  for (LoraLayer& l : layers) byWeight[l.path + ".weight"] = &l;

  auto base = tensorfile::open(o.basePath);
  const auto& entries = base->entries();
  for (const auto& e : entries)
    LITLORA_CHECK(e.name.find(".attn.attn.") == std::string::npos, "ERR_CHECKPOINT_FORMAT",
                  o.basePath << " uses litgpt ≤ 0.5.4's attn.attn names; it cannot be merged by streaming (load it with "
                                "Model.load, or rewrite it with `litlora migrate`)");
  std::vector<std::string> absent;
  for (const LoraLayer& l : layers)
    if (!base->find(l.path + ".weight")) absent.push_back(l.path + ".weight");
  LITLORA_CHECK(absent.empty(), "ERR_CHECKPOINT_FORMAT",
                o.basePath << " lacks the weights the adapter applies to: " << listNames(absent)
                           << "; is this the base the adapter was trained on?");
  MergeStats stats;
  pth::Writer writer(o.outPath);
  const int64_t total = static_cast<int64_t>(entries.size());
  const int64_t elements = blockElements();
  std::array<at::Tensor, kBlockBuffers> buffers;  // raw bytes; each block views one in its dtype
  at::Tensor scratch;                              // lora::mergeRows' ΔW, reused
  size_t nextBuffer = 0;
  int64_t written = 0;  // counted on the writer thread, which runs every job
  auto tensorDone = [&written, &progress, total] {
    const int64_t done = ++written;
    if (progress) progress(done, total);
  };
  {
    WriteQueue queue;  // declared after everything its jobs use, so it finishes (joins) first
    for (const auto& e : entries) {
      at::Tensor t = base->get(e.name);
      auto it = byWeight.find(e.name);
      if (it == byWeight.end()) {
        if (o.outDtype && at::isFloatingType(t.scalar_type()) && t.scalar_type() != *o.outDtype) t = t.to(*o.outDtype);
        stats.bytesWritten += static_cast<uint64_t>(t.numel()) * t.element_size();
        queue.submit([&writer, &tensorDone, name = e.name, t] {
          writer.add(name, t);
          tensorDone();
        });
        stats.tensors++;
        continue;
      }
      LoraLayer& l = *it->second;
      LITLORA_CHECK(t.dim() == 2 && t.size(0) == l.out && t.size(1) == l.in, "ERR_SHAPE",
                    o.basePath << ": " << e.name << " has shape " << shapeString(t.sizes()) << ", but the model config says ["
                               << l.out << ", " << l.in << "]; is this the base the adapter was trained on?");
      LITLORA_CHECK(at::isFloatingType(t.scalar_type()), "ERR_DTYPE", o.basePath << ": " << e.name << " is not a floating-point tensor");
      const at::ScalarType outType = o.outDtype.value_or(t.scalar_type());
      // gpt::mergeLora / mergeLoraRows is what Gpt::mergedStateDict uses (lora::merge: ΔW in float64 for a float32
      // W, float32 for 16-bit ones, rounded once), so the file equals model.mergedStateDict() bit for bit. W is
      // only read (its map stays clean page cache). Another output dtype: merged in float32, then converted.
      if (outType != t.scalar_type() && t.scalar_type() != at::kFloat) t = t.to(at::kFloat);
      const at::ScalarType workType = t.scalar_type();
      gpt::LoraCall call;
      call.scaling = c.lora.scaling();
      call.qkv = l.qkv ? &*l.qkv : nullptr;
      stats.mergedLayers++;
      stats.tensors++;
      stats.bytesWritten += static_cast<uint64_t>(t.numel()) * c10::elementSize(outType);
      if (call.qkv && call.qkv->legacyQuirk) {  // whole-weight only: a private copy, merged in place
        at::Tensor merged = gpt::mergeLora(t, l.A, l.B, call, /*inPlace=*/false, /*subtract=*/false);
        if (merged.scalar_type() != outType) merged = merged.to(outType);
        queue.submit([&writer, &tensorDone, name = e.name, merged] {
          writer.add(name, merged);
          tensorDone();
        });
        continue;
      }
      queue.submit([&writer, name = e.name, outType, sizes = t.sizes().vec()] { writer.beginTensor(name, outType, sizes); });
      const int64_t rowsPerBlock = std::max<int64_t>(1, elements / std::max<int64_t>(l.in, 1));
      const uint64_t bufferBytes = static_cast<uint64_t>(rowsPerBlock * l.in) * c10::elementSize(workType);
      for (int64_t row = 0; row < l.out; row += rowsPerBlock) {
        const int64_t n = std::min(rowsPerBlock, l.out - row);
        queue.waitPendingAtMost(kBlockBuffers - 1);  // the buffer about to be filled is no longer being written
        at::Tensor& raw = buffers[nextBuffer];
        nextBuffer = (nextBuffer + 1) % kBlockBuffers;
        if (!raw.defined() || static_cast<uint64_t>(raw.numel()) < bufferBytes) raw = at::empty({static_cast<int64_t>(bufferBytes)}, at::kByte);
        at::Tensor block = at::from_blob(raw.data_ptr(), {n, l.in}, t.options().dtype(workType));
        gpt::mergeLoraRows(t, l.A, l.B, call, row, block, scratch);
        at::Tensor bytes = workType == outType ? block : block.to(outType);
        queue.submit([&writer, bytes, raw] {  // raw keeps the buffer alive whatever happens to `buffers`
          writer.writeTensorBytes(bytes.data_ptr(), static_cast<uint64_t>(bytes.numel()) * bytes.element_size());
        });
      }
      queue.submit([&writer, &tensorDone] {
        writer.endTensor();
        tensorDone();
      });
    }
    queue.waitPendingAtMost(0);
  }
  writer.finish();
  base->close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace litlora::merge

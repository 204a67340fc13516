#include "errors.h"

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdio>
#include <new>
#include <optional>
#include <sstream>

#include "addon_data.h"
#include "core/error.h"

namespace litlora {

namespace {

thread_local std::string operationSlot;

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

bool startsWith(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

// libtorch's message without its C++ context: the first line that is not a stack frame or a source location.
std::string firstLine(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos) continue;
    line = line.substr(begin, line.find_last_not_of(" \t\r") - begin + 1);
    if (startsWith(line, "Exception raised from") || startsWith(line, "frame #")) continue;
    // CAFFE_ENFORCE's "[enforce fail at alloc_cpu.cpp:127] " is a C++ source location too.
    if (startsWith(line, "[enforce fail at ")) {
      const size_t close = line.find("] ");
      if (close != std::string::npos) line = line.substr(close + 2);
    }
    if (line.size() > 400) line = line.substr(0, 400) + "…";
    return line;
  }
  return "(no message)";
}

// The byte count of a failed host allocation: "… you tried to allocate 4398046511104 bytes …".
std::optional<uint64_t> requestedBytes(const std::string& text) {
  for (size_t at = text.find("allocate "); at != std::string::npos; at = text.find("allocate ", at + 1)) {
    size_t i = at + 9;
    uint64_t n = 0;
    bool digits = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + static_cast<uint64_t>(text[i++] - '0');
      digits = true;
    }
    if (digits && text.compare(i, 6, " bytes") == 0) return n;
  }
  return std::nullopt;
}

// "4.0 TiB": a byte count as a person reads it.
std::string humanBytes(uint64_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return out;
}

bool isAllocationFailure(const std::string& text) {
  return contains(text, "can't allocate memory") || contains(text, "not enough memory") || contains(text, "out of memory") ||
         contains(text, "Out of memory") || contains(text, "OutOfMemory");
}

bool onAccelerator(const std::string& text) {
  return contains(text, "CUDA") || contains(text, "GPU") || contains(text, "HIP") || contains(text, "MPS") || contains(text, "XPU");
}

std::string during(const std::string& operation) { return operation.empty() ? "running a native operation" : operation; }

ErrorInfo hostOutOfMemory(const std::string& operation, std::optional<uint64_t> bytes, const std::string& libtorchText) {
  std::string message = "out of host memory while " + during(operation) + ": ";
  message += bytes ? "an allocation of " + std::to_string(*bytes) + " bytes (" + humanBytes(*bytes) + ") failed"
                   : std::string("an allocation failed");
  message += ". Free memory, or use a smaller model, batch size or sequence length, or bfloat16 weights.";
  if (!libtorchText.empty()) message += " (libtorch: " + firstLine(libtorchText) + ")";
  return {"ERR_OOM", message};
}

// What a libtorch failure usually means in litlora's terms, and what to do about it.
std::string advice(const std::string& text) {
  if (contains(text, "shapes cannot be multiplied") || contains(text, "size mismatch") || contains(text, "must match the size") ||
      contains(text, "is invalid for input of size") || contains(text, "Expected size") || contains(text, "shape '")) {
    return "tensor shapes that do not fit together. Check that the weights, the adapter and the inputs belong to this "
           "model's config (model_config.yaml); if they do, report it as a litlora bug with this message.";
  }
  if (contains(text, "scalar type") || contains(text, "dtype")) {
    return "tensors of different dtypes. Load the model, the adapter and the inputs with one dtype; if they are, report "
           "it as a litlora bug with this message.";
  }
  if (contains(text, "same device")) {
    return "tensors on different devices. Put the model, the adapter and the inputs on one device; if they are, report "
           "it as a litlora bug with this message.";
  }
  if (contains(text, "not compiled with") || contains(text, "no CUDA GPUs") || contains(text, "accelerator")) {
    return "a device that is not available here. Use device 'cpu', or a litlora build against a libtorch with that "
           "device's support (npx litlora build).";
  }
  if (contains(text, "index out of range") || contains(text, "out of bounds")) {
    return "an index outside a tensor. Check that token ids are below the model's vocabulary size (the tokenizer must "
           "belong to the model); if they are, report it as a litlora bug with this message.";
  }
  return "input that litlora does not check for. Check the arguments of this call against the model's config; if they "
         "are right, report it as a litlora bug with this message.";
}

}  // namespace

const std::string& currentOperation() { return operationSlot; }

OperationScope::OperationScope(const char* operation) : previous_(operationSlot) { operationSlot = operation ? operation : ""; }

OperationScope::~OperationScope() { operationSlot = previous_; }

ErrorInfo describeException(std::exception_ptr error, const std::string& operation) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const c10::Error& e) {
    // c10::OutOfMemoryError is the caching GPU allocator's (recent libtorch also uses it for the CPU allocator);
    // older CPU allocators throw a plain c10::Error "DefaultCPUAllocator: can't allocate memory: …".
    const std::string text = e.what_without_backtrace();
    const bool oom = dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr || isAllocationFailure(text);
    if (oom && onAccelerator(text)) {
      return {"ERR_CUDA_OOM", "out of GPU memory while " + during(operation) +
                                  ". Lower the batch size or sequence length, use bf16, or free GPU memory. (libtorch: " +
                                  firstLine(text) + ")"};
    }
    if (oom) return hostOutOfMemory(operation, requestedBytes(text), text);
    return {"ERR_TORCH", "libtorch failed while " + during(operation) + ", on " + advice(text) + " (libtorch: " +
                             firstLine(text) + ")"};
  } catch (const std::bad_alloc&) {
    return hostOutOfMemory(operation, std::nullopt, "");
  } catch (const std::exception& e) {
    return {"ERR_TORCH", "native error while " + during(operation) + ": " + firstLine(e.what()) +
                             ". Report it as a litlora bug with this message."};
  } catch (...) {
    return {"ERR_TORCH", "unknown native error while " + during(operation) + ". Report it as a litlora bug."};
  }
}

Napi::Error makeJsError(Napi::Env env, const ErrorInfo& info) {
  // This environment's LitloraError once ts/binding.ts has handed it over; a plain Error with the same code
  // before that (the loader's test-load in a child process) or should constructing it throw.
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->error.IsEmpty()) {
    try {
      return Napi::Error(env, data->error.New({Napi::String::New(env, info.code), Napi::String::New(env, info.message)}));
    } catch (const Napi::Error&) {
    }
  }
  Napi::Error error = Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

}  // namespace litlora

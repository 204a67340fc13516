// Declarations of the Gloo names that torch/csrc/distributed/c10d/ProcessGroupGloo.hpp mentions, for libtorch
// builds that ship c10d's headers without Gloo's (PyTorch's pip wheels): see native/core/distributed.cc (top).
#pragma once

#include <chrono>

namespace gloo {

class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);  // named by an inline member of the header; never called
};

}  // namespace gloo

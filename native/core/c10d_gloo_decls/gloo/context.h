// Declarations of the Gloo names that torch/csrc/distributed/c10d/ProcessGroupGloo.hpp mentions; see
// ../README.md for why litlora carries them instead of Gloo's own headers.
#pragma once

#include <chrono>

namespace gloo {

class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);  // named by an inline member of the header; never called
};

}  // namespace gloo

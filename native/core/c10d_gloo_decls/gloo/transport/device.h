// See native/core/distributed.cc (top): Gloo's transport types appear in ProcessGroupGloo.hpp only behind pointers.
#pragma once

namespace gloo::transport {
class Device;
class UnboundBuffer;
}  // namespace gloo::transport

// See native/core/distributed.cc (top): ProcessGroupGloo.hpp includes this header but uses nothing from it.
#pragma once

// litlora::Error — the one exception type native/core throws for bad input. It carries a stable code
// (ERR_SHAPE, ERR_DTYPE, …) that the addon's error boundary (native/errors.cc) hands to JavaScript.
// Core code never includes napi.h, so this header is all it knows about error reporting.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace litlora {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// "[8, 128]" — shapes in messages are written the way PyTorch prints them.
template <typename Sizes>
std::string shapeString(const Sizes& sizes) {
  std::ostringstream out;
  out << "[";
  bool first = true;
  for (auto s : sizes) {
    out << (first ? "" : ", ") << s;
    first = false;
  }
  out << "]";
  return out.str();
}

}  // namespace litlora

// LITLORA_CHECK(cond, "ERR_SHAPE", "expected … got " << x): builds the message only on failure.
#define LITLORA_CHECK(cond, code, stream_expr)            \
  do {                                                    \
    if (!(cond)) {                                        \
      std::ostringstream litlora_msg_;                    \
      litlora_msg_ << stream_expr;                        \
      throw ::litlora::Error((code), litlora_msg_.str()); \
    }                                                     \
  } while (0)

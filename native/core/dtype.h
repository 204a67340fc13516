// litlora's dtype names ("float32", "bfloat16", …): the ones JavaScript passes and sees, and messages use. One
// table for both directions; the only place that names scalar types.
#pragma once

#include <ATen/ATen.h>

#include <cctype>
#include <optional>
#include <string>
#include <utility>

namespace litlora {

// The scalar types litlora holds, by name.
inline constexpr std::pair<at::ScalarType, const char*> kDtypeNames[] = {
    {at::kFloat, "float32"}, {at::kDouble, "float64"}, {at::kBFloat16, "bfloat16"}, {at::kHalf, "float16"},
    {at::kChar, "int8"},     {at::kByte, "uint8"},     {at::kShort, "int16"},       {at::kInt, "int32"},
    {at::kLong, "int64"},    {at::kBool, "bool"},
};

// litlora's name of `t`; for a type litlora does not hold (a tensor file may list one), PyTorch's own name in
// lower case ("complexfloat").
inline std::string dtypeName(at::ScalarType t) {
  for (const auto& [type, name] : kDtypeNames)
    if (type == t) return name;
  std::string s = c10::toString(t);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The type litlora's `name` stands for; nullopt for any other name.
inline std::optional<at::ScalarType> dtypeFromName(const std::string& name) {
  for (const auto& [type, known] : kDtypeNames)
    if (name == known) return type;
  return std::nullopt;
}

}  // namespace litlora

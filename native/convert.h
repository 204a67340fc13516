// TypedArray ⇄ at::Tensor, and dtype / device strings ⇄ libtorch enums (dtypeName comes from core/dtype.h).
// Nothing else lives here.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <string>
#include <vector>

#include "core/dtype.h"

namespace litlora {

// "float32" | "float64" | "bfloat16" | "float16" | "int8" | "uint8" | "int16" | "int32" | "int64" | "bool"
// (core/dtype.h), and PyTorch's aliases float, fp32, bf16, half, fp16; ERR_DTYPE for anything else.
at::ScalarType parseDtype(const std::string& name, const std::string& argName);

// "cpu" | "cuda" | "cuda:N"; asking for CUDA where there is none is ERR_DEVICE naming what is available.
at::Device parseDevice(const std::string& name, const std::string& argName);
std::string deviceName(const at::Device& device);

std::vector<int64_t> parseShape(const Napi::Value& value, const std::string& argName);

// Copies a typed array into a new CPU tensor of `shape`, converting to `dtype`. A Uint16Array with dtype
// bfloat16/float16 is taken as the raw 16-bit patterns.
at::Tensor tensorFromTypedArray(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                                at::ScalarType dtype, const std::string& argName);

// Copies a CPU, contiguous tensor into a new typed array: float32/bf16/fp16 → Float32Array (or, with raw,
// bf16/fp16 → Uint16Array bit patterns), float64 → Float64Array, int64 → BigInt64Array, and so on.
Napi::Value typedArrayFromTensor(Napi::Env env, const at::Tensor& tensor, bool raw);

}  // namespace litlora

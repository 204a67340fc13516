#include "convert.h"

#include <cstring>

#include "core/compat.h"
#include "core/error.h"

namespace litlora {

namespace {

std::string availableDevices() {
  std::string out = "cpu";
  int n = compat::cudaDeviceCount();
  for (int i = 0; i < n; ++i) out += ", cuda:" + std::to_string(i);
  return out;
}

// The scalar type a typed array holds natively.
at::ScalarType typedArrayDtype(napi_typedarray_type type, const std::string& argName) {
  switch (type) {
    case napi_float32_array: return at::kFloat;
    case napi_float64_array: return at::kDouble;
    case napi_int8_array: return at::kChar;
    case napi_uint8_array: return at::kByte;
    case napi_int16_array: return at::kShort;
    case napi_uint16_array: return at::kShort;  // reinterpreted below for bf16 / fp16 bit patterns
    case napi_int32_array: return at::kInt;
    case napi_bigint64_array: return at::kLong;
    default:
      throw Error("ERR_DTYPE", argName + ": unsupported typed array; expected Float32Array, Float64Array, Int32Array, "
                                         "BigInt64Array, Int8Array, Uint8Array, Int16Array or Uint16Array (bf16/fp16 bits)");
  }
}

}  // namespace

at::ScalarType parseDtype(const std::string& name, const std::string& argName) {
  if (std::optional<at::ScalarType> type = dtypeFromName(name)) return *type;
  if (name == "float" || name == "fp32") return at::kFloat;
  if (name == "bf16") return at::kBFloat16;
  if (name == "half" || name == "fp16") return at::kHalf;
  throw Error("ERR_DTYPE", argName + ": unknown dtype '" + name +
                               "'; expected one of float32, float64, bfloat16, float16, int8, uint8, int16, int32, int64, bool");
}

at::Device parseDevice(const std::string& name, const std::string& argName) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (name.size() > 5) {
      const std::string digits = name.substr(5);
      LITLORA_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos, "ERR_DEVICE",
                    argName << ": malformed device '" << name << "'; expected 'cpu', 'cuda' or 'cuda:N'");
      index = std::stoi(digits);
    }
    int count = compat::cudaDeviceCount();
    LITLORA_CHECK(count > 0, "ERR_DEVICE",
                  argName << ": device '" << name << "' requested, but "
                          << (at::globalContext().hasCUDA() ? "no CUDA device is visible"
                                                            : "this libtorch was built without CUDA")
                          << "; available: " << availableDevices()
                          << ". For CUDA, rebuild against a CUDA PyTorch or LIBTORCH (npx litlora build).");
    LITLORA_CHECK(index < count, "ERR_DEVICE",
                  argName << ": device '" << name << "' does not exist; available: " << availableDevices());
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error("ERR_DEVICE", argName + ": unknown device '" + name + "'; expected 'cpu', 'cuda' or 'cuda:N'");
}

std::string deviceName(const at::Device& device) {
  if (device.is_cpu()) return "cpu";
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return device.str();
}

std::vector<int64_t> parseShape(const Napi::Value& value, const std::string& argName) {
  LITLORA_CHECK(value.IsArray(), "ERR_SHAPE", argName << ": expected an array of non-negative integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    LITLORA_CHECK(item.IsNumber(), "ERR_SHAPE", argName << "[" << i << "]: expected a non-negative integer");
    double d = item.As<Napi::Number>().DoubleValue();
    LITLORA_CHECK(d >= 0 && d == static_cast<double>(static_cast<int64_t>(d)), "ERR_SHAPE",
                  argName << "[" << i << "]: expected a non-negative integer, got " << d);
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

at::Tensor tensorFromTypedArray(const Napi::TypedArray& array, const std::vector<int64_t>& shape,
                                at::ScalarType dtype, const std::string& argName) {
  napi_typedarray_type kind = array.TypedArrayType();
  at::ScalarType source = typedArrayDtype(kind, argName);
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  LITLORA_CHECK(static_cast<int64_t>(array.ElementLength()) == numel, "ERR_SHAPE",
                argName << ": shape " << shapeString(shape) << " needs " << numel << " elements, got "
                        << array.ElementLength());
  auto* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (kind == napi_uint16_array) {
    LITLORA_CHECK(dtype == at::kBFloat16 || dtype == at::kHalf, "ERR_DTYPE",
                  argName << ": a Uint16Array holds raw bfloat16/float16 bits; expected dtype 'bfloat16' or "
                             "'float16', got '" << dtypeName(dtype) << "'");
    source = dtype;
  }
  at::Tensor view = at::from_blob(data, shape, at::TensorOptions().dtype(source));
  // Always copy: JavaScript may change or free the array after this call returns.
  return source == dtype ? view.clone() : view.to(dtype);
}

Napi::Value typedArrayFromTensor(Napi::Env env, const at::Tensor& input, bool raw) {
  at::Tensor t = input;
  at::ScalarType type = t.scalar_type();
  if ((type == at::kBFloat16 || type == at::kHalf) && !raw) t = t.to(at::kFloat);
  if (type == at::kBool) t = t.to(at::kByte);
  t = t.contiguous();
  const size_t bytes = t.numel() * t.element_size();
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buffer.Data(), t.data_ptr(), bytes);
  const size_t n = t.numel();
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buffer, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buffer, 0);
    case at::kBFloat16:
    case at::kHalf: return Napi::Uint16Array::New(env, n, buffer, 0);
    case at::kChar: return Napi::Int8Array::New(env, n, buffer, 0);
    case at::kByte: return Napi::Uint8Array::New(env, n, buffer, 0);
    case at::kShort: return Napi::Int16Array::New(env, n, buffer, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buffer, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, buffer, 0);
    default: throw Error("ERR_DTYPE", "cannot convert a " + dtypeName(type) + " tensor to a typed array");
  }
}

}  // namespace litlora

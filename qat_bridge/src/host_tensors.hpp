// host_tensors.hpp — torch tensors to and from the simulator's host-side tensors (integers
// of a program, floats of a host step), one conversion each for the op library's device
// classes and the host plan. Values are copied as they are; nothing is rounded here.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "dla/qat/host_segments.hpp"
#include "dla/tensor.hpp"

namespace dla::qat {

inline std::vector<std::int64_t> torch_sizes(const std::vector<std::uint64_t>& shape) {
  return std::vector<std::int64_t>(shape.begin(), shape.end());
}

inline std::vector<std::uint64_t> dla_shape(const at::Tensor& x) {
  return std::vector<std::uint64_t>(x.sizes().begin(), x.sizes().end());
}

/// The integers of `t` as an int64 tensor of its shape.
inline at::Tensor long_tensor(const HostTensor& t) {
  at::Tensor q = at::empty(torch_sizes(t.shape), at::kLong);
  std::copy(t.values.begin(), t.values.end(), q.data_ptr<std::int64_t>());
  return q;
}

/// An integer tensor's values as a HostTensor of `dtype` and `frac`, shaped `shape` (the
/// caller's: a chunk may be padded to the program's batch afterwards).
inline HostTensor host_tensor(const at::Tensor& ints, DType dtype, int frac, std::vector<std::uint64_t> shape) {
  const at::Tensor v = ints.to(at::kInt).contiguous();
  HostTensor t;
  t.dtype = dtype;
  t.frac = frac;
  t.shape = std::move(shape);
  t.values.assign(v.data_ptr<std::int32_t>(), v.data_ptr<std::int32_t>() + v.numel());
  return t;
}

inline at::Tensor float_tensor(const FloatTensor& t) {
  at::Tensor x = at::empty(torch_sizes(t.shape), at::kFloat);
  std::copy(t.values.begin(), t.values.end(), x.data_ptr<float>());
  return x;
}

/// A float tensor's values as float32.
inline FloatTensor float_values(const at::Tensor& x) {
  const at::Tensor c = x.to(at::kFloat).contiguous();
  return {dla_shape(c), std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel())};
}

}  // namespace dla::qat

// op_signatures.hpp — C++ signatures of the dla:: op schemas (private to qat_bridge/src).
//
// The schemas themselves are in ops_schema.cpp (TORCH_LIBRARY); the kernels in
// ops_kernels.cpp are functions of exactly these types, and the C++ API and the Autograd
// kernels call the ops through typed dispatcher handles of these types.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Optional.h>

namespace dla::qat::sig {

using Tensor = at::Tensor;
using IntList = at::IntArrayRef;
using OptInt = c10::optional<std::int64_t>;
using Triple = std::tuple<Tensor, Tensor, Tensor>;

using Quantize = Triple(const Tensor& x, std::int64_t dtype, std::int64_t frac, OptInt clip_lo,
                        OptInt clip_hi, IntList hw);
using QuantizePerChannel = Triple(const Tensor& x, IntList fracs, std::int64_t axis,
                                  std::int64_t dtype, OptInt clip_lo, OptInt clip_hi, IntList hw);
using QuantizeLearnable = Triple(const Tensor& x, const Tensor& log2_scale, std::int64_t axis,
                                 std::int64_t dtype, OptInt clip_lo, OptInt clip_hi, IntList hw,
                                 bool smooth);
using Conv2d = Triple(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                      std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype,
                      IntList w_fracs, std::int64_t y_dtype, std::int64_t y_frac, IntList stride,
                      IntList padding, IntList dilation, std::int64_t groups, OptInt clip_lo,
                      OptInt clip_hi, IntList hw);
using Linear = Triple(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                      std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype,
                      IntList w_fracs, std::int64_t y_dtype, std::int64_t y_frac, OptInt clip_lo,
                      OptInt clip_hi, IntList hw);
using Add = Triple(const Tensor& a, const Tensor& b, std::int64_t a_dtype, std::int64_t a_frac,
                   std::int64_t b_dtype, std::int64_t b_frac, std::int64_t y_dtype,
                   std::int64_t y_frac, OptInt clip_lo, OptInt clip_hi, IntList hw);
using AvgPool2d = Triple(const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac,
                         std::int64_t y_dtype, std::int64_t y_frac, IntList kernel_size,
                         IntList stride, IntList padding, OptInt clip_lo, OptInt clip_hi,
                         IntList hw);
using MaxPool2d = std::tuple<Tensor, Tensor>(const Tensor& x, std::int64_t dtype,
                                             std::int64_t frac, IntList kernel_size,
                                             IntList stride, IntList padding);
using ChannelMoments = std::tuple<Tensor, Tensor, Tensor, Tensor>(const Tensor& y, std::int64_t channel_dim);
using Concat = Tensor(at::TensorList xs, std::int64_t dim, std::int64_t dtype, IntList fracs);

/// Typed dispatcher handle of dla::<name>.
template <typename Sig>
c10::TypedOperatorHandle<Sig> handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

}  // namespace dla::qat::sig

// ops_kernels.cpp — kernels of the dla:: ops, per dispatch key:
//   CPU:       validation, integer recovery and the integer kernels of kernels.hpp;
//   Autograd:  torch::autograd::Function wrappers: forward redispatches below autograd,
//              backward is the STE gradient (float op gradient times the clamp mask);
//   CompositeImplicitAutograd: dla::concat (checks, then at::cat).
// No CUDA kernels yet: a CUDA tensor reaches no kernel and the dispatcher says so.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "dla/error.hpp"
#include "dla/qat/hw_options.hpp"
#include "dla/qat/kernels.hpp"
#include "dla/qat/ops.hpp"
#include "channel_stats.hpp"
#include "op_signatures.hpp"

namespace dla::qat {
namespace {

using at::Tensor;
using sig::IntList;
using sig::OptInt;
using sig::Triple;

// ---------------------------------------------------------------------------
// Argument checks (every message starts with the op's name and names the argument)
// ---------------------------------------------------------------------------

void check_msg(const char* op, const std::string& msg) { TORCH_CHECK(msg.empty(), op, ": ", msg); }

HwOptions parse_hw(const char* op, IntList hw) {
  try {
    return HwOptions::from_list(hw.data(), hw.size());
  } catch (const dla::Error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
  return {};
}

DType act_dtype(const char* op, std::int64_t raw, const char* name) {
  check_msg(op, check_activation_dtype(raw, name));
  return static_cast<DType>(raw);
}

DType wgt_dtype(const char* op, std::int64_t raw, const char* name) {
  check_msg(op, check_weight_dtype(raw, name));
  return static_cast<DType>(raw);
}

int frac_arg(const char* op, std::int64_t frac, const std::string& name) {
  check_msg(op, check_frac(frac, name));
  return static_cast<int>(frac);
}

OutputSpec output_spec(const char* op, DType t, RoundMode mode, OptInt clip_lo, OptInt clip_hi) {
  OutputSpec out;
  out.type = t;
  out.mode = mode;
  if (clip_lo.has_value()) out.clip_lo = *clip_lo;
  if (clip_hi.has_value()) out.clip_hi = *clip_hi;
  check_msg(op, check_clip(t, out.clip_lo, out.clip_hi));
  return out;
}

void check_real_tensor(const char* op, const Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be a float32 or float64 tensor, got ", t.scalar_type());
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " is on ", t.device(),
              "; the dla ops have CPU kernels only");
}

void check_same_dtype(const char* op, const Tensor& a, const char* an, const Tensor& b,
                      const char* bn);

/// A conv weight: reals of x's type, or an int16 tensor of the integers.
void check_weight_tensor(const char* op, const Tensor& x, const Tensor& weight) {
  if (weight.defined() && weight.scalar_type() == at::kShort) {
    TORCH_CHECK(weight.device().is_cpu(), op, ": weight is on ", weight.device(), "; the dla ops have CPU kernels only");
    return;
  }
  check_real_tensor(op, weight, "weight");
  check_same_dtype(op, x, "x", weight, "weight");
}

void check_same_dtype(const char* op, const Tensor& a, const char* an, const Tensor& b,
                      const char* bn) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", an, " (", a.scalar_type(), ") and ", bn,
              " (", b.scalar_type(), ") must have the same dtype");
}

std::int64_t normalize_axis(const char* op, std::int64_t axis, std::int64_t dim) {
  TORCH_CHECK(axis >= -dim && axis < dim, op, ": axis ", axis, " is out of range for a ", dim,
              "-d tensor");
  return axis < 0 ? axis + dim : axis;
}

/// Fracs for `channels` channels: `fracs` has one entry (shared) or one per channel.
std::vector<int> channel_fracs(const char* op, IntList fracs, std::int64_t channels,
                               const char* name) {
  TORCH_CHECK(fracs.size() == 1 || static_cast<std::int64_t>(fracs.size()) == channels, op, ": ",
              name, " has ", fracs.size(), " entries; expected 1 or ", channels,
              " (one per channel)");
  std::vector<int> out(static_cast<std::size_t>(channels));
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::int64_t f = fracs.size() == 1 ? fracs[0] : fracs[static_cast<std::size_t>(c)];
    out[static_cast<std::size_t>(c)] = frac_arg(op, f, std::string(name) + "[" + std::to_string(c) + "]");
  }
  return out;
}

/// The integers q of x (a tensor of reals q * 2^-frac of type `dtype`), with an error
/// naming the argument and the first element that is not one.
template <typename T>
void recover(const char* op, const T* x, std::int64_t n, std::int64_t offset, DType dtype, int frac,
             const std::string& name, std::int16_t* out) {
  const DTypeInfo info = dtype_info(dtype);
  const std::int64_t bad = recover_ints<T>(x, n, frac, info.min, info.max, out);
  if (bad < 0) return;
  const double v = static_cast<double>(x[bad]);
  TORCH_CHECK(false, op, ": ", name, " is not a quantized tensor of type ", info.name, " at frac ",
              frac, ": element ", offset + bad, " is ", v, " and ", v, " * 2^", frac, " = ",
              std::ldexp(v, frac), " is not an integer in [", info.min, ", ", info.max,
              "] (pass the output of a dla op of that type and frac)");
}

/// `rows` rows of `len` reals, row r at frac fracs[r] (or fracs[0]), recovered across threads;
/// if any element is not such a real, a serial pass finds the first and reports it.
template <typename T>
bool recover_rows(const T* x, std::int64_t rows, std::int64_t len, DType dtype, const int* fracs,
                  bool per_row, std::int16_t* out) {
  const DTypeInfo info = dtype_info(dtype);
  std::atomic<bool> ok{true};
  const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{1} << 16) / std::max<std::int64_t>(len, 1));
  at::parallel_for(0, rows, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const int f = fracs[per_row ? r : 0];
      if (recover_ints<T>(x + r * len, len, f, info.min, info.max, out + r * len) >= 0) ok = false;
    }
  });
  return ok;
}

template <typename T>
std::vector<std::int16_t> recover_tensor(const char* op, const Tensor& t, DType dtype, int frac,
                                         const char* name) {
  const Tensor c = t.contiguous();
  std::vector<std::int16_t> q(static_cast<std::size_t>(c.numel()));
  const std::int64_t block = std::int64_t{1} << 16, n = c.numel();
  const std::int64_t full = n / block;  // full blocks across threads, the tail here
  bool ok = recover_rows<T>(c.data_ptr<T>(), full, block, dtype, &frac, false, q.data());
  if (ok) ok = recover_rows<T>(c.data_ptr<T>() + full * block, 1, n - full * block, dtype, &frac, false,
                               q.data() + full * block);
  if (!ok) recover<T>(op, c.data_ptr<T>(), n, 0, dtype, frac, name, q.data());
  return q;
}

/// Weights [oc][...] with one frac per output channel; an int16 tensor holds the integers
/// themselves (quantize_per_channel_scaled's as_ints), checked against the type's range.
template <typename T>
std::vector<std::int16_t> recover_weights(const char* op, const Tensor& w, DType dtype,
                                          const std::vector<int>& fracs) {
  const Tensor c = w.contiguous();
  if (c.scalar_type() == at::kShort) {
    const DTypeInfo info = dtype_info(dtype);
    const std::int16_t* p = c.data_ptr<std::int16_t>();
    std::vector<std::int16_t> q(p, p + c.numel());
    std::int16_t lo = 0, hi = 0;
    for (const std::int16_t v : q) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    TORCH_CHECK(lo >= info.min && hi <= info.max, op, ": weight holds integers in [", lo, ", ", hi,
                "], outside ", info.name, " [", info.min, ", ", info.max, "]");
    return q;
  }
  const std::int64_t oc = c.size(0), per = oc == 0 ? 0 : c.numel() / oc;
  std::vector<std::int16_t> q(static_cast<std::size_t>(c.numel()));
  const T* p = c.data_ptr<T>();
  if (recover_rows<T>(p, oc, per, dtype, fracs.data(), true, q.data())) return q;
  for (std::int64_t o = 0; o < oc; ++o) {
    recover<T>(op, p + o * per, per, o * per, dtype, fracs[static_cast<std::size_t>(o)],
               "weight (output channel " + std::to_string(o) + ")", q.data() + o * per);
  }
  return q;
}

/// Bias reals quantized to acc_bits integers at frac f_x + f_w[oc] (the hardware's bias).
template <typename T>
std::vector<std::int64_t> quantize_bias(const Tensor& bias, int x_frac, const std::vector<int>& w_fracs,
                                        const HwOptions& hw, Counts& counts) {
  const Tensor c = bias.contiguous();
  const T* p = c.data_ptr<T>();
  OutputSpec spec;
  spec.type = DType::I32;
  spec.mode = hw.rounding;
  spec.clip_lo = signed_min(hw.acc_bits);
  spec.clip_hi = signed_max(hw.acc_bits);
  std::vector<std::int64_t> out(static_cast<std::size_t>(c.numel()));
  for (std::int64_t o = 0; o < c.numel(); ++o) {
    bool saturated = false;
    out[static_cast<std::size_t>(o)] = quantize_real(
        p[o], x_frac + w_fracs[static_cast<std::size_t>(o)], spec, &saturated);
    counts.saturations += saturated ? 1 : 0;
  }
  return out;
}

Tensor counts_tensor(const Counts& c) {
  return at::tensor(std::vector<std::int64_t>{c.overflows, c.saturations}, at::kLong);
}

bool* mask_ptr(Tensor& mask) { return mask.data_ptr<bool>(); }

// ---------------------------------------------------------------------------
// CPU kernels
// ---------------------------------------------------------------------------

/// quantize_channels_cpu choosing each channel's frac itself, as the "max" weight observer
/// does, from a read of the channel just before quantizing it (so a channel comes from
/// memory once): frac_for_bound(max |x[c] * scale[c]|, the type's max). The chosen fracs and
/// those maxima (NaN where not finite) are left here.
struct MaxFracChoice {
  std::vector<int> fracs;
  std::vector<double> max_abs;
};

/// want_mask false: the mask is written only when an element saturated (a second pass);
/// otherwise it is an all-true view without storage. as_ints: y is an int16 tensor of the
/// integers q instead of the reals q * 2^-frac. choice (axis 0 only): `fracs` is ignored and
/// each channel's frac chosen (MaxFracChoice).
Triple quantize_channels_cpu(const char* op, const Tensor& x, std::int64_t axis,
                             const std::vector<int>& fracs, DType dtype, OptInt clip_lo,
                             OptInt clip_hi, const HwOptions& hw, const Tensor& scales = Tensor(),
                             const Tensor& shifts = Tensor(), bool want_mask = true, bool as_ints = false,
                             MaxFracChoice* choice = nullptr) {
  const OutputSpec out = output_spec(op, dtype, hw.rounding, clip_lo, clip_hi);
  const Tensor xc = x.contiguous();
  Tensor y = as_ints ? at::empty(xc.sizes(), xc.options().dtype(at::kShort)) : at::empty_like(xc);
  Tensor mask = want_mask ? at::empty(xc.sizes(), xc.options().dtype(at::kBool)) : Tensor();
  const bool per_channel = fracs.size() > 1 || choice != nullptr;
  std::int64_t outer = 1, channels = 1, inner = xc.numel();
  if (per_channel) {
    channels = xc.size(axis);
    outer = 1;
    for (std::int64_t d = 0; d < axis; ++d) outer *= xc.size(d);
    inner = channels == 0 ? 0 : xc.numel() / (outer * channels);
  }
  const int* pf = fracs.data();
  if (choice != nullptr) {
    TORCH_CHECK(outer == 1, op, ": fracs are chosen per channel of dimension 0 only");
    choice->fracs.assign(static_cast<std::size_t>(channels), 0);
    choice->max_abs.assign(static_cast<std::size_t>(channels), 0.0);
    pf = choice->fracs.data();
  }
  const double type_max = static_cast<double>(dtype_info(dtype).max);
  // Split into rows of one frac (per channel) or, with one frac, into blocks, across threads.
  const std::int64_t rows = per_channel ? outer * channels : 1;
  const std::int64_t row_len = per_channel ? inner : xc.numel();
  const std::int64_t block = per_channel ? row_len : std::int64_t{1} << 15;
  const std::int64_t blocks_per_row = row_len == 0 ? 0 : (row_len + block - 1) / block;
  Counts counts;
  std::mutex mu;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "dla_quantize", [&] {
    const scalar_t* px = xc.data_ptr<scalar_t>();
    const scalar_t* ps = scales.defined() ? scales.data_ptr<scalar_t>() : nullptr;
    const scalar_t* pb = shifts.defined() ? shifts.data_ptr<scalar_t>() : nullptr;
    scalar_t* py = as_ints ? nullptr : y.data_ptr<scalar_t>();
    std::int16_t* pi = as_ints ? y.data_ptr<std::int16_t>() : nullptr;
    bool* pm = mask.defined() ? mask_ptr(mask) : nullptr;
    const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(block, 1));
    at::parallel_for(0, rows * blocks_per_row, grain, [&](std::int64_t begin, std::int64_t end) {
      Counts c;
      for (std::int64_t i = begin; i < end; ++i) {
        const std::int64_t row = i / blocks_per_row, start = row * row_len + (i % blocks_per_row) * block;
        const std::int64_t len = std::min(block, (row + 1) * row_len - start);
        const std::int64_t ch = rows > 1 ? row % channels : 0;
        if (choice != nullptr) {  // rows are channels here (outer == 1, one block per row)
          ValueRange<scalar_t> r;
          r.add(px + start, len);
          scalar_t lo = r.lo, hi = r.hi;
          if (ps != nullptr) {  // the range of x * s is the products of x's range (rounding is monotone)
            const scalar_t a = lo * ps[ch], b = hi * ps[ch];
            lo = std::min(a, b), hi = std::max(a, b);
          }
          const double m = r.nan ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(std::max(-lo, hi));
          choice->max_abs[static_cast<std::size_t>(ch)] = m;
          choice->fracs[static_cast<std::size_t>(ch)] = frac_for_bound(m, type_max);
        }
        c += quantize_forward<scalar_t>(px + start, 1, 1, len, pf + ch, out,
                                        py == nullptr ? nullptr : py + start, pm == nullptr ? nullptr : pm + start,
                                        ps == nullptr ? nullptr : ps + ch, pb == nullptr ? nullptr : pb + ch,
                                        pi == nullptr ? nullptr : pi + start);
      }
      const std::lock_guard<std::mutex> lock(mu);
      counts += c;
    });
  });
  if (!mask.defined()) {
    if (counts.saturations != 0) {
      return quantize_channels_cpu(op, x, axis, choice != nullptr ? choice->fracs : fracs, dtype, clip_lo, clip_hi,
                                   hw, scales, shifts, true, as_ints);
    }
    mask = at::ones({}, xc.options().dtype(at::kBool)).expand(xc.sizes());
  }
  return {y, mask, counts_tensor(counts)};
}

Triple quantize_cpu(const Tensor& x, std::int64_t dtype, std::int64_t frac, OptInt clip_lo,
                    OptInt clip_hi, IntList hw_list) {
  const char* op = "dla::quantize";
  const HwOptions hw = parse_hw(op, hw_list);
  check_real_tensor(op, x, "x");
  const DType t = act_dtype(op, dtype, "dtype");
  const std::vector<int> fracs{frac_arg(op, frac, "frac")};
  return quantize_channels_cpu(op, x, 0, fracs, t, clip_lo, clip_hi, hw);
}

/// The checked arguments every per-channel quantize op shares.
struct PerChannelArgs {
  HwOptions hw;
  DType dtype;
  std::int64_t axis;
};

PerChannelArgs per_channel_args(const char* op, const Tensor& x, std::int64_t axis, std::int64_t dtype,
                                IntList hw_list) {
  PerChannelArgs a;
  a.hw = parse_hw(op, hw_list);
  check_real_tensor(op, x, "x");
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  a.dtype = act_dtype(op, dtype, "dtype");
  a.axis = normalize_axis(op, axis, x.dim());
  return a;
}

/// A per-channel vector argument `name` of an op on `ref` (reals of ref's type, shape
/// [channels] for the channels of `axis`), contiguous.
Tensor channel_vector(const char* op, const Tensor& ref, const char* ref_name, const Tensor& v, const char* name,
                      std::int64_t channels, std::int64_t axis) {
  check_real_tensor(op, v, name);
  check_same_dtype(op, ref, ref_name, v, name);
  TORCH_CHECK(v.dim() == 1 && v.size(0) == channels, op, ": ", name, " must have shape [", channels,
              "] (one per channel of axis ", axis, "), got ", v.sizes());
  return v.contiguous();
}

Triple quantize_per_channel_cpu(const Tensor& x, IntList fracs, std::int64_t axis,
                                std::int64_t dtype, OptInt clip_lo, OptInt clip_hi,
                                IntList hw_list) {
  const char* op = "dla::quantize_per_channel";
  const PerChannelArgs a = per_channel_args(op, x, axis, dtype, hw_list);
  std::vector<int> f = channel_fracs(op, fracs, x.size(a.axis), "fracs");
  if (fracs.size() == 1 && x.size(a.axis) != 1) f.resize(1);
  return quantize_channels_cpu(op, x, a.axis, f, a.dtype, clip_lo, clip_hi, a.hw);
}

/// quantize_per_channel(x * scale[c] (+ shift[c])) without the temporaries: the elements
/// are what a separate multiply (and add) give, bit for bit (a weight with its BatchNorm
/// folded in; a BatchNorm's output).
Triple quantize_per_channel_scaled_cpu(const Tensor& x, const Tensor& scale, const c10::optional<Tensor>& shift,
                                       IntList fracs, std::int64_t axis, std::int64_t dtype, OptInt clip_lo,
                                       OptInt clip_hi, IntList hw_list, bool want_mask, bool as_ints) {
  const char* op = "dla::quantize_per_channel_scaled";
  const PerChannelArgs a = per_channel_args(op, x, axis, dtype, hw_list);
  const std::int64_t ax = a.axis, channels = x.size(ax);
  const Tensor s = channel_vector(op, x, "x", scale, "scale", channels, ax);
  const Tensor b = shift.has_value() && shift->defined() ? channel_vector(op, x, "x", *shift, "shift", channels, ax)
                                                         : Tensor();
  std::vector<int> f = channel_fracs(op, fracs, channels, "fracs");
  if (f.size() == 1 && channels != 1) f.assign(static_cast<std::size_t>(channels), f[0]);
  return quantize_channels_cpu(op, x, ax, f, a.dtype, clip_lo, clip_hi, a.hw, s, b, want_mask, as_ints);
}

/// Each channel of dimension 0 of x (times scale[c]) quantized at the frac of the "max"
/// weight observer, chosen from the same read of the channel (MaxFracChoice): (y, mask,
/// counts, fracs, max_abs) with the mask as quantize_per_channel_scaled's want_mask false.
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> quantize_per_channel_max_cpu(const Tensor& x,
                                                                             const c10::optional<Tensor>& scale,
                                                                             std::int64_t dtype, IntList hw_list,
                                                                             bool as_ints) {
  const char* op = "dla::quantize_per_channel_max";
  const PerChannelArgs a = per_channel_args(op, x, 0, dtype, hw_list);
  const std::int64_t channels = x.size(0);
  TORCH_CHECK(channels == 0 || x.numel() / channels > 0, op, ": x has no elements per channel (shape ", x.sizes(),
              ")");
  const Tensor s = scale.has_value() && scale->defined() ? channel_vector(op, x, "x", *scale, "scale", channels, 0)
                                                         : Tensor();
  MaxFracChoice choice;
  const Triple r = quantize_channels_cpu(op, x, 0, {}, a.dtype, c10::nullopt, c10::nullopt, a.hw, s, Tensor(), false,
                                         as_ints, &choice);
  Tensor fracs = at::empty({channels}, at::kLong);
  Tensor max_abs = at::empty({channels}, at::kDouble);
  std::copy(choice.fracs.begin(), choice.fracs.end(), fracs.data_ptr<std::int64_t>());
  std::copy(choice.max_abs.begin(), choice.max_abs.end(), max_abs.data_ptr<double>());
  return {std::get<0>(r), std::get<1>(r), std::get<2>(r), fracs, max_abs};
}

/// frac_for_bound of each magnitude (float64) against its bound (one per magnitude, or one
/// for all): the frac rule of the Python observers, here once.
Tensor fracs_for_bound_cpu(const Tensor& mags, const Tensor& bounds) {
  const char* op = "dla::fracs_for_bound";
  TORCH_CHECK(mags.scalar_type() == at::kDouble && bounds.scalar_type() == at::kDouble, op,
              ": mags and bounds must be float64 tensors, got ", mags.scalar_type(), " and ", bounds.scalar_type());
  TORCH_CHECK(bounds.numel() == 1 || bounds.sizes() == mags.sizes(), op, ": bounds has shape ", bounds.sizes(),
              "; expected one element or mags' shape ", mags.sizes());
  const Tensor m = mags.contiguous(), b = bounds.contiguous();
  Tensor out = at::empty(m.sizes(), m.options().dtype(at::kLong));
  const double* pm = m.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  std::int64_t* po = out.data_ptr<std::int64_t>();
  const bool one_bound = b.numel() == 1;
  for (std::int64_t i = 0; i < m.numel(); ++i) po[i] = frac_for_bound(pm[i], pb[one_bound ? 0 : i]);
  return out;
}

Triple quantize_learnable_cpu(const Tensor& x, const Tensor& log2_scale, std::int64_t axis,
                              std::int64_t dtype, OptInt clip_lo, OptInt clip_hi, IntList hw_list,
                              bool smooth) {
  const char* op = "dla::quantize_learnable";
  const HwOptions hw = parse_hw(op, hw_list);
  check_real_tensor(op, x, "x");
  check_real_tensor(op, log2_scale, "log2_scale");
  const DType t = act_dtype(op, dtype, "dtype");
  const std::int64_t ax = x.dim() == 0 ? 0 : normalize_axis(op, axis, x.dim());
  const std::int64_t channels = log2_scale.numel();
  TORCH_CHECK(channels == 1 || (x.dim() > 0 && channels == x.size(ax)), op, ": log2_scale has ",
              channels, " elements; expected 1 (per tensor) or ", x.dim() > 0 ? x.size(ax) : 1,
              " (one per channel of axis ", ax, ")");
  const OutputSpec out = output_spec(op, t, hw.rounding, clip_lo, clip_hi);
  if (smooth) {
    // Differentiable surrogate: no rounding of x / s, no rounding of log2_scale.
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
    if (channels > 1) shape[static_cast<std::size_t>(ax)] = channels;
    const Tensor s = at::exp2(log2_scale.to(x.scalar_type())).reshape(shape);
    const Tensor v = x / s;
    const Tensor mask = (v >= static_cast<double>(out.lo())) & (v <= static_cast<double>(out.hi()));
    const Tensor y = at::clamp(v, static_cast<double>(out.lo()), static_cast<double>(out.hi())) * s;
    const std::int64_t sat = mask.numel() - mask.sum().item<std::int64_t>();
    return {y, mask, counts_tensor({0, sat})};
  }
  const Tensor l = log2_scale.to(at::kDouble).contiguous();
  std::vector<int> fracs(static_cast<std::size_t>(channels));
  for (std::int64_t c = 0; c < channels; ++c) {
    const double lv = l.data_ptr<double>()[c];
    const int f = frac_from_log2_scale(lv);
    TORCH_CHECK(f >= kFracMin && f <= kFracMax, op, ": log2_scale[", c, "] = ", lv,
                " gives frac ", f, ", out of range [", kFracMin, ", ", kFracMax, "]");
    fracs[static_cast<std::size_t>(c)] = f;
  }
  return quantize_channels_cpu(op, x, ax, fracs, t, clip_lo, clip_hi, hw);
}

/// Shared set-up of conv2d and linear: types, fracs, integers, bias, requant params.
struct MacSetup {
  HwOptions hw;
  DType x_type, w_type, y_type;
  int x_frac, y_frac;
  std::vector<int> w_fracs, shifts;
  std::vector<std::int64_t> bias_q;
  Counts bias_counts;
  OutputSpec out;
};

MacSetup mac_setup(const char* op, const Tensor& x, const Tensor& weight,
                   const c10::optional<Tensor>& bias, std::int64_t x_dtype, std::int64_t x_frac,
                   std::int64_t w_dtype, IntList w_fracs, std::int64_t y_dtype, std::int64_t y_frac,
                   OptInt clip_lo, OptInt clip_hi, IntList hw_list) {
  MacSetup s;
  s.hw = parse_hw(op, hw_list);
  check_real_tensor(op, x, "x");
  check_weight_tensor(op, x, weight);
  s.x_type = act_dtype(op, x_dtype, "x_dtype");
  s.w_type = wgt_dtype(op, w_dtype, "w_dtype");
  s.y_type = act_dtype(op, y_dtype, "y_dtype");
  check_msg(op, check_mac_support(s.x_type, s.w_type, s.hw));
  s.x_frac = frac_arg(op, x_frac, "x_frac");
  s.y_frac = frac_arg(op, y_frac, "y_frac");
  const std::int64_t oc = weight.size(0);
  s.w_fracs = channel_fracs(op, w_fracs, oc, "w_fracs");
  s.out = output_spec(op, s.y_type, s.hw.rounding, clip_lo, clip_hi);
  s.shifts.resize(static_cast<std::size_t>(oc));
  for (std::int64_t o = 0; o < oc; ++o) {
    s.shifts[static_cast<std::size_t>(o)] = requant_shift(s.x_frac, s.w_fracs[static_cast<std::size_t>(o)], s.y_frac);
  }
  if (bias.has_value() && bias->defined()) {
    check_real_tensor(op, *bias, "bias");
    check_same_dtype(op, x, "x", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == oc, op, ": bias must have shape [", oc,
                "] (one per output channel), got ", bias->sizes());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_bias", [&] {
      s.bias_q = quantize_bias<scalar_t>(*bias, s.x_frac, s.w_fracs, s.hw, s.bias_counts);
    });
  }
  return s;
}

MacRequant mac_requant(const MacSetup& s) {
  MacRequant rq;
  rq.acc = s.hw.acc_spec();
  rq.out = s.out;
  rq.shift = s.shifts.data();
  rq.bias = s.bias_q.empty() ? nullptr : s.bias_q.data();
  rq.frac_y = s.y_frac;
  rq.max_abs_x = max_abs(s.x_type);
  rq.max_abs_w = max_abs(s.w_type);
  return rq;
}

/// conv2d_cpu and conv2d_sums_cpu: the checks, the integers and the threads; `sums_only`
/// writes the exact sums as reals instead of requantizing them.
Triple conv2d_run(const char* op, const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                  std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype, IntList w_fracs,
                  std::int64_t y_dtype, std::int64_t y_frac, IntList stride, IntList padding,
                  IntList dilation, std::int64_t groups, OptInt clip_lo, OptInt clip_hi,
                  IntList hw_list, bool sums_only) {
  check_real_tensor(op, x, "x");
  check_weight_tensor(op, x, weight);
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-d [n, c, h, w], got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be 4-d [out_channels, in_channels / groups, kh, kw], got shape ",
              weight.sizes());
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
              ": stride, padding and dilation take two values each");
  Conv2dGeometry g;
  g.n = x.size(0), g.c = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.oc = weight.size(0), g.kh = weight.size(2), g.kw = weight.size(3);
  g.stride_h = stride[0], g.stride_w = stride[1];
  g.pad_h = padding[0], g.pad_w = padding[1];
  g.dil_h = dilation[0], g.dil_w = dilation[1];
  g.groups = groups;
  check_msg(op, g.validate());
  TORCH_CHECK(weight.size(1) * groups == g.c, op, ": weight has ", weight.size(1),
              " input channels per group, but x has ", g.c, " channels in ", groups,
              " group(s) (expected weight.size(1) == ", groups > 0 ? g.c / groups : 0, ")");
  MacSetup s = mac_setup(op, x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype, y_frac,
                         clip_lo, clip_hi, hw_list);
  MacRequant rq = mac_requant(s);
  rq.sums_only = sums_only;
  Tensor y = at::empty({g.n, g.oc, g.out_h(), g.out_w()}, x.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor mask = sums_only ? Tensor() : at::empty(y.sizes(), y.options().dtype(at::kBool));
  Counts total = s.bias_counts;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_conv2d", [&] {
    const std::vector<std::int16_t> xq = recover_tensor<scalar_t>(op, x, s.x_type, s.x_frac, "x");
    const std::vector<std::int16_t> wq = recover_weights<scalar_t>(op, weight, s.w_type, s.w_fracs);
    // Weights packed once per call, in slices across threads; tiles and pixel chunks split
    // across threads (a batch of one image uses every thread too).
    Conv2dPlan<scalar_t> plan(g, xq.data(), wq.data(), rq, y.data_ptr<scalar_t>(),
                              sums_only ? nullptr : mask_ptr(mask), 0, g.n);
    at::parallel_for(0, plan.packs(), 1, [&](std::int64_t begin, std::int64_t end) { plan.pack(begin, end); });
    at::parallel_for(0, plan.tiles(), 1, [&](std::int64_t begin, std::int64_t end) { plan.fill_tiles(begin, end); });
    std::mutex mu;
    at::parallel_for(0, plan.tasks(), 1, [&](std::int64_t begin, std::int64_t end) {
      const Counts c = plan.run(begin, end);
      const std::lock_guard<std::mutex> lock(mu);
      total += c;
    });
  });
  return {y, mask, counts_tensor(total)};
}

Triple conv2d_cpu(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                  std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype, IntList w_fracs,
                  std::int64_t y_dtype, std::int64_t y_frac, IntList stride, IntList padding,
                  IntList dilation, std::int64_t groups, OptInt clip_lo, OptInt clip_hi,
                  IntList hw_list) {
  return conv2d_run("dla::conv2d", x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype, y_frac, stride,
                    padding, dilation, groups, clip_lo, clip_hi, hw_list, false);
}

/// The exact integer sums of conv2d (no bias, accumulator or output stage) as reals
/// sum * 2^-(x_frac + w_fracs[oc]), rounded to x's float type: training glue (a folded
/// BatchNorm's batch statistics from the integer convolution itself).
Tensor conv2d_sums_cpu(const Tensor& x, const Tensor& weight, std::int64_t x_dtype, std::int64_t x_frac,
                       std::int64_t w_dtype, IntList w_fracs, IntList stride, IntList padding, IntList dilation,
                       std::int64_t groups, IntList hw_list) {
  const std::int64_t i16 = static_cast<std::int64_t>(DType::I16);  // any output type: no output stage runs
  return std::get<0>(conv2d_run("dla::conv2d_sums", x, weight, c10::nullopt, x_dtype, x_frac, w_dtype, w_fracs, i16,
                                0, stride, padding, dilation, groups, c10::nullopt, c10::nullopt, hw_list, true));
}

Triple linear_cpu(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                  std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype, IntList w_fracs,
                  std::int64_t y_dtype, std::int64_t y_frac, OptInt clip_lo, OptInt clip_hi,
                  IntList hw_list) {
  const char* op = "dla::linear";
  check_real_tensor(op, x, "x");
  check_real_tensor(op, weight, "weight");
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-d [out_features, in_features], got shape ",
              weight.sizes());
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), op, ": x has shape ", x.sizes(),
              " but weight expects ", weight.size(1), " input features in the last dimension");
  MacSetup s = mac_setup(op, x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype, y_frac,
                         clip_lo, clip_hi, hw_list);
  const MacRequant rq = mac_requant(s);
  const std::int64_t k = weight.size(1), n = weight.size(0);
  const std::int64_t m = k == 0 ? 0 : x.numel() / k;
  std::vector<std::int64_t> out_shape = x.sizes().vec();
  out_shape.back() = n;
  Tensor y = at::empty(out_shape, x.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor mask = at::empty(y.sizes(), y.options().dtype(at::kBool));
  Counts total = s.bias_counts;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_linear", [&] {
    const std::vector<std::int16_t> xq = recover_tensor<scalar_t>(op, x, s.x_type, s.x_frac, "x");
    const std::vector<std::int16_t> wq = recover_weights<scalar_t>(op, weight, s.w_type, s.w_fracs);
    std::mutex mu;
    at::parallel_for(0, m, 64, [&](std::int64_t begin, std::int64_t end) {
      const Counts c = linear_forward<scalar_t>(m, k, n, xq.data(), wq.data(), rq,
                                                y.data_ptr<scalar_t>(), mask_ptr(mask), begin, end);
      const std::lock_guard<std::mutex> lock(mu);
      total += c;
    });
  });
  return {y, mask, counts_tensor(total)};
}

Triple add_cpu(const Tensor& a, const Tensor& b, std::int64_t a_dtype, std::int64_t a_frac,
               std::int64_t b_dtype, std::int64_t b_frac, std::int64_t y_dtype, std::int64_t y_frac,
               OptInt clip_lo, OptInt clip_hi, IntList hw_list) {
  const char* op = "dla::add";
  const HwOptions hw = parse_hw(op, hw_list);
  check_real_tensor(op, a, "a");
  check_real_tensor(op, b, "b");
  check_same_dtype(op, a, "a", b, "b");
  TORCH_CHECK(a.sizes() == b.sizes(), op, ": a has shape ", a.sizes(), " but b has shape ",
              b.sizes(), "; the vector unit adds tensors of one shape (no broadcasting)");
  const DType at_ = act_dtype(op, a_dtype, "a_dtype");
  const DType bt = act_dtype(op, b_dtype, "b_dtype");
  const DType yt = act_dtype(op, y_dtype, "y_dtype");
  const int fa = frac_arg(op, a_frac, "a_frac"), fb = frac_arg(op, b_frac, "b_frac");
  const int fy = frac_arg(op, y_frac, "y_frac");
  const AddShifts sh = add_shifts(fa, fb, fy);
  TORCH_CHECK(sh.shift_a <= 31 && sh.shift_b <= 31, op, ": a_frac (", fa, ") and b_frac (", fb,
              ") differ by more than 31; the vector unit aligns by at most 31 bits");
  const OutputSpec out = output_spec(op, yt, hw.rounding, clip_lo, clip_hi);
  Tensor y = at::empty(a.sizes(), a.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor mask = at::empty(a.sizes(), a.options().dtype(at::kBool));
  Counts counts;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "dla_add", [&] {
    // Blocks across threads, each recovered into integers on the stack and added: no
    // tensor-sized temporaries. A block that holds a value off the grid stops the pass and
    // recover_tensor names the first such element.
    const Tensor ac = a.contiguous(), bc = b.contiguous();
    const scalar_t* pa = ac.data_ptr<scalar_t>();
    const scalar_t* pb = bc.data_ptr<scalar_t>();
    scalar_t* py = y.data_ptr<scalar_t>();
    bool* pm = mask_ptr(mask);
    const DTypeInfo ia = dtype_info(at_), ib = dtype_info(bt);
    constexpr std::int64_t kBlock = 4096;
    const std::int64_t n = a.numel(), blocks = (n + kBlock - 1) / kBlock;
    std::atomic<bool> on_grid{true};
    std::atomic<std::int64_t> saturations{0};
    at::parallel_for(0, blocks, 8, [&](std::int64_t begin, std::int64_t end) {
      std::array<std::int16_t, kBlock> aq, bq;
      std::int64_t sat = 0;
      for (std::int64_t blk = begin; blk < end && on_grid.load(std::memory_order_relaxed); ++blk) {
        const std::int64_t i0 = blk * kBlock, len = std::min(kBlock, n - i0);
        if (recover_ints<scalar_t>(pa + i0, len, fa, ia.min, ia.max, aq.data()) >= 0 ||
            recover_ints<scalar_t>(pb + i0, len, fb, ib.min, ib.max, bq.data()) >= 0) {
          on_grid = false;
          break;
        }
        sat += add_forward<scalar_t>(aq.data(), bq.data(), len, sh, out, fy, py + i0, pm + i0).saturations;
      }
      saturations += sat;
    });
    if (!on_grid) {
      recover_tensor<scalar_t>(op, a, at_, fa, "a");  // throws, naming the element
      recover_tensor<scalar_t>(op, b, bt, fb, "b");
      TORCH_CHECK(false, op, ": an input is not on its type's grid");  // not reached
    }
    counts.saturations = saturations;
  });
  return {y, mask, counts_tensor(counts)};
}

Pool2dGeometry pool_geometry(const char* op, const Tensor& x, IntList kernel_size, IntList stride,
                             IntList padding) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-d [n, c, h, w], got shape ", x.sizes());
  TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2, op,
              ": kernel_size, stride and padding take two values each");
  Pool2dGeometry g;
  g.n = x.size(0), g.c = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.kh = kernel_size[0], g.kw = kernel_size[1];
  g.stride_h = stride[0], g.stride_w = stride[1];
  g.pad_h = padding[0], g.pad_w = padding[1];
  check_msg(op, g.validate());
  return g;
}

Triple avg_pool2d_cpu(const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac,
                      std::int64_t y_dtype, std::int64_t y_frac, IntList kernel_size,
                      IntList stride, IntList padding, OptInt clip_lo, OptInt clip_hi,
                      IntList hw_list) {
  const char* op = "dla::avg_pool2d";
  const HwOptions hw = parse_hw(op, hw_list);
  check_real_tensor(op, x, "x");
  const Pool2dGeometry g = pool_geometry(op, x, kernel_size, stride, padding);
  const DType xt = act_dtype(op, x_dtype, "x_dtype");
  const DType yt = act_dtype(op, y_dtype, "y_dtype");
  const int fx = frac_arg(op, x_frac, "x_frac"), fy = frac_arg(op, y_frac, "y_frac");
  const std::int64_t n = g.kh * g.kw;
  const std::optional<std::int64_t> m = avgpool_multiplier(n, hw.avgpool_shift);
  TORCH_CHECK(m.has_value(), op, ": a window of ", n, " elements has no 16-bit multiplier M = round(2^",
              hw.avgpool_shift, " / ", n, ") in [1, 65535]; change avgpool_shift or the window");
  const int shift = avgpool_requant_shift(hw.avgpool_shift, fx, fy);
  const OutputSpec out = output_spec(op, yt, hw.rounding, clip_lo, clip_hi);
  Tensor y = at::empty({g.n, g.c, g.out_h(), g.out_w()}, x.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor mask = at::empty(y.sizes(), y.options().dtype(at::kBool));
  Counts counts;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_avg_pool2d", [&] {
    const std::vector<std::int16_t> xq = recover_tensor<scalar_t>(op, x, xt, fx, "x");
    counts = avg_pool2d_forward<scalar_t>(g, xq.data(), *m, shift, out, fy, y.data_ptr<scalar_t>(),
                                          mask_ptr(mask));
  });
  return {y, mask, counts_tensor(counts)};
}

std::tuple<Tensor, Tensor> max_pool2d_cpu(const Tensor& x, std::int64_t dtype, std::int64_t frac,
                                          IntList kernel_size, IntList stride, IntList padding) {
  const char* op = "dla::max_pool2d";
  check_real_tensor(op, x, "x");
  const Pool2dGeometry g = pool_geometry(op, x, kernel_size, stride, padding);
  const DType t = act_dtype(op, dtype, "dtype");
  const int f = frac_arg(op, frac, "frac");
  Tensor y = at::empty({g.n, g.c, g.out_h(), g.out_w()}, x.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor indices = at::empty(y.sizes(), y.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_max_pool2d", [&] {
    const std::vector<std::int16_t> xq = recover_tensor<scalar_t>(op, x, t, f, "x");
    max_pool2d_forward<scalar_t>(g, xq.data(), dtype_info(t).min, f, y.data_ptr<scalar_t>(),
                                 indices.data_ptr<std::int64_t>());
  });
  return {y, indices};
}

/// The integer biases conv2d / linear add: the same quantize_bias as their forward.
std::tuple<Tensor, Tensor> bias_integers_cpu(const Tensor& bias, std::int64_t x_frac, IntList w_fracs,
                                             IntList hw_list) {
  const char* op = "dla::bias_integers";
  const HwOptions hw = parse_hw(op, hw_list);
  check_real_tensor(op, bias, "bias");
  TORCH_CHECK(bias.dim() == 1, op, ": bias must be 1-d (one per output channel), got shape ", bias.sizes());
  const int fx = frac_arg(op, x_frac, "x_frac");
  const std::vector<int> fw = channel_fracs(op, w_fracs, bias.size(0), "w_fracs");  // one per channel
  Counts counts;
  std::vector<std::int64_t> q;
  AT_DISPATCH_FLOATING_TYPES(bias.scalar_type(), "dla_bias_integers", [&] {
    q = quantize_bias<scalar_t>(bias.detach(), fx, fw, hw, counts);
  });
  return {at::tensor(q, at::kLong), counts_tensor(counts)};
}

/// out[i] = mask[i] ? grad[i] : 0 for i < n, branch-free on the bits (a branch per element
/// mispredicts on ReLU-like masks and keeps the loop scalar): the mask byte (0 or 1) becomes
/// an all-zeros or all-ones word.
template <typename T>
void ste_grad_run(const T* __restrict grad, const bool* __restrict mask, T* __restrict out, std::int64_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  static_assert(sizeof(Bits) == sizeof(T) && sizeof(bool) == 1);
  for (std::int64_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, grad + i, sizeof b);  // the bits, without breaking the aliasing rules
    std::uint8_t m;
    std::memcpy(&m, mask + i, 1);
    b &= Bits{0} - static_cast<Bits>(m);
    std::memcpy(out + i, &b, sizeof b);
  }
}

/// grad where mask is true, else 0 (the STE gradient of a requantizing op), in one pass:
/// on the CPU, at::where over a bool mask and a zero scalar takes ~60x a copy's time.
Tensor ste_grad_cpu(const Tensor& grad, const Tensor& mask) {
  const char* op = "dla::ste_grad";
  check_real_tensor(op, grad, "grad");
  TORCH_CHECK(mask.defined() && mask.scalar_type() == at::kBool, op, ": mask must be a bool tensor");
  TORCH_CHECK(mask.sizes() == grad.sizes(), op, ": mask has shape ", mask.sizes(), " but grad has shape ",
              grad.sizes());
  TORCH_CHECK(mask.device().is_cpu(), op, ": mask is on ", mask.device(), "; grad is on the CPU");
  const Tensor g = grad.contiguous();
  const Tensor m = mask.contiguous();
  Tensor out = at::empty(g.sizes(), g.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dla_ste_grad", [&] {
    const scalar_t* pg = g.data_ptr<scalar_t>();
    const bool* pm = m.data_ptr<bool>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), std::int64_t{1} << 15, [&](std::int64_t begin, std::int64_t end) {
      ste_grad_run(pg + begin, pm + begin, po + begin, end - begin);
    });
  });
  return out;
}

/// The layout of a tensor as [outer][channels][inner] around `channel_dim`.
struct ChannelLayout {
  std::int64_t outer = 1, channels = 1, inner = 1;
  ChannelLayout(const Tensor& t, std::int64_t ax) : channels(t.size(ax)) {
    for (std::int64_t d = 0; d < ax; ++d) outer *= t.size(d);
    inner = channels == 0 ? 0 : t.numel() / (outer * channels);
  }
};

/// Per-channel min and max of x along `channel_dim` in one read (NaN where a channel holds a
/// NaN, as torch.aminmax): the range a weight's per-channel frac comes from.
std::tuple<Tensor, Tensor> channel_range_cpu(const Tensor& x, std::int64_t channel_dim) {
  const char* op = "dla::channel_range";
  check_real_tensor(op, x, "x");
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  const Tensor c = x.contiguous();
  const ChannelLayout l(c, normalize_axis(op, channel_dim, c.dim()));
  TORCH_CHECK(l.outer * l.inner > 0, op, ": x has no elements per channel (shape ", x.sizes(), ")");
  Tensor lo = at::empty({l.channels}, c.options());
  Tensor hi = at::empty({l.channels}, c.options());
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "dla_channel_range", [&] {
    const scalar_t* p = c.data_ptr<scalar_t>();
    scalar_t* plo = lo.data_ptr<scalar_t>();
    scalar_t* phi = hi.data_ptr<scalar_t>();
    at::parallel_for(0, l.channels, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t ch = begin; ch < end; ++ch) {
        ValueRange<scalar_t> r;
        for (std::int64_t o = 0; o < l.outer; ++o) r.add(p + (o * l.channels + ch) * l.inner, l.inner);
        plo[ch] = r.nan ? std::numeric_limits<scalar_t>::quiet_NaN() : r.lo;
        phi[ch] = r.nan ? std::numeric_limits<scalar_t>::quiet_NaN() : r.hi;
      }
    });
  });
  return {lo, hi};
}

/// g1 = grad where mask (none: everywhere), else 0, and per channel of `channel_dim` the
/// sums of g1 and of g1 * y (double accumulators), in one read of grad, mask and y: the
/// pieces of a folded BatchNorm's backward that touch every element.
std::tuple<Tensor, Tensor, Tensor> ste_channel_sums_cpu(const Tensor& grad, const c10::optional<Tensor>& mask,
                                                         const Tensor& y, std::int64_t channel_dim) {
  const char* op = "dla::ste_channel_sums";
  check_real_tensor(op, grad, "grad");
  check_real_tensor(op, y, "y");
  check_same_dtype(op, grad, "grad", y, "y");
  TORCH_CHECK(grad.dim() >= 1 && grad.sizes() == y.sizes(), op, ": grad has shape ", grad.sizes(),
              " but y has shape ", y.sizes());
  const bool masked = mask.has_value() && mask->defined();
  if (masked) {
    TORCH_CHECK(mask->scalar_type() == at::kBool && mask->sizes() == grad.sizes(), op,
                ": mask must be a bool tensor of grad's shape ", grad.sizes());
  }
  const Tensor g = grad.contiguous(), yc = y.contiguous();
  const Tensor m = masked ? mask->contiguous() : Tensor();
  const ChannelLayout l(g, normalize_axis(op, channel_dim, g.dim()));
  Tensor g1 = at::empty(g.sizes(), g.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor sum = at::empty({l.channels}, g.options());
  Tensor dot = at::empty({l.channels}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dla_ste_channel_sums", [&] {
    const scalar_t* pg = g.data_ptr<scalar_t>();
    const scalar_t* py = yc.data_ptr<scalar_t>();
    const bool* pm = masked ? m.data_ptr<bool>() : nullptr;
    scalar_t* po = g1.data_ptr<scalar_t>();
    scalar_t* ps = sum.data_ptr<scalar_t>();
    scalar_t* pd = dot.data_ptr<scalar_t>();
    at::parallel_for(0, l.channels, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t ch = begin; ch < end; ++ch) {
        double s = 0, d = 0;
        for (std::int64_t o = 0; o < l.outer; ++o) {
          const std::int64_t base = (o * l.channels + ch) * l.inner;
          if (pm != nullptr) ste_grad_run(pg + base, pm + base, po + base, l.inner);
          else std::copy_n(pg + base, l.inner, po + base);
          add_sum_and_dot(po + base, py + base, l.inner, s, d);  // the row just written, from cache
        }
        ps[ch] = static_cast<scalar_t>(s);
        pd[ch] = static_cast<scalar_t>(d);
      }
    });
  });
  return {g1, sum, dot};
}

/// g = g * g_scale[c] + y * y_scale[c] + shift[c] per channel c of `channel_dim`, in place
/// and in one pass, each operation rounded to g's type (g_scale absent: 1).
Tensor& channel_affine_cpu(Tensor& g, const c10::optional<Tensor>& g_scale, const Tensor& y, const Tensor& y_scale,
                           const Tensor& shift, std::int64_t channel_dim) {
  const char* op = "dla::channel_affine_";
  check_real_tensor(op, g, "g");
  check_real_tensor(op, y, "y");
  check_same_dtype(op, g, "g", y, "y");
  TORCH_CHECK(g.dim() >= 1 && g.sizes() == y.sizes(), op, ": g has shape ", g.sizes(), " but y has shape ",
              y.sizes());
  TORCH_CHECK(g.is_contiguous(), op, ": g must be contiguous (it is written in place)");
  const std::int64_t ax = normalize_axis(op, channel_dim, g.dim());
  const ChannelLayout l(g, ax);
  const bool scaled = g_scale.has_value() && g_scale->defined();
  const Tensor gs = scaled ? channel_vector(op, g, "g", *g_scale, "g_scale", l.channels, ax) : Tensor();
  const Tensor ys = channel_vector(op, g, "g", y_scale, "y_scale", l.channels, ax);
  const Tensor sh = channel_vector(op, g, "g", shift, "shift", l.channels, ax);
  const Tensor yc = y.contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dla_channel_affine", [&] {
    scalar_t* pg = g.data_ptr<scalar_t>();
    const scalar_t* py = yc.data_ptr<scalar_t>();
    const scalar_t* pgs = scaled ? gs.data_ptr<scalar_t>() : nullptr;
    const scalar_t* pys = ys.data_ptr<scalar_t>();
    const scalar_t* psh = sh.data_ptr<scalar_t>();
    const std::int64_t rows = l.outer * l.channels;
    const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(l.inner, 1));
    at::parallel_for(0, rows, grain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t r = begin; r < end; ++r) {
        const std::int64_t ch = r % l.channels;
        const scalar_t a = pgs != nullptr ? pgs[ch] : scalar_t(1), b = pys[ch], c = psh[ch];
        scalar_t* v = pg + r * l.inner;
        const scalar_t* yv = py + r * l.inner;
        for (std::int64_t i = 0; i < l.inner; ++i) {
          const scalar_t t = v[i] * a;
          const scalar_t u = yv[i] * b;
          v[i] = (t + u) + c;
        }
      }
    });
  });
  return g;
}

/// Per-channel mean, biased variance (E[y^2] - mean^2, at least 0), min and max of y along
/// `channel_dim`: one read of y, double accumulators, channels split across threads.
std::tuple<Tensor, Tensor, Tensor, Tensor> channel_moments_cpu(const Tensor& y, std::int64_t channel_dim) {
  const char* op = "dla::channel_moments";
  check_real_tensor(op, y, "y");
  TORCH_CHECK(y.dim() >= 1, op, ": y must have at least one dimension");
  const Tensor c = y.contiguous();
  const ChannelLayout l(c, normalize_axis(op, channel_dim, y.dim()));
  const std::int64_t channels = l.channels, outer = l.outer, inner = l.inner;
  const std::int64_t count = outer * inner;
  TORCH_CHECK(count > 0, op, ": y has no elements per channel (shape ", y.sizes(), ")");
  Tensor mean = at::empty({channels}, c.options());
  Tensor var = at::empty({channels}, c.options());
  Tensor lo = at::empty({channels}, c.options());
  Tensor hi = at::empty({channels}, c.options());
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "dla_channel_moments", [&] {
    const scalar_t* p = c.data_ptr<scalar_t>();
    scalar_t* pm = mean.data_ptr<scalar_t>();
    scalar_t* pv = var.data_ptr<scalar_t>();
    scalar_t* plo = lo.data_ptr<scalar_t>();
    scalar_t* phi = hi.data_ptr<scalar_t>();
    at::parallel_for(0, channels, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t ch = begin; ch < end; ++ch) {
        Moments<scalar_t> mo;
        for (std::int64_t o = 0; o < outer; ++o) mo.add(p + (o * channels + ch) * inner, inner);
        const double sum = mo.sum, sumsq = mo.sumsq;
        const double m = sum / static_cast<double>(count);
        pm[ch] = static_cast<scalar_t>(m);
        pv[ch] = static_cast<scalar_t>(std::max(sumsq / static_cast<double>(count) - m * m, 0.0));
        plo[ch] = mo.range.nan ? std::numeric_limits<scalar_t>::quiet_NaN() : mo.range.lo;  // as torch.amin / amax
        phi[ch] = mo.range.nan ? std::numeric_limits<scalar_t>::quiet_NaN() : mo.range.hi;
      }
    });
  });
  return {mean, var, lo, hi};
}

// ---------------------------------------------------------------------------
// CompositeImplicitAutograd: concat
// ---------------------------------------------------------------------------

Tensor concat_composite(at::TensorList xs, std::int64_t dim, std::int64_t dtype, IntList fracs) {
  const char* op = "dla::concat";
  TORCH_CHECK(!xs.empty(), op, ": xs is empty");
  const DType t = act_dtype(op, dtype, "dtype");
  TORCH_CHECK(fracs.size() == xs.size(), op, ": fracs has ", fracs.size(), " entries for ",
              xs.size(), " inputs");
  for (std::size_t i = 0; i < xs.size(); ++i) {
    frac_arg(op, fracs[i], "fracs[" + std::to_string(i) + "]");
    TORCH_CHECK(fracs[i] == fracs[0], op, ": inputs must share one frac, but input 0 has frac ",
                fracs[0], " and input ", i, " has frac ", fracs[i],
                "; requantize them to one frac first (the hardware concatenates by copying)");
    check_real_tensor(op, xs[i], "xs[i]");
    AT_DISPATCH_FLOATING_TYPES(xs[i].scalar_type(), "dla_concat", [&] {
      recover_tensor<scalar_t>(op, xs[i].detach(), t, static_cast<int>(fracs[0]),
                               ("xs[" + std::to_string(i) + "]").c_str());
    });
  }
  return at::cat(xs, dim);
}

// ---------------------------------------------------------------------------
// Autograd kernels
// ---------------------------------------------------------------------------

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The STE gradient: grad where the output clamp kept the value, else 0; an undefined mask
/// (see ste_mask) passes grad through.
Tensor masked(const Tensor& grad, const Tensor& mask) {
  if (!mask.defined()) return grad;
  if (grad.device().is_cpu()) return ste_grad_cpu(grad, mask);
  return at::where(mask, grad, at::zeros({}, grad.options()));
}

/// The mask of a requantizing op's (y, mask, counts) to save for the backward, or an undefined
/// tensor when no element saturated (every clamp, and every ReLU clip, counts as a
/// saturation): the mask is then all true, and the backward skips a pass and keeps no mask.
Tensor ste_mask(const torch::autograd::variable_list& out) {
  return out[2].data_ptr<std::int64_t>()[1] == 0 ? Tensor() : out[1];
}

variable_list to_list(const Triple& t) { return {std::get<0>(t), std::get<1>(t), std::get<2>(t)}; }
Triple to_triple(const variable_list& v) { return {v[0], v[1], v[2]}; }

/// Gradient of the quantize ops for x: STE.
struct QuantizeFn : torch::autograd::Function<QuantizeFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, std::int64_t dtype,
                               std::int64_t frac, OptInt clip_lo, OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::Quantize>("dla::quantize");
    variable_list out = to_list(op.call(x, dtype, frac, clip_lo, clip_hi, hw));
    ctx->save_for_backward({ste_mask(out)});
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor mask = ctx->get_saved_variables()[0];
    const Tensor gx = grads[0].defined() ? masked(grads[0], mask) : Tensor();
    return {gx, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

struct QuantizePerChannelFn : torch::autograd::Function<QuantizePerChannelFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, IntList fracs, std::int64_t axis,
                               std::int64_t dtype, OptInt clip_lo, OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::QuantizePerChannel>("dla::quantize_per_channel");
    variable_list out = to_list(op.call(x, fracs, axis, dtype, clip_lo, clip_hi, hw));
    ctx->save_for_backward({ste_mask(out)});
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor mask = ctx->get_saved_variables()[0];
    const Tensor gx = grads[0].defined() ? masked(grads[0], mask) : Tensor();
    return {gx, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

/// x: STE; log2_scale: TQT, d y / d l = ln2 (y - x mask) per element (see ops.hpp).
struct QuantizeLearnableFn : torch::autograd::Function<QuantizeLearnableFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& log2_scale,
                               std::int64_t axis, std::int64_t dtype, OptInt clip_lo,
                               OptInt clip_hi, IntList hw, bool smooth) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::QuantizeLearnable>("dla::quantize_learnable");
    variable_list out = to_list(op.call(x, log2_scale, axis, dtype, clip_lo, clip_hi, hw, smooth));
    ctx->save_for_backward({x, out[0], out[1], log2_scale});
    ctx->saved_data["axis"] = axis;
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &y = saved[1], &mask = saved[2], &l = saved[3];
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    const Tensor gx = masked(g, mask);
    Tensor gl;
    if (l.requires_grad() || ctx->needs_input_grad(1)) {
      const Tensor per_element = g * (y - at::where(mask, x, at::zeros({}, x.options()))) * std::log(2.0);
      if (l.numel() == 1) {
        gl = per_element.sum().reshape(l.sizes());
      } else {
        std::int64_t axis = ctx->saved_data["axis"].toInt();
        if (axis < 0) axis += x.dim();
        std::vector<std::int64_t> dims;
        for (std::int64_t d = 0; d < x.dim(); ++d) {
          if (d != axis) dims.push_back(d);
        }
        gl = (dims.empty() ? per_element : per_element.sum(dims)).reshape(l.sizes());
      }
      gl = gl.to(l.scalar_type());
    }
    return {gx, gl, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

/// Gradients of the float convolution of the given (dequantized) x and weight, masked.
struct Conv2dFn : torch::autograd::Function<Conv2dFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                               const c10::optional<Tensor>& bias, std::int64_t x_dtype,
                               std::int64_t x_frac, std::int64_t w_dtype, IntList w_fracs,
                               std::int64_t y_dtype, std::int64_t y_frac, IntList stride,
                               IntList padding, IntList dilation, std::int64_t groups,
                               OptInt clip_lo, OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::Conv2d>("dla::conv2d");
    variable_list out = to_list(op.call(x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype,
                                        y_frac, stride, padding, dilation, groups, clip_lo,
                                        clip_hi, hw));
    ctx->save_for_backward({x, weight, ste_mask(out)});
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["bias"] = bias.has_value() && bias->defined();
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(16);
    if (!grads[0].defined()) return result;
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &weight = saved[1], &mask = saved[2];
    const bool has_bias = ctx->saved_data["bias"].toBool();
    const std::vector<std::int64_t> stride = ctx->saved_data["stride"].toIntVector();
    const std::vector<std::int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const std::vector<std::int64_t> dilation = ctx->saved_data["dilation"].toIntVector();
    const std::int64_t groups = ctx->saved_data["groups"].toInt();
    const Tensor g = masked(grads[0], mask);
    const std::vector<std::int64_t> bias_sizes{weight.size(0)};
    auto [gx, gw, gb] = at::convolution_backward(
        g, x, weight, has_bias ? at::OptionalIntArrayRef(bias_sizes) : c10::nullopt, stride,
        padding, dilation, false, {0, 0}, groups,
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), has_bias && ctx->needs_input_grad(2)});
    result[0] = gx;
    result[1] = gw;
    if (has_bias) result[2] = gb;
    return result;
  }
};

struct LinearFn : torch::autograd::Function<LinearFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                               const c10::optional<Tensor>& bias, std::int64_t x_dtype,
                               std::int64_t x_frac, std::int64_t w_dtype, IntList w_fracs,
                               std::int64_t y_dtype, std::int64_t y_frac, OptInt clip_lo,
                               OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::Linear>("dla::linear");
    variable_list out = to_list(op.call(x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype,
                                        y_frac, clip_lo, clip_hi, hw));
    ctx->save_for_backward({x, weight, ste_mask(out)});
    ctx->saved_data["bias"] = bias.has_value() && bias->defined();
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(12);
    if (!grads[0].defined()) return result;
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &weight = saved[1], &mask = saved[2];
    const Tensor g = masked(grads[0], mask);
    const Tensor g2 = g.reshape({-1, weight.size(0)});
    if (ctx->needs_input_grad(0)) result[0] = g.matmul(weight);
    if (ctx->needs_input_grad(1)) result[1] = g2.t().matmul(x.reshape({-1, weight.size(1)}));
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) result[2] = g2.sum(0);
    return result;
  }
};

struct AddFn : torch::autograd::Function<AddFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& a, const Tensor& b,
                               std::int64_t a_dtype, std::int64_t a_frac, std::int64_t b_dtype,
                               std::int64_t b_frac, std::int64_t y_dtype, std::int64_t y_frac,
                               OptInt clip_lo, OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::Add>("dla::add");
    variable_list out = to_list(
        op.call(a, b, a_dtype, a_frac, b_dtype, b_frac, y_dtype, y_frac, clip_lo, clip_hi, hw));
    ctx->save_for_backward({ste_mask(out)});
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(11);
    if (!grads[0].defined()) return result;
    const Tensor g = masked(grads[0], ctx->get_saved_variables()[0]);
    result[0] = g;
    result[1] = g;
    return result;
  }
};

struct AvgPool2dFn : torch::autograd::Function<AvgPool2dFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, std::int64_t x_dtype,
                               std::int64_t x_frac, std::int64_t y_dtype, std::int64_t y_frac,
                               IntList kernel_size, IntList stride, IntList padding,
                               OptInt clip_lo, OptInt clip_hi, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::AvgPool2d>("dla::avg_pool2d");
    variable_list out = to_list(op.call(x, x_dtype, x_frac, y_dtype, y_frac, kernel_size, stride,
                                        padding, clip_lo, clip_hi, hw));
    ctx->save_for_backward({x, ste_mask(out)});
    ctx->saved_data["kernel_size"] = kernel_size.vec();
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    // The hardware's 1/N is M / 2^S; its gradient is M / 2^S per input element.
    const std::int64_t n = kernel_size[0] * kernel_size[1];
    const int s = static_cast<int>(hw[3]);
    ctx->saved_data["gain"] = static_cast<double>(avgpool_multiplier(n, s).value_or(0)) *
                              static_cast<double>(n) / std::ldexp(1.0, s);
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({out[1], out[2]});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(11);
    if (!grads[0].defined()) return result;
    const variable_list saved = ctx->get_saved_variables();
    const Tensor g = masked(grads[0], saved[1]);
    result[0] = at::avg_pool2d_backward(g, saved[0], ctx->saved_data["kernel_size"].toIntVector(),
                                        ctx->saved_data["stride"].toIntVector(),
                                        ctx->saved_data["padding"].toIntVector(), false, true,
                                        c10::nullopt) *
                ctx->saved_data["gain"].toDouble();
    return result;
  }
};

struct MaxPool2dFn : torch::autograd::Function<MaxPool2dFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, std::int64_t dtype,
                               std::int64_t frac, IntList kernel_size, IntList stride,
                               IntList padding) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::MaxPool2d>("dla::max_pool2d");
    auto [y, indices] = op.call(x, dtype, frac, kernel_size, stride, padding);
    ctx->save_for_backward({indices});
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    ctx->set_materialize_grads(false);  // no zero tensors for the mask / counts gradients
    ctx->mark_non_differentiable({indices});
    return {y, indices};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(6);
    if (!grads[0].defined()) return result;
    const Tensor indices = ctx->get_saved_variables()[0];
    const std::vector<std::int64_t> xs = ctx->saved_data["x_sizes"].toIntVector();
    const Tensor& g = grads[0];
    const std::int64_t planes = xs[0] * xs[1];
    const Tensor idx = indices.reshape({planes, -1});
    const Tensor valid = idx >= 0;
    Tensor gx = at::zeros({planes, xs[2] * xs[3]}, g.options());
    gx.scatter_add_(1, at::where(valid, idx, at::zeros({}, idx.options())),
                    at::where(valid, g.reshape({planes, -1}), at::zeros({}, g.options())));
    result[0] = gx.reshape(xs);
    return result;
  }
};

/// d mean / d y = 1 / M, d var / d y = 2 (y - mean) / M: one fused pass (addcmul); min and
/// max are not differentiable.
struct ChannelMomentsFn : torch::autograd::Function<ChannelMomentsFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& y, std::int64_t channel_dim) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = sig::handle<sig::ChannelMoments>("dla::channel_moments");
    auto [mean, var, lo, hi] = op.call(y, channel_dim);
    ctx->save_for_backward({y, mean});
    ctx->saved_data["channel_dim"] = channel_dim;
    ctx->set_materialize_grads(false);
    ctx->mark_non_differentiable({lo, hi});
    return {mean, var, lo, hi};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &y = saved[0], &mean = saved[1];
    if (!grads[0].defined() && !grads[1].defined()) return {Tensor(), Tensor()};
    std::int64_t ax = ctx->saved_data["channel_dim"].toInt();
    if (ax < 0) ax += y.dim();
    const double count = static_cast<double>(y.numel() / std::max<std::int64_t>(y.size(ax), 1));
    std::vector<std::int64_t> shape(static_cast<std::size_t>(y.dim()), 1);
    shape[static_cast<std::size_t>(ax)] = -1;
    const Tensor gm = grads[0].defined() ? grads[0] : at::zeros_like(mean);
    if (!grads[1].defined()) return {(gm / count).reshape(shape).expand(y.sizes()).contiguous(), Tensor()};
    const Tensor slope = grads[1] * (2.0 / count);      // per channel: gy = gm / M + slope (y - mean)
    const Tensor offset = gm / count - slope * mean;
    return {at::addcmul(offset.reshape(shape), y, slope.reshape(shape)), Tensor()};
  }
};

std::tuple<Tensor, Tensor, Tensor, Tensor> channel_moments_autograd(const Tensor& y, std::int64_t channel_dim) {
  const variable_list out = ChannelMomentsFn::apply(y, channel_dim);
  return {out[0], out[1], out[2], out[3]};
}

Triple quantize_autograd(const Tensor& x, std::int64_t dtype, std::int64_t frac, OptInt clip_lo,
                         OptInt clip_hi, IntList hw) {
  return to_triple(QuantizeFn::apply(x, dtype, frac, clip_lo, clip_hi, hw));
}

Triple quantize_per_channel_autograd(const Tensor& x, IntList fracs, std::int64_t axis,
                                     std::int64_t dtype, OptInt clip_lo, OptInt clip_hi,
                                     IntList hw) {
  return to_triple(QuantizePerChannelFn::apply(x, fracs, axis, dtype, clip_lo, clip_hi, hw));
}

Triple quantize_learnable_autograd(const Tensor& x, const Tensor& log2_scale, std::int64_t axis,
                                   std::int64_t dtype, OptInt clip_lo, OptInt clip_hi, IntList hw,
                                   bool smooth) {
  return to_triple(
      QuantizeLearnableFn::apply(x, log2_scale, axis, dtype, clip_lo, clip_hi, hw, smooth));
}

Triple conv2d_autograd(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                       std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype,
                       IntList w_fracs, std::int64_t y_dtype, std::int64_t y_frac, IntList stride,
                       IntList padding, IntList dilation, std::int64_t groups, OptInt clip_lo,
                       OptInt clip_hi, IntList hw) {
  return to_triple(Conv2dFn::apply(x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype,
                                   y_frac, stride, padding, dilation, groups, clip_lo, clip_hi, hw));
}

Triple linear_autograd(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                       std::int64_t x_dtype, std::int64_t x_frac, std::int64_t w_dtype,
                       IntList w_fracs, std::int64_t y_dtype, std::int64_t y_frac, OptInt clip_lo,
                       OptInt clip_hi, IntList hw) {
  return to_triple(LinearFn::apply(x, weight, bias, x_dtype, x_frac, w_dtype, w_fracs, y_dtype,
                                   y_frac, clip_lo, clip_hi, hw));
}

Triple add_autograd(const Tensor& a, const Tensor& b, std::int64_t a_dtype, std::int64_t a_frac,
                    std::int64_t b_dtype, std::int64_t b_frac, std::int64_t y_dtype,
                    std::int64_t y_frac, OptInt clip_lo, OptInt clip_hi, IntList hw) {
  return to_triple(
      AddFn::apply(a, b, a_dtype, a_frac, b_dtype, b_frac, y_dtype, y_frac, clip_lo, clip_hi, hw));
}

Triple avg_pool2d_autograd(const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac,
                           std::int64_t y_dtype, std::int64_t y_frac, IntList kernel_size,
                           IntList stride, IntList padding, OptInt clip_lo, OptInt clip_hi,
                           IntList hw) {
  return to_triple(AvgPool2dFn::apply(x, x_dtype, x_frac, y_dtype, y_frac, kernel_size, stride,
                                      padding, clip_lo, clip_hi, hw));
}

std::tuple<Tensor, Tensor> max_pool2d_autograd(const Tensor& x, std::int64_t dtype,
                                               std::int64_t frac, IntList kernel_size,
                                               IntList stride, IntList padding) {
  const variable_list out = MaxPool2dFn::apply(x, dtype, frac, kernel_size, stride, padding);
  return {out[0], out[1]};
}

}  // namespace
}  // namespace dla::qat

// The ops with both a CPU kernel (dla::qat::<op>_cpu) and an Autograd one (<op>_autograd).
#define DLA_QAT_DIFFERENTIABLE_OPS(OP) \
  OP(quantize)                         \
  OP(quantize_per_channel)             \
  OP(quantize_learnable)               \
  OP(conv2d)                           \
  OP(linear)                           \
  OP(add)                              \
  OP(avg_pool2d)                       \
  OP(max_pool2d)                       \
  OP(channel_moments)

TORCH_LIBRARY_IMPL(dla, CPU, m) {
#define DLA_QAT_IMPL_CPU(op) m.impl(#op, &dla::qat::op##_cpu);
  DLA_QAT_DIFFERENTIABLE_OPS(DLA_QAT_IMPL_CPU)
#undef DLA_QAT_IMPL_CPU
  m.impl("bias_integers", &dla::qat::bias_integers_cpu);
  m.impl("ste_grad", &dla::qat::ste_grad_cpu);
  m.impl("channel_range", &dla::qat::channel_range_cpu);
  m.impl("quantize_per_channel_max", &dla::qat::quantize_per_channel_max_cpu);
  m.impl("fracs_for_bound", &dla::qat::fracs_for_bound_cpu);
  m.impl("quantize_per_channel_scaled", &dla::qat::quantize_per_channel_scaled_cpu);
  m.impl("conv2d_sums", &dla::qat::conv2d_sums_cpu);
  m.impl("ste_channel_sums", &dla::qat::ste_channel_sums_cpu);
  m.impl("channel_affine_", &dla::qat::channel_affine_cpu);
}

TORCH_LIBRARY_IMPL(dla, Autograd, m) {
#define DLA_QAT_IMPL_AUTOGRAD(op) m.impl(#op, &dla::qat::op##_autograd);
  DLA_QAT_DIFFERENTIABLE_OPS(DLA_QAT_IMPL_AUTOGRAD)
#undef DLA_QAT_IMPL_AUTOGRAD
}

TORCH_LIBRARY_IMPL(dla, CompositeImplicitAutograd, m) {
  m.impl("concat", &dla::qat::concat_composite);
}

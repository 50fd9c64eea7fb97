// The MAC array's arithmetic on unpacked int16 operands.
//
// Convolution (not depthwise): for a block of up to 4 output pixels of one row, the
// receptive fields are gathered once into contiguous patches [kernel_h][kernel_w][in_c]
// (a 1x1 kernel reads the activation tile in place), then every output channel is a dot
// product of its weight row [kernel_h][kernel_w][in_c] with the 4 patches: one contiguous
// reduction axis that the compiler vectorizes (pmaddwd), each weight loaded once per 4
// pixels. Partial sums are int32 while K * max|a*w| < 2^31 (exact); longer reductions
// are cut into chunks that satisfy the bound and summed in int64.
// Depthwise: weights transposed to [kernel_h][kernel_w][channels], the channel axis
// innermost; K <= 225 and |a*w| <= 2^22 keep int32 exact.
#include "mac_kernel.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>
#include <vector>

namespace dla::sim::detail {
namespace {

constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

/// a + b saturated to the int64 range (ACC words never wrap; see semantics.hpp).
inline std::int64_t add_sat(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
  }
  return r;
}

/// out[j] = sum_k w[k] * pj[k] for k < n. The caller guarantees n * max|w*p| < 2^31, so
/// every partial sum is exact in int32.
inline void dot4(const std::int16_t* __restrict w, const std::int16_t* __restrict p0,
                 const std::int16_t* __restrict p1, const std::int16_t* __restrict p2,
                 const std::int16_t* __restrict p3, std::int64_t n, std::int32_t* out) {
  std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int32_t wk = w[k];
    s0 += wk * p0[k];
    s1 += wk * p1[k];
    s2 += wk * p2[k];
    s3 += wk * p3[k];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

/// Output rows are handed out one at a time from `next_row`, so a worker that starts late
/// (a busy core) only takes what is left.
void conv_rows(const MacGeometry& g, const std::int16_t* act, const std::int16_t* wgt, std::int64_t* acc,
               std::atomic<std::int64_t>& next_row) {
  const std::int64_t k_len = g.kernel_h * g.kernel_w * g.in_c;
  const bool direct = g.kernel_h == 1 && g.kernel_w == 1;
  const std::int64_t chunk = std::max<std::int64_t>(1, kInt32Max / std::max<std::int64_t>(1, g.max_abs_product));
  const bool narrow = k_len <= chunk;
  std::vector<std::int16_t> patches(direct ? 0 : static_cast<std::size_t>(4 * k_len));
  const std::int16_t* p[4] = {nullptr, nullptr, nullptr, nullptr};
  const auto row_copy = static_cast<std::size_t>(g.kernel_w * g.in_c) * sizeof(std::int16_t);
  const auto pixel_copy = static_cast<std::size_t>(g.in_c) * sizeof(std::int16_t);

  for (std::int64_t oh = next_row++; oh < g.out_h; oh = next_row++) {
    for (std::int64_t ow0 = 0; ow0 < g.out_w; ow0 += 4) {
      const std::int64_t nb = std::min<std::int64_t>(4, g.out_w - ow0);
      for (std::int64_t j = 0; j < nb; ++j) {
        const std::int64_t ow = ow0 + j;
        if (direct) {
          p[j] = act + ((oh * g.stride_h) * g.in_w + ow * g.stride_w) * g.in_c;
          continue;
        }
        std::int16_t* dst = patches.data() + j * k_len;
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const std::int16_t* row = act + (oh * g.stride_h + kh * g.dilation) * g.in_w * g.in_c;
          if (g.dilation == 1) {
            std::memcpy(dst, row + ow * g.stride_w * g.in_c, row_copy);
            dst += g.kernel_w * g.in_c;
          } else {
            for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
              std::memcpy(dst, row + (ow * g.stride_w + kw * g.dilation) * g.in_c, pixel_copy);
              dst += g.in_c;
            }
          }
        }
        p[j] = patches.data() + j * k_len;
      }
      for (std::int64_t j = nb; j < 4; ++j) p[j] = p[0];  // computed and discarded

      std::int64_t* out = acc + (oh * g.out_w + ow0) * g.out_c;
      for (std::int64_t oc = 0; oc < g.out_c; ++oc) {
        const std::int16_t* w = wgt + oc * k_len;
        std::int64_t s[4] = {0, 0, 0, 0};
        std::int32_t part[4];
        if (narrow) {
          dot4(w, p[0], p[1], p[2], p[3], k_len, part);
          for (int j = 0; j < 4; ++j) s[j] = part[j];
        } else {
          for (std::int64_t k0 = 0; k0 < k_len; k0 += chunk) {
            dot4(w + k0, p[0] + k0, p[1] + k0, p[2] + k0, p[3] + k0, std::min(chunk, k_len - k0), part);
            for (int j = 0; j < 4; ++j) s[j] += part[j];
          }
        }
        for (std::int64_t j = 0; j < nb; ++j) {
          std::int64_t& o = out[j * g.out_c + oc];
          o = g.accumulate ? add_sat(o, s[j]) : s[j];
        }
      }
    }
  }
}

/// wgt_t: [kernel_h][kernel_w][channels].
void depthwise_rows(const MacGeometry& g, const std::int16_t* act, const std::int16_t* wgt_t, std::int64_t* acc,
                    std::atomic<std::int64_t>& next_row) {
  const std::int64_t c_len = g.out_c;
  std::vector<std::int32_t> sum(static_cast<std::size_t>(c_len));
  std::int32_t* s = sum.data();
  for (std::int64_t oh = next_row++; oh < g.out_h; oh = next_row++) {
    for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
      std::fill(sum.begin(), sum.end(), 0);
      for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const std::int64_t ih = oh * g.stride_h + kh * g.dilation;
        for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const std::int64_t iw = ow * g.stride_w + kw * g.dilation;
          const std::int16_t* __restrict a = act + (ih * g.in_w + iw) * c_len;
          const std::int16_t* __restrict w = wgt_t + (kh * g.kernel_w + kw) * c_len;
          for (std::int64_t c = 0; c < c_len; ++c) s[c] += static_cast<std::int32_t>(a[c]) * w[c];
        }
      }
      std::int64_t* out = acc + (oh * g.out_w + ow) * c_len;
      if (g.accumulate) {
        for (std::int64_t c = 0; c < c_len; ++c) out[c] = add_sat(out[c], s[c]);
      } else {
        for (std::int64_t c = 0; c < c_len; ++c) out[c] = s[c];
      }
    }
  }
}

}  // namespace

void run_mac(const MacGeometry& g, const std::int16_t* act, const std::int16_t* wgt, std::int64_t* acc,
             unsigned threads) {
  std::vector<std::int16_t> transposed;
  const std::int16_t* w = wgt;
  if (g.depthwise) {
    const std::int64_t taps = g.kernel_h * g.kernel_w;
    transposed.resize(static_cast<std::size_t>(taps * g.out_c));
    for (std::int64_t c = 0; c < g.out_c; ++c)
      for (std::int64_t t = 0; t < taps; ++t) transposed[static_cast<std::size_t>(t * g.out_c + c)] = wgt[c * taps + t];
    w = transposed.data();
  }
  std::atomic<std::int64_t> next_row{0};
  auto work = [&] {
    if (g.depthwise) {
      depthwise_rows(g, act, w, acc, next_row);
    } else {
      conv_rows(g, act, w, acc, next_row);
    }
  };
  const std::int64_t workers = std::min<std::int64_t>(std::max(1u, threads), g.out_h);
  if (workers <= 1) {
    work();
    return;
  }
  // Each output row is written by exactly one worker. A helper's exception (only
  // bad_alloc is possible) is rethrown here after the join.
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
  auto guarded = [&](std::size_t t) {
    try {
      work();
    } catch (...) {
      errors[t] = std::current_exception();
      next_row = g.out_h;  // stop the others
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(static_cast<std::size_t>(workers - 1));
  for (std::int64_t t = 1; t < workers; ++t) helpers.emplace_back(guarded, static_cast<std::size_t>(t));
  guarded(0);
  for (auto& h : helpers) h.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace dla::sim::detail

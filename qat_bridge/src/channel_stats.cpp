// channel_stats.cpp — see channel_stats.hpp. Each loop keeps kLanes independent
// accumulators, which the compiler turns into vector registers (float min/max and double
// sums do not vectorize as one serial accumulator without -ffast-math, which would also
// change NaN handling); a tail loop takes what does not fill the lanes.
#include "channel_stats.hpp"

#include <algorithm>
#include <cstring>

namespace dla::qat {
namespace {

/// A 16-byte GCC vector of T (one SSE register, the baseline of x86-64; a wider ISA
/// still runs it), and the comparison mask of it.
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  static constexpr int kWidth = 4;
  typedef float Vec __attribute__((vector_size(16)));
  typedef std::int32_t Mask __attribute__((vector_size(16)));
};
template <>
struct Lanes<double> {
  static constexpr int kWidth = 2;
  typedef double Vec __attribute__((vector_size(16)));
  typedef std::int64_t Mask __attribute__((vector_size(16)));
};

}  // namespace

template <typename T>
void ValueRange<T>::add(const T* p, std::int64_t n) {
  // GCC vector types: the loop vectorizes as written (the compiler does not turn a float
  // min/max loop into vector code by itself without -ffast-math), on any target ISA; kAcc
  // independent accumulators hide the compares' latency.
  using Vec = typename Lanes<T>::Vec;
  using Mask = typename Lanes<T>::Mask;
  constexpr int W = Lanes<T>::kWidth, kAcc = 4, L = W * kAcc;
  Vec lo_v[kAcc], hi_v[kAcc];
  Mask nan_v[kAcc] = {};
  for (int a = 0; a < kAcc; ++a) {
    for (int j = 0; j < W; ++j) lo_v[a][j] = lo, hi_v[a][j] = hi;
  }
  std::int64_t i = 0;
  for (; i + L <= n; i += L) {
    for (int a = 0; a < kAcc; ++a) {
      Vec v;
      std::memcpy(&v, p + i + a * W, sizeof v);
      lo_v[a] = v < lo_v[a] ? v : lo_v[a];
      hi_v[a] = v > hi_v[a] ? v : hi_v[a];
      nan_v[a] |= v != v;
    }
  }
  for (int a = 0; a < kAcc; ++a) {
    for (int j = 0; j < W; ++j) {
      lo = std::min(lo, lo_v[a][j]);
      hi = std::max(hi, hi_v[a][j]);
      nan = nan || nan_v[a][j] != 0;
    }
  }
  for (; i < n; ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
    nan = nan || p[i] != p[i];
  }
}

template <typename T>
void Moments<T>::add(const T* p, std::int64_t n) {
  constexpr int L = 8;  // double accumulators: two AVX-512 or four AVX registers
  double s[L] = {}, q[L] = {};
  std::int64_t i = 0;
  for (; i + L <= n; i += L) {
    for (int j = 0; j < L; ++j) {
      const auto v = static_cast<double>(p[i + j]);
      s[j] += v;
      q[j] += v * v;
    }
  }
  for (; i < n; ++i) {
    const auto v = static_cast<double>(p[i]);
    s[0] += v;
    q[0] += v * v;
  }
  for (int j = 0; j < L; ++j) sum += s[j], sumsq += q[j];
  range.add(p, n);
}

template <typename T>
void add_sum_and_dot(const T* g, const T* y, std::int64_t n, double& sum, double& dot) {
  constexpr int L = 8;
  double s[L] = {}, d[L] = {};
  std::int64_t i = 0;
  for (; i + L <= n; i += L) {
    for (int j = 0; j < L; ++j) {
      const auto v = static_cast<double>(g[i + j]);
      s[j] += v;
      d[j] += v * static_cast<double>(y[i + j]);
    }
  }
  for (; i < n; ++i) {
    const auto v = static_cast<double>(g[i]);
    s[0] += v;
    d[0] += v * static_cast<double>(y[i]);
  }
  for (int j = 0; j < L; ++j) sum += s[j], dot += d[j];
}

template struct ValueRange<float>;
template struct ValueRange<double>;
template struct Moments<float>;
template struct Moments<double>;
template void add_sum_and_dot<float>(const float*, const float*, std::int64_t, double&, double&);
template void add_sum_and_dot<double>(const double*, const double*, std::int64_t, double&, double&);

}  // namespace dla::qat

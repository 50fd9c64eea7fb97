// channel_stats.cpp — see channel_stats.hpp. Each loop keeps independent lanes of
// accumulators, which the compiler turns into vector registers (float min/max and double
// sums do not vectorize as one serial accumulator without -ffast-math, which would also
// change NaN handling); a tail loop takes what does not fill the lanes.
#include "channel_stats.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

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

namespace {

/// a += sum of terms(i).first, b += sum of terms(i).second over i < n, in double lanes.
template <typename Terms>
void add_pair_sums(std::int64_t n, Terms terms, double& a, double& b) {
  constexpr int L = 8;  // two AVX-512 or four AVX registers of each sum
  double sa[L] = {}, sb[L] = {};
  std::int64_t i = 0;
  for (; i + L <= n; i += L) {
    for (int j = 0; j < L; ++j) {
      const auto [u, w] = terms(i + j);
      sa[j] += u;
      sb[j] += w;
    }
  }
  for (; i < n; ++i) {
    const auto [u, w] = terms(i);
    sa[0] += u;
    sb[0] += w;
  }
  for (int j = 0; j < L; ++j) a += sa[j], b += sb[j];
}

}  // namespace

template <typename T>
void Moments<T>::add(const T* p, std::int64_t n) {
  add_pair_sums(
      n,
      [p](std::int64_t i) {
        const auto v = static_cast<double>(p[i]);
        return std::pair<double, double>(v, v * v);
      },
      sum, sumsq);
  range.add(p, n);
}

template <typename T>
void add_sum_and_dot(const T* g, const T* y, std::int64_t n, double& sum, double& dot) {
  add_pair_sums(
      n,
      [g, y](std::int64_t i) {
        const auto v = static_cast<double>(g[i]);
        return std::pair<double, double>(v, v * static_cast<double>(y[i]));
      },
      sum, dot);
}

template struct ValueRange<float>;
template struct ValueRange<double>;
template struct Moments<float>;
template struct Moments<double>;
template void add_sum_and_dot<float>(const float*, const float*, std::int64_t, double&, double&);
template void add_sum_and_dot<double>(const double*, const double*, std::int64_t, double&, double&);

}  // namespace dla::qat

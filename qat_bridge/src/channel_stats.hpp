// channel_stats.hpp — the float reductions of the training glue (a weight channel's
// range, a BatchNorm's batch moments, the sums of its backward), in lanes the compiler
// vectorizes. Not DLA numerics: nothing here rounds to an integer; sums are in double.
#pragma once

#include <cstdint>
#include <limits>

namespace dla::qat {

/// min and max of reals, and whether one was NaN (min and max leave NaNs out).
template <typename T>
struct ValueRange {
  T lo = std::numeric_limits<T>::infinity();
  T hi = -std::numeric_limits<T>::infinity();
  bool nan = false;

  /// Adds p[0..n).
  void add(const T* p, std::int64_t n);
};

/// Sum and sum of squares (double) and the range of reals.
template <typename T>
struct Moments {
  double sum = 0, sumsq = 0;
  ValueRange<T> range;

  /// Adds p[0..n).
  void add(const T* p, std::int64_t n);
};

/// sum += sum(g[0..n)), dot += sum(g[i] * y[i]), in double.
template <typename T>
void add_sum_and_dot(const T* g, const T* y, std::int64_t n, double& sum, double& dot);

}  // namespace dla::qat

// The per-layer comparison of `dla signoff`, shared by models quantized end to end and
// segmented models (segmented.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dla/device.hpp"
#include "dla/tensor.hpp"

namespace dla::cli {

struct LayerCheck {
  std::string engine;
  std::string layer;
  std::uint64_t elements = 0;
  std::uint64_t equal = 0;
  std::int64_t first_diff = -1;  ///< flat element index, -1: none
  std::int64_t expected = 0;
  std::int64_t actual = 0;
  sim::LayerStats stats;
  double mac_utilization = 0;
  bool reals = false;  ///< a host value of a segmented model: the difference is in floats below
  double expected_real = 0;
  double actual_real = 0;
  bool ok() const { return equal == elements && first_diff < 0; }
};

/// Element-for-element comparison of a layer's integers.
LayerCheck compare(const std::string& engine, const std::string& layer, const HostTensor& want, const HostTensor& got);
/// Bit-for-bit comparison of a host value's floats.
LayerCheck compare_reals(const std::string& engine, const std::string& layer, const std::vector<float>& want,
                         const std::vector<float>& got);
/// "element 5: expected 3, got 4" (empty when equal).
std::string difference_text(const LayerCheck& c);

}  // namespace dla::cli

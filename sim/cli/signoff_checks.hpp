// The per-layer comparison of `dla signoff`, shared by models quantized end to end and
// segmented models (segmented.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
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
  std::optional<double> sqnr_db;  ///< against the float model, where the export holds one
  bool ok() const { return equal == elements && first_diff < 0; }
};

/// Element-for-element comparison of a layer's integers.
LayerCheck compare(const std::string& engine, const std::string& layer, const HostTensor& want, const HostTensor& got);
/// Bit-for-bit comparison of a host value's floats.
LayerCheck compare_reals(const std::string& engine, const std::string& layer, const std::vector<float>& want,
                         const std::vector<float>& got);
/// Float values by name (C order): the float model's, of an export that holds one.
using FloatValues = std::map<std::string, std::vector<float>>;
/// A float tensor (C order over shape).
struct RealTensor {
  std::vector<std::uint64_t> shape;
  std::vector<float> values;
};
/// The reals of integers, q * 2^-frac (exact in float for every dtype the DLA has).
std::vector<float> reals_of(const HostTensor& t);
/// SQNR in dB of `values` against `reference` (as dlasim's sqnr_db: +inf when equal, -inf
/// for a zero reference); nullopt when their sizes differ.
std::optional<double> sqnr_db(const std::vector<float>& reference, const std::vector<float>& values);
/// Sets `check`'s SQNR from `values` (the engine's) when `floats` has its layer.
void set_sqnr(LayerCheck& check, const FloatValues& floats, const std::vector<float>& values);

/// "element 5: expected 3, got 4" (empty when equal).
std::string difference_text(const LayerCheck& c);

}  // namespace dla::cli

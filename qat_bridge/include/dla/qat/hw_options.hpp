// dla/qat/hw_options.hpp — the part of the hardware config that the QAT ops compute with,
// and the checks of types and fracs every op applies.
//
// The ops take these fields as a list of integers (`int[] hw` in the op schemas, so that
// TorchScript and the compiler's importer see plain constants). The list is, in order:
//
//   index  field            values
//   0      acc_bits         8..32 (hardware config range)
//   1      overflow_policy  0 WRAP, 1 SATURATE_FINAL
//   2      rounding_mode    0 HALF_UP, 1 HALF_AWAY, 2 HALF_EVEN, 3 FLOOR
//   3      avgpool_shift    0..31 (S of M = round(2^S / N))
//   4      supports_a4w4    0 / 1
//   5      supports_a8w4    0 / 1
//   6      supports_a16w8   0 / 1
//
// The list is declared once, in DLA_QAT_HW_LIST below; HwOptions::from_config / to_list /
// from_list expand it, and hw_tables() hands it to the Python package. from_list
// validates through dla::HwConfig::validate, so the ranges are those of the one
// hardware-config table.
// Plain C++ (no libtorch): tests and the kernels use it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"

namespace dla::qat {

/// Fracs of activations and weights are limited to this range; every shift an op
/// derives from two or three of them then fits the ISA's int8 shift fields.
inline constexpr int kFracMin = -32;
inline constexpr int kFracMax = 32;

// ENTRY(HwOptions member, HwConfig field), in the order of the `hw` list.
#define DLA_QAT_HW_LIST(ENTRY)         \
  ENTRY(acc_bits, acc_bits)            \
  ENTRY(overflow, overflow_policy)     \
  ENTRY(rounding, rounding_mode)       \
  ENTRY(avgpool_shift, avgpool_shift)  \
  ENTRY(supports_a4w4, supports_a4w4)  \
  ENTRY(supports_a8w4, supports_a8w4)  \
  ENTRY(supports_a16w8, supports_a16w8)

#define DLA_QAT_HW_LIST_NAME(member, field) #field,
/// The HwConfig field of each entry of the `hw` list, in order.
inline constexpr std::string_view kHwListFields[] = {DLA_QAT_HW_LIST(DLA_QAT_HW_LIST_NAME)};
#undef DLA_QAT_HW_LIST_NAME
/// Number of entries of the `hw` list of the op schemas.
inline constexpr std::size_t kHwListSize = std::size(kHwListFields);

struct HwOptions {
  int acc_bits = 32;                                ///< width of the signed accumulator
  OverflowPolicy overflow = OverflowPolicy::WRAP;   ///< accumulator overflow policy
  RoundMode rounding = RoundMode::HALF_UP;          ///< rounding of every requantizing shift
  int avgpool_shift = 15;                           ///< S of the average-pool multiplier
  bool supports_a4w4 = true;                        ///< MAC array runs i4/u4 x i4
  bool supports_a8w4 = true;                        ///< MAC array runs i8/u8 x i4
  bool supports_a16w8 = true;                       ///< MAC array runs i16 x i8

  /// The fields of a full hardware config.
  static HwOptions from_config(const HwConfig& cfg);
  /// The named preset of dla::HwConfig ("small", "default", "large").
  static HwOptions preset(const std::string& name);

  /// The `hw` list of the op schemas (see the table at the top of this file).
  std::vector<std::int64_t> to_list() const;

  /// Parses and validates a `hw` list; throws dla::ConfigError with a message naming the
  /// entry and its allowed range.
  static HwOptions from_list(const std::int64_t* values, std::size_t count);
  static HwOptions from_list(const std::vector<std::int64_t>& values) {
    return from_list(values.data(), values.size());
  }

  AccSpec acc_spec() const { return {acc_bits, overflow}; }
  bool operator==(const HwOptions& o) const;
  bool operator!=(const HwOptions& o) const { return !(*this == o); }
};

/// Activation types: i4, u4, i8, u8, i16. Weight types: i4, i8.
bool is_activation_dtype(DType t);
bool is_weight_dtype(DType t);

/// Empty when `raw` is an activation type; otherwise a message naming `what`.
std::string check_activation_dtype(std::int64_t raw, const std::string& what);
/// Empty when `raw` is a weight type (i4, i8); otherwise a message naming `what`.
std::string check_weight_dtype(std::int64_t raw, const std::string& what);
/// Empty when kFracMin <= frac <= kFracMax; otherwise a message naming `what`.
std::string check_frac(std::int64_t frac, const std::string& what);

/// The one rule every frac choice (weight and activation observers) uses: the largest f in
/// [kFracMin, kFracMax] with magnitude * 2^f <= bound; kFracMax for a magnitude of 0 (or
/// less), 0 for a non-finite one. A bound that is not a positive number gives a frac in
/// range too (kFracMin), never a long loop.
int frac_for_bound(double magnitude, double bound);

/// The MAC-array precision mode that runs activations of type `act` against weights of
/// type `wgt` (both already valid): isa::mac_mode_holding, the narrowest mode of the
/// table in dla/mac_modes.hpp that holds both (4-bit act x i8 -> A8W8 with widened
/// values, i16 x i4 -> A16W8).
isa::MacMode mac_mode(DType act, DType wgt);

/// What the Python package reads instead of restating it, as JSON: the type codes and
/// ranges, the rounding-mode and overflow-policy codes, the frac range, the `hw` list's
/// field names in order and the MAC modes of dla/mac_modes.hpp.
std::string hw_tables_json();

/// Empty when the hardware supports mac_mode(act, wgt); otherwise a message that names
/// the types, the mode and the config flag that is off.
std::string check_mac_support(DType act, DType wgt, const HwOptions& hw);

/// Largest |value| of a type (8 for i4, 255 for u8, 32768 for i16).
std::int64_t max_abs(DType t);

/// Output range of a requantizing op: [max(T.min, clip_lo), min(T.max, clip_hi)].
/// Empty (returns a message) when the range is empty.
std::string check_clip(DType t, std::int64_t clip_lo, std::int64_t clip_hi);

}  // namespace dla::qat

// dla/mac_modes.hpp — the MAC array's precisions, declared once (isa/README.md
// sections 2 and 3).
//
// One row per MacMode (row i is mode i): the activation types it reads, its weight
// type, the hardware-config flag that permits it and the config fields of its
// throughput. The engines (which types a MAC instruction reads, whether the config
// runs it, its cycles), the compiler (which mode a layer lowers to), the QAT bridge
// (which mode an op's types need) and the Python package (through the op library) all
// read this table; a generator of hardware sources iterates it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"

namespace dla::isa {

struct MacModeInfo {
  MacMode mode;
  std::string_view name;
  DType act;                   ///< activation type (signed)
  bool has_unsigned;           ///< whether act_unsigned = 1 is valid in this mode
  DType act_unsigned;          ///< activation type when act_unsigned = 1
  DType wgt;                   ///< weight type
  std::string_view flag;       ///< HwConfig flag that permits the mode; empty: every array runs it
  bool HwConfig::*supported;   ///< that flag (nullptr when empty)
  std::string_view speedup_field;       ///< HwConfig field: MACs per PE per cycle vs a8w8 (empty: 1)
  std::int64_t HwConfig::*speedup;      ///< that field (nullptr when empty)
  std::string_view passes_field;        ///< HwConfig field: passes over the array per MAC (empty: 1)
  std::int64_t HwConfig::*passes;       ///< that field (nullptr when empty)
};

inline constexpr std::array<MacModeInfo, 4> kMacModes{{
    {MacMode::A8W8, "a8w8", DType::I8, true, DType::U8, DType::I8, "", nullptr, "", nullptr, "", nullptr},
    {MacMode::A4W4, "a4w4", DType::I4, true, DType::U4, DType::I4, "supports_a4w4", &HwConfig::supports_a4w4,
     "a4w4_speedup", &HwConfig::a4w4_speedup, "", nullptr},
    {MacMode::A8W4, "a8w4", DType::I8, true, DType::U8, DType::I4, "supports_a8w4", &HwConfig::supports_a8w4,
     "a8w4_speedup", &HwConfig::a8w4_speedup, "", nullptr},
    {MacMode::A16W8, "a16w8", DType::I16, false, DType::I16, DType::I8, "supports_a16w8", &HwConfig::supports_a16w8,
     "", nullptr, "a16w8_passes", &HwConfig::a16w8_passes},
}};

constexpr const MacModeInfo& mac_mode_info(MacMode m) { return kMacModes[static_cast<std::size_t>(m)]; }

/// Whether activations of type `act` are a valid operand of `row`.
constexpr bool mac_reads_act(const MacModeInfo& row, DType act) {
  return act == row.act || (row.has_unsigned && act == row.act_unsigned);
}

/// The mode that multiplies `act` activations by `wgt` weights as they are; nullopt when
/// the array has no such precision.
constexpr std::optional<MacMode> mac_mode_for(DType act, DType wgt) {
  for (const MacModeInfo& row : kMacModes) {
    if (mac_reads_act(row, act) && row.wgt == wgt) return row.mode;
  }
  return std::nullopt;
}

/// The narrowest mode whose operand types hold `act` and `wgt` (fewest activation bits,
/// then fewest weight bits): mac_mode_for(act, wgt) when it exists, else a mode that
/// reads widened values (i4 x i8 -> a8w8, i16 x i4 -> a16w8). nullopt when no mode is
/// wide enough.
constexpr std::optional<MacMode> mac_mode_holding(DType act, DType wgt) {
  if (const auto exact = mac_mode_for(act, wgt)) return exact;
  const int act_bits = dtype_info(act).bits, wgt_bits = dtype_info(wgt).bits;
  const MacModeInfo* best = nullptr;
  for (const MacModeInfo& row : kMacModes) {
    const int ab = dtype_info(row.act).bits, wb = dtype_info(row.wgt).bits;
    if (ab < act_bits || wb < wgt_bits) continue;
    if (best == nullptr || ab < dtype_info(best->act).bits ||
        (ab == dtype_info(best->act).bits && wb < dtype_info(best->wgt).bits)) {
      best = &row;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->mode;
}

/// The activation type a MAC instruction of `mode` reads.
constexpr DType mac_act_type(MacMode mode, bool act_unsigned) {
  const MacModeInfo& row = mac_mode_info(mode);
  return act_unsigned && row.has_unsigned ? row.act_unsigned : row.act;
}

/// The weight type a MAC instruction of `mode` reads.
constexpr DType mac_wgt_type(MacMode mode) { return mac_mode_info(mode).wgt; }

/// Whether `type` is an activation (weight) type of some mode.
constexpr bool is_mac_act_type(DType type) {
  for (const MacModeInfo& row : kMacModes) {
    if (mac_reads_act(row, type)) return true;
  }
  return false;
}
constexpr bool is_mac_wgt_type(DType type) {
  for (const MacModeInfo& row : kMacModes) {
    if (row.wgt == type) return true;
  }
  return false;
}

/// Whether the hardware config runs `mode`.
inline bool mac_mode_supported(MacMode mode, const HwConfig& hw) {
  const MacModeInfo& row = mac_mode_info(mode);
  return row.supported == nullptr || hw.*row.supported;
}

/// MACs per PE per cycle relative to a8w8, and passes over the array per MAC.
inline std::int64_t mac_speedup(MacMode mode, const HwConfig& hw) {
  const MacModeInfo& row = mac_mode_info(mode);
  return row.speedup == nullptr ? 1 : hw.*row.speedup;
}
inline std::int64_t mac_passes(MacMode mode, const HwConfig& hw) {
  const MacModeInfo& row = mac_mode_info(mode);
  return row.passes == nullptr ? 1 : hw.*row.passes;
}

/// "i8 x i4": the mode's signed activation type by its weight type.
inline std::string mac_mode_types_text(MacMode mode) {
  const MacModeInfo& row = mac_mode_info(mode);
  return std::string(dtype_info(row.act).name) + " x " + std::string(dtype_info(row.wgt).name);
}

/// Every precision of the array: "i8/u8 x i8, i4/u4 x i4, i8/u8 x i4, i16 x i8".
inline std::string mac_modes_text() {
  std::string text;
  for (const MacModeInfo& row : kMacModes) {
    if (!text.empty()) text += ", ";
    text += dtype_info(row.act).name;
    if (row.has_unsigned) text += "/" + std::string(dtype_info(row.act_unsigned).name);
    text += " x " + std::string(dtype_info(row.wgt).name);
  }
  return text;
}

}  // namespace dla::isa

// hw_options.cpp — the hardware options of the QAT ops and the type/frac checks.
#include "dla/qat/hw_options.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/error.hpp"
#include "dla/mac_modes.hpp"

namespace dla::qat {

HwOptions HwOptions::from_config(const HwConfig& cfg) {
  HwOptions o;
#define DLA_QAT_FROM_CONFIG(member, field) o.member = static_cast<decltype(o.member)>(cfg.field);
  DLA_QAT_HW_LIST(DLA_QAT_FROM_CONFIG)
#undef DLA_QAT_FROM_CONFIG
  return o;
}

HwOptions HwOptions::preset(const std::string& name) { return from_config(HwConfig::preset(name)); }

std::vector<std::int64_t> HwOptions::to_list() const {
#define DLA_QAT_TO_LIST(member, field) static_cast<std::int64_t>(member),
  return {DLA_QAT_HW_LIST(DLA_QAT_TO_LIST)};
#undef DLA_QAT_TO_LIST
}

HwOptions HwOptions::from_list(const std::int64_t* v, std::size_t count) {
  if (count != kHwListSize) {
    std::string names;
    for (const std::string_view name : kHwListFields) names += (names.empty() ? "" : ", ") + std::string(name);
    throw ConfigError("hw: expected " + std::to_string(kHwListSize) + " entries [" + names + "], got " +
                      std::to_string(count));
  }
  // The enum and flag entries; the integer ones are checked by the hardware-config table.
  auto check_range = [&](std::string_view name, std::int64_t lo, std::int64_t hi, const char* meaning) {
    const auto i = static_cast<std::size_t>(std::find(std::begin(kHwListFields), std::end(kHwListFields), name) -
                                            std::begin(kHwListFields));
    if (i < count && (v[i] < lo || v[i] > hi)) {
      throw ConfigError("hw[" + std::to_string(i) + "] (" + std::string(name) + ") = " + std::to_string(v[i]) +
                        " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (" + meaning +
                        ")");
    }
  };
  check_range("overflow_policy", 0, 1, "0 WRAP, 1 SATURATE_FINAL");
  check_range("rounding_mode", 0, kNumRoundModes - 1, "0 HALF_UP, 1 HALF_AWAY, 2 HALF_EVEN, 3 FLOOR");
  for (const isa::MacModeInfo& row : isa::kMacModes) {
    if (!row.flag.empty()) check_range(row.flag, 0, 1, "a flag");
  }

  // The integer fields are checked by the one hardware-config table.
  HwConfig cfg;
  std::size_t i = 0;
#define DLA_QAT_FROM_LIST(member, field) cfg.field = static_cast<decltype(cfg.field)>(v[i++]);
  DLA_QAT_HW_LIST(DLA_QAT_FROM_LIST)
#undef DLA_QAT_FROM_LIST
  cfg.validate();
  return from_config(cfg);
}

bool HwOptions::operator==(const HwOptions& o) const { return to_list() == o.to_list(); }

bool is_activation_dtype(DType t) { return isa::is_mac_act_type(t); }

bool is_weight_dtype(DType t) { return isa::is_mac_wgt_type(t); }

std::string check_activation_dtype(std::int64_t raw, const std::string& what) {
  if (raw >= 0 && raw < kNumDTypes && is_activation_dtype(static_cast<DType>(raw))) return {};
  return what + ": " + std::to_string(raw) +
         " is not an activation type (0 i4, 1 u4, 2 i8, 3 u8, 4 i16)";
}

std::string check_weight_dtype(std::int64_t raw, const std::string& what) {
  if (raw >= 0 && raw < kNumDTypes && is_weight_dtype(static_cast<DType>(raw))) return {};
  std::string got = std::to_string(raw);
  if (raw >= 0 && raw < kNumDTypes) got += " (" + std::string(dtype_info(static_cast<DType>(raw)).name) + ")";
  return what + ": " + got + " is not a weight type (weights are symmetric: 0 i4, 2 i8)";
}

std::string check_frac(std::int64_t frac, const std::string& what) {
  if (frac >= kFracMin && frac <= kFracMax) return {};
  return what + ": frac " + std::to_string(frac) + " is out of range [" + std::to_string(kFracMin) +
         ", " + std::to_string(kFracMax) + "]";
}

int frac_for_bound(double magnitude, double bound) {
  if (!std::isfinite(magnitude)) return 0;
  if (magnitude <= 0) return kFracMax;  // 0 fits at any frac (no caller passes a negative magnitude)
  // Start from the logarithm (a NaN or infinite one, from a bound that is not a positive
  // number, starts at an end), then settle the exact largest f with magnitude * 2^f <= bound;
  // the loops stay inside [kFracMin - 1, kFracMax + 1].
  const double l = std::floor(std::log2(bound / magnitude));
  int fi = std::isnan(l) ? kFracMin - 1
                         : static_cast<int>(std::min<double>(std::max<double>(l, kFracMin - 1), kFracMax + 1));
  while (fi < kFracMax + 1 && std::ldexp(magnitude, fi + 1) <= bound) ++fi;
  while (fi > kFracMin - 1 && std::ldexp(magnitude, fi) > bound) --fi;
  return std::min(kFracMax, std::max(kFracMin, fi));
}

isa::MacMode mac_mode(DType act, DType wgt) {
  // Every activation type x weight type has a holding mode (the i16 x i8 row holds all).
  return isa::mac_mode_holding(act, wgt).value_or(isa::MacMode::A16W8);
}

std::string check_mac_support(DType act, DType wgt, const HwOptions& hw) {
  const isa::MacMode mode = mac_mode(act, wgt);
  HwConfig cfg;
#define DLA_QAT_TO_CONFIG(member, field) cfg.field = static_cast<decltype(cfg.field)>(hw.member);
  DLA_QAT_HW_LIST(DLA_QAT_TO_CONFIG)
#undef DLA_QAT_TO_CONFIG
  if (isa::mac_mode_supported(mode, cfg)) return {};
  return std::string("unsupported precision: ") + std::string(dtype_info(act).name) +
         " activations x " + std::string(dtype_info(wgt).name) + " weights need MAC mode " +
         std::string(isa::mac_mode_name(mode)) + ", which this hardware config does not have (" +
         std::string(isa::mac_mode_info(mode).flag) + " is false)";
}

std::string hw_tables_json() {
  nlohmann::json j;
  for (int code = 0; code < kNumDTypes; ++code) {
    const DType t = static_cast<DType>(code);
    if (!is_activation_dtype(t)) continue;
    j["dtypes"][std::string(dtype_info(t).name)] = code;
    j["ranges"][std::string(dtype_info(t).name)] = {dtype_info(t).min, dtype_info(t).max};
    j["bits"][std::string(dtype_info(t).name)] = dtype_info(t).bits;
  }
  for (int code = 0; code < kNumRoundModes; ++code) {
    j["round_modes"][std::string(round_mode_name(static_cast<RoundMode>(code)))] = code;
  }
  for (const OverflowPolicy p : {OverflowPolicy::WRAP, OverflowPolicy::SATURATE_FINAL}) {
    j["overflow_policies"][std::string(overflow_policy_name(p))] = static_cast<int>(p);
  }
  j["frac_range"] = {kFracMin, kFracMax};
  j["hw_list"] = nlohmann::json::array();
  for (const std::string_view name : kHwListFields) j["hw_list"].push_back(std::string(name));
  j["mac_modes"] = nlohmann::json::array();
  for (const isa::MacModeInfo& row : isa::kMacModes) {
    nlohmann::json acts = {std::string(dtype_info(row.act).name)};
    if (row.has_unsigned) acts.push_back(std::string(dtype_info(row.act_unsigned).name));
    j["mac_modes"].push_back({{"mode", std::string(row.name)},
                              {"act", acts},
                              {"wgt", std::string(dtype_info(row.wgt).name)},
                              {"flag", row.flag.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::string(row.flag))}});
  }
  j["mac_modes_text"] = isa::mac_modes_text();
  return j.dump();
}

std::int64_t max_abs(DType t) {
  const DTypeInfo info = dtype_info(t);
  return info.max > -info.min ? info.max : -info.min;
}

std::string check_clip(DType t, std::int64_t clip_lo, std::int64_t clip_hi) {
  OutputSpec out;
  out.type = t;
  out.clip_lo = clip_lo;
  out.clip_hi = clip_hi;
  if (out.lo() <= out.hi()) return {};
  return "clip range [" + std::to_string(clip_lo) + ", " + std::to_string(clip_hi) +
         "] leaves no value of type " + std::string(dtype_info(t).name) + " [" +
         std::to_string(dtype_info(t).min) + ", " + std::to_string(dtype_info(t).max) + "]";
}

}  // namespace dla::qat

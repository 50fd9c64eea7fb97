// hw_options.cpp — the hardware options of the QAT ops and the type/frac checks.
#include "dla/qat/hw_options.hpp"

#include <string>
#include <vector>

#include "dla/error.hpp"

namespace dla::qat {

HwOptions HwOptions::from_config(const HwConfig& cfg) {
  HwOptions o;
  o.acc_bits = static_cast<int>(cfg.acc_bits);
  o.overflow = cfg.overflow_policy;
  o.rounding = cfg.rounding_mode;
  o.avgpool_shift = static_cast<int>(cfg.avgpool_shift);
  o.supports_a4w4 = cfg.supports_a4w4;
  o.supports_a8w4 = cfg.supports_a8w4;
  o.supports_a16w8 = cfg.supports_a16w8;
  return o;
}

HwOptions HwOptions::preset(const std::string& name) { return from_config(HwConfig::preset(name)); }

std::vector<std::int64_t> HwOptions::to_list() const {
  return {acc_bits,
          static_cast<std::int64_t>(overflow),
          static_cast<std::int64_t>(rounding),
          avgpool_shift,
          supports_a4w4 ? 1 : 0,
          supports_a8w4 ? 1 : 0,
          supports_a16w8 ? 1 : 0};
}

HwOptions HwOptions::from_list(const std::int64_t* v, std::size_t count) {
  if (count != kHwListSize) {
    throw ConfigError("hw: expected " + std::to_string(kHwListSize) +
                      " entries [acc_bits, overflow_policy, rounding_mode, avgpool_shift, "
                      "supports_a4w4, supports_a8w4, supports_a16w8], got " +
                      std::to_string(count));
  }
  auto check_range = [&](std::size_t i, const char* name, std::int64_t lo, std::int64_t hi,
                         const char* meaning) {
    if (v[i] < lo || v[i] > hi) {
      throw ConfigError("hw[" + std::to_string(i) + "] (" + name + ") = " + std::to_string(v[i]) +
                        " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                        "] (" + meaning + ")");
    }
  };
  check_range(1, "overflow_policy", 0, 1, "0 WRAP, 1 SATURATE_FINAL");
  check_range(2, "rounding_mode", 0, kNumRoundModes - 1,
              "0 HALF_UP, 1 HALF_AWAY, 2 HALF_EVEN, 3 FLOOR");
  check_range(4, "supports_a4w4", 0, 1, "a flag");
  check_range(5, "supports_a8w4", 0, 1, "a flag");
  check_range(6, "supports_a16w8", 0, 1, "a flag");

  // The integer fields are checked by the one hardware-config table.
  HwConfig cfg;
  cfg.acc_bits = v[0];
  cfg.overflow_policy = static_cast<OverflowPolicy>(v[1]);
  cfg.rounding_mode = static_cast<RoundMode>(v[2]);
  cfg.avgpool_shift = v[3];
  cfg.supports_a4w4 = v[4] != 0;
  cfg.supports_a8w4 = v[5] != 0;
  cfg.supports_a16w8 = v[6] != 0;
  cfg.validate();
  return from_config(cfg);
}

bool HwOptions::operator==(const HwOptions& o) const { return to_list() == o.to_list(); }

bool is_activation_dtype(DType t) {
  return t == DType::I4 || t == DType::U4 || t == DType::I8 || t == DType::U8 || t == DType::I16;
}

bool is_weight_dtype(DType t) { return t == DType::I4 || t == DType::I8; }

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

isa::MacMode mac_mode(DType act, DType wgt) {
  const int act_bits = dtype_info(act).bits;
  if (act_bits == 16) return isa::MacMode::A16W8;
  if (wgt == DType::I4) return act_bits == 4 ? isa::MacMode::A4W4 : isa::MacMode::A8W4;
  return isa::MacMode::A8W8;
}

std::string check_mac_support(DType act, DType wgt, const HwOptions& hw) {
  const isa::MacMode mode = mac_mode(act, wgt);
  const char* flag = nullptr;
  switch (mode) {
    case isa::MacMode::A8W8: return {};
    case isa::MacMode::A4W4: flag = hw.supports_a4w4 ? nullptr : "supports_a4w4"; break;
    case isa::MacMode::A8W4: flag = hw.supports_a8w4 ? nullptr : "supports_a8w4"; break;
    case isa::MacMode::A16W8: flag = hw.supports_a16w8 ? nullptr : "supports_a16w8"; break;
  }
  if (flag == nullptr) return {};
  return std::string("unsupported precision: ") + std::string(dtype_info(act).name) +
         " activations x " + std::string(dtype_info(wgt).name) + " weights need MAC mode " +
         std::string(isa::mac_mode_name(mode)) + ", which this hardware config does not have (" +
         flag + " is false)";
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

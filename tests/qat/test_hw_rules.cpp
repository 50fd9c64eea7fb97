// The hardware rules declared once in isa/ reach every consumer from that one place.
// The type pairs are enumerated from the MAC-mode table (dla/mac_modes.hpp), so a rule
// changed there changes what every check below expects: for each activation type x
// weight type and each config (all modes on, then each mode's flag off), the compiler
// lowers the pair to the table's mode or refuses it, the emulator's semantics read the
// emitted MAC with the table's types and refuse a mode the config lacks, and the QAT
// bridge accepts or refuses the same pair.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dla/compiler/lower.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#include "dla/mac_modes.hpp"
#include "dla/param_records.hpp"
#include "dla/qat/hw_options.hpp"
#include "dla/semantics.hpp"

using namespace dla;

namespace {

compiler::Graph one_conv(DType act, DType wgt) {
  compiler::Graph g;
  const int x = g.input("x", act, 0, {1, 4, 6, 6});
  compiler::ConvAttrs a;
  a.kernel_h = a.kernel_w = 3;
  compiler::QuantSpec q;
  q.dtype = DType::I8;
  g.mark_output(g.conv2d("conv", x, 4, a, wgt, std::vector<std::int32_t>(4 * 4 * 3 * 3, 1), std::vector<int>(4, 0), {}, q));
  return g;
}

/// The default config, then the default with each mode's flag off in turn.
std::vector<HwConfig> configs() {
  std::vector<HwConfig> out{HwConfig::preset("default")};
  for (const isa::MacModeInfo& row : isa::kMacModes) {
    if (row.supported == nullptr) continue;
    HwConfig hw = HwConfig::preset("default");
    hw.*row.supported = false;
    out.push_back(hw);
  }
  return out;
}

std::vector<DType> types_where(bool (*pred)(DType)) {
  std::vector<DType> out;
  for (int code = 0; code < kNumDTypes; ++code) {
    if (pred(static_cast<DType>(code))) out.push_back(static_cast<DType>(code));
  }
  return out;
}

/// The first MAC of the program compiled for `hw`, or nullopt when the compiler refuses.
std::optional<isa::Mac> compiled_mac(DType act, DType wgt, const HwConfig& hw) {
  try {
    const Program p = compiler::compile(one_conv(act, wgt), hw);
    for (const isa::Instruction& i : p.instructions) {
      if (const auto* mac = std::get_if<isa::Mac>(&i)) return *mac;
    }
    ADD_FAILURE() << "the program has no MAC";
  } catch (const Error&) {
  }
  return std::nullopt;
}

/// Bytes of ACT and WGT the emulator's semantics say a MAC reads.
std::pair<std::uint64_t, std::uint64_t> mac_reads(const isa::Mac& mac, const HwConfig& hw) {
  sim::MachineState m(hw, 0);
  const sim::Effects fx = sim::describe(mac, m, 0);
  std::uint64_t act = 0, wgt = 0;
  for (const sim::Access& a : fx) {
    if (a.kind != sim::AccessKind::kRead) continue;
    if (a.region.space == sim::Space::kAct) act += a.region.units();
    if (a.region.space == sim::Space::kWgt) wgt += a.region.units();
  }
  return {act, wgt};
}

}  // namespace

TEST(HwRules, EveryTypePairOfTheMacTableAgreesAcrossConsumers) {
  const std::vector<DType> acts = types_where(isa::is_mac_act_type);
  const std::vector<DType> wgts = types_where(isa::is_mac_wgt_type);
  ASSERT_FALSE(acts.empty());
  ASSERT_FALSE(wgts.empty());
  for (const HwConfig& hw : configs()) {
    for (const DType act : acts) {
      for (const DType wgt : wgts) {
        SCOPED_TRACE(std::string(dtype_info(act).name) + " x " + std::string(dtype_info(wgt).name));
        const std::optional<isa::MacMode> mode = isa::mac_mode_for(act, wgt);
        const bool runs = mode.has_value() && isa::mac_mode_supported(*mode, hw);

        // The compiler lowers exactly the pairs the table has and the config runs.
        const std::optional<isa::Mac> mac = compiled_mac(act, wgt, hw);
        ASSERT_EQ(mac.has_value(), runs);
        if (mac) {
          EXPECT_EQ(static_cast<isa::MacMode>(mac->mode), *mode);
          // The engines read that MAC with the table's types: a 6x6x4 input tile and
          // 4x3x3x4 weights.
          const auto [act_bytes, wgt_bytes] = mac_reads(*mac, hw);
          EXPECT_EQ(act_bytes, storage_bytes(act, 6 * 6 * 4));
          EXPECT_EQ(wgt_bytes, storage_bytes(wgt, 4 * 3 * 3 * 4));
        }

        // The bridge accepts a pair exactly when its mode (widened where the table has
        // no exact one) is one the config runs.
        const isa::MacMode bridge_mode = qat::mac_mode(act, wgt);
        if (mode) {
          EXPECT_EQ(bridge_mode, *mode);
        }
        EXPECT_EQ(qat::check_mac_support(act, wgt, qat::HwOptions::from_config(hw)).empty(),
                  isa::mac_mode_supported(bridge_mode, hw));
      }
    }
  }
}

TEST(HwRules, TheEnginesRunAModeExactlyWhenItsConfigFlagIsOn) {
  for (const HwConfig& hw : configs()) {
    for (const isa::MacModeInfo& row : isa::kMacModes) {
      isa::Mac mac;
      mac.mode = static_cast<std::int64_t>(row.mode);
      bool accepted = true;
      try {
        sim::MachineState m(hw, 0);
        sim::describe(mac, m, 0);
      } catch (const sim::ExecutionError& e) {
        accepted = false;
        EXPECT_NE(std::string(e.what()).find(std::string(row.flag) + " = false"), std::string::npos) << e.what();
      }
      EXPECT_EQ(accepted, isa::mac_mode_supported(row.mode, hw)) << row.name;
    }
  }
}

TEST(HwRules, ParameterRecordsRoundTripThroughTheirLayouts) {
  isa::RequantRecord rq;
  rq.clip_lo = -70000;
  rq.clip_hi = 123456;
  rq.shift = {-128, 0, 7, 127};
  const auto rq_bytes = rq.encode();
  ASSERT_EQ(rq_bytes.size(), isa::RequantRecord::size(4));
  const auto rq_back = isa::RequantRecord::decode(rq_bytes.data(), 4);
  EXPECT_EQ(rq_back.clip_lo, rq.clip_lo);
  EXPECT_EQ(rq_back.clip_hi, rq.clip_hi);
  EXPECT_EQ(rq_back.shift, rq.shift);

  const isa::AddRecord add{-5, 9, 1, 2, -3};
  const auto add_bytes = add.encode();
  ASSERT_EQ(add_bytes.size(), isa::AddRecord::kSize);
  const auto add_back = isa::AddRecord::decode(add_bytes.data());
  EXPECT_EQ(add_back.clip_lo, -5);
  EXPECT_EQ(add_back.shift_y, -3);
  // The layout table says where each field lies: shift_b is the byte after shift_a.
  EXPECT_EQ(add_bytes[isa::AddRecord::kLayout[3].offset], 2);

  const isa::AvgPoolRecord avg{0, 255, 15};
  const auto avg_bytes = avg.encode();
  ASSERT_EQ(avg_bytes.size(), isa::AvgPoolRecord::kSize);
  EXPECT_EQ(isa::AvgPoolRecord::decode(avg_bytes.data()).shift, 15);
  // Little endian: clip_hi = 255 is ff 00 00 00 at its offset.
  EXPECT_EQ(avg_bytes[isa::AvgPoolRecord::kLayout[1].offset], 0xff);
  EXPECT_EQ(avg_bytes[isa::AvgPoolRecord::kLayout[1].offset + 1], 0);
}

// test_rtl_pkg.cpp — the generated SystemVerilog package dla_pkg.sv holds exactly the
// values of the C++ tables it is generated from: the hardware-config preset, the DType
// table, the enums and every field of every instruction. The package is parsed as text,
// so a generator that drops, renames or mis-encodes a constant fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"
#include "dla/param_records.hpp"

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

/// Every `localparam T NAME = V;` and every enum entry `NAME = N'dV`, by name.
class Package {
 public:
  explicit Package(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    static const std::regex param(R"(localparam\s+\w+\s+(\w+)\s*=\s*(-?)(?:(\d+)'s?[bd])?(\d+)\s*;)");
    static const std::regex entry(R"(^\s+(\w+)\s*=\s*\d+'d(\d+),?\s*$)");
    for (std::sregex_iterator it(text.begin(), text.end(), param), end; it != end; ++it) {
      const auto& m = *it;
      std::int64_t v = static_cast<std::int64_t>(std::stoull(m[4]));
      add(m[1], m[2] == "-" ? -v : v);
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_match(line, m, entry)) add(m[1], std::stoll(m[2]));
    }
  }

  /// The value of NAME; fails the test when it is missing.
  std::int64_t operator[](const std::string& name) const {
    const auto it = values_.find(name);
    EXPECT_NE(it, values_.end()) << "dla_pkg.sv declares no " << name;
    return it == values_.end() ? INT64_MIN : it->second;
  }
  std::size_t size() const { return values_.size(); }

 private:
  void add(const std::string& name, std::int64_t value) {
    EXPECT_EQ(values_.count(name), 0u) << name << " is declared twice";
    values_[name] = value;
  }
  std::map<std::string, std::int64_t> values_;
};

const Package& package() {
  static const Package pkg(DLA_RTL_PKG_PATH);
  return pkg;
}

TEST(RtlPackage, HoldsEveryHardwareConfigFieldOfThePreset) {
  const auto cfg = dla::HwConfig::preset(DLA_RTL_PRESET);
  const nlohmann::json j = cfg.to_json();
  int checked = 0;
  for (const auto& doc : dla::hw_config_field_docs()) {
    const auto& v = j.at(doc.name);
    std::int64_t expected = 0;
    if (doc.kind == "int") expected = v.get<std::int64_t>();
    else if (doc.kind == "bool") expected = v.get<bool>() ? 1 : 0;
    else if (doc.name == "rounding_mode") expected = static_cast<int>(cfg.rounding_mode);
    else if (doc.name == "overflow_policy") expected = static_cast<int>(cfg.overflow_policy);
    else FAIL() << "unexpected enum field " << doc.name;
    EXPECT_EQ(package()[upper(doc.name)], expected) << doc.name;
    ++checked;
  }
  EXPECT_GE(checked, 28);
}

TEST(RtlPackage, HoldsTheSramGeometry) {
  const auto cfg = dla::HwConfig::preset(DLA_RTL_PRESET);
  EXPECT_EQ(package()["ACC_SRAM_WORDS"], cfg.acc_sram_kib * 1024 / 4);
  EXPECT_EQ(package()["ACC_PORT_WORDS"], std::max(cfg.mac_cols, cfg.requant_lanes));
  EXPECT_EQ(package()["ACC_BANK_WORDS"], cfg.acc_bank_words());
  EXPECT_EQ(package()["ACT_SRAM_BYTES"], cfg.act_sram_kib * 1024);
  EXPECT_EQ(package()["ACT_PORT_BYTES"], cfg.act_port_bytes());
  EXPECT_EQ(package()["WGT_SRAM_BYTES"], cfg.wgt_sram_kib * 1024);
  // One column's weights of a set: mac_rows 8-bit weights, or the 4-bit modes' rows *
  // speedup nibbles with a byte for a run that starts mid-byte.
  const std::int64_t nibble_run = std::max(cfg.a8w4_speedup, cfg.a4w4_speedup) * cfg.mac_rows;
  EXPECT_EQ(package()["WGT_PORT_BYTES"], std::max(cfg.mac_rows, (nibble_run + 1) / 2 + 1));
  EXPECT_EQ(package()["PARAM_SRAM_BYTES"], cfg.param_sram_kib * 1024);
  // The widest of: a requant record's two int32 clips and requant_lanes int8 shifts, an
  // add record (two clips, three shifts: 11 bytes), lut_lanes int16 table entries.
  EXPECT_EQ(package()["PARAM_PORT_BYTES"], std::max({8 + cfg.requant_lanes, std::int64_t{11}, 2 * cfg.lut_lanes}));
}

TEST(RtlPackage, HoldsTheDTypeTable) {
  EXPECT_EQ(package()["NUM_DTYPES"], dla::kNumDTypes);
  for (int i = 0; i < dla::kNumDTypes; ++i) {
    const auto info = dla::dtype_info(static_cast<dla::DType>(i));
    const std::string p = "DTYPE_" + upper(info.name);
    EXPECT_EQ(package()[p], i);
    EXPECT_EQ(package()[p + "_BITS"], info.bits);
    EXPECT_EQ(package()[p + "_SIGNED"], info.is_signed ? 1 : 0);
    EXPECT_EQ(package()[p + "_MIN"], info.min);
    EXPECT_EQ(package()[p + "_MAX"], info.max);
  }
}

TEST(RtlPackage, HoldsTheEnumCodes) {
  for (int i = 0; i < dla::kNumRoundModes; ++i)
    EXPECT_EQ(package()["ROUND_" + std::string(dla::round_mode_name(static_cast<dla::RoundMode>(i)))], i);
  EXPECT_EQ(package()["OVF_WRAP"], static_cast<int>(dla::OverflowPolicy::WRAP));
  EXPECT_EQ(package()["OVF_SATURATE_FINAL"], static_cast<int>(dla::OverflowPolicy::SATURATE_FINAL));
  for (const auto m : {dla::isa::MacMode::A8W8, dla::isa::MacMode::A4W4, dla::isa::MacMode::A8W4,
                       dla::isa::MacMode::A16W8})
    EXPECT_EQ(package()["MAC_" + upper(dla::isa::mac_mode_name(m))], static_cast<int>(m));
  for (const auto b : {dla::isa::Buffer::ACT, dla::isa::Buffer::WGT, dla::isa::Buffer::ACC,
                       dla::isa::Buffer::PARAM})
    EXPECT_EQ(package()["BUF_" + upper(dla::isa::buffer_name(b))], static_cast<int>(b));
}

TEST(RtlPackage, HoldsTheVectorUnitNumerics) {
  // Independent of the generator's loop: the table sizes the ISA documents (VLUT).
  EXPECT_EQ(package()["AVGPOOL_MULT_MAX"], 65535);
  EXPECT_EQ(package()["LUT_ENTRY_BITS"], 16);
  EXPECT_EQ(package()["LUT_INTERP_BITS"], dla::kLutInterpBits);
  EXPECT_EQ(package()["LUT_ENTRIES_MAX"], dla::lut_entries(dla::DType::I16));
  EXPECT_EQ(package()["LUT_ENTRIES_MAX"], 257);
}

TEST(RtlPackage, HoldsEveryFieldOfEveryInstruction) {
  std::size_t count = 0;
  const dla::isa::InsnInfo* infos = dla::isa::insn_infos(&count);
  ASSERT_GE(count, 11u);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string p = upper(infos[i].mnemonic);
    EXPECT_EQ(package()["OPC_" + p], infos[i].opclass);
    if (infos[i].funct != dla::isa::kNoFunct) {
      EXPECT_EQ(package()["FUNCT_" + p], infos[i].funct);
    }
    for (std::size_t f = 0; f < infos[i].num_fields; ++f) {
      const auto& field = infos[i].fields[f];
      const std::string n = p + "_" + upper(field.name);
      EXPECT_EQ(package()[n + "_LSB"], field.lsb) << n;
      EXPECT_EQ(package()[n + "_W"], field.width) << n;
      EXPECT_EQ(package()[n + "_MIN"], field.min) << n;
      EXPECT_EQ(package()[n + "_MAX"], field.max) << n;
    }
  }
}

/// The header positions are checked against words the encoder produced.
TEST(RtlPackage, HeaderPositionsDecodeEncodedWords) {
  const Package& pkg = package();
  dla::isa::VAdd add;
  add.tokens.pop_prev = true;
  add.tokens.push_next = true;
  const auto word = dla::isa::encode(dla::isa::Instruction{add});
  const auto bits = [&](const std::string& lsb, std::int64_t width) {
    return word.bits(static_cast<int>(pkg[lsb]), static_cast<int>(width));
  };
  EXPECT_EQ(bits("OPCLASS_LSB", pkg["OPCLASS_W"]), static_cast<std::uint64_t>(pkg["OPC_VADD"]));
  EXPECT_EQ(bits("FUNCT_LSB", pkg["FUNCT_W"]), static_cast<std::uint64_t>(pkg["FUNCT_VADD"]));
  EXPECT_EQ(bits("POP_PREV_BIT", 1), 1u);
  EXPECT_EQ(bits("POP_NEXT_BIT", 1), 0u);
  EXPECT_EQ(bits("PUSH_PREV_BIT", 1), 0u);
  EXPECT_EQ(bits("PUSH_NEXT_BIT", 1), 1u);
  EXPECT_EQ(pkg["INSN_BITS"], dla::isa::kInstructionBits);
}

}  // namespace

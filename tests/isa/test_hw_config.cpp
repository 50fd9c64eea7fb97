// test_hw_config.cpp — the hardware config: presets, JSON reader/writer, validation
// messages, identity hash and the field documentation.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/error.hpp"
#include "dla/hw_config.hpp"

namespace {

using dla::ConfigError;
using dla::HwConfig;
using nlohmann::json;
using nlohmann::ordered_json;

/// Runs `f`, which must throw ConfigError, and returns the message.
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

HwConfig parse(const std::string& text) { return HwConfig::from_json_text(text, "config.json"); }

std::string parse_error(const std::string& text) {
  return config_error([&] { parse(text); });
}

struct IntRange {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
};

IntRange parse_range(const std::string& range) {
  long long lo = 0, hi = 0;
  EXPECT_EQ(std::sscanf(range.c_str(), "[%lld, %lld]", &lo, &hi), 2) << range;
  return {static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi)};
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

/// Independent FNV-1a 64 for the identity-hash tests.
std::uint64_t fnv1a64(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// A fresh path under the test temp directory (removed by the caller).
std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "dla_test_hw_config_" + name;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

// ---------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------

TEST(HwConfigPreset, NamesAreSmallDefaultLarge) {
  EXPECT_EQ(HwConfig::preset_names(), (std::vector<std::string>{"small", "default", "large"}));
}

TEST(HwConfigPreset, EveryPresetLoadsAndValidates) {
  for (const auto& name : HwConfig::preset_names()) {
    SCOPED_TRACE(name);
    HwConfig c;
    ASSERT_NO_THROW(c = HwConfig::preset(name));
    EXPECT_NO_THROW(c.validate());
  }
}

TEST(HwConfigPreset, DefaultIsTheDeclaredDefaults) {
  const HwConfig c = HwConfig::preset("default");
  EXPECT_EQ(c, HwConfig{});
  EXPECT_EQ(c.mac_rows, 16);
  EXPECT_EQ(c.mac_cols, 16);
  EXPECT_EQ(c.acc_bits, 32);
  EXPECT_EQ(c.act_sram_kib, 256);
  EXPECT_EQ(c.acc_sram_kib, 64);
  EXPECT_EQ(c.dram_latency_cycles, 100);
  EXPECT_EQ(c.avgpool_shift, 15);
  EXPECT_TRUE(c.supports_a4w4);
  EXPECT_EQ(c.rounding_mode, dla::RoundMode::HALF_UP);
  EXPECT_EQ(c.overflow_policy, dla::OverflowPolicy::WRAP);
}

TEST(HwConfigPreset, SmallOverridesExactlyItsFields) {
  const HwConfig c = HwConfig::preset("small");
  EXPECT_EQ(c.mac_rows, 4);
  EXPECT_EQ(c.mac_cols, 4);
  EXPECT_EQ(c.act_sram_kib, 8);
  EXPECT_EQ(c.wgt_sram_kib, 8);
  EXPECT_EQ(c.acc_sram_kib, 2);
  EXPECT_EQ(c.param_sram_kib, 1);
  EXPECT_EQ(c.dram_latency_cycles, 20);
  EXPECT_EQ(c.dram_bytes_per_cycle, 8);
  EXPECT_EQ(c.requant_lanes, 4);
  EXPECT_EQ(c.vector_lanes, 4);
  EXPECT_EQ(c.queue_depth, 8);
  EXPECT_EQ(c.token_depth, 4);

  // Everything else is the default.
  HwConfig expected;
  expected.mac_rows = 4;
  expected.mac_cols = 4;
  expected.act_sram_kib = 8;
  expected.wgt_sram_kib = 8;
  expected.acc_sram_kib = 2;
  expected.param_sram_kib = 1;
  expected.sram_bank_bytes = 4;
  expected.dram_latency_cycles = 20;
  expected.dram_bytes_per_cycle = 8;
  expected.requant_lanes = 4;
  expected.vector_lanes = 4;
  expected.lut_lanes = 4;
  expected.queue_depth = 8;
  expected.token_depth = 4;
  EXPECT_EQ(c, expected);
  EXPECT_EQ(c.acc_bits, 32);
  EXPECT_EQ(c.clock_mhz, 1000);
}

TEST(HwConfigPreset, LargeOverridesExactlyItsFields) {
  const HwConfig c = HwConfig::preset("large");
  HwConfig expected;
  expected.mac_rows = 32;
  expected.mac_cols = 32;
  expected.act_sram_kib = 1024;
  expected.wgt_sram_kib = 1024;
  expected.acc_sram_kib = 256;
  expected.param_sram_kib = 64;
  expected.sram_bank_bytes = 32;
  expected.dram_bytes_per_cycle = 64;
  expected.requant_lanes = 32;
  expected.vector_lanes = 32;
  expected.lut_lanes = 32;
  EXPECT_EQ(c, expected);
  EXPECT_EQ(c.mac_rows, 32);
  EXPECT_EQ(c.act_sram_kib, 1024);
  EXPECT_EQ(c.dram_latency_cycles, 100);
  EXPECT_EQ(c.queue_depth, 16);
}

TEST(HwConfigPreset, DerivedQuantities) {
  const HwConfig s = HwConfig::preset("small");
  EXPECT_EQ(s.act_sram_bytes(), 8 * 1024);
  EXPECT_EQ(s.wgt_sram_bytes(), 8 * 1024);
  EXPECT_EQ(s.acc_sram_words(), 512);
  EXPECT_EQ(s.param_sram_bytes(), 1024);
  EXPECT_EQ(s.dram_bytes(), std::int64_t{1024} * 1024 * 1024);
  EXPECT_EQ(s.acc_spec().bits, 32);
  EXPECT_EQ(s.acc_spec().policy, dla::OverflowPolicy::WRAP);
  EXPECT_EQ(HwConfig::preset("large").acc_sram_words(), 65536);
}

TEST(HwConfigPreset, UnknownNameListsValidNames) {
  const std::string msg = config_error([] { HwConfig::preset("tiny"); });
  EXPECT_NE(msg.find("\"tiny\""), std::string::npos) << msg;
  for (const char* name : {"small", "default", "large"})
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_THROW(HwConfig::preset(""), ConfigError);
  EXPECT_THROW(HwConfig::preset("Small"), ConfigError);
}

// ---------------------------------------------------------------------------
// JSON reading and writing
// ---------------------------------------------------------------------------

TEST(HwConfigJson, RoundTripEveryPreset) {
  for (const auto& name : HwConfig::preset_names()) {
    SCOPED_TRACE(name);
    const HwConfig c = HwConfig::preset(name);
    EXPECT_EQ(HwConfig::from_json(c.to_json()), c);
    EXPECT_EQ(HwConfig::from_json_text(c.to_json_text()), c);
    EXPECT_EQ(HwConfig::from_json_text(c.to_json().dump()), c);
  }
}

TEST(HwConfigJson, RoundTripNonDefaultEnumsAndBools) {
  HwConfig c;
  c.rounding_mode = dla::RoundMode::HALF_EVEN;
  c.overflow_policy = dla::OverflowPolicy::SATURATE_FINAL;
  c.supports_a16w8 = false;
  c.acc_bits = 24;
  const json j = c.to_json();
  EXPECT_EQ(j.at("rounding_mode"), "HALF_EVEN");
  EXPECT_EQ(j.at("overflow_policy"), "SATURATE_FINAL");
  EXPECT_EQ(j.at("supports_a16w8"), false);
  EXPECT_EQ(j.at("acc_bits"), 24);
  EXPECT_EQ(HwConfig::from_json(j), c);
}

TEST(HwConfigJson, ToJsonHasEveryFieldAndNoPresetKey) {
  const auto docs = dla::hw_config_field_docs();
  const json j = HwConfig::preset("small").to_json();
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), docs.size());
  for (const auto& d : docs) EXPECT_TRUE(j.contains(d.name)) << d.name;
  EXPECT_FALSE(j.contains("preset"));
  EXPECT_EQ(j.at("mac_rows"), 4);
  EXPECT_EQ(j.at("rounding_mode"), "HALF_UP");
  EXPECT_EQ(j.at("supports_a4w4"), true);
}

TEST(HwConfigJson, ToJsonTextIsPrettyInDeclarationOrder) {
  const std::string text = HwConfig{}.to_json_text();
  EXPECT_EQ(text.rfind("{\n  \"mac_rows\": 16,\n  \"mac_cols\": 16,\n  \"supports_a4w4\": true,", 0),
            0u)
      << text;
  EXPECT_NE(text.find("\n  \"rounding_mode\": \"HALF_UP\",\n"), std::string::npos) << text;
  const std::string tail = ",\n  \"token_depth\": 8\n}\n";
  ASSERT_GT(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail) << text;

  const ordered_json j = ordered_json::parse(text);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> names;
  for (const auto& d : dla::hw_config_field_docs()) names.push_back(d.name);
  EXPECT_EQ(keys, names);
  EXPECT_EQ(names.front(), "mac_rows");
  EXPECT_EQ(names.back(), "token_depth");
}

TEST(HwConfigJson, PartialJsonOverridesOnlyGivenFields) {
  const HwConfig c =
      parse(R"({"acc_bits": 24, "rounding_mode": "HALF_EVEN", "supports_a4w4": false})");
  HwConfig expected;
  expected.acc_bits = 24;
  expected.rounding_mode = dla::RoundMode::HALF_EVEN;
  expected.supports_a4w4 = false;
  EXPECT_EQ(c, expected);
  EXPECT_EQ(c.mac_rows, 16);
  EXPECT_EQ(c.act_sram_kib, 256);
}

TEST(HwConfigJson, PresetKeyPicksTheBase) {
  const HwConfig c = parse(R"({"preset": "small", "mac_rows": 8, "overflow_policy": "SATURATE_FINAL"})");
  HwConfig expected = HwConfig::preset("small");
  expected.mac_rows = 8;
  expected.overflow_policy = dla::OverflowPolicy::SATURATE_FINAL;
  EXPECT_EQ(c, expected);
  EXPECT_EQ(c.mac_cols, 4);
  EXPECT_EQ(c.act_sram_kib, 8);

  // The preset key may come after the fields; the fields still win.
  EXPECT_EQ(parse(R"({"mac_rows": 8, "overflow_policy": "SATURATE_FINAL", "preset": "small"})"),
            expected);
  EXPECT_EQ(parse(R"({"preset": "large"})"), HwConfig::preset("large"));
  EXPECT_EQ(parse(R"({"preset": "default"})"), HwConfig{});
}

TEST(HwConfigJson, EmptyObjectIsTheDefault) { EXPECT_EQ(parse("{}"), HwConfig{}); }

TEST(HwConfigJson, ProgrammaticJsonWithUnsignedValues) {
  json j = json::object();
  j["mac_rows"] = 8u;
  j["clock_mhz"] = std::uint64_t{500};
  const HwConfig c = HwConfig::from_json(j, "api");
  EXPECT_EQ(c.mac_rows, 8);
  EXPECT_EQ(c.clock_mhz, 500);
}

TEST(HwConfigJson, BadPresetValueRejected) {
  const std::string unknown = parse_error(R"({"preset": "tiny"})");
  EXPECT_EQ(unknown, "config.json: unknown preset \"tiny\" (valid presets: small, default, large)");
  const std::string wrong_type = parse_error(R"({"preset": 3})");
  EXPECT_EQ(wrong_type.rfind("config.json: \"preset\" must be a string", 0), 0u) << wrong_type;
  EXPECT_NE(wrong_type.find("got number 3"), std::string::npos) << wrong_type;
}

TEST(HwConfigJson, NonObjectRejected) {
  EXPECT_EQ(parse_error("[1, 2]"),
            "config.json: a hardware config must be a JSON object, got array [1,2]");
  EXPECT_EQ(parse_error("16"), "config.json: a hardware config must be a JSON object, got number 16");
  EXPECT_EQ(parse_error("null"), "config.json: a hardware config must be a JSON object, got null");
  EXPECT_THROW(HwConfig::from_json(json::array()), ConfigError);
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

TEST(HwConfigRange, EveryIntFieldAcceptsBoundsAndRejectsOutside) {
  int int_fields = 0;
  for (const auto& d : dla::hw_config_field_docs()) {
    if (d.kind != "int") continue;
    ++int_fields;
    SCOPED_TRACE(d.name);
    const IntRange r = parse_range(d.range);
    ASSERT_LT(r.lo, r.hi);

    for (std::int64_t ok : {r.lo, r.hi}) {
      json j = json::object();
      j[d.name] = ok;
      HwConfig c;
      ASSERT_NO_THROW(c = HwConfig::from_json(j, "config.json")) << ok;
      EXPECT_EQ(c.to_json().at(d.name), ok);
      EXPECT_NO_THROW(c.validate());
    }
    for (std::int64_t bad : {r.lo - 1, r.hi + 1}) {
      json j = json::object();
      j[d.name] = bad;
      const std::string msg = config_error([&] { HwConfig::from_json(j, "config.json"); });
      const std::string expected = "config.json: field \"" + d.name + "\" = " +
                                   std::to_string(bad) + " is out of range " + d.range + " (" +
                                   d.unit + ")";
      EXPECT_EQ(msg, expected);
      EXPECT_NE(msg.find(d.name), std::string::npos);
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos);
      EXPECT_NE(msg.find(d.range), std::string::npos);
    }
  }
  EXPECT_EQ(int_fields, 25);
}

TEST(HwConfigRange, SramBanksAndBankBytesArePowersOfTwo) {
  EXPECT_EQ(parse_error(R"({"sram_banks": 6})"),
            "config.json: field \"sram_banks\" = 6 is not a power of two (the SRAMs select banks and bytes by "
            "address bits)");
  EXPECT_EQ(parse_error(R"({"preset": "small", "sram_bank_bytes": 12})"),
            "config.json: field \"sram_bank_bytes\" = 12 is not a power of two (the SRAMs select banks and bytes "
            "by address bits)");
  HwConfig c;
  c.sram_banks = 3;
  EXPECT_THROW(c.validate(), dla::ConfigError);
  for (std::int64_t banks : {2, 8, 64}) {
    c.sram_banks = banks;
    EXPECT_NO_THROW(c.validate()) << banks;
  }
}

TEST(HwConfigRange, ExactMessageForAccBits) {
  EXPECT_EQ(parse_error(R"({"acc_bits": 40})"),
            "config.json: field \"acc_bits\" = 40 is out of range [8, 32] (bits)");
  EXPECT_EQ(parse_error(R"({"preset": "small", "mac_rows": 0})"),
            "config.json: field \"mac_rows\" = 0 is out of range [1, 256] (PEs)");
  EXPECT_EQ(parse_error(R"({"mac_rows": -5})"),
            "config.json: field \"mac_rows\" = -5 is out of range [1, 256] (PEs)");
}

TEST(HwConfigRange, HugeIntegersRejectedAsOutOfRange) {
  EXPECT_EQ(parse_error(R"({"clock_mhz": 18446744073709551615})"),
            "config.json: field \"clock_mhz\" = 18446744073709551615 is out of range "
            "[1, 10000] (MHz)");
  EXPECT_EQ(parse_error(R"({"clock_mhz": 9223372036854775808})"),
            "config.json: field \"clock_mhz\" = 9223372036854775808 is out of range "
            "[1, 10000] (MHz)");
  EXPECT_EQ(parse_error(R"({"clock_mhz": -9223372036854775808})"),
            "config.json: field \"clock_mhz\" = -9223372036854775808 is out of range "
            "[1, 10000] (MHz)");
}

TEST(HwConfigRange, ValidateRejectsOutOfRangeStruct) {
  HwConfig c;
  c.acc_bits = 40;
  EXPECT_EQ(config_error([&] { c.validate(); }),
            "hw config: field \"acc_bits\" = 40 is out of range [8, 32] (bits)");
  c = HwConfig{};
  c.dram_latency_cycles = -1;
  EXPECT_THROW(c.validate(), ConfigError);
  c = HwConfig{};
  c.rounding_mode = static_cast<dla::RoundMode>(7);
  const std::string msg = config_error([&] { c.validate(); });
  EXPECT_NE(msg.find("\"rounding_mode\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("HALF_UP|HALF_AWAY|HALF_EVEN|FLOOR"), std::string::npos) << msg;
  c = HwConfig{};
  c.overflow_policy = static_cast<dla::OverflowPolicy>(2);
  EXPECT_THROW(c.validate(), ConfigError);
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

TEST(HwConfigType, IntFieldRejectsNonIntegers) {
  EXPECT_EQ(parse_error(R"({"mac_rows": "16"})"),
            "config.json: field \"mac_rows\" must be an integer, got string \"16\"");
  EXPECT_EQ(parse_error(R"({"mac_rows": 16.5})"),
            "config.json: field \"mac_rows\" must be an integer, got number 16.5");
  EXPECT_EQ(parse_error(R"({"mac_rows": 16.0})"),
            "config.json: field \"mac_rows\" must be an integer, got number 16.0");
  EXPECT_EQ(parse_error(R"({"mac_rows": 1e3})"),
            "config.json: field \"mac_rows\" must be an integer, got number 1000.0");
  EXPECT_EQ(parse_error(R"({"mac_rows": true})"),
            "config.json: field \"mac_rows\" must be an integer, got boolean true");
  EXPECT_EQ(parse_error(R"({"mac_rows": null})"),
            "config.json: field \"mac_rows\" must be an integer, got null");
  EXPECT_EQ(parse_error(R"({"mac_rows": [16]})"),
            "config.json: field \"mac_rows\" must be an integer, got array [16]");
  EXPECT_EQ(parse_error(R"({"mac_rows": {"v": 16}})"),
            "config.json: field \"mac_rows\" must be an integer, got object {\"v\":16}");
}

TEST(HwConfigType, BoolFieldRejectsNonBooleans) {
  EXPECT_EQ(parse_error(R"({"supports_a4w4": 1})"),
            "config.json: field \"supports_a4w4\" must be true or false, got number 1");
  EXPECT_EQ(parse_error(R"({"supports_a4w4": "true"})"),
            "config.json: field \"supports_a4w4\" must be true or false, got string \"true\"");
  EXPECT_EQ(parse(R"({"supports_a4w4": false})").supports_a4w4, false);
  EXPECT_EQ(parse(R"({"preset": "small", "supports_a8w4": false})").supports_a8w4, false);
}

TEST(HwConfigType, EnumFieldsAcceptEveryNameAndNothingElse) {
  const std::pair<const char*, dla::RoundMode> modes[] = {
      {"HALF_UP", dla::RoundMode::HALF_UP},
      {"HALF_AWAY", dla::RoundMode::HALF_AWAY},
      {"HALF_EVEN", dla::RoundMode::HALF_EVEN},
      {"FLOOR", dla::RoundMode::FLOOR}};
  for (const auto& [name, mode] : modes) {
    SCOPED_TRACE(name);
    EXPECT_EQ(parse(std::string(R"({"rounding_mode": ")") + name + "\"}").rounding_mode, mode);
  }
  EXPECT_EQ(parse(R"({"overflow_policy": "WRAP"})").overflow_policy, dla::OverflowPolicy::WRAP);
  EXPECT_EQ(parse(R"({"overflow_policy": "SATURATE_FINAL"})").overflow_policy,
            dla::OverflowPolicy::SATURATE_FINAL);

  EXPECT_EQ(parse_error(R"({"rounding_mode": "half_up"})"),
            "config.json: field \"rounding_mode\" must be one of "
            "HALF_UP|HALF_AWAY|HALF_EVEN|FLOOR, got string \"half_up\"");
  EXPECT_EQ(parse_error(R"({"rounding_mode": 0})"),
            "config.json: field \"rounding_mode\" must be one of "
            "HALF_UP|HALF_AWAY|HALF_EVEN|FLOOR, got number 0");
  EXPECT_EQ(parse_error(R"({"overflow_policy": "SATURATE"})"),
            "config.json: field \"overflow_policy\" must be one of WRAP|SATURATE_FINAL, got "
            "string \"SATURATE\"");
  // A name of the other enum is not accepted.
  EXPECT_THROW(parse(R"({"overflow_policy": "HALF_UP"})"), ConfigError);
}

TEST(HwConfigType, LongValuesAreShortenedInMessages) {
  const std::string big(500, 'x');
  const std::string msg = parse_error(R"({"mac_rows": ")" + big + "\"}");
  EXPECT_LT(msg.size(), 160u) << msg;
  EXPECT_NE(msg.find("..."), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------
// Unknown fields
// ---------------------------------------------------------------------------

TEST(HwConfigUnknown, SuggestsTheClosestField) {
  EXPECT_EQ(parse_error(R"({"acc_bit": 32})"),
            "config.json: unknown field \"acc_bit\" (did you mean \"acc_bits\"?)");
  EXPECT_EQ(parse_error(R"({"mac_row": 4})"),
            "config.json: unknown field \"mac_row\" (did you mean \"mac_rows\"?)");
  EXPECT_EQ(parse_error(R"({"Rounding_Mod": "FLOOR"})"),
            "config.json: unknown field \"Rounding_Mod\" (did you mean \"rounding_mode\"?)");
  EXPECT_EQ(parse_error(R"({"presets": "small"})"),
            "config.json: unknown field \"presets\" (did you mean \"preset\"?)");
  EXPECT_EQ(parse_error(R"({"clock_mz": 100})"),
            "config.json: unknown field \"clock_mz\" (did you mean \"clock_mhz\"?)");
}

TEST(HwConfigUnknown, NoSuggestionWhenNothingIsClose) {
  const std::string msg = parse_error(R"({"completely_unrelated": 1})");
  EXPECT_EQ(msg.rfind("config.json: unknown field \"completely_unrelated\" (known fields: preset, "
                      "mac_rows, mac_cols,",
                      0),
            0u)
      << msg;
  EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
  EXPECT_NE(msg.find("token_depth)"), std::string::npos) << msg;
}

TEST(HwConfigUnknown, UnknownFieldRejectedEvenWithValidOthers) {
  const std::string msg = parse_error(R"({"preset": "small", "mac_rows": 4, "sram_bank": 2})");
  EXPECT_EQ(msg, "config.json: unknown field \"sram_bank\" (did you mean \"sram_banks\"?)");
}

// ---------------------------------------------------------------------------
// JSON text and files
// ---------------------------------------------------------------------------

TEST(HwConfigText, MalformedJsonRejected) {
  for (const char* text : {"{\"mac_rows\": 16,", "", "{\"mac_rows\": 16} x", "{mac_rows: 16}",
                           "{\"mac_rows\": 16,}", "{\"mac_rows\": 16 // comment\n}"}) {
    SCOPED_TRACE(text);
    const std::string msg = parse_error(text);
    EXPECT_EQ(msg.rfind("config.json: invalid JSON at byte ", 0), 0u) << msg;
    EXPECT_NE(msg.find("parse error"), std::string::npos) << msg;
  }
  const std::string msg = parse_error("{\"mac_rows\": 16,");
  EXPECT_EQ(msg.rfind("config.json: invalid JSON at byte 17: ", 0), 0u) << msg;
}

TEST(HwConfigText, DuplicateKeyRejected) {
  EXPECT_EQ(parse_error(R"({"mac_rows": 4, "mac_rows": 8})"),
            "config.json: key \"mac_rows\" is given more than once");
  EXPECT_EQ(parse_error(R"({"preset": "small", "preset": "large"})"),
            "config.json: key \"preset\" is given more than once");
}

TEST(HwConfigText, DefaultSourceNameIsConfig) {
  const std::string msg = config_error([] { HwConfig::from_json_text(R"({"acc_bits": 4})"); });
  EXPECT_EQ(msg, "config: field \"acc_bits\" = 4 is out of range [8, 32] (bits)");
}

TEST(HwConfigFile, LoadsAFile) {
  const std::string path = temp_path("ok.json");
  write_file(path, R"({"preset": "small", "clock_mhz": 500})");
  HwConfig expected = HwConfig::preset("small");
  expected.clock_mhz = 500;
  EXPECT_EQ(HwConfig::load_file(path), expected);

  write_file(path, HwConfig::preset("large").to_json_text());
  EXPECT_EQ(HwConfig::load_file(path), HwConfig::preset("large"));
  std::filesystem::remove(path);
}

TEST(HwConfigFile, ErrorsNameThePath) {
  const std::string path = temp_path("bad.json");
  write_file(path, R"({"acc_bits": 40})");
  EXPECT_EQ(config_error([&] { HwConfig::load_file(path); }),
            path + ": field \"acc_bits\" = 40 is out of range [8, 32] (bits)");
  write_file(path, "{");
  EXPECT_EQ(config_error([&] { HwConfig::load_file(path); }).rfind(path + ": invalid JSON", 0), 0u);
  std::filesystem::remove(path);
}

TEST(HwConfigFile, MissingFileNamesThePath) {
  const std::string path = temp_path("does_not_exist.json");
  std::filesystem::remove(path);
  const std::string msg = config_error([&] { HwConfig::load_file(path); });
  EXPECT_EQ(msg, path + ": cannot read hardware config: no such file");
}

TEST(HwConfigFile, DirectoryRejected) {
  const std::string path = temp_path("dir.json");
  std::filesystem::create_directories(path);
  const std::string msg = config_error([&] { HwConfig::load_file(path); });
  EXPECT_EQ(msg, path + ": cannot read hardware config: is a directory");
  std::filesystem::remove(path);
}

TEST(HwConfigFile, RefusesFilesLargerThanOneMiB) {
  const std::string path = temp_path("big.json");
  const std::size_t limit = 1024 * 1024;
  // Exactly 1 MiB: accepted.
  write_file(path, "{" + std::string(limit - 2, ' ') + "}");
  EXPECT_EQ(std::filesystem::file_size(path), limit);
  EXPECT_EQ(HwConfig::load_file(path), HwConfig{});
  // One byte more: refused before parsing.
  write_file(path, "{" + std::string(limit - 1, ' ') + "}");
  const std::string msg = config_error([&] { HwConfig::load_file(path); });
  EXPECT_EQ(msg, path + ": cannot read hardware config: it is 1048577 bytes, over the limit of 1048576") << msg;
  std::filesystem::remove(path);
}

// ---------------------------------------------------------------------------
// Identity hash and equality
// ---------------------------------------------------------------------------

TEST(HwConfigHash, IndependentFnv1aReferenceVectors) {
  // Published FNV-1a 64 test vectors, checking the test's own reference.
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(HwConfigHash, DefaultMatchesIndependentComputation) {
  const std::string identity =
      "mac_rows=16;mac_cols=16;supports_a4w4=true;supports_a8w4=true;supports_a16w8=true;"
      "a4w4_speedup=4;a8w4_speedup=2;a16w8_passes=2;mac_pipeline_depth=4;acc_bits=32;"
      "overflow_policy=WRAP;rounding_mode=HALF_UP;act_sram_kib=256;wgt_sram_kib=256;"
      "acc_sram_kib=64;param_sram_kib=16;sram_banks=4;sram_bank_bytes=16;dram_latency_cycles=100;"
      "dram_bytes_per_cycle=32;dram_burst_bytes=64;dram_size_mib=1024;clock_mhz=1000;"
      "requant_lanes=16;vector_lanes=16;lut_lanes=16;avgpool_shift=15;max_kernel=15;queue_depth=16;"
      "token_depth=8;";
  EXPECT_EQ(HwConfig::preset("default").identity_hash(), fnv1a64(identity));
  // Pinned: changes only when a field, a default or the hash definition changes.
  EXPECT_EQ(dla::hash_hex(HwConfig::preset("default").identity_hash()), "09a622f7143db0a9");
}

TEST(HwConfigHash, SmallMatchesIndependentComputation) {
  const HwConfig c = HwConfig::preset("small");
  // Built from to_json_text, which lists every field in declaration order.
  const ordered_json j = ordered_json::parse(c.to_json_text());
  std::string identity;
  for (auto it = j.begin(); it != j.end(); ++it)
    identity += it.key() + "=" +
                (it->is_string() ? it->get<std::string>() : it->dump()) + ";";
  EXPECT_NE(identity.find("mac_rows=4;mac_cols=4;supports_a4w4=true;"), std::string::npos);
  EXPECT_EQ(c.identity_hash(), fnv1a64(identity));
}

TEST(HwConfigHash, PresetsHaveDistinctHashes) {
  std::set<std::uint64_t> hashes;
  for (const auto& name : HwConfig::preset_names())
    hashes.insert(HwConfig::preset(name).identity_hash());
  EXPECT_EQ(hashes.size(), 3u);
  EXPECT_EQ(HwConfig::preset("small").identity_hash(), HwConfig::preset("small").identity_hash());
}

TEST(HwConfigHash, ChangingAnySingleFieldChangesHashAndEquality) {
  const HwConfig base;
  const json base_json = base.to_json();
  int changed = 0;
  for (const auto& d : dla::hw_config_field_docs()) {
    SCOPED_TRACE(d.name);
    json j = base_json;
    if (d.kind == "int") {
      const IntRange r = parse_range(d.range);
      const std::int64_t def = base_json.at(d.name).get<std::int64_t>();
      j[d.name] = def != r.hi ? r.hi : r.lo;
    } else if (d.kind == "bool") {
      j[d.name] = !base_json.at(d.name).get<bool>();
    } else {
      ASSERT_EQ(d.kind, "enum");
      for (const auto& option : split(d.range, '|'))
        if (option != d.default_value) {
          j[d.name] = option;
          break;
        }
    }
    ASSERT_NE(j, base_json);
    const HwConfig c = HwConfig::from_json(j);
    EXPECT_NE(c.identity_hash(), base.identity_hash());
    EXPECT_FALSE(c == base);
    EXPECT_TRUE(c != base);
    EXPECT_EQ(c, HwConfig::from_json(j));
    ++changed;
  }
  EXPECT_EQ(changed, 30);
}

TEST(HwConfigHash, HexFormat) {
  EXPECT_EQ(dla::hash_hex(0), "0000000000000000");
  EXPECT_EQ(dla::hash_hex(0xdeadbeefULL), "00000000deadbeef");
  EXPECT_EQ(dla::hash_hex(0x0123456789ABCDEFULL), "0123456789abcdef");
  EXPECT_EQ(dla::hash_hex(~std::uint64_t{0}), "ffffffffffffffff");
  char expected[17];
  std::snprintf(expected, sizeof expected, "%016llx",
                static_cast<unsigned long long>(HwConfig{}.identity_hash()));
  EXPECT_EQ(dla::hash_hex(HwConfig{}.identity_hash()), expected);
}

// ---------------------------------------------------------------------------
// Documentation
// ---------------------------------------------------------------------------

TEST(HwConfigDocs, RowsDescribeEveryField) {
  const auto docs = dla::hw_config_field_docs();
  ASSERT_EQ(docs.size(), 30u);
  EXPECT_EQ(docs[0].name, "mac_rows");
  EXPECT_EQ(docs[0].kind, "int");
  EXPECT_EQ(docs[0].default_value, "16");
  EXPECT_EQ(docs[0].range, "[1, 256]");
  EXPECT_EQ(docs[0].unit, "PEs");
  EXPECT_EQ(docs[0].doc, "Rows of the MAC array: input channels reduced per cycle.");

  std::set<std::string> names;
  for (const auto& d : docs) {
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.insert(d.name).second) << "duplicate field";
    EXPECT_FALSE(d.doc.empty());
    if (d.kind == "int") {
      EXPECT_FALSE(d.unit.empty());
      const IntRange r = parse_range(d.range);
      const std::int64_t def = std::stoll(d.default_value);
      EXPECT_LE(r.lo, def);
      EXPECT_LE(def, r.hi);
    } else if (d.kind == "bool") {
      EXPECT_EQ(d.range, "true|false");
    } else {
      EXPECT_EQ(d.kind, "enum");
    }
  }

  auto row = [&](const std::string& name) {
    for (const auto& d : docs)
      if (d.name == name) return d;
    ADD_FAILURE() << "no row " << name;
    return dla::HwConfigFieldDoc{};
  };
  const auto acc = row("acc_bits");
  EXPECT_EQ(acc.kind, "int");
  EXPECT_EQ(acc.default_value, "32");
  EXPECT_EQ(acc.range, "[8, 32]");
  EXPECT_EQ(acc.unit, "bits");
  const auto rm = row("rounding_mode");
  EXPECT_EQ(rm.kind, "enum");
  EXPECT_EQ(rm.default_value, "HALF_UP");
  EXPECT_EQ(rm.range, "HALF_UP|HALF_AWAY|HALF_EVEN|FLOOR");
  const auto op = row("overflow_policy");
  EXPECT_EQ(op.default_value, "WRAP");
  EXPECT_EQ(op.range, "WRAP|SATURATE_FINAL");
  const auto a4 = row("supports_a4w4");
  EXPECT_EQ(a4.kind, "bool");
  EXPECT_EQ(a4.default_value, "true");
  EXPECT_EQ(row("dram_latency_cycles").range, "[0, 100000]");
}

TEST(HwConfigDocs, DefaultsMatchTheDefaultConfig) {
  const json j = HwConfig{}.to_json();
  for (const auto& d : dla::hw_config_field_docs()) {
    SCOPED_TRACE(d.name);
    const json& v = j.at(d.name);
    EXPECT_EQ(d.default_value, v.is_string() ? v.get<std::string>() : v.dump());
  }
}

TEST(HwConfigDocs, TableIsAlignedAndListsEveryFieldAndUnit) {
  const std::string table = dla::hw_config_doc_table();
  const auto docs = dla::hw_config_field_docs();
  const auto lines = split(table, '\n');
  ASSERT_EQ(lines.size(), docs.size() + 1);
  const std::string& header = lines[0];
  EXPECT_EQ(header.rfind("FIELD ", 0), 0u) << header;
  const auto col_kind = header.find("KIND");
  const auto col_default = header.find("DEFAULT");
  const auto col_range = header.find("RANGE");
  const auto col_unit = header.find("UNIT");
  const auto col_doc = header.find("DOC");
  ASSERT_NE(col_doc, std::string::npos);
  ASSERT_LT(col_kind, col_default);
  ASSERT_LT(col_default, col_range);
  ASSERT_LT(col_range, col_unit);
  ASSERT_LT(col_unit, col_doc);

  for (std::size_t i = 0; i < docs.size(); ++i) {
    const auto& d = docs[i];
    const std::string& line = lines[i + 1];
    SCOPED_TRACE(line);
    const std::string unit = d.unit.empty() ? "-" : d.unit;
    EXPECT_EQ(line.rfind(d.name + " ", 0), 0u);
    EXPECT_EQ(line.substr(col_kind, d.kind.size() + 1), d.kind + " ");
    EXPECT_EQ(line.substr(col_default, d.default_value.size() + 1), d.default_value + " ");
    EXPECT_EQ(line.substr(col_range, d.range.size() + 1), d.range + " ");
    EXPECT_EQ(line.substr(col_unit, unit.size() + 1), unit + " ");
    EXPECT_EQ(line.substr(col_doc), d.doc);
    EXPECT_NE(table.find(d.name), std::string::npos);
    EXPECT_NE(table.find(unit), std::string::npos);
  }
  EXPECT_NE(table.find("acc_bits"), std::string::npos);
  EXPECT_NE(table.find("B/cycle"), std::string::npos);
}

}  // namespace

// dla_sv_pkg — writes the SystemVerilog package `dla_pkg` from the single C++ sources:
// the hardware config (a preset or a JSON file), the DType table, the rounding-mode,
// overflow-policy, MAC-mode and buffer enums, and the ISA table (opclass/funct codes and
// every field's lsb, width and range). The build runs it, so the RTL never restates a
// number that isa/ declares.
//
// Usage: dla_sv_pkg (--preset NAME | --config FILE) --out FILE.sv
//
// Adding a table is one function below that appends to an SvPackage (see emit_dtypes).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/error.hpp"
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

/// Smallest width that holds every value in [0, max_code].
int code_width(std::int64_t max_code) {
  int w = 1;
  while ((std::int64_t{1} << w) <= max_code) ++w;
  return w;
}

/// Accumulates the text of one SV package. Every constant is a `localparam` on its own
/// line, `localparam <type> NAME = <value>;`, which tests/rtl parses back.
class SvPackage {
 public:
  void section(std::string_view title) { body_ += "\n  // " + std::string(title) + "\n"; }

  /// A signed integer constant; longint when it does not fit in 32 bits.
  void param(std::string_view name, std::int64_t value, std::string_view doc = {}) {
    const bool fits32 = value > INT32_MIN && value <= INT32_MAX;  // -2^31 needs a 33-bit literal
    if (fits32) return line("int", name, std::to_string(value), doc);
    // Sized: an unsized literal is only 32 bits wide.
    const std::string magnitude = std::to_string(value < 0 ? -static_cast<std::uint64_t>(value)
                                                           : static_cast<std::uint64_t>(value));
    line("longint", name, (value < 0 ? "-64'sd" : "64'sd") + magnitude, doc);
  }
  void param_bit(std::string_view name, bool value, std::string_view doc = {}) {
    line("bit", name, value ? "1'b1" : "1'b0", doc);
  }

  struct EnumEntry {
    std::string name;
    std::int64_t code;
  };
  /// `typedef enum logic [w-1:0] {...} type;` plus a width constant TYPE_W.
  void enumeration(std::string_view type, std::string_view width_name,
                   const std::vector<EnumEntry>& entries) {
    std::int64_t max_code = 0;
    for (const auto& e : entries) max_code = std::max(max_code, e.code);
    const int w = code_width(max_code);
    param(width_name, w, "bits of an encoded value");
    body_ += "  typedef enum logic [" + std::to_string(w - 1) + ":0] {\n";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      body_ += "    " + entries[i].name + " = " + std::to_string(w) + "'d" +
               std::to_string(entries[i].code) + (i + 1 < entries.size() ? ",\n" : "\n");
    }
    body_ += "  } " + std::string(type) + ";\n";
  }

  std::string text(std::string_view header) const {
    // A block uses a few of the constants; the rest are not unused-parameter findings.
    return std::string(header) + "/* verilator lint_off UNUSEDPARAM */\npackage dla_pkg;\n" +
           body_ + "\nendpackage : dla_pkg\n/* verilator lint_on UNUSEDPARAM */\n";
  }

 private:
  void line(const std::string& type, std::string_view name, const std::string& value,
            std::string_view doc) {
    body_ += "  localparam " + type + " " + std::string(name) + " = " + value + ";";
    if (!doc.empty()) body_ += "  // " + std::string(doc);
    body_ += "\n";
  }
  std::string body_;
};

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// Every hardware-config field in declaration order: ints as int, bools as bit, enums as
/// their code (the enum types follow in emit_enums).
void emit_hw_config(SvPackage& pkg, const dla::HwConfig& cfg) {
  pkg.section("Hardware config (dla/hw_config.hpp)");
  const nlohmann::json j = cfg.to_json();
  for (const auto& doc : dla::hw_config_field_docs()) {
    const nlohmann::json& v = j.at(doc.name);
    const std::string name = upper(doc.name);
    const std::string text = doc.unit.empty() ? doc.doc : "[" + doc.unit + "] " + doc.doc;
    if (doc.kind == "bool") {
      pkg.param_bit(name, v.get<bool>(), text);
    } else if (doc.kind == "int") {
      pkg.param(name, v.get<std::int64_t>(), text);
      // The field's range, for logic that serves every value a config may take (the
      // requantizer's acc_bits input is ACC_BITS_MAX wide).
      long long lo = 0, hi = 0;
      if (std::sscanf(doc.range.c_str(), "[%lld, %lld]", &lo, &hi) != 2) {
        throw dla::ConfigError("dla_sv_pkg: cannot read the range '" + doc.range + "' of field " + doc.name);
      }
      pkg.param(name + "_MIN", lo);
      pkg.param(name + "_MAX", hi);
    } else if (doc.name == "rounding_mode") {
      pkg.param(name, static_cast<int>(cfg.rounding_mode), v.get<std::string>() + ": " + doc.doc);
    } else if (doc.name == "overflow_policy") {
      pkg.param(name, static_cast<int>(cfg.overflow_policy), v.get<std::string>() + ": " + doc.doc);
    } else {
      throw dla::ConfigError("dla_sv_pkg: no SV form for enum field " + doc.name);
    }
  }
}

/// What the config derives for the SRAMs (dla/hw_config.hpp), so the RTL does not derive
/// it again.
void emit_derived(SvPackage& pkg, const dla::HwConfig& cfg) {
  pkg.section("Derived from the hardware config (dla::HwConfig)");
  pkg.param("ACC_SRAM_WORDS", cfg.acc_sram_words(), "accumulator words the ACC SRAM holds");
  pkg.param("ACC_PORT_WORDS", cfg.acc_port_words(), "widest ACC access: max(MAC_COLS, REQUANT_LANES) words");
  pkg.param("ACT_SRAM_BYTES", cfg.act_sram_bytes(), "bytes the ACT SRAM holds");
  pkg.param("ACT_PORT_BYTES", cfg.act_port_bytes(), "widest ACT access of the compute side, bytes");
  pkg.param("WGT_SRAM_BYTES", cfg.wgt_sram_bytes(), "bytes the WGT SRAM holds");
  pkg.param("WGT_PORT_BYTES", cfg.wgt_port_bytes(), "widest WGT access of the compute side (one column's weights), bytes");
  pkg.param("PARAM_SRAM_BYTES", cfg.param_sram_bytes(), "bytes the PARAM SRAM holds");
  pkg.param("PARAM_PORT_BYTES", cfg.param_port_bytes(), "widest PARAM access of the compute side (a record, a beat's shifts, a table block), bytes");
  pkg.param("ACC_BANK_WORDS", cfg.acc_bank_words(),
            "accumulator words per ACC bank word: ACC_PORT_WORDS words at any address take one clock");
}

void emit_dtypes(SvPackage& pkg) {
  pkg.section("Storage types (dla::DType, isa/README.md section 1)");
  std::vector<SvPackage::EnumEntry> entries;
  for (int i = 0; i < dla::kNumDTypes; ++i)
    entries.push_back({"DTYPE_" + upper(dla::dtype_info(static_cast<dla::DType>(i)).name), i});
  pkg.enumeration("dtype_e", "DTYPE_CODE_W", entries);
  pkg.param("NUM_DTYPES", dla::kNumDTypes);
  for (int i = 0; i < dla::kNumDTypes; ++i) {
    const auto info = dla::dtype_info(static_cast<dla::DType>(i));
    const std::string p = "DTYPE_" + upper(info.name);
    pkg.param(p + "_BITS", info.bits);
    pkg.param_bit(p + "_SIGNED", info.is_signed);
    pkg.param(p + "_MIN", info.min);
    pkg.param(p + "_MAX", info.max);
  }
}

void emit_enums(SvPackage& pkg) {
  pkg.section("Rounding modes of round_shift (dla::RoundMode)");
  std::vector<SvPackage::EnumEntry> modes;
  for (int i = 0; i < dla::kNumRoundModes; ++i)
    modes.push_back({"ROUND_" + std::string(dla::round_mode_name(static_cast<dla::RoundMode>(i))), i});
  pkg.enumeration("round_mode_e", "ROUND_MODE_CODE_W", modes);

  pkg.section("Accumulator overflow policies (dla::OverflowPolicy)");
  std::vector<SvPackage::EnumEntry> policies;
  for (const auto p : {dla::OverflowPolicy::WRAP, dla::OverflowPolicy::SATURATE_FINAL})
    policies.push_back({"OVF_" + std::string(dla::overflow_policy_name(p)), static_cast<int>(p)});
  pkg.enumeration("overflow_policy_e", "OVERFLOW_POLICY_CODE_W", policies);

  pkg.section("MAC precision modes (dla::isa::MacMode)");
  std::vector<SvPackage::EnumEntry> macs;
  for (const auto m : {dla::isa::MacMode::A8W8, dla::isa::MacMode::A4W4, dla::isa::MacMode::A8W4,
                       dla::isa::MacMode::A16W8})
    macs.push_back({"MAC_" + upper(dla::isa::mac_mode_name(m)), static_cast<int>(m)});
  pkg.enumeration("mac_mode_e", "MAC_MODE_CODE_W", macs);

  pkg.section("SRAM buffers (dla::isa::Buffer)");
  std::vector<SvPackage::EnumEntry> bufs;
  for (const auto b : {dla::isa::Buffer::ACT, dla::isa::Buffer::WGT, dla::isa::Buffer::ACC,
                       dla::isa::Buffer::PARAM})
    bufs.push_back({"BUF_" + upper(dla::isa::buffer_name(b)), static_cast<int>(b)});
  pkg.enumeration("buffer_e", "BUFFER_CODE_W", bufs);
}

/// The constants of the vector unit's arithmetic (dla/numerics.hpp, dla/param_records.hpp):
/// the average pool's multiplier range and the lookup table's entries and interpolation.
void emit_numerics(SvPackage& pkg) {
  pkg.section("Vector-unit numerics (dla/numerics.hpp, dla/param_records.hpp)");
  pkg.param("AVGPOOL_MULT_MAX", dla::kAvgPoolMultiplierMax, "M = round(2^S / N) is unsigned, 1..AVGPOOL_MULT_MAX");
  pkg.param("LUT_ENTRY_BITS", static_cast<std::int64_t>(dla::isa::LutRecord::kLayout[0].bytes) * 8,
            "signed width of one table entry in the VLUT record");
  pkg.param("LUT_INTERP_BITS", dla::kLutInterpBits, "i16 inputs: 2^LUT_INTERP_BITS inputs per segment");
  std::int64_t most = 0;
  for (int i = 0; i < dla::kNumDTypes; ++i) most = std::max(most, dla::lut_entries(static_cast<dla::DType>(i)));
  pkg.param("LUT_ENTRIES_MAX", most, "entries of the largest table (the i16 knots)");
}

/// Lowest set bit and number of set bits of a contiguous mask.
void mask_span(std::uint64_t mask, int* lsb, int* width) {
  *lsb = 0;
  while (((mask >> *lsb) & 1) == 0) ++*lsb;
  *width = 0;
  while (*lsb + *width < 64 && ((mask >> (*lsb + *width)) & 1) != 0) ++*width;
}

/// The bit a token flag occupies, found by encoding an instruction with only that flag.
int token_bit(bool dla::isa::Tokens::*flag) {
  dla::isa::Mac with;
  with.tokens.*flag = true;
  const auto set = dla::isa::encode(dla::isa::Instruction{with}).words[0] ^
                   dla::isa::encode(dla::isa::Instruction{dla::isa::Mac{}}).words[0];
  int lsb = 0, width = 0;
  mask_span(set, &lsb, &width);
  return lsb;
}

/// The common header (derived from the encoder's match/mask, so it is never restated)
/// and, per instruction, its opclass/funct code and each field's LSB, W, MIN and MAX.
void emit_isa(SvPackage& pkg) {
  std::size_t count = 0;
  const dla::isa::InsnInfo* infos = dla::isa::insn_infos(&count);
  pkg.section("ISA: common header (dla/isa.hpp)");
  pkg.param("INSN_BITS", dla::isa::kInstructionBits);
  std::uint64_t opclass_mask = 0, funct_mask = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (infos[i].funct == dla::isa::kNoFunct) opclass_mask = infos[i].mask;
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (infos[i].funct != dla::isa::kNoFunct) funct_mask = infos[i].mask & ~opclass_mask;
  }
  int lsb = 0, width = 0;
  mask_span(opclass_mask, &lsb, &width);
  pkg.param("OPCLASS_LSB", lsb);
  pkg.param("OPCLASS_W", width);
  mask_span(funct_mask, &lsb, &width);
  pkg.param("FUNCT_LSB", lsb);
  pkg.param("FUNCT_W", width);
  pkg.param("POP_PREV_BIT", token_bit(&dla::isa::Tokens::pop_prev));
  pkg.param("POP_NEXT_BIT", token_bit(&dla::isa::Tokens::pop_next));
  pkg.param("PUSH_PREV_BIT", token_bit(&dla::isa::Tokens::push_prev));
  pkg.param("PUSH_NEXT_BIT", token_bit(&dla::isa::Tokens::push_next));

  for (std::size_t i = 0; i < count; ++i) {
    const auto& insn = infos[i];
    const std::string p = upper(insn.mnemonic);
    pkg.section("ISA: " + std::string(insn.mnemonic));
    pkg.param("OPC_" + p, insn.opclass);
    if (insn.funct != dla::isa::kNoFunct) pkg.param("FUNCT_" + p, insn.funct);
    for (std::size_t f = 0; f < insn.num_fields; ++f) {
      const auto& field = insn.fields[f];
      const std::string n = p + "_" + upper(field.name);
      pkg.param(n + "_LSB", field.lsb, field.doc);
      pkg.param(n + "_W", field.width);
      pkg.param(n + "_MIN", field.min);
      pkg.param(n + "_MAX", field.max);
    }
  }
}

int run(int argc, char** argv) {
  std::string preset, config, out;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) throw dla::ConfigError("dla_sv_pkg: option " + arg + " needs a value");
    if (arg == "--preset") preset = argv[++i];
    else if (arg == "--config") config = argv[++i];
    else if (arg == "--out") out = argv[++i];
    else throw dla::ConfigError("dla_sv_pkg: unknown option " + arg);
  }
  if (out.empty() || preset.empty() == config.empty())
    throw dla::ConfigError("dla_sv_pkg: usage: dla_sv_pkg (--preset NAME | --config FILE) --out FILE.sv");
  const dla::HwConfig cfg = config.empty() ? dla::HwConfig::preset(preset) : dla::HwConfig::load_file(config);

  SvPackage pkg;
  emit_hw_config(pkg, cfg);
  emit_derived(pkg, cfg);
  emit_dtypes(pkg);
  emit_enums(pkg);
  emit_numerics(pkg);
  emit_isa(pkg);

  const std::string source = config.empty() ? "preset \"" + preset + "\"" : "config " + config;
  const std::string header = "// Generated by dla_sv_pkg from the hardware config (" + source +
                             ", identity " + dla::hash_hex(cfg.identity_hash()) +
                             ") and the ISA table. Do not edit.\n";
  std::ofstream file(out);
  file << pkg.text(header);
  if (!file) throw dla::ConfigError("dla_sv_pkg: cannot write " + out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

// dla/hw_config.hpp — the hardware config: the single source of every accelerator
// parameter (isa/README.md section 2).
//
// The fields are declared once, in DLA_HW_CONFIG_FIELDS below, with default, range,
// unit and a one-sentence doc. The struct, the JSON reader and writer, validation, the
// identity hash, `dla config --doc` and (later) the generated Verilog parameters all
// expand that one table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dla/numerics.hpp"

namespace dla {

// INT(name, default, min, max, unit, doc)       an integer field, inclusive range
// BOOL(name, default, doc)                       a boolean field
// ENUM(name, type, default, doc)                 RoundMode / OverflowPolicy, written by name
//
// The address fields of the ISA bound the SRAM sizes: activation and weight buffers are
// byte-addressed with 20 bits (1 MiB), the accumulator is addressed in 4-byte words with
// 16 bits (256 KiB) and the parameter buffer in bytes with 16 bits (64 KiB).
#define DLA_HW_CONFIG_FIELDS(INT, BOOL, ENUM)                                                   \
  INT(mac_rows, 16, 1, 256, "PEs",                                                             \
      "Rows of the MAC array: input channels reduced per cycle.")                              \
  INT(mac_cols, 16, 1, 256, "PEs",                                                             \
      "Columns of the MAC array: output channels produced per cycle.")                         \
  BOOL(supports_a4w4, true, "The MAC array runs i4/u4 activations x i4 weights (packed).")    \
  BOOL(supports_a8w4, true, "The MAC array runs i8/u8 activations x i4 weights (packed).")    \
  BOOL(supports_a16w8, true, "The MAC array runs i16 activations x i8 weights (multi-pass).") \
  INT(a4w4_speedup, 4, 1, 8, "x",                                                              \
      "MACs per PE per cycle in i4 x i4 mode, relative to i8 x i8.")                          \
  INT(a8w4_speedup, 2, 1, 8, "x",                                                              \
      "MACs per PE per cycle in i8 x i4 mode, relative to i8 x i8.")                          \
  INT(a16w8_passes, 2, 1, 4, "passes", "Passes over the MAC array for one i16 x i8 MAC.")     \
  INT(mac_pipeline_depth, 4, 0, 64, "cycles",                                                  \
      "Fill (and drain) latency of the MAC array pipeline.")                                   \
  INT(acc_bits, 32, 8, 32, "bits", "Width of the signed accumulator.")                        \
  ENUM(overflow_policy, OverflowPolicy, OverflowPolicy::WRAP,                                  \
       "What the accumulator does when the exact sum leaves its range: WRAP or "                \
       "SATURATE_FINAL.")                                                                      \
  ENUM(rounding_mode, RoundMode, RoundMode::HALF_UP,                                           \
       "Rounding of every requantizing shift: HALF_UP, HALF_AWAY, HALF_EVEN or FLOOR.")        \
  INT(act_sram_kib, 256, 1, 1024, "KiB", "Capacity of the activation SRAM.")                   \
  INT(wgt_sram_kib, 256, 1, 1024, "KiB", "Capacity of the weight SRAM.")                       \
  INT(acc_sram_kib, 64, 1, 256, "KiB",                                                         \
      "Capacity of the accumulator SRAM (one 4-byte word per accumulator).")                  \
  INT(param_sram_kib, 16, 1, 64, "KiB",                                                        \
      "Capacity of the parameter SRAM (shift tables and clip records).")                       \
  INT(sram_banks, 4, 2, 64, "banks",                                                           \
      "Banks per SRAM buffer (a power of two), word-interleaved; each bank takes one read "     \
      "and one write a cycle. At least 2, so the accumulator SRAM serves a partial-sum row "    \
      "at any address in one cycle.")                                                          \
  INT(sram_bank_bytes, 16, 1, 256, "bytes",                                                    \
      "Width of a bank word (a power of two); one port moves up to "                          \
      "(sram_banks - 1) * sram_bank_bytes + 1 contiguous bytes a cycle at any alignment.")    \
  INT(dram_latency_cycles, 100, 0, 100000, "cycles",                                           \
      "Cycles from a DRAM request to its first data beat.")                                    \
  INT(dram_bytes_per_cycle, 32, 1, 4096, "B/cycle", "Peak DRAM bandwidth.")                  \
  INT(dram_burst_bytes, 64, 1, 4096, "bytes", "Size of one DRAM burst; transfers round up.")  \
  INT(dram_size_mib, 1024, 1, 4096, "MiB", "DRAM capacity addressable by programs.")         \
  INT(clock_mhz, 1000, 1, 10000, "MHz", "Core clock frequency.")                              \
  INT(requant_lanes, 16, 1, 1024, "lanes", "Accumulators the requantizer converts per cycle.") \
  INT(vector_lanes, 16, 1, 1024, "lanes", "Elements the vector unit processes per cycle.")    \
  INT(lut_lanes, 16, 0, 1024, "lanes",                                                         \
      "Table lookups (VLUT) per cycle of the lookup-table unit; 0: the DLA has none.")         \
  INT(avgpool_shift, 15, 0, 31, "bits",                                                        \
      "S of the average-pool multiplier M = round(2^S / N).")                                  \
  INT(max_kernel, 15, 1, 15, "pixels",                                                         \
      "Largest convolution or max-pool kernel side the units accept.")                         \
  INT(queue_depth, 16, 1, 4096, "instructions",                                                \
      "Depth of each of the load, compute and store instruction queues.")                      \
  INT(token_depth, 8, 1, 4096, "tokens", "Depth of each dependency-token FIFO between queues.")

struct HwConfig {
#define DLA_DECLARE_INT(name, def, lo, hi, unit, doc) std::int64_t name = def;
#define DLA_DECLARE_BOOL(name, def, doc) bool name = def;
#define DLA_DECLARE_ENUM(name, type, def, doc) type name = def;
  DLA_HW_CONFIG_FIELDS(DLA_DECLARE_INT, DLA_DECLARE_BOOL, DLA_DECLARE_ENUM)
#undef DLA_DECLARE_INT
#undef DLA_DECLARE_BOOL
#undef DLA_DECLARE_ENUM

  /// Named presets compiled into the binary: "small" (tiny SRAMs that force tiling, for
  /// fast tests), "default" and "large". Throws ConfigError for an unknown name.
  static HwConfig preset(std::string_view name);
  static std::vector<std::string> preset_names();

  /// Reads a config from JSON. Fields not given take the defaults of `"preset"` (a
  /// preset name, default "default"); an unknown field, a wrong JSON type or a value
  /// out of range throws ConfigError naming the field, the value and the allowed range.
  /// `source` names the input in messages (a file path).
  static HwConfig from_json(const nlohmann::json& j, const std::string& source = "config");
  static HwConfig from_json_text(const std::string& text, const std::string& source = "config");
  static HwConfig load_file(const std::string& path);

  /// Every field, in declaration order.
  nlohmann::json to_json() const;

  /// Every field as pretty JSON (2-space indent, trailing newline), in declaration
  /// order; what `dla config --preset NAME` prints. from_json_text reads it back.
  std::string to_json_text() const;

  /// Throws ConfigError if any field is out of range.
  void validate() const;

  /// Stable 64-bit identity (FNV-1a over "name=value;" of every field in declaration
  /// order): equal configs have equal hashes on every platform and version.
  std::uint64_t identity_hash() const;

  /// Derived quantities.
  std::int64_t act_sram_bytes() const { return act_sram_kib * 1024; }
  std::int64_t wgt_sram_bytes() const { return wgt_sram_kib * 1024; }
  std::int64_t acc_sram_words() const { return acc_sram_kib * 1024 / 4; }
  std::int64_t param_sram_bytes() const { return param_sram_kib * 1024; }
  std::int64_t dram_bytes() const { return dram_size_mib * 1024 * 1024; }
  /// Clocks one SRAM port takes for `bytes` contiguous bytes from byte address `addr`:
  /// every bank serves one of the access's bank words a clock, and consecutive words lie
  /// in consecutive banks, so ceil(words touched / sram_banks) (at least 1). For the
  /// byte buffers (ACT, WGT, PARAM); ACC: acc_access_clocks.
  std::uint64_t sram_access_clocks(std::uint64_t addr, std::uint64_t bytes) const;
  /// The ACC SRAM's widest access, in words: a MAC partial-sum row (mac_cols) or the
  /// requantizer's lanes, whichever is wider.
  std::int64_t acc_port_words() const { return mac_cols > requant_lanes ? mac_cols : requant_lanes; }
  /// Accumulator words per ACC bank word: the ACC SRAM has its own width (its words are
  /// wider than a byte buffer's), the narrowest power of two of at least sram_bank_bytes / 4
  /// words with which an access of acc_port_words() words at any word address touches at
  /// most sram_banks bank words, so the compute side's partial sums and the requantizer
  /// never wait for a bank (which takes at least 2 banks).
  std::int64_t acc_bank_words() const;
  /// The activation SRAM's widest compute access, in bytes: a beat's outputs (up to
  /// requant_lanes, vector_lanes or lut_lanes elements of at most 4 bytes) or a MAC beat's
  /// activation run (mac_rows lanes of a16w8's 2 bytes, a8w4's speedup bytes, or a4w4's
  /// speedup nibbles, a byte more where the run starts mid-byte).
  std::int64_t act_port_bytes() const;
  /// The weight SRAM's widest compute access, in bytes: the weights one column of the MAC
  /// array takes for a weight set, a run of mac_rows lanes of one 8-bit weight (a8w8,
  /// a16w8) or of a8w4's / a4w4's speedup nibbles (a byte more where the run starts
  /// mid-byte); a depthwise row's run of at most the speedup's kernel positions is shorter.
  std::int64_t wgt_port_bytes() const;
  /// The parameter SRAM's widest compute access, in bytes: a record read when its
  /// instruction is accepted (a requant record's clips with up to requant_lanes shifts,
  /// an add or average-pool record), a requantizer beat's shifts (at most requant_lanes)
  /// or a block of lut_lanes 2-byte table entries.
  std::int64_t param_port_bytes() const;
  /// sram_access_clocks for the ACC SRAM: `words` words from word address `addr`.
  std::uint64_t acc_access_clocks(std::uint64_t addr, std::uint64_t words) const;
  AccSpec acc_spec() const { return {static_cast<int>(acc_bits), overflow_policy}; }

  bool operator==(const HwConfig& other) const;
  bool operator!=(const HwConfig& other) const { return !(*this == other); }
};

/// One row of the field table (`dla config --doc`).
struct HwConfigFieldDoc {
  std::string name;
  std::string kind;     ///< "int", "bool" or "enum"
  std::string default_value;
  std::string range;    ///< "[lo, hi]", "true|false" or the enum names
  std::string unit;
  std::string doc;
};
std::vector<HwConfigFieldDoc> hw_config_field_docs();

/// The field table as aligned text, one field per line.
std::string hw_config_doc_table();

/// Hash as 16 lower-case hex digits, as printed by the tools.
std::string hash_hex(std::uint64_t hash);

}  // namespace dla

// hw_config.cpp — the hardware config (isa/README.md section 2).
//
// Every per-field operation below is an expansion of DLA_HW_CONFIG_FIELDS; the only
// field names written by hand are the overrides of the "small" and "large" presets.
#include "dla/hw_config.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/param_records.hpp"
#include "dla/suggest.hpp"

namespace dla {
namespace {

// ---------------------------------------------------------------------------
// Constant tables
// ---------------------------------------------------------------------------

#define DLA_NAME_INT(name, def, lo, hi, unit, doc) std::string_view(#name),
#define DLA_NAME_BOOL(name, def, doc) std::string_view(#name),
#define DLA_NAME_ENUM(name, type, def, doc) std::string_view(#name),
constexpr std::string_view kFieldNames[] = {
    DLA_HW_CONFIG_FIELDS(DLA_NAME_INT, DLA_NAME_BOOL, DLA_NAME_ENUM)};
#undef DLA_NAME_INT
#undef DLA_NAME_BOOL
#undef DLA_NAME_ENUM

/// The JSON key that selects the base preset; not a field.
constexpr std::string_view kPresetKey = "preset";

/// Preset names, in the order the tools list them.
constexpr std::array<std::string_view, 3> kPresetNames = {"small", "default", "large"};

/// Largest config file load_file accepts.
constexpr std::uintmax_t kMaxFileBytes = 1024 * 1024;

/// Longest excerpt of user input quoted in a message.
constexpr std::size_t kMaxShown = 64;

// ---------------------------------------------------------------------------
// Enums written by name
// ---------------------------------------------------------------------------

template <class E>
struct EnumInfo;

template <>
struct EnumInfo<RoundMode> {
  static constexpr int kCount = kNumRoundModes;
  static constexpr std::string_view name(RoundMode m) { return round_mode_name(m); }
};

template <>
struct EnumInfo<OverflowPolicy> {
  static constexpr int kCount = 2;  // WRAP, SATURATE_FINAL (numerics.hpp has no constant)
  static constexpr std::string_view name(OverflowPolicy p) { return overflow_policy_name(p); }
};

template <class E>
bool enum_valid(E e) {
  return static_cast<int>(e) >= 0 && static_cast<int>(e) < EnumInfo<E>::kCount;
}

template <class E>
std::string enum_names() {
  std::string out;
  for (int i = 0; i < EnumInfo<E>::kCount; ++i) {
    if (i > 0) out += '|';
    out += EnumInfo<E>::name(static_cast<E>(i));
  }
  return out;
}

template <class E>
std::optional<E> enum_from_name(std::string_view s) {
  for (int i = 0; i < EnumInfo<E>::kCount; ++i) {
    const auto e = static_cast<E>(i);
    if (EnumInfo<E>::name(e) == s) return e;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Value text (documentation, identity string, messages)
// ---------------------------------------------------------------------------

std::string value_text(std::int64_t v) { return std::to_string(v); }
std::string value_text(bool v) { return v ? "true" : "false"; }
std::string value_text(RoundMode v) { return std::string(EnumInfo<RoundMode>::name(v)); }
std::string value_text(OverflowPolicy v) {
  return std::string(EnumInfo<OverflowPolicy>::name(v));
}

std::string int_range(std::int64_t lo, std::int64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

/// `s` cut to kMaxShown characters (with "..." when cut).
std::string shorten(std::string s) {
  if (s.size() > kMaxShown) {
    s.resize(kMaxShown - 3);
    s += "...";
  }
  return s;
}

/// `s` as a quoted, escaped JSON string (invalid UTF-8 replaced), shortened.
/// "string \"16\"", "number 16.5", "boolean true", "null", "array [1,2]", ...
template <class J>
std::string describe(const J& v) {
  if (v.is_null()) return "null";
  return std::string(v.type_name()) + " " +
         shorten(v.dump(-1, ' ', false, J::error_handler_t::replace));
}

std::string field_prefix(const std::string& source, std::string_view field) {
  return source + ": field \"" + std::string(field) + "\"";
}

[[noreturn]] void throw_out_of_range(const std::string& source, std::string_view field,
                                     const std::string& value, std::int64_t lo,
                                     std::int64_t hi, std::string_view unit) {
  std::string msg = field_prefix(source, field) + " = " + value + " is out of range " +
                    int_range(lo, hi);
  if (!unit.empty()) msg += " (" + std::string(unit) + ")";
  throw ConfigError(msg);
}

// ---------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------

std::optional<HwConfig> find_preset(std::string_view name) {
  HwConfig c;  // the declared defaults
  if (name == "default") return c;
  if (name == "small") {
    c.mac_rows = 4;
    c.mac_cols = 4;
    c.act_sram_kib = 8;
    c.wgt_sram_kib = 8;
    c.acc_sram_kib = 2;
    c.param_sram_kib = 1;
    c.sram_bank_bytes = 4;
    c.dram_latency_cycles = 20;
    c.dram_bytes_per_cycle = 8;
    c.requant_lanes = 4;
    c.vector_lanes = 4;
    c.lut_lanes = 4;
    c.queue_depth = 8;
    c.token_depth = 4;
    return c;
  }
  if (name == "large") {
    c.mac_rows = 32;
    c.mac_cols = 32;
    c.act_sram_kib = 1024;
    c.wgt_sram_kib = 1024;
    c.acc_sram_kib = 256;
    c.param_sram_kib = 64;
    c.sram_bank_bytes = 32;
    c.dram_bytes_per_cycle = 64;
    c.requant_lanes = 32;
    c.vector_lanes = 32;
    c.lut_lanes = 32;
    return c;
  }
  return std::nullopt;
}

std::string preset_list() {
  std::string out;
  for (std::size_t i = 0; i < kPresetNames.size(); ++i) {
    if (i > 0) out += ", ";
    out += kPresetNames[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

void check_config(const HwConfig& c, const std::string& source) {
#define DLA_CHECK_INT(name, def, lo, hi, unit, doc)                               \
  if (c.name < (lo) || c.name > (hi))                                             \
    throw_out_of_range(source, #name, value_text(c.name), lo, hi, unit);
#define DLA_CHECK_BOOL(name, def, doc)
#define DLA_CHECK_ENUM(name, type, def, doc)                                      \
  if (!enum_valid(c.name))                                                        \
    throw ConfigError(field_prefix(source, #name) + " has invalid value " +       \
                      std::to_string(static_cast<int>(c.name)) + " (expected " +  \
                      enum_names<type>() + ")");
  DLA_HW_CONFIG_FIELDS(DLA_CHECK_INT, DLA_CHECK_BOOL, DLA_CHECK_ENUM)
#undef DLA_CHECK_INT
#undef DLA_CHECK_BOOL
#undef DLA_CHECK_ENUM
  // The SRAMs select bank and word lane by address bits.
  for (const auto& [field, value] : {std::pair<std::string_view, std::int64_t>{"sram_banks", c.sram_banks},
                                     std::pair<std::string_view, std::int64_t>{"sram_bank_bytes", c.sram_bank_bytes}}) {
    if ((value & (value - 1)) != 0)
      throw ConfigError(field_prefix(source, field) + " = " + std::to_string(value) +
                        " is not a power of two (the SRAMs select banks and bytes by address bits)");
  }
}

// ---------------------------------------------------------------------------
// JSON reading (templated over json / ordered_json)
// ---------------------------------------------------------------------------

template <class J>
std::int64_t read_int(const J& v, const std::string& source, std::string_view field,
                      std::int64_t lo, std::int64_t hi, std::string_view unit) {
  if (!v.is_number_integer())
    throw ConfigError(field_prefix(source, field) + " must be an integer, got " + describe(v));
  std::int64_t x = 0;
  if (v.is_number_unsigned()) {
    const auto u = v.template get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw_out_of_range(source, field, v.dump(), lo, hi, unit);
    x = static_cast<std::int64_t>(u);
  } else {
    x = v.template get<std::int64_t>();
  }
  if (x < lo || x > hi) throw_out_of_range(source, field, std::to_string(x), lo, hi, unit);
  return x;
}

template <class J>
bool read_bool(const J& v, const std::string& source, std::string_view field) {
  if (!v.is_boolean())
    throw ConfigError(field_prefix(source, field) + " must be true or false, got " +
                      describe(v));
  return v.template get<bool>();
}

template <class E, class J>
E read_enum(const J& v, const std::string& source, std::string_view field) {
  if (v.is_string()) {
    if (auto e = enum_from_name<E>(v.template get_ref<const std::string&>())) return *e;
  }
  throw ConfigError(field_prefix(source, field) + " must be one of " + enum_names<E>() +
                    ", got " + describe(v));
}

[[noreturn]] void throw_unknown_field(const std::string& source, const std::string& key) {
  std::vector<std::string_view> known{kPresetKey};
  known.insert(known.end(), std::begin(kFieldNames), std::end(kFieldNames));
  throw ConfigError(source + ": unknown field " + quote_for_message(key) + unknown_name_hint(key, known));
}

template <class J>
HwConfig from_json_impl(const J& j, const std::string& source) {
  if (!j.is_object())
    throw ConfigError(source + ": a hardware config must be a JSON object, got " +
                      describe(j));

  HwConfig c;
  if (auto it = j.find(std::string(kPresetKey)); it != j.end()) {
    if (!it->is_string())
      throw ConfigError(source + ": \"preset\" must be a string (one of " + preset_list() +
                        "), got " + describe(*it));
    const auto& name = it->template get_ref<const std::string&>();
    auto base = find_preset(name);
    if (!base)
      throw ConfigError(source + ": unknown preset " + quote_for_message(name) + " (valid presets: " +
                        preset_list() + ")");
    c = *base;
  }

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const J& v = it.value();
    if (key == kPresetKey) continue;
#define DLA_READ_INT(name, def, lo, hi, unit, doc) \
  if (key == #name) {                              \
    c.name = read_int(v, source, #name, lo, hi, unit); \
    continue;                                      \
  }
#define DLA_READ_BOOL(name, def, doc)     \
  if (key == #name) {                     \
    c.name = read_bool(v, source, #name); \
    continue;                             \
  }
#define DLA_READ_ENUM(name, type, def, doc)     \
  if (key == #name) {                           \
    c.name = read_enum<type>(v, source, #name); \
    continue;                                   \
  }
    DLA_HW_CONFIG_FIELDS(DLA_READ_INT, DLA_READ_BOOL, DLA_READ_ENUM)
#undef DLA_READ_INT
#undef DLA_READ_BOOL
#undef DLA_READ_ENUM
    throw_unknown_field(source, key);
  }

  check_config(c, source);
  return c;
}

// ---------------------------------------------------------------------------
// JSON writing
// ---------------------------------------------------------------------------

template <class J>
J to_json_impl(const HwConfig& c) {
  J j = J::object();
#define DLA_WRITE_INT(name, def, lo, hi, unit, doc) j[#name] = c.name;
#define DLA_WRITE_BOOL(name, def, doc) j[#name] = c.name;
#define DLA_WRITE_ENUM(name, type, def, doc) j[#name] = value_text(c.name);
  DLA_HW_CONFIG_FIELDS(DLA_WRITE_INT, DLA_WRITE_BOOL, DLA_WRITE_ENUM)
#undef DLA_WRITE_INT
#undef DLA_WRITE_BOOL
#undef DLA_WRITE_ENUM
  return j;
}

/// nlohmann's what() without its "[json.exception.parse_error.101] " prefix.
std::string strip_json_exception_prefix(const std::string& what) {
  if (what.rfind("[json.exception.", 0) == 0) {
    const auto end = what.find("] ");
    if (end != std::string::npos) return what.substr(end + 2);
  }
  return what;
}

}  // namespace

// ---------------------------------------------------------------------------
// HwConfig
// ---------------------------------------------------------------------------

HwConfig HwConfig::preset(std::string_view name) {
  if (auto c = find_preset(name)) return *c;
  throw ConfigError("unknown hardware-config preset " + quote_for_message(name) +
                    " (valid presets: " + preset_list() + ")");
}

std::vector<std::string> HwConfig::preset_names() {
  return {kPresetNames.begin(), kPresetNames.end()};
}

HwConfig HwConfig::from_json(const nlohmann::json& j, const std::string& source) {
  return from_json_impl(j, source);
}

HwConfig HwConfig::from_json_text(const std::string& text, const std::string& source) {
  using ojson = nlohmann::ordered_json;
  // Reject a key given twice in one object (nlohmann would silently keep the last).
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const ojson::parser_callback_t on_event = [&](int /*depth*/, ojson::parse_event_t event,
                                                ojson& parsed) {
    switch (event) {
      case ojson::parse_event_t::object_start: open_objects.emplace_back(); break;
      case ojson::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case ojson::parse_event_t::key:
        if (duplicate.empty() && !open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second)
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };

  ojson j;
  try {
    j = ojson::parse(text, on_event);
  } catch (const ojson::parse_error& e) {
    throw ConfigError(source + ": invalid JSON at byte " + std::to_string(e.byte) + ": " +
                      strip_json_exception_prefix(e.what()));
  } catch (const ojson::exception& e) {
    // Not a syntax error but still bad text: a number too large for any type ("6E666666").
    throw ConfigError(source + ": invalid JSON: " + strip_json_exception_prefix(e.what()));
  }
  if (!duplicate.empty())
    throw ConfigError(source + ": key " + quote_for_message(duplicate) + " is given more than once");
  return from_json_impl(j, source);
}

HwConfig HwConfig::load_file(const std::string& path) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_regular_file(path, kMaxFileBytes, "hardware config");
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(e.what());
  }
  return from_json_text(std::string(bytes.begin(), bytes.end()), path);
}

nlohmann::json HwConfig::to_json() const { return to_json_impl<nlohmann::json>(*this); }

std::string HwConfig::to_json_text() const {
  return to_json_impl<nlohmann::ordered_json>(*this).dump(2) + "\n";
}

void HwConfig::validate() const { check_config(*this, "hw config"); }

namespace {

/// Clocks of one port for `n` contiguous elements from element `addr` of banks of `word`
/// elements: ceil(bank words touched / banks), at least 1.
std::uint64_t bank_clocks(std::uint64_t addr, std::uint64_t n, std::uint64_t word, std::uint64_t banks) {
  if (n == 0) return 1;
  const std::uint64_t words = (addr + n - 1) / word - addr / word + 1;
  return (words + banks - 1) / banks;
}

}  // namespace

std::uint64_t HwConfig::sram_access_clocks(std::uint64_t addr, std::uint64_t bytes) const {
  return bank_clocks(addr, bytes, static_cast<std::uint64_t>(sram_bank_bytes), static_cast<std::uint64_t>(sram_banks));
}

std::int64_t HwConfig::acc_bank_words() const {
  const std::int64_t widest = acc_port_words();
  std::int64_t word = std::max<std::int64_t>(1, sram_bank_bytes / 4);
  // `widest` words at the worst offset touch (widest - 2) / word + 2 bank words. One bank
  // never suffices (sram_banks >= 2); were it given, stop at a word as wide as the access.
  while (widest > 1 && (widest - 2) / word + 2 > sram_banks && word < widest) word *= 2;
  return word;
}

std::int64_t HwConfig::act_port_bytes() const {
  const std::int64_t outputs = 4 * std::max({requant_lanes, vector_lanes, lut_lanes});
  const std::int64_t run = std::max({2 * mac_rows, a8w4_speedup * mac_rows, (a4w4_speedup * mac_rows + 1) / 2 + 1});
  return std::max(outputs, run);
}

std::int64_t HwConfig::wgt_port_bytes() const {
  return std::max({mac_rows, (a8w4_speedup * mac_rows + 1) / 2 + 1, (a4w4_speedup * mac_rows + 1) / 2 + 1});
}

std::int64_t HwConfig::param_port_bytes() const {
  return std::max({static_cast<std::int64_t>(isa::RequantRecord::size(static_cast<std::size_t>(requant_lanes))),
                   static_cast<std::int64_t>(isa::AddRecord::kSize), static_cast<std::int64_t>(isa::AvgPoolRecord::kSize),
                   static_cast<std::int64_t>(isa::LutRecord::kLayout[0].bytes) * lut_lanes});
}

std::uint64_t HwConfig::acc_access_clocks(std::uint64_t addr, std::uint64_t words) const {
  return bank_clocks(addr, words, static_cast<std::uint64_t>(acc_bank_words()), static_cast<std::uint64_t>(sram_banks));
}

std::uint64_t HwConfig::identity_hash() const {
  std::string s;
#define DLA_ID_FIELD(name) \
  s += #name "=";          \
  s += value_text(name);   \
  s += ';';
#define DLA_ID_INT(name, def, lo, hi, unit, doc) DLA_ID_FIELD(name)
#define DLA_ID_BOOL(name, def, doc) DLA_ID_FIELD(name)
#define DLA_ID_ENUM(name, type, def, doc) DLA_ID_FIELD(name)
  DLA_HW_CONFIG_FIELDS(DLA_ID_INT, DLA_ID_BOOL, DLA_ID_ENUM)
#undef DLA_ID_INT
#undef DLA_ID_BOOL
#undef DLA_ID_ENUM
#undef DLA_ID_FIELD

  // FNV-1a, 64 bit.
  std::uint64_t h = 14695981039346656037ULL;
  for (const char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ULL;
  }
  return h;
}

bool HwConfig::operator==(const HwConfig& other) const {
#define DLA_EQ_INT(name, def, lo, hi, unit, doc) name == other.name &&
#define DLA_EQ_BOOL(name, def, doc) name == other.name &&
#define DLA_EQ_ENUM(name, type, def, doc) name == other.name &&
  return DLA_HW_CONFIG_FIELDS(DLA_EQ_INT, DLA_EQ_BOOL, DLA_EQ_ENUM) true;
#undef DLA_EQ_INT
#undef DLA_EQ_BOOL
#undef DLA_EQ_ENUM
}

// ---------------------------------------------------------------------------
// Documentation
// ---------------------------------------------------------------------------

std::vector<HwConfigFieldDoc> hw_config_field_docs() {
  const HwConfig d{};
  std::vector<HwConfigFieldDoc> rows;
#define DLA_DOC_INT(name, def, lo, hi, unit, doc) \
  rows.push_back({#name, "int", value_text(d.name), int_range(lo, hi), unit, doc});
#define DLA_DOC_BOOL(name, def, doc) \
  rows.push_back({#name, "bool", value_text(d.name), "true|false", "", doc});
#define DLA_DOC_ENUM(name, type, def, doc) \
  rows.push_back({#name, "enum", value_text(d.name), enum_names<type>(), "", doc});
  DLA_HW_CONFIG_FIELDS(DLA_DOC_INT, DLA_DOC_BOOL, DLA_DOC_ENUM)
#undef DLA_DOC_INT
#undef DLA_DOC_BOOL
#undef DLA_DOC_ENUM
  return rows;
}

std::string hw_config_doc_table() {
  using Row = std::array<std::string, 6>;
  std::vector<Row> rows;
  rows.push_back({"FIELD", "KIND", "DEFAULT", "RANGE", "UNIT", "DOC"});
  for (const auto& f : hw_config_field_docs())
    rows.push_back({f.name, f.kind, f.default_value, f.range, f.unit.empty() ? "-" : f.unit,
                    f.doc});

  std::array<std::size_t, 6> width{};
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());

  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line;
    out += '\n';
  }
  return out;
}

std::string hash_hex(std::uint64_t hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kDigits[hash & 0xF];
    hash >>= 4;
  }
  return out;
}

}  // namespace dla

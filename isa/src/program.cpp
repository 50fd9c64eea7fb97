// Program file reader and writer. The reader treats every byte as hostile: each read
// is bounds-checked, every count is checked against the bytes that could hold it before
// anything is allocated, and every failure names the offset.
#include "dla/program.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <iomanip>
#include <set>
#include <sstream>

#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/hw_config.hpp"
#include "nlohmann/json.hpp"

namespace dla {
namespace {

constexpr std::array<std::uint8_t, 8> kMagic = {0x89, 'D', 'L', 'A', 'B', 0x0D, 0x0A, 0x1A};
constexpr std::size_t kHeaderCrcOffset = 40;
constexpr std::size_t kTensorRecordFixedBytes = 16;  // role..reserved (8) + dram offset (8)
constexpr std::uint64_t kMaxConfigBytes = 64 * 1024;

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> kCrcTable = make_crc_table();

std::string hex32(std::uint32_t v) {
  std::ostringstream os;
  os << std::hex << std::setw(8) << std::setfill('0') << v;
  return os.str();
}

/// Bounds-checked little-endian reader over [begin, end) of a buffer; offsets in errors
/// are absolute file offsets.
class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t begin, std::size_t end, std::string where)
      : data_(data), pos_(begin), end_(end), where_(std::move(where)) {}

  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return end_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(where_ + ": " + what, pos_); }
  [[noreturn]] void fail_at(const std::string& what, std::size_t offset) const {
    throw FormatError(where_ + ": " + what, offset);
  }

  void need(std::size_t n, const char* what) const {
    if (remaining() < n) {
      fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " left");
    }
  }

  std::uint64_t uint(int bytes, const char* what) {
    need(static_cast<std::size_t>(bytes), what);
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | data_[pos_ + static_cast<std::size_t>(i)];
    pos_ += static_cast<std::size_t>(bytes);
    return v;
  }
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(uint(1, what)); }
  std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(uint(2, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(uint(4, what)); }
  std::uint64_t u64(const char* what) { return uint(8, what); }
  const std::uint8_t* bytes(std::size_t n, const char* what) {
    need(n, what);
    const std::uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  const std::uint8_t* data_;
  std::size_t pos_;
  std::size_t end_;
  std::string where_;
};

class Writer {
 public:
  /// Little-endian integer of 1..8 bytes.
  void uint(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }
  void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  std::vector<std::uint8_t>& out() { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

/// Product of dims, or nullopt on overflow past kMaxDramBytes.
std::optional<std::uint64_t> checked_elements(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) {
    if (d == 0 || d > kMaxDramBytes) return std::nullopt;
    if (n > (kMaxDramBytes * 2) / d) return std::nullopt;
    n *= d;
  }
  return n;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

/// The rules shared by reader and writer for one tensor; returns an error or "".
std::string tensor_problem(const TensorDesc& t, std::uint64_t dram_size) {
  if (!valid_name(t.name)) return "tensor name must be 1..255 printable ASCII characters";
  if (static_cast<int>(t.role) > 2) return "tensor '" + t.name + "': unknown role";
  if (!is_valid_dtype(static_cast<int>(t.dtype))) return "tensor '" + t.name + "': unknown dtype";
  if (t.frac < -128 || t.frac > 127) return "tensor '" + t.name + "': frac out of range [-128, 127]";
  if (static_cast<int>(t.layout) > 1) return "tensor '" + t.name + "': unknown layout";
  if (t.shape.size() > static_cast<std::size_t>(kMaxTensorRank)) {
    return "tensor '" + t.name + "': rank " + std::to_string(t.shape.size()) + " exceeds " +
           std::to_string(kMaxTensorRank);
  }
  if (t.layout == Layout::kNHWC && t.shape.size() != 4) {
    return "tensor '" + t.name + "': nhwc layout needs rank 4";
  }
  const auto n = checked_elements(t.shape);
  if (!n) return "tensor '" + t.name + "': a dimension is zero or the element count overflows";
  const std::uint64_t bytes = storage_bytes(t.dtype, *n);
  if (t.dram_offset > dram_size || bytes > dram_size - t.dram_offset) {
    return "tensor '" + t.name + "': DRAM range [" + std::to_string(t.dram_offset) + ", " +
           std::to_string(t.dram_offset + bytes) + ") exceeds the program's DRAM size " +
           std::to_string(dram_size);
  }
  return "";
}

TensorDesc read_tensor(Cursor& c, std::uint64_t dram_size) {
  const std::size_t start = c.pos();
  TensorDesc t;
  const std::uint8_t role = c.u8("tensor role");
  const std::uint8_t dtype = c.u8("tensor dtype");
  const auto frac = static_cast<std::int8_t>(c.u8("tensor frac"));
  const std::uint8_t layout = c.u8("tensor layout");
  const std::uint8_t rank = c.u8("tensor rank");
  if (role > 2) c.fail_at("unknown tensor role " + std::to_string(role), start);
  if (!is_valid_dtype(dtype)) c.fail_at("unknown tensor dtype " + std::to_string(dtype), start + 1);
  if (layout > 1) c.fail_at("unknown tensor layout " + std::to_string(layout), start + 3);
  if (rank > kMaxTensorRank) {
    c.fail_at("tensor rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxTensorRank), start + 4);
  }
  const std::size_t reserved_at = c.pos();
  if (c.u8("reserved") != 0 || c.u8("reserved") != 0 || c.u8("reserved") != 0) {
    c.fail_at("reserved bytes of a tensor record are not zero", reserved_at);
  }
  t.role = static_cast<TensorRole>(role);
  t.dtype = static_cast<DType>(dtype);
  t.frac = frac;
  t.layout = static_cast<Layout>(layout);
  t.dram_offset = c.u64("tensor DRAM offset");
  for (int i = 0; i < rank; ++i) t.shape.push_back(c.u64("tensor dimension"));
  const std::size_t name_at = c.pos();
  const std::uint16_t name_len = c.u16("tensor name length");
  if (name_len == 0 || name_len > kMaxNameLength) {
    c.fail_at("tensor name length " + std::to_string(name_len) + " is not in [1, 255]", name_at);
  }
  const std::uint8_t* name = c.bytes(name_len, "tensor name");
  t.name.assign(reinterpret_cast<const char*>(name), name_len);
  const std::string problem = tensor_problem(t, dram_size);
  if (!problem.empty()) c.fail_at(problem, start);
  return t;
}

void write_tensor(Writer& w, const TensorDesc& t) {
  w.uint(static_cast<std::uint8_t>(t.role), 1);
  w.uint(static_cast<std::uint8_t>(t.dtype), 1);
  w.uint(static_cast<std::uint8_t>(static_cast<std::int8_t>(t.frac)), 1);
  w.uint(static_cast<std::uint8_t>(t.layout), 1);
  w.uint(t.shape.size(), 1);
  w.zeros(3);
  w.uint(t.dram_offset, 8);
  for (std::uint64_t d : t.shape) w.uint(d, 8);
  w.uint(t.name.size(), 2);
  w.bytes(reinterpret_cast<const std::uint8_t*>(t.name.data()), t.name.size());
}

/// Program-level rules shared by reader and writer; returns an error or "".
std::string program_problem(const Program& p) {
  if (p.dram_size > kMaxDramBytes) {
    return "DRAM size " + std::to_string(p.dram_size) + " exceeds the limit " + std::to_string(kMaxDramBytes);
  }
  if (p.constants.size() > p.dram_size) {
    return "constants (" + std::to_string(p.constants.size()) + " bytes) exceed the DRAM size " +
           std::to_string(p.dram_size);
  }
  if (p.hw_config && p.hw_config->identity_hash() != p.hw_config_hash) {
    return "the embedded hardware config does not match the program's config hash";
  }
  if (p.instructions.empty() || !std::holds_alternative<isa::End>(p.instructions.back())) {
    return "the instruction stream does not end with END";
  }
  return "";
}

}  // namespace

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) c = kCrcTable[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string section_kind_name(SectionKind k) {
  switch (k) {
    case SectionKind::kInstructions: return "instructions";
    case SectionKind::kConstants: return "constants";
    case SectionKind::kTensors: return "tensors";
    case SectionKind::kDebug: return "debug";
    case SectionKind::kConfig: return "config";
  }
  return "kind " + std::to_string(static_cast<std::uint32_t>(k));
}

std::string_view tensor_role_name(TensorRole r) {
  switch (r) {
    case TensorRole::kInput: return "input";
    case TensorRole::kOutput: return "output";
    case TensorRole::kIntermediate: return "layer";
  }
  return "?";
}

std::string_view layout_name(Layout l) { return l == Layout::kNHWC ? "nhwc" : "row-major"; }

std::uint64_t TensorDesc::num_elements() const {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

bool TensorDesc::operator==(const TensorDesc& o) const {
  return name == o.name && role == o.role && dtype == o.dtype && frac == o.frac &&
         layout == o.layout && shape == o.shape && dram_offset == o.dram_offset;
}

bool DebugRecord::operator==(const DebugRecord& o) const {
  return layer == o.layer && insn_begin == o.insn_begin && insn_end == o.insn_end && output == o.output;
}

const TensorDesc* Program::find_tensor(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Program parse_program(const std::uint8_t* data, std::size_t size, const ReadOptions& options) {
  Cursor header(data, 0, size, "header");
  header.need(kDlabHeaderSize, "the header");
  if (std::memcmp(data, kMagic.data(), kMagic.size()) != 0) {
    header.fail("bad magic: not a .dlab program file");
  }
  header.bytes(kMagic.size(), "magic");
  const std::uint32_t version = header.u32("version");
  if (version != kDlabVersion) {
    header.fail_at("unsupported format version " + std::to_string(version) + " (this build reads version " +
                       std::to_string(kDlabVersion) + ")",
                   8);
  }
  const std::uint32_t header_size = header.u32("header size");
  if (header_size != kDlabHeaderSize) {
    header.fail_at("header size " + std::to_string(header_size) + " is not " + std::to_string(kDlabHeaderSize), 12);
  }
  Program p;
  p.hw_config_hash = header.u64("hardware config hash");
  p.dram_size = header.u64("DRAM size");
  const std::uint32_t section_count = header.u32("section count");
  const std::uint32_t flags = header.u32("flags");
  const std::uint32_t header_crc = header.u32("header CRC");
  if (options.verify_checksums) {
    std::array<std::uint8_t, kDlabHeaderSize> copy{};
    std::memcpy(copy.data(), data, kDlabHeaderSize);
    std::memset(copy.data() + kHeaderCrcOffset, 0, 4);
    const std::uint32_t actual = crc32(copy.data(), copy.size());
    if (actual != header_crc) {
      header.fail_at("header checksum mismatch (stored " + hex32(header_crc) + ", computed " + hex32(actual) + ")",
                     kHeaderCrcOffset);
    }
  }
  if (flags != 0) header.fail_at("unknown flags " + std::to_string(flags), 36);
  for (std::size_t i = 44; i < kDlabHeaderSize; ++i) {
    if (data[i] != 0) header.fail_at("reserved header bytes are not zero", i);
  }
  if (options.expected_config_hash && *options.expected_config_hash != p.hw_config_hash) {
    header.fail_at("program was compiled for hardware config " + hash_hex(p.hw_config_hash) +
                       ", but this engine runs hardware config " + hash_hex(*options.expected_config_hash),
                   16);
  }
  if (p.dram_size > kMaxDramBytes) {
    header.fail_at("DRAM size " + std::to_string(p.dram_size) + " exceeds the limit " + std::to_string(kMaxDramBytes), 24);
  }
  if (section_count == 0 || section_count > kMaxSections) {
    header.fail_at("section count " + std::to_string(section_count) + " is not in [1, " +
                       std::to_string(kMaxSections) + "]",
                   32);
  }

  // Section table.
  const std::size_t table_end = kDlabHeaderSize + std::size_t{section_count} * kDlabSectionEntrySize;
  Cursor table(data, kDlabHeaderSize, size, "section table");
  table.need(table_end - kDlabHeaderSize, "the section table");
  std::set<std::uint32_t> seen;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::uint32_t i = 0; i < section_count; ++i) {
    const std::size_t entry = table.pos();
    SectionInfo s{};
    const std::uint32_t kind = table.u32("section kind");
    s.items = table.u32("section item count");
    s.offset = table.u64("section offset");
    s.size = table.u64("section size");
    s.crc32 = table.u32("section CRC");
    if (table.u32("reserved") != 0) table.fail_at("reserved field of section entry " + std::to_string(i) + " is not zero", entry + 28);
    if (kind < 1 || kind > 5) table.fail_at("section " + std::to_string(i) + " has unknown kind " + std::to_string(kind), entry);
    if (!seen.insert(kind).second) {
      table.fail_at("section kind " + section_kind_name(static_cast<SectionKind>(kind)) + " appears twice", entry);
    }
    s.kind = static_cast<SectionKind>(kind);
    if (s.offset < table_end || s.offset > size || s.size > size - s.offset) {
      table.fail_at("section " + section_kind_name(s.kind) + " [" + std::to_string(s.offset) + ", +" +
                        std::to_string(s.size) + ") lies outside the file's payload area [" +
                        std::to_string(table_end) + ", " + std::to_string(size) + ")",
                    entry + 8);
    }
    for (const auto& [b, e] : ranges) {
      if (s.offset < e && b < s.offset + s.size) {
        table.fail_at("section " + section_kind_name(s.kind) + " overlaps another section", entry + 8);
      }
    }
    ranges.emplace_back(s.offset, s.offset + s.size);
    if (options.verify_checksums) {
      const std::uint32_t actual = crc32(data + s.offset, static_cast<std::size_t>(s.size));
      if (actual != s.crc32) {
        table.fail_at("section " + section_kind_name(s.kind) + " checksum mismatch (stored " + hex32(s.crc32) +
                          ", computed " + hex32(actual) + ")",
                      static_cast<std::size_t>(s.offset));
      }
    }
    p.sections.push_back(s);
  }
  if (!seen.count(static_cast<std::uint32_t>(SectionKind::kInstructions))) {
    table.fail_at("no instructions section", kDlabHeaderSize);
  }

  for (const SectionInfo& s : p.sections) {
    const auto begin = static_cast<std::size_t>(s.offset);
    const auto end = static_cast<std::size_t>(s.offset + s.size);
    Cursor c(data, begin, end, section_kind_name(s.kind) + " section");
    switch (s.kind) {
      case SectionKind::kInstructions: {
        if (s.size != std::uint64_t{s.items} * isa::kInstructionBytes) {
          c.fail("size " + std::to_string(s.size) + " is not 16 x item count " + std::to_string(s.items));
        }
        p.instructions.reserve(s.items);
        for (std::uint32_t i = 0; i < s.items; ++i) {
          const std::size_t at = c.pos();
          const isa::Word w = isa::Word::from_bytes(c.bytes(isa::kInstructionBytes, "instruction"));
          try {
            p.instructions.push_back(isa::decode(w));
          } catch (const EncodeError& e) {
            c.fail_at("instruction " + std::to_string(i) + ": " + e.what(), at);
          }
        }
        break;
      }
      case SectionKind::kConstants:
        if (s.items != 0) c.fail("item count must be 0");
        p.constants.assign(data + begin, data + end);
        break;
      case SectionKind::kConfig: {
        if (s.items != 0) c.fail("item count must be 0");
        if (s.size > kMaxConfigBytes) c.fail("config text is larger than " + std::to_string(kMaxConfigBytes) + " bytes");
        try {
          p.hw_config = HwConfig::from_json_text(std::string(data + begin, data + end), "embedded config");
        } catch (const ConfigError& e) {
          c.fail(e.what());
        }
        if (p.hw_config->identity_hash() != p.hw_config_hash) {
          // Fields this build has and the file lacks: compiled by an older dlasim.
          const auto given = nlohmann::json::parse(std::string(data + begin, data + end));
          std::string missing;
          for (const auto& d : hw_config_field_docs()) {
            if (!given.contains(d.name)) missing += (missing.empty() ? "" : ", ") + d.name;
          }
          c.fail("embedded config has identity hash " + hash_hex(p.hw_config->identity_hash()) +
                 ", but the header says " + hash_hex(p.hw_config_hash) +
                 (missing.empty() ? std::string()
                                  : " (it has no " + missing +
                                        ": the program was compiled by an older dlasim; compile it again)"));
        }
        break;
      }
      case SectionKind::kTensors:
      case SectionKind::kDebug: {
        const std::size_t min_record =
            kTensorRecordFixedBytes + 3 + (s.kind == SectionKind::kDebug ? 8 : 0);
        if (s.items > s.size / min_record) {
          c.fail("item count " + std::to_string(s.items) + " cannot fit in " + std::to_string(s.size) + " bytes");
        }
        for (std::uint32_t i = 0; i < s.items; ++i) {
          if (s.kind == SectionKind::kTensors) {
            p.tensors.push_back(read_tensor(c, p.dram_size));
          } else {
            DebugRecord r;
            const std::size_t at = c.pos();
            r.insn_begin = c.u32("first instruction");
            r.insn_end = c.u32("end instruction");
            r.output = read_tensor(c, p.dram_size);
            r.layer = r.output.name;
            if (r.insn_begin > r.insn_end) c.fail_at("debug record '" + r.layer + "': instruction range is reversed", at);
            p.debug.push_back(std::move(r));
          }
        }
        if (c.remaining() != 0) c.fail(std::to_string(c.remaining()) + " bytes left after the last record");
        break;
      }
    }
  }

  const std::string problem = program_problem(p);
  if (!problem.empty()) throw FormatError(problem, 0);
  std::set<std::string> names;
  for (const auto& t : p.tensors) {
    if (!names.insert(t.name).second) throw FormatError("tensor name '" + t.name + "' appears twice", 0);
  }
  for (const auto& r : p.debug) {
    if (r.insn_end > p.instructions.size()) {
      throw FormatError("debug record '" + r.layer + "': instruction range ends at " + std::to_string(r.insn_end) +
                            " past the " + std::to_string(p.instructions.size()) + " instructions",
                        0);
    }
  }
  return p;
}

Program read_program_file(const std::string& path, const ReadOptions& options) {
  const std::vector<std::uint8_t> bytes = read_regular_file(path, kMaxFileBytes, "program file");
  try {
    return parse_program(bytes.data(), bytes.size(), options);
  } catch (const FormatError& e) {
    throw FormatError(path + ": " + e.detail(), e.offset());
  }
}

std::vector<std::uint8_t> serialize_program(const Program& p) {
  const std::string problem = program_problem(p);
  if (!problem.empty()) throw Error("cannot write program: " + problem);
  std::set<std::string> names;
  for (const auto& t : p.tensors) {
    const std::string tp = tensor_problem(t, p.dram_size);
    if (!tp.empty()) throw Error("cannot write program: " + tp);
    if (!names.insert(t.name).second) throw Error("cannot write program: tensor name '" + t.name + "' appears twice");
  }
  for (const auto& r : p.debug) {
    const std::string tp = tensor_problem(r.output, p.dram_size);
    if (!tp.empty()) throw Error("cannot write program: debug record: " + tp);
    if (r.insn_begin > r.insn_end || r.insn_end > p.instructions.size()) {
      throw Error("cannot write program: debug record '" + r.layer + "' has an invalid instruction range");
    }
  }

  struct Payload {
    SectionKind kind;
    std::uint32_t items;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<Payload> payloads;
  {
    Payload insns{SectionKind::kInstructions, static_cast<std::uint32_t>(p.instructions.size()), {}};
    insns.bytes.resize(p.instructions.size() * isa::kInstructionBytes);
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      isa::encode(p.instructions[i]).to_bytes(insns.bytes.data() + i * isa::kInstructionBytes);
    }
    payloads.push_back(std::move(insns));
  }
  payloads.push_back({SectionKind::kConstants, 0, p.constants});
  {
    Writer w;
    for (const auto& t : p.tensors) write_tensor(w, t);
    payloads.push_back({SectionKind::kTensors, static_cast<std::uint32_t>(p.tensors.size()), std::move(w.out())});
  }
  {
    Writer w;
    for (const auto& r : p.debug) {
      w.uint(r.insn_begin, 4);
      w.uint(r.insn_end, 4);
      TensorDesc out = r.output;
      out.name = r.layer;
      write_tensor(w, out);
    }
    payloads.push_back({SectionKind::kDebug, static_cast<std::uint32_t>(p.debug.size()), std::move(w.out())});
  }
  if (p.hw_config) {
    const std::string text = p.hw_config->to_json_text();
    payloads.push_back({SectionKind::kConfig, 0, std::vector<std::uint8_t>(text.begin(), text.end())});
  }

  Writer w;
  w.bytes(kMagic.data(), kMagic.size());
  w.uint(kDlabVersion, 4);
  w.uint(kDlabHeaderSize, 4);
  w.uint(p.hw_config_hash, 8);
  w.uint(p.dram_size, 8);
  w.uint(payloads.size(), 4);
  w.uint(0, 4);   // flags
  w.uint(0, 4);   // header CRC, filled below
  w.zeros(20);    // reserved
  std::uint64_t offset = kDlabHeaderSize + payloads.size() * kDlabSectionEntrySize;
  for (const auto& s : payloads) {
    w.uint(static_cast<std::uint32_t>(s.kind), 4);
    w.uint(s.items, 4);
    w.uint(offset, 8);
    w.uint(s.bytes.size(), 8);
    w.uint(crc32(s.bytes.data(), s.bytes.size()), 4);
    w.uint(0, 4);
    offset += s.bytes.size();
  }
  for (const auto& s : payloads) w.bytes(s.bytes.data(), s.bytes.size());
  auto& out = w.out();
  const std::uint32_t header_crc = crc32(out.data(), kDlabHeaderSize);
  for (int i = 0; i < 4; ++i) out[kHeaderCrcOffset + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(header_crc >> (8 * i));
  return std::move(out);
}

void write_program_file(const std::string& path, const Program& program) {
  write_file_atomically(path, serialize_program(program), "program file");
}

namespace {
std::string tensor_line(const TensorDesc& t) {
  std::ostringstream os;
  os << t.name << "  " << dtype_info(t.dtype).name << " frac " << t.frac << "  shape [";
  for (std::size_t i = 0; i < t.shape.size(); ++i) os << (i ? "," : "") << t.shape[i];
  os << "] " << layout_name(t.layout) << "  dram 0x" << std::hex << t.dram_offset << std::dec << " ("
     << t.byte_size() << " bytes)";
  return os.str();
}
}  // namespace

std::string describe_program(const Program& p) {
  std::ostringstream os;
  os << "dlab version " << kDlabVersion << "  hw config " << hash_hex(p.hw_config_hash) << "  dram "
     << p.dram_size << " bytes  config " << (p.hw_config ? "embedded" : "not embedded") << "\n";
  if (!p.sections.empty()) {
    os << "sections:\n";
    for (const auto& s : p.sections) {
      os << "  " << std::left << std::setw(13) << section_kind_name(s.kind) << std::right << " offset "
         << std::setw(8) << s.offset << "  size " << std::setw(8) << s.size << "  items " << std::setw(6)
         << s.items << "  crc32 " << hex32(s.crc32) << "\n";
    }
  }
  os << "tensors:\n";
  for (const auto& t : p.tensors) os << "  " << std::left << std::setw(7) << tensor_role_name(t.role) << std::right << tensor_line(t) << "\n";
  os << "debug records:\n";
  for (const auto& r : p.debug) {
    os << "  insns [" << r.insn_begin << ", " << r.insn_end << ")  " << tensor_line(r.output) << "\n";
  }
  os << "constants: " << p.constants.size() << " bytes\n";
  os << "instructions: " << p.instructions.size() << "\n";
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    os << std::setw(6) << i << "  " << isa::disassemble(p.instructions[i]) << "\n";
  }
  return os.str();
}

namespace {
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return a <= 1 ? v : (v + a - 1) / a * a; }
}  // namespace

std::uint64_t ProgramBuilder::add_constant(const std::vector<std::uint8_t>& bytes, std::uint64_t alignment) {
  if (allocated_) throw std::logic_error("ProgramBuilder: constants must be added before allocations");
  const std::uint64_t at = align_up(program_.constants.size(), alignment);
  program_.constants.resize(static_cast<std::size_t>(at));
  program_.constants.insert(program_.constants.end(), bytes.begin(), bytes.end());
  return at;
}

std::uint64_t ProgramBuilder::allocate(std::uint64_t bytes, std::uint64_t alignment) {
  if (!allocated_) dram_top_ = program_.constants.size();
  allocated_ = true;
  const std::uint64_t at = align_up(dram_top_, alignment);
  dram_top_ = at + bytes;
  return at;
}

TensorDesc ProgramBuilder::add_tensor(TensorDesc desc) {
  desc.dram_offset = allocate(desc.byte_size());
  program_.tensors.push_back(desc);
  return desc;
}

std::uint32_t ProgramBuilder::add(const isa::Instruction& insn) {
  program_.instructions.push_back(insn);
  return static_cast<std::uint32_t>(program_.instructions.size() - 1);
}

Program ProgramBuilder::build() const {
  Program p = program_;
  p.dram_size = std::max<std::uint64_t>(allocated_ ? dram_top_ : 0, p.constants.size());
  return p;
}

}  // namespace dla

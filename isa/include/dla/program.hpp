// dla/program.hpp — the program file (.dlab): reader, writer and builder.
//
// Layout (all integers little endian):
//   header, 64 bytes:
//     0  u8[8]  magic 89 'D' 'L' 'A' 'B' 0D 0A 1A
//     8  u32    format version (kDlabVersion)
//    12  u32    header size (64)
//    16  u64    identity hash of the hardware config the program was compiled for
//    24  u64    DRAM bytes the program needs (constants at 0, then its tensors)
//    32  u32    section count (1..kMaxSections)
//    36  u32    flags (0)
//    40  u32    CRC-32 of the 64 header bytes with this field zeroed
//    44  u8[20] reserved, zero
//   section table, section count x 32 bytes, at offset 64:
//     u32 kind, u32 item count, u64 offset, u64 size, u32 CRC-32 of the payload, u32 zero
//   section payloads, inside the file, not overlapping the header, the table or each other.
// Sections (each at most once; INSTRUCTIONS required):
//   INSTRUCTIONS  item count x 16-byte instructions (dla/isa.hpp), ending with END
//   CONSTANTS     raw bytes loaded at DRAM address 0 (packed weights, biases, records)
//   TENSORS       item count x tensor record: the program's inputs and outputs
//   DEBUG         item count x (u32 first instruction, u32 end instruction, tensor record):
//                 each source layer, its instruction range and its output tensor
//   CONFIG        optional: the hardware config as JSON text, whose identity hash must
//                 equal the header's, so that an engine can run the file with no other input
// Tensor record: u8 role, u8 dtype, i8 frac, u8 layout, u8 rank (0..8), u8[3] zero,
//   u64 DRAM offset, u64 dims[rank], u16 name length (1..255), name (printable ASCII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"

namespace dla {

inline constexpr std::uint32_t kDlabVersion = 1;
inline constexpr std::uint32_t kDlabHeaderSize = 64;
inline constexpr std::uint32_t kDlabSectionEntrySize = 32;
inline constexpr std::uint32_t kMaxSections = 16;
inline constexpr int kMaxTensorRank = 8;
inline constexpr std::size_t kMaxNameLength = 255;
/// Largest DRAM a program may ask for, and largest file the reader accepts: bounds every
/// allocation made on behalf of a file.
inline constexpr std::uint64_t kMaxDramBytes = std::uint64_t{4} << 30;
inline constexpr std::uint64_t kMaxFileBytes = std::uint64_t{2} << 30;

enum class SectionKind : std::uint32_t { kInstructions = 1, kConstants = 2, kTensors = 3, kDebug = 4, kConfig = 5 };
std::string section_kind_name(SectionKind k);

enum class TensorRole : std::uint8_t { kInput = 0, kOutput = 1, kIntermediate = 2 };
std::string_view tensor_role_name(TensorRole r);

/// How a tensor's elements lie in DRAM. kRowMajor: row-major in the order of `shape`.
/// kNHWC: `shape` is (N, C, H, W) as PyTorch sees it, DRAM holds N, H, W, C.
enum class Layout : std::uint8_t { kRowMajor = 0, kNHWC = 1 };
std::string_view layout_name(Layout l);

struct TensorDesc {
  std::string name;
  TensorRole role = TensorRole::kInput;
  DType dtype = DType::I8;
  int frac = 0;  ///< real = q * 2^-frac, -128..127
  Layout layout = Layout::kRowMajor;
  std::vector<std::uint64_t> shape;
  std::uint64_t dram_offset = 0;

  std::uint64_t num_elements() const;
  std::uint64_t byte_size() const { return storage_bytes(dtype, num_elements()); }
  bool operator==(const TensorDesc& o) const;
};

struct DebugRecord {
  std::string layer;  ///< the source layer's name; equal to output.name
  std::uint32_t insn_begin = 0;
  std::uint32_t insn_end = 0;  ///< one past the layer's last instruction
  TensorDesc output;
  bool operator==(const DebugRecord& o) const;
};

/// Where a section lay in the file it was read from (for `dla disasm`).
struct SectionInfo {
  SectionKind kind;
  std::uint32_t items;
  std::uint64_t offset;
  std::uint64_t size;
  std::uint32_t crc32;
};

struct Program {
  std::uint64_t hw_config_hash = 0;
  std::uint64_t dram_size = 0;
  std::vector<isa::Instruction> instructions;
  std::vector<std::uint8_t> constants;
  std::vector<TensorDesc> tensors;
  std::vector<DebugRecord> debug;
  std::optional<HwConfig> hw_config;  ///< the CONFIG section, when the file has one
  std::vector<SectionInfo> sections;  ///< filled by the reader; ignored by the writer

  const TensorDesc* find_tensor(const std::string& name) const;
};

struct ReadOptions {
  /// When set, a program compiled for another hardware config is refused.
  std::optional<std::uint64_t> expected_config_hash;
  /// Checksums on; the fuzzer turns them off to reach the structural checks behind them.
  bool verify_checksums = true;
};

/// Parses a program from memory. Throws FormatError (what is wrong, at which offset) for
/// any malformed input; never reads outside [data, data + size) and allocates at most a
/// small multiple of `size`.
Program parse_program(const std::uint8_t* data, std::size_t size, const ReadOptions& options = {});
Program read_program_file(const std::string& path, const ReadOptions& options = {});

/// Serializes a program. Throws Error if it is not valid (the same rules as the reader).
std::vector<std::uint8_t> serialize_program(const Program& program);
void write_program_file(const std::string& path, const Program& program);

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as used in the file.
std::uint32_t crc32(const std::uint8_t* data, std::size_t size);

/// Human-readable listing: header, sections, tensors, debug records and one decoded
/// instruction per line (`dla disasm`).
std::string describe_program(const Program& program);

/// Builds programs in memory (tests, the compiler). Constants are added first and lie
/// from DRAM address 0; tensors are allocated after them.
class ProgramBuilder {
 public:
  explicit ProgramBuilder(std::uint64_t hw_config_hash) { program_.hw_config_hash = hw_config_hash; }
  /// Embeds the config (CONFIG section) and its hash.
  explicit ProgramBuilder(const HwConfig& config) : ProgramBuilder(config.identity_hash()) {
    program_.hw_config = config;
  }

  /// Appends constant bytes; returns their DRAM address. Not allowed after allocate().
  std::uint64_t add_constant(const std::vector<std::uint8_t>& bytes, std::uint64_t alignment = 16);
  /// Reserves DRAM for a tensor; returns its address.
  std::uint64_t allocate(std::uint64_t bytes, std::uint64_t alignment = 64);
  /// Allocates DRAM for `desc` (ignoring its dram_offset), records it as an IO tensor and
  /// returns the completed descriptor.
  TensorDesc add_tensor(TensorDesc desc);
  /// Records an IO tensor whose DRAM range is already allocated (an alias).
  void add_tensor_at(TensorDesc desc) { program_.tensors.push_back(std::move(desc)); }
  /// Appends an instruction; returns its index.
  std::uint32_t add(const isa::Instruction& insn);
  void add_debug(DebugRecord record) { program_.debug.push_back(std::move(record)); }
  std::uint32_t instruction_count() const {
    return static_cast<std::uint32_t>(program_.instructions.size());
  }

  /// The finished program; dram_size covers the constants and every allocation.
  Program build() const;

 private:
  Program program_;
  std::uint64_t dram_top_ = 0;
  bool allocated_ = false;
};

}  // namespace dla

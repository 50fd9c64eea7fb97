// dla/semantics.hpp — what every instruction does to the machine: one semantic body per
// instruction, shared by every engine.
//
// The functional emulator calls these functions in its scheduler; the SystemC cycle model
// calls the same functions: describe() gives what an instruction will touch (regions,
// bytes moved, MACs) for its timing, and perform() moves the data when the timing says
// the instruction executes. execute() is describe() + perform().
// Timing code never re-implements data movement or arithmetic: every integer comes from
// dla/numerics.hpp through the bodies in sim/engines/src/semantics.cpp.
//
// Rules the bodies enforce (each breach is an ExecutionError naming the instruction
// index, its mnemonic and the rule):
//   * every field within its range in the ISA table (programs built in memory are not
//     range-checked by the encoder);
//   * every access inside its buffer (capacities from the hardware config) or inside the
//     program's DRAM;
//   * MAC: the precision mode supported by the config, A16W8 activations signed,
//     depthwise only with in_c == out_c, kernel sides <= max_kernel;
//   * LOAD into ACC: row_bytes a multiple of 4;
//   * VADD: record shifts shift_a, shift_b in [0, 31] (numerics.hpp: eltwise_add);
//   * VAVGPOOL: the multiplier M = round(2^S / N) fits in 16 bits;
//   * VMAXPOOL: kernel sides <= max_kernel;
//   * VCOPY: source and destination do not overlap;
//   * VLUT: every element read before any is written, so in place (in_addr == out_addr)
//     is well defined; a table entry outside out_type is clamped and counted as a
//     saturation;
//   * REQUANT, VADD, VAVGPOOL (when performed): the parameter record's clips leave a
//     non-empty output range, max(T.min, clip_lo) <= min(T.max, clip_hi).
// Choices where isa.hpp is silent (a hardware engineer's reading, written down here):
//   * Every instruction reads all its operands before it writes any result (the units
//     buffer a tile), so in-place VADD / REQUANT-style overlaps are well defined.
//   * An operand's region is the whole tile the instruction names (for MAC the full
//     [in_h][in_w][in_c] activation tile even where a stride skips elements); a 4-bit
//     operand covers ceil(elements / 2) bytes and a 4-bit result with an odd element
//     count leaves the high nibble of its last byte unchanged.
//   * LOAD with dram_stride 0 reads its DRAM row once per row it writes (counted in
//     dram_read_bytes each time); LOAD with fill_zero reads no DRAM.
//   * ACC words hold the exact sum. MAC accumulates in int64 and saturates at the int64
//     range (unreachable: it would take ~2^21 accumulating MACs into one word); REQUANT
//     applies acc_bits and the overflow policy via dla::finalize_acc when it reads ACC.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "dla/device.hpp"
#include "dla/hw_config.hpp"
#include "dla/isa.hpp"

namespace dla::sim {

/// Storage an instruction touches: the four SRAM buffers (same numbering as
/// isa::Buffer) and DRAM.
enum class Space : std::uint8_t { kAct = 0, kWgt = 1, kAcc = 2, kParam = 3, kDram = 4 };
inline constexpr int kNumSpaces = 5;

/// "ACT", "WGT", "ACC", "PARAM", "DRAM".
std::string_view space_name(Space s);
constexpr Space space_of(isa::Buffer b) { return static_cast<Space>(b); }

/// A 2D strided block: `rows` rows of `row_len` units, row r starting at base + r * stride.
/// Units are bytes, except in ACC where they are accumulator words. stride 0 repeats one
/// row; stride < row_len makes rows overlap (later rows win when written).
struct Region {
  Space space = Space::kAct;
  std::uint64_t base = 0;
  std::uint64_t row_len = 0;
  std::uint64_t rows = 1;
  std::uint64_t stride = 0;

  /// One past the last unit touched.
  std::uint64_t end() const { return base + (rows - 1) * stride + row_len; }
  /// Units transferred (a repeated row counts each time).
  std::uint64_t units() const { return rows * row_len; }
};

enum class AccessKind : std::uint8_t { kRead = 0, kWrite = 1 };

struct Access {
  Region region;
  AccessKind kind = AccessKind::kRead;
};

/// What one instruction touches and counts. describe() fills everything but the
/// data-dependent counters; execute() fills those too.
struct Effects {
  static constexpr std::size_t kMaxAccesses = 4;
  std::array<Access, kMaxAccesses> accesses{};  ///< reads first, then writes, in the order performed
  std::size_t num_accesses = 0;

  std::uint64_t macs = 0;              ///< multiply-accumulates (MAC)
  std::uint64_t elements = 0;          ///< values produced by the requantizer or vector unit
  std::uint64_t dram_read_bytes = 0;   ///< LOAD
  std::uint64_t dram_write_bytes = 0;  ///< STORE
  std::uint64_t acc_overflows = 0;     ///< execute only: REQUANT reads whose exact value left acc_bits
  std::uint64_t saturations = 0;       ///< execute only: outputs a requantizing clamp changed

  const Access* begin() const { return accesses.data(); }
  const Access* end() const { return accesses.data() + num_accesses; }
  void add(Space space, AccessKind kind, std::uint64_t base, std::uint64_t row_len, std::uint64_t rows = 1,
           std::uint64_t stride = 0) {
    accesses[num_accesses++] = Access{Region{space, base, row_len, rows, stride}, kind};
  }
};

/// The allocator of DRAM: zeroed memory from calloc, whose pages a large block gets from
/// the OS only when first written, and value-initialized bytes left alone (calloc zeroed
/// them), so DRAM that a program never touches costs no memory (a header claiming
/// gigabytes does not take them). Only for memory sized once and never shrunk and grown
/// again in place (a growth in place would reveal old bytes instead of zeros): DRAM.
template <class T>
struct ZeroPageAllocator {
  using value_type = T;
  ZeroPageAllocator() = default;
  template <class U>
  ZeroPageAllocator(const ZeroPageAllocator<U>& /*other*/) noexcept {}
  T* allocate(std::size_t n) {
    void* p = std::calloc(n, sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t /*n*/) noexcept { std::free(p); }
  template <class U>
  void construct(U* /*p*/) noexcept {}
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  friend bool operator==(const ZeroPageAllocator& /*a*/, const ZeroPageAllocator& /*b*/) { return true; }
  friend bool operator!=(const ZeroPageAllocator& /*a*/, const ZeroPageAllocator& /*b*/) { return false; }
};
using DramBytes = std::vector<std::uint8_t, ZeroPageAllocator<std::uint8_t>>;

/// The machine's data: DRAM (the program's dram_size bytes, constants at 0) and the four
/// SRAM buffers sized by the hardware config. ACC words hold exact sums (int64).
struct MachineState {
  MachineState() = default;
  MachineState(const HwConfig& hw, std::uint64_t dram_bytes);

  HwConfig config;
  DramBytes dram;  ///< lazily backed: see ZeroPageAllocator
  std::vector<std::uint8_t> act;
  std::vector<std::uint8_t> wgt;
  std::vector<std::uint8_t> param;
  std::vector<std::int64_t> acc;
  /// Another machine's DRAM, used instead of `dram` when set: SRAM of its own over a DRAM
  /// shared with others (the emulator's threads each have their own SRAM, replay.hpp).
  DramBytes* shared_dram = nullptr;

  /// The DRAM this machine reads and writes.
  DramBytes& dram_bytes() { return shared_dram != nullptr ? *shared_dram : dram; }
  const DramBytes& dram_bytes() const { return shared_dram != nullptr ? *shared_dram : dram; }

  /// Units (bytes; words for ACC) of a space.
  std::uint64_t capacity(Space s) const;
  /// Zeroes every buffer and DRAM.
  void clear();
};

namespace detail {
class WeightCache;
}

/// How execute() may use the host: MAC instructions of at least `parallel_min_macs`
/// multiply-accumulates hand their output rows out to `threads` threads (this one and
/// threads - 1 helpers started for the instruction). Results never depend on these
/// settings. Rows are handed out dynamically, so a helper that starts late only takes
/// what is left; on the 2-vCPU development VM a new thread often starts 1-2 ms after it
/// is created (an idle vCPU wakes slowly), hence the threshold of 16 Mi MACs (~0.6 ms of
/// single-thread work at ~25 GMAC/s).
struct ExecOptions {
  unsigned threads = 2;
  std::uint64_t parallel_min_macs = std::uint64_t{1} << 24;
  /// The emulator's memory of its WGT SRAM (private; null: none): lets a LOAD of weights
  /// that are already in place and the packing of weights a MAC packed before be skipped.
  detail::WeightCache* weights = nullptr;
};

/// Checks what can be checked without a machine: every field inside its ISA-table range
/// and token flags that the instruction's queue has (LOAD has no previous queue, STORE no
/// next one, SYNC and END carry none). Throws ExecutionError with the encoder's wording.
void check_instruction(const isa::Instruction& insn, std::uint32_t index);

/// Checks the instruction against the rules above and returns what it would touch,
/// without reading or writing data. Throws ExecutionError.
Effects describe(const isa::Instruction& insn, const MachineState& m, std::uint32_t index);

/// Whether the instruction's result ends in the middle of a byte (a 4-bit result of odd
/// length), so that the byte's other half keeps what was there: the last byte it writes
/// depends on that byte's earlier value.
bool keeps_half_of_last_byte(const isa::Instruction& insn);

/// Executes the instruction on `m` and returns its effects (as describe() plus the
/// data-dependent counters): perform(insn, m, index, describe(insn, m, index)). Throws
/// ExecutionError (before touching any data) when a rule is broken. SYNC and END do
/// nothing here: waiting is the scheduler's business.
Effects execute(const isa::Instruction& insn, MachineState& m, std::uint32_t index, const ExecOptions& options = {});

/// The data half of execute(), for engines that describe() an instruction first (to
/// check or time its accesses) and execute it later: `fx` must be what describe()
/// returned for this instruction on this machine configuration; the rules describe()
/// checks are not checked again (data-dependent ones, such as a parameter record's clip
/// range, are).
Effects perform(const isa::Instruction& insn, MachineState& m, std::uint32_t index, const Effects& fx,
                const ExecOptions& options = {});

// One describe/perform body per instruction of the ISA table (dla/isa.hpp); the variant
// overloads above dispatch to these.
#define DLA_SIM_DECLARE_SEMANTICS(Name, ...)                                              \
  Effects describe(const isa::Name& insn, const MachineState& m, std::uint32_t index); \
  Effects perform(const isa::Name& insn, MachineState& m, std::uint32_t index, Effects fx, const ExecOptions& options);
DLA_ISA_TABLE(DLA_SIM_DECLARE_SEMANTICS)
#undef DLA_SIM_DECLARE_SEMANTICS

}  // namespace dla::sim

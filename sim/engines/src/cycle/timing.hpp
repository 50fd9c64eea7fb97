// Private: the cycle model's timing formulas (dla/cycle.hpp states them) and its DRAM bus,
// plain C++ without SystemC so that they can be tested on their own.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "dla/hw_config.hpp"
#include "dla/isa.hpp"

namespace dla::sim::cycle {

constexpr std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

/// Cycles of a MAC instruction on the array, mac_pipeline_depth included.
std::uint64_t mac_cycles(const isa::Mac& insn, const HwConfig& hw);
/// Cycles the array would need for `macs` multiply-accumulates in the instruction's mode at
/// its peak (mac_rows * mac_cols * speedup a cycle; a16w8_passes cycles per pass).
double mac_ideal_cycles(const isa::Mac& insn, std::uint64_t macs, const HwConfig& hw);
/// Cycles of a REQUANT instruction.
std::uint64_t requant_cycles(const isa::Requant& insn, const HwConfig& hw);
/// Cycles of a vector instruction (VADD, VMAXPOOL, VAVGPOOL, VUPSAMPLE, VCOPY, VLUT); 0
/// for any other instruction.
std::uint64_t vector_cycles(const isa::Instruction& insn, const HwConfig& hw);

/// A contiguous run of `type` elements in ACT from byte `base` that a unit reads or
/// writes, `group` elements a beat.
struct ActRun {
  std::uint64_t base;
  DType type;
};
/// Clocks beyond one a beat when every beat of `group` elements (n in all) moves its
/// elements of each run as one access of the ACT SRAM (the runs on their own ports, in
/// parallel): the sum over beats of the slowest access's sram_access_clocks minus one; 0
/// where every access fits one clock.
std::uint64_t group_stalls(const std::vector<ActRun>& runs, std::uint64_t n, std::uint64_t group, const HwConfig& hw);

/// dram_burst_bytes-aligned bursts a 2D DRAM block touches: one contiguous range when
/// stride == row_bytes, else every row on its own (a repeated row, stride 0, each time).
std::uint64_t dram_bursts(std::uint64_t addr, std::uint64_t row_bytes, std::uint64_t rows, std::uint64_t stride,
                          std::uint64_t burst_bytes);
/// Clocks of the SRAM port a LOAD or STORE moves its rows through (HwConfig::
/// sram_access_clocks per row; ACC rows are 4-byte words, HwConfig::acc_access_clocks). A LOAD with fill_zero takes
/// these clocks alone; a DRAM transfer ends no earlier than its data's first beat plus them.
std::uint64_t sram_port_cycles(const isa::Load& insn, const HwConfig& hw);
std::uint64_t sram_port_cycles(const isa::Store& insn, const HwConfig& hw);

/// The DRAM data bus shared by the read (load) and write (store) DMA channels, at most one
/// transfer per channel. A transfer's data phase starts at its arrival cycle; the bus moves
/// bytes_per_cycle bytes a cycle, split equally between the channels that transfer in that
/// cycle, and a channel that finishes mid-cycle leaves the rest of the cycle to the other
/// (work conserving). A transfer completes at the end of the cycle that moves its last byte.
/// Times are absolute cycles; calls must come in non-decreasing `now`.
class DramBus {
 public:
  static constexpr int kChannels = 2;
  static constexpr std::uint64_t kNever = UINT64_MAX;

  explicit DramBus(std::uint64_t bytes_per_cycle) : bpc_(bytes_per_cycle) {}

  /// Registers channel `ch`'s transfer of `bytes` (> 0) whose data phase begins at
  /// `arrival` >= now. The channel must be free.
  void start(int ch, std::uint64_t now, std::uint64_t arrival, std::uint64_t bytes);
  /// The cycle at which channel `ch`'s transfer completes if nothing else is registered.
  std::uint64_t projected_completion(int ch) const { return projected_[static_cast<std::size_t>(ch)]; }
  /// Advances the bus to `now`; true when channel `ch`'s transfer has completed.
  bool done(int ch, std::uint64_t now);
  /// Frees channel `ch` (after done()).
  void finish(int ch);
  bool busy_channel(int ch) const { return chan_[static_cast<std::size_t>(ch)].active; }
  /// Cycles in which the bus moved data, up to the last advance.
  std::uint64_t busy_cycles() const { return state_.busy; }

 private:
  struct Channel {
    bool active = false;
    std::uint64_t arrival = 0;
    std::uint64_t remaining = 0;  ///< in half bytes (so that two channels share exactly)
    std::uint64_t completed = kNever;
  };
  struct State {
    std::uint64_t t = 0;
    std::uint64_t busy = 0;
  };
  /// Runs the bus from state.t to `until` (kNever: until every transfer completed).
  void simulate(State& s, std::array<Channel, kChannels>& ch, std::uint64_t until) const;
  void advance(std::uint64_t now);
  void project();

  std::uint64_t bpc_;
  State state_;
  std::array<Channel, kChannels> chan_{};
  std::array<std::uint64_t, kChannels> projected_{kNever, kNever};
};

}  // namespace dla::sim::cycle

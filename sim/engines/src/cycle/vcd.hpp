// Private: the cycle model's VCD trace (dla/cycle.hpp, TraceOptions). Plain C++.
//
// Signals are value changes the model records at instruction granularity (a unit's state,
// the instruction it works on, DRAM channel activity), possibly ahead of simulated time
// (a DMA's data phase is known when the transfer starts). The recorder keeps only what
// falls into the window: a cycle range given up front, or a layer's span, opened and
// closed by the model while it runs; changes before the window become the initial values
// ($dumpvars at the window's first cycle). The file is written, sorted by time, at the end.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace dla::sim::cycle {

enum class Sig : std::uint8_t {
  kFetchState = 0,
  kFetchPc,
  kLoadState,
  kLoadInsn,
  kComputeState,
  kComputeInsn,
  kStoreState,
  kStoreInsn,
  kMacBusy,
  kRequantBusy,
  kVectorBusy,
  kDramRead,
  kDramWrite,
};
inline constexpr int kNumSigs = 13;

/// Values of the *_state signals.
enum class UnitState : std::uint32_t {
  kIdle = 0,         ///< queue empty (fetch: finished)
  kBusy = 1,         ///< executing (fetch: decoding)
  kWaitToken = 2,    ///< waiting to pop a token (fetch: target queue full)
  kWaitFifo = 3,     ///< waiting to push a token (fetch: SYNC/END waiting for the queues)
  kDramLatency = 4,  ///< DMA waiting for DRAM's first beat
  kDramTransfer = 5, ///< DMA moving data on the DRAM bus
};
/// Value of the *_insn and fetch_pc signals meaning "none" (written as x).
inline constexpr std::uint32_t kNoInsn = 0xFFFFFFFFu;

class VcdRecorder {
 public:
  /// `begin`/`end`: the cycle window [begin, end); with `by_layer` the window is opened and
  /// closed by open()/close() instead. `period_ps`: one cycle in picoseconds.
  VcdRecorder(std::string path, std::uint64_t begin, std::uint64_t end, bool by_layer, std::uint64_t period_ps,
              std::int64_t clock_mhz);

  /// Records that `sig` takes `value` at cycle `at` (>= now, the current cycle).
  void set(std::uint64_t now, std::uint64_t at, Sig sig, std::uint32_t value);
  /// Layer windows: the layer's first instruction started / its last one completed.
  void open(std::uint64_t at);
  void close(std::uint64_t at);
  bool opened() const { return opened_; }

  /// Writes the file (the run ended at cycle `end_cycle`). Throws dla::Error when the file
  /// cannot be written.
  void write(std::uint64_t end_cycle) const;

 private:
  struct Event {
    std::uint64_t at;
    std::uint32_t value;
    Sig sig;
  };
  void fold(const Event& e);

  std::string path_;
  std::uint64_t begin_;
  std::uint64_t end_;
  bool by_layer_;
  bool opened_ = false;
  bool closed_ = false;
  std::uint64_t period_ps_;
  std::int64_t clock_mhz_;
  std::vector<Event> events_;   ///< inside the window (or not yet decided)
  std::array<std::uint32_t, kNumSigs> initial_{};
  std::array<std::uint64_t, kNumSigs> initial_at_{};
};

}  // namespace dla::sim::cycle

// Private: the emulator's runs of a program after its first. The scheduler's order, every
// access's bounds and the race detector's verdict depend on the program and the hardware
// config only, never on data; so the first run schedules and checks while it executes and
// records the order it took (ScheduledInsn), and later runs perform that order again.
// On several threads a ReplayPlan splits the recorded order between them, and each thread
// has SRAM of its own (its lane) over the one DRAM: the instructions that pass data to
// each other through SRAM (a tile's DMA, MACs, requantization and store) form a chain
// that stays on one thread, so that every SRAM byte an instruction reads was written on
// its own lane by the instruction that wrote it last in recorded order (or is one of the
// zeros every run starts with, which the plan lists per thread). Chains are dealt to the
// thread with the least work so far; two double-buffered tiles or two accumulator tiles
// that reuse the same SRAM addresses then run at once on two lanes, which one SRAM would
// serialize. Each thread performs its steps in recorded order, and before a step waits
// until the other threads have finished every earlier step whose DRAM accesses conflict
// with its own (the same bytes, at least one writing). Any such execution leaves the
// DRAM bytes of the recorded order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dla/semantics.hpp"

namespace dla::sim::detail {

/// Whether two regions of one space share a unit: exact when both regions' rows are the
/// same stride apart (or either is a single row), else by their bounding ranges (which may
/// say yes for interleaved rows that never meet; that only costs parallelism).
bool regions_overlap(const Region& a, const Region& b);

/// One instruction the scheduler ran: its index and what describe() said it touches.
struct ScheduledInsn {
  std::uint32_t insn = 0;
  Effects fx;
  /// keeps_half_of_last_byte(): the last byte of each row it writes also depends on the
  /// byte's earlier value.
  bool keeps_half_of_last_byte = false;
};

/// A recorded order split between threads.
struct ReplayPlan {
  /// Until `thread` has finished `done` of its steps.
  struct Wait {
    std::uint32_t thread = 0;
    std::uint32_t done = 0;
  };
  struct Step {
    std::uint32_t order = 0;  ///< position in the recorded order
    std::uint32_t waits_begin = 0, waits_end = 0;  ///< in `waits`
  };
  std::vector<std::vector<Step>> threads;  ///< each thread's steps, in recorded order
  std::vector<Wait> waits;
  /// Per thread: SRAM units (rows of one) that its steps read before any step of the
  /// order writes them, which must hold the zeros of a run's start on its lane.
  std::vector<std::vector<Region>> zero_first;
};

/// Splits `order` between `threads` threads (>= 1), each with its own SRAM.
ReplayPlan make_plan(const std::vector<ScheduledInsn>& order, unsigned threads);

/// Whether no instruction of `order` writes DRAM bytes that a LOAD into WGT reads. Lanes
/// need it: each lane's weight cache (weight_cache.hpp) sees only its own lane's writes,
/// and would keep weights whose DRAM source another lane has overwritten.
bool weight_sources_unwritten(const std::vector<ScheduledInsn>& order);

/// Performs plans: thread 0's steps on the calling thread, the others' on helper threads
/// that are started the first time and kept (they poll briefly after a run, then sleep).
class Replayer {
 public:
  /// Performs one instruction on the lane of `thread`; may throw.
  using Body = void (*)(void* ctx, const ScheduledInsn& insn, std::uint32_t thread);

  Replayer() = default;
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;
  ~Replayer();

  /// Performs every step of `plan` and returns the exception of the first instruction, in
  /// recorded order, that threw (null if none). Once one has thrown, the steps after it
  /// in recorded order are not started; steps that do not depend on it may have run.
  std::exception_ptr run(const ReplayPlan& plan, const std::vector<ScheduledInsn>& order, Body body, void* ctx);

 private:
  struct alignas(64) Progress {
    std::atomic<std::uint32_t> done{0};
  };
  void perform_steps(std::uint32_t thread);
  /// A helper's life: performs `thread`'s steps of every run published after `seen`.
  void helper_loop(std::uint32_t thread, std::uint64_t seen);

  // The running job, set before its generation is published.
  const ReplayPlan* plan_ = nullptr;
  const std::vector<ScheduledInsn>* order_ = nullptr;
  Body body_ = nullptr;
  void* ctx_ = nullptr;
  std::unique_ptr<Progress[]> progress_;
  std::size_t progress_size_ = 0;
  std::atomic<std::uint32_t> failed_order_{UINT32_MAX};
  std::mutex failure_mutex_;
  std::exception_ptr failure_;

  std::vector<std::thread> helpers_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint32_t> finished_{0};  ///< helpers done with the current job
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint32_t> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace dla::sim::detail

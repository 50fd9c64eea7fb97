// The queue and token bookkeeping both engines share (isa.hpp, "Queues and dependency
// tokens"): which FIFO an instruction pops and pushes, the names used in messages, and
// the deadlock message, so that the emulator and the cycle model explain a stuck program
// in the same words.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "dla/isa.hpp"
#include "race_detector.hpp"

namespace dla::sim::detail {

/// Token FIFOs between adjacent queues, one per direction.
enum Fifo : int { kLoadToCompute = 0, kComputeToLoad = 1, kComputeToStore = 2, kStoreToCompute = 3 };
constexpr int kNumFifos = 4;

constexpr int fifo_between(int from, int to) {
  return from == 0 ? kLoadToCompute : from == 2 ? kStoreToCompute : (to == 0 ? kComputeToLoad : kComputeToStore);
}
constexpr int fifo_source(int f) { return f == kLoadToCompute ? 0 : f == kStoreToCompute ? 2 : 1; }
constexpr int fifo_target(int f) { return f == kComputeToLoad ? 0 : f == kComputeToStore ? 2 : 1; }

/// A token carries the pusher's vector clock (for the race detector).
struct Token {
  Clock clock;
  std::uint32_t pusher;
};

/// The FIFOs an instruction on queue q pops from (pops) and pushes to (pushes); -1 = none.
struct TokenUse {
  std::array<int, 2> pops{-1, -1};
  std::array<int, 2> pushes{-1, -1};
};
TokenUse token_use(const isa::Tokens& t, int q);

/// Counters of one instruction, as they go into RunStats / LayerStats.
struct Counters {
  std::uint64_t macs = 0, overflows = 0, saturations = 0, dram_read = 0, dram_write = 0;
};

/// "instruction 12 (MAC)".
std::string insn_name(const std::vector<isa::Instruction>& prog, std::uint32_t i);
/// "load queue".
std::string queue_text(int q);

/// A scheduler in which nothing can move.
struct StuckScheduler {
  const std::vector<isa::Instruction>* insns = nullptr;
  std::array<const std::deque<std::uint32_t>*, kQueues> queues{};  ///< each queue's instructions, head first
  std::array<bool, kNumFifos> fifo_empty{};
  /// Per queue: the FIFOs its head has executed and still waits to push to (-1: none).
  const std::array<std::array<int, 2>, kQueues>* pending = nullptr;
  std::uint32_t next = 0;  ///< the next instruction to dispatch
  std::int64_t queue_depth = 0, token_depth = 0;
};

/// "deadlock: " and, for every blocked instruction, why; *first gets the lowest index.
std::string deadlock_message(const StuckScheduler& s, std::uint32_t* first);

}  // namespace dla::sim::detail

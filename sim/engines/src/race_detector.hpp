// Private: data-race detection with vector clocks for the emulator's scheduler.
//
// Each queue (load, compute, store) has a vector clock; its own component counts the
// instructions it has executed (events, from 1). A token carries the pusher's clock and
// the popper merges it (element-wise max); SYNC and END merge every clock into every
// queue. An access is stamped (event << 2 | queue). Shadow state keeps, per SRAM byte
// (word for ACC) and per DRAM byte, the stamp of the last writer and, per queue, of the
// last reader. An access by queue q is ordered after a stamp (p, e) when p == q (program
// order) or e <= clock_q[p]; a read must be ordered after the last write (RAW), a write
// after the last write (WAW) and after every queue's last read (WAR). Anything else is
// a race: the program's integers would depend on timing.
//
// Keeping only the last reader per queue and never clearing readers on a write is exact:
// an older read is ordered before the newer read of its queue, and a write that passed
// the WAR check is ordered after the reads it replaced.
//
// Cost: accesses are large contiguous tiles, so the shadow is kept per superblock of 4096
// units and per block of 64 units, with one stamp for a (super)block whose units all share
// it (the common case: a range wholly written by one DMA or one instruction); per-unit
// stamps exist only for blocks that were partly overwritten. Checking and recording a
// tile costs one step per superblock it covers, plus vectorized passes over the blocks of
// the superblocks it covers in part.
//
// Each superblock also keeps, per queue, the latest event that stamped any of its units
// (events of a queue only grow, so no stamp there is later). An access whose clock has
// seen those events cannot race with anything in the superblock, which is then skipped
// without looking at its stamps: with double buffering most of a tile was last touched
// by instructions the accessor already waited for. A strided region whose whole span is
// proven ordered this way is only recorded, row by row, not checked row by row.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "dla/isa.hpp"
#include "dla/semantics.hpp"

namespace dla::sim::detail {

inline constexpr int kQueues = 3;
using Clock = std::array<std::uint32_t, kQueues>;
/// (event << 2) | queue; 0 means "host data, before the run" (ordered before everything).
using Stamp = std::uint32_t;
inline constexpr std::uint32_t kMaxEvent = (std::uint32_t{1} << 30) - 1;

constexpr Stamp make_stamp(int queue, std::uint32_t event) {
  return (event << 2) | static_cast<std::uint32_t>(queue);
}

/// Which accesses a check looks for: stamps whose queue is not the accessor's and whose
/// event is later than the accessor's clock says it has seen.
struct Unordered {
  std::array<std::uint32_t, 3> seen;  ///< per queue; UINT32_MAX for the accessor's own queue
  bool operator()(Stamp x) const {
    const std::uint32_t q = x & 3u;
    return q < 3 && (x >> 2) > seen[q];
  }
  /// Whether no stamp with events at most `hi` (per queue) can be unordered.
  bool covers(const std::array<std::uint32_t, 3>& hi) const {
    return hi[0] <= seen[0] && hi[1] <= seen[1] && hi[2] <= seen[2];
  }
  /// Whether any of n stamps is unordered (one branch-free pass that vectorizes).
  bool any(const Stamp* s, std::uint64_t n) const;
};

/// The stamps of `size` units, on three levels: one per superblock of kSuper units while
/// all its units share it; else one per block of kBlock units while all units of the
/// block share it; else per unit. All stamps start at 0.
class StampArray {
 public:
  static constexpr std::uint64_t kBlockBits = 6;
  static constexpr std::uint64_t kBlock = std::uint64_t{1} << kBlockBits;
  static constexpr std::uint64_t kSuperBits = 12;
  static constexpr std::uint64_t kSuper = std::uint64_t{1} << kSuperBits;

  void resize(std::uint64_t size);
  std::uint64_t size() const { return size_; }
  /// Every stamp back to 0.
  void clear();
  Stamp at(std::uint64_t unit) const {
    const std::uint64_t sb = unit >> kSuperBits;
    if (super_uniform_[sb]) return super_[sb];
    const std::uint64_t b = unit >> kBlockBits;
    return uniform_[b] ? block_[b] : units_[unit];
  }
  /// First unit in [begin, end) whose stamp is unordered, or end.
  std::uint64_t find(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const;
  /// Whether every unit in [begin, end) is ordered, judged from the per-superblock
  /// summaries alone: true proves it; false means "look closer" (find).
  bool covered(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const;
  /// Stamps [begin, end) with s.
  void fill(std::uint64_t begin, std::uint64_t end, Stamp s);

 private:
  /// find / fill inside one superblock that is not uniform: whole blocks in vectorized
  /// passes, partial blocks one at a time.
  std::uint64_t find_in_super(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const;
  void fill_in_super(std::uint64_t begin, std::uint64_t end, Stamp s);
  std::uint64_t find_blocks(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const;
  void fill_blocks(std::uint64_t begin, std::uint64_t end, Stamp s);

  std::uint64_t size_ = 0;
  std::vector<Stamp> super_;
  std::vector<std::uint8_t> super_uniform_;
  /// Per superblock and queue: the latest event that stamped any unit of it (0: none).
  std::vector<std::array<std::uint32_t, 3>> hi_;
  /// Valid only in superblocks that are not uniform.
  std::vector<Stamp> block_;
  std::vector<std::uint8_t> uniform_;
  /// Per-unit stamps, allocated (uninitialized: never read before written) on the first
  /// partial write of a block; valid only in blocks that are not uniform.
  std::unique_ptr<Stamp[]> units_;
};

class RaceDetector {
 public:
  /// Sizes the shadow state for `m` and forgets every access. `program` and
  /// `insn_of_event` (instruction index of each queue's event e at [queue][e - 1]) name
  /// the other instruction in messages; both must outlive the detector's use.
  void reset(const MachineState& m, const std::vector<isa::Instruction>* program,
             const std::array<std::vector<std::uint32_t>, kQueues>* insn_of_event);

  /// Checks access `a` by instruction `index` on `queue` (its clock `clock`, its stamp
  /// `self`) and records it. Throws ExecutionError naming both instructions and the range.
  void access(const Access& a, int queue, Stamp self, const Clock& clock, std::uint32_t index);

 private:
  /// The writer's and each queue's last reader's stamps of a run of units.
  struct Shadow {
    StampArray writer;
    std::array<StampArray, kQueues> reader;
    void resize(std::uint64_t units);
    void clear();
  };
  static constexpr std::uint64_t kPageBits = 16;
  static constexpr std::uint64_t kPageSize = std::uint64_t{1} << kPageBits;

  /// The shadow holding `unit` of `space`, and the unit's index in it; nullptr for a DRAM
  /// page never accessed (every stamp 0), unless `create`.
  Shadow* shadow_of(Space space, std::uint64_t unit, std::uint64_t* local, bool create);
  const Shadow* shadow_of(Space space, std::uint64_t unit, std::uint64_t* local) const;
  /// One contiguous run of units [offset, offset + n): checked (unless `check` is false
  /// because covered() proved it ordered) and recorded.
  void run(std::uint64_t offset, std::uint64_t n, Space space, AccessKind kind, int queue, Stamp self,
           const Clock& clock, std::uint32_t index, bool check);
  /// Whether the summaries prove that an access of `kind` by `queue` anywhere in units
  /// [begin, end) of `space` is ordered after everything recorded there.
  bool covered(std::uint64_t begin, std::uint64_t end, Space space, AccessKind kind, int queue, const Clock& clock) const;
  /// The stamp of one unit: of the writer (array -1) or of queue `array`'s last reader.
  Stamp stamp_at(Space space, int array, std::uint64_t unit) const;
  /// Throws the race error for stamp `x` found at unit `begin` (the row ends at row_end).
  [[noreturn]] void report(Stamp x, std::uint64_t begin, std::uint64_t row_end, Space space, int array,
                           AccessKind kind, std::uint32_t index) const;

  std::array<Shadow, 4> sram_;
  std::vector<std::unique_ptr<Shadow>> dram_;  ///< pages of kPageSize bytes, created on first access
  const std::vector<isa::Instruction>* program_ = nullptr;
  const std::array<std::vector<std::uint32_t>, kQueues>* insn_of_event_ = nullptr;
};

}  // namespace dla::sim::detail

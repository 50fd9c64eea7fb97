// Vector-clock race detection over block-compressed shadow stamps (race_detector.hpp).
#include "race_detector.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace dla::sim::detail {

namespace {
constexpr std::uint32_t kSeenAll = std::numeric_limits<std::uint32_t>::max();
}  // namespace

bool Unordered::any(const Stamp* __restrict s, std::uint64_t n) const {
  const std::uint32_t t0 = seen[0], t1 = seen[1], t2 = seen[2];
  std::uint32_t bad = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint32_t x = s[i];
    const std::uint32_t q = x & 3u, ev = x >> 2;
    bad |= ((q == 0) & (ev > t0)) | ((q == 1) & (ev > t1)) | ((q == 2) & (ev > t2));
  }
  return bad != 0;
}

// ---------------------------------------------------------------------------
// StampArray
// ---------------------------------------------------------------------------

void StampArray::resize(std::uint64_t size) {
  size_ = size;
  const auto supers = static_cast<std::size_t>((size + kSuper - 1) >> kSuperBits);
  super_.assign(supers, 0);
  super_uniform_.assign(supers, 1);
  hi_.assign(supers, {0, 0, 0});
  const auto blocks = static_cast<std::size_t>((size + kBlock - 1) >> kBlockBits);
  block_.assign(blocks, 0);
  uniform_.assign(blocks, 1);
  units_.reset();
}

void StampArray::clear() {
  // The block and unit levels are stale under a uniform superblock.
  std::fill(super_.begin(), super_.end(), 0);
  std::fill(super_uniform_.begin(), super_uniform_.end(), std::uint8_t{1});
  std::fill(hi_.begin(), hi_.end(), std::array<std::uint32_t, 3>{0, 0, 0});
}

std::uint64_t StampArray::find(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const {
  for (std::uint64_t u = begin; u < end;) {
    const std::uint64_t sb = u >> kSuperBits;
    const std::uint64_t stop = std::min(end, (sb + 1) << kSuperBits);
    if (bad.covers(hi_[sb])) {
      // Nothing in this superblock is later than what the accessor has seen.
    } else if (super_uniform_[sb]) {
      if (bad(super_[sb])) return u;
    } else {
      const std::uint64_t at = find_in_super(u, stop, bad);
      if (at < stop) return at;
    }
    u = stop;
  }
  return end;
}

bool StampArray::covered(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const {
  for (std::uint64_t sb = begin >> kSuperBits; sb < ((end + kSuper - 1) >> kSuperBits); ++sb) {
    if (!bad.covers(hi_[sb])) return false;
  }
  return true;
}

void StampArray::fill(std::uint64_t begin, std::uint64_t end, Stamp s) {
  for (std::uint64_t u = begin; u < end;) {
    const std::uint64_t sb = u >> kSuperBits;
    const std::uint64_t super_begin = sb << kSuperBits;
    const std::uint64_t super_end = std::min(size_, super_begin + kSuper);
    const std::uint64_t stop = std::min(end, super_end);
    auto& hi = hi_[sb];
    if (u == super_begin && stop == super_end) {
      super_uniform_[sb] = 1;
      super_[sb] = s;
      hi = {0, 0, 0};  // every older stamp of the superblock is gone
      hi[s & 3u] = s >> 2;
    } else if (!super_uniform_[sb] || super_[sb] != s) {
      if (super_uniform_[sb]) {
        // Expand the superblock to uniform blocks before changing part of it.
        const auto b0 = static_cast<std::ptrdiff_t>(super_begin >> kBlockBits);
        const auto b1 = static_cast<std::ptrdiff_t>((super_end + kBlock - 1) >> kBlockBits);
        std::fill(block_.begin() + b0, block_.begin() + b1, super_[sb]);
        std::fill(uniform_.begin() + b0, uniform_.begin() + b1, std::uint8_t{1});
        super_uniform_[sb] = 0;
      }
      fill_in_super(u, stop, s);
      hi[s & 3u] = std::max(hi[s & 3u], s >> 2);
    }
    u = stop;
  }
}

std::uint64_t StampArray::find_in_super(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const {
  // Whole blocks in the middle of the range: one branch-free pass over the uniform flags
  // and one over the block stamps (both vectorize); a block-by-block walk only when
  // some block there is not uniform or some stamp is unordered.
  const std::uint64_t first_full = (begin + kBlock - 1) >> kBlockBits, last_full = end >> kBlockBits;
  if (last_full > first_full + 1) {
    const std::uint64_t n = last_full - first_full;
    std::uint8_t mixed = 0;
    const std::uint8_t* __restrict uni = uniform_.data() + first_full;
    for (std::uint64_t b = 0; b < n; ++b) mixed |= static_cast<std::uint8_t>(uni[b] ^ 1u);
    if (mixed == 0 && !bad.any(block_.data() + first_full, n)) {
      const std::uint64_t head_end = first_full << kBlockBits, tail_begin = last_full << kBlockBits;
      const std::uint64_t head = find_blocks(begin, head_end, bad);
      if (head < head_end) return head;
      const std::uint64_t tail = find_blocks(tail_begin, end, bad);
      return tail < end ? tail : end;
    }
  }
  return find_blocks(begin, end, bad);
}

std::uint64_t StampArray::find_blocks(std::uint64_t begin, std::uint64_t end, const Unordered& bad) const {
  for (std::uint64_t u = begin; u < end;) {
    const std::uint64_t b = u >> kBlockBits;
    const std::uint64_t stop = std::min(end, (b + 1) << kBlockBits);
    if (uniform_[b]) {
      if (bad(block_[b])) return u;
    } else if (bad.any(units_.get() + u, stop - u)) {
      for (std::uint64_t k = u; k < stop; ++k) {
        if (bad(units_[k])) return k;
      }
    }
    u = stop;
  }
  return end;
}

void StampArray::fill_in_super(std::uint64_t begin, std::uint64_t end, Stamp s) {
  // Whole blocks in the middle become uniform with one pass over each array.
  const std::uint64_t first_full = (begin + kBlock - 1) >> kBlockBits, last_full = end >> kBlockBits;
  if (last_full > first_full + 1) {
    fill_blocks(begin, first_full << kBlockBits, s);
    std::fill(block_.begin() + static_cast<std::ptrdiff_t>(first_full), block_.begin() + static_cast<std::ptrdiff_t>(last_full), s);
    std::fill(uniform_.begin() + static_cast<std::ptrdiff_t>(first_full), uniform_.begin() + static_cast<std::ptrdiff_t>(last_full),
              std::uint8_t{1});
    fill_blocks(last_full << kBlockBits, end, s);
    return;
  }
  fill_blocks(begin, end, s);
}

void StampArray::fill_blocks(std::uint64_t begin, std::uint64_t end, Stamp s) {
  for (std::uint64_t u = begin; u < end;) {
    const std::uint64_t b = u >> kBlockBits;
    const std::uint64_t block_begin = b << kBlockBits;
    const std::uint64_t block_end = std::min(size_, block_begin + kBlock);
    const std::uint64_t stop = std::min(end, block_end);
    if (u == block_begin && stop == block_end) {
      uniform_[b] = 1;
      block_[b] = s;
    } else if (!uniform_[b] || block_[b] != s) {
      if (uniform_[b]) {
        // Expand the block to per-unit stamps before changing part of it.
        if (!units_) units_.reset(new Stamp[static_cast<std::size_t>(size_)]);
        std::fill(units_.get() + block_begin, units_.get() + block_end, block_[b]);
        uniform_[b] = 0;
      }
      std::fill(units_.get() + u, units_.get() + stop, s);
    }
    u = stop;
  }
}

// ---------------------------------------------------------------------------
// RaceDetector
// ---------------------------------------------------------------------------

void RaceDetector::Shadow::resize(std::uint64_t units) {
  writer.resize(units);
  for (auto& r : reader) r.resize(units);
}

void RaceDetector::Shadow::clear() {
  writer.clear();
  for (auto& r : reader) r.clear();
}

void RaceDetector::reset(const MachineState& m, const std::vector<isa::Instruction>* program,
                         const std::array<std::vector<std::uint32_t>, kQueues>* insn_of_event) {
  program_ = program;
  insn_of_event_ = insn_of_event;
  // The shadow stays allocated from run to run of the same machine.
  for (std::size_t s = 0; s < sram_.size(); ++s) {
    const std::uint64_t cap = m.capacity(static_cast<Space>(s));
    if (sram_[s].writer.size() != cap) {
      sram_[s].resize(cap);
    } else {
      sram_[s].clear();
    }
  }
  const auto pages = static_cast<std::size_t>((m.dram.size() + kPageSize - 1) >> kPageBits);
  if (dram_.size() != pages) {
    dram_.clear();
    dram_.resize(pages);
  } else {
    for (auto& p : dram_) {
      if (p) p->clear();
    }
  }
}

RaceDetector::Shadow* RaceDetector::shadow_of(Space space, std::uint64_t unit, std::uint64_t* local, bool create) {
  if (space != Space::kDram) {
    *local = unit;
    return &sram_[static_cast<std::size_t>(space)];
  }
  *local = unit & (kPageSize - 1);
  std::unique_ptr<Shadow>& page = dram_[static_cast<std::size_t>(unit >> kPageBits)];
  if (!page && create) {
    page = std::make_unique<Shadow>();
    page->resize(kPageSize);
  }
  return page.get();
}

const RaceDetector::Shadow* RaceDetector::shadow_of(Space space, std::uint64_t unit, std::uint64_t* local) const {
  if (space != Space::kDram) {
    *local = unit;
    return &sram_[static_cast<std::size_t>(space)];
  }
  *local = unit & (kPageSize - 1);
  return dram_[static_cast<std::size_t>(unit >> kPageBits)].get();
}

void RaceDetector::access(const Access& a, int queue, Stamp self, const Clock& clock, std::uint32_t index) {
  const Region& r = a.region;
  if (r.rows == 1 || r.stride == 0) {
    run(r.base, r.row_len, r.space, a.kind, queue, self, clock, index, true);
    return;
  }
  if (r.stride == r.row_len) {
    run(r.base, r.row_len * r.rows, r.space, a.kind, queue, self, clock, index, true);
    return;
  }
  // Rows apart: when the summaries prove the whole span ordered, the rows are only
  // recorded; else each row is checked, so that a race is reported as it always was.
  const bool check = !covered(r.base, r.end(), r.space, a.kind, queue, clock);
  for (std::uint64_t row = 0; row < r.rows; ++row) {
    run(r.base + row * r.stride, r.row_len, r.space, a.kind, queue, self, clock, index, check);
  }
}

bool RaceDetector::covered(std::uint64_t begin, std::uint64_t end, Space space, AccessKind kind, int queue,
                           const Clock& clock) const {
  const auto q = static_cast<std::size_t>(queue);
  Unordered after_write{clock};
  after_write.seen[q] = kSeenAll;
  while (begin < end) {
    std::uint64_t local = 0;
    const Shadow* sh = shadow_of(space, begin, &local);
    const std::uint64_t len = space == Space::kDram ? std::min(end - begin, kPageSize - local) : end - begin;
    begin += len;
    if (sh == nullptr) continue;  // a page never accessed: every stamp 0
    if (!sh->writer.covered(local, local + len, after_write)) return false;
    if (kind == AccessKind::kWrite) {
      for (std::size_t p = 0; p < kQueues; ++p) {
        if (p == q) continue;
        Unordered after_read{{kSeenAll, kSeenAll, kSeenAll}};
        after_read.seen[p] = clock[p];
        if (!sh->reader[p].covered(local, local + len, after_read)) return false;
      }
    }
  }
  return true;
}

void RaceDetector::run(std::uint64_t offset, std::uint64_t n, Space space, AccessKind kind, int queue, Stamp self,
                       const Clock& clock, std::uint32_t index, bool check) {
  const auto q = static_cast<std::size_t>(queue);
  const std::uint64_t row_end = offset + n;
  Unordered after_write{clock};  // RAW and WAW: the last writer, of any other queue
  after_write.seen[q] = kSeenAll;
  while (offset < row_end) {
    std::uint64_t local = 0;
    Shadow* sh = shadow_of(space, offset, &local, /*create=*/true);
    const std::uint64_t len =
        space == Space::kDram ? std::min(row_end - offset, kPageSize - local) : row_end - offset;
    std::uint64_t at = check ? sh->writer.find(local, local + len, after_write) : local + len;
    if (at < local + len) report(sh->writer.at(at), offset + (at - local), row_end, space, -1, kind, index);
    if (check && kind == AccessKind::kWrite) {
      for (std::size_t p = 0; p < kQueues; ++p) {  // WAR: each other queue's last reader
        if (p == q) continue;
        Unordered after_read{{kSeenAll, kSeenAll, kSeenAll}};
        after_read.seen[p] = clock[p];
        at = sh->reader[p].find(local, local + len, after_read);
        if (at < local + len) {
          report(sh->reader[p].at(at), offset + (at - local), row_end, space, static_cast<int>(p), kind, index);
        }
      }
    }
    (kind == AccessKind::kRead ? sh->reader[q] : sh->writer).fill(local, local + len, self);
    offset += len;
  }
}

Stamp RaceDetector::stamp_at(Space space, int array, std::uint64_t unit) const {
  std::uint64_t local = 0;
  const Shadow* sh = shadow_of(space, unit, &local);
  if (sh == nullptr) return 0;
  return (array < 0 ? sh->writer : sh->reader[static_cast<std::size_t>(array)]).at(local);
}

void RaceDetector::report(Stamp x, std::uint64_t begin, std::uint64_t row_end, Space space, int array, AccessKind kind,
                          std::uint32_t index) const {
  // The conflicting range: as far as the same earlier access goes within this row.
  std::uint64_t end = begin + 1;
  while (end < row_end && stamp_at(space, array, end) == x) ++end;
  const std::uint32_t other = (*insn_of_event_)[x & 3u][(x >> 2) - 1];
  const auto& prog = *program_;
  const std::string msg = std::string(isa::info_of(prog[index]).mnemonic) +
                          (kind == AccessKind::kRead ? " reads " : " writes ") + std::string(space_name(space)) + " [" +
                          std::to_string(begin) + ", " + std::to_string(end) + ") " +
                          (array < 0 ? "written" : "read") + " by instruction " + std::to_string(other) + " (" +
                          std::string(isa::info_of(prog[other]).mnemonic) +
                          ") with no dependency token between them";
  throw ExecutionError(msg, index);
}

}  // namespace dla::sim::detail

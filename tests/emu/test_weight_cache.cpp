// The emulator's weight cache (sim/engines/src/weight_cache.hpp, white-box): instruction
// sequences run on two machines, one executing as the emulator does (with the cache) and
// one without it, must leave identical bytes and accumulators after every instruction,
// above all when weights that were loaded or packed before are changed behind the
// cache's back: new bytes loaded over them, their DRAM source stored over, a shape
// change, 4-bit weights, and a MAC split between threads.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "dla/mac_modes.hpp"
#include "dla/semantics.hpp"
#include "emu_test_util.hpp"
#include "weight_cache.hpp"

using dla::HwConfig;
using dla::sim::ExecOptions;
using dla::sim::MachineState;
using dla::sim::detail::WeightCache;
namespace isa = dla::isa;
using namespace emu_test;

namespace {

constexpr std::uint64_t kDram = 1 << 20;
// DRAM: two weight sets, one spare block, and the bytes a STORE writes over weights.
constexpr std::int64_t kW1 = 0, kW2 = 1 << 17, kSpare = 1 << 18;

/// Two machines with the same random start; `cached` runs with a WeightCache.
struct Pair {
  MachineState plain, cached;
  WeightCache cache;
  unsigned threads = 1;
  int steps = 0;

  Pair(const HwConfig& cfg, std::mt19937_64& g) : plain(cfg, kDram) {
    fill_random(plain.dram, g);
    fill_random(plain.act, g);
    fill_random(plain.wgt, g);
    cached = plain;
  }

  /// Executes `insn` on both (the cached one as the emulator does) and expects the same state.
  void run(const isa::Instruction& insn) {
    ExecOptions o;
    o.threads = threads;
    o.parallel_min_macs = 0;
    dla::sim::execute(insn, plain, 0, o);
    o.weights = &cache;
    cache.written(insn, dla::sim::execute(insn, cached, 0, o));
    ++steps;
    ASSERT_EQ(plain.wgt, cache.visible_wgt(cached)) << "WGT after step " << steps;
    ASSERT_EQ(plain.acc, cached.acc) << "ACC after step " << steps;
    ASSERT_TRUE(std::equal(plain.dram.begin(), plain.dram.end(), cached.dram.begin())) << "DRAM after step " << steps;
  }
};

isa::Load load_wgt(std::int64_t dram, std::int64_t sram, std::int64_t bytes) {
  isa::Load l;
  l.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
  l.dram_addr = dram;
  l.sram_addr = sram;
  // Rows, to exercise strides (a row holds at most 16383 bytes).
  l.rows = 4;
  l.row_bytes = (bytes + 3) / 4;
  l.dram_stride = l.row_bytes;
  l.sram_stride = l.row_bytes;
  return l;
}

isa::Mac mac(isa::MacMode mode, std::int64_t wgt_addr, std::int64_t out_c, std::int64_t in_c) {
  isa::Mac m;
  m.mode = static_cast<std::int64_t>(mode);
  m.act_unsigned = 0;
  m.accumulate = 1;
  m.wgt_addr = wgt_addr;
  m.out_h = 3;
  m.out_w = 5;
  m.out_c = out_c;
  m.in_c = in_c;
  m.kernel_h = 3;
  m.kernel_w = 3;
  return m;
}

/// WGT bytes a MAC reads.
std::int64_t wgt_bytes(const isa::Mac& m) {
  const std::int64_t n = m.out_c * m.kernel_h * m.kernel_w * m.in_c;
  return static_cast<isa::MacMode>(m.mode) == isa::MacMode::A8W8 ? n : (n + 1) / 2;
}

void sequence(const HwConfig& cfg, isa::MacMode mode, unsigned threads, std::uint64_t seed) {
  SCOPED_TRACE("mode " + std::string(isa::mac_mode_name(mode)) + ", threads " + std::to_string(threads));
  std::mt19937_64 g(seed);
  Pair p(cfg, g);
  p.threads = threads;
  const isa::Mac a = mac(mode, 0, 128, 32);
  const std::int64_t bytes = wgt_bytes(a);
  const isa::Load w1 = load_wgt(kW1, 0, bytes);
  // Tiles of one layer: the same weights, loaded again and again.
  for (int r = 0; r < 3; ++r) {
    p.run(w1);
    p.run(a);
    EXPECT_TRUE(p.cache.holds(w1));  // the next load of w1 moves nothing
  }
  // Other weights loaded over them at the same address, then the first ones again.
  p.run(load_wgt(kW2, 0, bytes));
  p.run(a);
  p.run(w1);
  p.run(a);
  // A few bytes in the middle overwritten by a LOAD that starts elsewhere.
  isa::Load patch = load_wgt(kSpare, bytes / 2 - 7, 14);
  p.run(patch);
  p.run(a);
  p.run(w1);
  p.run(a);
  // The DRAM source of w1 stored over (from ACT), then w1 loaded again: new bytes.
  isa::Store st;
  st.sram_addr = 0;
  st.dram_addr = kW1 + bytes / 3;
  st.row_bytes = 64;
  p.run(st);
  p.run(w1);
  p.run(a);
  // The same bytes read as another shape (fewer output channels, other tile).
  isa::Mac b = mac(mode, 0, 64, 32);
  b.out_h = 2;
  p.run(b);
  p.run(a);
  // Weights at a second address (double buffering) alternate with the first.
  const isa::Load w1_high = load_wgt(kW1, 1 << 16, bytes);
  isa::Mac a_high = a;
  a_high.wgt_addr = 1 << 16;
  for (int r = 0; r < 2; ++r) {
    p.run(w1_high);
    p.run(a_high);
    p.run(w1);
    p.run(a);
  }
}

}  // namespace

TEST(EmuWeightCache, SkippedLoadsAndReusedPackingLeaveTheSameState) {
  const HwConfig cfg = HwConfig::preset("default");
  std::uint64_t seed = 500;
  for (isa::MacMode mode : {isa::MacMode::A8W8, isa::MacMode::A8W4, isa::MacMode::A4W4, isa::MacMode::A16W8}) {
    if (!isa::mac_mode_supported(mode, cfg)) continue;
    for (unsigned threads : {1u, 2u}) sequence(cfg, mode, threads, seed++);
  }
}

namespace {

/// Both machines back to a run's start: `dram` and zero SRAMs; the cache begins a run
/// (as the emulator does, after the previous run's deferred bytes were put in place).
void new_run(Pair& p, const dla::sim::DramBytes& dram, std::uint64_t constants) {
  for (MachineState* m : {&p.plain, &p.cached}) {
    std::copy(dram.begin(), dram.end(), m->dram.begin());
    std::fill(m->wgt.begin(), m->wgt.end(), std::uint8_t{0});
    std::fill(m->acc.begin(), m->acc.end(), std::int64_t{0});
  }
  p.cache.begin_run(constants);
}

}  // namespace

// Runs of one program: kernels packed from constants serve later runs, and LOADs of
// constants are deferred until their bytes are needed.
TEST(EmuWeightCache, PackingsOfLoadedConstantsServeLaterRunsUnlessTheBytesDiffer) {
  const HwConfig cfg = HwConfig::preset("default");
  std::mt19937_64 g(900);
  for (unsigned threads : {1u, 2u}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    Pair p(cfg, g);
    p.threads = threads;
    dla::sim::DramBytes start = p.plain.dram;
    const std::uint64_t constants = kW2;  // w1's bytes are constants; w2's and the spare block are not
    const isa::Mac a = mac(isa::MacMode::A8W8, 0, 128, 32);
    const std::int64_t bytes = wgt_bytes(a);
    for (int run = 0; run < 5; ++run) {
      SCOPED_TRACE("run " + std::to_string(run));
      // Every run has other bytes outside the constants (an input): w2's change.
      start[static_cast<std::size_t>(kW2 + run)] ^= 0x5a;
      new_run(p, start, constants);
      if (run == 2) {
        // The constants stored over before they are loaded: WGT gets other bytes than
        // the ones packed in earlier runs.
        isa::Store st;
        st.sram_addr = 0;
        st.dram_addr = kW1 + bytes / 3;
        st.row_bytes = 64;
        p.run(st);
      }
      // The same constants at another address, as the other half of a double buffer.
      const std::int64_t at = run == 3 ? 1 << 16 : 0;
      isa::Mac m = a;
      m.wgt_addr = at;
      p.run(load_wgt(kW1, at, bytes));
      p.run(m);
      // Bytes that are not constants, at the same place.
      p.run(load_wgt(kW2, at, bytes));
      p.run(m);
      // Deferred constants with other bytes loaded into their middle, then with their
      // DRAM source stored over before the MAC reads them.
      p.run(load_wgt(kW1, at, bytes));
      p.run(load_wgt(kSpare, at + bytes / 2 - 7, 14));
      p.run(m);
      p.run(load_wgt(kW1, at, bytes));
      isa::Store over;
      over.sram_addr = 0;
      over.dram_addr = kW1 + 2 * bytes / 3;
      over.row_bytes = 48;
      p.run(over);
      p.run(m);
      p.cache.materialize_all();  // the end of a run
      ASSERT_EQ(p.plain.wgt, p.cached.wgt) << "WGT at the end of the run";
    }
  }
}

// More deferred LOADs of constants than the cache keeps records of: a record it forgets
// must put its bytes in place first, or WGT would keep the stale bytes (here: zeros).
TEST(EmuWeightCache, DeferredLoadsBeyondTheRecordsKeptAllReachWgt) {
  const HwConfig cfg = HwConfig::preset("default");
  std::mt19937_64 g(901);
  Pair p(cfg, g);
  new_run(p, p.plain.dram, kW2);  // w1's block is constants
  constexpr int kLoads = 80;      // more than WeightCache keeps (64)
  constexpr std::int64_t kBytes = 64;
  for (int i = 0; i < kLoads; ++i) p.run(load_wgt(kW1 + i * kBytes, i * kBytes, kBytes));
  // A MAC reading the first block, as the first LOAD left it.
  isa::Mac m = mac(isa::MacMode::A8W8, 0, 16, 4);
  ASSERT_LE(wgt_bytes(m), kBytes * kLoads);
  p.run(m);
  p.cache.materialize_all();
  EXPECT_EQ(p.plain.wgt, p.cached.wgt);
}

// Unit tests of the cycle model's timing pieces (sim/engines/src/cycle/timing.hpp): the DRAM bus
// (latency-free data phases, equal sharing, work conservation, late arrivals), burst
// counting and the per-instruction cycle formulas, against hand-computed numbers.
#include <gtest/gtest.h>

#include <random>

#include "dla/hw_config.hpp"
#include "cycle_test_util.hpp"
#include "timing.hpp"

using dla::HwConfig;
using dla::sim::cycle::DramBus;
namespace cyc = dla::sim::cycle;
namespace isa = dla::isa;

namespace {

/// Runs the bus cycle by cycle until channel `ch` completes; returns the cycle.
std::uint64_t finish_at(DramBus& bus, int ch, std::uint64_t from) {
  for (std::uint64_t t = from; t < from + 1000000; ++t) {
    if (bus.done(ch, t)) return t;
  }
  return DramBus::kNever;
}

}  // namespace

TEST(DramBus, OneTransferTakesItsBytesOverTheBandwidth) {
  DramBus bus(32);
  bus.start(0, 0, 100, 640);  // 100 cycles of latency, 20 cycles of data
  EXPECT_EQ(bus.projected_completion(0), 120u);
  EXPECT_FALSE(bus.done(0, 119));
  EXPECT_TRUE(bus.done(0, 120));
  EXPECT_EQ(bus.busy_cycles(), 20u);
  bus.finish(0);
  bus.start(0, 120, 120, 33);  // a partial last cycle still takes the cycle
  EXPECT_EQ(bus.projected_completion(0), 122u);
}

TEST(DramBus, TwoTransfersShareEquallyAndTheBusStaysBusy) {
  DramBus bus(32);
  bus.start(0, 0, 0, 64);
  bus.start(1, 0, 0, 128);
  // 16 bytes a cycle each: the read is done at 4; the write has 64 bytes left, alone: 2 more.
  EXPECT_EQ(bus.projected_completion(0), 4u);
  EXPECT_EQ(bus.projected_completion(1), 6u);
  EXPECT_EQ(finish_at(bus, 0, 0), 4u);
  bus.finish(0);
  EXPECT_EQ(finish_at(bus, 1, 4), 6u);
  EXPECT_EQ(bus.busy_cycles(), 6u);  // 192 bytes at 32 a cycle
}

TEST(DramBus, ALeftoverHalfCycleGoesToTheOtherChannel) {
  DramBus bus(3);  // odd bandwidth: 1.5 bytes a cycle each while both transfer
  bus.start(0, 0, 0, 4);
  bus.start(1, 0, 0, 5);
  // Cycles 1-2: 1.5 + 1.5 each (read has 1 left); cycle 3: read takes 1, write gets 2 -> 0 left.
  EXPECT_EQ(bus.projected_completion(0), 3u);
  EXPECT_EQ(bus.projected_completion(1), 3u);
}

TEST(DramBus, ALaterArrivalSlowsTheTransferInFlight) {
  DramBus bus(32);
  bus.start(0, 0, 0, 320);  // alone: done at 10
  EXPECT_EQ(bus.projected_completion(0), 10u);
  bus.start(1, 4, 6, 64);   // arrives at 6 with 64 bytes: 4 cycles at half rate
  // At 6 the read has 128 bytes left; both at 16 a cycle until the write is done at 10;
  // the read then has 64 left, alone: 2 cycles.
  EXPECT_EQ(bus.projected_completion(1), 10u);
  EXPECT_EQ(bus.projected_completion(0), 12u);
  EXPECT_EQ(finish_at(bus, 1, 4), 10u);
  bus.finish(1);
  EXPECT_EQ(finish_at(bus, 0, 10), 12u);
  EXPECT_EQ(bus.busy_cycles(), 12u);
}

TEST(DramBus, DoublingTheBandwidthNeverDelaysACompletion) {
  // Random pairs of overlapping transfers: every completion at 2B is no later than at B.
  std::uint64_t seed = 12345;
  auto next = [&] { return (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (int trial = 0; trial < 2000; ++trial) {
    const std::uint64_t b = 1 + next() % 64;
    const std::uint64_t a0 = next() % 50, a1 = next() % 50, n0 = 1 + next() % 5000, n1 = 1 + next() % 5000;
    auto completions = [&](std::uint64_t bpc) {
      DramBus bus(bpc);
      const std::uint64_t first = std::min(a0, a1);
      if (a0 <= a1) {
        bus.start(0, first, a0, n0);
        bus.start(1, first, a1, n1);
      } else {
        bus.start(1, first, a1, n1);
        bus.start(0, first, a0, n0);
      }
      return std::pair{bus.projected_completion(0), bus.projected_completion(1)};
    };
    const auto slow = completions(b), fast = completions(2 * b);
    ASSERT_LE(fast.first, slow.first) << trial;
    ASSERT_LE(fast.second, slow.second) << trial;
    // Work conservation: the later completion is at least the total over the bandwidth.
    ASSERT_GE(std::max(slow.first, slow.second), std::min(a0, a1) + (n0 + n1 + b - 1) / b) << trial;
  }
}

TEST(DramBursts, AlignedUnalignedContiguousAndRepeatedRows) {
  EXPECT_EQ(cyc::dram_bursts(0, 64, 1, 64, 64), 1u);
  EXPECT_EQ(cyc::dram_bursts(1, 64, 1, 64, 64), 2u);              // straddles a boundary
  EXPECT_EQ(cyc::dram_bursts(0, 100, 4, 100, 64), 7u);            // contiguous 400 bytes
  EXPECT_EQ(cyc::dram_bursts(0, 100, 4, 128, 64), 8u);            // 2 bursts per row
  EXPECT_EQ(cyc::dram_bursts(32, 64, 3, 0, 64), 6u);              // one row read 3 times
  EXPECT_EQ(cyc::dram_bursts(0, 20, 4, 48, 64), 1u + 2 + 1 + 1);  // rows at 0, 48, 96, 144
  EXPECT_EQ(cyc::dram_bursts(7, 1, 1, 1, 1), 1u);
}

TEST(TimingFormulas, MacCyclesPerModeDepthwiseAndPipeline) {
  HwConfig hw = HwConfig::preset("default");  // 16 x 16, speedups 4 and 2, 2 passes, depth 4
  ASSERT_EQ(hw.mac_rows, 16);
  ASSERT_EQ(hw.mac_cols, 16);
  isa::Mac m;
  m.out_h = 4;
  m.out_w = 5;
  m.in_c = 40;   // 3 row passes in a8w8, 1 in a4w4 (64 per pass), 2 in a8w4 (32 per pass)
  m.out_c = 20;  // 2 column passes
  m.kernel_h = 3;
  m.kernel_w = 3;
  // 20 pixels a weight set: every set's weight reads (one clock per column, at most 16)
  // hide behind the previous set's beats, but the first set's 16 come before any beat.
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 20u * 9 * 3 * 2 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A4W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 20u * 9 * 1 * 2 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 20u * 9 * 2 * 2 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A16W8);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 20u * 9 * 3 * 2 * 2 + 4);
  // 6 pixels a set: the weight reads bound the sets of the first block (16 columns, 16
  // clocks each), the beats those of the second (4 columns). Sets: 27 per block in a8w8
  // (9 positions x 3 chunks), 9 in a4w4, 18 in a8w4; a set waits max(previous beats,
  // its reads), and the last set's beats end the instruction.
  m.out_h = 2;
  m.out_w = 3;
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 26u * 16 + 28 * 6 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A4W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 8u * 16 + 10 * 6 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 17u * 16 + 19 * 6 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A16W8);  // 12 beats a set (2 passes)
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 26u * 16 + 28 * 12 + 4);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  m.depthwise = 1;
  m.in_c = m.out_c = 20;
  // One row of PEs per channel: 9 sets of one position per block of 16 (then 4) channels.
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 8u * 16 + 10 * 6 + 4);
  hw.mac_pipeline_depth = 0;
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 8u * 16 + 10 * 6);
  EXPECT_DOUBLE_EQ(cyc::mac_ideal_cycles(m, 6 * 9 * 20, hw), 6.0 * 9 * 20 / 256);
}

TEST(TimingFormulas, DepthwiseBeatsReadOneActRunPerKernelPositionOnTwoPorts) {
  HwConfig hw = HwConfig::preset("default");  // 16 x 16, 4 banks of 16 bytes
  isa::Mac m;
  m.depthwise = 1;
  m.in_c = m.out_c = 16;
  m.out_h = m.out_w = 4;  // 16 pixels
  m.kernel_h = m.kernel_w = 3;
  // a8w8: 9 sets of one position (16 weight reads each, hidden behind 16 beats).
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 9u * 16 + 4);
  // a8w4: sets of positions {0,1} {2,3} {4,5} {6,7} {8}, two runs on two ports: 1 clock.
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 5u * 16 + 4);
  // a4w4: sets {0..3} {4..7} {8}; four runs take two clocks a beat, so a4w4 depthwise
  // runs at a8w4's rate (the last set's one run: one clock).
  m.mode = static_cast<std::int64_t>(isa::MacMode::A4W4);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 2u * 32 + 16 + 4);
  // Two banks of 4 bytes: a run of the 16 channels' bytes takes 2 clocks aligned (4 words),
  // 3 from byte 2 (5 words). A 1x1 kernel: one set, its 16 weight reads first.
  hw.sram_banks = 2;
  hw.sram_bank_bytes = 4;
  m.kernel_h = m.kernel_w = 1;
  m.out_h = m.out_w = 2;
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 4u * 2 + 4);
  m.act_addr = 2;
  EXPECT_EQ(cyc::mac_cycles(m, hw), 16 + 4u * 3 + 4);
}

TEST(TimingFormulas, WindowBeatsReadEachInputRunOnceOnTwoPorts) {
  HwConfig hw = HwConfig::preset("default");
  hw.vector_lanes = 32;  // a group of 32 outputs: 4 pixels of 8 channels
  const auto i8 = static_cast<std::int64_t>(dla::DType::I8);
  // An int8 max pool of square windows, no padding.
  auto max_pool = [i8](std::int64_t channels, std::int64_t out, std::int64_t in, std::int64_t kernel, std::int64_t stride) {
    isa::VMaxPool p;
    p.type = i8;
    p.channels = channels;
    p.out_h = p.out_w = out;
    p.in_h = p.in_w = in;
    p.kernel_h = p.kernel_w = kernel;
    p.stride_h = p.stride_w = stride;
    return p;
  };
  isa::VMaxPool mp = max_pool(8, 2, 5, 3, 2);
  // Stride 2: the 4 pixels' inputs at a position are 4 runs apart, 2 a port: 2 clocks.
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 9u * 2);
  // Stride 1: a row's 2 pixels read one run, the 2 rows 2 runs: 1 clock.
  mp = max_pool(8, 2, 3, 2, 1);
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 4u);
  // Padding: positions in it read nothing; an input of width 2 puts row 0's last pixel
  // next to row 1's first, so the centre position's 4 pixels are one run.
  mp = max_pool(8, 2, 2, 3, 1);
  mp.pad_top = mp.pad_left = 1;
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 9u);
  isa::VAvgPool ap;
  ap.in_type = ap.out_type = i8;
  ap.channels = 8;
  ap.out_h = ap.out_w = 2;
  ap.kernel_h = ap.kernel_w = 2;
  ap.stride_h = ap.stride_w = 2;  // 4 runs a position: 2 clocks
  EXPECT_EQ(cyc::vector_cycles(ap, hw), 4u * 2);
  // Upsample: a group's output pixels repeat input pixels that lie side by side: one run.
  isa::VUpsample up;
  up.type = i8;
  up.in_h = 2;
  up.in_w = 3;
  up.channels = 2;
  EXPECT_EQ(cyc::vector_cycles(up, hw), 48u / 32 + 1);
  // Two banks of 4 bytes, 16 lanes of 16 channels: a pixel's run of 16 bytes takes 2
  // clocks aligned, and so does each group's write at the last position.
  hw = HwConfig::preset("default");
  hw.sram_banks = 2;
  hw.sram_bank_bytes = 4;
  mp = max_pool(16, 2, 4, 2, 2);
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 4u * 4 * 2);
  mp.in_addr = 2;  // 5 words: 3 clocks a read; the writes still 2
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 4u * 4 * 3);
}

TEST(TimingFormulas, MacWeightRunsOfSeveralClocks) {
  // 2 banks of 4 bytes: a run that touches more than 2 bank words takes more than one
  // clock. A 1 x 1 MAC of one pixel: the weight reads bound every set.
  HwConfig hw = HwConfig::preset("small");
  hw.sram_banks = 2;
  hw.sram_bank_bytes = 4;
  hw.mac_pipeline_depth = 0;
  isa::Mac m;
  m.out_h = m.out_w = 1;
  m.kernel_h = m.kernel_w = 1;
  m.in_c = static_cast<std::int64_t>(hw.mac_rows);  // one chunk: runs of mac_rows bytes
  m.out_c = static_cast<std::int64_t>(hw.mac_cols);
  m.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  ASSERT_EQ(hw.mac_rows, 4);
  // Runs of 4 bytes at 0, 4, 8, 12: one bank word each, one clock each; then the pixel's beat.
  EXPECT_EQ(cyc::mac_cycles(m, hw), 4u + 1);
  m.wgt_addr = 2;  // each run straddles two bank words, in two banks: still one clock
  EXPECT_EQ(cyc::mac_cycles(m, hw), 4u + 1);
  m.in_c = 12;  // 3 chunks; runs of 4 bytes at 12k + 4c + 2 touch 2 words: one clock
  EXPECT_EQ(cyc::mac_cycles(m, hw), 3u * 4 + 1);
  hw.sram_bank_bytes = 2;  // a run of 4 bytes at an odd address touches 3 words: two clocks
  m.wgt_addr = 1;
  EXPECT_EQ(cyc::mac_cycles(m, hw), 3u * 4 * 2 + 1);
}

TEST(TimingFormulas, RequantAndVectorLanes) {
  const HwConfig hw = HwConfig::preset("default");  // 16 lanes each
  isa::Requant rq;
  rq.pixels = 7;
  rq.channels = 10;
  EXPECT_EQ(cyc::requant_cycles(rq, hw), 5u);  // 70 / 16
  isa::VAdd add;
  add.count = 33;
  EXPECT_EQ(cyc::vector_cycles(add, hw), 3u);
  isa::VMaxPool mp;
  mp.out_h = 2;
  mp.out_w = 2;
  mp.channels = 8;
  mp.kernel_h = 3;
  mp.kernel_w = 3;
  EXPECT_EQ(cyc::vector_cycles(mp, hw), 18u);  // 32 outputs x 9 window elements / 16
  isa::VUpsample up;
  up.in_h = 2;
  up.in_w = 2;
  up.channels = 4;
  EXPECT_EQ(cyc::vector_cycles(up, hw), 4u);  // 64 outputs
  isa::VCopy cp;
  cp.bytes = 17;
  EXPECT_EQ(cyc::vector_cycles(cp, hw), 2u);
  isa::VLut lut;
  lut.count = 33;
  lut.in_type = static_cast<std::int64_t>(dla::DType::I8);
  EXPECT_EQ(cyc::vector_cycles(lut, hw), 16u + 3u);  // the 256-entry table, then one lookup per element
  lut.in_type = static_cast<std::int64_t>(dla::DType::I4);
  EXPECT_EQ(cyc::vector_cycles(lut, hw), 1u + 3u);  // 16 entries
  lut.in_type = static_cast<std::int64_t>(dla::DType::I16);
  EXPECT_EQ(cyc::vector_cycles(lut, hw), 17u + 5u);  // 257 knots, then two per element: 66 / 16
  HwConfig narrow = hw;  // the lookup-table unit's own lanes, not the vector unit's
  narrow.lut_lanes = 4;
  EXPECT_EQ(cyc::vector_cycles(lut, narrow), 65u + 17u);  // 257 / 4 and 66 / 4
  EXPECT_EQ(cyc::vector_cycles(cp, narrow), 2u);    // VCOPY keeps vector_lanes
}

TEST(TimingFormulas, ParamReadsOfShiftsAndTablesThatTakeSeveralClocks) {
  // 2 banks of 4 bytes: an access of up to 5 bytes takes one clock at any alignment, 16
  // bytes take 2 or 3. The requant record's shifts start 8 bytes in (two int32 clips).
  HwConfig hw = HwConfig::preset("default");
  hw.sram_banks = 2;
  hw.sram_bank_bytes = 4;
  ASSERT_EQ(hw.requant_lanes, 16);
  isa::Requant rq;
  rq.out_type = static_cast<std::int64_t>(dla::DType::I4);  // 8 bytes a group: one clock
  rq.pixels = 1;
  rq.channels = 40;
  // Groups from channel 0, 16 (16 shifts at PARAM 8..23, 24..39: 4 words, 2 clocks) and 32
  // (8 shifts at 40..47: 1 clock).
  EXPECT_EQ(cyc::requant_cycles(rq, hw), 3u + 1 + 1);
  rq.pixels = 2;
  // Then channels 32..39 with 0..7 (two runs of 8 bytes on two ports: 1 clock), 8..23 (16..31:
  // 2 clocks) and 24..39 (32..47: 2 clocks).
  EXPECT_EQ(cyc::requant_cycles(rq, hw), 5u + 1 + 1 + 0 + 1 + 1);
  rq.channels = 16;  // the shifts fit the lanes: read with the record, none a beat
  rq.pixels = 5;
  EXPECT_EQ(cyc::requant_cycles(rq, hw), 5u);
  // A table block of 16 entries is 32 bytes: 8 words, 4 clocks; 9 words from byte 2: 5.
  isa::VLut lut;
  lut.count = 4;  // one beat whose 4 input bytes and 2 output bytes take one clock
  lut.in_type = static_cast<std::int64_t>(dla::DType::I8);
  lut.out_type = static_cast<std::int64_t>(dla::DType::I4);
  EXPECT_EQ(cyc::vector_cycles(lut, hw), 16u * 4 + 1);
  lut.param_addr = 2;
  EXPECT_EQ(cyc::vector_cycles(lut, hw), 16u * 5 + 1);
}

TEST(TimingFormulas, SramPortClocksFollowBanksAndAlignment) {
  const dla::HwConfig hw = dla::HwConfig::preset("default");  // 4 banks of 16 bytes
  ASSERT_EQ(hw.sram_banks, 4);
  ASSERT_EQ(hw.sram_bank_bytes, 16);
  dla::isa::Load ld;
  ld.buffer = static_cast<std::int64_t>(dla::isa::Buffer::ACT);
  ld.fill_zero = 1;
  ld.rows = 1;
  ld.row_bytes = 49;  // the widest one-clock access: 4 words when it starts at byte 15 of a word
  ld.sram_addr = 15;
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u);
  ld.sram_addr = 16 * 7 + 15;  // any word, same lane
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u);
  ld.row_bytes = 50;  // 5 words: one bank twice
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 2u);
  ld.sram_addr = 0;
  ld.row_bytes = 64;  // aligned: 4 words
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u);
  ld.row_bytes = 65;
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 2u);
  ld.rows = 3;  // rows 64 + 1 bytes apart: the second starts at byte 1, the third at byte 2
  ld.sram_stride = 65;
  ld.row_bytes = 64;
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u + 2u + 2u);
  ld.sram_stride = 64;  // aligned alike
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 3u);
  // ACC is addressed in 4-byte words, in bank words of 8 (32 bytes): a 16-word partial-sum
  // row at any offset touches at most 3 of the 4 banks.
  ld.buffer = static_cast<std::int64_t>(dla::isa::Buffer::ACC);
  ld.rows = 1;
  ld.row_bytes = 4 * 16;
  for (std::int64_t at : {0, 1, 7, 8, 15, 1000}) {
    ld.sram_addr = at;
    EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u) << at;
  }
  ld.sram_addr = 7;
  ld.row_bytes = 4 * 25;  // words 7..31: bank words 0..3
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 1u);
  ld.row_bytes = 4 * 26;  // words 7..32: bank words 0..4, bank 0 twice
  EXPECT_EQ(cyc::sram_port_cycles(ld, hw), 2u);
  dla::isa::Store st;
  st.rows = 2;
  st.row_bytes = 17;
  st.sram_addr = 0;
  st.sram_stride = 32;
  EXPECT_EQ(cyc::sram_port_cycles(st, hw), 2u);
  dla::HwConfig one_bank = hw;
  one_bank.sram_banks = 1;
  EXPECT_EQ(cyc::sram_port_cycles(st, one_bank), 4u);  // two words a row, one a clock
}

TEST(TimingFormulas, GroupStallsCountEveryBeatsExtraClocks) {
  // cyc::group_stalls of one run against the test's bank-by-bank count, on every type,
  // alignments, group sizes and bank geometries; of two runs, the slower one's clocks.
  std::mt19937_64 g(9);
  for (const char* name : {"small", "default", "large"}) {
    const HwConfig hw = HwConfig::preset(name);
    for (int i = 0; i < 400; ++i) {
      const auto type = static_cast<dla::DType>(g() % 6);
      const std::uint64_t base = g() % 200, n = 1 + g() % 300, group = 1 + g() % 40;
      const auto bits = static_cast<std::uint64_t>(dla::dtype_info(type).bits);
      ASSERT_EQ(cyc::group_stalls({{base, type}}, n, group, hw), cycle_test::write_stalls(base, bits, n, group, hw))
          << name << " " << dla::dtype_info(type).name << " base " << base << " n " << n << " group " << group;
    }
  }
  // i32 outputs of 16 lanes from byte 8 on default: 5 bank words a full group.
  const HwConfig d = HwConfig::preset("default");
  EXPECT_EQ(cyc::group_stalls({{8, dla::DType::I32}}, 32, 16, d), 2u);
  EXPECT_EQ(cyc::group_stalls({{0, dla::DType::I32}}, 32, 16, d), 0u);
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t a = g() % 100, b = g() % 100, n = 1 + g() % 200, group = 1 + g() % 80;
    ASSERT_EQ(cyc::group_stalls({{a, dla::DType::U8}, {b, dla::DType::I16}}, n, group, d),
              cycle_test::runs_stalls({{a, 8}, {b, 16}}, n, group, d))
        << a << " " << b << " " << n << " " << group;
  }
  // Two runs of one beat each: two clocks when either takes two, not three.
  EXPECT_EQ(cyc::group_stalls({{8, dla::DType::I32}, {8, dla::DType::I32}}, 16, 16, d), 1u);
  EXPECT_EQ(cyc::group_stalls({{0, dla::DType::I32}, {8, dla::DType::I32}}, 16, 16, d), 1u);
}

TEST(TimingFormulas, AccBankWordsServeTheWidestComputeAccessInOneClock) {
  // HwConfig::acc_bank_words against the test's own search over every offset.
  for (const char* name : {"small", "default", "large"}) {
    const dla::HwConfig p = dla::HwConfig::preset(name);
    EXPECT_EQ(p.acc_bank_words(), static_cast<std::int64_t>(cycle_test::acc_bank_words(p))) << name;
  }
  EXPECT_EQ(dla::HwConfig::preset("default").acc_bank_words(), 8);  // 16 words on 4 banks: 4 are too narrow
  dla::HwConfig c = dla::HwConfig::preset("default");
  for (std::int64_t banks : {2, 4, 8, 64}) {
    for (std::int64_t bank_bytes : {1, 4, 16, 256}) {
      for (std::int64_t cols : {1, 3, 16, 33}) {
        for (std::int64_t lanes : {1, 16, 100}) {
          c.sram_banks = banks;
          c.sram_bank_bytes = bank_bytes;
          c.mac_cols = cols;
          c.requant_lanes = lanes;
          ASSERT_EQ(c.acc_bank_words(), static_cast<std::int64_t>(cycle_test::acc_bank_words(c)))
              << banks << " banks of " << bank_bytes << " bytes, " << cols << " columns, " << lanes << " lanes";
          const auto widest = static_cast<std::uint64_t>(c.acc_port_words());
          for (std::uint64_t at = 0; at < 2 * static_cast<std::uint64_t>(c.acc_bank_words()); ++at) {
            ASSERT_EQ(c.acc_access_clocks(at, widest), 1u) << at;
          }
        }
      }
    }
  }
}

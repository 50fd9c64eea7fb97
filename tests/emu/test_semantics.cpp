// Every instruction's semantic body (dla/semantics.hpp) against naive loops written from
// the ISA's pseudo-code (isa.hpp), on random data; and the rules each body enforces.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <vector>

#include "dla/numerics.hpp"
#include "dla/semantics.hpp"
#include "emu_test_util.hpp"

using dla::DType;
using dla::HwConfig;
using dla::sim::AccessKind;
using dla::sim::Effects;
using dla::sim::ExecOptions;
using dla::sim::MachineState;
using dla::sim::Space;
namespace isa = dla::isa;
using namespace emu_test;

namespace {

constexpr std::uint64_t kDram = 1 << 16;

MachineState random_state(const HwConfig& cfg, std::mt19937_64& g, std::uint64_t dram = kDram) {
  MachineState m(cfg, dram);
  fill_random(m.dram, g);
  fill_random(m.act, g);
  fill_random(m.wgt, g);
  fill_random(m.param, g);
  for (auto& w : m.acc) w = rand_int(g, -(std::int64_t{1} << 40), std::int64_t{1} << 40);
  return m;
}

std::vector<std::uint8_t>& bytes_of(MachineState& m, isa::Buffer b) {
  return b == isa::Buffer::ACT ? m.act : b == isa::Buffer::WGT ? m.wgt : m.param;
}

template <class Bytes>
void put_i32(Bytes& v, std::size_t at, std::int64_t x) {
  const auto u = static_cast<std::uint32_t>(static_cast<std::int32_t>(x));
  for (int i = 0; i < 4; ++i) v[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(u >> (8 * i));
}

std::int64_t get(const std::vector<std::uint8_t>& buf, std::size_t base, DType t, std::uint64_t i) {
  return dla::load_element(buf.data() + base, t, i);
}

void set(std::vector<std::uint8_t>& buf, std::size_t base, DType t, std::uint64_t i, std::int64_t v) {
  dla::store_element(buf.data() + base, t, i, v);
}

HwConfig config_with(int acc_bits, dla::OverflowPolicy policy, dla::RoundMode mode) {
  HwConfig c = HwConfig::preset("default");
  c.acc_bits = acc_bits;
  c.overflow_policy = policy;
  c.rounding_mode = mode;
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------
// LOAD / STORE
// ---------------------------------------------------------------------------

TEST(EmuLoad, StridedRowsIntoEveryByteBuffer) {
  std::mt19937_64 g(1);
  const HwConfig cfg = HwConfig::preset("default");
  for (auto buffer : {isa::Buffer::ACT, isa::Buffer::WGT, isa::Buffer::PARAM}) {
    for (int trial = 0; trial < 20; ++trial) {
      MachineState m = random_state(cfg, g);
      isa::Load ld;
      ld.buffer = static_cast<std::int64_t>(buffer);
      ld.row_bytes = rand_int(g, 1, 40);
      ld.rows = rand_int(g, 1, 12);
      ld.dram_stride = rand_int(g, 0, 3) == 0 ? 0 : rand_int(g, 1, 70);
      // Strides below row_bytes overlap rows: later rows win.
      ld.sram_stride = rand_int(g, 0, 60);
      ld.dram_addr = rand_int(g, 0, 5000);
      ld.sram_addr = rand_int(g, 0, 5000);
      SCOPED_TRACE(isa::disassemble(ld));
      std::vector<std::uint8_t> expected = bytes_of(m, buffer);
      for (std::int64_t r = 0; r < ld.rows; ++r)
        for (std::int64_t b = 0; b < ld.row_bytes; ++b)
          expected[static_cast<std::size_t>(ld.sram_addr + r * ld.sram_stride + b)] =
              m.dram[static_cast<std::size_t>(ld.dram_addr + r * ld.dram_stride + b)];
      const dla::sim::DramBytes dram_before = m.dram;
      const Effects fx = dla::sim::execute(ld, m, 3);
      EXPECT_EQ(bytes_of(m, buffer), expected);
      EXPECT_EQ(m.dram, dram_before);
      EXPECT_EQ(fx.dram_read_bytes, static_cast<std::uint64_t>(ld.rows * ld.row_bytes));
      EXPECT_EQ(fx.dram_write_bytes, 0u);
      ASSERT_EQ(fx.num_accesses, 2u);
      EXPECT_EQ(fx.accesses[0].region.space, Space::kDram);
      EXPECT_EQ(fx.accesses[1].region.space, static_cast<Space>(buffer));
      EXPECT_EQ(fx.accesses[1].kind, AccessKind::kWrite);
    }
  }
}

TEST(EmuLoad, StrideZeroBroadcastsOneRow) {
  std::mt19937_64 g(2);
  MachineState m = random_state(HwConfig::preset("default"), g);
  isa::Load ld;
  ld.buffer = static_cast<std::int64_t>(isa::Buffer::ACT);
  ld.dram_addr = 100;
  ld.row_bytes = 24;
  ld.rows = 9;
  ld.dram_stride = 0;
  ld.sram_stride = 30;
  ld.sram_addr = 7;
  dla::sim::execute(ld, m, 0);
  for (int r = 0; r < 9; ++r)
    for (int b = 0; b < 24; ++b) EXPECT_EQ(m.act[static_cast<std::size_t>(7 + r * 30 + b)], m.dram[static_cast<std::size_t>(100 + b)]);
}

TEST(EmuLoad, FillZeroWritesZerosAndReadsNoDram) {
  std::mt19937_64 g(3);
  MachineState m = random_state(HwConfig::preset("default"), g);
  std::vector<std::uint8_t> expected = m.wgt;
  isa::Load ld;
  ld.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
  ld.fill_zero = 1;
  ld.dram_addr = 4000000000LL;  // far outside DRAM: not read
  ld.row_bytes = 5;
  ld.rows = 4;
  ld.sram_stride = 9;
  ld.sram_addr = 11;
  for (int r = 0; r < 4; ++r)
    for (int b = 0; b < 5; ++b) expected[static_cast<std::size_t>(11 + r * 9 + b)] = 0;
  const Effects fx = dla::sim::execute(ld, m, 0);
  EXPECT_EQ(m.wgt, expected);
  EXPECT_EQ(fx.dram_read_bytes, 0u);
  ASSERT_EQ(fx.num_accesses, 1u);
  EXPECT_EQ(fx.accesses[0].region.space, Space::kWgt);
}

TEST(EmuLoad, AccWordsAreSignExtendedInt32) {
  std::mt19937_64 g(4);
  for (int trial = 0; trial < 20; ++trial) {
    MachineState m = random_state(HwConfig::preset("default"), g);
    for (std::size_t i = 0; i + 4 <= 4096; i += 4) put_i32(m.dram, i, rand_int(g, INT32_MIN, INT32_MAX));
    isa::Load ld;
    ld.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
    ld.fill_zero = trial % 5 == 4;
    ld.row_bytes = 4 * rand_int(g, 1, 10);
    ld.rows = rand_int(g, 1, 8);
    ld.dram_addr = 4 * rand_int(g, 0, 100) + rand_int(g, 0, 3);  // any byte alignment
    ld.dram_stride = rand_int(g, 0, 2) == 0 ? 0 : rand_int(g, 1, 60);
    ld.sram_addr = rand_int(g, 0, 1000);
    ld.sram_stride = rand_int(g, 0, 15);
    SCOPED_TRACE(isa::disassemble(ld));
    std::vector<std::int64_t> expected = m.acc;
    for (std::int64_t r = 0; r < ld.rows; ++r) {
      for (std::int64_t k = 0; k < ld.row_bytes / 4; ++k) {
        const auto at = static_cast<std::size_t>(ld.dram_addr + r * ld.dram_stride + 4 * k);
        const std::uint32_t u = static_cast<std::uint32_t>(m.dram[at]) | (static_cast<std::uint32_t>(m.dram[at + 1]) << 8) |
                                (static_cast<std::uint32_t>(m.dram[at + 2]) << 16) |
                                (static_cast<std::uint32_t>(m.dram[at + 3]) << 24);
        const std::int64_t word = u >= 0x80000000u ? static_cast<std::int64_t>(u) - (std::int64_t{1} << 32) : u;
        expected[static_cast<std::size_t>(ld.sram_addr + r * ld.sram_stride + k)] = ld.fill_zero ? 0 : word;
      }
    }
    dla::sim::execute(ld, m, 0);
    EXPECT_EQ(m.acc, expected);
  }
}

TEST(EmuLoad, AccRowsMustBeWholeWords) {
  MachineState m(HwConfig::preset("default"), 64);
  isa::Load ld;
  ld.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
  ld.row_bytes = 6;
  expect_exec_error([&] { dla::sim::execute(ld, m, 5); }, 5, "load: row_bytes = 6 is not a multiple of 4");
}

TEST(EmuStore, StridedRowsIntoDram) {
  std::mt19937_64 g(5);
  for (int trial = 0; trial < 20; ++trial) {
    MachineState m = random_state(HwConfig::preset("default"), g);
    isa::Store st;
    st.row_bytes = rand_int(g, 1, 50);
    st.rows = rand_int(g, 1, 10);
    st.sram_addr = rand_int(g, 0, 3000);
    st.sram_stride = rand_int(g, 0, 80);
    st.dram_addr = rand_int(g, 0, 3000);
    st.dram_stride = rand_int(g, 0, 80);
    SCOPED_TRACE(isa::disassemble(st));
    dla::sim::DramBytes expected = m.dram;
    for (std::int64_t r = 0; r < st.rows; ++r)
      for (std::int64_t b = 0; b < st.row_bytes; ++b)
        expected[static_cast<std::size_t>(st.dram_addr + r * st.dram_stride + b)] =
            m.act[static_cast<std::size_t>(st.sram_addr + r * st.sram_stride + b)];
    const Effects fx = dla::sim::execute(st, m, 0);
    EXPECT_EQ(m.dram, expected);
    EXPECT_EQ(fx.dram_write_bytes, static_cast<std::uint64_t>(st.rows * st.row_bytes));
    EXPECT_EQ(fx.dram_read_bytes, 0u);
  }
}

// ---------------------------------------------------------------------------
// MAC
// ---------------------------------------------------------------------------

namespace {

struct MacCase {
  isa::Mac insn;
  std::string describe() const { return isa::disassemble(insn); }
};

DType act_type_of(const isa::Mac& i) {
  switch (static_cast<isa::MacMode>(i.mode)) {
    case isa::MacMode::A8W8:
    case isa::MacMode::A8W4: return i.act_unsigned ? DType::U8 : DType::I8;
    case isa::MacMode::A4W4: return i.act_unsigned ? DType::U4 : DType::I4;
    case isa::MacMode::A16W8: return DType::I16;
  }
  return DType::I8;
}

DType wgt_type_of(const isa::Mac& i) {
  const auto mode = static_cast<isa::MacMode>(i.mode);
  return mode == isa::MacMode::A4W4 || mode == isa::MacMode::A8W4 ? DType::I4 : DType::I8;
}

/// The MAC loop of isa.hpp, element by element, in int64.
std::vector<std::int64_t> reference_mac(const isa::Mac& i, const MachineState& m) {
  std::vector<std::int64_t> acc = m.acc;
  const std::int64_t in_w = (i.out_w - 1) * i.stride_w + (i.kernel_w - 1) * i.dilation + 1;
  const DType at = act_type_of(i);
  const DType wt = wgt_type_of(i);
  for (std::int64_t oh = 0; oh < i.out_h; ++oh)
    for (std::int64_t ow = 0; ow < i.out_w; ++ow)
      for (std::int64_t oc = 0; oc < i.out_c; ++oc) {
        const auto idx = static_cast<std::size_t>(i.acc_addr + (oh * i.out_w + ow) * i.out_c + oc);
        std::int64_t s = i.accumulate ? m.acc[idx] : 0;
        for (std::int64_t kh = 0; kh < i.kernel_h; ++kh)
          for (std::int64_t kw = 0; kw < i.kernel_w; ++kw)
            for (std::int64_t ic = 0; ic < i.in_c; ++ic) {
              if (i.depthwise && ic != oc) continue;
              const std::int64_t ih = oh * i.stride_h + kh * i.dilation;
              const std::int64_t iw = ow * i.stride_w + kw * i.dilation;
              const std::int64_t a = get(m.act, static_cast<std::size_t>(i.act_addr), at,
                                         static_cast<std::uint64_t>((ih * in_w + iw) * i.in_c + ic));
              const std::int64_t widx = i.depthwise ? (oc * i.kernel_h + kh) * i.kernel_w + kw
                                                    : ((oc * i.kernel_h + kh) * i.kernel_w + kw) * i.in_c + ic;
              const std::int64_t w = get(m.wgt, static_cast<std::size_t>(i.wgt_addr), wt, static_cast<std::uint64_t>(widx));
              s += a * w;
            }
        acc[idx] = s;
      }
  return acc;
}

isa::Mac random_mac(std::mt19937_64& g, isa::MacMode mode, bool act_unsigned, bool depthwise) {
  isa::Mac i;
  i.mode = static_cast<std::int64_t>(mode);
  i.act_unsigned = act_unsigned;
  i.depthwise = depthwise;
  i.accumulate = rand_int(g, 0, 1);
  i.in_c = rand_int(g, 1, 20);
  i.out_c = depthwise ? i.in_c : rand_int(g, 1, 20);
  i.out_h = rand_int(g, 1, 6);
  i.out_w = rand_int(g, 1, 9);
  i.kernel_h = rand_int(g, 1, 4);
  i.kernel_w = rand_int(g, 1, 4);
  i.stride_h = rand_int(g, 1, 3);
  i.stride_w = rand_int(g, 1, 3);
  i.dilation = rand_int(g, 1, 3);
  i.act_addr = rand_int(g, 0, 999);
  i.wgt_addr = rand_int(g, 0, 999);
  i.acc_addr = rand_int(g, 0, 999);
  return i;
}

void check_mac(const isa::Mac& i, std::mt19937_64& g, const ExecOptions& options = {}) {
  SCOPED_TRACE(isa::disassemble(i));
  MachineState m = random_state(HwConfig::preset("default"), g);
  const std::vector<std::int64_t> expected = reference_mac(i, m);
  const Effects fx = dla::sim::execute(i, m, 0, options);
  EXPECT_EQ(m.acc, expected);
  const std::uint64_t per_out = static_cast<std::uint64_t>(i.kernel_h * i.kernel_w * (i.depthwise ? 1 : i.in_c));
  EXPECT_EQ(fx.macs, static_cast<std::uint64_t>(i.out_h * i.out_w * i.out_c) * per_out);
}

}  // namespace

TEST(EmuMac, EveryModeSignednessAndDepthwiseAgainstNaiveLoops) {
  std::mt19937_64 g(10);
  for (auto mode : {isa::MacMode::A8W8, isa::MacMode::A4W4, isa::MacMode::A8W4, isa::MacMode::A16W8}) {
    for (bool uns : {false, true}) {
      if (mode == isa::MacMode::A16W8 && uns) continue;
      for (bool dw : {false, true}) {
        for (int trial = 0; trial < 6; ++trial) check_mac(random_mac(g, mode, uns, dw), g);
      }
    }
  }
}

TEST(EmuMac, StridesDilationAndAccumulateCornerCases) {
  std::mt19937_64 g(11);
  isa::Mac i;
  i.mode = static_cast<std::int64_t>(isa::MacMode::A8W8);
  i.in_c = 3;
  i.out_c = 5;
  i.out_h = 4;
  i.out_w = 5;
  i.kernel_h = 3;
  i.kernel_w = 2;
  for (int sh : {1, 7})
    for (int sw : {1, 4})
      for (int d : {1, 7})
        for (int acc : {0, 1}) {
          i.stride_h = sh;
          i.stride_w = sw;
          i.dilation = d;
          i.accumulate = acc;
          check_mac(i, g);
        }
}

TEST(EmuMac, A16W8ExtremeSumsAreExactBeyondInt32) {
  // 4095 * 9 products of (-32768) * (-128) = 2^22: sums near 1.5e11 need int64.
  for (std::int64_t fill : {-32768, 32767}) {
    MachineState m(HwConfig::preset("default"), 64);
    isa::Mac i;
    i.mode = static_cast<std::int64_t>(isa::MacMode::A16W8);
    i.in_c = 4095;
    i.out_c = 2;
    i.out_h = 1;
    i.out_w = 1;
    i.kernel_h = 3;
    i.kernel_w = 3;
    const std::uint64_t n = 9 * 4095;
    for (std::uint64_t k = 0; k < n; ++k) set(m.act, 0, DType::I16, k, fill);
    for (std::uint64_t k = 0; k < 2 * n; ++k) set(m.wgt, 0, DType::I8, k, k < n ? -128 : 127);
    dla::sim::execute(i, m, 0);
    EXPECT_EQ(m.acc[0], fill * -128 * static_cast<std::int64_t>(n));
    EXPECT_EQ(m.acc[1], fill * 127 * static_cast<std::int64_t>(n));
  }
}

TEST(EmuMac, LongReductionsOfRandomExtremesAreExact) {
  std::mt19937_64 g(12);
  isa::Mac i;
  i.mode = static_cast<std::int64_t>(isa::MacMode::A16W8);
  i.in_c = 700;
  i.out_c = 6;
  i.out_h = 2;
  i.out_w = 3;
  i.kernel_h = 2;
  i.kernel_w = 2;
  MachineState m = random_state(HwConfig::preset("default"), g);
  const std::uint64_t acts = 3 * 4 * 700;
  for (std::uint64_t k = 0; k < acts; ++k) set(m.act, 0, DType::I16, k, rand_int(g, 0, 1) ? -32768 : 32767);
  for (std::uint64_t k = 0; k < 6 * 4 * 700; ++k) set(m.wgt, 0, DType::I8, k, rand_int(g, 0, 1) ? -128 : 127);
  const std::vector<std::int64_t> expected = reference_mac(i, m);
  dla::sim::execute(i, m, 0);
  EXPECT_EQ(m.acc, expected);
}

TEST(EmuMac, ThreadSplitGivesTheSameIntegers) {
  std::mt19937_64 g(13);
  for (bool dw : {false, true}) {
    isa::Mac i = random_mac(g, isa::MacMode::A8W8, false, dw);
    i.out_h = 7;
    for (unsigned threads : {1u, 2u, 3u}) check_mac(i, g, ExecOptions{threads, 0});
  }
}

TEST(EmuMac, DescribeReportsTheTileRegionsAndMacs) {
  MachineState m(HwConfig::preset("default"), 64);
  isa::Mac i;
  i.mode = static_cast<std::int64_t>(isa::MacMode::A4W4);
  i.accumulate = 1;
  i.act_addr = 10;
  i.wgt_addr = 20;
  i.acc_addr = 30;
  i.in_c = 3;
  i.out_c = 4;
  i.out_h = 2;
  i.out_w = 2;
  i.kernel_h = 3;
  i.kernel_w = 3;
  const Effects fx = dla::sim::describe(isa::Instruction{i}, m, 0);
  ASSERT_EQ(fx.num_accesses, 4u);
  // ACT: 4x4x3 = 48 i4 elements = 24 bytes; WGT: 4*3*3*3 = 108 i4 = 54 bytes; ACC 16 words.
  EXPECT_EQ(fx.accesses[0].region.space, Space::kAct);
  EXPECT_EQ(fx.accesses[0].region.base, 10u);
  EXPECT_EQ(fx.accesses[0].region.end(), 34u);
  EXPECT_EQ(fx.accesses[1].region.space, Space::kWgt);
  EXPECT_EQ(fx.accesses[1].region.end(), 74u);
  EXPECT_EQ(fx.accesses[2].kind, AccessKind::kRead);
  EXPECT_EQ(fx.accesses[2].region.space, Space::kAcc);
  EXPECT_EQ(fx.accesses[3].kind, AccessKind::kWrite);
  EXPECT_EQ(fx.accesses[3].region.end(), 46u);
  EXPECT_EQ(fx.macs, 16u * 27u);
}

TEST(EmuMac, RulesOfTheMacArray) {
  HwConfig cfg = HwConfig::preset("small");  // 8 KiB ACT/WGT, 512 ACC words
  isa::Mac i;
  i.in_c = 4;
  i.out_c = 4;
  {
    HwConfig no = cfg;
    no.supports_a4w4 = false;
    no.supports_a8w4 = false;
    no.supports_a16w8 = false;
    MachineState m(no, 64);
    for (auto [mode, name] : {std::pair{isa::MacMode::A4W4, "a4w4"}, {isa::MacMode::A8W4, "a8w4"},
                              {isa::MacMode::A16W8, "a16w8"}}) {
      i.mode = static_cast<std::int64_t>(mode);
      expect_exec_error([&] { dla::sim::execute(i, m, 9); }, 9,
                        std::string("mac: mode ") + name + " is not supported by the hardware config");
    }
    i.mode = 0;
    EXPECT_NO_THROW(dla::sim::execute(i, m, 9));
  }
  MachineState m(cfg, 64);
  i.mode = static_cast<std::int64_t>(isa::MacMode::A16W8);
  i.act_unsigned = 1;
  expect_exec_error([&] { dla::sim::execute(i, m, 1); }, 1, "a16w8 takes signed i16 activations");
  i.mode = 0;
  i.act_unsigned = 0;
  i.depthwise = 1;
  i.out_c = 5;
  expect_exec_error([&] { dla::sim::execute(i, m, 2); }, 2, "depthwise needs in_c == out_c (in_c = 4, out_c = 5)");
  i.depthwise = 0;
  i.out_c = 4;
  HwConfig k3 = cfg;
  k3.max_kernel = 3;
  MachineState mk(k3, 64);
  i.kernel_h = 4;
  expect_exec_error([&] { dla::sim::execute(i, mk, 3); }, 3, "kernel 4x1 exceeds max_kernel = 3");
  i.kernel_h = 1;
  // Bounds: the activation tile [1000, 1000 + 4*2100*4) past 8 KiB.
  i.act_addr = 1000;
  i.out_w = 255;
  i.out_h = 9;
  expect_exec_error([&] { dla::sim::execute(i, m, 12); }, 12,
                    "instruction 12: mac reads ACT [1000, 10180) past the 8192-byte activation SRAM");
  i.act_addr = 0;
  i.out_w = 1;
  i.out_h = 1;
  i.wgt_addr = 8190;
  expect_exec_error([&] { dla::sim::execute(i, m, 4); }, 4, "mac reads WGT [8190, 8206) past the 8192-byte weight SRAM");
  i.wgt_addr = 0;
  i.acc_addr = 510;
  expect_exec_error([&] { dla::sim::execute(i, m, 4); }, 4, "mac writes ACC [510, 514) past the 512-word accumulator SRAM");
  i.acc_addr = 0;
  i.out_h = 0;
  expect_exec_error([&] { dla::sim::execute(i, m, 6); }, 6, "mac: field out_h = 0 is out of range [1, 255]");
}

// ---------------------------------------------------------------------------
// REQUANT
// ---------------------------------------------------------------------------

TEST(EmuRequant, EveryOutTypeRoundingModeOverflowPolicyAndAccWidth) {
  std::mt19937_64 g(20);
  int cases = 0;
  for (int bits : {16, 24, 32}) {
    for (auto policy : {dla::OverflowPolicy::WRAP, dla::OverflowPolicy::SATURATE_FINAL}) {
      for (int mode = 0; mode < dla::kNumRoundModes; ++mode) {
        for (int type = 0; type < dla::kNumDTypes; ++type) {
          const HwConfig cfg = config_with(bits, policy, static_cast<dla::RoundMode>(mode));
          MachineState m = random_state(cfg, g, 64);
          isa::Requant rq;
          rq.out_type = type;
          rq.pixels = 7;
          rq.channels = 5;  // 35 values: a 4-bit output ends on a half byte
          rq.acc_addr = 40;
          rq.act_addr = 33;
          rq.param_addr = 100;
          SCOPED_TRACE(isa::disassemble(rq) + " acc_bits=" + std::to_string(bits) + " policy=" +
                       std::string(dla::overflow_policy_name(policy)) + " mode=" +
                       std::string(dla::round_mode_name(static_cast<dla::RoundMode>(mode))));
          const std::int64_t big = std::int64_t{1} << (bits + 1);
          const std::int64_t edge[] = {(std::int64_t{1} << (bits - 1)) - 1, std::int64_t{1} << (bits - 1),
                                       -(std::int64_t{1} << (bits - 1)), -(std::int64_t{1} << (bits - 1)) - 1};
          for (int k = 0; k < 35; ++k) {
            m.acc[static_cast<std::size_t>(40 + k)] =
                k < 4 ? edge[k] : (k % 3 == 0 ? rand_int(g, -big, big) : rand_int(g, -(1 << 14), 1 << 14));
          }
          const std::int64_t clips[][2] = {{INT32_MIN, INT32_MAX}, {0, INT32_MAX}, {-5, 50}, {-100000, 3}};
          const auto& clip = clips[rand_int(g, 0, 3)];
          put_i32(m.param, 100, clip[0]);
          put_i32(m.param, 104, clip[1]);
          std::int8_t shifts[5];
          for (int c = 0; c < 5; ++c) {
            shifts[c] = static_cast<std::int8_t>(rand_int(g, -2, 12));
            m.param[static_cast<std::size_t>(108 + c)] = static_cast<std::uint8_t>(shifts[c]);
          }
          const auto info = dla::dtype_info(static_cast<DType>(type));
          const std::int64_t lo = std::max(info.min, clip[0]);
          const std::int64_t hi = std::min(info.max, clip[1]);
          std::vector<std::uint8_t> expected = m.act;
          std::uint64_t overflows = 0, saturations = 0;
          for (int k = 0; k < 35; ++k) {
            const std::int64_t exact = m.acc[static_cast<std::size_t>(40 + k)];
            const std::int64_t amin = -(std::int64_t{1} << (bits - 1)), amax = (std::int64_t{1} << (bits - 1)) - 1;
            std::int64_t a = exact;
            if (exact < amin || exact > amax) {
              ++overflows;
              a = policy == dla::OverflowPolicy::WRAP ? ref_wrap(exact, bits) : ref_clamp(exact, amin, amax);
            }
            const std::int64_t r = dla::round_shift(a, shifts[k % 5], static_cast<dla::RoundMode>(mode));
            const std::int64_t y = ref_clamp(r, lo, hi);
            saturations += y != r;
            set(expected, 33, static_cast<DType>(type), static_cast<std::uint64_t>(k), y);
          }
          const Effects fx = dla::sim::execute(rq, m, 0);
          EXPECT_EQ(m.act, expected);
          EXPECT_EQ(fx.acc_overflows, overflows);
          EXPECT_EQ(fx.saturations, saturations);
          EXPECT_EQ(fx.elements, 35u);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 2 * 4 * 6);
}

TEST(EmuRequant, OverflowsAreCountedAtTheAccWidth) {
  // Sums that overflow 16 bits but not 24: the count follows acc_bits.
  for (int bits : {16, 24}) {
    MachineState m(config_with(bits, dla::OverflowPolicy::WRAP, dla::RoundMode::HALF_UP), 64);
    isa::Requant rq;
    rq.out_type = static_cast<std::int64_t>(DType::I8);
    rq.pixels = 1;
    rq.channels = 4;
    put_i32(m.param, 0, INT32_MIN);
    put_i32(m.param, 4, INT32_MAX);
    m.acc[0] = 40000;    // > 2^15
    m.acc[1] = -40000;
    m.acc[2] = 100;
    m.acc[3] = 9000000;  // > 2^23
    const Effects fx = dla::sim::execute(rq, m, 0);
    EXPECT_EQ(fx.acc_overflows, bits == 16 ? 3u : 1u);
    // WRAP at 16 bits: 40000 - 65536 = -25536 -> i8 saturates to -128.
    EXPECT_EQ(static_cast<std::int8_t>(m.act[0]), bits == 16 ? -128 : 127);
  }
}

TEST(EmuRequant, EmptyClipRangeAndBoundsAreErrors) {
  MachineState m(HwConfig::preset("small"), 64);
  isa::Requant rq;
  rq.out_type = static_cast<std::int64_t>(DType::I8);
  rq.pixels = 2;
  rq.channels = 2;
  put_i32(m.param, 0, 200);  // lo = 200 > i8 max
  put_i32(m.param, 4, 300);
  expect_exec_error([&] { dla::sim::execute(rq, m, 8); }, 8, "requant: parameter record clips [200, 300] leave no value of i8");
  rq.param_addr = 1020;  // 8 + 2 bytes from 1020 pass the 1 KiB PARAM
  expect_exec_error([&] { dla::sim::execute(rq, m, 8); }, 8, "requant reads PARAM [1020, 1030) past the 1024-byte parameter SRAM");
}

// ---------------------------------------------------------------------------
// Vector unit
// ---------------------------------------------------------------------------

TEST(EmuVAdd, AlignmentShiftsClipsAndTypes) {
  std::mt19937_64 g(30);
  for (int trial = 0; trial < 300; ++trial) {
    const auto mode = static_cast<dla::RoundMode>(trial % 4);
    MachineState m = random_state(config_with(32, dla::OverflowPolicy::WRAP, mode), g, 64);
    isa::VAdd v;
    v.a_type = rand_int(g, 0, 4);
    v.b_type = rand_int(g, 0, 4);
    v.y_type = rand_int(g, 0, 4);
    v.count = rand_int(g, 1, 41);
    v.a_addr = rand_int(g, 0, 500);
    v.b_addr = rand_int(g, 0, 500);
    v.y_addr = rand_int(g, 0, 500);  // may overlap a or b: operands are read first
    v.param_addr = rand_int(g, 0, 100);
    const std::int64_t clips[][2] = {{INT32_MIN, INT32_MAX}, {0, INT32_MAX}, {-20, 20}, {3, 3}};
    const auto& clip = clips[rand_int(g, 0, 3)];
    const int sa = static_cast<int>(rand_int(g, 0, 1) ? rand_int(g, 0, 5) : rand_int(g, 0, 31));
    const int sb = static_cast<int>(rand_int(g, 0, 5));
    const int sy = static_cast<int>(rand_int(g, -4, 12));
    const auto pa = static_cast<std::size_t>(v.param_addr);
    put_i32(m.param, pa, clip[0]);
    put_i32(m.param, pa + 4, clip[1]);
    m.param[pa + 8] = static_cast<std::uint8_t>(sa);
    m.param[pa + 9] = static_cast<std::uint8_t>(sb);
    m.param[pa + 10] = static_cast<std::uint8_t>(static_cast<std::int8_t>(sy));
    SCOPED_TRACE(isa::disassemble(v) + " sa=" + std::to_string(sa) + " sb=" + std::to_string(sb) + " sy=" + std::to_string(sy));
    const auto info = dla::dtype_info(static_cast<DType>(v.y_type));
    const std::int64_t lo = std::max(info.min, clip[0]), hi = std::min(info.max, clip[1]);
    std::vector<std::uint8_t> expected = m.act;
    std::uint64_t saturations = 0;
    for (std::int64_t k = 0; k < v.count; ++k) {
      const std::int64_t a = get(m.act, static_cast<std::size_t>(v.a_addr), static_cast<DType>(v.a_type), static_cast<std::uint64_t>(k));
      const std::int64_t b = get(m.act, static_cast<std::size_t>(v.b_addr), static_cast<DType>(v.b_type), static_cast<std::uint64_t>(k));
      const std::int64_t r = dla::round_shift(a * (std::int64_t{1} << sa) + b * (std::int64_t{1} << sb), sy, mode);
      const std::int64_t y = ref_clamp(r, lo, hi);
      saturations += y != r;
      set(expected, static_cast<std::size_t>(v.y_addr), static_cast<DType>(v.y_type), static_cast<std::uint64_t>(k), y);
    }
    const Effects fx = dla::sim::execute(v, m, 0);
    EXPECT_EQ(m.act, expected);
    EXPECT_EQ(fx.saturations, saturations);
  }
}

TEST(EmuVAdd, RecordShiftsOutsideTheAlignmentRangeAreErrors) {
  MachineState m(HwConfig::preset("default"), 64);
  isa::VAdd v;
  put_i32(m.param, 0, INT32_MIN);
  put_i32(m.param, 4, INT32_MAX);
  m.param[8] = 32;
  expect_exec_error([&] { dla::sim::execute(v, m, 2); }, 2, "shift_a = 32, shift_b = 0 must lie in [0, 31]");
  m.param[8] = 0;
  m.param[9] = 0xFF;  // -1
  expect_exec_error([&] { dla::sim::execute(v, m, 2); }, 2, "shift_b = -1 must lie in [0, 31]");
  m.param[9] = 0;
  EXPECT_NO_THROW(dla::sim::execute(v, m, 2));
  v.a_type = 5;  // i32 is not a vector type
  expect_exec_error([&] { dla::sim::execute(v, m, 2); }, 2, "vadd: field a_type = 5 is out of range [0, 4]");
}

TEST(EmuVMaxPool, WindowsWithPaddingAndEmptyWindows) {
  std::mt19937_64 g(31);
  for (int trial = 0; trial < 200; ++trial) {
    MachineState m = random_state(HwConfig::preset("default"), g, 64);
    isa::VMaxPool p;
    p.type = rand_int(g, 0, 4);
    p.in_h = rand_int(g, 1, 9);
    p.in_w = rand_int(g, 1, 9);
    p.out_h = rand_int(g, 1, 7);  // may reach windows entirely in the padding
    p.out_w = rand_int(g, 1, 7);
    p.channels = rand_int(g, 1, 7);
    p.kernel_h = rand_int(g, 1, 4);
    p.kernel_w = rand_int(g, 1, 4);
    p.stride_h = rand_int(g, 1, 3);
    p.stride_w = rand_int(g, 1, 3);
    p.pad_top = rand_int(g, 0, 3);
    p.pad_left = rand_int(g, 0, 3);
    p.in_addr = rand_int(g, 0, 300);
    p.out_addr = 2000 + rand_int(g, 0, 300);
    SCOPED_TRACE(isa::disassemble(p));
    const auto t = static_cast<DType>(p.type);
    std::vector<std::uint8_t> expected = m.act;
    for (std::int64_t oh = 0; oh < p.out_h; ++oh)
      for (std::int64_t ow = 0; ow < p.out_w; ++ow)
        for (std::int64_t c = 0; c < p.channels; ++c) {
          std::int64_t y = dla::dtype_info(t).min;
          for (std::int64_t kh = 0; kh < p.kernel_h; ++kh)
            for (std::int64_t kw = 0; kw < p.kernel_w; ++kw) {
              const std::int64_t ih = oh * p.stride_h + kh - p.pad_top, iw = ow * p.stride_w + kw - p.pad_left;
              if (ih < 0 || ih >= p.in_h || iw < 0 || iw >= p.in_w) continue;
              y = std::max(y, get(m.act, static_cast<std::size_t>(p.in_addr), t,
                                  static_cast<std::uint64_t>((ih * p.in_w + iw) * p.channels + c)));
            }
          set(expected, static_cast<std::size_t>(p.out_addr), t,
              static_cast<std::uint64_t>((oh * p.out_w + ow) * p.channels + c), y);
        }
    dla::sim::execute(p, m, 0);
    EXPECT_EQ(m.act, expected);
  }
}

TEST(EmuVAvgPool, HardwareMultiplierAndShift) {
  std::mt19937_64 g(32);
  for (int trial = 0; trial < 200; ++trial) {
    const auto mode = static_cast<dla::RoundMode>(trial % 4);
    HwConfig cfg = config_with(32, dla::OverflowPolicy::WRAP, mode);
    cfg.avgpool_shift = rand_int(g, 8, 15);
    MachineState m = random_state(cfg, g, 64);
    isa::VAvgPool p;
    p.in_type = rand_int(g, 0, 4);
    p.out_type = rand_int(g, 0, 4);
    p.out_h = rand_int(g, 1, 4);
    p.out_w = rand_int(g, 1, 4);
    p.channels = rand_int(g, 1, 6);
    p.kernel_h = rand_int(g, 1, 5);
    p.kernel_w = rand_int(g, 1, 5);
    p.stride_h = rand_int(g, 1, 3);
    p.stride_w = rand_int(g, 1, 3);
    p.in_addr = rand_int(g, 0, 300);
    p.out_addr = 3000 + rand_int(g, 0, 300);
    p.param_addr = rand_int(g, 0, 100);
    const auto pa = static_cast<std::size_t>(p.param_addr);
    const std::int64_t clips[][2] = {{INT32_MIN, INT32_MAX}, {0, INT32_MAX}, {-20, 20}};
    const auto& clip = clips[rand_int(g, 0, 2)];
    put_i32(m.param, pa, clip[0]);
    put_i32(m.param, pa + 4, clip[1]);
    const int shift = static_cast<int>(cfg.avgpool_shift + rand_int(g, -3, 3));
    m.param[pa + 8] = static_cast<std::uint8_t>(static_cast<std::int8_t>(shift));
    SCOPED_TRACE(isa::disassemble(p) + " S=" + std::to_string(cfg.avgpool_shift) + " shift=" + std::to_string(shift));
    const std::int64_t n = p.kernel_h * p.kernel_w;
    // M = round(2^S / N), ties up, computed here without numerics.hpp.
    const std::int64_t two_s = std::int64_t{1} << cfg.avgpool_shift;
    const std::int64_t mult = (2 * two_s + n) / (2 * n);
    const std::int64_t in_w = (p.out_w - 1) * p.stride_w + p.kernel_w;
    const auto it = static_cast<DType>(p.in_type), ot = static_cast<DType>(p.out_type);
    const std::int64_t lo = std::max(dla::dtype_info(ot).min, clip[0]), hi = std::min(dla::dtype_info(ot).max, clip[1]);
    std::vector<std::uint8_t> expected = m.act;
    std::uint64_t saturations = 0;
    for (std::int64_t oh = 0; oh < p.out_h; ++oh)
      for (std::int64_t ow = 0; ow < p.out_w; ++ow)
        for (std::int64_t c = 0; c < p.channels; ++c) {
          std::int64_t sum = 0;
          for (std::int64_t kh = 0; kh < p.kernel_h; ++kh)
            for (std::int64_t kw = 0; kw < p.kernel_w; ++kw)
              sum += get(m.act, static_cast<std::size_t>(p.in_addr), it,
                         static_cast<std::uint64_t>(((oh * p.stride_h + kh) * in_w + ow * p.stride_w + kw) * p.channels + c));
          const std::int64_t r = dla::round_shift(sum * mult, shift, mode);
          const std::int64_t y = ref_clamp(r, lo, hi);
          saturations += y != r;
          set(expected, static_cast<std::size_t>(p.out_addr), ot,
              static_cast<std::uint64_t>((oh * p.out_w + ow) * p.channels + c), y);
        }
    const Effects fx = dla::sim::execute(p, m, 0);
    EXPECT_EQ(m.act, expected);
    EXPECT_EQ(fx.saturations, saturations);
  }
}

TEST(EmuVAvgPool, MultiplierThatDoesNotFitIsAnError) {
  HwConfig cfg = HwConfig::preset("default");
  cfg.avgpool_shift = 0;  // M = round(1 / 9) = 0
  MachineState m(cfg, 64);
  isa::VAvgPool p;
  p.kernel_h = 3;
  p.kernel_w = 3;
  expect_exec_error([&] { dla::sim::execute(p, m, 4); }, 4,
                    "vavgpool: the multiplier M = round(2^0 / 9) of a 3x3 window does not fit in 16 bits");
  cfg.avgpool_shift = 31;  // M = 2^31 for a 1x1 window
  MachineState m2(cfg, 64);
  p.kernel_h = 1;
  p.kernel_w = 1;
  expect_exec_error([&] { dla::sim::execute(p, m2, 4); }, 4, "M = round(2^31 / 1)");
  p.kernel_h = 128;  // 2^31 / (128 * 255) rounds to 65794 > 65535
  p.kernel_w = 255;
  expect_exec_error([&] { dla::sim::execute(p, m2, 4); }, 4, "does not fit in 16 bits");
}

TEST(EmuVUpsample, NearestTimesTwoForEveryType) {
  std::mt19937_64 g(33);
  for (int type = 0; type < 5; ++type) {
    for (int trial = 0; trial < 10; ++trial) {
      MachineState m = random_state(HwConfig::preset("default"), g, 64);
      isa::VUpsample u;
      u.type = type;
      u.in_h = rand_int(g, 1, 5);
      u.in_w = rand_int(g, 1, 5);
      u.channels = rand_int(g, 1, 5);  // odd counts for the 4-bit types
      u.in_addr = rand_int(g, 0, 100);
      u.out_addr = 1000 + rand_int(g, 0, 100);
      SCOPED_TRACE(isa::disassemble(u));
      const auto t = static_cast<DType>(type);
      std::vector<std::uint8_t> expected = m.act;
      for (std::int64_t h = 0; h < u.in_h; ++h)
        for (std::int64_t w = 0; w < u.in_w; ++w)
          for (std::int64_t c = 0; c < u.channels; ++c)
            for (int i = 0; i < 2; ++i)
              for (int j = 0; j < 2; ++j) {
                const std::int64_t x = get(m.act, static_cast<std::size_t>(u.in_addr), t,
                                           static_cast<std::uint64_t>((h * u.in_w + w) * u.channels + c));
                set(expected, static_cast<std::size_t>(u.out_addr), t,
                    static_cast<std::uint64_t>(((2 * h + i) * 2 * u.in_w + 2 * w + j) * u.channels + c), x);
              }
      dla::sim::execute(u, m, 0);
      EXPECT_EQ(m.act, expected);
    }
  }
}

TEST(EmuVCopy, CopiesBytesAndRefusesOverlap) {
  std::mt19937_64 g(34);
  MachineState m = random_state(HwConfig::preset("default"), g, 64);
  isa::VCopy c;
  c.src_addr = 100;
  c.dst_addr = 5000;
  c.bytes = 777;
  std::vector<std::uint8_t> expected = m.act;
  std::copy_n(m.act.begin() + 100, 777, expected.begin() + 5000);
  dla::sim::execute(c, m, 0);
  EXPECT_EQ(m.act, expected);
  c.dst_addr = 876;  // [100, 877) and [876, 1653) share byte 876
  expect_exec_error([&] { dla::sim::execute(c, m, 3); }, 3, "vcopy: source [100, 877) and destination [876, 1653) overlap");
  c.dst_addr = 877;
  EXPECT_NO_THROW(dla::sim::execute(c, m, 3));
}

TEST(EmuWindows, AnOutputThatOverlapsTheInputIsRefused) {
  // The vector unit streams windows: a group's output is written while later groups still
  // read the input, so an overlap would read outputs back.
  std::mt19937_64 g(36);
  MachineState m = random_state(HwConfig::preset("default"), g, 64);
  const auto i8 = static_cast<std::int64_t>(DType::I8);
  isa::VMaxPool mp;
  mp.type = i8;
  mp.channels = 4;
  mp.in_h = mp.in_w = 4;  // input [1000, 1064)
  mp.out_h = mp.out_w = 2;
  mp.kernel_h = mp.kernel_w = mp.stride_h = mp.stride_w = 2;
  mp.in_addr = 1000;
  mp.out_addr = 1063;  // output [1063, 1079) shares byte 1063
  expect_exec_error([&] { dla::sim::execute(mp, m, 2); }, 2,
                    "vmaxpool: input [1000, 1064) and output [1063, 1079) overlap");
  mp.out_addr = 1064;
  EXPECT_NO_THROW(dla::sim::execute(mp, m, 2));
  isa::VAvgPool ap;
  ap.in_type = ap.out_type = i8;
  ap.channels = 4;
  ap.out_h = ap.out_w = 2;
  ap.kernel_h = ap.kernel_w = ap.stride_h = ap.stride_w = 2;
  ap.in_addr = 1000;
  ap.out_addr = 990;  // output [990, 1006)
  expect_exec_error([&] { dla::sim::execute(ap, m, 5); }, 5, "vavgpool: input [1000, 1064) and output [990, 1006) overlap");
  isa::VUpsample up;
  up.type = i8;
  up.channels = 4;
  up.in_h = up.in_w = 2;  // input [1000, 1016), output 64 bytes
  up.in_addr = 1000;
  up.out_addr = 1000;
  expect_exec_error([&] { dla::sim::execute(up, m, 7); }, 7, "vupsample: input [1000, 1016) and output [1000, 1064) overlap");
}

// VLUT: the table in PARAM, direct for 4/8-bit inputs, interpolated for i16. The expected
// values come from the ISA's maths written out here with exact floor division (the header
// uses round_shift on the knot difference).
TEST(EmuVLut, DirectAndInterpolatedLookupForEveryType) {
  std::mt19937_64 g(35);
  for (int trial = 0; trial < 60; ++trial) {
    const auto mode = static_cast<dla::RoundMode>(trial % 4);
    MachineState m = random_state(config_with(32, dla::OverflowPolicy::WRAP, mode), g, 64);
    isa::VLut l;
    l.in_type = rand_int(g, 0, 4);
    l.out_type = rand_int(g, 0, 4);
    l.count = rand_int(g, 1, 300);
    l.in_addr = rand_int(g, 0, 300);
    l.out_addr = trial % 3 == 0 ? l.in_addr : 3000 + rand_int(g, 0, 300);  // in place too
    l.param_addr = rand_int(g, 0, 200);
    const auto it = static_cast<DType>(l.in_type), ot = static_cast<DType>(l.out_type);
    const std::int64_t in_min = dla::dtype_info(it).min;
    const int bits = dla::dtype_info(it).bits;
    const std::size_t entries = bits == 16 ? 257 : std::size_t{1} << bits;
    // Entries span a little beyond the output type, so some clamps happen.
    std::vector<std::int64_t> table(entries);
    for (auto& e : table) e = rand_int(g, dla::dtype_info(ot).min - 3, dla::dtype_info(ot).max + 3);
    for (std::size_t j = 0; j < entries; ++j) {
      const auto v = static_cast<std::uint16_t>(static_cast<std::int16_t>(table[j]));
      m.param[static_cast<std::size_t>(l.param_addr) + 2 * j] = static_cast<std::uint8_t>(v);
      m.param[static_cast<std::size_t>(l.param_addr) + 2 * j + 1] = static_cast<std::uint8_t>(v >> 8);
    }
    SCOPED_TRACE(isa::disassemble(l));
    std::vector<std::uint8_t> expected = m.act;
    std::uint64_t saturations = 0;
    for (std::int64_t i = 0; i < l.count; ++i) {
      const std::int64_t x = get(m.act, static_cast<std::size_t>(l.in_addr), it, static_cast<std::uint64_t>(i));
      std::int64_t r = 0;
      if (bits != 16) {
        r = table[static_cast<std::size_t>(x - in_min)];
      } else {
        const std::int64_t pos = x + 32768, j = pos / 256, t = pos % 256;
        const std::int64_t lo = table[static_cast<std::size_t>(j)], hi = table[static_cast<std::size_t>(j + 1)];
        const std::int64_t num = (hi - lo) * t;  // the step, in 1/256
        std::int64_t q = num / 256, rem = num % 256;
        if (rem < 0) { q -= 1; rem += 256; }
        bool up = false;
        if (mode == dla::RoundMode::HALF_UP) up = rem >= 128;
        if (mode == dla::RoundMode::HALF_AWAY) up = rem > 128 || (rem == 128 && num >= 0);
        if (mode == dla::RoundMode::HALF_EVEN) up = rem > 128 || (rem == 128 && q % 2 != 0);
        r = lo + q + (up ? 1 : 0);
      }
      const std::int64_t y = ref_clamp(r, dla::dtype_info(ot).min, dla::dtype_info(ot).max);
      saturations += y != r;
      set(expected, static_cast<std::size_t>(l.out_addr), ot, static_cast<std::uint64_t>(i), y);
    }
    const Effects fx = dla::sim::execute(l, m, 0);
    EXPECT_EQ(m.act, expected);
    EXPECT_EQ(fx.saturations, saturations);
  }
}

TEST(EmuVLut, AConfigWithoutTheLookupTableUnitRefusesIt) {
  HwConfig hw = HwConfig::preset("small");
  hw.lut_lanes = 0;
  MachineState m(hw, 64);
  isa::VLut l;
  l.count = 4;
  l.in_type = static_cast<std::int64_t>(DType::I8);
  expect_exec_error([&] { dla::sim::execute(l, m, 3); }, 3, "vlut: the hardware config has no lookup-table unit");
}

TEST(EmuVLut, TableBeyondParamIsAnError) {
  MachineState m(HwConfig::preset("small"), 64);  // PARAM 1 KiB
  isa::VLut l;
  l.in_type = static_cast<std::int64_t>(DType::I16);  // 514-byte table
  l.param_addr = 600;
  expect_exec_error([&] { dla::sim::execute(l, m, 2); }, 2, "vlut reads PARAM [600, 1114) past the 1024-byte parameter SRAM");
}

// ---------------------------------------------------------------------------
// Bounds of every buffer, through the variant dispatch.
// ---------------------------------------------------------------------------

TEST(EmuBounds, EveryBufferAndDramRefusesOverruns) {
  MachineState m(HwConfig::preset("small"), 1000);  // ACT/WGT 8 KiB, ACC 512 words, PARAM 1 KiB
  struct Case {
    isa::Instruction insn;
    std::string text;
  };
  std::vector<Case> cases;
  {
    isa::Load l;
    l.dram_addr = 990;
    l.row_bytes = 20;
    cases.push_back({l, "load reads DRAM [990, 1010) past the program's 1000-byte DRAM"});
    l.dram_addr = 0;
    l.rows = 3;
    l.dram_stride = 400;  // rows at 0, 400, 800: the last ends at 820
    l.sram_addr = 8180;
    cases.push_back({l, "load writes ACT [8180, 8200) past the 8192-byte activation SRAM"});
    l.rows = 1;
    l.sram_addr = 0;
    l.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
    l.row_bytes = 16;
    l.rows = 2;
    l.sram_stride = 508;
    cases.push_back({l, "load writes ACC [0, 512) past"});  // fits exactly: no error expected
    l.sram_stride = 509;
    cases.push_back({l, "load writes ACC [0, 513) past the 512-word accumulator SRAM"});
    l.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
    l.row_bytes = 30;
    l.rows = 1;
    l.sram_addr = 1000;
    cases.push_back({l, "load writes PARAM [1000, 1030) past the 1024-byte parameter SRAM"});
  }
  {
    isa::Store s;
    s.row_bytes = 10;
    s.dram_addr = 995;
    cases.push_back({s, "store writes DRAM [995, 1005) past the program's 1000-byte DRAM"});
    s.dram_addr = 0;
    s.sram_addr = 8190;
    cases.push_back({s, "store reads ACT [8190, 8200) past the 8192-byte activation SRAM"});
  }
  {
    isa::VAdd v;
    v.count = 100;
    v.y_type = static_cast<std::int64_t>(DType::I16);
    v.y_addr = 8000;
    cases.push_back({v, "vadd writes ACT [8000, 8200) past the 8192-byte activation SRAM"});
    isa::VUpsample u;
    u.in_h = 10;
    u.in_w = 10;
    u.channels = 21;
    u.type = static_cast<std::int64_t>(DType::I4);  // 2100 elements in, 8400 out = 4200 bytes
    u.out_addr = 4000;
    cases.push_back({u, "vupsample writes ACT [4000, 8200) past"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(isa::disassemble(c.insn));
    MachineState copy = m;
    if (c.text == "load writes ACC [0, 512) past") {
      EXPECT_NO_THROW(dla::sim::execute(c.insn, copy, 17));
      continue;
    }
    expect_exec_error([&] { dla::sim::execute(c.insn, copy, 17); }, 17, c.text);
    // describe() applies the same rules without touching data.
    expect_exec_error([&] { dla::sim::describe(c.insn, copy, 17); }, 17, c.text);
    EXPECT_EQ(copy.act, m.act);
    EXPECT_EQ(copy.dram, m.dram);
  }
}

// describe() then perform() (how a timing engine executes) is execute().
TEST(EmuSemantics, DescribeThenPerformEqualsExecute) {
  std::mt19937_64 g(40);
  const HwConfig cfg = HwConfig::preset("default");
  std::vector<isa::Instruction> insns;
  for (int k = 0; k < 5; ++k) insns.push_back(random_mac(g, static_cast<isa::MacMode>(k % 4), false, k == 4));
  isa::Requant rq;
  rq.out_type = static_cast<std::int64_t>(DType::I8);
  rq.pixels = 9;
  rq.channels = 3;
  insns.push_back(rq);
  isa::Load ld;
  ld.row_bytes = 100;
  ld.rows = 3;
  ld.dram_stride = 7;
  ld.sram_stride = 120;
  insns.push_back(ld);
  for (const auto& insn : insns) {
    SCOPED_TRACE(isa::disassemble(insn));
    MachineState a = random_state(cfg, g, 4096);
    put_i32(a.param, 0, -100);  // a valid clip record for REQUANT
    put_i32(a.param, 4, 100);
    MachineState b = a;
    const Effects fa = dla::sim::execute(insn, a, 0);
    const Effects fb = dla::sim::perform(insn, b, 0, dla::sim::describe(insn, b, 0));
    EXPECT_EQ(a.act, b.act);
    EXPECT_EQ(a.acc, b.acc);
    EXPECT_EQ(fa.macs, fb.macs);
    EXPECT_EQ(fa.saturations, fb.saturations);
    EXPECT_EQ(fa.num_accesses, fb.num_accesses);
  }
}

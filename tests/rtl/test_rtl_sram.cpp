// test_rtl_sram.cpp — the Verilated banked SRAM (rtl_models/rtl/dla_sram.sv) against a
// plain array of elements and HwConfig::sram_access_clocks: random contiguous reads and
// writes of 1..PORT elements at any address, their data (zero past the length) and the
// clocks each access takes; back-to-back accesses without a bubble; a read and a write in
// the same clocks on disjoint and on the same elements (the read sees the old values).
// Three models: a byte buffer of the preset's banks, an ACC buffer of 48-bit words and a
// single bank of 4 bytes (accesses of up to 5 clocks).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "Vdla_sram.h"
#include "Vdla_sram_acc.h"
#include "Vdla_sram_one.h"
#include "dla/hw_config.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;

/// A model's geometry (its Verilator -G parameters, rtl_models/CMakeLists.txt) and the
/// config whose sram_access_clocks gives its clocks for byte addresses `scale` x element.
struct Geometry {
  int elems = 0;
  int elem_bits = 8;
  int port = 0;
  std::uint64_t scale = 1;
  dla::HwConfig hw;
};

Geometry byte_buffer() {
  Geometry g;
  g.hw = dla::HwConfig::preset(DLA_RTL_PRESET);
  g.elems = 2048;
  g.port = static_cast<int>(g.hw.sram_banks * g.hw.sram_bank_bytes);
  return g;
}

Geometry acc_buffer() {  // 4 words of 4 nominal bytes to a 16-byte bank word
  Geometry g;
  g.hw = dla::HwConfig::preset(DLA_RTL_PRESET);
  g.hw.sram_bank_bytes = 16;
  g.elems = 512;
  g.elem_bits = 48;
  g.port = 16;
  g.scale = 4;
  return g;
}

Geometry one_bank() {
  Geometry g;
  g.hw = dla::HwConfig::preset(DLA_RTL_PRESET);
  g.hw.sram_banks = 1;
  g.hw.sram_bank_bytes = 4;
  g.elems = 256;
  g.port = 16;
  return g;
}

/// Sets a narrow (integer) port.
template <class Port>
void set(Port& port, std::int64_t v) {
  port = static_cast<Port>(v);
}

/// Drives one model and keeps the reference array.
template <class M>
class Sram {
 public:
  explicit Sram(Geometry g) : g_(g), ref_(static_cast<std::size_t>(g.elems), 0) {
    dut_->rd_req_i = 0;
    dut_->wr_req_i = 0;
  }

  std::uint64_t clocks(int addr, int len) const {
    return g_.hw.sram_access_clocks(static_cast<std::uint64_t>(addr) * g_.scale, static_cast<std::uint64_t>(len) * g_.scale);
  }

  std::int64_t random_value(EdgeRandom& rnd) const {
    return rnd.value(-(std::int64_t{1} << (g_.elem_bits - 1)), (std::int64_t{1} << (g_.elem_bits - 1)) - 1);
  }

  /// Presents a write of `data` at `addr` (not clocked).
  void present_write(int addr, const std::vector<std::int64_t>& data) {
    dut_->wr_req_i = 1;
    set(dut_->wr_addr_i, addr);
    set(dut_->wr_len_i, static_cast<std::int64_t>(data.size()));
    for (int e = 0; e < g_.port; ++e) {
      put(dut_->wr_data_i, e * g_.elem_bits, g_.elem_bits, e < static_cast<int>(data.size()) ? data[static_cast<std::size_t>(e)] : 0);
    }
  }
  void present_read(int addr, int len) {
    dut_->rd_req_i = 1;
    set(dut_->rd_addr_i, addr);
    set(dut_->rd_len_i, len);
  }

  /// A write alone: returns the clocks it took (accept to wr_done_o, inclusive).
  std::uint64_t write(int addr, const std::vector<std::int64_t>& data) {
    dut_->eval();
    EXPECT_EQ(dut_->wr_ready_o, 1) << "write port busy before a write";
    present_write(addr, data);
    std::uint64_t n = 0;
    for (;;) {
      dut_->eval();
      const bool done = dut_->wr_done_o != 0;
      dut_.tick();
      dut_->wr_req_i = 0;
      ++n;
      if (done || n > 64) break;
    }
    for (std::size_t e = 0; e < data.size(); ++e) ref_[static_cast<std::size_t>(addr) + e] = data[e];
    return n;
  }

  /// A read alone: the clocks until rd_valid_o, and the data then.
  std::uint64_t read(int addr, int len, std::vector<std::int64_t>* data) {
    dut_->eval();
    EXPECT_EQ(dut_->rd_ready_o, 1) << "read port busy before a read";
    present_read(addr, len);
    std::uint64_t n = 0;
    do {
      dut_.tick();
      dut_->rd_req_i = 0;
      dut_->eval();
      ++n;
    } while (!dut_->rd_valid_o && n <= 64);
    *data = port_data();
    return n;
  }

  std::vector<std::int64_t> port_data() {
    std::vector<std::int64_t> v;
    for (int e = 0; e < g_.port; ++e) v.push_back(get_signed(dut_->rd_data_o, e * g_.elem_bits, g_.elem_bits));
    return v;
  }

  /// Random values in the whole buffer, a port's width at a time (each write's clocks checked).
  void fill(EdgeRandom& rnd) {
    for (int a = 0; a < g_.elems; a += g_.port) {
      std::vector<std::int64_t> data;
      for (int e = 0; e < g_.port; ++e) data.push_back(random_value(rnd));
      ASSERT_EQ(write(a, data), clocks(a, g_.port)) << "fill of " << g_.port << " at " << a;
    }
  }

  /// The reference's elements [addr, addr + len), zero-padded to the port's width.
  std::vector<std::int64_t> expected(int addr, int len) const {
    std::vector<std::int64_t> v(static_cast<std::size_t>(g_.port), 0);
    for (int e = 0; e < len; ++e) v[static_cast<std::size_t>(e)] = ref_[static_cast<std::size_t>(addr + e)];
    return v;
  }

  const Geometry& geometry() const { return g_; }
  Block<M>& dut() { return dut_; }
  std::vector<std::int64_t>& ref() { return ref_; }

 private:
  Geometry g_;
  Block<M> dut_;
  std::vector<std::int64_t> ref_;
};

std::string where(const char* what, int addr, int len) {
  return std::string(what) + " of " + std::to_string(len) + " at " + std::to_string(addr);
}

/// Random writes and reads, one at a time: data and clocks.
template <class M>
void random_accesses(const Geometry& g, std::uint32_t seed) {
  Sram<M> s(g);
  EdgeRandom rnd(seed);
  s.fill(rnd);  // every read has known data
  std::uint64_t multi = 0;
  for (int n = 0; n < 3000; ++n) {
    const int len = static_cast<int>(rnd.coin() ? rnd.value(1, g.port) : (rnd.coin() ? g.port : 1));
    const int addr = static_cast<int>(rnd.value(0, g.elems - len));
    if (rnd.coin()) {
      std::vector<std::int64_t> data;
      for (int e = 0; e < len; ++e) data.push_back(s.random_value(rnd));
      ASSERT_EQ(s.write(addr, data), s.clocks(addr, len)) << where("write", addr, len);
    } else {
      std::vector<std::int64_t> got;
      const std::uint64_t clocks = s.read(addr, len, &got);
      ASSERT_EQ(clocks, s.clocks(addr, len)) << where("read", addr, len);
      ASSERT_EQ(got, s.expected(addr, len)) << where("read", addr, len);
      multi += clocks > 1;
    }
  }
  EXPECT_GT(multi, 100u) << "too few accesses took more than one clock";
}

/// The geometry outputs (which the rtl engine checks against the config) are the model's
/// elaborated parameters: word = bank bytes / (element bytes: 4 nominal for ACC words).
template <class M>
void geometry_outputs(const Geometry& g) {
  Sram<M> s(g);
  auto& dut = s.dut();
  EXPECT_EQ(dut->geom_elems_o, static_cast<std::uint32_t>(g.elems));
  EXPECT_EQ(dut->geom_port_o, static_cast<std::uint32_t>(g.port));
  EXPECT_EQ(dut->geom_banks_o, static_cast<std::uint32_t>(g.hw.sram_banks));
  EXPECT_EQ(dut->geom_word_o, static_cast<std::uint32_t>(g.hw.sram_bank_bytes / static_cast<std::int64_t>(g.scale)));
}

/// Out of reset both ports are ready and idle: no access in flight, no valid read, no
/// write done, through idle clocks.
template <class M>
void idle_out_of_reset(const Geometry& g) {
  Sram<M> s(g);
  auto& dut = s.dut();
  for (int clock = 0; clock < 4; ++clock) {
    dut->eval();
    EXPECT_EQ(dut->rd_ready_o, 1) << "clock " << clock;
    EXPECT_EQ(dut->wr_ready_o, 1) << "clock " << clock;
    EXPECT_EQ(dut->rd_valid_o, 0) << "clock " << clock;
    EXPECT_EQ(dut->wr_done_o, 0) << "clock " << clock;
    dut.tick();
  }
}

TEST(RtlSram, IdleOutOfReset) {
  idle_out_of_reset<Vdla_sram>(byte_buffer());
  idle_out_of_reset<Vdla_sram_acc>(acc_buffer());
  idle_out_of_reset<Vdla_sram_one>(one_bank());
}

TEST(RtlSram, GeometryOutputsAreTheElaboratedParameters) {
  geometry_outputs<Vdla_sram>(byte_buffer());
  geometry_outputs<Vdla_sram_acc>(acc_buffer());
  geometry_outputs<Vdla_sram_one>(one_bank());
}

TEST(RtlSram, BytesOfThePresetsBanks) { random_accesses<Vdla_sram>(byte_buffer(), 0x5a0001); }
TEST(RtlSram, AccumulatorWords) { random_accesses<Vdla_sram_acc>(acc_buffer(), 0x5a0002); }
TEST(RtlSram, OneBankTakesAClockPerWord) { random_accesses<Vdla_sram_one>(one_bank(), 0x5a0003); }

/// Reads issued whenever the port is ready: each takes its own clocks, no bubble between.
template <class M>
void back_to_back_reads(const Geometry& g, std::uint32_t seed) {
  Sram<M> s(g);
  EdgeRandom rnd(seed);
  s.fill(rnd);
  struct Access {
    int addr, len;
  };
  std::vector<Access> reads;
  std::uint64_t want = 0;
  for (int n = 0; n < 300; ++n) {
    const int len = static_cast<int>(rnd.value(1, g.port));
    reads.push_back({static_cast<int>(rnd.value(0, g.elems - len)), len});
    want += s.clocks(reads.back().addr, len);
  }
  auto& dut = s.dut();
  std::size_t issued = 0, done = 0;
  std::uint64_t cycles = 0;
  while (done < reads.size() && cycles < 100 * reads.size()) {
    dut->rd_req_i = 0;
    dut->eval();
    if (dut->rd_valid_o) {
      const Access& r = reads[done];
      ASSERT_EQ(s.port_data(), s.expected(r.addr, r.len)) << where("read", r.addr, r.len) << " (number " << done << ")";
      ++done;
    }
    if (issued < reads.size() && dut->rd_ready_o) {
      s.present_read(reads[issued].addr, reads[issued].len);
      ++issued;
    }
    dut.tick();
    ++cycles;
  }
  ASSERT_EQ(done, reads.size());
  // The last read's data shows the clock after its last chunk.
  EXPECT_EQ(cycles, want + 1);
}

TEST(RtlSram, BackToBackReadsTakeTheirClocksWithoutBubbles) {
  back_to_back_reads<Vdla_sram>(byte_buffer(), 0x5a0004);
  back_to_back_reads<Vdla_sram_one>(one_bank(), 0x5a0005);
}

/// A read and a write accepted in the same clock: on disjoint elements both complete as
/// alone; on the same elements (one chunk each) the read returns the values before the write.
template <class M>
void read_and_write_together(const Geometry& g, std::uint32_t seed) {
  Sram<M> s(g);
  EdgeRandom rnd(seed);
  s.fill(rnd);
  auto& dut = s.dut();
  const int half = g.elems / 2;
  for (int n = 0; n < 500; ++n) {
    const bool same = n % 2 == 1;
    const int len = static_cast<int>(rnd.value(1, same ? 1 : g.port));
    const int ra = static_cast<int>(rnd.value(0, half - len));
    const int wa = same ? ra : static_cast<int>(rnd.value(half, g.elems - len));
    std::vector<std::int64_t> data;
    for (int e = 0; e < len; ++e) data.push_back(s.random_value(rnd));
    const std::vector<std::int64_t> before = s.expected(ra, len);
    s.present_read(ra, len);
    s.present_write(wa, data);
    std::uint64_t rclocks = 0, wclocks = 0;
    bool rdone = false, wdone = false;
    for (std::uint64_t c = 0; c < 64 && !(rdone && wdone); ++c) {
      dut->eval();
      if (!rdone && c > 0 && dut->rd_valid_o) {
        rdone = true;
        rclocks = c;
        ASSERT_EQ(s.port_data(), before) << where(same ? "read beside a write to it" : "read beside a write", ra, len);
      }
      const bool wlast = !wdone && dut->wr_done_o;
      dut.tick();
      dut->rd_req_i = 0;
      dut->wr_req_i = 0;
      if (wlast) {
        wdone = true;
        wclocks = c + 1;
      }
    }
    for (std::size_t e = 0; e < data.size(); ++e) s.ref()[static_cast<std::size_t>(wa) + e] = data[e];
    ASSERT_TRUE(rdone && wdone) << where("read", ra, len) << ", " << where("write", wa, len);
    EXPECT_EQ(rclocks, s.clocks(ra, len)) << where("read", ra, len);
    EXPECT_EQ(wclocks, s.clocks(wa, len)) << where("write", wa, len);
    std::vector<std::int64_t> got;
    s.read(wa, len, &got);
    ASSERT_EQ(got, s.expected(wa, len)) << where("read after the write", wa, len);
  }
}

TEST(RtlSram, AReadAndAWriteInTheSameClocks) {
  read_and_write_together<Vdla_sram>(byte_buffer(), 0x5a0006);
  read_and_write_together<Vdla_sram_acc>(acc_buffer(), 0x5a0007);
}

}  // namespace

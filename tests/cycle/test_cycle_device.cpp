// The cycle model as a device: exact cycle counts of small programs worked out by hand
// (decode, DRAM latency and bandwidth, bursts, contention, token waits, MAC pipeline),
// the report's stall attribution, the VCD trace and its windows, and many runs and
// devices in one process (a fresh SystemC context per run).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../emu/conv_program.hpp"
#include "../emu/emu_test_util.hpp"
#include "../support/device_programs.hpp"
#include "../support/files.hpp"
#include "cycle_test_util.hpp"

using namespace cycle_test;
using dla::ProgramBuilder;
using dla::sim::CycleReport;
using dla::sim::Stall;
using dla::testing::slurp;
namespace fs = std::filesystem;

namespace {

std::uint64_t stall(const CycleReport& r, int unit, Stall s) {
  return r.units[static_cast<std::size_t>(unit)].stalls[static_cast<std::size_t>(s)];
}

isa::Load load(std::uint64_t dram, std::int64_t bytes, std::int64_t sram = 0) {
  isa::Load l;
  l.dram_addr = static_cast<std::int64_t>(dram);
  l.row_bytes = bytes;
  l.sram_addr = sram;
  return l;
}

/// Timestamps (ps) of a VCD file.
std::vector<std::uint64_t> vcd_times(const std::string& text) {
  std::vector<std::uint64_t> t;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '#') t.push_back(std::stoull(line.substr(1)));
  }
  return t;
}

}  // namespace

TEST(CycleDevice, OneLoadTakesDecodeLatencyAndBursts) {
  const HwConfig hw = HwConfig::preset("default");  // latency 100, 32 B/cycle, 64-byte bursts
  ProgramBuilder b(hw);
  const std::uint64_t at = b.allocate(256);
  b.add(load(at, 64));
  b.add(isa::End{});
  const auto dev = run_cycle(hw, b.build());
  const CycleReport& r = dev->report();
  // LOAD decoded in cycle 0, runs from 1: 100 latency + 64 bytes / 32 = 2 cycles; END waits.
  EXPECT_EQ(r.cycles, 103u);
  EXPECT_EQ(r.units[1].busy, 102u);
  EXPECT_EQ(r.units[1].idle, 1u);
  EXPECT_EQ(r.units[0].busy, 2u);
  EXPECT_EQ(stall(r, 0, Stall::kBarrier), 101u);
  EXPECT_EQ(r.dram_busy_cycles, 2u);
  EXPECT_EQ(r.dram_transfers, 1u);
  EXPECT_DOUBLE_EQ(r.microseconds, 0.103);

  // Unaligned by one byte: two bursts, 128 bytes on the bus, 4 cycles.
  ProgramBuilder b2(hw);
  const std::uint64_t at2 = b2.allocate(256);
  b2.add(load(at2 + 1, 64));
  b2.add(isa::End{});
  const auto dev2 = run_cycle(hw, b2.build());
  EXPECT_EQ(dev2->report().cycles, 105u);
  EXPECT_EQ(dev2->report().dram_bus_read_bytes, 128u);
  EXPECT_EQ(dev2->report().dram_read_bytes, 64u);
}

TEST(CycleDevice, AMacWaitsForItsTokenThenFillsThePipeline) {
  const HwConfig hw = HwConfig::preset("default");
  ProgramBuilder b(hw);
  const std::uint64_t at = b.allocate(256);
  isa::Load l = load(at, 64);
  l.tokens.push_next = true;
  b.add(l);
  isa::Mac m;  // 1x1 output, 1 input and output channel: 1 weight read, 1 beat, 4 of pipeline
  m.tokens.pop_prev = true;
  m.act_addr = 0;
  m.acc_addr = 0;
  b.add(m);
  b.add(isa::End{});
  const auto dev = run_cycle(hw, b.build());
  const CycleReport& r = dev->report();
  EXPECT_EQ(r.cycles, 109u);
  EXPECT_EQ(r.mac_busy, 6u);
  EXPECT_EQ(stall(r, 2, Stall::kTokenFromLoad), 101u);  // dispatched at 2, token at 103
  EXPECT_EQ(r.units[2].idle, 2u);
  EXPECT_EQ(r.units[2].busy, 6u);
}

TEST(CycleDevice, LoadAndStoreShareTheDramBus) {
  const HwConfig hw = HwConfig::preset("default");
  ProgramBuilder b(hw);
  const std::uint64_t src = b.allocate(1024), dst = b.allocate(1024);
  b.add(load(src, 640, 0));
  isa::Store s;
  s.sram_addr = 4096;
  s.dram_addr = static_cast<std::int64_t>(dst);
  s.row_bytes = 640;
  b.add(s);
  b.add(isa::End{});
  const auto dev = run_cycle(hw, b.build());
  const CycleReport& r = dev->report();
  // Load data from 101, store data from 102; 16 B/cycle each while both transfer: the load
  // (608 bytes left at 102) is done at 140, the store's last 32 bytes take cycle 141.
  EXPECT_EQ(r.cycles, 141u);
  EXPECT_EQ(stall(r, 1, Stall::kDramContention), 139u - 120u);
  EXPECT_EQ(stall(r, 3, Stall::kDramContention), 139u - 120u);
  EXPECT_EQ(r.units[1].busy, 120u);
  EXPECT_EQ(r.units[3].busy, 120u);
  EXPECT_EQ(r.dram_busy_cycles, 40u);  // 1280 bytes at 32 a cycle, no idle cycle between
  // Apart (a SYNC between them): no contention, one after the other.
  ProgramBuilder b2(hw);
  const std::uint64_t src2 = b2.allocate(1024), dst2 = b2.allocate(1024);
  b2.add(load(src2, 640, 0));
  b2.add(isa::Sync{});
  s.dram_addr = static_cast<std::int64_t>(dst2);
  b2.add(s);
  b2.add(isa::End{});
  const auto dev2 = run_cycle(hw, b2.build());
  EXPECT_EQ(dev2->report().cycles, 121u + 1u + 120u);  // load done at 121; sync; store from 122
  EXPECT_EQ(stall(dev2->report(), 1, Stall::kDramContention), 0u);
}

TEST(CycleDevice, FullQueuesAndTokenFifosStallWhereTheyShould) {
  HwConfig hw = HwConfig::preset("default");
  hw.queue_depth = 2;
  hw.token_depth = 1;
  ProgramBuilder b(hw);
  const std::uint64_t at = b.allocate(4096);
  for (int i = 0; i < 3; ++i) {  // each 1 + 100 + 2 cycles; each pushes a token
    isa::Load l = load(at + 64 * static_cast<std::uint64_t>(i), 64, 64 * i);
    l.tokens.push_next = true;
    b.add(l);
  }
  isa::Mac slow;  // pops the first token, then 16 + 16 * 16 * 9 + 4 cycles on other data
                  // (the first weight set's 16 column reads; the later sets' hide)
  slow.tokens.pop_prev = true;
  slow.act_addr = 100000;
  slow.out_h = slow.out_w = 16;
  slow.in_c = slow.out_c = 16;
  slow.kernel_h = slow.kernel_w = 3;
  b.add(slow);
  for (int i = 1; i < 3; ++i) {
    isa::VCopy c;
    c.tokens.pop_prev = true;
    c.src_addr = 64 * i;
    c.dst_addr = 1024 + 64 * i;
    c.bytes = 64;
    b.add(c);
  }
  b.add(isa::End{});
  const auto dev = run_cycle(hw, b.build());
  const CycleReport& r = dev->report();
  // The third load is decoded in cycle 2 but waits for the first to leave the two-deep
  // queue (at 103).
  EXPECT_EQ(stall(r, 0, Stall::kQueueFullLoad), 100u);
  // The MAC is dispatched at 104 (decoded after the third load) and pops the first token at
  // once. The second load's token waits in the one-deep FIFO until the first copy pops it
  // after the MAC (104 + 2324 = 2428); the third load finishes at 307 and waits until then.
  EXPECT_EQ(stall(r, 1, Stall::kFifoFullToCompute), 2428u - 307u);
  EXPECT_EQ(r.mac_busy, 2324u);
  for (const auto& u : r.units) EXPECT_EQ(u.busy + u.stalled() + u.idle, r.cycles) << u.name;
}

TEST(CycleDevice, ReportJsonAndTableNameEveryUnitAndLayer) {
  std::mt19937_64 g(3);
  const HwConfig hw = HwConfig::preset("default");
  const emu_test::ConvCase c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  const auto dev = run_cycle(hw, c.program, {{"image", emu_test::random_image(c, g)}});
  const nlohmann::json j = dev->report();
  EXPECT_EQ(j["cycles"].get<std::uint64_t>(), dev->stats().cycles);
  EXPECT_EQ(j["units"].size(), 4u);
  EXPECT_EQ(j["units"][2]["name"], "compute");
  EXPECT_TRUE(j["units"][2]["stalls"].contains("token_from_load"));
  EXPECT_EQ(j["layers"][0]["name"], "conv1");
  EXPECT_GT(j["layers"][0]["mac_utilization"].get<double>(), 0.0);
  EXPECT_EQ(j["dram"]["read_bytes"].get<std::uint64_t>(), dev->stats().dram_read_bytes);
  const std::string t = dla::sim::report_table(dev->report());
  for (const char* s : {"cycles:", "MAC array:", "DRAM:", "fetch", "load", "compute", "store", "conv1",
                        "token_from_load", "bound"}) {
    EXPECT_NE(t.find(s), std::string::npos) << s << "\n" << t;
  }
}

TEST(CycleDevice, TraceRecordsTheWindowOrTheLayer) {
  std::mt19937_64 g(4);
  const HwConfig hw = HwConfig::preset("default");  // 1000 ps a cycle
  const emu_test::ConvCase c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  const HostTensor image = emu_test::random_image(c, g);
  const fs::path dir = fs::path(::testing::TempDir()) / ("cycle_trace_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto dev = dla::sim::make_cycle_model(hw);
  dev->load(c.program);
  dev->set_input("image", image);

  dla::sim::TraceOptions all;
  all.path = (dir / "all.vcd").string();
  dev->set_trace(all);
  dev->run();
  const std::uint64_t cycles = dev->report().cycles;
  const std::string whole = slurp(all.path);
  for (const char* var : {"fetch_state", "load_insn", "compute_state", "mac_busy", "requant_busy", "dram_read",
                          "dram_write", "$enddefinitions", "$dumpvars"}) {
    EXPECT_NE(whole.find(var), std::string::npos) << var;
  }
  const auto all_times = vcd_times(whole);
  ASSERT_GT(all_times.size(), 20u);
  EXPECT_TRUE(std::is_sorted(all_times.begin(), all_times.end()));
  EXPECT_EQ(all_times.back(), (cycles + 1) * 1000);

  dla::sim::TraceOptions window;
  window.path = (dir / "window.vcd").string();
  window.window_begin = 150;
  window.window_end = 400;
  dev->set_trace(window);
  dev->run();
  const std::string part = slurp(window.path);
  const auto times = vcd_times(part);
  ASSERT_GE(times.size(), 2u);
  EXPECT_EQ(times.front(), 150000u);
  EXPECT_EQ(times.back(), 400000u);
  EXPECT_LT(part.size(), whole.size());
  // The same run: the trace never changes the timing.
  EXPECT_EQ(dev->report().cycles, cycles);

  dla::sim::TraceOptions layer;
  layer.path = (dir / "layer.vcd").string();
  layer.layer = "conv1";
  dev->set_trace(layer);
  dev->run();
  const auto& l = dev->report().layers.at(0);
  const auto layer_times = vcd_times(slurp(layer.path));
  ASSERT_FALSE(layer_times.empty());
  EXPECT_EQ(layer_times.front(), l.start * 1000);
  EXPECT_LE(layer_times.back(), (l.end + 1) * 1000);

  layer.layer = "conv2";
  dev->set_trace(layer);
  emu_test::expect_error([&] { dev->run(); }, "--trace layer 'conv2' is not a layer of the program (layers: conv1)");
  fs::remove_all(dir);
}

TEST(CycleDevice, ManyRunsAndDevicesInOneProcessAndNothingOnStdout) {
  const HwConfig hw = HwConfig::preset("small");
  std::mt19937_64 g(9);
  const emu_test::ConvCase c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  const HostTensor image = emu_test::random_image(c, g);
  const HostTensor want = emu_test::reference_conv(c, image, hw);
  auto first = dla::sim::make_cycle_model(hw);
  auto second = dla::sim::make_cycle_model(hw);
  first->load(c.program);
  second->load(c.program);
  first->set_input("image", image);
  second->set_input("image", image);
  ::testing::internal::CaptureStdout();
  std::uint64_t cycles = 0;
  for (int i = 0; i < 100; ++i) {
    auto& dev = i % 2 ? first : second;
    dev->run();
    ASSERT_EQ(dev->output("out"), want) << i;
    if (i == 0) cycles = dev->report().cycles;
    ASSERT_EQ(dev->report().cycles, cycles) << i;
  }
  // An error in the middle of a run leaves the next runs unaffected.
  auto broken = dla::sim::make_cycle_model(hw);
  broken->load(dla::testing::sram_overrun_program(hw));
  EXPECT_THROW(broken->run(), dla::sim::ExecutionError);
  first->run();
  EXPECT_EQ(first->output("out"), want);
  EXPECT_EQ(first->report().cycles, cycles);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
}

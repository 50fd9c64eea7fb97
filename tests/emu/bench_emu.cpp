// Throughput of the emulator's hot paths. Disabled by default (they check nothing a unit
// test does not); run them with
//   build/ci/tests/test_emu_device --gtest_also_run_disabled_tests --gtest_filter='EmuBench.*'
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <random>

#include "../support/device_programs.hpp"
#include "dla/device.hpp"
#include "dla/semantics.hpp"

namespace isa = dla::isa;
using dla::HwConfig;
using dla::testing::conv_mac;
using dla::sim::ExecOptions;
using dla::sim::MachineState;

namespace {

double seconds_of(const std::function<void()>& fn, int reps) {
  fn();  // warm up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

}  // namespace

TEST(EmuBench, DISABLED_MacInstructionThroughput) {
  MachineState m(HwConfig::preset("large"), 64);
  std::mt19937_64 g(7);
  for (auto& b : m.act) b = static_cast<std::uint8_t>(g());
  for (auto& b : m.wgt) b = static_cast<std::uint8_t>(g());
  struct Case {
    const char* name;
    isa::Mac mac;
  };
  const Case cases[] = {
      {"a8w8 3x3 256->256 16x16", conv_mac(isa::MacMode::A8W8, 256, 256, 16, 3)},
      {"a8w8 1x1 256->256 16x16", conv_mac(isa::MacMode::A8W8, 256, 256, 16, 1)},
      {"a8w8 3x3 64->64 28x28", conv_mac(isa::MacMode::A8W8, 64, 64, 28, 3)},
      {"a8w8 3x3 3->32 32x32 (first layer)", conv_mac(isa::MacMode::A8W8, 3, 32, 32, 3)},
      {"a4w4 3x3 256->256 16x16", conv_mac(isa::MacMode::A4W4, 256, 256, 16, 3)},
      {"a16w8 3x3 128->128 16x16 (int64 chunks)", conv_mac(isa::MacMode::A16W8, 128, 128, 16, 3)},
      {"a8w8 dw 3x3 256 16x16", conv_mac(isa::MacMode::A8W8, 256, 256, 16, 3, true)},
  };
  for (const auto& c : cases) {
    for (unsigned threads : {1u, 2u}) {
      const ExecOptions opt{threads, 0};
      std::uint64_t macs = 0;
      const double s = seconds_of([&] { macs = dla::sim::execute(c.mac, m, 0, opt).macs; }, 10);
      const auto mm = static_cast<double>(macs);
      std::printf("%-44s threads=%u  %8.2f MMAC  %8.3f ms  %6.2f GMAC/s\n", c.name, threads, mm / 1e6, s * 1e3,
                  mm / s / 1e9);
    }
  }
}

TEST(EmuBench, DISABLED_DeviceRunWithRaceDetection) {
  // One large tile through the device: loads, a 151 MMAC MAC, requant, store; the
  // difference to the bare MAC above is scheduling plus shadow state.
  const HwConfig cfg = HwConfig::preset("large");
  dla::ProgramBuilder b(cfg);
  const isa::Mac mac = conv_mac(isa::MacMode::A8W8, 256, 256, 16, 3);
  const std::uint64_t act_bytes = 18 * 18 * 256, wgt_bytes = 256 * 9 * 256;
  const std::uint64_t w = b.add_constant(std::vector<std::uint8_t>(wgt_bytes, 3));
  std::vector<std::uint8_t> rec(8 + 256, 0);
  rec[4] = rec[5] = rec[6] = 0xFF;
  rec[7] = 0x7F;
  rec[0] = rec[1] = rec[2] = 0;
  rec[3] = 0x80;
  for (int c = 0; c < 256; ++c) rec[static_cast<std::size_t>(8 + c)] = 10;
  const std::uint64_t r = b.add_constant(rec);
  const dla::TensorDesc in = b.add_tensor({"x", dla::TensorRole::kInput, dla::DType::I8, 0, dla::Layout::kRowMajor, {act_bytes}, 0});
  const dla::TensorDesc out = b.add_tensor({"y", dla::TensorRole::kOutput, dla::DType::I8, 0, dla::Layout::kRowMajor, {16 * 16 * 256}, 0});
  isa::Load lw;
  lw.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
  lw.dram_addr = static_cast<std::int64_t>(w);
  lw.row_bytes = 9216;
  lw.rows = 64;
  lw.dram_stride = 9216;
  lw.sram_stride = 9216;
  b.add(lw);
  isa::Load lp;
  lp.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  lp.dram_addr = static_cast<std::int64_t>(r);
  lp.row_bytes = static_cast<std::int64_t>(rec.size());
  b.add(lp);
  isa::Load la;
  la.tokens.push_next = true;
  la.dram_addr = static_cast<std::int64_t>(in.dram_offset);
  la.row_bytes = 18 * 256;
  la.rows = 18;
  la.dram_stride = la.row_bytes;
  la.sram_stride = la.row_bytes;
  b.add(la);
  isa::Mac m = mac;
  m.tokens.pop_prev = true;
  b.add(m);
  isa::Requant rq;
  rq.tokens.push_next = true;
  rq.out_type = static_cast<std::int64_t>(dla::DType::I8);
  rq.pixels = 256;
  rq.channels = 256;
  rq.act_addr = 200000;
  b.add(rq);
  isa::Store st;
  st.tokens.pop_prev = true;
  st.sram_addr = 200000;
  st.dram_addr = static_cast<std::int64_t>(out.dram_offset);
  st.row_bytes = 4096;
  st.rows = 16;
  st.dram_stride = 4096;
  st.sram_stride = 4096;
  b.add(st);
  b.add(isa::End{});
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(b.build());
  dla::HostTensor x;
  x.dtype = dla::DType::I8;
  x.shape = {act_bytes};
  x.values.assign(act_bytes, 5);
  dev->set_input("x", x);
  const double s = seconds_of([&] { dev->run(); }, 3);
  const double macs = static_cast<double>(dev->stats().macs);
  std::printf("device run, 1 tile, %.1f MMAC: %.3f ms, %.2f GMAC/s overall\n", macs / 1e6, s * 1e3, macs / s / 1e9);
}

// The emulator through the Device API: whole programs against a naive convolution,
// statistics and layer dumps, queue/token scheduling, race and deadlock detection, and
// the errors of load / set_input / run / output.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "../support/device_programs.hpp"
#include "conv_program.hpp"
#include "dla/device.hpp"
#include "dla/program.hpp"
#include "dla/semantics.hpp"
#include "emu_test_util.hpp"

using dla::DType;
using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
using dla::ProgramBuilder;
namespace isa = dla::isa;
using namespace emu_test;
using namespace dla::testing;

namespace {

struct Expected {
  std::uint64_t macs, dram_read, dram_write, instructions;
};

Expected expected_counts(const ConvCase& c) {
  const ConvSpec& s = c.spec;
  const std::uint64_t oh = static_cast<std::uint64_t>(s.out_h()), ow = static_cast<std::uint64_t>(s.out_w());
  Expected e{};
  e.macs = oh * ow * static_cast<std::uint64_t>(s.out_c * s.k * s.k * s.in_c);
  const std::uint64_t weights_and_record = c.weights.size() + 8 + c.shifts.size();
  e.dram_read = s.reload_per_tile ? weights_and_record * c.num_tiles : weights_and_record;
  for (std::uint32_t t = 0; t < c.num_tiles; ++t) {
    const std::uint64_t rows = std::min<std::uint64_t>(static_cast<std::uint64_t>(s.tile_rows), oh - t * static_cast<std::uint64_t>(s.tile_rows));
    e.dram_read += ((rows - 1) * static_cast<std::uint64_t>(s.stride) + static_cast<std::uint64_t>(s.k)) * static_cast<std::uint64_t>(s.in_w * s.in_c);
    if (!(s.acc_from_zeros && t < 2)) e.dram_read += rows * ow * 4 * static_cast<std::uint64_t>(s.out_c);  // bias
  }
  e.dram_write = oh * ow * static_cast<std::uint64_t>(s.out_c);
  e.instructions = c.program.instructions.size();
  return e;
}

/// A run of `c` (layer dumps asked for) left `expected` as its output, its layer dump and
/// the statistics of the program and the reference.
void expect_conv_run(const dla::sim::Device& dev, const ConvCase& c, const HostTensor& expected,
                     std::uint64_t overflows, std::uint64_t saturations) {
  EXPECT_EQ(dev.output("out"), expected);
  const auto s = dev.stats();
  const Expected e = expected_counts(c);
  EXPECT_EQ(s.instructions, e.instructions);
  EXPECT_EQ(s.macs, e.macs);
  EXPECT_EQ(s.dram_read_bytes, e.dram_read);
  EXPECT_EQ(s.dram_write_bytes, e.dram_write);
  EXPECT_EQ(s.acc_overflows, overflows);
  EXPECT_EQ(s.saturations, saturations);
  EXPECT_EQ(s.cycles, 0u);
  ASSERT_EQ(s.layers.size(), 1u);
  EXPECT_EQ(s.layers[0].name, "conv1");
  EXPECT_EQ(s.layers[0].macs, e.macs);
  EXPECT_EQ(s.layers[0].acc_overflows, overflows);
  EXPECT_EQ(s.layers[0].saturations, saturations);
  EXPECT_EQ(s.layers[0].dram_read_bytes, e.dram_read);
  EXPECT_EQ(s.layers[0].dram_write_bytes, e.dram_write);
  const auto dumps = dev.layer_dumps();
  ASSERT_EQ(dumps.size(), 1u);
  EXPECT_EQ(dumps[0].name, "conv1");
  EXPECT_EQ(dumps[0].tensor.values, expected.values);
}

/// Runs `p` on a fresh emulator for `cfg` and returns the exception text, or "" if it ran.
template <typename Setup>
void run_program(const HwConfig& cfg, const Program& p, Setup&& setup) {
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(p);
  setup(*dev);
  dev->run();
}

void run_program(const HwConfig& cfg, const Program& p) {
  run_program(cfg, p, [](dla::sim::Device&) {});
}

}  // namespace

// ---------------------------------------------------------------------------
// Whole programs
// ---------------------------------------------------------------------------

TEST(EmuDevice, TiledConvMatchesNaiveReferenceOnEveryConfig) {
  std::mt19937_64 g(100);
  for (const auto& v : conv_variants()) {
    SCOPED_TRACE(v.name);
    const ConvCase c = make_conv_program(v.cfg, v.spec, g);
    const HostTensor image = random_image(c, g);
    std::uint64_t overflows = 0, saturations = 0;
    const HostTensor expected = reference_conv(c, image, v.cfg, &overflows, &saturations);
    auto dev = dla::sim::make_emulator(v.cfg);
    EXPECT_EQ(dev->name(), "emu");
    dev->load(c.program);
    dev->set_input("image", image);
    dla::sim::RunOptions opts;
    opts.dump_layers = true;
    dev->run(opts);
    expect_conv_run(*dev, c, expected, overflows, saturations);
    if (std::string(v.name).rfind("acc16", 0) == 0) {
      EXPECT_GT(overflows, 0u);
    }
  }
}

TEST(EmuDevice, RunsAgainWithNewInputsFromAFreshState) {
  std::mt19937_64 g(101);
  const HwConfig cfg = HwConfig::preset("default");
  const ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(c.program);
  for (int i = 0; i < 3; ++i) {
    const HostTensor image = random_image(c, g);
    dev->set_input("image", image);
    dev->run();
    EXPECT_EQ(dev->output("out"), reference_conv(c, image, cfg));
    EXPECT_TRUE(dev->layer_dumps().empty());  // not asked for
    EXPECT_EQ(dev->stats().instructions, c.program.instructions.size());
  }
}

// The first run schedules and checks; later runs replay its order, split between
// threads when there are several: every run, on any thread count, equals the naive
// reference on its own input, with the same statistics and layer dumps. Tiles that read
// one copy of the weights run on one thread; tiles that load their own run on several,
// each on its own SRAM, also where a tile reads the zeros ACC starts a run with (which
// another thread's SRAM holds only if it is zeroed again before every run).
TEST(EmuDevice, LaterRunsOnAnyThreadCountEqualTheReference) {
  std::mt19937_64 g(103);
  for (const auto& v : conv_variants()) {
   for (const int layout : {0, 1, 2}) {
    SCOPED_TRACE(std::string(v.name) + (layout == 0 ? "" : layout == 1 ? ", weights per tile" : ", ACC from zeros"));
    ConvSpec spec = v.spec;
    spec.in_h = 24;  // enough tiles for every thread
    spec.reload_per_tile = layout >= 1;
    spec.acc_from_zeros = layout == 2;
    const ConvCase c = make_conv_program(v.cfg, spec, g);
    auto dev = dla::sim::make_emulator(v.cfg);
    dev->load(c.program);
    for (unsigned threads : {1u, 2u, 3u, 1u, 2u, 4u}) {
      SCOPED_TRACE(std::to_string(threads) + " threads");
      const HostTensor image = random_image(c, g);
      std::uint64_t overflows = 0, saturations = 0;
      const HostTensor expected = reference_conv(c, image, v.cfg, &overflows, &saturations);
      dev->set_input("image", image);
      dla::sim::RunOptions opts;
      opts.threads = threads;
      opts.dump_layers = true;
      dev->run(opts);
      expect_conv_run(*dev, c, expected, overflows, saturations);
    }
   }
  }
}

// A program loaded after another, with other weights at the same DRAM addresses: no
// thread keeps the first program's packed weights.
TEST(EmuDevice, ALoadedProgramNeverRunsWithTheWeightsOfTheOneBefore) {
  std::mt19937_64 g(104);
  const HwConfig cfg = HwConfig::preset("default");
  ConvSpec spec;
  spec.in_h = 24;
  spec.reload_per_tile = true;
  auto dev = dla::sim::make_emulator(cfg);
  for (int program = 0; program < 3; ++program) {
    SCOPED_TRACE("program " + std::to_string(program));
    const ConvCase c = make_conv_program(cfg, spec, g);  // new random weights, same layout
    dev->load(c.program);
    for (const unsigned threads : {0u, 2u, 2u}) {
      const HostTensor image = random_image(c, g);
      std::uint64_t overflows = 0, saturations = 0;
      const HostTensor expected = reference_conv(c, image, cfg, &overflows, &saturations);
      dev->set_input("image", image);
      dla::sim::RunOptions opts;
      opts.threads = threads;
      opts.dump_layers = true;
      dev->run(opts);
      expect_conv_run(*dev, c, expected, overflows, saturations);
    }
  }
}

TEST(EmuDevice, LayerStatsFollowTheDebugRecordRanges) {
  std::mt19937_64 g(102);
  const HwConfig cfg = HwConfig::preset("default");
  ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  // Split the one record into "first tile" and "the rest" (the prologue goes with the first).
  const std::uint32_t split = c.first_store + 1;
  dla::DebugRecord rest = c.program.debug[0];
  rest.layer = rest.output.name = "rest";
  rest.insn_begin = split;
  c.program.debug[0].insn_end = split;
  c.program.debug.push_back(rest);
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(c.program);
  dev->set_input("image", random_image(c, g));
  dev->run();
  const auto s = dev->stats();
  ASSERT_EQ(s.layers.size(), 2u);
  const std::uint64_t per_tile = static_cast<std::uint64_t>(c.spec.tile_rows * c.spec.out_w() * c.spec.out_c * 9 * c.spec.in_c);
  EXPECT_EQ(s.layers[0].macs, per_tile);
  EXPECT_EQ(s.layers[1].macs, s.macs - per_tile);
  EXPECT_EQ(s.layers[0].dram_write_bytes, static_cast<std::uint64_t>(c.spec.tile_rows * c.spec.out_w() * c.spec.out_c));
  EXPECT_EQ(s.layers[0].dram_read_bytes + s.layers[1].dram_read_bytes, s.dram_read_bytes);
}

namespace {

/// One-row LOAD and STORE of `bytes` bytes for the hand-built programs below.
void add_load(ProgramBuilder& b, isa::Buffer buffer, std::uint64_t sram, std::uint64_t dram, std::int64_t bytes,
              bool push_next = false) {
  isa::Load l;
  l.tokens.push_next = push_next;
  l.buffer = static_cast<std::int64_t>(buffer);
  l.sram_addr = static_cast<std::int64_t>(sram);
  l.dram_addr = static_cast<std::int64_t>(dram);
  l.row_bytes = bytes;
  b.add(l);
}

void add_store(ProgramBuilder& b, std::uint64_t sram, std::uint64_t dram, std::int64_t bytes, bool pop_prev) {
  isa::Store st;
  st.tokens.pop_prev = pop_prev;
  st.sram_addr = static_cast<std::int64_t>(sram);
  st.dram_addr = static_cast<std::int64_t>(dram);
  st.row_bytes = bytes;
  b.add(st);
}

}  // namespace

// A 4-bit result of odd length keeps the high nibble of its last byte: that nibble is
// the input byte an independent LOAD put there, also when later runs split the program
// between threads that each have SRAM of their own. Expected bytes from isa.hpp's
// definition: nibbles 3, -2, 5 (clips wide, shift 0) packed from ACT byte 99.
TEST(EmuDevice, AResultEndingMidByteKeepsTheOtherHalfOnAnyThreadCount) {
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  std::vector<std::uint8_t> bias;
  for (const std::int32_t v : {3, -2, 5}) {
    for (int i = 0; i < 4; ++i) bias.push_back(static_cast<std::uint8_t>(static_cast<std::uint32_t>(v) >> (8 * i)));
  }
  const std::uint64_t bias_at = b.add_constant(bias);
  std::vector<std::uint8_t> record{0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0};  // clips INT32_MIN..MAX, shifts 0
  const std::uint64_t record_at = b.add_constant(record);
  const dla::TensorDesc in = b.add_tensor({"x", dla::TensorRole::kInput, DType::U8, 0, dla::Layout::kRowMajor, {1}, 0});
  const dla::TensorDesc out = b.add_tensor({"y", dla::TensorRole::kOutput, DType::U8, 0, dla::Layout::kRowMajor, {2}, 0});
  add_load(b, isa::Buffer::ACT, 100, in.dram_offset, 1);  // the input byte to ACT 100
  add_load(b, isa::Buffer::ACC, 0, bias_at, 12);
  add_load(b, isa::Buffer::PARAM, 0, record_at, static_cast<std::int64_t>(record.size()), true);
  isa::Requant rq;  // three i4 elements to ACT bytes 99 and the low half of 100
  rq.tokens.pop_prev = true;
  rq.tokens.push_next = true;
  rq.out_type = static_cast<std::int64_t>(DType::I4);
  rq.act_addr = 99;
  rq.pixels = 1;
  rq.channels = 3;
  b.add(rq);
  add_store(b, 99, out.dram_offset, 2, true);
  b.add(isa::End{});
  const Program p = b.build();
  ASSERT_TRUE(dla::sim::keeps_half_of_last_byte(p.instructions[3]));

  auto dev = dla::sim::make_emulator(cfg);
  dev->load(p);
  for (const unsigned threads : {0u, 2u, 2u, 3u, 1u, 2u}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    for (const std::int32_t byte : {0xA7, 0x3C}) {
      HostTensor t;
      t.dtype = DType::U8;
      t.shape = {1};
      t.values = {byte};
      dev->set_input("x", t);
      dla::sim::RunOptions opts;
      opts.threads = threads;
      dev->run(opts);
      EXPECT_EQ(dev->output("y").values, (std::vector<std::int32_t>{0xE3, (byte & 0xF0) | 0x5}));
    }
  }
}

// Weights computed by the program: a STORE overwrites the DRAM a LOAD into WGT read
// before, and the same LOAD runs again. Split between threads, the second LOAD could land
// on the first one's thread while the STORE ran on another, whose writes that thread's
// weight cache never sees: such a program replays on one thread, and both products use
// the weights in DRAM at the time.
TEST(EmuDevice, WeightsTheProgramOverwritesAreLoadedAgainOnAnyThreadCount) {
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  const std::vector<std::uint8_t> record{0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF, 0x7F, 0};  // clips INT32_MIN..MAX, shift 0
  const std::uint64_t record_at = b.add_constant(record);
  auto tensor = [&](const char* name, dla::TensorRole role, DType type) {
    return b.add_tensor({name, role, type, 0, dla::Layout::kRowMajor, {4}, 0});
  };
  const dla::TensorDesc a = tensor("a", dla::TensorRole::kInput, DType::U8);
  const dla::TensorDesc w = tensor("w", dla::TensorRole::kInput, DType::I8);
  const dla::TensorDesc w1 = tensor("w1", dla::TensorRole::kInput, DType::I8);
  const dla::TensorDesc y0 = b.add_tensor({"y0", dla::TensorRole::kOutput, DType::I32, 0, dla::Layout::kRowMajor, {1}, 0});
  const dla::TensorDesc y1 = b.add_tensor({"y1", dla::TensorRole::kOutput, DType::I32, 0, dla::Layout::kRowMajor, {1}, 0});
  const std::uint64_t scratch = b.allocate(4);
  // y = a . (the weights now in DRAM at w), as an int32.
  auto product = [&](const dla::TensorDesc& y) {
    add_load(b, isa::Buffer::ACT, 0, a.dram_offset, 4);
    add_load(b, isa::Buffer::PARAM, 0, record_at, static_cast<std::int64_t>(record.size()));
    add_load(b, isa::Buffer::WGT, 0, w.dram_offset, 4, true);
    isa::Mac mac;
    mac.tokens.pop_prev = true;
    mac.act_unsigned = 1;
    mac.out_h = 1;
    mac.out_w = 1;
    mac.out_c = 1;
    mac.in_c = 4;
    b.add(mac);
    isa::Requant rq;
    rq.tokens.push_next = true;
    rq.out_type = static_cast<std::int64_t>(DType::I32);
    rq.act_addr = 64;
    rq.pixels = 1;
    rq.channels = 1;
    b.add(rq);
    add_store(b, 64, y.dram_offset, 4, true);
    b.add(isa::Sync{});
  };
  product(y0);
  // w = w1, and enough other stores of the same bytes that this is the heavier thread's work.
  add_load(b, isa::Buffer::ACT, 128, w1.dram_offset, 4);
  b.add(isa::Sync{});
  add_store(b, 128, w.dram_offset, 4, false);
  for (int i = 0; i < 16; ++i) add_store(b, 128, scratch, 4, false);
  b.add(isa::Sync{});
  product(y1);
  b.add(isa::End{});
  const Program p = b.build();

  auto dev = dla::sim::make_emulator(cfg);
  dev->load(p);
  std::mt19937_64 g(120);
  std::uniform_int_distribution<int> u8(0, 255), s8(-128, 127);
  for (const unsigned threads : {0u, 2u, 2u, 3u, 1u, 2u}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    std::map<std::string, HostTensor> in;
    for (const auto& [name, type] : std::vector<std::pair<std::string, DType>>{{"a", DType::U8}, {"w", DType::I8}, {"w1", DType::I8}}) {
      HostTensor t;
      t.dtype = type;
      t.shape = {4};
      for (int i = 0; i < 4; ++i) t.values.push_back(type == DType::U8 ? u8(g) : s8(g));
      in[name] = t;
      dev->set_input(name, t);
    }
    dla::sim::RunOptions opts;
    opts.threads = threads;
    dev->run(opts);
    std::int32_t with_w = 0, with_w1 = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      with_w += in["a"].values[i] * in["w"].values[i];
      with_w1 += in["a"].values[i] * in["w1"].values[i];
    }
    EXPECT_EQ(dev->output("y0").values, std::vector<std::int32_t>{with_w});
    EXPECT_EQ(dev->output("y1").values, std::vector<std::int32_t>{with_w1});
  }
}

TEST(EmuDevice, SyncOrdersEverythingBeforeIt) {
  // store -> DRAM, SYNC, load <- the same DRAM, compute reads it: no tokens needed.
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  const std::uint64_t buf = b.allocate(64);
  isa::Store st;
  st.dram_addr = static_cast<std::int64_t>(buf);
  st.row_bytes = 64;
  b.add(st);
  b.add(isa::Sync{});
  isa::Load ld;
  ld.dram_addr = static_cast<std::int64_t>(buf);
  ld.row_bytes = 64;
  ld.sram_addr = 64;
  b.add(ld);
  b.add(isa::Sync{});
  isa::VCopy cp;
  cp.src_addr = 64;
  cp.dst_addr = 0;
  cp.bytes = 64;
  b.add(cp);
  b.add(isa::End{});
  EXPECT_NO_THROW(run_program(cfg, b.build()));
}

// ---------------------------------------------------------------------------
// Races: a missing token in either direction
// ---------------------------------------------------------------------------

namespace {

/// The conv program without the token from tile 0's bias LOAD to its MAC: the MAC may
/// read its input tile before the LOAD that writes it.
ConvCase without_raw_token(const HwConfig& cfg, std::mt19937_64& g) {
  ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  isa::tokens_of(c.program.instructions[c.first_bias_load]).push_next = false;
  isa::tokens_of(c.program.instructions[c.first_mac]).pop_prev = false;
  return c;
}

}  // namespace

TEST(EmuRaces, MissingRawTokenBetweenLoadAndMac) {
  std::mt19937_64 g(110);
  const HwConfig cfg = HwConfig::preset("default");
  const ConvCase c = without_raw_token(cfg, g);
  const int in_bytes = (c.spec.tile_rows - 1 + c.spec.k) * c.spec.in_w * c.spec.in_c;
  expect_exec_error([&] { run_program(cfg, c.program, [&](auto& d) { d.set_input("image", random_image(c, g)); }); },
                    c.first_mac,
                    "instruction " + std::to_string(c.first_mac) + ": mac reads ACT [0, " + std::to_string(in_bytes) +
                        ") written by instruction " + std::to_string(c.first_act_load) +
                        " (load) with no dependency token between them");
}

// A run that fails records no order: the next run of the program schedules and checks
// again, and fails the same way.
TEST(EmuRaces, ARacyProgramFailsOnEveryRun) {
  std::mt19937_64 g(112);
  const HwConfig cfg = HwConfig::preset("default");
  const ConvCase c = without_raw_token(cfg, g);
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(c.program);
  dev->set_input("image", random_image(c, g));
  for (unsigned threads : {1u, 2u, 1u}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    dla::sim::RunOptions opts;
    opts.threads = threads;
    expect_exec_error([&] { dev->run(opts); }, c.first_mac, "with no dependency token between them");
  }
}

TEST(EmuRaces, MissingWarTokenBeforeALoadOverwritesAnInputTile) {
  std::mt19937_64 g(111);
  const HwConfig cfg = HwConfig::preset("default");
  ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  ASSERT_GE(c.num_tiles, 3u);
  const std::uint32_t per_tile = 5;
  const std::uint32_t third_act_load = c.first_act_load + 2 * per_tile;
  isa::tokens_of(c.program.instructions[c.first_requant]).push_prev = false;
  isa::tokens_of(c.program.instructions[third_act_load]).pop_next = false;
  const int in_bytes = (c.spec.tile_rows - 1 + c.spec.k) * c.spec.in_w * c.spec.in_c;
  expect_exec_error([&] { run_program(cfg, c.program, [&](auto& d) { d.set_input("image", random_image(c, g)); }); },
                    third_act_load,
                    "load writes ACT [0, " + std::to_string(in_bytes) + ") read by instruction " +
                        std::to_string(c.first_mac) + " (mac) with no dependency token between them");
}

TEST(EmuRaces, MissingTokenBetweenRequantAndStore) {
  std::mt19937_64 g(112);
  const HwConfig cfg = HwConfig::preset("default");
  ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  isa::tokens_of(c.program.instructions[c.first_requant]).push_next = false;
  isa::tokens_of(c.program.instructions[c.first_store]).pop_prev = false;
  expect_exec_error([&] { run_program(cfg, c.program, [&](auto& d) { d.set_input("image", random_image(c, g)); }); },
                    c.first_store, "store reads ACT");
  expect_exec_error([&] { run_program(cfg, c.program, [&](auto& d) { d.set_input("image", random_image(c, g)); }); },
                    c.first_store,
                    "written by instruction " + std::to_string(c.first_requant) + " (requant) with no dependency token");
}

TEST(EmuRaces, DramWrittenByStoreAndReadByLoadNeedsATokenChain) {
  const HwConfig cfg = HwConfig::preset("default");
  auto build = [&](bool tokens) {
    ProgramBuilder b(cfg);
    const std::uint64_t buf = b.allocate(256);
    isa::Store st;
    st.tokens.push_prev = tokens;
    st.dram_addr = static_cast<std::int64_t>(buf) + 16;
    st.row_bytes = 32;
    st.rows = 2;
    st.dram_stride = 64;
    b.add(st);
    isa::VCopy relay;  // compute passes the store's token on to the load queue
    relay.tokens.pop_next = tokens;
    relay.tokens.push_prev = tokens;
    relay.src_addr = 1000;
    relay.dst_addr = 2000;
    relay.bytes = 8;
    b.add(relay);
    isa::Load ld;
    ld.tokens.pop_next = tokens;
    ld.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
    ld.dram_addr = static_cast<std::int64_t>(buf);
    ld.row_bytes = 256;
    b.add(ld);
    b.add(isa::End{});
    return std::pair{b.build(), buf};
  };
  EXPECT_NO_THROW(run_program(cfg, build(true).first));
  const auto [racy, buf] = build(false);
  expect_exec_error([&] { run_program(cfg, racy); }, 2,
                    "load reads DRAM [" + std::to_string(buf + 16) + ", " + std::to_string(buf + 48) +
                        ") written by instruction 0 (store) with no dependency token between them");
}

TEST(EmuRaces, WriteAfterWriteAcrossQueues) {
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  b.add_constant(std::vector<std::uint8_t>(64, 1));
  isa::Load bias;
  bias.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
  bias.row_bytes = 16;
  bias.sram_addr = 2;
  b.add(bias);
  isa::Mac mac;  // accumulate = 0: overwrites ACC [0, 4) without waiting for the bias load
  mac.out_c = 4;
  b.add(mac);
  b.add(isa::End{});
  expect_exec_error([&] { run_program(cfg, b.build()); }, 1,
                    "mac writes ACC [2, 4) written by instruction 0 (load) with no dependency token between them");
}

TEST(EmuRaces, TransitiveOrderThroughAThirdQueueIsEnough) {
  // load writes PARAM; compute pops its token and pushes one to store; store pushes back
  // to compute; a second compute instruction reads PARAM: ordered through the chain.
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  b.add_constant(std::vector<std::uint8_t>(64, 0));
  isa::Load lp;
  lp.tokens.push_next = true;
  lp.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  lp.row_bytes = 16;
  b.add(lp);
  isa::VCopy c1;
  c1.tokens.pop_prev = true;
  c1.src_addr = 0;
  c1.dst_addr = 100;
  c1.bytes = 4;
  b.add(c1);
  isa::Requant rq;  // reads PARAM [0, 9): ordered after the load via c1 (same queue)
  rq.out_type = static_cast<std::int64_t>(DType::I8);
  rq.act_addr = 500;
  b.add(rq);
  b.add(isa::End{});
  EXPECT_NO_THROW(run_program(cfg, b.build()));
}

TEST(EmuRaces, ReadsAtHighAddressesAreRemembered) {
  // The compute queue reads ACT [100000, 100064); a later load overwriting part of it
  // without a token races, one that stays below does not.
  const HwConfig cfg = HwConfig::preset("default");
  auto build = [&](std::int64_t overwrite_at) {
    ProgramBuilder b(cfg);
    b.add_constant(std::vector<std::uint8_t>(256, 7));
    isa::Load l;
    l.tokens.push_next = true;
    l.sram_addr = 100000;
    l.row_bytes = 64;
    b.add(l);
    isa::VCopy c;
    c.tokens.pop_prev = true;
    c.src_addr = 100000;
    c.dst_addr = 200000;
    c.bytes = 64;
    b.add(c);
    isa::Load again;
    again.sram_addr = overwrite_at;
    again.row_bytes = 50;
    b.add(again);
    b.add(isa::End{});
    return b.build();
  };
  expect_exec_error([&] { run_program(cfg, build(100050)); }, 2,
                    "load writes ACT [100050, 100064) read by instruction 1 (vcopy) with no dependency token");
  EXPECT_NO_THROW(run_program(cfg, build(99950)));
  EXPECT_NO_THROW(run_program(cfg, build(100064)));
}

TEST(EmuRaces, StoreOverwritingDramALoadStillReads) {
  const HwConfig cfg = HwConfig::preset("default");
  ProgramBuilder b(cfg);
  const std::uint64_t buf = b.allocate(1 << 17);  // spans two shadow pages
  isa::Load l;
  l.dram_addr = static_cast<std::int64_t>(buf) + 65000;
  l.row_bytes = 1000;
  b.add(l);
  isa::Store s;
  s.dram_addr = static_cast<std::int64_t>(buf) + 65500;
  s.sram_addr = 4096;
  s.row_bytes = 100;
  b.add(s);
  b.add(isa::End{});
  expect_exec_error([&] { run_program(cfg, b.build()); }, 1,
                    "store writes DRAM [" + std::to_string(buf + 65500) + ", " + std::to_string(buf + 65600) +
                        ") read by instruction 0 (load) with no dependency token between them");
}

// ---------------------------------------------------------------------------
// Deadlocks and queue/token depths
// ---------------------------------------------------------------------------

TEST(EmuDeadlock, PopWithNoPusher) {
  const HwConfig cfg = HwConfig::preset("default");
  expect_exec_error([&] { run_program(cfg, pop_with_no_pusher_program(cfg)); }, 1,
                    "deadlock: instruction 1 (mac) waits for a token from the load queue that no instruction pushes");
}

TEST(EmuDeadlock, CircularWaitNamesEveryBlockedInstruction) {
  const HwConfig cfg = HwConfig::preset("default");
  const Program p = circular_wait_program(cfg);
  expect_exec_error([&] { run_program(cfg, p); }, 0,
                    "instruction 0 (vcopy) waits for a token from the store queue; the next one would come from "
                    "instruction 1 (store), which is blocked");
  expect_exec_error([&] { run_program(cfg, p); }, 0,
                    "instruction 1 (store) waits for a token from the compute queue; the next one would come from "
                    "instruction 0 (vcopy), which is blocked");
  expect_exec_error([&] { run_program(cfg, p); }, 0, "instruction 2 (end) waits for the queues to drain");
}

TEST(EmuDeadlock, FullQueueStallsDispatchOfThePusher) {
  // load 0 waits for a token that instruction 2 (compute) pushes; with queue_depth 1 the
  // dispatcher cannot pass load 1, so instruction 2 is never dispatched.
  const HwConfig shallow = with_depths(HwConfig::preset("default"), 1, 8);
  expect_exec_error([&] { run_program(shallow, full_queue_program(shallow)); }, 0,
                    "deadlock: instruction 0 (load) waits for a token from the compute queue; the next one would come "
                    "from instruction 2 (mac), which is not dispatched yet; instruction 1 (load) cannot be dispatched: "
                    "the load queue is full (queue_depth = 1)");
  const HwConfig deeper = with_depths(HwConfig::preset("default"), 2, 8);
  EXPECT_NO_THROW(run_program(deeper, full_queue_program(deeper)));
}

TEST(EmuDeadlock, FullTokenFifoBeforeASync) {
  const HwConfig one = with_depths(HwConfig::preset("default"), 16, 1);
  expect_exec_error([&] { run_program(one, full_token_fifo_program(one)); }, 1,
                    "instruction 1 (load) waits for room in the full token FIFO to the compute queue (token_depth = 1); "
                    "instruction 2 (sync) waits for the queues to drain");
  const HwConfig two = with_depths(HwConfig::preset("default"), 16, 2);
  EXPECT_NO_THROW(run_program(two, full_token_fifo_program(two)));
}

// ---------------------------------------------------------------------------
// Rule breaches through the device, and API errors
// ---------------------------------------------------------------------------

TEST(EmuDeviceErrors, SramAndDramOverrunsAndUnsupportedModes) {
  HwConfig small = HwConfig::preset("small");
  expect_exec_error([&] { run_program(small, sram_overrun_program(small)); }, 1,
                    "instruction 1: mac reads ACT [8000, 8200) past the 8192-byte activation SRAM");
  {
    std::uint64_t t = 0;
    const Program p = dram_overrun_program(small, &t);
    expect_exec_error([&] { run_program(small, p); }, 0,
                      "load reads DRAM [" + std::to_string(t + 50) + ", " + std::to_string(t + 101) +
                          ") past the program's " + std::to_string(p.dram_size) + "-byte DRAM");
  }
  {
    HwConfig no4 = small;
    no4.supports_a4w4 = false;
    ProgramBuilder b(no4);
    isa::Mac mac;
    mac.mode = static_cast<std::int64_t>(isa::MacMode::A4W4);
    b.add(mac);
    b.add(isa::End{});
    expect_exec_error([&] { run_program(no4, b.build()); }, 0, "mac: mode a4w4 is not supported by the hardware config");
  }
}

TEST(EmuDeviceErrors, LoadRefusesAnotherConfigAndMalformedPrograms) {
  const HwConfig def = HwConfig::preset("default");
  const HwConfig small = HwConfig::preset("small");
  auto dev = dla::sim::make_emulator(def);
  EXPECT_EQ(dev->config(), def);
  {
    ProgramBuilder b(small);
    b.add(isa::End{});
    expect_error([&] { dev->load(b.build()); }, "program was compiled for hardware config " +
                                                    dla::hash_hex(small.identity_hash()) +
                                                    ", but this device runs hardware config " +
                                                    dla::hash_hex(def.identity_hash()));
  }
  {
    ProgramBuilder b(def);
    isa::Mac mac;
    mac.out_h = 0;
    b.add(isa::Sync{});
    b.add(mac);
    b.add(isa::End{});
    expect_exec_error([&] { dev->load(b.build()); }, 1, "mac: field out_h = 0 is out of range [1, 255]");
  }
  {
    ProgramBuilder b(def);
    isa::Load ld;
    ld.tokens.pop_prev = true;
    b.add(ld);
    b.add(isa::End{});
    expect_exec_error([&] { dev->load(b.build()); }, 0, "token flag pop_prev is invalid on the load queue");
  }
  {
    ProgramBuilder b(def);
    b.add(isa::Sync{});
    expect_error([&] { dev->load(b.build()); }, "does not end with END");
  }
  {
    ProgramBuilder b(def);
    b.add(isa::End{});
    Program p = b.build();
    p.tensors.push_back({"x", dla::TensorRole::kInput, DType::I8, 0, dla::Layout::kRowMajor, {10}, 0});
    expect_error([&] { dev->load(p); }, "tensor 'x' at DRAM [0, +10) lies outside the program's 0-byte DRAM");
  }
}

// What depends on data is checked on every run, replays included: here the REQUANT
// record comes from the input, and an input whose clips leave no value fails at the
// first REQUANT on any thread count; a good input after it runs again.
TEST(EmuDeviceErrors, ARecordReadFromTheInputIsCheckedOnEveryRun) {
  std::mt19937_64 g(120);
  const HwConfig cfg = HwConfig::preset("default");
  ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  std::get<isa::Load>(c.program.instructions[c.first_act_load - 1]).dram_addr =
      static_cast<std::int64_t>(c.in.dram_offset);  // the PARAM load
  // The image's first DRAM bytes (NHWC) as the record: clip_lo, clip_hi (int32), shifts.
  auto image_with_record = [&](std::int32_t lo, std::int32_t hi) {
    HostTensor image = random_image(c, g);
    std::vector<std::uint8_t> rec;
    append_i32(rec, lo);
    append_i32(rec, hi);
    rec.resize(rec.size() + static_cast<std::size_t>(c.spec.out_c), 5);
    const std::uint64_t ch = image.shape[1], h = image.shape[2], w = image.shape[3];
    for (std::uint64_t i = 0; i < rec.size(); ++i) {
      const std::uint64_t pixel = i / ch, channel = i % ch;
      image.values[channel * h * w + (pixel / w) * w + pixel % w] = rec[i];
    }
    return image;
  };
  auto dev = dla::sim::make_emulator(cfg);
  dev->load(c.program);
  for (unsigned threads : {1u, 2u}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    dla::sim::RunOptions opts;
    opts.threads = threads;
    dev->set_input("image", image_with_record(0, 127));
    EXPECT_NO_THROW(dev->run(opts));
    dev->set_input("image", image_with_record(100, -100));
    expect_exec_error([&] { dev->run(opts); }, c.first_requant, "parameter record clips [100, -100] leave no value of i8");
    dev->set_input("image", image_with_record(-20, 20));
    EXPECT_NO_THROW(dev->run(opts));
    const HostTensor out = dev->output("out");
    EXPECT_TRUE(std::all_of(out.values.begin(), out.values.end(), [](std::int32_t x) { return x >= -20 && x <= 20; }));
  }
}

TEST(EmuDeviceErrors, InputsAndOutputsAreCheckedByNameDtypeAndShape) {
  std::mt19937_64 g(120);
  const HwConfig cfg = HwConfig::preset("default");
  const ConvCase c = make_conv_program(cfg, ConvSpec{}, g);
  auto dev = dla::sim::make_emulator(cfg);
  expect_error([&] { dev->run(); }, "no program loaded");
  dev->load(c.program);
  expect_error([&] { dev->run(); }, "input 'image' is not bound (shape [1,8,10,9], u8)");
  HostTensor image = random_image(c, g);
  expect_error([&] { dev->set_input("picture", image); }, "'picture' is not an input of the program (inputs: image)");
  expect_error([&] { dev->set_input("out", image); }, "'out' is not an input of the program");
  HostTensor wrong_type = image;
  wrong_type.dtype = DType::I8;
  for (auto& v : wrong_type.values) v = v / 2;
  expect_error([&] { dev->set_input("image", wrong_type); }, "tensor 'image': expected dtype u8, got i8");
  HostTensor wrong_shape = image;
  wrong_shape.shape = {1, 8, 9, 10};
  expect_error([&] { dev->set_input("image", wrong_shape); }, "tensor 'image': expected shape [1,8,10,9], got [1,8,9,10]");
  HostTensor out_of_range = image;
  out_of_range.values[3] = 300;
  expect_error([&] { dev->set_input("image", out_of_range); }, "element 3 = 300 is outside the range of u8");
  expect_error([&] { (void)dev->output("out"); }, "the program has not run");
  dev->set_input("image", image);
  dev->run();
  expect_error([&] { (void)dev->output("image"); }, "'image' is not an output of the program (outputs: out)");
  EXPECT_EQ(dev->output("out"), reference_conv(c, image, cfg));
}

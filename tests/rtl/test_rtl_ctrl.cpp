// test_rtl_ctrl.cpp — the Verilated compute controller (rtl_models/rtl/dla_ctrl.sv):
// its decode of random valid instructions of every kind against isa::decode's fields, and
// its MAC beat descriptors against an enumeration of the weight-stationary loop nest
// written out here (dense and depthwise, every mode, ragged channel counts, the field
// maxima), on the preset's array and on a 5 x 3 one with 3 a16w8 passes; the vector walks
// on the preset's lanes and on 1024 requantizer, 7 vector and 6 LUT lanes; back-to-back
// MACs take exactly their beats' clocks, and a stalled beat (beat_ready_i low) is held,
// not skipped; out of reset it is idle with every register at its reset value.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../support/random_insn.hpp"
#include "Vdla_ctrl.h"
#include "Vdla_ctrl_odd.h"
#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/mac_modes.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::put;
namespace isa = dla::isa;

/// One beat descriptor.
struct Beat {
  std::int64_t oc0 = 0, ic0 = 0, n = 0, kpos = 0, pass = 0, pixel = 0;
  bool load_wgt = false, last = false;
  bool operator==(const Beat& o) const {
    return oc0 == o.oc0 && ic0 == o.ic0 && n == o.n && kpos == o.kpos && pass == o.pass && pixel == o.pixel &&
           load_wgt == o.load_wgt && last == o.last;
  }
};
std::ostream& operator<<(std::ostream& os, const Beat& b) {
  return os << "{oc0 " << b.oc0 << ", ic0 " << b.ic0 << ", n " << b.n << ", kpos " << b.kpos << ", pass " << b.pass
            << ", pixel " << b.pixel << ", load_wgt " << b.load_wgt << ", last " << b.last << "}";
}

/// The beats of a MAC on hw's rows x cols array, in the sequencer's order: per output-channel
/// block, kernel position (depthwise: s positions per lane) and input-channel chunk of
/// rows * s channels, the weights are loaded once, then every pass takes every pixel.
std::vector<Beat> expected_beats(const isa::Mac& in, const dla::HwConfig& hw) {
  const std::int64_t rows = hw.mac_rows, cols = hw.mac_cols;
  const auto mode = static_cast<isa::MacMode>(in.mode);
  const std::int64_t s = isa::mac_speedup(mode, hw), passes = isa::mac_passes(mode, hw);
  const std::int64_t pixels = in.out_h * in.out_w, kk = in.kernel_h * in.kernel_w;
  std::vector<Beat> v;
  auto weight_set = [&](std::int64_t oc0, std::int64_t kpos, std::int64_t ic0, std::int64_t n) {
    for (std::int64_t pass = 0; pass < passes; ++pass)
      for (std::int64_t p = 0; p < pixels; ++p) v.push_back({oc0, ic0, n, kpos, pass, p, pass == 0 && p == 0, false});
  };
  if (in.depthwise == 0) {
    for (std::int64_t oc0 = 0; oc0 < in.out_c; oc0 += cols)
      for (std::int64_t kpos = 0; kpos < kk; ++kpos)
        for (std::int64_t ic0 = 0; ic0 < in.in_c; ic0 += rows * s) weight_set(oc0, kpos, ic0, std::min<std::int64_t>(cols, in.out_c - oc0));
  } else {
    const std::int64_t block = std::min(rows, cols);
    for (std::int64_t c0 = 0; c0 < in.out_c; c0 += block)
      for (std::int64_t k0 = 0; k0 < kk; k0 += s) weight_set(c0, k0, c0, std::min<std::int64_t>(block, in.out_c - c0));
  }
  v.back().last = true;
  return v;
}

/// One beat descriptor of a lane-group walk (tblock only on table beats).
struct VecBeat {
  std::int64_t elem = 0, elems = 0, pos = 0;
  bool first = false, wlast = false, tload = false;
  std::int64_t tblock = 0;
  bool last = false;
  bool operator==(const VecBeat& o) const {
    return elem == o.elem && elems == o.elems && pos == o.pos && first == o.first && wlast == o.wlast &&
           tload == o.tload && tblock == o.tblock && last == o.last;
  }
};
std::ostream& operator<<(std::ostream& os, const VecBeat& b) {
  return os << "{elem " << b.elem << ", elems " << b.elems << ", pos " << b.pos << ", first " << b.first
            << ", wlast " << b.wlast << ", tload " << b.tload << ", tblock " << b.tblock << ", last " << b.last << "}";
}

/// The beats of a vector instruction (REQUANT included): VLUT's table blocks of lut_lanes
/// entries, then groups of `lanes` consecutive elements, each taking every window
/// position of a pool (one position for the others).
std::vector<VecBeat> expected_vec_beats(const isa::Instruction& insn, const dla::HwConfig& hw) {
  std::int64_t n = 0, lanes = hw.vector_lanes, positions = 1, table = 0;
  std::visit(
      [&](const auto& in) {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, isa::Requant>) {
          n = in.pixels * in.channels;
          lanes = hw.requant_lanes;
        } else if constexpr (std::is_same_v<T, isa::VAdd>) {
          n = in.count;
        } else if constexpr (std::is_same_v<T, isa::VMaxPool> || std::is_same_v<T, isa::VAvgPool>) {
          n = in.out_h * in.out_w * in.channels;
          positions = in.kernel_h * in.kernel_w;
        } else if constexpr (std::is_same_v<T, isa::VUpsample>) {
          n = 4 * in.in_h * in.in_w * in.channels;
        } else if constexpr (std::is_same_v<T, isa::VCopy>) {
          n = in.bytes;
        } else if constexpr (std::is_same_v<T, isa::VLut>) {
          const auto t = static_cast<dla::DType>(in.in_type);
          n = in.count;
          lanes = dla::lut_interpolates(t) ? hw.lut_lanes / 2 : hw.lut_lanes;
          table = (dla::lut_entries(t) + hw.lut_lanes - 1) / hw.lut_lanes;
        }
      },
      insn);
  std::vector<VecBeat> v;
  for (std::int64_t b = 0; b < table; ++b) v.push_back({0, 0, 0, false, false, true, b, false});
  for (std::int64_t e0 = 0; e0 < n; e0 += lanes)
    for (std::int64_t k = 0; k < positions; ++k)
      v.push_back({e0, std::min(lanes, n - e0), k, k == 0, k + 1 == positions, false, 0, false});
  v.back().last = true;
  return v;
}

void put_word(VlWide<4>& port, const isa::Word& w) {
  put(port, 0, 64, static_cast<std::int64_t>(w.words[0]));
  put(port, 64, 64, static_cast<std::int64_t>(w.words[1]));
}

template <class M>
class Ctrl {
 public:
  Block<M>& dut() { return dut_; }

  /// Feeds the words back to back (valid_i held until ready_o) and collects every beat
  /// that fires; `stall` drops beat_ready_i on random clocks. Returns the clocks taken
  /// until the controller is idle with no word left, or fails at `limit` clocks (a walk
  /// that does not end).
  template <class B>
  std::uint64_t run(const std::vector<isa::Word>& words, EdgeRandom* stall, std::vector<B>* beats,
                    std::uint64_t limit) {
    std::size_t next = 0;
    std::uint64_t clocks = 0;
    for (;;) {
      const bool have = next < words.size();
      dut_->valid_i = have ? 1 : 0;
      if (have) put_word(dut_->insn_i, words[next]);
      dut_->beat_ready_i = stall != nullptr && stall->uniform(0, 3) == 0 ? 0 : 1;
      dut_->eval();
      if (!have && !dut_->beat_valid_o) return clocks;
      if (clocks == limit) {
        ADD_FAILURE() << "not idle after " << limit << " clocks";
        return clocks;
      }
      if (dut_->beat_valid_o && dut_->beat_ready_i) beats->push_back(read(B{}));
      if (have && dut_->ready_o) ++next;
      dut_.tick();
      ++clocks;
    }
  }

  Beat read(Beat) {
    return {dut_->oc0_o, dut_->ic0_o, dut_->n_o, dut_->kpos_o, dut_->pass_o, dut_->pixel_o, dut_->load_wgt_o != 0,
            dut_->last_o != 0};
  }
  VecBeat read(VecBeat) {
    if (dut_->tload_o) return {0, 0, 0, false, false, true, dut_->tblock_o, dut_->last_o != 0};
    return {dut_->elem_o, dut_->elems_o, dut_->pos_o, dut_->first_o != 0, dut_->wlast_o != 0, false, 0,
            dut_->last_o != 0};
  }

 private:
  Block<M> dut_;
};

const dla::HwConfig& preset() {
  static const dla::HwConfig hw = dla::HwConfig::preset(DLA_RTL_PRESET);
  return hw;
}

/// The config of Vdla_ctrl_odd's parameters (rtl_models/CMakeLists.txt).
dla::HwConfig odd_config() {
  dla::HwConfig hw = preset();
  hw.mac_rows = DLA_RTL_TB_CTRL_ROWS;
  hw.mac_cols = DLA_RTL_TB_CTRL_COLS;
  hw.a16w8_passes = DLA_RTL_TB_CTRL_PASSES;
  hw.requant_lanes = DLA_RTL_TB_CTRL_REQUANT_LANES;
  hw.vector_lanes = DLA_RTL_TB_CTRL_VECTOR_LANES;
  hw.lut_lanes = DLA_RTL_TB_CTRL_LUT_LANES;
  return hw;
}

/// A random valid MAC, small enough to enumerate: channel counts that leave ragged blocks
/// and chunks, every mode and both kinds.
isa::Mac random_mac(EdgeRandom& rnd) {
  isa::Mac in;
  in.mode = rnd.uniform(0, 3);
  in.act_unsigned = in.mode == static_cast<std::int64_t>(isa::MacMode::A16W8) ? 0 : rnd.uniform(0, 1);
  in.accumulate = rnd.uniform(0, 1);
  in.depthwise = rnd.uniform(0, 1);
  in.out_h = rnd.uniform(1, 3);
  in.out_w = rnd.uniform(1, 4);
  in.out_c = rnd.uniform(1, 70);
  in.in_c = in.depthwise ? in.out_c : rnd.uniform(1, 150);
  in.kernel_h = rnd.uniform(1, 4);
  in.kernel_w = rnd.uniform(1, 5);
  in.stride_h = rnd.uniform(1, 7);
  in.stride_w = rnd.uniform(1, 7);
  in.dilation = rnd.uniform(1, 7);
  in.act_addr = rnd.uniform(0, isa::Mac::field("act_addr").max);
  in.wgt_addr = rnd.uniform(0, isa::Mac::field("wgt_addr").max);
  in.acc_addr = rnd.uniform(0, isa::Mac::field("acc_addr").max);
  return in;
}

/// Each count at its field's maximum (one at a time, so the beats stay enumerable):
/// every counter at its widest.
std::vector<isa::Mac> edge_macs() {
  std::vector<isa::Mac> v;
  for (std::int64_t mode = 0; mode < 4; ++mode) {
    for (int dw = 0; dw < 2; ++dw) {
      isa::Mac c;  // the most channels
      c.mode = mode;
      c.depthwise = dw;
      c.out_c = isa::Mac::field("out_c").max;
      c.in_c = dw ? c.out_c : 1;
      v.push_back(c);
      isa::Mac k;  // the largest kernel
      k.mode = mode;
      k.depthwise = dw;
      k.kernel_h = isa::Mac::field("kernel_h").max;
      k.kernel_w = isa::Mac::field("kernel_w").max;
      v.push_back(k);
    }
    isa::Mac i;  // the most input channels
    i.mode = mode;
    i.in_c = isa::Mac::field("in_c").max;
    v.push_back(i);
    isa::Mac p;  // the most pixels
    p.mode = mode;
    p.out_h = isa::Mac::field("out_h").max;
    p.out_w = isa::Mac::field("out_w").max;
    v.push_back(p);
  }
  return v;
}

/// The clocks a run of `beats` beats may take: one per beat and the first word's, stalled
/// on a quarter of the clocks (far more, so only a walk that does not end reaches it).
std::uint64_t clock_limit(std::size_t beats) { return 8 * beats + 64; }

template <class M>
void check_walks(const dla::HwConfig& hw, std::uint64_t seed) {
  EdgeRandom rnd(seed);
  Ctrl<M> ctrl;
  std::vector<isa::Mac> macs = edge_macs();
  for (int i = 0; i < 400; ++i) macs.push_back(random_mac(rnd));
  // Back to back in runs of a few words: the beats of a run are the concatenation of
  // each word's, and the run takes one clock to accept the first word plus one per beat.
  for (std::size_t i = 0; i < macs.size();) {
    const std::size_t n = std::min<std::size_t>(macs.size() - i, static_cast<std::size_t>(rnd.uniform(1, 4)));
    std::vector<isa::Word> words;
    std::vector<Beat> want;
    for (std::size_t j = i; j < i + n; ++j) {
      words.push_back(isa::encode(macs[j]));
      const std::vector<Beat> b = expected_beats(macs[j], hw);
      want.insert(want.end(), b.begin(), b.end());
    }
    const bool stall = rnd.uniform(0, 3) == 0;
    std::vector<Beat> got;
    const std::uint64_t clocks = ctrl.run(words, stall ? &rnd : nullptr, &got, clock_limit(want.size()));
    ASSERT_EQ(got.size(), want.size()) << "beats of " << isa::disassemble(macs[i]) << " (run of " << n << ")";
    for (std::size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k], want[k]) << "beat " << k << " of the run starting with " << isa::disassemble(macs[i]);
    }
    if (!stall) {
      EXPECT_EQ(clocks, 1 + want.size()) << "bubbles in the run starting with " << isa::disassemble(macs[i]);
    }
    i += n;
  }
}

TEST(RtlCtrl, MacBeatsOnThePresetArray) { check_walks<Vdla_ctrl>(preset(), 11); }

TEST(RtlCtrl, MacBeatsOnANonSquareArrayWithThreePasses) { check_walks<Vdla_ctrl_odd>(odd_config(), 12); }

/// Out of reset, before any word and for a few idle clocks: no beat, ready, and every
/// register at its reset value. tload_o in particular: the engine's VLUT loop reads it
/// without beat_valid_o, and the VCD trace shows it.
template <class M>
void check_reset() {
  Ctrl<M> ctrl;
  auto& dut = ctrl.dut();
  dut->valid_i = 0;
  dut->beat_ready_i = 1;
  for (int clock = 0; clock < 3; ++clock) {
    dut->eval();
    EXPECT_FALSE(dut->beat_valid_o) << "clock " << clock;
    EXPECT_TRUE(dut->ready_o) << "clock " << clock;
    EXPECT_FALSE(dut->tload_o) << "a table load out of reset, clock " << clock;
    const std::map<std::string, std::int64_t> regs = {
        {"opclass", dut->opclass_o}, {"oc0", dut->oc0_o},   {"ic0", dut->ic0_o},   {"kpos", dut->kpos_o},
        {"pass", dut->pass_o},       {"pixel", dut->pixel_o}, {"elem", dut->elem_o}, {"pos", dut->pos_o},
        {"tblock", dut->tblock_o}};
    for (const auto& [name, v] : regs) EXPECT_EQ(v, 0) << name << " out of reset, clock " << clock;
    dut.tick();
  }
}

TEST(RtlCtrl, IdleOutOfReset) {
  check_reset<Vdla_ctrl>();
  check_reset<Vdla_ctrl_odd>();
}

TEST(RtlCtrl, DecodesEveryInstruction) {
  Ctrl<Vdla_ctrl> ctrl;
  auto& dut = ctrl.dut();
  // The controller's ports of the MAC fields, by the ISA table's field names.
  const std::map<std::string, std::function<std::int64_t()>> mac_ports = {
      {"mode", [&] { return dut->mac_mode_o; }},
      {"act_unsigned", [&] { return dut->mac_act_unsigned_o; }},
      {"accumulate", [&] { return dut->mac_accumulate_o; }},
      {"depthwise", [&] { return dut->mac_depthwise_o; }},
      {"act_addr", [&] { return dut->mac_act_addr_o; }},
      {"wgt_addr", [&] { return dut->mac_wgt_addr_o; }},
      {"acc_addr", [&] { return dut->mac_acc_addr_o; }},
      {"out_h", [&] { return dut->mac_out_h_o; }},
      {"out_w", [&] { return dut->mac_out_w_o; }},
      {"out_c", [&] { return dut->mac_out_c_o; }},
      {"in_c", [&] { return dut->mac_in_c_o; }},
      {"kernel_h", [&] { return dut->mac_kernel_h_o; }},
      {"kernel_w", [&] { return dut->mac_kernel_w_o; }},
      {"stride_h", [&] { return dut->mac_stride_h_o; }},
      {"stride_w", [&] { return dut->mac_stride_w_o; }},
      {"dilation", [&] { return dut->mac_dilation_o; }},
  };
  ASSERT_EQ(mac_ports.size(), isa::Mac::kFields.size()) << "a MAC field without a port";
  std::mt19937_64 rng(13);
  int macs = 0;
  for (int i = 0; i < 3000; ++i) {
    const isa::Instruction insn =
        dla::test_support::random_instruction(static_cast<std::size_t>(i) % std::variant_size_v<isa::Instruction>, rng);
    const isa::Word word = isa::encode(insn);
    const isa::Instruction decoded = isa::decode(word);
    const isa::InsnInfo& info = isa::info_of(decoded);
    // Accept the word alone (from reset: a random MAC's walk may be billions of beats).
    dut->rst_ni = 0;
    dut->eval();
    dut->rst_ni = 1;
    dut->valid_i = 1;
    put_word(dut->insn_i, word);
    dut->beat_ready_i = 0;
    dut->eval();
    ASSERT_TRUE(dut->ready_o) << "idle controller not ready";
    dut.tick();
    dut->valid_i = 0;
    dut->eval();
    const std::string what = isa::disassemble(decoded);
    ASSERT_EQ(dut->opclass_o, info.opclass) << what;
    if (info.funct != isa::kNoFunct) {
      ASSERT_EQ(dut->funct_o, info.funct) << what;
    }
    const auto* mac = std::get_if<isa::Mac>(&decoded);
    const bool walks = mac != nullptr || std::holds_alternative<isa::Requant>(decoded) || info.opclass == isa::VAdd::kOpclass;
    ASSERT_EQ(dut->beat_valid_o != 0, walks) << "beats (or none) for " << what;
    if (mac == nullptr) continue;
    ++macs;
    mac->visit_fields([&](const isa::FieldInfo& f, std::int64_t v) {
      EXPECT_EQ(mac_ports.at(std::string(f.name))(), v) << "field " << f.name << " of " << what;
    });
  }
  EXPECT_GT(macs, 100);
}

/// A random vector instruction of alternative `index`: its counts (the kNum fields) small
/// and ragged, or (`edge`) one of them at its maximum and the others at their minimum.
isa::Instruction random_vector(std::size_t index, std::mt19937_64& rng, bool edge) {
  isa::Instruction insn = dla::test_support::random_instruction(index, rng);
  std::visit(
      [&](auto& in) {
        std::vector<std::int64_t*> nums;
        in.visit_fields([&](const isa::FieldInfo& f, std::int64_t& v) {
          if (f.kind != isa::FieldKind::kNum) return;
          const std::int64_t cap = f.max > 255 ? 300 : 9;
          v = f.min + (v - f.min) % std::min(f.max - f.min + 1, cap);
          if (edge) v = f.min;
          nums.push_back(&v);
        });
        if (edge) *nums[rng() % nums.size()] = std::numeric_limits<std::int64_t>::max();
        in.visit_fields([&](const isa::FieldInfo& f, std::int64_t& v) { v = std::min(v, f.max); });
      },
      insn);
  return insn;
}

template <class M>
void check_vector_walks(const dla::HwConfig& hw, int runs, std::uint64_t seed) {
  Ctrl<M> ctrl;
  std::mt19937_64 rng(seed);
  EdgeRandom rnd(seed + 1);
  std::vector<std::size_t> kinds;
  for (std::size_t i = 0; i < std::variant_size_v<isa::Instruction>; ++i) {
    const isa::Instruction probe = dla::test_support::random_instruction(i, rng);
    if (std::holds_alternative<isa::Requant>(probe) || isa::info_of(probe).opclass == isa::VAdd::kOpclass) kinds.push_back(i);
  }
  ASSERT_EQ(kinds.size(), 7u) << "REQUANT and the six vector instructions";
  int walked = 0;
  for (int i = 0; i < runs; ++i) {
    const std::size_t n = static_cast<std::size_t>(rnd.uniform(1, 3));
    std::vector<isa::Word> words;
    std::vector<VecBeat> want;
    std::string first;
    for (std::size_t j = 0; j < n; ++j) {
      const isa::Instruction insn = random_vector(kinds[rng() % kinds.size()], rng, i % 10 == 0);
      if (j == 0) first = isa::disassemble(insn);
      words.push_back(isa::encode(insn));
      const std::vector<VecBeat> b = expected_vec_beats(insn, hw);
      want.insert(want.end(), b.begin(), b.end());
      ++walked;
    }
    const bool stall = rnd.uniform(0, 3) == 0;
    std::vector<VecBeat> got;
    const std::uint64_t clocks = ctrl.run(words, stall ? &rnd : nullptr, &got, clock_limit(want.size()));
    ASSERT_EQ(got.size(), want.size()) << "beats of the run starting with " << first;
    for (std::size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k], want[k]) << "beat " << k << " of the run starting with " << first;
    }
    if (!stall) {
      EXPECT_EQ(clocks, 1 + want.size()) << "bubbles in the run starting with " << first;
    }
  }
  EXPECT_GT(walked, runs * 4 / 3);
}

TEST(RtlCtrl, VectorBeats) { check_vector_walks<Vdla_ctrl>(preset(), 1500, 14); }

TEST(RtlCtrl, VectorBeatsOnOtherLaneCounts) { check_vector_walks<Vdla_ctrl_odd>(odd_config(), 500, 16); }

}  // namespace

// The emulator's replay of a recorded schedule (sim/engines/src/replay.hpp, white-box):
// the overlap test against unit-by-unit enumeration, every plan against a unit-by-unit
// search of the SRAM data each lane must hold and a brute-force search of the DRAM
// conflicts it must order, and the replayer's choice of the error to report.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "conv_program.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/semantics.hpp"
#include "replay.hpp"

using dla::HwConfig;
using dla::sim::Access;
using dla::sim::AccessKind;
using dla::sim::Effects;
using dla::sim::Region;
using dla::sim::Space;
using dla::sim::detail::make_plan;
using dla::sim::detail::regions_overlap;
using dla::sim::detail::ReplayPlan;
using dla::sim::detail::Replayer;
using dla::sim::detail::ScheduledInsn;
using dla::sim::detail::weight_sources_unwritten;
namespace isa = dla::isa;

namespace {

std::set<std::uint64_t> units(const Region& r) {
  std::set<std::uint64_t> out;
  for (std::uint64_t row = 0; row < r.rows; ++row) {
    for (std::uint64_t u = 0; u < r.row_len; ++u) out.insert(r.base + row * r.stride + u);
  }
  return out;
}

bool share_a_unit(const Region& a, const Region& b) {
  const std::set<std::uint64_t> ua = units(a), ub = units(b);
  return std::any_of(ua.begin(), ua.end(), [&](std::uint64_t u) { return ub.count(u) != 0; });
}

/// Rows of a region as [begin, end) ranges (an independent check of the plan's conflicts).
bool rows_meet(const Region& a, const Region& b) {
  if (a.base >= b.end() || b.base >= a.end()) return false;
  for (std::uint64_t i = 0; i < a.rows; ++i) {
    const std::uint64_t a0 = a.base + i * a.stride, a1 = a0 + a.row_len;
    for (std::uint64_t j = 0; j < b.rows; ++j) {
      const std::uint64_t b0 = b.base + j * b.stride;
      if (a0 < b0 + b.row_len && b0 < a1) return true;
    }
  }
  return false;
}

/// The program's data instructions in program order (an order a scheduler may take), as
/// describe() sees them.
std::vector<ScheduledInsn> order_of(const dla::Program& p, const HwConfig& hw) {
  const dla::sim::MachineState m(hw, p.dram_size);
  std::vector<ScheduledInsn> order;
  for (std::uint32_t i = 0; i < p.instructions.size(); ++i) {
    const isa::Instruction& insn = p.instructions[i];
    if (std::holds_alternative<isa::Sync>(insn) || std::holds_alternative<isa::End>(insn)) continue;
    order.push_back({i, dla::sim::describe(insn, m, i), dla::sim::keeps_half_of_last_byte(insn)});
  }
  return order;
}

bool dram_conflict(const Effects& x, const Effects& y) {
  for (const Access& a : x) {
    for (const Access& b : y) {
      if (a.region.space == Space::kDram && b.region.space == Space::kDram &&
          (a.kind == AccessKind::kWrite || b.kind == AccessKind::kWrite) && rows_meet(a.region, b.region)) {
        return true;
      }
    }
  }
  return false;
}

bool in_zero_first(const ReplayPlan& plan, unsigned thread, Space space, std::uint64_t unit) {
  return std::any_of(plan.zero_first[thread].begin(), plan.zero_first[thread].end(), [&](const Region& r) {
    return r.space == space && r.rows == 1 && unit >= r.base && unit < r.base + r.row_len;
  });
}

/// Every step exactly once, each thread's steps in order; every SRAM unit a step reads
/// (and the last unit of each row it writes, when it keeps half of that byte) was last
/// written, unit by unit in recorded order, by a step on the same thread (its lane), or by
/// none, and then its thread's lane starts with it zeroed; and every pair of steps on two
/// threads whose DRAM accesses conflict ordered: the later one's thread has waited, by
/// then, for the earlier one's position on its thread.
/// `parallel`: the order has independent chains, so every thread gets some and some DRAM
/// conflicts cross threads.
void expect_plan_keeps_every_dependency(const std::vector<ScheduledInsn>& order, unsigned threads, bool parallel) {
  SCOPED_TRACE(std::to_string(order.size()) + " instructions on " + std::to_string(threads) + " threads");
  const ReplayPlan plan = make_plan(order, threads);
  ASSERT_EQ(plan.threads.size(), threads);
  ASSERT_EQ(plan.zero_first.size(), threads);
  std::vector<unsigned> thread_of(order.size(), threads);
  std::vector<std::uint32_t> position(order.size(), 0);
  // waited[k][b]: how many of thread b's steps the thread of step k has waited for when k runs.
  std::vector<std::vector<std::uint32_t>> waited(order.size(), std::vector<std::uint32_t>(threads, 0));
  for (unsigned t = 0; t < threads; ++t) {
    std::vector<std::uint32_t> so_far(threads, 0);
    std::uint32_t last = 0;
    for (std::uint32_t i = 0; i < plan.threads[t].size(); ++i) {
      const ReplayPlan::Step& s = plan.threads[t][i];
      ASSERT_LT(s.order, order.size());
      ASSERT_EQ(thread_of[s.order], threads) << "step " << s.order << " twice";
      if (i > 0) {
        ASSERT_GT(s.order, last) << "thread " << t << " out of order";
      }
      last = s.order;
      thread_of[s.order] = t;
      position[s.order] = i;
      for (std::uint32_t w = s.waits_begin; w < s.waits_end; ++w) {
        const ReplayPlan::Wait& wait = plan.waits[w];
        ASSERT_LT(wait.thread, threads);
        ASSERT_NE(wait.thread, t);
        so_far[wait.thread] = std::max(so_far[wait.thread], wait.done);
      }
      waited[s.order] = so_far;
    }
  }
  for (std::size_t k = 0; k < order.size(); ++k) ASSERT_LT(thread_of[k], threads) << "step " << k << " missing";
  if (threads > 1 && parallel) {
    for (unsigned t = 0; t < threads; ++t) EXPECT_FALSE(plan.threads[t].empty()) << "thread " << t << " idle";
  }

  // SRAM, unit by unit.
  std::vector<std::vector<std::uint32_t>> writer(dla::sim::kNumSpaces);
  std::size_t sram_reads = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    auto check_read = [&](Space space, std::uint64_t unit) {
      auto& w = writer[static_cast<std::size_t>(space)];
      if (w.size() <= unit) w.resize(unit + 1, UINT32_MAX);
      ++sram_reads;
      if (w[unit] == UINT32_MAX) {
        ASSERT_TRUE(in_zero_first(plan, thread_of[k], space, unit))
            << "step " << k << " reads " << dla::sim::space_name(space) << " unit " << unit
            << ", which nothing wrote before it, and its lane does not start with it zeroed";
      } else {
        ASSERT_EQ(thread_of[w[unit]], thread_of[k])
            << "step " << k << " reads " << dla::sim::space_name(space) << " unit " << unit << " from step " << w[unit]
            << " on another lane";
      }
    };
    for (const Access& a : order[k].fx) {
      if (a.region.space == Space::kDram) continue;
      for (std::uint64_t row = 0; row < a.region.rows; ++row) {
        const std::uint64_t begin = a.region.base + row * a.region.stride, end = begin + a.region.row_len;
        if (a.kind == AccessKind::kRead) {
          for (std::uint64_t u = begin; u < end; ++u) check_read(a.region.space, u);
        } else if (order[k].keeps_half_of_last_byte && end > begin) {
          check_read(a.region.space, end - 1);
        }
      }
    }
    for (const Access& a : order[k].fx) {
      if (a.region.space == Space::kDram || a.kind != AccessKind::kWrite) continue;
      auto& w = writer[static_cast<std::size_t>(a.region.space)];
      for (std::uint64_t row = 0; row < a.region.rows; ++row) {
        const std::uint64_t begin = a.region.base + row * a.region.stride, end = begin + a.region.row_len;
        if (w.size() < end) w.resize(end, UINT32_MAX);
        for (std::uint64_t u = begin; u < end; ++u) w[u] = static_cast<std::uint32_t>(k);
      }
    }
  }
  EXPECT_GT(sram_reads, 0u);

  // DRAM, pair by pair.
  std::size_t cross = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    for (std::size_t j = 0; j < k; ++j) {
      if (thread_of[j] == thread_of[k] || !dram_conflict(order[j].fx, order[k].fx)) continue;
      ++cross;
      ASSERT_GE(waited[k][thread_of[j]], position[j] + 1)
          << "step " << k << " (instruction " << order[k].insn << ", thread " << thread_of[k]
          << ") may run before step " << j << " (instruction " << order[j].insn << ", thread " << thread_of[j]
          << ") whose DRAM accesses it conflicts with";
    }
  }
  if (threads > 1 && parallel) {
    EXPECT_GT(cross, 0u) << "no DRAM conflict across threads: the check checked nothing";
  }
}

}  // namespace

TEST(EmuReplay, RegionsOverlapNeverMissesASharedUnitAndIsExactForOneStride) {
  std::mt19937_64 g(4100);
  auto draw = [&](std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(g); };
  int exact = 0;
  for (int i = 0; i < 20000; ++i) {
    Region a{Space::kAct, draw(0, 60), draw(1, 9), draw(1, 5), draw(0, 12)};
    Region b{Space::kAct, draw(0, 60), draw(1, 9), draw(1, 5), draw(0, 12)};
    if (i % 3 == 0) b.stride = a.stride;  // the exact case, often
    const bool truth = share_a_unit(a, b);
    const bool said = regions_overlap(a, b);
    SCOPED_TRACE("a = " + std::to_string(a.base) + "+" + std::to_string(a.row_len) + "x" + std::to_string(a.rows) + "/" +
                 std::to_string(a.stride) + ", b = " + std::to_string(b.base) + "+" + std::to_string(b.row_len) + "x" +
                 std::to_string(b.rows) + "/" + std::to_string(b.stride));
    if (truth) {
      ASSERT_TRUE(said);
    }
    const auto one_row = [](const Region& r) { return r.rows == 1 || r.stride == 0; };
    if (a.stride == b.stride || one_row(a) || one_row(b)) {
      ASSERT_EQ(said, truth);
      ++exact;
    }
  }
  EXPECT_GT(exact, 5000);
}

TEST(EmuReplay, EveryPlanKeepsSramDataOnOneLaneAndOrdersDramConflictsBetweenThreads) {
  std::mt19937_64 g(4101);
  for (const auto& v : emu_test::conv_variants()) {
    SCOPED_TRACE(v.name);
    emu_test::ConvSpec spec = v.spec;
    spec.in_h = 30;  // a dozen tiles and more
    const emu_test::ConvCase c = emu_test::make_conv_program(v.cfg, spec, g);
    const std::vector<ScheduledInsn> order = order_of(c.program, v.cfg);
    // Weights and parameters loaded once, read by every tile: one chain.
    for (unsigned threads : {1u, 2u, 3u}) expect_plan_keeps_every_dependency(order, threads, false);
  }
  // A whole network as the compiler lowers it: ACT reused between layers, DRAM tensors
  // written in channel slices, weights double-buffered.
  for (const char* preset : {"default", "small"}) {
    SCOPED_TRACE(preset);
    const HwConfig hw = HwConfig::preset(preset);
    const dla::Program p = dla::compiler::compile(dla::compiler::resnet18(32), hw);
    const std::vector<ScheduledInsn> order = order_of(p, hw);
    for (unsigned threads : {2u, 3u}) expect_plan_keeps_every_dependency(order, threads, true);
  }
}

namespace {

/// Steps that touch nothing in common, so any thread may run any of them at any time.
std::vector<ScheduledInsn> independent_steps(std::uint32_t n) {
  std::vector<ScheduledInsn> order(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    order[i].insn = i;
    order[i].fx.add(Space::kAct, AccessKind::kWrite, 16 * i, 16);
  }
  return order;
}

struct Recorder {
  std::vector<std::atomic<int>> runs;
  std::set<std::uint32_t> failing;
  explicit Recorder(std::size_t n) : runs(n) {}
};

}  // namespace

TEST(EmuReplay, TheFirstFailureInRecordedOrderIsReportedAndEverythingBeforeItRuns) {
  const std::vector<ScheduledInsn> order = independent_steps(400);
  for (unsigned threads : {1u, 2u, 3u}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    const ReplayPlan plan = make_plan(order, threads);
    Replayer replayer;
    for (const std::set<std::uint32_t>& failing :
         {std::set<std::uint32_t>{}, std::set<std::uint32_t>{250}, std::set<std::uint32_t>{90, 91, 300}}) {
      Recorder r(order.size());
      r.failing = failing;
      const std::exception_ptr e = replayer.run(plan, order, [](void* ctx, const ScheduledInsn& s, std::uint32_t) {
        auto& rec = *static_cast<Recorder*>(ctx);
        ++rec.runs[s.insn];
        if (rec.failing.count(s.insn) != 0) throw std::runtime_error("step " + std::to_string(s.insn));
      }, &r);
      const std::uint32_t first = failing.empty() ? 400 : *failing.begin();
      if (failing.empty()) {
        EXPECT_FALSE(e);
      } else {
        ASSERT_TRUE(e);
        try {
          std::rethrow_exception(e);
        } catch (const std::runtime_error& x) {
          EXPECT_EQ(std::string(x.what()), "step " + std::to_string(first));
        }
      }
      for (std::uint32_t i = 0; i < order.size(); ++i) {
        ASSERT_LE(r.runs[i].load(), 1) << "step " << i << " ran twice";
        if (i <= first) {
          ASSERT_EQ(r.runs[i].load(), 1) << "step " << i << " before the failure did not run";
        }
      }
    }
  }
}

// Helpers are started when a run asks for more threads than before: each step of every
// run is performed exactly once, by one thread, whatever the thread counts before it.
TEST(EmuReplay, EveryStepRunsOnceAsThreadsAreAdded) {
  const std::vector<ScheduledInsn> order = independent_steps(64);
  for (int round = 0; round < 20; ++round) {
    Replayer replayer;
    for (unsigned threads : {1u, 2u, 3u, 2u, 4u}) {
      SCOPED_TRACE("round " + std::to_string(round) + ", " + std::to_string(threads) + " threads");
      const ReplayPlan plan = make_plan(order, threads);
      Recorder r(order.size());
      EXPECT_FALSE(replayer.run(plan, order, [](void* ctx, const ScheduledInsn& s, std::uint32_t) {
        ++static_cast<Recorder*>(ctx)->runs[s.insn];
      }, &r));
      for (std::uint32_t i = 0; i < order.size(); ++i) ASSERT_EQ(r.runs[i].load(), 1) << "step " << i;
    }
  }
}

// A 4-bit result of odd length keeps the other half of its last byte: the step that wrote
// that byte before must be on the same lane, although no access of the later step reads it.
TEST(EmuReplay, AResultEndingMidByteStaysOnTheLaneOfTheByteItKeeps) {
  for (const bool keeps : {false, true}) {
    SCOPED_TRACE(keeps ? "keeps half of its last byte" : "writes whole bytes");
    std::vector<ScheduledInsn> order(2);
    order[0].insn = 0;
    order[0].fx.add(Space::kAct, AccessKind::kWrite, 0, 16);
    order[1].insn = 1;
    order[1].fx.add(Space::kAct, AccessKind::kWrite, 8, 8);
    order[1].keeps_half_of_last_byte = keeps;
    const ReplayPlan plan = make_plan(order, 2);
    ASSERT_EQ(plan.threads.size(), 2u);
    if (keeps) {
      EXPECT_TRUE(plan.threads[1].empty()) << "the second write went to another lane than the byte it keeps";
      expect_plan_keeps_every_dependency(order, 2, false);
    } else {
      // Two independent writes: one per thread (which is what makes the case above a test).
      EXPECT_EQ(plan.threads[1].size(), 1u);
    }
  }
}

TEST(EmuReplay, WeightSourcesWrittenByTheProgramAreFound) {
  const HwConfig hw = HwConfig::preset("default");
  const dla::Program p = dla::compiler::compile(dla::compiler::resnet18(32), hw);
  std::vector<ScheduledInsn> order = order_of(p, hw);
  EXPECT_TRUE(weight_sources_unwritten(order)) << "a compiled network's weights are constants";
  // A LOAD into WGT from DRAM [1000, 1064) and STOREs around and into it.
  std::vector<ScheduledInsn> own(1);
  own[0].fx.add(Space::kDram, AccessKind::kRead, 1000, 16, 4, 16);
  own[0].fx.add(Space::kWgt, AccessKind::kWrite, 0, 64);
  for (const auto& [base, len, overlaps] : std::vector<std::tuple<std::uint64_t, std::uint64_t, bool>>{
           {900, 100, false}, {1064, 8, false}, {990, 11, true}, {1063, 1, true}, {1020, 4, true}}) {
    SCOPED_TRACE("STORE to DRAM [" + std::to_string(base) + ", " + std::to_string(base + len) + ")");
    for (const bool store_first : {false, true}) {
      std::vector<ScheduledInsn> with_store = own;
      ScheduledInsn store;
      store.fx.add(Space::kAct, AccessKind::kRead, 0, len);
      store.fx.add(Space::kDram, AccessKind::kWrite, base, len);
      with_store.insert(store_first ? with_store.begin() : with_store.end(), store);
      EXPECT_EQ(weight_sources_unwritten(with_store), !overlaps);
    }
  }
  // Reads of the same DRAM into ACT are no weight sources.
  std::vector<ScheduledInsn> into_act(2);
  into_act[0].fx.add(Space::kDram, AccessKind::kRead, 1000, 64);
  into_act[0].fx.add(Space::kAct, AccessKind::kWrite, 0, 64);
  into_act[1].fx.add(Space::kAct, AccessKind::kRead, 0, 64);
  into_act[1].fx.add(Space::kDram, AccessKind::kWrite, 1000, 64);
  EXPECT_TRUE(weight_sources_unwritten(into_act));
}

// SRAM that no step has written when a step reads it holds the zeros a run starts with:
// the lane of that step lists it, and only what nothing wrote before.
TEST(EmuReplay, ALaneStartsWithZerosWhereItReadsWhatNothingWrote) {
  std::vector<ScheduledInsn> order(4);
  order[0].fx.add(Space::kAcc, AccessKind::kWrite, 0, 8);
  order[1].fx.add(Space::kAct, AccessKind::kWrite, 0, 8);
  order[2].fx.add(Space::kAcc, AccessKind::kRead, 4, 8);  // [4, 8) from step 0, [8, 12) never written
  order[3].fx.add(Space::kAct, AccessKind::kRead, 0, 8, 2, 100);  // [0, 8) from step 1, [100, 108) never written
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i].insn = i;
  const ReplayPlan plan = make_plan(order, 2);
  expect_plan_keeps_every_dependency(order, 2, false);
  std::vector<std::tuple<unsigned, Space, std::uint64_t, std::uint64_t>> zeros;
  for (unsigned t = 0; t < 2; ++t) {
    for (const Region& r : plan.zero_first[t]) zeros.emplace_back(t, r.space, r.base, r.row_len);
  }
  const unsigned acc_lane = std::find_if(plan.threads[0].begin(), plan.threads[0].end(), [](const auto& s) {
                              return s.order == 2;
                            }) != plan.threads[0].end() ? 0u : 1u;
  const unsigned act_lane = 1 - acc_lane;
  std::vector<std::tuple<unsigned, Space, std::uint64_t, std::uint64_t>> expected{{acc_lane, Space::kAcc, 8, 4},
                                                                                 {act_lane, Space::kAct, 100, 8}};
  std::sort(zeros.begin(), zeros.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(zeros, expected);
}

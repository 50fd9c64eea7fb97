// The emulator's replay of a recorded schedule (sim/engines/src/replay.hpp, white-box):
// the overlap test against unit-by-unit enumeration, every plan against a brute-force
// search of the conflicts it must order, and the replayer's choice of the error to report.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
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

bool conflict(const Effects& x, const Effects& y) {
  for (const Access& a : x) {
    for (const Access& b : y) {
      if (a.region.space == b.region.space && (a.kind == AccessKind::kWrite || b.kind == AccessKind::kWrite) &&
          rows_meet(a.region, b.region)) {
        return true;
      }
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
    order.push_back({i, dla::sim::describe(insn, m, i)});
  }
  return order;
}

/// Every step exactly once, each thread's steps in order, and every pair of conflicting
/// steps on two threads ordered: the later one's thread has waited, by then, for the
/// earlier one's position on its thread.
void expect_plan_orders_every_conflict(const std::vector<ScheduledInsn>& order, unsigned threads) {
  SCOPED_TRACE(std::to_string(order.size()) + " instructions on " + std::to_string(threads) + " threads");
  const ReplayPlan plan = make_plan(order, threads);
  ASSERT_EQ(plan.threads.size(), threads);
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
  std::size_t cross = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    for (std::size_t j = 0; j < k; ++j) {
      if (thread_of[j] == thread_of[k] || !conflict(order[j].fx, order[k].fx)) continue;
      ++cross;
      ASSERT_GE(waited[k][thread_of[j]], position[j] + 1)
          << "step " << k << " (instruction " << order[k].insn << ", thread " << thread_of[k]
          << ") may run before step " << j << " (instruction " << order[j].insn << ", thread " << thread_of[j]
          << ") it conflicts with";
    }
  }
  if (threads > 1) {
    EXPECT_GT(cross, 0u) << "no conflict across threads: the check checked nothing";
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

TEST(EmuReplay, EveryPlanOrdersEveryConflictBetweenThreads) {
  std::mt19937_64 g(4101);
  for (const auto& v : emu_test::conv_variants()) {
    SCOPED_TRACE(v.name);
    emu_test::ConvSpec spec = v.spec;
    spec.in_h = 30;  // a dozen tiles and more
    const emu_test::ConvCase c = emu_test::make_conv_program(v.cfg, spec, g);
    const std::vector<ScheduledInsn> order = order_of(c.program, v.cfg);
    for (unsigned threads : {1u, 2u, 3u}) expect_plan_orders_every_conflict(order, threads);
  }
  // A whole network as the compiler lowers it: ACT reused between layers, DRAM tensors
  // written in channel slices, weights double-buffered.
  for (const char* preset : {"default", "small"}) {
    SCOPED_TRACE(preset);
    const HwConfig hw = HwConfig::preset(preset);
    const dla::Program p = dla::compiler::compile(dla::compiler::resnet18(32), hw);
    const std::vector<ScheduledInsn> order = order_of(p, hw);
    for (unsigned threads : {2u, 3u}) expect_plan_orders_every_conflict(order, threads);
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
      const std::exception_ptr e = replayer.run(plan, order, [](void* ctx, const ScheduledInsn& s) {
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
      EXPECT_FALSE(replayer.run(plan, order, [](void* ctx, const ScheduledInsn& s) {
        ++static_cast<Recorder*>(ctx)->runs[s.insn];
      }, &r));
      for (std::uint32_t i = 0; i < order.size(); ++i) ASSERT_EQ(r.runs[i].load(), 1) << "step " << i;
    }
  }
}

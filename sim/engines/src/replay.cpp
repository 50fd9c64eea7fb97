// Replays of a recorded schedule (replay.hpp).
#include "replay.hpp"

#include <algorithm>
#include <chrono>
#include <array>

#include "spin_wait.hpp"

namespace dla::sim::detail {
namespace {

/// floor(a / b) and ceil(a / b) for b > 0.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && (a < 0) ? 1 : 0); }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

/// How far make_plan looks back for the conflicting instructions of another thread;
/// beyond, it waits for everything older.
constexpr std::size_t kLookback = 1024;

/// A helper polls for the next run this long, then sleeps.
constexpr std::chrono::milliseconds kIdle{2};

}  // namespace

bool regions_overlap(const Region& a, const Region& b) {
  if (a.rows == 0 || b.rows == 0 || a.row_len == 0 || b.row_len == 0) return false;
  if (a.base >= b.end() || b.base >= a.end()) return false;
  const bool a_single = a.rows == 1 || a.stride == 0, b_single = b.rows == 1 || b.stride == 0;
  if (a_single && b_single) return true;  // two ranges whose bounds overlap
  if (!a_single && !b_single && a.stride != b.stride) return true;
  // Row i of a and row j of b, both s apart, meet iff k = i - j has
  // d - len_a < k s < d + len_b, with d = b.base - a.base.
  const auto s = static_cast<std::int64_t>(a_single ? b.stride : a.stride);
  const std::int64_t d = static_cast<std::int64_t>(b.base) - static_cast<std::int64_t>(a.base);
  const std::int64_t a_rows = a_single ? 1 : static_cast<std::int64_t>(a.rows);
  const std::int64_t b_rows = b_single ? 1 : static_cast<std::int64_t>(b.rows);
  const std::int64_t k_lo = std::max(floor_div(d - static_cast<std::int64_t>(a.row_len), s) + 1, -(b_rows - 1));
  const std::int64_t k_hi = std::min(ceil_div(d + static_cast<std::int64_t>(b.row_len), s) - 1, a_rows - 1);
  return k_lo <= k_hi;
}

namespace {

constexpr std::uint32_t kNone = UINT32_MAX;

/// Chains of steps joined by SRAM data: union-find whose root is the chain's first step.
class Chains {
 public:
  explicit Chains(std::size_t n) : parent_(n) {
    for (std::size_t i = 0; i < n; ++i) parent_[i] = static_cast<std::uint32_t>(i);
  }
  std::uint32_t first(std::uint32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void join(std::uint32_t a, std::uint32_t b) {
    a = first(a);
    b = first(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<std::uint32_t> parent_;
};

/// An estimate of a step's time in nanoseconds: its MACs, the bytes it moves or
/// produces, and a fixed cost per instruction (of the order measured on the VM).
double step_cost(const Effects& fx) {
  return static_cast<double>(fx.macs) / 400.0 +
         static_cast<double>(fx.dram_read_bytes + fx.dram_write_bytes + fx.elements) / 16.0 + 200.0;
}

bool touches_dram(const Effects& fx) {
  return std::any_of(fx.begin(), fx.end(), [](const Access& a) { return a.region.space == Space::kDram; });
}

bool dram_conflict(const Effects& a, const Effects& b) {
  for (const Access& x : a) {
    if (x.region.space != Space::kDram) continue;
    for (const Access& y : b) {
      if (y.region.space != Space::kDram || (x.kind == AccessKind::kRead && y.kind == AccessKind::kRead)) continue;
      if (regions_overlap(x.region, y.region)) return true;
    }
  }
  return false;
}

/// Calls f(begin, end) for each row of a region.
template <class F>
void for_each_row(const Region& r, F f) {
  for (std::uint64_t row = 0; row < r.rows; ++row) f(r.base + row * r.stride, r.base + row * r.stride + r.row_len);
}

/// Joins every step to the chain of the steps that last wrote the SRAM units it reads;
/// returns, per step, the units it reads before anything writes them (as ranges).
std::vector<std::vector<Region>> follow_sram(const std::vector<ScheduledInsn>& order, Chains& chains) {
  std::array<std::uint64_t, kNumSpaces> extent{};
  for (const ScheduledInsn& s : order) {
    for (const Access& a : s.fx) {
      auto& e = extent[static_cast<std::size_t>(a.region.space)];
      if (a.region.rows != 0 && a.region.row_len != 0) e = std::max(e, a.region.end());
    }
  }
  std::array<std::vector<std::uint32_t>, kNumSpaces> last_writer;
  for (int sp = 0; sp < kNumSpaces; ++sp) {
    if (static_cast<Space>(sp) != Space::kDram) last_writer[sp].assign(extent[sp], kNone);
  }
  std::vector<std::vector<Region>> unwritten_reads(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto step = static_cast<std::uint32_t>(k);
    auto read = [&](Space space, std::uint64_t begin, std::uint64_t end) {
      const std::vector<std::uint32_t>& writer = last_writer[static_cast<std::size_t>(space)];
      std::uint32_t seen = kNone - 1;  // no unit yet
      std::uint64_t unwritten_from = end;
      for (std::uint64_t u = begin; u <= end; ++u) {
        const std::uint32_t w = u < end ? writer[u] : kNone - 1;
        if (w == kNone && unwritten_from == end) unwritten_from = u;
        if (w != kNone && unwritten_from != end) {
          unwritten_reads[k].push_back(Region{space, unwritten_from, u - unwritten_from, 1, 0});
          unwritten_from = end;
        }
        if (w == seen || u == end) continue;
        seen = w;
        if (w != kNone) chains.join(step, w);
      }
    };
    const Effects& fx = order[k].fx;
    for (const Access& a : fx) {
      if (a.region.space == Space::kDram || a.region.rows == 0) continue;
      if (a.kind == AccessKind::kRead) {
        for_each_row(a.region, [&](std::uint64_t b, std::uint64_t e) { read(a.region.space, b, e); });
      } else if (order[k].keeps_half_of_last_byte && a.region.row_len != 0) {
        for_each_row(a.region, [&](std::uint64_t, std::uint64_t e) { read(a.region.space, e - 1, e); });
      }
    }
    for (const Access& a : fx) {
      if (a.region.space == Space::kDram || a.kind != AccessKind::kWrite) continue;
      std::vector<std::uint32_t>& writer = last_writer[static_cast<std::size_t>(a.region.space)];
      for_each_row(a.region, [&](std::uint64_t b, std::uint64_t e) {
        std::fill(writer.begin() + static_cast<std::ptrdiff_t>(b), writer.begin() + static_cast<std::ptrdiff_t>(e), step);
      });
    }
  }
  return unwritten_reads;
}

/// Sorted, merged copies of one space's ranges (rows of one).
std::vector<Region> merged(std::vector<Region> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const Region& a, const Region& b) {
    return a.space != b.space ? a.space < b.space : a.base < b.base;
  });
  std::vector<Region> out;
  for (const Region& r : ranges) {
    if (!out.empty() && out.back().space == r.space && r.base <= out.back().end()) {
      out.back().row_len = std::max(out.back().end(), r.end()) - out.back().base;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

ReplayPlan make_plan(const std::vector<ScheduledInsn>& order, unsigned threads) {
  const std::size_t n = order.size();
  const std::uint32_t t_count = std::max(1u, threads);
  Chains chains(n);
  const std::vector<std::vector<Region>> unwritten_reads = follow_sram(order, chains);

  // Chains, in the order of their first steps, to the thread with the least work so far.
  std::vector<std::uint32_t> owner(n, kNone);
  std::vector<double> work(t_count, 0.0);
  std::vector<double> chain_cost(n, 0.0);
  for (std::size_t k = 0; k < n; ++k) chain_cost[chains.first(static_cast<std::uint32_t>(k))] += step_cost(order[k].fx);
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t first = chains.first(static_cast<std::uint32_t>(k));
    if (first == k) {
      owner[k] = static_cast<std::uint32_t>(std::min_element(work.begin(), work.end()) - work.begin());
      work[owner[k]] += chain_cost[k];
    } else {
      owner[k] = owner[first];
    }
  }

  ReplayPlan plan;
  plan.threads.resize(t_count);
  plan.zero_first.resize(t_count);
  for (std::size_t k = 0; k < n; ++k) {
    auto& zero = plan.zero_first[owner[k]];
    zero.insert(zero.end(), unwritten_reads[k].begin(), unwritten_reads[k].end());
  }
  for (auto& zero : plan.zero_first) zero = merged(std::move(zero));

  // before[t][k]: instructions of thread t among the first k.
  std::vector<std::vector<std::uint32_t>> before(t_count, std::vector<std::uint32_t>(n + 1, 0));
  for (std::size_t k = 0; k < n; ++k) {
    for (std::uint32_t t = 0; t < t_count; ++t) before[t][k + 1] = before[t][k] + (owner[k] == t ? 1 : 0);
  }
  std::vector<bool> dram(n);
  for (std::size_t k = 0; k < n; ++k) dram[k] = touches_dram(order[k].fx);
  // waited[a][b]: how many of b's instructions a's steps so far wait for (a thread's
  // steps run in order, so a later step need not wait for them again).
  std::vector<std::vector<std::uint32_t>> waited(t_count, std::vector<std::uint32_t>(t_count, 0));
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t a = owner[k];
    ReplayPlan::Step step;
    step.order = static_cast<std::uint32_t>(k);
    step.waits_begin = static_cast<std::uint32_t>(plan.waits.size());
    const std::size_t window_begin = k > kLookback ? k - kLookback : 0;
    for (std::uint32_t b = 0; b < t_count; ++b) {
      if (b == a) continue;
      // The latest earlier instruction of b whose DRAM accesses conflict; past the
      // lookback, all of b's instructions that far back.
      std::uint32_t need = before[b][window_begin];
      if (dram[k]) {
        for (std::size_t j = k; j-- > window_begin;) {
          if (owner[j] == b && dram[j] && dram_conflict(order[j].fx, order[k].fx)) {
            need = before[b][j + 1];
            break;
          }
        }
      }
      if (need > waited[a][b]) {
        plan.waits.push_back({b, need});
        waited[a][b] = need;
      }
    }
    step.waits_end = static_cast<std::uint32_t>(plan.waits.size());
    plan.threads[a].push_back(step);
  }
  return plan;
}

bool weight_sources_unwritten(const std::vector<ScheduledInsn>& order) {
  std::vector<Region> sources, writes;
  for (const ScheduledInsn& s : order) {
    const bool into_wgt = std::any_of(s.fx.begin(), s.fx.end(), [](const Access& a) {
      return a.region.space == Space::kWgt && a.kind == AccessKind::kWrite;
    });
    for (const Access& a : s.fx) {
      if (a.region.space != Space::kDram || a.region.rows == 0 || a.region.row_len == 0) continue;
      const Region bounds{Space::kDram, a.region.base, a.region.end() - a.region.base, 1, 0};
      if (a.kind == AccessKind::kWrite) writes.push_back(bounds);
      if (a.kind == AccessKind::kRead && into_wgt) sources.push_back(bounds);
    }
  }
  const std::vector<Region> read = merged(std::move(sources));
  for (const Region& w : writes) {
    // The first merged source ending after w begins.
    const auto it = std::upper_bound(read.begin(), read.end(), w.base, [](std::uint64_t x, const Region& r) {
      return x < r.end();
    });
    if (it != read.end() && it->base < w.end()) return false;
  }
  return true;
}

Replayer::~Replayer() {
  {
    const std::lock_guard<std::mutex> lock(sleep_mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : helpers_) t.join();
}

std::exception_ptr Replayer::run(const ReplayPlan& plan, const std::vector<ScheduledInsn>& order, Body body,
                                 void* ctx) {
  const std::size_t threads = plan.threads.size();
  if (progress_size_ < threads) {
    progress_ = std::make_unique<Progress[]>(threads);
    progress_size_ = threads;
  }
  for (std::size_t t = 0; t < threads; ++t) progress_[t].done.store(0, std::memory_order_relaxed);
  plan_ = &plan;
  order_ = &order;
  body_ = body;
  ctx_ = ctx;
  failed_order_.store(UINT32_MAX, std::memory_order_relaxed);
  failure_ = nullptr;
  while (helpers_.size() + 1 < threads) {
    // A new helper waits for the run about to be published, not the one before it.
    const auto t = static_cast<std::uint32_t>(helpers_.size() + 1);
    const std::uint64_t published = generation_.load(std::memory_order_relaxed);
    helpers_.emplace_back([this, t, published] { helper_loop(t, published); });
  }
  finished_.store(0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  if (sleepers_.load() != 0) {
    { const std::lock_guard<std::mutex> lock(sleep_mutex_); }
    wake_.notify_all();
  }
  perform_steps(0);
  for (std::uint64_t spin = 0; finished_.load(std::memory_order_acquire) != helpers_.size(); ++spin) wait_step(spin);
  return failure_;
}

void Replayer::perform_steps(std::uint32_t thread) {
  if (thread >= plan_->threads.size()) return;
  const std::vector<ReplayPlan::Step>& steps = plan_->threads[thread];
  Progress& mine = progress_[thread];
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const ReplayPlan::Step& step = steps[i];
    auto stopped = [&] { return failed_order_.load(std::memory_order_acquire) < step.order; };
    if (stopped()) return;
    for (std::uint32_t w = step.waits_begin; w < step.waits_end; ++w) {
      const ReplayPlan::Wait& wait = plan_->waits[w];
      for (std::uint64_t spin = 0; progress_[wait.thread].done.load(std::memory_order_acquire) < wait.done; ++spin) {
        if (stopped()) return;
        wait_step(spin);
      }
    }
    try {
      body_(ctx_, (*order_)[step.order], thread);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failure_mutex_);
      if (step.order < failed_order_.load()) {
        failure_ = std::current_exception();
        failed_order_.store(step.order, std::memory_order_release);
      }
      return;
    }
    mine.done.store(static_cast<std::uint32_t>(i + 1), std::memory_order_release);
  }
}

void Replayer::helper_loop(std::uint32_t thread, std::uint64_t seen) {
  for (;;) {
    // Wait for the next run: poll, then yield the core, for up to kIdle; then sleep.
    const auto idle_until = std::chrono::steady_clock::now() + kIdle;
    std::uint64_t g = generation_.load(std::memory_order_acquire);
    for (std::uint64_t spin = 0; g == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      wait_step(spin);
      if (spin % 64 == 0 && std::chrono::steady_clock::now() > idle_until) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
      }
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = g;
    perform_steps(thread);
    finished_.fetch_add(1, std::memory_order_acq_rel);
  }
}

}  // namespace dla::sim::detail

// Replays of a recorded schedule (replay.hpp).
#include "replay.hpp"

#include <algorithm>
#include <chrono>
#include <map>

#include "spin_mutex.hpp"

namespace dla::sim::detail {
namespace {

/// floor(a / b) and ceil(a / b) for b > 0.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && (a < 0) ? 1 : 0); }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

/// How far make_plan looks back for the conflicting instructions of another thread (and
/// ahead or back for where a DMA belongs); beyond, it waits for everything older.
constexpr std::size_t kLookback = 256;

/// A helper polls for the next run this long, then sleeps.
constexpr std::chrono::milliseconds kIdle{2};

/// Whether two instructions' accesses conflict: a unit both touch, at least one writing.
bool accesses_conflict(const Effects& a, const Effects& b) {
  for (const Access& x : a) {
    for (const Access& y : b) {
      if (x.region.space != y.region.space) continue;
      if (x.kind == AccessKind::kRead && y.kind == AccessKind::kRead) continue;
      if (regions_overlap(x.region, y.region)) return true;
    }
  }
  return false;
}

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

ReplayPlan make_plan(const std::vector<ScheduledInsn>& order, unsigned threads) {
  const std::size_t n = order.size();
  const std::uint32_t t_count = std::max(1u, threads);
  std::vector<std::uint32_t> owner(n, UINT32_MAX);
  // Accumulator tiles, dealt out in turn: an instruction that writes ACC without reading
  // it starts a tile at its first word; the others that touch that word join the tile.
  std::map<std::uint64_t, std::uint32_t> tile_owner;
  std::uint32_t next_tile = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const Effects& fx = order[k].fx;
    const auto acc = std::find_if(fx.begin(), fx.end(), [](const Access& a) { return a.region.space == Space::kAcc; });
    if (acc == fx.end()) continue;
    const bool reads = std::any_of(fx.begin(), fx.end(), [](const Access& a) {
      return a.region.space == Space::kAcc && a.kind == AccessKind::kRead;
    });
    const auto found = tile_owner.find(acc->region.base);
    if (!reads || found == tile_owner.end()) {
      owner[k] = tile_owner[acc->region.base] = next_tile++ % t_count;
    } else {
      owner[k] = found->second;
    }
  }
  // The other instructions go with a nearby one they conflict with: a LOAD with the
  // instruction that consumes its bytes, the others with the one that produced theirs;
  // else to the thread with the fewest instructions so far.
  std::vector<std::size_t> load(t_count, 0);
  for (std::size_t k = 0; k < n; ++k) {
    if (owner[k] != UINT32_MAX) {
      ++load[owner[k]];
      continue;
    }
    auto search = [&](bool forward) {
      for (std::size_t step = 1; step <= kLookback; ++step) {
        if (forward ? k + step >= n : step > k) break;
        const std::size_t j = forward ? k + step : k - step;
        if (owner[j] != UINT32_MAX && accesses_conflict(order[j].fx, order[k].fx)) return owner[j];
      }
      return UINT32_MAX;
    };
    const bool is_load = std::any_of(order[k].fx.begin(), order[k].fx.end(), [](const Access& a) {
      return a.region.space == Space::kDram && a.kind == AccessKind::kRead;
    });
    std::uint32_t o = search(is_load);
    if (o == UINT32_MAX) o = search(!is_load);
    if (o == UINT32_MAX) o = static_cast<std::uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[k] = o;
    ++load[o];
  }

  ReplayPlan plan;
  plan.threads.resize(t_count);
  // before[t][k]: instructions of thread t among the first k.
  std::vector<std::vector<std::uint32_t>> before(t_count, std::vector<std::uint32_t>(n + 1, 0));
  for (std::size_t k = 0; k < n; ++k) {
    for (std::uint32_t t = 0; t < t_count; ++t) before[t][k + 1] = before[t][k] + (owner[k] == t ? 1 : 0);
  }
  // waited[a][b]: how many of b's instructions a's steps so far wait for (a thread's
  // steps run in order, so a later step need not wait for them again).
  std::vector<std::vector<std::uint32_t>> waited(t_count, std::vector<std::uint32_t>(t_count, 0));
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t a = owner[k];
    ReplayPlan::Step step;
    step.order = static_cast<std::uint32_t>(k);
    step.waits_begin = static_cast<std::uint32_t>(plan.waits.size());
    for (std::uint32_t b = 0; b < t_count; ++b) {
      if (b == a) continue;
      // The latest earlier instruction of b that conflicts; past the lookback, all of b's
      // instructions that far back.
      std::uint32_t need = k > kLookback ? before[b][k - kLookback] : 0;
      for (std::size_t j = k; j-- > (k > kLookback ? k - kLookback : 0);) {
        if (owner[j] == b && accesses_conflict(order[j].fx, order[k].fx)) {
          need = before[b][j + 1];
          break;
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
      body_(ctx_, (*order_)[step.order]);
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

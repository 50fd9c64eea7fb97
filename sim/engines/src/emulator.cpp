// The functional emulator: dla::sim::make_emulator (dla/device.hpp).
//
// Scheduling (isa.hpp, "Queues and dependency tokens"), emulated deterministically:
//   * A dispatcher takes instructions in program order into the load, compute and store
//     queues (HwConfig::queue_depth each); it stalls while the target queue is full. SYNC
//     and END wait at the dispatcher until all three queues are empty; then every queue's
//     vector clock takes the element-wise max of all (a barrier orders everything), and
//     END stops the program.
//   * Each queue runs its head instruction when every token it pops is present: it pops
//     them, executes, then pushes its tokens; a push into a full FIFO (HwConfig::
//     token_depth) stalls the queue with the instruction still at its head until the FIFO
//     has room. A token carries the pusher's clock.
//   * Pending pushes complete as soon as there is room. Of the heads whose tokens are
//     present, the one with the lowest program index runs next; dispatch runs as far as
//     it can before each choice. When nothing can move, the program is deadlocked and
//     the ExecutionError names every blocked instruction and why.
// Every access is checked by the race detector (race_detector.hpp) before the semantic
// body (dla/semantics.hpp) executes, so a program that runs here race-free computes the
// same integers under any timing. (Reads of DRAM bytes that no instruction of the program
// writes, such as weights, cannot race and are not tracked.)
// The first run of a loaded program schedules and checks as above while it executes, and
// records the order it took. Nothing the scheduler, describe() or the race detector
// decides depends on data (the program and the hardware config fix the order, every
// access and every verdict), so a later run of the program performs the recorded order
// again (replay.hpp): the same instructions in the same order, the same bytes, without
// deciding it all again. What does depend on data (a parameter record's clip range) is
// checked by perform() on every run. On several threads the recorded order is split
// between them (ReplayPlan): each thread has SRAM of its own (a lane) over the one DRAM,
// the instructions that pass data through SRAM stay together on one lane, and DRAM
// accesses are ordered between threads; an error is then the first in recorded order,
// and instructions after it that do not depend on it may have run. A program that writes
// DRAM its weights are loaded from replays on one thread (the weight caches are per lane).
// A run that throws records nothing: the next one schedules and checks again.
// Machine state at the start of every run: DRAM zero, constants at 0, bound inputs at
// their offsets; all SRAM buffers zero (a run after the first restores only the DRAM the
// previous one wrote). Tokens left in FIFOs at END are dropped.
#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "dla/device.hpp"
#include "dla/semantics.hpp"
#include "dla/tensor.hpp"
#include "program_host.hpp"
#include "race_detector.hpp"
#include "replay.hpp"
#include "scheduling.hpp"
#include "weight_cache.hpp"

namespace dla::sim {
namespace {

using detail::Clock;
using detail::kQueues;
using detail::Stamp;

using detail::Counters;
using detail::fifo_target;
using detail::kNumFifos;
using detail::Token;
using detail::token_use;
using detail::TokenUse;

class Emulator final : public Device {
 public:
  explicit Emulator(const HwConfig& config) : config_(config), host_(config_) { config_.validate(); }

  std::string name() const override { return "emu"; }
  const HwConfig& config() const override { return config_; }
  void load(const Program& program) override;
  void set_input(const std::string& name, const HostTensor& tensor) override { host_.set_input(name, tensor); }
  void run(const RunOptions& options) override;
  HostTensor output(const std::string& name) const override { return host_.output(name); }
  std::vector<LayerDump> layer_dumps() const override { return dumps_; }
  RunStats stats() const override { return stats_; }

 private:
  // Scheduler
  void schedule();
  bool ready(std::uint32_t i, int q) const;
  void step(int q);
  bool push_pending(int q);
  void barrier();
  [[noreturn]] void deadlock() const;
  /// SRAM of its own over the emulator's DRAM, for one thread of a replay beyond the first
  /// (replay.hpp), and its memory of its WGT.
  struct Lane {
    MachineState state;
    detail::WeightCache weights;
    ExecOptions exec;
  };
  /// The data work of instruction i, whose accesses describe() gave, on machine `m` with
  /// its weight cache (on any thread).
  void execute(std::uint32_t i, const Effects& described, MachineState& m, const ExecOptions& exec);
  void execute(std::uint32_t i, const Effects& described) { execute(i, described, host_.state(), exec_); }
  /// Lanes for threads 1 .. threads - 1, each ready for a run: SRAM zero where the plan
  /// reads it before writing it, weight cache reset for the run.
  void prepare_lanes(unsigned threads);
  /// A later run: the recorded order again, on exec_.threads threads.
  void replay();
  /// Drops the recorded order and its split: the next run schedules and checks.
  void forget_recording() {
    recorded_.clear();
    plan_threads_ = 0;
  }

  const Program& prog() const { return host_.program(); }

  HwConfig config_;
  detail::ProgramHost host_;
  ExecOptions exec_;
  RunStats stats_;
  std::vector<LayerDump> dumps_;
  // Counters of every instruction of the last run (each written by the thread that
  // performed it); run statistics are their sums, layer statistics their sums over the
  // debug records' ranges (ranges may overlap).
  std::vector<Counters> per_insn_;

  // The order the first successful run of the program took (empty: none yet), the
  // instructions it counted (SYNC and END too), and its split for plan_threads_ threads.
  std::vector<detail::ScheduledInsn> recorded_;
  std::uint64_t recorded_instructions_ = 0;
  detail::ReplayPlan plan_;
  unsigned plan_threads_ = 0;
  /// Whether the recording may be split between lanes (weight_sources_unwritten).
  bool lanes_allowed_ = false;
  detail::Replayer replayer_;
  std::vector<std::unique_ptr<Lane>> lanes_;

  // Run state
  std::uint32_t next_ = 0;
  std::array<std::deque<std::uint32_t>, kQueues> queues_;
  std::array<std::deque<Token>, kNumFifos> fifos_;
  /// Per queue: the head has executed and these FIFOs still wait for its token (-1: none).
  std::array<std::array<int, 2>, kQueues> pending_{};
  std::array<Clock, kQueues> clocks_{};
  std::array<std::vector<std::uint32_t>, kQueues> insn_of_event_;
  std::array<std::size_t, kQueues> per_queue_{};  ///< instructions of the program per queue
  // Per instruction, decoded once at load: the scheduler asks for them on every step.
  std::vector<int> queue_of_;
  std::vector<TokenUse> tokens_;
  detail::RaceDetector races_;
  // Weights already in WGT and already packed (every write to the state goes through
  // perform(), and begin_run() resets the state, then this).
  detail::WeightCache weights_;
};

void Emulator::load(const Program& p) {
  host_.load(p);
  weights_.reset();
  lanes_.clear();  // their weight caches keep packings of this program's constants only
  per_queue_ = {};
  queue_of_.clear();
  tokens_.clear();
  queue_of_.reserve(p.instructions.size());
  tokens_.reserve(p.instructions.size());
  for (const isa::Instruction& insn : p.instructions) {
    const int q = static_cast<int>(isa::queue_of(insn));
    queue_of_.push_back(q);
    tokens_.push_back(q < kQueues ? token_use(isa::tokens_of(insn), q) : TokenUse{});
    if (q < kQueues) ++per_queue_[static_cast<std::size_t>(q)];
  }
  stats_ = {};
  dumps_.clear();
  forget_recording();
}

void Emulator::run(const RunOptions& options) {
  exec_.threads = resolve_threads(options.threads);
  exec_.weights = &weights_;
  stats_ = {};
  dumps_.clear();
  host_.begin_run();
  weights_.begin_run(prog().constants.size());
  per_insn_.assign(prog().instructions.size() + 1, Counters{});

  try {
    if (recorded_.empty() || options.recheck) {
      forget_recording();
      schedule();
    } else {
      replay();
    }
  } catch (...) {
    forget_recording();
    weights_.materialize_all();  // the state as the instructions that ran left it
    throw;
  }
  weights_.materialize_all();

  // Run and layer statistics by prefix sums over the instruction counters: after this
  // loop prefix[i] holds the sum over instructions [0, i).
  std::vector<Counters>& prefix = per_insn_;
  Counters sum;
  for (Counters& c : prefix) {
    const Counters own = c;
    c = sum;
    sum = {sum.macs + own.macs, sum.overflows + own.overflows, sum.saturations + own.saturations,
           sum.dram_read + own.dram_read, sum.dram_write + own.dram_write};
  }
  stats_.macs = sum.macs;
  stats_.acc_overflows = sum.overflows;
  stats_.saturations = sum.saturations;
  stats_.dram_read_bytes = sum.dram_read;
  stats_.dram_write_bytes = sum.dram_write;
  for (const auto& r : prog().debug) {
    const Counters& b = prefix[r.insn_begin];
    const Counters& e = prefix[r.insn_end];
    LayerStats l;
    l.name = r.layer;
    l.macs = e.macs - b.macs;
    l.acc_overflows = e.overflows - b.overflows;
    l.saturations = e.saturations - b.saturations;
    l.dram_read_bytes = e.dram_read - b.dram_read;
    l.dram_write_bytes = e.dram_write - b.dram_write;
    stats_.layers.push_back(l);
  }

  dumps_ = host_.end_run(options.dump_layers);
}

// ---------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------

void Emulator::replay() {
  stats_.instructions = recorded_instructions_;
  if (exec_.threads > 1 && plan_threads_ != exec_.threads) {
    lanes_allowed_ = detail::weight_sources_unwritten(recorded_);
    if (lanes_allowed_) plan_ = detail::make_plan(recorded_, exec_.threads);
    plan_threads_ = exec_.threads;
  }
  if (exec_.threads <= 1 || !lanes_allowed_) {
    for (const detail::ScheduledInsn& s : recorded_) execute(s.insn, s.fx);
    return;
  }
  // The plan's threads are the parallelism: each instruction runs on one.
  exec_.threads = 1;
  prepare_lanes(plan_threads_);
  const std::exception_ptr failure = replayer_.run(
      plan_, recorded_,
      [](void* ctx, const detail::ScheduledInsn& s, std::uint32_t thread) {
        auto* self = static_cast<Emulator*>(ctx);
        if (thread == 0) {
          self->execute(s.insn, s.fx);
        } else {
          Lane& lane = *self->lanes_[thread - 1];
          self->execute(s.insn, s.fx, lane.state, lane.exec);
        }
      },
      this);
  if (failure) std::rethrow_exception(failure);
}

void Emulator::prepare_lanes(unsigned threads) {
  MachineState& main = host_.state();
  while (lanes_.size() + 1 < threads) {
    auto lane = std::make_unique<Lane>();
    lane->state = MachineState(config_, 0);
    lane->exec.threads = 1;
    lane->exec.weights = &lane->weights;
    lanes_.push_back(std::move(lane));
  }
  for (std::size_t t = 1; t < threads; ++t) {
    Lane& lane = *lanes_[t - 1];
    lane.state.shared_dram = &main.dram;  // may have moved: a new program, a new DRAM
    lane.weights.begin_run(prog().constants.size());
    for (const Region& r : plan_.zero_first[t]) {
      switch (r.space) {
        case Space::kAct: std::fill_n(lane.state.act.begin() + static_cast<std::ptrdiff_t>(r.base), r.row_len, 0); break;
        case Space::kWgt: std::fill_n(lane.state.wgt.begin() + static_cast<std::ptrdiff_t>(r.base), r.row_len, 0); break;
        case Space::kParam: std::fill_n(lane.state.param.begin() + static_cast<std::ptrdiff_t>(r.base), r.row_len, 0); break;
        case Space::kAcc: std::fill_n(lane.state.acc.begin() + static_cast<std::ptrdiff_t>(r.base), r.row_len, 0); break;
        case Space::kDram: break;
      }
    }
  }
}

void Emulator::schedule() {
  const auto& insns = prog().instructions;
  const auto n = static_cast<std::uint32_t>(insns.size());
  const auto depth = static_cast<std::size_t>(config_.queue_depth);
  next_ = 0;
  for (auto& q : queues_) q.clear();
  for (auto& f : fifos_) f.clear();
  for (auto& p : pending_) p = {-1, -1};
  clocks_ = {};
  for (std::size_t q = 0; q < kQueues; ++q) {
    insn_of_event_[q].clear();
    insn_of_event_[q].reserve(per_queue_[q]);
  }
  races_.reset(host_.state(), &insns, &insn_of_event_);

  for (;;) {
    // Dispatch in program order as far as possible.
    while (next_ < n) {
      const int q = queue_of_[next_];
      if (q == static_cast<int>(isa::Queue::kAll)) {
        if (!(queues_[0].empty() && queues_[1].empty() && queues_[2].empty())) break;
        barrier();
        ++stats_.instructions;
        if (std::holds_alternative<isa::End>(insns[next_])) {
          recorded_instructions_ = stats_.instructions;
          return;
        }
        ++next_;
        continue;
      }
      auto& queue = queues_[static_cast<std::size_t>(q)];
      if (queue.size() >= depth) break;
      queue.push_back(next_++);
    }
    // Heads that have executed push their tokens as soon as there is room.
    bool pushed = false;
    for (int q = 0; q < kQueues; ++q) pushed = push_pending(q) || pushed;
    if (pushed) continue;
    // Run the ready head with the lowest program index.
    int best = -1;
    for (int q = 0; q < kQueues; ++q) {
      const auto& queue = queues_[static_cast<std::size_t>(q)];
      if (queue.empty() || !ready(queue.front(), q)) continue;
      if (best < 0 || queue.front() < queues_[static_cast<std::size_t>(best)].front()) best = q;
    }
    if (best < 0) deadlock();
    step(best);
  }
}

bool Emulator::ready(std::uint32_t i, int q) const {
  const auto& pending = pending_[static_cast<std::size_t>(q)];
  if (pending[0] >= 0 || pending[1] >= 0) return false;  // executed, still pushing
  const TokenUse& u = tokens_[i];
  for (int f : u.pops) {
    if (f >= 0 && fifos_[static_cast<std::size_t>(f)].empty()) return false;
  }
  return true;
}

bool Emulator::push_pending(int q) {
  const auto qi = static_cast<std::size_t>(q);
  auto& pending = pending_[qi];
  if (pending[0] < 0 && pending[1] < 0) return false;
  bool moved = false;
  for (int& f : pending) {
    if (f < 0) continue;
    auto& fifo = fifos_[static_cast<std::size_t>(f)];
    if (fifo.size() >= static_cast<std::size_t>(config_.token_depth)) continue;
    fifo.push_back({clocks_[qi], queues_[qi].front()});
    f = -1;
    moved = true;
  }
  if (pending[0] < 0 && pending[1] < 0) queues_[qi].pop_front();
  return moved;
}

void Emulator::step(int q) {
  const auto qi = static_cast<std::size_t>(q);
  const std::uint32_t i = queues_[qi].front();
  const isa::Instruction& insn = prog().instructions[i];
  const TokenUse& u = tokens_[i];
  Clock& clock = clocks_[qi];
  for (int f : u.pops) {
    if (f < 0) continue;
    auto& fifo = fifos_[static_cast<std::size_t>(f)];
    for (std::size_t p = 0; p < kQueues; ++p) clock[p] = std::max(clock[p], fifo.front().clock[p]);
    fifo.pop_front();
  }
  insn_of_event_[qi].push_back(i);
  clock[qi] = static_cast<std::uint32_t>(insn_of_event_[qi].size());
  const Stamp self = detail::make_stamp(q, clock[qi]);

  const Effects described = describe(insn, host_.state(), i);
  for (const Access& a : described) {
    if (host_.may_race(a)) races_.access(a, q, self, clock, i);
  }
  ++stats_.instructions;
  execute(i, described);
  recorded_.push_back({i, described, keeps_half_of_last_byte(insn)});

  pending_[qi] = u.pushes;
  if (!push_pending(q) && u.pushes[0] < 0 && u.pushes[1] < 0) queues_[qi].pop_front();
}

void Emulator::barrier() {
  Clock all{};
  for (const Clock& c : clocks_)
    for (std::size_t p = 0; p < kQueues; ++p) all[p] = std::max(all[p], c[p]);
  clocks_.fill(all);
}

void Emulator::execute(std::uint32_t i, const Effects& described, MachineState& m, const ExecOptions& exec) {
  const isa::Instruction& insn = prog().instructions[i];
  // The weight cache concerns WGT and DRAM: an instruction writing either changes what it
  // may keep (written(); it has nothing to do for the others).
  const Effects fx = perform(insn, m, i, described, exec);
  if (exec.weights != nullptr && std::any_of(described.begin(), described.end(), [](const Access& a) {
        return a.kind == AccessKind::kWrite && (a.region.space == Space::kWgt || a.region.space == Space::kDram);
      })) {
    exec.weights->written(insn, fx);
  }
  per_insn_[i] = {fx.macs, fx.acc_overflows, fx.saturations, fx.dram_read_bytes, fx.dram_write_bytes};
}

void Emulator::deadlock() const {
  detail::StuckScheduler stuck;
  stuck.insns = &prog().instructions;
  for (std::size_t q = 0; q < kQueues; ++q) stuck.queues[q] = &queues_[q];
  for (std::size_t f = 0; f < kNumFifos; ++f) stuck.fifo_empty[f] = fifos_[f].empty();
  stuck.pending = &pending_;
  stuck.next = next_;
  stuck.queue_depth = config_.queue_depth;
  stuck.token_depth = config_.token_depth;
  std::uint32_t first = 0;
  std::string what = detail::deadlock_message(stuck, &first);
  throw ExecutionError(what, first);
}

}  // namespace

unsigned resolve_threads(unsigned requested) {
  if (requested != 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::unique_ptr<Device> make_emulator(const HwConfig& config) { return std::make_unique<Emulator>(config); }

}  // namespace dla::sim

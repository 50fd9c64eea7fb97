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
// Machine state at the start of every run: DRAM zero, constants at 0, bound inputs at
// their offsets; all SRAM buffers zero (a run after the first restores only the DRAM the
// previous one wrote). Tokens left in FIFOs at END are dropped.
#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dla/device.hpp"
#include "dla/semantics.hpp"
#include "dla/tensor.hpp"
#include "race_detector.hpp"

namespace dla::sim {
namespace {

using detail::Clock;
using detail::kQueues;
using detail::Stamp;

std::string_view mnemonic(const isa::Instruction& insn) { return isa::info_of(insn).mnemonic; }

std::string insn_name(const std::vector<isa::Instruction>& prog, std::uint32_t i) {
  return "instruction " + std::to_string(i) + " (" + std::string(mnemonic(prog[i])) + ")";
}

std::string names_of(const Program& p, TensorRole role) {
  std::string s;
  for (const auto& t : p.tensors) {
    if (t.role != role) continue;
    s += (s.empty() ? "" : ", ") + t.name;
  }
  return s.empty() ? "none" : s;
}

/// Token FIFOs between adjacent queues, one per direction.
enum Fifo : int { kLoadToCompute = 0, kComputeToLoad = 1, kComputeToStore = 2, kStoreToCompute = 3 };
constexpr int kNumFifos = 4;

constexpr int fifo_between(int from, int to) {
  return from == 0 ? kLoadToCompute
                   : from == 2 ? kStoreToCompute : (to == 0 ? kComputeToLoad : kComputeToStore);
}
constexpr int fifo_source(int f) { return f == kLoadToCompute ? 0 : f == kStoreToCompute ? 2 : 1; }
constexpr int fifo_target(int f) { return f == kComputeToLoad ? 0 : f == kComputeToStore ? 2 : 1; }

std::string queue_text(int q) { return std::string(isa::queue_name(static_cast<isa::Queue>(q))) + " queue"; }

struct Token {
  Clock clock;
  std::uint32_t pusher;
};

/// The FIFOs an instruction on queue q pops from (pops) and pushes to (pushes); -1 = none.
struct TokenUse {
  std::array<int, 2> pops{-1, -1};
  std::array<int, 2> pushes{-1, -1};
};

TokenUse token_use(const isa::Tokens& t, int q) {
  TokenUse u;
  if (t.pop_prev) u.pops[0] = fifo_between(q - 1, q);
  if (t.pop_next) u.pops[1] = fifo_between(q + 1, q);
  if (t.push_prev) u.pushes[0] = fifo_between(q, q - 1);
  if (t.push_next) u.pushes[1] = fifo_between(q, q + 1);
  return u;
}

/// Counters of one instruction, as they go into RunStats / LayerStats.
struct Counters {
  std::uint64_t macs = 0, overflows = 0, saturations = 0, dram_read = 0, dram_write = 0;
};

class Emulator final : public Device {
 public:
  explicit Emulator(const HwConfig& config) : config_(config) { config_.validate(); }

  std::string name() const override { return "emu"; }
  const HwConfig& config() const override { return config_; }
  void load(const Program& program) override;
  void set_input(const std::string& name, const HostTensor& tensor) override;
  void run(const RunOptions& options) override;
  HostTensor output(const std::string& name) const override;
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
  std::string blocked_reason(std::uint32_t i, int q) const;
  void count(std::uint32_t i, const Counters& c);

  const Program& prog() const { return *program_; }

  HwConfig config_;
  std::optional<Program> program_;
  std::map<std::string, std::vector<std::uint8_t>> inputs_;
  MachineState state_;
  bool state_dirty_ = false;
  /// DRAM bytes [dram_dirty_lo_, dram_dirty_hi_) may differ from the state a run starts
  /// from (written since the last run's start); and whether the program's constants are
  /// in DRAM. A run restores only those.
  std::uint64_t dram_dirty_lo_ = 0, dram_dirty_hi_ = 0;
  bool constants_loaded_ = false;
  ExecOptions exec_;
  bool ran_ = false;
  RunStats stats_;
  std::vector<LayerDump> dumps_;
  // Counters of every instruction of the last run; layer statistics are their sums over
  // the debug records' ranges (ranges may overlap).
  std::vector<Counters> per_insn_;

  // Run state
  std::uint32_t next_ = 0;
  std::array<std::deque<std::uint32_t>, kQueues> queues_;
  std::array<std::deque<Token>, kNumFifos> fifos_;
  /// Per queue: the head has executed and these FIFOs still wait for its token (-1: none).
  std::array<std::array<int, 2>, kQueues> pending_{};
  std::array<Clock, kQueues> clocks_{};
  std::array<std::vector<std::uint32_t>, kQueues> insn_of_event_;
  std::array<std::size_t, kQueues> per_queue_{};  ///< instructions of the program per queue
  /// DRAM byte ranges some instruction of the program may write, merged and sorted
  /// ([first, second)). A DRAM read outside all of them cannot race with anything (its
  /// last writer is the host, and no later write can follow it), so the race detector
  /// skips it: weights, biases and parameter records are most of the DMA traffic.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dram_written_;
  bool may_be_written(const Region& r) const;
  detail::RaceDetector races_;
};

void Emulator::load(const Program& p) {
  const std::uint64_t mine = config_.identity_hash();
  if (p.hw_config_hash != mine) {
    throw Error("program was compiled for hardware config " + hash_hex(p.hw_config_hash) +
                ", but this device runs hardware config " + hash_hex(mine));
  }
  if (p.dram_size > static_cast<std::uint64_t>(config_.dram_bytes())) {
    throw Error("program needs " + std::to_string(p.dram_size) + " bytes of DRAM, more than the " +
                std::to_string(config_.dram_bytes()) + " bytes of the hardware config (dram_size_mib = " +
                std::to_string(config_.dram_size_mib) + ")");
  }
  if (p.constants.size() > p.dram_size) {
    throw Error("program constants (" + std::to_string(p.constants.size()) + " bytes) exceed its DRAM size " +
                std::to_string(p.dram_size));
  }
  if (p.instructions.empty() || !std::holds_alternative<isa::End>(p.instructions.back())) {
    throw Error("program's instruction stream does not end with END");
  }
  if (p.instructions.size() > detail::kMaxEvent) {
    throw Error("program has " + std::to_string(p.instructions.size()) + " instructions, more than the emulator's " +
                std::to_string(detail::kMaxEvent));
  }
  // Field ranges and token flags, as the encoder checks them (a program built in memory
  // has not been through the encoder).
  std::array<std::size_t, kQueues> per_queue{};
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    check_instruction(p.instructions[i], static_cast<std::uint32_t>(i));
    const auto q = static_cast<std::size_t>(isa::queue_of(p.instructions[i]));
    if (q < kQueues) ++per_queue[q];
  }
  auto check_tensor = [&](const TensorDesc& t, const std::string& what) {
    const std::uint64_t bytes = t.byte_size();
    if (t.dram_offset > p.dram_size || bytes > p.dram_size - t.dram_offset) {
      throw Error(what + " '" + t.name + "' at DRAM [" + std::to_string(t.dram_offset) + ", +" +
                  std::to_string(bytes) + ") lies outside the program's " + std::to_string(p.dram_size) +
                  "-byte DRAM");
    }
  };
  for (const auto& t : p.tensors) check_tensor(t, "tensor");
  for (const auto& r : p.debug) {
    check_tensor(r.output, "layer");
    if (r.insn_begin > r.insn_end || r.insn_end > p.instructions.size()) {
      throw Error("layer '" + r.layer + "' has an invalid instruction range [" + std::to_string(r.insn_begin) +
                  ", " + std::to_string(r.insn_end) + ")");
    }
  }

  program_ = p;
  per_queue_ = per_queue;
  state_ = MachineState(config_, p.dram_size);
  dram_written_.clear();
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    try {
      for (const Access& a : describe(p.instructions[i], state_, static_cast<std::uint32_t>(i))) {
        if (a.region.space == Space::kDram && a.kind == AccessKind::kWrite) dram_written_.emplace_back(a.region.base, a.region.end());
      }
    } catch (const Error&) {
      // Fails again when it runs; until then, assume it could write anywhere.
      dram_written_.assign(1, {0, std::numeric_limits<std::uint64_t>::max()});
      break;
    }
  }
  std::sort(dram_written_.begin(), dram_written_.end());
  std::size_t merged = 0;
  for (const auto& r : dram_written_) {
    if (merged > 0 && r.first <= dram_written_[merged - 1].second) {
      dram_written_[merged - 1].second = std::max(dram_written_[merged - 1].second, r.second);
    } else {
      dram_written_[merged++] = r;
    }
  }
  dram_written_.resize(merged);
  inputs_.clear();
  ran_ = false;
  stats_ = {};
  dumps_.clear();
  state_dirty_ = false;
  dram_dirty_lo_ = dram_dirty_hi_ = 0;
  constants_loaded_ = false;

}

void Emulator::set_input(const std::string& name, const HostTensor& tensor) {
  if (!program_) throw Error("set_input('" + name + "'): no program loaded");
  const TensorDesc* desc = prog().find_tensor(name);
  if (desc == nullptr || desc->role != TensorRole::kInput) {
    throw Error("'" + name + "' is not an input of the program (inputs: " + names_of(prog(), TensorRole::kInput) +
                ")");
  }
  try {
    inputs_[name] = to_dram(*desc, tensor);
  } catch (const Error& e) {
    throw Error("input " + std::string(e.what()));
  }
}

HostTensor Emulator::output(const std::string& name) const {
  if (!program_) throw Error("output('" + name + "'): no program loaded");
  const TensorDesc* desc = prog().find_tensor(name);
  if (desc == nullptr || desc->role != TensorRole::kOutput) {
    throw Error("'" + name + "' is not an output of the program (outputs: " +
                names_of(prog(), TensorRole::kOutput) + ")");
  }
  if (!ran_) throw Error("output '" + name + "': the program has not run");
  return from_dram(*desc, state_.dram.data() + desc->dram_offset);
}

void Emulator::run(const RunOptions& options) {
  if (!program_) throw Error("run: no program loaded");
  for (const auto& t : prog().tensors) {
    if (t.role == TensorRole::kInput && inputs_.count(t.name) == 0) {
      throw Error("input '" + t.name + "' is not bound (shape " + shape_string(t.shape) + ", " +
                  std::string(dtype_info(t.dtype).name) + ")");
    }
  }
  ran_ = false;
  stats_ = {};
  dumps_.clear();
  // A fresh state (after load) is already zero. After a run, only the SRAMs and the DRAM
  // its instructions wrote differ from zero, constants and inputs (inputs are copied
  // again in full below); constants are copied again when a write reached them.
  if (state_dirty_) {
    std::fill(state_.act.begin(), state_.act.end(), std::uint8_t{0});
    std::fill(state_.wgt.begin(), state_.wgt.end(), std::uint8_t{0});
    std::fill(state_.param.begin(), state_.param.end(), std::uint8_t{0});
    std::fill(state_.acc.begin(), state_.acc.end(), std::int64_t{0});
    if (dram_dirty_hi_ > dram_dirty_lo_) {
      std::fill(state_.dram.begin() + static_cast<std::ptrdiff_t>(dram_dirty_lo_),
                state_.dram.begin() + static_cast<std::ptrdiff_t>(dram_dirty_hi_), std::uint8_t{0});
      if (dram_dirty_lo_ < prog().constants.size()) constants_loaded_ = false;
    }
  }
  state_dirty_ = true;
  dram_dirty_lo_ = dram_dirty_hi_ = 0;
  if (!constants_loaded_) std::copy(prog().constants.begin(), prog().constants.end(), state_.dram.begin());
  constants_loaded_ = true;
  for (const auto& [name, bytes] : inputs_) {
    std::copy(bytes.begin(), bytes.end(), state_.dram.begin() + static_cast<std::ptrdiff_t>(prog().find_tensor(name)->dram_offset));
  }
  per_insn_.assign(prog().debug.empty() ? 0 : prog().instructions.size() + 1, Counters{});

  schedule();

  // Layer statistics by prefix sums over the instruction counters: after this loop
  // prefix[i] holds the sum over instructions [0, i).
  std::vector<Counters>& prefix = per_insn_;
  Counters sum;
  for (Counters& c : prefix) {
    const Counters own = c;
    c = sum;
    sum = {sum.macs + own.macs, sum.overflows + own.overflows, sum.saturations + own.saturations,
           sum.dram_read + own.dram_read, sum.dram_write + own.dram_write};
  }
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

  ran_ = true;
  if (options.dump_layers) {
    for (const auto& r : prog().debug) {
      dumps_.push_back({r.layer, from_dram(r.output, state_.dram.data() + r.output.dram_offset)});
    }
  }
}

// ---------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------

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
  races_.reset(state_, &insns, &insn_of_event_);

  for (;;) {
    // Dispatch in program order as far as possible.
    while (next_ < n) {
      const isa::Instruction& insn = insns[next_];
      const auto q = static_cast<int>(isa::queue_of(insn));
      if (q == static_cast<int>(isa::Queue::kAll)) {
        if (!(queues_[0].empty() && queues_[1].empty() && queues_[2].empty())) break;
        barrier();
        count(next_, {});
        if (std::holds_alternative<isa::End>(insn)) return;
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
  const TokenUse u = token_use(isa::tokens_of(prog().instructions[i]), q);
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
  const TokenUse u = token_use(isa::tokens_of(insn), q);
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

  const Effects described = describe(insn, state_, i);
  for (const Access& a : described) {
    if (a.region.space == Space::kDram && a.kind == AccessKind::kRead && !may_be_written(a.region)) continue;
    races_.access(a, q, self, clock, i);
    if (a.region.space == Space::kDram && a.kind == AccessKind::kWrite) {
      const std::uint64_t lo = a.region.base, hi = a.region.end();
      if (dram_dirty_hi_ == dram_dirty_lo_) {
        dram_dirty_lo_ = lo;
        dram_dirty_hi_ = hi;
      } else {
        dram_dirty_lo_ = std::min(dram_dirty_lo_, lo);
        dram_dirty_hi_ = std::max(dram_dirty_hi_, hi);
      }
    }
  }
  const Effects fx = perform(insn, state_, i, described, exec_);
  count(i, {fx.macs, fx.acc_overflows, fx.saturations, fx.dram_read_bytes, fx.dram_write_bytes});

  pending_[qi] = u.pushes;
  if (!push_pending(q) && u.pushes[0] < 0 && u.pushes[1] < 0) queues_[qi].pop_front();
}

bool Emulator::may_be_written(const Region& r) const {
  const std::uint64_t begin = r.base, end = r.end();
  // The first written range that ends after `begin`.
  auto it = std::upper_bound(dram_written_.begin(), dram_written_.end(), begin,
                             [](std::uint64_t v, const std::pair<std::uint64_t, std::uint64_t>& w) { return v < w.second; });
  return it != dram_written_.end() && it->first < end;
}

void Emulator::barrier() {
  Clock all{};
  for (const Clock& c : clocks_)
    for (std::size_t p = 0; p < kQueues; ++p) all[p] = std::max(all[p], c[p]);
  clocks_.fill(all);
}

void Emulator::count(std::uint32_t i, const Counters& c) {
  ++stats_.instructions;
  stats_.macs += c.macs;
  stats_.acc_overflows += c.overflows;
  stats_.saturations += c.saturations;
  stats_.dram_read_bytes += c.dram_read;
  stats_.dram_write_bytes += c.dram_write;
  if (!per_insn_.empty()) per_insn_[i] = c;
}

std::string Emulator::blocked_reason(std::uint32_t i, int q) const {
  const auto& insns = prog().instructions;
  for (int f : pending_[static_cast<std::size_t>(q)]) {
    if (f < 0) continue;
    return insn_name(insns, i) + " waits for room in the full token FIFO to the " + queue_text(fifo_target(f)) +
           " (token_depth = " + std::to_string(config_.token_depth) + ")";
  }
  const TokenUse u = token_use(isa::tokens_of(insns[i]), q);
  for (int f : u.pops) {
    if (f < 0 || !fifos_[static_cast<std::size_t>(f)].empty()) continue;
    const int src = fifo_source(f);
    // The next instruction that would push into f: queued on the source queue, or not
    // dispatched yet.
    std::optional<std::uint32_t> pusher;
    bool dispatched = true;
    auto pushes_f = [&](std::uint32_t j) {
      const auto qj = static_cast<int>(isa::queue_of(insns[j]));
      if (qj != src) return false;
      const TokenUse uj = token_use(isa::tokens_of(insns[j]), qj);
      return uj.pushes[0] == f || uj.pushes[1] == f;
    };
    for (std::uint32_t j : queues_[static_cast<std::size_t>(src)]) {
      if (pushes_f(j)) {
        pusher = j;
        break;
      }
    }
    if (!pusher) {
      dispatched = false;
      for (std::uint32_t j = next_; j < insns.size(); ++j) {
        if (pushes_f(j)) {
          pusher = j;
          break;
        }
      }
    }
    std::string s = insn_name(insns, i) + " waits for a token from the " + queue_text(src);
    if (!pusher) return s + " that no instruction pushes";
    return s + "; the next one would come from " + insn_name(insns, *pusher) +
           (dispatched ? ", which is blocked" : ", which is not dispatched yet");
  }
  return insn_name(insns, i) + " is blocked";
}

void Emulator::deadlock() const {
  const auto& insns = prog().instructions;
  std::string what = "deadlock: ";
  std::uint32_t first = static_cast<std::uint32_t>(insns.size());
  bool any = false;
  for (int q = 0; q < kQueues; ++q) {
    const auto& queue = queues_[static_cast<std::size_t>(q)];
    if (queue.empty()) continue;
    what += (any ? "; " : "") + blocked_reason(queue.front(), q);
    first = std::min(first, queue.front());
    any = true;
  }
  if (next_ < insns.size()) {
    const auto q = isa::queue_of(insns[next_]);
    what += (any ? "; " : "") + insn_name(insns, next_) +
            (q == isa::Queue::kAll ? " waits for the queues to drain"
                                   : " cannot be dispatched: the " + queue_text(static_cast<int>(q)) + " is full (queue_depth = " +
                                         std::to_string(config_.queue_depth) + ")");
    first = std::min(first, next_);
  }
  throw ExecutionError(what, first);
}

}  // namespace

std::unique_ptr<Device> make_emulator(const HwConfig& config) { return std::make_unique<Emulator>(config); }

}  // namespace dla::sim

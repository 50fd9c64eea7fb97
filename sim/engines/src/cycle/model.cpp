// The SystemC cycle model: dla::sim::make_cycle_model (dla/cycle.hpp).
//
// Modules (built afresh for every run, in a fresh simulation context on a thread of its
// own: sc_context.hpp, CycleModel::simulate):
//   Core (sc_module)
//     fetch    SC_THREAD   decodes one instruction a cycle and dispatches it in program
//                          order into the load, compute or store queue (queue_depth each);
//                          SYNC / END wait until every queue is empty.
//     load     SC_THREAD   the load queue: LOAD through the DMA engine's read channel
//     compute  SC_THREAD   the compute queue: MAC array, requantizer, vector unit
//     store    SC_THREAD   the store queue: STORE through the DMA engine's write channel
//     dma_rd, dma_wr       TLM-2.0 initiator sockets of the DMA engine
//     Dram (sc_module)     TLM-2.0 target (b_transport): latency, bursts and the bus that
//                          the two channels share (timing.hpp, DramBus)
// A queue thread runs its head instruction like the emulator's scheduler: it waits until
// every token it pops is present, pops them, executes (describe() and the race detector
// when it starts, the unit's cycles, perform() when it completes), then keeps the
// instruction at the head until each of its pushes found room in its token FIFO. Tokens
// carry the pusher's vector clock for the race detector (race_detector.hpp). Queues and
// token FIFOs are deques with sc_events; every wait re-checks its condition.
//
// The run ends when END has drained the queues (the run's cycles) or when no thread can
// move (a deadlock: the emulator's message, built from the same state) or when an
// instruction throws (the error is re-thrown after the kernel has wound down).
#include <algorithm>
#include <array>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "../program_host.hpp"
#include "../race_detector.hpp"
#include "../scheduling.hpp"
#include "dla/cycle.hpp"
#include "dla/semantics.hpp"
#include "dla/tensor.hpp"
#include "compute_unit.hpp"
#include "sc_context.hpp"
#include "timing.hpp"
#include "vcd.hpp"

namespace dla::sim {
namespace {

using cycle::Sig;
using cycle::UnitState;
using detail::Clock;
using detail::kQueues;
using detail::Stamp;

constexpr std::uint64_t kU64Max = UINT64_MAX;

using detail::Counters;
using detail::fifo_source;
using detail::fifo_target;
using detail::insn_name;
using detail::kNumFifos;
using detail::queue_text;
using detail::Token;
using detail::token_use;
using detail::TokenUse;

Stall token_stall(int source_queue) { return static_cast<Stall>(static_cast<int>(Stall::kTokenFromLoad) + source_queue); }
Stall fifo_stall(int target_queue) { return static_cast<Stall>(static_cast<int>(Stall::kFifoFullToLoad) + target_queue); }
Stall queue_full_stall(int q) { return static_cast<Stall>(static_cast<int>(Stall::kQueueFullLoad) + q); }
std::size_t idx(Stall s) { return static_cast<std::size_t>(s); }

Sig state_sig(int q) { return q == 0 ? Sig::kLoadState : q == 1 ? Sig::kComputeState : Sig::kStoreState; }
Sig insn_sig(int q) { return q == 0 ? Sig::kLoadInsn : q == 1 ? Sig::kComputeInsn : Sig::kStoreInsn; }

/// The unit an instruction kept busy.
using Unit = ExecUnit;

struct InsnRecord {
  std::uint64_t start = 0;  ///< execution start (SYNC / END: when the barrier passed)
  std::uint64_t end = 0;    ///< execution end
  std::uint64_t busy = 0;   ///< the unit's cycles (DMA: without contention)
  double mac_ideal = 0;
  Counters c;
  Unit unit = Unit::kBarrier;
  bool ran = false;
  bool on_core = false;             ///< ran on the run's ComputeUnit (the rtl engine's core)
  std::uint64_t model_cycles = 0;   ///< compute: the formulas' cycles (timing.hpp)
};

/// Everything one run needs and measures; outlives the SystemC modules.
struct Run {
  const Program* prog = nullptr;
  const HwConfig* hw = nullptr;
  MachineState* state = nullptr;
  const detail::ProgramHost* host = nullptr;
  ExecOptions exec;
  detail::RaceDetector* races = nullptr;
  std::array<std::vector<std::uint32_t>, kQueues>* insn_of_event = nullptr;
  std::uint64_t period_ps = 1000;
  cycle::ComputeUnit* compute = nullptr;  ///< null: formulas and perform()

  cycle::VcdRecorder* trace = nullptr;
  std::uint32_t trace_begin = 0, trace_end = 0;  ///< the traced layer's instructions
  std::uint32_t trace_done = 0;

  std::array<UnitReport, 4> units;  ///< fetch, load, compute, store
  std::vector<InsnRecord> insns;
  std::uint64_t dram_bus_bytes[2] = {0, 0};
  std::uint64_t transfers = 0;
  std::uint64_t latency_cycles = 0;
  std::uint64_t dram_busy = 0;
  std::uint64_t end_cycle = 0;

  std::uint64_t now() const { return sc_core::sc_time_stamp().value() / period_ps; }
  sc_core::sc_time cycles(std::uint64_t n) const { return sc_core::sc_time::from_value(n * period_ps); }
  void set(std::uint64_t at, Sig s, std::uint32_t v) {
    if (trace != nullptr) trace->set(now(), at, s, v);
  }
  void set(Sig s, std::uint32_t v) { set(now(), s, v); }
  void set(Sig s, UnitState v) { set(now(), s, static_cast<std::uint32_t>(v)); }
  /// Layer traces: instruction i started / completed.
  void started(std::uint32_t i) {
    if (trace != nullptr && i >= trace_begin && i < trace_end) trace->open(now());
  }
  void completed(std::uint32_t i) {
    if (trace != nullptr && i >= trace_begin && i < trace_end && ++trace_done == trace_end - trace_begin) {
      trace->close(now());
    }
  }
};

/// A DMA transfer's 2D shape, for the DRAM's burst count; the DRAM reports back the cycles
/// the transfer lost to the other channel.
struct DmaShape : tlm::tlm_extension<DmaShape> {
  std::uint64_t row_bytes = 0;
  std::uint64_t rows = 1;
  std::uint64_t stride = 0;
  std::uint64_t contention = 0;
  tlm::tlm_extension_base* clone() const override { return new DmaShape(*this); }
  void copy_from(const tlm::tlm_extension_base& other) override { *this = static_cast<const DmaShape&>(other); }
};

// ---------------------------------------------------------------------------
// DRAM: a TLM-2.0 target that only times transfers. The data a transfer moves is moved
// by the instruction's perform() (the payload's data pointer points into the machine's
// DRAM for reference); this target decides when the transfer completes.
// ---------------------------------------------------------------------------

class Dram : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket_tagged<Dram> port_rd{"port_rd"};
  tlm_utils::simple_target_socket_tagged<Dram> port_wr{"port_wr"};

  Dram(const sc_core::sc_module_name& name, Run& run, const bool& stopping)
      : sc_core::sc_module(name), run_(run), stopping_(stopping),
        bus_(static_cast<std::uint64_t>(run.hw->dram_bytes_per_cycle)) {
    port_rd.register_b_transport(this, &Dram::b_transport, 0);
    port_wr.register_b_transport(this, &Dram::b_transport, 1);
  }

  void wake_all() {
    for (auto& e : done_) e.notify(sc_core::SC_ZERO_TIME);
  }
  std::uint64_t busy_cycles() const { return bus_.busy_cycles(); }

 private:
  void b_transport(int ch, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) {
    if (delay != sc_core::SC_ZERO_TIME) {
      wait(delay);
      delay = sc_core::SC_ZERO_TIME;
    }
    const HwConfig& hw = *run_.hw;
    const auto burst = static_cast<std::uint64_t>(hw.dram_burst_bytes);
    auto* shape = trans.get_extension<DmaShape>();
    const std::uint64_t len = trans.get_data_length();
    const std::uint64_t bursts = shape != nullptr
                                     ? cycle::dram_bursts(trans.get_address(), shape->row_bytes, shape->rows,
                                                          shape->stride, burst)
                                     : cycle::dram_bursts(trans.get_address(), len, 1, len, burst);
    const std::uint64_t bytes = bursts * burst;
    const std::uint64_t start = run_.now();
    const auto latency = static_cast<std::uint64_t>(hw.dram_latency_cycles);
    bus_.start(ch, start, start + latency, bytes);
    reschedule(start);
    while (!bus_.done(ch, run_.now())) {
      wait(done_[static_cast<std::size_t>(ch)]);
      if (stopping_) {
        trans.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
        return;
      }
    }
    bus_.finish(ch);
    const std::uint64_t ideal = latency + cycle::ceil_div(bytes, static_cast<std::uint64_t>(hw.dram_bytes_per_cycle));
    const std::uint64_t took = run_.now() - start;
    if (shape != nullptr) shape->contention = took > ideal ? took - ideal : 0;
    run_.dram_bus_bytes[ch] += bytes;
    run_.latency_cycles += latency;
    ++run_.transfers;
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
  }

  /// Every transfer's completion event at its projected cycle (a new transfer can only
  /// delay the other channel's).
  void reschedule(std::uint64_t now) {
    for (int ch = 0; ch < cycle::DramBus::kChannels; ++ch) {
      if (!bus_.busy_channel(ch)) continue;
      const std::uint64_t at = bus_.projected_completion(ch);
      if (at == cycle::DramBus::kNever || at <= now) continue;  // completed: its thread is awake
      auto& e = done_[static_cast<std::size_t>(ch)];
      e.cancel();
      e.notify(run_.cycles(at - now));
    }
  }

  Run& run_;
  const bool& stopping_;
  cycle::DramBus bus_;
  std::array<sc_core::sc_event, 2> done_;
};

// ---------------------------------------------------------------------------
// Core: fetch, the three queues, the DMA engine's initiator sockets.
// ---------------------------------------------------------------------------

struct InsnQueue {
  std::deque<std::uint32_t> items;  ///< the head stays until its pushes are done
  sc_core::sc_event pushed, popped;
};

struct TokenFifo {
  std::deque<Token> items;
  sc_core::sc_event pushed, popped;
};

class Core : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(Core);

  Core(const sc_core::sc_module_name& name, Run& run) : sc_core::sc_module(name), run_(run), dram_("dram", run, stopping_) {
    dma_rd_.bind(dram_.port_rd);
    dma_wr_.bind(dram_.port_wr);
    constexpr std::size_t kStack = std::size_t{4} << 20;  // perform() runs on these stacks
    SC_THREAD(fetch_thread);
    SC_THREAD(load_thread);
    set_stack_size(kStack);
    SC_THREAD(compute_thread);
    set_stack_size(kStack);
    SC_THREAD(store_thread);
    set_stack_size(kStack);
  }

  bool finished() const { return finished_; }
  std::exception_ptr error() const { return error_; }
  std::uint64_t dram_busy() const { return dram_.busy_cycles(); }

  /// From outside the simulation (after a deadlock): lets every thread leave.
  void halt() {
    stopping_ = true;
    for (auto& q : queue_) {
      q.pushed.notify(sc_core::SC_ZERO_TIME);
      q.popped.notify(sc_core::SC_ZERO_TIME);
    }
    for (auto& f : fifo_) {
      f.pushed.notify(sc_core::SC_ZERO_TIME);
      f.popped.notify(sc_core::SC_ZERO_TIME);
    }
    any_popped_.notify(sc_core::SC_ZERO_TIME);
    dram_.wake_all();
  }

  /// The emulator's deadlock message for the state the threads are stuck in.
  std::string deadlock_message(std::uint32_t* first) const;

 private:
  void fetch_thread() { guarded([this] { fetch(); }); }
  void load_thread() { guarded([this] { run_queue(0); }); }
  void compute_thread() { guarded([this] { run_queue(1); }); }
  void store_thread() { guarded([this] { run_queue(2); }); }

  template <typename Fn>
  void guarded(Fn&& fn) {
    try {
      fn();
    } catch (...) {
      if (!error_) error_ = std::current_exception();
      stop_all();
    }
  }

  /// From inside a thread: every other thread wakes and leaves.
  void stop_all() {
    stopping_ = true;
    halt();
  }

  const std::vector<isa::Instruction>& insns() const { return run_.prog->instructions; }
  bool all_empty() const { return queue_[0].items.empty() && queue_[1].items.empty() && queue_[2].items.empty(); }

  void fetch();
  void run_queue(int q);
  /// Executes instruction i on queue q's unit; false when the run is stopping.
  bool execute(int q, std::uint32_t i, const Effects& fx, InsnRecord& rec);
  bool dma(int q, std::uint32_t i, InsnRecord& rec);
  void barrier();

  Run& run_;
  bool stopping_ = false;
  bool finished_ = false;
  std::exception_ptr error_;
  std::array<InsnQueue, kQueues> queue_;
  std::array<TokenFifo, kNumFifos> fifo_;
  sc_core::sc_event any_popped_;
  std::array<std::array<int, 2>, kQueues> pending_{{{-1, -1}, {-1, -1}, {-1, -1}}};
  std::array<Clock, kQueues> clocks_{};
  std::uint32_t next_ = 0;  ///< the instruction fetch works on

  tlm_utils::simple_initiator_socket<Core> dma_rd_{"dma_rd"};
  tlm_utils::simple_initiator_socket<Core> dma_wr_{"dma_wr"};
  Dram dram_;
};

void Core::fetch() {
  const auto& prog = insns();
  const auto n = static_cast<std::uint32_t>(prog.size());
  const auto depth = static_cast<std::size_t>(run_.hw->queue_depth);
  UnitReport& unit = run_.units[0];
  for (std::uint32_t i = 0; i < n; ++i) {
    next_ = i;
    run_.set(Sig::kFetchPc, i);
    run_.set(Sig::kFetchState, UnitState::kBusy);
    wait(run_.cycles(1));  // decode
    ++unit.busy;
    if (stopping_) return;
    const auto q = static_cast<int>(isa::queue_of(prog[i]));
    if (q == static_cast<int>(isa::Queue::kAll)) {
      if (!all_empty()) {
        run_.set(Sig::kFetchState, UnitState::kWaitFifo);
        const std::uint64_t t0 = run_.now();
        while (!all_empty()) {
          wait(any_popped_);
          if (stopping_) return;
        }
        unit.stalls[idx(Stall::kBarrier)] += run_.now() - t0;
      }
      barrier();
      InsnRecord& rec = run_.insns[i];
      rec.start = rec.end = run_.now();
      rec.ran = true;
      ++unit.instructions;
      run_.started(i);
      run_.completed(i);
      if (std::holds_alternative<isa::End>(prog[i])) {
        finished_ = true;
        next_ = n;
        run_.end_cycle = run_.now();
        run_.set(Sig::kFetchState, UnitState::kIdle);
        run_.set(Sig::kFetchPc, cycle::kNoInsn);
        stop_all();
        return;
      }
      continue;
    }
    auto& queue = queue_[static_cast<std::size_t>(q)];
    if (queue.items.size() >= depth) {
      run_.set(Sig::kFetchState, UnitState::kWaitToken);
      const std::uint64_t t0 = run_.now();
      while (queue.items.size() >= depth) {
        wait(queue.popped);
        if (stopping_) return;
      }
      unit.stalls[idx(queue_full_stall(q))] += run_.now() - t0;
    }
    queue.items.push_back(i);
    queue.pushed.notify();
    ++unit.instructions;
  }
}

void Core::barrier() {
  Clock all{};
  for (const Clock& c : clocks_)
    for (std::size_t p = 0; p < kQueues; ++p) all[p] = std::max(all[p], c[p]);
  clocks_.fill(all);
}

void Core::run_queue(int q) {
  const auto qi = static_cast<std::size_t>(q);
  InsnQueue& queue = queue_[qi];
  UnitReport& unit = run_.units[qi + 1];
  const Sig st = state_sig(q);
  const Sig is = insn_sig(q);
  const auto token_depth = static_cast<std::size_t>(run_.hw->token_depth);
  for (;;) {
    if (queue.items.empty()) {
      run_.set(st, UnitState::kIdle);
      run_.set(is, cycle::kNoInsn);
      const std::uint64_t t0 = run_.now();
      while (queue.items.empty() && !stopping_) wait(queue.pushed);
      unit.idle += run_.now() - t0;
      if (stopping_) return;
    }
    const std::uint32_t i = queue.items.front();
    const isa::Instruction& insn = insns()[i];
    const TokenUse u = token_use(isa::tokens_of(insn), q);
    run_.set(is, i);

    // Pop: every token this instruction pops must be present (only this queue pops them).
    for (int f : u.pops) {
      if (f < 0) continue;
      auto& fifo = fifo_[static_cast<std::size_t>(f)];
      if (!fifo.items.empty()) continue;
      run_.set(st, UnitState::kWaitToken);
      const std::uint64_t t0 = run_.now();
      while (fifo.items.empty()) {
        wait(fifo.pushed);
        if (stopping_) return;
      }
      unit.stalls[idx(token_stall(fifo_source(f)))] += run_.now() - t0;
    }
    Clock& clock = clocks_[qi];
    for (int f : u.pops) {
      if (f < 0) continue;
      auto& fifo = fifo_[static_cast<std::size_t>(f)];
      for (std::size_t p = 0; p < kQueues; ++p) clock[p] = std::max(clock[p], fifo.items.front().clock[p]);
      fifo.items.pop_front();
      fifo.popped.notify();
    }

    // Execute: check and describe when it starts, perform when it completes.
    auto& events = (*run_.insn_of_event)[qi];
    events.push_back(i);
    clock[qi] = static_cast<std::uint32_t>(events.size());
    const Stamp self = detail::make_stamp(q, clock[qi]);
    InsnRecord& rec = run_.insns[i];
    rec.start = run_.now();
    run_.started(i);
    const Effects described = describe(insn, *run_.state, i);
    for (const Access& a : described) {
      if (run_.host->may_race(a)) run_.races->access(a, q, self, clock, i);
    }
    if (!execute(q, i, described, rec)) return;
    const Effects fx = rec.on_core ? run_.compute->commit(insn, i, described, run_.now())
                                   : perform(insn, *run_.state, i, described, run_.exec);
    rec.c = {fx.macs, fx.acc_overflows, fx.saturations, fx.dram_read_bytes, fx.dram_write_bytes};
    rec.end = run_.now();
    rec.ran = true;
    ++unit.instructions;
    run_.completed(i);

    // Push: each token as soon as its FIFO has room; the instruction holds the head until
    // every push is done.
    auto& pending = pending_[qi];
    pending = u.pushes;
    std::uint64_t t0 = run_.now();
    int stalled_on = -1;
    for (;;) {
      for (int& f : pending) {
        if (f < 0) continue;
        auto& fifo = fifo_[static_cast<std::size_t>(f)];
        if (fifo.items.size() >= token_depth) continue;
        fifo.items.push_back({clock, i});
        fifo.pushed.notify();
        f = -1;
      }
      if (pending[0] < 0 && pending[1] < 0) break;
      if (stalled_on < 0) {
        stalled_on = pending[0] >= 0 ? pending[0] : pending[1];
        run_.set(st, UnitState::kWaitFifo);
        t0 = run_.now();
      }
      if (pending[0] >= 0 && pending[1] >= 0) {
        wait(fifo_[static_cast<std::size_t>(pending[0])].popped | fifo_[static_cast<std::size_t>(pending[1])].popped);
      } else {
        wait(fifo_[static_cast<std::size_t>(pending[0] >= 0 ? pending[0] : pending[1])].popped);
      }
      if (stopping_) return;
    }
    if (stalled_on >= 0) unit.stalls[idx(fifo_stall(fifo_target(stalled_on)))] += run_.now() - t0;
    queue.items.pop_front();
    queue.popped.notify();
    any_popped_.notify();
  }
}

bool Core::execute(int q, std::uint32_t i, const Effects& fx, InsnRecord& rec) {
  if (q != 1) return dma(q, i, rec);
  const HwConfig& hw = *run_.hw;
  const isa::Instruction& insn = insns()[i];
  std::uint64_t cycles = 0;
  Sig busy_sig = Sig::kVectorBusy;
  if (const auto* mac = std::get_if<isa::Mac>(&insn)) {
    cycles = cycle::mac_cycles(*mac, hw);
    rec.unit = Unit::kMac;
    rec.mac_ideal = cycle::mac_ideal_cycles(*mac, fx.macs, hw);
    busy_sig = Sig::kMacBusy;
  } else if (const auto* rq = std::get_if<isa::Requant>(&insn)) {
    cycles = cycle::requant_cycles(*rq, hw);
    rec.unit = Unit::kRequant;
    busy_sig = Sig::kRequantBusy;
  } else {
    cycles = cycle::vector_cycles(insn, hw);
    rec.unit = Unit::kVector;
  }
  cycles = std::max<std::uint64_t>(cycles, 1);
  rec.model_cycles = cycles;
  if (run_.compute != nullptr) {
    if (const auto core = run_.compute->start(insn, i, fx, run_.now())) {
      rec.on_core = true;
      cycles = std::max<std::uint64_t>(*core, 1);
    }
  }
  run_.set(Sig::kComputeState, UnitState::kBusy);
  run_.set(busy_sig, 1);
  run_.set(run_.now() + cycles, busy_sig, 0);
  wait(run_.cycles(cycles));
  rec.busy = cycles;
  run_.units[2].busy += cycles;
  return !stopping_;
}

bool Core::dma(int q, std::uint32_t i, InsnRecord& rec) {
  const HwConfig& hw = *run_.hw;
  const isa::Instruction& insn = insns()[i];
  UnitReport& unit = run_.units[static_cast<std::size_t>(q) + 1];
  const Sig st = state_sig(q);
  rec.unit = q == 0 ? Unit::kLoad : Unit::kStore;
  DmaShape shape;
  std::uint64_t addr = 0;
  std::uint64_t sram_cycles = 0;
  if (const auto* ld = std::get_if<isa::Load>(&insn)) {
    if (ld->fill_zero) {
      const std::uint64_t cycles = cycle::sram_port_cycles(*ld, hw);
      run_.set(st, UnitState::kBusy);
      wait(run_.cycles(cycles));
      rec.busy = cycles;
      unit.busy += cycles;
      return !stopping_;
    }
    addr = static_cast<std::uint64_t>(ld->dram_addr);
    shape.row_bytes = static_cast<std::uint64_t>(ld->row_bytes);
    shape.rows = static_cast<std::uint64_t>(ld->rows);
    shape.stride = static_cast<std::uint64_t>(ld->dram_stride);
    sram_cycles = cycle::sram_port_cycles(*ld, hw);
  } else {
    const auto& s = std::get<isa::Store>(insn);
    addr = static_cast<std::uint64_t>(s.dram_addr);
    shape.row_bytes = static_cast<std::uint64_t>(s.row_bytes);
    shape.rows = static_cast<std::uint64_t>(s.rows);
    shape.stride = static_cast<std::uint64_t>(s.dram_stride);
    sram_cycles = cycle::sram_port_cycles(s, hw);
  }
  tlm::tlm_generic_payload trans;
  trans.set_command(q == 0 ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
  trans.set_address(addr);
  trans.set_data_ptr(run_.state->dram.data() + addr);
  const std::uint64_t len = shape.rows * shape.row_bytes;
  trans.set_data_length(static_cast<unsigned int>(len));
  trans.set_streaming_width(static_cast<unsigned int>(len));
  trans.set_byte_enable_ptr(nullptr);
  trans.set_dmi_allowed(false);
  trans.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  trans.set_extension(&shape);

  const std::uint64_t start = run_.now();
  const std::uint64_t arrival = start + static_cast<std::uint64_t>(hw.dram_latency_cycles);
  const Sig wire = q == 0 ? Sig::kDramRead : Sig::kDramWrite;
  run_.set(st, UnitState::kDramLatency);
  run_.set(arrival, st, static_cast<std::uint32_t>(UnitState::kDramTransfer));
  run_.set(arrival, wire, 1);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  (q == 0 ? dma_rd_ : dma_wr_)->b_transport(trans, delay);
  trans.clear_extension(&shape);
  if (stopping_ || trans.get_response_status() != tlm::TLM_OK_RESPONSE) return false;
  // The SRAM side moves the rows through its port behind the data (rarely the slower side).
  if (run_.now() < arrival + sram_cycles) {
    wait(run_.cycles(arrival + sram_cycles - run_.now()));
    if (stopping_) return false;
  }
  run_.set(wire, 0);
  const std::uint64_t took = run_.now() - start;
  // Busy: what the transfer takes alone, the DRAM side's ideal or the SRAM port's clocks.
  rec.busy = std::max(took - shape.contention, arrival - start + sram_cycles);
  unit.busy += rec.busy;
  unit.stalls[idx(Stall::kDramContention)] += took - rec.busy;
  return true;
}

std::string Core::deadlock_message(std::uint32_t* first) const {
  detail::StuckScheduler stuck;
  stuck.insns = &insns();
  for (std::size_t q = 0; q < kQueues; ++q) stuck.queues[q] = &queue_[q].items;
  for (std::size_t f = 0; f < kNumFifos; ++f) stuck.fifo_empty[f] = fifo_[f].items.empty();
  stuck.pending = &pending_;
  stuck.next = next_;
  stuck.queue_depth = run_.hw->queue_depth;
  stuck.token_depth = run_.hw->token_depth;
  return detail::deadlock_message(stuck, first);
}

// ---------------------------------------------------------------------------
// The device
// ---------------------------------------------------------------------------

class CycleModel final : public CycleDevice {
 public:
  explicit CycleModel(const HwConfig& config, cycle::ComputeUnitFactory compute = {}, std::string name = "cycle")
      : config_(config), host_(config_), compute_(std::move(compute)), name_(std::move(name)) {
    config_.validate();
  }

  std::string name() const override { return name_; }
  const HwConfig& config() const override { return config_; }
  void load(const Program& program) override;
  void set_input(const std::string& name, const HostTensor& tensor) override { host_.set_input(name, tensor); }
  void run(const RunOptions& options) override;
  HostTensor output(const std::string& name) const override { return host_.output(name); }
  std::vector<LayerDump> layer_dumps() const override { return dumps_; }
  RunStats stats() const override { return stats_; }
  void set_trace(const TraceOptions& options) override { trace_ = options; }
  std::vector<TraceFile> trace_files() const override { return trace_files_; }
  const CycleReport& report() const override { return report_; }

 private:
  const Program& prog() const { return host_.program(); }
  /// The debug record --trace-layer names (null for none); throws for a layer the
  /// program lacks or an empty window.
  const DebugRecord* traced_layer() const;
  void simulate(Run& run);
  void summarize(const Run& run);

  HwConfig config_;
  detail::ProgramHost host_;
  RunStats stats_;
  CycleReport report_;
  std::vector<LayerDump> dumps_;
  TraceOptions trace_;
  std::vector<TraceFile> trace_files_;  ///< the last run's
  detail::RaceDetector races_;
  std::array<std::vector<std::uint32_t>, kQueues> insn_of_event_;
  cycle::ComputeUnitFactory compute_;
  std::string name_;
  std::unique_ptr<cycle::ComputeUnit> unit_;  ///< the last run's
};

void CycleModel::load(const Program& p) {
  host_.load(p);
  stats_ = {};
  report_ = {};
  dumps_.clear();
  traced_layer();  // a bad trace request fails before the caller prepares a run
}

const DebugRecord* CycleModel::traced_layer() const {
  const DebugRecord* traced = nullptr;
  if (!trace_.path.empty() && !trace_.layer.empty()) {
    for (const auto& r : prog().debug) {
      if (r.layer == trace_.layer) traced = &r;
    }
    if (traced == nullptr) {
      std::string names;
      for (const auto& r : prog().debug) names += (names.empty() ? "" : ", ") + r.layer;
      throw Error("--trace layer '" + trace_.layer + "' is not a layer of the program (layers: " +
                  (names.empty() ? "none" : names) + ")");
    }
  }
  if (!trace_.path.empty() && traced == nullptr && trace_.window_begin >= trace_.window_end) {
    throw Error("trace window [" + std::to_string(trace_.window_begin) + ", " + std::to_string(trace_.window_end) +
                ") is empty");
  }
  return traced;
}

void CycleModel::run(const RunOptions& options) {
  if (!host_.loaded()) throw Error("run: no program loaded");
  const DebugRecord* traced = traced_layer();
  stats_ = {};
  report_ = {};
  dumps_.clear();
  host_.begin_run();

  Run run;
  run.prog = &prog();
  run.exec.threads = resolve_threads(options.threads);
  run.hw = &config_;
  run.state = &host_.state();
  run.host = &host_;
  run.races = &races_;
  run.insn_of_event = &insn_of_event_;
  run.period_ps = std::max<std::uint64_t>(1, static_cast<std::uint64_t>((1000000 + config_.clock_mhz / 2) / config_.clock_mhz));
  run.insns.assign(prog().instructions.size(), InsnRecord{});
  const char* unit_names[] = {"fetch", "load", "compute", "store"};
  for (std::size_t u = 0; u < 4; ++u) run.units[u].name = unit_names[u];
  for (auto& v : insn_of_event_) v.clear();
  races_.reset(host_.state(), &prog().instructions, &insn_of_event_);
  unit_.reset();
  if (compute_) {
    unit_ = compute_(config_);
    run.compute = unit_.get();
  }
  std::optional<cycle::VcdRecorder> recorder;
  trace_files_.clear();
  if (!trace_.path.empty()) {
    std::string units = trace_.path;
    if (unit_ != nullptr) {
      if (const auto holds = unit_->trace(trace_, traced, run.period_ps)) {
        // The unit's own trace takes the file; the unit activity goes beside it.
        trace_files_.push_back({trace_.path, *holds});
        const std::string ext = ".vcd";
        const bool vcd = units.size() > ext.size() && units.compare(units.size() - ext.size(), ext.size(), ext) == 0;
        units = (vcd ? units.substr(0, units.size() - ext.size()) : units) + ".units.vcd";
      }
    }
    trace_files_.push_back({units, "unit activity"});
    recorder.emplace(units, trace_.window_begin, trace_.window_end, traced != nullptr, run.period_ps,
                     config_.clock_mhz);
    run.trace = &*recorder;
    if (traced != nullptr) {
      run.trace_begin = traced->insn_begin;
      run.trace_end = traced->insn_end;
    }
  }

  try {
    simulate(run);
  } catch (...) {
    if (recorder) {
      try {
        recorder->write(run.end_cycle);
      } catch (const Error&) {
        // the run's own error is the one to report
      }
    }
    throw;
  }
  if (recorder) recorder->write(run.end_cycle);
  summarize(run);
  dumps_ = host_.end_run(options.dump_layers);
}

void CycleModel::simulate(Run& run) {
  // The kernel runs on a thread of its own: its coroutines switch stacks behind the back
  // of tools that track the thread's stack (AddressSanitizer), and a thread that ends with
  // the run takes whatever they concluded with it.
  std::exception_ptr error;
  std::string deadlock;
  std::uint32_t deadlock_at = 0;
  std::thread kernel([&] {
    try {
      cycle::ScContext context;
      if (run.compute != nullptr) run.compute->begin_run(*run.prog, *run.state);
      Core core("dla", run);
      sc_core::sc_start();
      if (!core.finished() && !core.error()) {
        deadlock = core.deadlock_message(&deadlock_at);
        core.halt();
        sc_core::sc_start();
        run.end_cycle = run.now();
      }
      if (run.compute != nullptr) run.compute->end_run();
      if (core.error()) error = core.error();
      run.dram_busy = core.dram_busy();
    } catch (...) {
      error = std::current_exception();
    }
  });
  kernel.join();
  if (error) std::rethrow_exception(error);
  if (!deadlock.empty()) throw ExecutionError(deadlock, deadlock_at);
}

void CycleModel::summarize(const Run& run) {
  const Program& p = prog();
  RunStats& s = stats_;
  s.instructions = run.units[0].instructions;
  s.cycles = run.end_cycle;
  Counters total;
  double mac_ideal = 0;
  for (const InsnRecord& r : run.insns) {
    total.macs += r.c.macs;
    total.overflows += r.c.overflows;
    total.saturations += r.c.saturations;
    total.dram_read += r.c.dram_read;
    total.dram_write += r.c.dram_write;
    mac_ideal += r.mac_ideal;
  }
  s.macs = total.macs;
  s.acc_overflows = total.overflows;
  s.saturations = total.saturations;
  s.dram_read_bytes = total.dram_read;
  s.dram_write_bytes = total.dram_write;

  CycleReport& rep = report_;
  rep.cycles = run.end_cycle;
  rep.clock_mhz = config_.clock_mhz;
  rep.microseconds = static_cast<double>(run.end_cycle) / static_cast<double>(config_.clock_mhz);
  rep.instructions = s.instructions;
  rep.units.assign(run.units.begin(), run.units.end());
  rep.macs = total.macs;
  rep.mac_ideal_cycles = mac_ideal;
  rep.acc_overflows = total.overflows;
  rep.saturations = total.saturations;
  rep.dram_read_bytes = total.dram_read;
  rep.dram_write_bytes = total.dram_write;
  rep.dram_bus_read_bytes = run.dram_bus_bytes[0];
  rep.dram_bus_write_bytes = run.dram_bus_bytes[1];
  rep.dram_transfers = run.transfers;
  rep.dram_busy_cycles = run.dram_busy;
  rep.dram_latency_cycles = run.latency_cycles;
  for (std::size_t i = 0; i < run.insns.size(); ++i) {
    const InsnRecord& r = run.insns[i];
    if (r.ran) rep.timeline.push_back({static_cast<std::uint32_t>(i), r.unit, r.start, r.end});
    if (r.unit == Unit::kMac) rep.mac_busy += r.busy;
    if (r.unit == Unit::kRequant) rep.requant_busy += r.busy;
    if (r.unit == Unit::kVector) rep.vector_busy += r.busy;
  }
  const double cycles = static_cast<double>(std::max<std::uint64_t>(run.end_cycle, 1));
  rep.mac_utilization = mac_ideal / cycles;
  rep.mac_busy_utilization = rep.mac_busy > 0 ? mac_ideal / static_cast<double>(rep.mac_busy) : 0.0;
  rep.dram_utilization = static_cast<double>(rep.dram_bus_read_bytes + rep.dram_bus_write_bytes) /
                         (cycles * static_cast<double>(config_.dram_bytes_per_cycle));

  for (const auto& d : p.debug) {
    LayerStats ls;
    LayerReport lr;
    ls.name = lr.name = d.layer;
    std::uint64_t start = kU64Max, end = 0;
    for (std::uint32_t i = d.insn_begin; i < d.insn_end; ++i) {
      const InsnRecord& r = run.insns[i];
      if (!r.ran) continue;
      start = std::min(start, r.start);
      end = std::max(end, r.end);
      ls.macs += r.c.macs;
      ls.acc_overflows += r.c.overflows;
      ls.saturations += r.c.saturations;
      ls.dram_read_bytes += r.c.dram_read;
      ls.dram_write_bytes += r.c.dram_write;
      lr.mac_ideal_cycles += r.mac_ideal;
      switch (r.unit) {
        case Unit::kMac: lr.mac_busy += r.busy; break;
        case Unit::kRequant: lr.requant_busy += r.busy; break;
        case Unit::kVector: lr.vector_busy += r.busy; break;
        case Unit::kLoad: lr.load_busy += r.busy; break;
        case Unit::kStore: lr.store_busy += r.busy; break;
        case Unit::kBarrier: break;
      }
    }
    if (start == kU64Max) start = end = 0;
    ls.cycles = end - start;
    lr.start = start;
    lr.end = end;
    lr.cycles = ls.cycles;
    lr.macs = ls.macs;
    lr.mac_utilization = lr.cycles > 0 ? lr.mac_ideal_cycles / static_cast<double>(lr.cycles) : 0.0;
    lr.dram_read_bytes = ls.dram_read_bytes;
    lr.dram_write_bytes = ls.dram_write_bytes;
    lr.acc_overflows = ls.acc_overflows;
    lr.saturations = ls.saturations;
    const std::uint64_t compute = lr.mac_busy + lr.requant_busy + lr.vector_busy;
    lr.bound = compute >= lr.load_busy && compute >= lr.store_busy ? "compute"
               : lr.load_busy >= lr.store_busy                     ? "load"
                                                                   : "store";
    if (lr.cycles == 0) lr.bound = "-";
    for (std::uint32_t i = d.insn_begin; i < d.insn_end; ++i) {
      const InsnRecord& r = run.insns[i];
      if (!r.on_core) continue;
      lr.rtl_cycles += r.busy;
      lr.rtl_model_cycles += r.model_cycles;
    }
    s.layers.push_back(ls);
    rep.layers.push_back(lr);
  }
  if (unit_ != nullptr) {
    for (const InsnRecord& r : run.insns) {
      if (!r.on_core) continue;
      rep.rtl.rtl_cycles += r.busy;
      rep.rtl.rtl_model_cycles += r.model_cycles;
    }
    unit_->summarize(rep);
  }
}

}  // namespace

std::unique_ptr<CycleDevice> make_cycle_model(const HwConfig& config) { return std::make_unique<CycleModel>(config); }

std::unique_ptr<CycleDevice> cycle::make_cycle_model(const HwConfig& config, ComputeUnitFactory factory,
                                                     std::string name) {
  return std::make_unique<CycleModel>(config, std::move(factory), std::move(name));
}

}  // namespace dla::sim

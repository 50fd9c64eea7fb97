// The rtl engine's --trace (dla/rtl.hpp): the Verilated blocks' own signals as one VCD.
//
// Every block of a core (MAC array, requantizer, VADD, VLUT, window datapath) is traced
// into one VerilatedVcdC (Verilator allows several models of one context in one trace
// file when each is added before open()). Times are the engine's cycles: the instruction
// that starts at cycle S has its k-th clock (k = 0, 1, ...) at cycle S + k, the rising
// edge dumped at (S + k) * period_ps and the falling edge half a period later, so the
// RTL file and the cycle model's unit-activity VCD (same timescale, 1 ps) line up.
// Only the clocks inside the window are dumped: cycles [begin, end) of instructions with
// an index in [insn_begin, insn_end) (a layer's instructions, or one instruction).
//
// Nothing of this runs unless a trace is asked for: Clocked::tick() calls edge() only
// when a trace is attached, and the trace object exists only then.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

class VerilatedVcdC;

namespace dla::sim::rtl {

struct TraceWindow {
  std::uint64_t begin = 0;  ///< cycles [begin, end)
  std::uint64_t end = UINT64_MAX;
  std::uint32_t insn_begin = 0;  ///< instructions [insn_begin, insn_end)
  std::uint32_t insn_end = UINT32_MAX;
};

class RtlTrace {
 public:
  RtlTrace(std::string path, std::uint64_t period_ps, const TraceWindow& window);
  ~RtlTrace();
  RtlTrace(const RtlTrace&) = delete;
  RtlTrace& operator=(const RtlTrace&) = delete;

  /// Where the blocks add themselves (model->trace(vcd(), ...)) before open().
  VerilatedVcdC* vcd() { return vcd_.get(); }
  /// Opens the file; throws dla::Error naming it when it cannot be written.
  void open();
  /// Flushes and closes the file (also done by the destructor).
  void close();

  /// Instruction `index` starts at cycle `now`: its clocks are cycles now, now + 1, ...
  void begin(std::uint32_t index, std::uint64_t now);
  /// Clocked::tick()'s hook: a block evaluated its rising (true) or falling clock edge.
  void edge(bool rising);

  const std::string& path() const { return path_; }
  /// The cycles whose clocks were dumped: [first_cycle(), last_cycle()], or none.
  bool dumped() const { return dumped_; }
  std::uint64_t first_cycle() const { return first_; }
  std::uint64_t last_cycle() const { return last_; }

 private:
  std::string path_;
  std::uint64_t period_ps_;
  TraceWindow window_;
  std::unique_ptr<VerilatedVcdC> vcd_;
  bool active_ = false;  ///< the current instruction is in the window's instructions
  std::uint64_t base_ = 0;
  std::uint64_t clocks_ = 0;  ///< clocks of the current instruction so far
  bool dumped_ = false;
  std::uint64_t first_ = 0, last_ = 0;
};

}  // namespace dla::sim::rtl

// The RTL blocks' VCD (rtl_trace.hpp).
#include "rtl_trace.hpp"

#include <verilated_vcd_c.h>

#include <utility>

#include "dla/error.hpp"

namespace dla::sim::rtl {

RtlTrace::RtlTrace(std::string path, std::uint64_t period_ps, const TraceWindow& window)
    : path_(std::move(path)), period_ps_(period_ps), window_(window), vcd_(std::make_unique<VerilatedVcdC>()) {}

RtlTrace::~RtlTrace() { close(); }

void RtlTrace::open() {
  // Dump times are picoseconds, as in the cycle model's VCD.
  vcd_->set_time_unit("1ps");
  vcd_->set_time_resolution("1ps");
  vcd_->open(path_.c_str());
  if (!vcd_->isOpen()) throw Error("cannot write the RTL trace file " + path_);
}

void RtlTrace::close() { vcd_->close(); }

void RtlTrace::begin(std::uint32_t index, std::uint64_t now) {
  active_ = index >= window_.insn_begin && index < window_.insn_end;
  base_ = now;
  clocks_ = 0;
}

void RtlTrace::edge(bool rising) {
  const std::uint64_t cycle = base_ + clocks_;
  if (!rising) ++clocks_;
  if (!active_ || cycle < window_.begin || cycle >= window_.end) return;
  if (!rising && period_ps_ < 2) return;  // no time between the edges: the rising edge's dump stands
  vcd_->dump(cycle * period_ps_ + (rising ? 0 : period_ps_ / 2));
  if (!dumped_) first_ = cycle;
  dumped_ = true;
  last_ = cycle;
}

}  // namespace dla::sim::rtl

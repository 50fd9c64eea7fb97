// dla/rtl.hpp — the rtl engine: the SystemC cycle model (dla/cycle.hpp) with its compute
// instructions executed by the Verilated RTL of rtl_models/ (README.md, "RTL").
//
// What runs on the RTL: every compute instruction, beat by beat, one beat per clock: MAC
// (every mode, signed and unsigned activations, depthwise, accumulate) on dla_mac_array,
// REQUANT on dla_requant, VADD on dla_vadd, VLUT on dla_vlut (its table loaded from the
// PARAM record first), and VMAXPOOL, VAVGPOOL, VUPSAMPLE and VCOPY on the window datapath
// dla_vpool. The sequencing of those beats (the instruction's loops, the SRAM reads that
// fill the operand lanes and the writes of the results) is C++ in the engine, not RTL. An
// instruction the core does not run would go through the shared semantics (perform())
// with the formulas' timing, and the report would name it.
// Fetch, the queues, the token FIFOs, the DMA and the DRAM are the cycle model's.
//
// Lockstep: before a compute instruction runs on the RTL, the engine copies every region
// it reads and writes into a shadow machine state and runs perform() there; when the
// instruction completes it compares each written region. The first difference stops the
// run with one ExecutionError (instruction, disassembly, layer, unit, buffer and address,
// element, expected and actual value, cycle). A core that does not answer within a bound
// derived from the instruction (its beats plus a margin) stops the run with an
// ExecutionError naming the instruction.
//
// Trace (CycleDevice::set_trace with a VCD path FILE): FILE holds the RTL blocks' own
// signals (every block of the core, ports and insides, through Verilator's tracing), the
// k-th clock of an instruction that starts at cycle S at cycle S + k (rising edge at
// (S + k) * period, falling edge half a period later; 1 ps timescale, as the unit activity,
// which goes beside it to FILE.units.vcd, FILE's ".vcd" dropped). A cycle window dumps the
// clocks inside it; a layer, the clocks of its instructions (all inside its span). Without
// a window, a mismatch or a hang leaves FILE holding that instruction alone (run again on
// a fresh core from its operands), and the error names the file. No trace: no trace object
// exists and the blocks' clock costs one null check per edge.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dla/cycle.hpp"

namespace dla::sim {

/// A fault the rtl engine injects into its core, for the tests of the lockstep check and
/// the hang detection only (RtlOptions default: none).
struct RtlFault {
  enum class Kind : std::uint8_t {
    kNone,
    kCorruptResult,  ///< one result value the core produced for `instruction` is off by one
    kDropBeat,       ///< the core's first beat of `instruction` loses its valid: no answer
  };
  Kind kind = Kind::kNone;
  std::uint32_t instruction = 0;
};

struct RtlOptions {
  RtlFault fault;  ///< tests only
};

/// The hardware-config presets the RTL cores were built for (CMake: DLA_RTL_ENGINE_PRESETS).
std::vector<std::string> rtl_core_presets();

/// The rtl engine for `config`. Throws Error naming the built cores and how to build
/// another when no core has the config's array and lane sizes (the fields the RTL is
/// generated with; acc_bits, the rounding mode and the overflow policy are inputs of the
/// core, and SRAM sizes, DRAM and queue depths are the cycle model's).
std::unique_ptr<CycleDevice> make_rtl_engine(const HwConfig& config, const RtlOptions& options = {});

}  // namespace dla::sim

// The cycle model's compute side, replaceable: the rtl engine (sim/engines/src/rtl) runs
// compute instructions on a Verilated core instead of timing them with timing.hpp's
// formulas and moving their data with perform().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dla/cycle.hpp"
#include "dla/semantics.hpp"

namespace dla::sim::cycle {

class ComputeUnit {
 public:
  virtual ~ComputeUnit() = default;
  /// A run begins (on the simulation's thread, before its first instruction).
  virtual void begin_run(const Program& program, MachineState& state) = 0;
  /// Compute instruction `index` starts at cycle `now` (fx: what describe() returned).
  /// Returns the cycles it takes, or nullopt when this unit does not run it (the model
  /// then times it with the formulas and performs it with perform()). The unit reads its
  /// operands here and holds its results until commit().
  virtual std::optional<std::uint64_t> start(const isa::Instruction& insn, std::uint32_t index, const Effects& fx,
                                             std::uint64_t now) = 0;
  /// The instruction start() ran completes at cycle `now`: writes its results into the
  /// machine state and returns its effects (describe()'s plus the data-dependent counters).
  virtual Effects commit(const isa::Instruction& insn, std::uint32_t index, const Effects& fx, std::uint64_t now) = 0;
  /// What the report says about the unit: which instructions ran on it, which fell back.
  virtual void summarize(CycleReport& report) const = 0;
  /// The run is traced to options.path (a VCD; called before begin_run, `layer`: the
  /// debug record of options.layer or null, `period_ps`: one cycle). A unit that records a
  /// trace of its own into options.path says what it holds; the model then writes its unit
  /// activity beside it (FILE.units.vcd). nullopt: the model's trace goes to options.path.
  virtual std::optional<std::string> trace(const TraceOptions& /*options*/, const DebugRecord* /*layer*/,
                                           std::uint64_t /*period_ps*/) {
    return std::nullopt;
  }
  /// The run ended, also when it failed (on the simulation's thread).
  virtual void end_run() {}
};

using ComputeUnitFactory = std::function<std::unique_ptr<ComputeUnit>(const HwConfig&)>;

/// The cycle model with `factory`'s compute unit (a fresh one per run) under the engine
/// name `name`.
std::unique_ptr<CycleDevice> make_cycle_model(const HwConfig& config, ComputeUnitFactory factory, std::string name);

}  // namespace dla::sim::cycle

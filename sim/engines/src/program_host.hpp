// What every engine does around a run, whatever its timing: check a program against the
// hardware config when it is loaded, bind inputs, bring the machine to the state a run
// starts from, and read outputs and per-layer dumps afterwards. The emulator and the
// cycle model each own one, so both accept, refuse and report in the same words.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dla/device.hpp"
#include "dla/semantics.hpp"

namespace dla::sim::detail {

class ProgramHost {
 public:
  explicit ProgramHost(const HwConfig& config) : config_(config) {}

  /// Checks `p` against the hardware config (config hash, DRAM size, instruction count,
  /// field ranges and token flags, tensor and layer bounds) and keeps it; throws Error
  /// naming what is wrong. Bound inputs and results of an earlier program are dropped.
  void load(const Program& p);
  bool loaded() const { return program_.has_value(); }
  const Program& program() const { return *program_; }

  void set_input(const std::string& name, const HostTensor& tensor);

  /// Checks that every input is bound, then sets the machine state a run starts from:
  /// DRAM zero but for the constants at 0 and the inputs at their offsets, every SRAM zero.
  /// After a run only what the program can write is restored (DRAM ranges found at load).
  void begin_run();
  /// Marks the run complete: outputs can be read; returns every layer's output when asked.
  std::vector<LayerDump> end_run(bool dump_layers);
  HostTensor output(const std::string& name) const;

  MachineState& state() { return state_; }

  /// False for a DRAM read of bytes no instruction of the program writes (weights, biases,
  /// requantize records): its last writer is the host, so it cannot race with anything.
  bool may_race(const Access& a) const;

 private:
  HwConfig config_;
  std::optional<Program> program_;
  std::map<std::string, std::vector<std::uint8_t>> inputs_;
  MachineState state_;
  bool state_dirty_ = false;  ///< a run has changed the state since load
  bool ran_ = false;
  /// DRAM byte ranges some instruction may write, merged and sorted ([first, second)).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dram_written_;
};

}  // namespace dla::sim::detail

// dla/device.hpp — the one API every engine implements (emulator, cycle model, RTL
// co-simulation): load a program, bind inputs, run, read outputs, per-layer dumps and
// statistics. Engines differ in what they model (timing, RTL); never in the integers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"
#include "dla/tensor.hpp"

namespace dla::sim {

/// Counters every engine reports. Data-dependent counts (overflows, saturations) are
/// identical across engines for the same program and inputs.
struct LayerStats {
  std::string name;            ///< debug record's layer name
  std::uint64_t macs = 0;      ///< multiply-accumulates executed by the layer's MAC instructions
  std::uint64_t acc_overflows = 0;  ///< accumulators whose exact sum left the acc_bits range
  std::uint64_t saturations = 0;    ///< outputs changed by a requantizing clamp
  std::uint64_t dram_read_bytes = 0;
  std::uint64_t dram_write_bytes = 0;
  std::uint64_t cycles = 0;    ///< 0 for engines without timing
};

struct RunStats {
  std::uint64_t instructions = 0;
  std::uint64_t macs = 0;
  std::uint64_t acc_overflows = 0;
  std::uint64_t saturations = 0;
  std::uint64_t dram_read_bytes = 0;
  std::uint64_t dram_write_bytes = 0;
  std::uint64_t cycles = 0;  ///< 0 for engines without timing
  std::vector<LayerStats> layers;  ///< one per debug record, in record order
};

/// A layer's output as the program left it in DRAM.
struct LayerDump {
  std::string name;
  HostTensor tensor;
};

struct RunOptions {
  bool dump_layers = false;  ///< capture every debug record's output tensor
  /// Host threads the engine may use (0: one per core). The emulator's first run of a
  /// program shares only large instructions between them; its later runs share the
  /// program's instructions. Results never depend on it; benchmarks set it so that both
  /// sides of a ratio use the same.
  unsigned threads = 0;
  /// Emulator: schedule and check this run again, as the first run of the program does
  /// (on one thread, large instructions shared), instead of performing the order the first
  /// run checked. The same results; for measuring what checking on every run would cost.
  bool recheck = false;
};

/// The host threads that RunOptions::threads asks for (0 resolved to one per core).
unsigned resolve_threads(unsigned requested);

/// Raised when a program breaks a rule of the machine while running (SRAM bounds, token
/// discipline, a deadlock); the message names the instruction index and the rule.
class ExecutionError : public Error {
 public:
  ExecutionError(const std::string& what, std::uint32_t instruction)
      : Error("instruction " + std::to_string(instruction) + ": " + what), instruction_(instruction) {}
  std::uint32_t instruction() const { return instruction_; }

 private:
  std::uint32_t instruction_;
};

class Device {
 public:
  virtual ~Device() = default;

  /// The engine's name ("emu", "cycle", "cosim").
  virtual std::string name() const = 0;
  virtual const HwConfig& config() const = 0;

  /// Loads a program; refuses one compiled for another hardware config (Error).
  virtual void load(const Program& program) = 0;

  /// Binds an input by tensor name. Throws Error for an unknown or non-input name or a
  /// tensor whose dtype or shape differs from the program's descriptor.
  virtual void set_input(const std::string& name, const HostTensor& tensor) = 0;

  /// Runs the loaded program to END. Throws Error when an input is unbound and
  /// ExecutionError when the program breaks a machine rule.
  virtual void run(const RunOptions& options = {}) = 0;

  /// Output tensors by name, after run().
  virtual HostTensor output(const std::string& name) const = 0;
  virtual std::vector<LayerDump> layer_dumps() const = 0;
  virtual RunStats stats() const = 0;
};

/// The functional emulator: fast, exact, no timing. The first run of a loaded program
/// schedules it and checks every access (bounds, token discipline, races) as it executes;
/// none of that depends on data, so later runs perform the order the first one checked,
/// on every thread (data-dependent rules, such as a parameter record's clip range, are
/// checked on every run): each thread has SRAM of its own, and the instructions that pass
/// data through SRAM stay on one thread, so tiles that reuse the same SRAM addresses run
/// at once. A run that fails leaves the next one to schedule and check again.
std::unique_ptr<Device> make_emulator(const HwConfig& config);

}  // namespace dla::sim

// `dla run` on inputs that hold several of the program's batches (a leading dimension k * B
// for a program compiled for batch B): the k batches run through sim::BatchRunner (the
// emulator on every core, the cycle model one batch at a time) and each output is the k
// results stacked along the leading dimension.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "dla/batch.hpp"
#include "dla/program.hpp"
#include "tool_common.hpp"

namespace dla::cli {

/// How many of the program's batches the inputs hold (each input's leading dimension over
/// the program's); every input must hold the same number, else Error naming both.
std::size_t batches_in(const Program& program, const std::map<std::string, HostTensor>& inputs);

struct BatchedRun {
  std::map<std::string, HostTensor> outputs;  ///< stacked
  sim::RunStats stats;                        ///< summed over the batches (cycles too)
  std::unique_ptr<sim::BatchRunner> runner;
  /// The device that ran the last batch (its cycle report, when it is the cycle model).
  const sim::Device& last() const { return runner->device(0); }
};

/// Runs the `batches` batches the inputs hold on `engine`.
BatchedRun run_batches(const Program& program, const HwConfig& hw, const Engine& engine,
                       const std::map<std::string, HostTensor>& inputs, std::size_t batches);

}  // namespace dla::cli

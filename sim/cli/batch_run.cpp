// Several batches in one `dla run` (batch_run.hpp).
#include "batch_run.hpp"

#include "dla/error.hpp"

namespace dla::cli {
namespace {

std::uint64_t per_batch_elements(const HostTensor& t) {
  std::uint64_t n = 1;
  for (std::size_t d = 1; d < t.shape.size(); ++d) n *= t.shape[d];
  return n;
}

void add(sim::LayerStats& to, const sim::LayerStats& s) {
  to.macs += s.macs;
  to.acc_overflows += s.acc_overflows;
  to.saturations += s.saturations;
  to.dram_read_bytes += s.dram_read_bytes;
  to.dram_write_bytes += s.dram_write_bytes;
  to.cycles += s.cycles;
}

}  // namespace

std::size_t batches_in(const Program& program, const std::map<std::string, HostTensor>& inputs) {
  std::size_t batches = 0;
  std::string first;
  for (const auto& [name, t] : inputs) {
    const TensorDesc& d = *program.find_tensor(name);
    const std::size_t k = d.shape.empty() || d.shape[0] == 0 ? 1 : static_cast<std::size_t>(t.shape[0] / d.shape[0]);
    if (batches != 0 && k != batches) {
      throw Error("inputs hold different numbers of the program's batches: '" + first + "' " + std::to_string(batches) +
                  ", '" + name + "' " + std::to_string(k));
    }
    batches = k;
    first = name;
  }
  return batches == 0 ? 1 : batches;
}

BatchedRun run_batches(const Program& program, const HwConfig& hw, const Engine& engine,
                       const std::map<std::string, HostTensor>& inputs, std::size_t batches) {
  std::vector<sim::TensorMap> feeds(batches);
  for (const auto& [name, t] : inputs) {
    const TensorDesc& d = *program.find_tensor(name);
    const std::uint64_t n = per_batch_elements(t) * d.shape[0];
    for (std::size_t b = 0; b < batches; ++b) {
      HostTensor part;
      part.dtype = t.dtype;
      part.frac = t.frac;
      part.shape = d.shape;
      part.values.assign(t.values.begin() + static_cast<std::ptrdiff_t>(b * n),
                         t.values.begin() + static_cast<std::ptrdiff_t>((b + 1) * n));
      feeds[b][name] = std::move(part);
    }
  }
  BatchedRun run;
  // The SystemC cycle model cannot run beside itself in one process (dla/batch.hpp).
  run.runner = std::make_unique<sim::BatchRunner>(program, hw, engine.make, engine.timing ? 1u : 0u);
  std::vector<sim::RunStats> stats;
  const std::vector<sim::TensorMap> results = run.runner->run(feeds, &stats);
  for (const auto& d : program.tensors) {
    if (d.role != TensorRole::kOutput) continue;
    HostTensor stacked;
    for (std::size_t b = 0; b < batches; ++b) {
      const HostTensor& y = results[b].at(d.name);
      if (b == 0) {
        stacked = y;
        stacked.shape[0] *= batches;
        stacked.values.reserve(y.values.size() * batches);
      } else {
        stacked.values.insert(stacked.values.end(), y.values.begin(), y.values.end());
      }
    }
    run.outputs[d.name] = std::move(stacked);
  }
  for (const sim::RunStats& s : stats) {
    run.stats.instructions += s.instructions;
    run.stats.macs += s.macs;
    run.stats.acc_overflows += s.acc_overflows;
    run.stats.saturations += s.saturations;
    run.stats.dram_read_bytes += s.dram_read_bytes;
    run.stats.dram_write_bytes += s.dram_write_bytes;
    run.stats.cycles += s.cycles;
    if (run.stats.layers.empty()) {
      run.stats.layers = s.layers;
    } else {
      for (std::size_t l = 0; l < s.layers.size() && l < run.stats.layers.size(); ++l) add(run.stats.layers[l], s.layers[l]);
    }
  }
  return run;
}

}  // namespace dla::cli

// Batches over host threads (dla/batch.hpp).
#include "dla/batch.hpp"

#include <atomic>
#include <exception>
#include <thread>

#include "dla/error.hpp"

namespace dla::sim {

BatchRunner::BatchRunner(const Program& program, const HwConfig& hw, const DeviceFactory& make, unsigned threads)
    : program_(program) {
  const unsigned n = resolve_threads(threads);
  for (unsigned i = 0; i < n; ++i) {
    devices_.push_back(make(hw));
    devices_.back()->load(program);
  }
}

std::vector<TensorMap> BatchRunner::run(const std::vector<TensorMap>& batch, std::vector<RunStats>* stats) {
  std::vector<TensorMap> results(batch.size());
  if (stats != nullptr) stats->assign(batch.size(), RunStats{});
  std::vector<std::exception_ptr> errors(batch.size());
  const unsigned workers = std::min<std::size_t>(devices_.size(), batch.size()) > 0
                               ? static_cast<unsigned>(std::min<std::size_t>(devices_.size(), batch.size()))
                               : 0u;
  std::atomic<std::size_t> next{0};
  auto work = [&](unsigned w) {
    Device& device = *devices_[w];
    RunOptions options;
    options.threads = workers > 1 ? 1u : 0u;
    for (std::size_t i = next++; i < batch.size(); i = next++) {
      try {
        for (const auto& [name, tensor] : batch[i]) device.set_input(name, tensor);
        device.run(options);
        for (const auto& t : program_.tensors) {
          if (t.role == TensorRole::kOutput) results[i][t.name] = device.output(t.name);
        }
        if (stats != nullptr) (*stats)[i] = device.stats();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> helpers;
  for (unsigned w = 1; w < workers; ++w) helpers.emplace_back(work, w);
  if (workers > 0) work(0);
  for (auto& t : helpers) t.join();
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]) continue;
    try {
      std::rethrow_exception(errors[i]);
    } catch (const Error& e) {
      throw Error("image " + std::to_string(i) + ": " + e.what());
    }
  }
  return results;
}

}  // namespace dla::sim

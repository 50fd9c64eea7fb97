// dla/batch.hpp — many independent runs of one program (a batch of images), spread over
// host threads, each thread with a device of its own. A single image often cannot keep two
// cores busy (small layers, DMA, the scheduler); many images can.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dla/device.hpp"

namespace dla::sim {

using TensorMap = std::map<std::string, HostTensor>;
using DeviceFactory = std::function<std::unique_ptr<Device>(const HwConfig&)>;

class BatchRunner {
 public:
  /// Makes `threads` devices with `make` (0: one per core) and loads `program` on each.
  /// An engine that cannot run beside itself in one process (the SystemC cycle model)
  /// takes threads = 1.
  BatchRunner(const Program& program, const HwConfig& hw, const DeviceFactory& make, unsigned threads);

  /// Runs the program once per input set and returns every output tensor, in batch order.
  /// With several threads each device runs its images on one host thread; with one, the
  /// device may split large instructions over every core. The first failing image (in
  /// batch order) is reported as Error("image N: ..."). With `stats`, it receives each
  /// image's statistics, in batch order.
  std::vector<TensorMap> run(const std::vector<TensorMap>& batch, std::vector<RunStats>* stats = nullptr);

  unsigned threads() const { return static_cast<unsigned>(devices_.size()); }
  /// The device that ran the last image of the last run() on one thread (its stats).
  const Device& device(unsigned i) const { return *devices_.at(i); }

 private:
  const Program& program_;
  std::vector<std::unique_ptr<Device>> devices_;
};

}  // namespace dla::sim

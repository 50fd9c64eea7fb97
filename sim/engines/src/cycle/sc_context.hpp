// Private: one fresh SystemC simulation context per cycle-model run.
//
// SystemC 2.3 elaborates once per simulation context, and its current context is a global
// (sc_core::sc_curr_simcontext). A run installs a new sc_simcontext, builds its modules,
// simulates, destroys its modules and then the context, and puts back the context that was
// current before; the next run starts from a clean kernel. Runs are serialized by a process-wide mutex (the kernel is not thread safe).
// The context also routes SystemC's own messages to stderr (stdout may carry JSON) and
// turns off its copyright banner.
#pragma once

#include <mutex>

namespace sc_core {
class sc_simcontext;
}

namespace dla::sim::cycle {

class ScContext {
 public:
  ScContext();
  ~ScContext();
  ScContext(const ScContext&) = delete;
  ScContext& operator=(const ScContext&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  sc_core::sc_simcontext* context_ = nullptr;
  sc_core::sc_simcontext* previous_ = nullptr;          ///< restored afterwards
  sc_core::sc_simcontext* previous_default_ = nullptr;
};

}  // namespace dla::sim::cycle

// Private: waiting for another of the emulator's threads on the CPU. The waits are
// microseconds long; sleeping in the kernel and being woken costs as much on the
// development VM, so a waiter pauses, and yields the core only when the other thread
// seems to have lost its own.
#pragma once

#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dla::sim::detail {

/// A spin-wait hint to the CPU (yielding the core where there is none).
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

/// One step of waiting for another thread: a CPU pause for the first `pauses` steps,
/// then yielding the core.
inline void wait_step(std::uint64_t step, std::uint64_t pauses = 256) {
  if (step < pauses) {
    cpu_pause();
  } else {
    std::this_thread::yield();
  }
}

}  // namespace dla::sim::detail

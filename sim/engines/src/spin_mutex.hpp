// Private: a mutex for critical sections of a few hundred nanoseconds between the
// emulator's threads. A contended std::mutex puts the waiter to sleep in the kernel and
// the holder pays a system call to wake it, microseconds each on the development VM;
// this waits on the CPU instead, yielding the core only when the holder seems to have
// lost its own.
#pragma once

#include <atomic>
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

/// BasicLockable: usable with std::lock_guard and std::unique_lock.
class SpinMutex {
 public:
  void lock() {
    for (std::uint64_t step = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) wait_step(step++);
    }
  }
  bool try_lock() { return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace dla::sim::detail

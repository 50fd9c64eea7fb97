// The MAC array's arithmetic on SRAM operands, by dla/gemm.hpp's exact kernels, and the
// helper threads of run_parts.
//
// 8-bit operands are read in place (u8 and i8 activations, i8 weights); 4-bit ones are
// widened to bytes and i16 activations copied to an aligned array first. A dense
// convolution packs its weights once per instruction (gemm::ConvKernel) and computes
// every output pixel from the activation tile directly (no im2col); depthwise has its
// own kernel. The ISA path is the fastest this CPU runs (gemm::best_isa()).
// Two or more threads split a dense convolution by output channels, in slices of whole
// 64-channel groups that each pack and run their own weights, when there are at least
// 128; else by output pixels. The emulator keeps packed kernels in its WeightCache, so a
// tile that runs the weights of the tile before packs nothing.
#include "mac_kernel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "dla/gemm.hpp"
#include "pack.hpp"
#include "spin_wait.hpp"
#include "weight_cache.hpp"


namespace dla::sim::detail {
namespace {

/// Helper threads for run_parts, one job at a time. A job is published by bumping the
/// generation in `claim_`; the caller and the helpers claim parts from it with
/// compare-and-swap, so the caller never waits for a
/// helper that has not started (on a busy machine it simply runs the parts itself), only
/// for parts a helper is running. A helper keeps polling for a while after a job (the
/// next instruction is usually microseconds away), yielding its core between polls so
/// that it takes no time from threads with work on a busy machine, then sleeps.
class Helpers {
 public:
  static Helpers& instance() {
    static Helpers h;
    return h;
  }

  ~Helpers() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  /// False when another caller's job is running (the caller then runs every part itself).
  bool run(unsigned helpers, unsigned parts, void (*fn)(void*, unsigned), void* ctx) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    std::uint64_t generation = 0;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      while (threads_.size() < helpers) threads_.emplace_back([this] { loop(); });
      fn_ = fn;
      ctx_ = ctx;
      done_.store(0, std::memory_order_relaxed);
      generation = gen_of(claim_.load(std::memory_order_relaxed)) + 1;
      claim_.store(generation << 32 | std::uint64_t{parts} << 16, std::memory_order_release);
    }
    wake_.notify_all();
    work(generation);
    // Parts still running are on a helper that holds a core: wait with pauses (yielding
    // here could cost this thread a whole time slice on a busy machine), and yield only
    // when a helper seems to have lost its core.
    const auto patience = std::chrono::steady_clock::now() + kPatience;
    for (std::uint64_t spin = 0; done_.load(std::memory_order_acquire) != parts; ++spin) {
      if (spin % 64 != 0 || std::chrono::steady_clock::now() < patience) {
        cpu_pause();
      } else {
        std::this_thread::yield();
      }
    }
    return true;
  }

 private:
  Helpers() = default;

  // claim_ = generation << 32 | parts << 16 | next unclaimed part: the test "a part is
  // left" and the claim are one compare-and-swap on one word, so a helper that looked at
  // a finished job can never claim a part of the next one by mistake.
  static std::uint64_t gen_of(std::uint64_t c) { return c >> 32; }
  static unsigned parts_of(std::uint64_t c) { return static_cast<unsigned>((c >> 16) & 0xFFFFu); }
  static unsigned next_of(std::uint64_t c) { return static_cast<unsigned>(c & 0xFFFFu); }

  /// Claims and runs parts of job `generation` until none is left.
  void work(std::uint64_t generation) {
    std::uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(c) != generation || next_of(c) >= parts_of(c)) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      fn_(ctx_, next_of(c));
      done_.fetch_add(1, std::memory_order_release);
      c = claim_.load(std::memory_order_acquire);
    }
  }

  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      // Wait for the next job: a few pauses, then yielding the core (on a busy machine
      // the threads that have work get it), for up to kIdle; then sleep.
      std::uint64_t g = gen_of(claim_.load(std::memory_order_acquire));
      const auto idle_until = std::chrono::steady_clock::now() + kIdle;
      for (std::uint64_t spin = 0; g == seen; ++spin) {
        if (spin < kPauses) {
          cpu_pause();
        } else {
          std::this_thread::yield();
          if (spin % 64 == 0 && std::chrono::steady_clock::now() > idle_until) break;
        }
        g = gen_of(claim_.load(std::memory_order_acquire));
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || gen_of(claim_.load(std::memory_order_acquire)) != seen; });
        if (stop_) return;
        g = gen_of(claim_.load(std::memory_order_acquire));
      }
      seen = g;
      work(g);
    }
  }

  static constexpr std::uint64_t kPauses = 64;
  static constexpr std::chrono::milliseconds kIdle{2};
  static constexpr std::chrono::microseconds kPatience{200};
  std::mutex busy_;   // held by the caller of the running job
  std::mutex mutex_;  // guards threads_, stop_ and the publication of a job
  std::condition_variable wake_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  // The running job: written before its generation is published, constant until every
  // part is done (a part can be claimed only while its job runs).
  void (*fn_)(void*, unsigned) = nullptr;
  void* ctx_ = nullptr;
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<unsigned> done_{0};
};

}  // namespace

void run_parts(unsigned threads, unsigned parts, void (*fn)(void*, unsigned), void* ctx) {
  if (threads <= 1 || parts <= 1 || parts > 0xFFFFu ||
      !Helpers::instance().run(std::min(threads, parts) - 1, parts, fn, ctx)) {
    for (unsigned p = 0; p < parts; ++p) fn(ctx, p);
  }
}

void run_mac(const MacGeometry& g, DType act_type, const std::uint8_t* act, DType wgt_type, const std::uint8_t* wgt,
             std::int64_t* acc, unsigned threads, WeightCache* cache, std::uint64_t wgt_addr) {
  // Activations as u8, s8 or s16 elements.
  const std::uint64_t act_n = static_cast<std::uint64_t>(g.in_h * g.in_w * g.in_c);
  std::vector<std::uint8_t> act_u8;
  std::vector<std::int8_t> act_s8;
  std::vector<std::int16_t> act_s16;
  gemm::ActType type = gemm::ActType::kU8;
  const void* a = act;
  switch (act_type) {
    case DType::U8: break;
    case DType::I8: type = gemm::ActType::kS8; break;
    case DType::U4:
      act_u8.resize(act_n);
      unpack(act, act_type, act_n, act_u8.data());
      a = act_u8.data();
      break;
    case DType::I4:
      type = gemm::ActType::kS8;
      act_s8.resize(act_n);
      unpack(act, act_type, act_n, act_s8.data());
      a = act_s8.data();
      break;
    case DType::I16:
    case DType::I32:  // not a MAC activation type (semantics.cpp never passes it)
      type = gemm::ActType::kS16;
      act_s16.resize(act_n);
      unpack(act, DType::I16, act_n, act_s16.data());
      a = act_s16.data();
      break;
  }
  gemm::ConvShape s;
  s.in_h = g.in_h;
  s.in_w = g.in_w;
  s.in_c = g.in_c;
  s.out_h = g.out_h;
  s.out_w = g.out_w;
  s.out_c = g.out_c;
  s.kernel_h = g.kernel_h;
  s.kernel_w = g.kernel_w;
  s.stride_h = g.stride_h;
  s.stride_w = g.stride_w;
  s.dilation_h = s.dilation_w = g.dilation;
  const gemm::Store store = g.accumulate ? gemm::Store::kAddSaturate : gemm::Store::kOverwrite;
  const gemm::Isa isa = gemm::best_isa();
  const std::int64_t pixels = s.pixels();
  const std::int64_t groups = (g.out_c + 63) / 64;  // of 64 output channels
  // Output-channel slices (each packs and runs its own weights) when there are enough;
  // else pixel ranges of one packed kernel.
  const bool by_channels = !g.depthwise && threads > 1 && groups >= 2;
  const auto parts = static_cast<unsigned>(
      std::min<std::int64_t>(parts_for(threads), by_channels ? groups : pixels));
  std::vector<std::exception_ptr> errors(parts);  // only bad_alloc is possible
  auto guarded = [&](unsigned part, auto&& body) {
    try {
      body();
    } catch (...) {
      errors[part] = std::current_exception();
    }
  };
  // Weights as s8 (4-bit ones widened), unless every kernel is packed already.
  const std::int64_t k_len = g.kernel_h * g.kernel_w * (g.depthwise ? 1 : g.in_c);
  std::vector<std::int8_t> wgt_s8;
  auto weights = [&]() -> const std::int8_t* {
    if (cache != nullptr) cache->materialize(wgt_addr, wgt_addr + storage_bytes(wgt_type, static_cast<std::uint64_t>(g.out_c * k_len)));
    if (wgt_type == DType::I8) return reinterpret_cast<const std::int8_t*>(wgt);
    if (wgt_s8.empty()) {
      wgt_s8.resize(static_cast<std::size_t>(g.out_c * k_len));
      unpack(wgt, wgt_type, wgt_s8.size(), wgt_s8.data());
    }
    return wgt_s8.data();
  };
  if (g.depthwise) {
    const std::int8_t* w = weights();
    for_parts(threads, parts, [&](unsigned part) {
      guarded(part, [&] {
        gemm::depthwise(s, type, a, w, acc, store, pixels * part / parts, pixels * (part + 1) / parts, isa);
      });
    });
  } else {
    // One kernel per output-channel slice, or one for the whole instruction; kept in the
    // cache when there is one.
    const unsigned slices = by_channels ? parts : 1u;
    std::shared_ptr<WeightCache::Kernels> kernels;
    if (cache != nullptr) {
      WeightCache::MacKey key;
      key.wgt_begin = wgt_addr;
      key.wgt_end = wgt_addr + storage_bytes(wgt_type, static_cast<std::uint64_t>(g.out_c * k_len));
      key.shape = s;
      key.act = type;
      key.wgt_type = wgt_type;
      key.isa = isa;
      key.slices = slices;
      kernels = cache->kernels(key);
    } else {
      kernels = std::make_shared<WeightCache::Kernels>(slices);
    }
    // Slice `part`'s output channels [oc0, oc1).
    auto channels = [&](unsigned part) {
      if (!by_channels) return std::pair<std::int64_t, std::int64_t>(0, g.out_c);
      return std::pair<std::int64_t, std::int64_t>(std::min(g.out_c, 64 * (groups * part / parts)),
                                                   std::min(g.out_c, 64 * (groups * (part + 1) / parts)));
    };
    if (!std::all_of(kernels->begin(), kernels->end(), [](const auto& k) { return k != nullptr; })) {
      const std::int8_t* w = weights();
      for_parts(threads, slices, [&](unsigned part) {
        guarded(part, [&] {
          const auto [oc0, oc1] = channels(part);
          std::unique_ptr<gemm::ConvKernel>& kernel = (*kernels)[part];
          if (oc0 == oc1 || kernel) return;
          gemm::ConvShape slice = s;
          slice.out_c = oc1 - oc0;
          kernel = std::make_unique<gemm::ConvKernel>(slice, type, w + oc0 * k_len, isa);
        });
      });
    }
    if (by_channels) {
      for_parts(threads, parts, [&](unsigned part) {
        guarded(part, [&] {
          const auto [oc0, oc1] = channels(part);
          if (oc0 != oc1 && (*kernels)[part]) (*kernels)[part]->run(a, acc + oc0, store, 0, pixels, g.out_c);
        });
      });
    } else {
      const gemm::ConvKernel* kernel = kernels->front().get();
      for_parts(threads, parts, [&](unsigned part) {
        guarded(part, [&] {
          if (kernel != nullptr) kernel->run(a, acc, store, pixels * part / parts, pixels * (part + 1) / parts);
        });
      });
    }
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace dla::sim::detail

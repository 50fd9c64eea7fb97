// dla/requant_batch.hpp — requantization of many accumulators in one call: the REQUANT
// instruction of every engine, the fused output stage of the QAT bridge's conv2d and
// linear, and the vector unit's eltwise add.
//
// Every element is exactly what the scalar functions of dla/numerics.hpp give,
//   requantize_rows: y = requantize(finalize_acc(acc, acc_spec), shift, out)
//   eltwise_add_run: y = eltwise_add(a, b, shifts, out)
// because the loops call those functions: this header only arranges for the compiler to
// make them fast. The rounding mode and the overflow policy become template constants,
// the usual shifts (0..62) are stated so that round_shift's other cases fold away, and on
// x86 the same loop is also compiled for AVX-512 and AVX2 and chosen at run time (the
// project builds for baseline x86-64, which has no 64-bit vector compare), so that it
// vectorizes. Rules of numerics.hpp hold here too: integers only, no state.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "dla/numerics.hpp"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define DLA_REQUANT_X86 1
#else
#define DLA_REQUANT_X86 0
#endif

#if defined(__GNUC__)
#define DLA_REQUANT_INLINE __attribute__((always_inline)) inline
#define DLA_REQUANT_FLATTEN __attribute__((flatten))
#else
#define DLA_REQUANT_INLINE inline
#define DLA_REQUANT_FLATTEN
#endif

namespace dla {

/// What a batch counted: accumulators whose exact value left the acc_bits range
/// (finalize_acc's `overflowed`) and outputs the clamp changed (requantize's `saturated`).
struct RequantCounts {
  std::uint64_t overflows = 0;
  std::uint64_t saturations = 0;
  RequantCounts& operator+=(const RequantCounts& o) {
    overflows += o.overflows;
    saturations += o.saturations;
    return *this;
  }
};

/// Calls body(std::integral_constant<RoundMode, M>{}) for the runtime mode, so that code
/// inside body can use the mode as a constant.
template <typename Body>
void with_round_mode(RoundMode mode, Body&& body) {
  switch (mode) {
    case RoundMode::HALF_UP: body(std::integral_constant<RoundMode, RoundMode::HALF_UP>{}); return;
    case RoundMode::HALF_AWAY: body(std::integral_constant<RoundMode, RoundMode::HALF_AWAY>{}); return;
    case RoundMode::HALF_EVEN: body(std::integral_constant<RoundMode, RoundMode::HALF_EVEN>{}); return;
    case RoundMode::FLOOR: body(std::integral_constant<RoundMode, RoundMode::FLOOR>{}); return;
  }
}

/// The output spec of range [lo, hi] (type I32, which holds every output type) with mode
/// M. requantize gives for it exactly what it gives for any spec of that range and mode;
/// built inside a loop function, its constant type and mode let the compiler fold the
/// switches of numerics.hpp out of the loop.
template <RoundMode M>
constexpr OutputSpec constant_spec(std::int64_t lo, std::int64_t hi) {
  OutputSpec o;
  o.type = DType::I32;
  o.mode = M;
  o.clip_lo = lo;
  o.clip_hi = hi;
  return o;
}

/// constant_spec of the range of `out`.
template <RoundMode M>
constexpr OutputSpec constant_spec(const OutputSpec& out) {
  return constant_spec<M>(out.lo(), out.hi());
}

namespace batch_detail {

// run_vectorized(f) calls f() from a copy compiled for the best vector ISA of this CPU,
// with everything f calls inlined (flatten), so that its loops vectorize for that ISA;
// run_portable(f) is the same for the build's own target. The choice changes speed only,
// never a value (tests run every copy this CPU supports).
enum class Isa : std::uint8_t { kBest, kAvx512, kAvx2, kPortable };

inline bool isa_supported(Isa isa) {
#if DLA_REQUANT_X86
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    case Isa::kAvx2: return __builtin_cpu_supports("avx2");
    case Isa::kBest:
    case Isa::kPortable: return true;
  }
  return false;
#else
  return isa == Isa::kBest || isa == Isa::kPortable;
#endif
}

template <typename F>
DLA_REQUANT_FLATTEN void run_portable(F& f) {
  f();
}

#if DLA_REQUANT_X86
template <typename F>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), flatten)) void run_avx512(F& f) {
  f();
}

template <typename F>
__attribute__((target("avx2"), flatten)) void run_avx2(F& f) {
  f();
}
#endif

/// isa: kBest, or a copy this CPU supports.
template <typename F>
void run_vectorized(F& f, Isa isa) {
#if DLA_REQUANT_X86
  if (isa == Isa::kBest) {
    isa = isa_supported(Isa::kAvx512) ? Isa::kAvx512 : isa_supported(Isa::kAvx2) ? Isa::kAvx2 : Isa::kPortable;
  }
  if (isa == Isa::kAvx512) {
    run_avx512(f);
    return;
  }
  if (isa == Isa::kAvx2) {
    run_avx2(f);
    return;
  }
#else
  static_cast<void>(isa);
#endif
  run_portable(f);
}

/// f(std::true_type{}) or f(std::false_type{}): a runtime choice made a template constant.
template <typename F>
void with_bool(bool b, F&& f) {
  if (b) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

/// The shifts the vectorized loops take: round_shift is then v itself (0) or one
/// arithmetic shift and a remainder test (1..62), and never overflows.
constexpr bool usual_shift(int s) { return s >= 0 && s <= 62; }
constexpr int to_usual_shift(int s) { return std::min(std::max(s, 0), 62); }

/// How the loops may treat the shifts of a block.
enum class Shifts : std::uint8_t {
  kAny,      ///< as they are (portable loop)
  kUsual,    ///< all usual (vectorized)
  kUniform,  ///< all usual and equal (vectorized, with one loop-invariant shift)
};

template <typename Shift>
Shifts classify_shifts(const Shift* shifts, std::size_t n) {
  if (n == 0) return Shifts::kAny;
  bool usual = true, uniform = true;
  for (std::size_t c = 0; c < n; ++c) {
    usual &= usual_shift(shifts[c]);
    uniform &= shifts[c] == shifts[0];
  }
  return !usual ? Shifts::kAny : uniform ? Shifts::kUniform : Shifts::kUsual;
}

/// One row of requantize_rows for mode M and policy P (kShifts: what is known of the
/// shifts; kFlags: per-element saturation flags wanted). The restrict pointers and the
/// counts in locals tell the compiler that the stores cannot change anything the loop
/// reads.
template <RoundMode M, OverflowPolicy P, Shifts kShifts, bool kFlags, typename Out, typename Shift>
DLA_REQUANT_INLINE void requant_row(const std::int64_t* __restrict a, const Shift* __restrict shifts,
                                    std::size_t channels, int acc_bits, std::int64_t lo, std::int64_t hi,
                                    Out* __restrict y, bool* __restrict flags, std::uint64_t& overflows,
                                    std::uint64_t& saturations) {
  const AccSpec spec{acc_bits, P};
  const OutputSpec out = constant_spec<M>(lo, hi);
  const int uniform = kShifts == Shifts::kUniform ? to_usual_shift(shifts[0]) : 0;
  std::uint64_t overflow_n = 0, saturation_n = 0;
  for (std::size_t c = 0; c < channels; ++c) {
    // For usual shifts to_usual_shift changes nothing; it tells the compiler their range,
    // which removes round_shift's other cases from the loop.
    const int shift = kShifts == Shifts::kUniform ? uniform
                      : kShifts == Shifts::kUsual ? to_usual_shift(shifts[c])
                                                  : shifts[c];
    bool over = false;
    bool sat = false;
    const std::int64_t q = requantize(finalize_acc(a[c], spec, &over), shift, out, &sat);
    y[c] = static_cast<Out>(q);
    if constexpr (kFlags) flags[c] = sat;
    overflow_n += over ? 1 : 0;
    saturation_n += sat ? 1 : 0;
  }
  overflows += overflow_n;
  saturations += saturation_n;
}

/// The loops of requantize_rows, as a functor for run_vectorized.
template <RoundMode M, OverflowPolicy P, Shifts kShifts, bool kFlags, typename Out, typename Shift>
struct RowsKernel {
  const std::int64_t* acc;
  std::ptrdiff_t acc_stride;
  std::size_t rows;
  std::size_t channels;
  const Shift* shifts;
  int acc_bits;
  std::int64_t lo, hi;  ///< the output range
  Out* y;
  std::ptrdiff_t y_stride;
  bool* saturated;
  RequantCounts counts;

  DLA_REQUANT_INLINE void operator()() {
    std::uint64_t overflows = 0, saturations = 0;
    std::size_t n_rows = rows, width = channels;
    const auto contiguous = static_cast<std::ptrdiff_t>(channels);
    if (kShifts == Shifts::kUniform && acc_stride == contiguous && y_stride == contiguous) {
      // One shift over contiguous rows: one long run.
      n_rows = 1;
      width = rows * channels;
    }
    for (std::size_t r = 0; r < n_rows; ++r) {
      const auto ri = static_cast<std::ptrdiff_t>(r);
      requant_row<M, P, kShifts, kFlags>(acc + ri * acc_stride, shifts, width, acc_bits, lo, hi, y + ri * y_stride,
                                         kFlags ? saturated + ri * y_stride : nullptr, overflows, saturations);
    }
    counts.overflows += overflows;
    counts.saturations += saturations;
  }
};

/// The loop of eltwise_add_run for mode M (kUsual: shift_y usual, shift_a and shift_b in
/// [0, 31]; kFlags: per-element saturation flags wanted).
template <RoundMode M, bool kUsual, bool kFlags, typename In, typename Out>
DLA_REQUANT_INLINE std::uint64_t add_loop(const In* __restrict a, const In* __restrict b, std::size_t n,
                                          AddShifts sh, std::int64_t lo, std::int64_t hi, Out* __restrict y,
                                          bool* __restrict flags) {
  const OutputSpec out = constant_spec<M>(lo, hi);
  if constexpr (kUsual) {
    // The clamps change nothing for usual shifts; they state the range (see requant_row).
    sh = {std::min(std::max(sh.shift_a, 0), 31), std::min(std::max(sh.shift_b, 0), 31), to_usual_shift(sh.shift_y)};
  }
  std::uint64_t saturations = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bool sat = false;
    y[i] = static_cast<Out>(eltwise_add(a[i], b[i], sh, out, &sat));
    if constexpr (kFlags) flags[i] = sat;
    saturations += sat ? 1 : 0;
  }
  return saturations;
}

/// The loop of eltwise_add_run, as a functor for run_vectorized.
template <RoundMode M, bool kUsual, bool kFlags, typename In, typename Out>
struct AddKernel {
  const In* a;
  const In* b;
  std::size_t n;
  AddShifts sh;
  std::int64_t lo, hi;  ///< the output range
  Out* y;
  bool* saturated;
  std::uint64_t saturations;

  DLA_REQUANT_INLINE void operator()() { saturations = add_loop<M, kUsual, kFlags>(a, b, n, sh, lo, hi, y, saturated); }
};

}  // namespace batch_detail

namespace batch_detail {

/// requantize_rows, with per-element flags or without (saturated unused), on the vector
/// ISA `isa`.
template <bool kFlags, typename Out, typename Shift>
RequantCounts requant_block(const std::int64_t* acc, std::ptrdiff_t acc_stride, std::size_t rows,
                            std::size_t channels, const Shift* shifts, AccSpec acc_spec, const OutputSpec& out,
                            Out* y, std::ptrdiff_t y_stride, bool* saturated, Isa isa) {
  static_assert(std::is_integral_v<Out> && sizeof(Out) <= 4, "outputs are at most 32-bit integers");
  RequantCounts counts;
  with_round_mode(out.mode, [&](auto mode) {
    with_bool(acc_spec.policy == OverflowPolicy::WRAP, [&](auto wrap) {
      auto run = [&](auto shifts_c) {
        constexpr OverflowPolicy P = wrap ? OverflowPolicy::WRAP : OverflowPolicy::SATURATE_FINAL;
        RowsKernel<decltype(mode)::value, P, shifts_c, kFlags, Out, Shift> k{
            acc, acc_stride, rows, channels, shifts, acc_spec.bits, out.lo(), out.hi(), y, y_stride, saturated, {}};
        // Only usual shifts vectorize; other shifts are rare and keep one portable copy.
        if constexpr (shifts_c == Shifts::kAny) {
          run_portable(k);
        } else {
          run_vectorized(k, isa);
        }
        counts = k.counts;
      };
      switch (classify_shifts(shifts, channels)) {
        case Shifts::kAny: run(std::integral_constant<Shifts, Shifts::kAny>{}); break;
        case Shifts::kUsual: run(std::integral_constant<Shifts, Shifts::kUsual>{}); break;
        case Shifts::kUniform: run(std::integral_constant<Shifts, Shifts::kUniform>{}); break;
      }
    });
  });
  return counts;
}

}  // namespace batch_detail

/// Requantizes a block of `rows` x `channels` accumulators, element (r, c) at
/// acc[r * acc_stride + c] with shift shifts[c]:
///   y[r * y_stride + c] = requantize(finalize_acc(acc[r * acc_stride + c], acc_spec), shifts[c], out)
/// and returns the overflows and saturations. A strided run with one shift is
/// channels = 1 (acc_stride and y_stride are then its strides).
/// Out is int8_t, uint8_t, int16_t or int32_t and must hold [out.lo(), out.hi()]; Shift is
/// int8_t or int. y must not overlap acc or shifts.
template <typename Out, typename Shift>
RequantCounts requantize_rows(const std::int64_t* acc, std::ptrdiff_t acc_stride, std::size_t rows,
                              std::size_t channels, const Shift* shifts, AccSpec acc_spec, const OutputSpec& out,
                              Out* y, std::ptrdiff_t y_stride) {
  return batch_detail::requant_block<false>(acc, acc_stride, rows, channels, shifts, acc_spec, out, y, y_stride,
                                            nullptr, batch_detail::Isa::kBest);
}

/// requantize_rows that also sets saturated[r * y_stride + c] to whether the clamp changed
/// element (r, c).
template <typename Out, typename Shift>
RequantCounts requantize_rows(const std::int64_t* acc, std::ptrdiff_t acc_stride, std::size_t rows,
                              std::size_t channels, const Shift* shifts, AccSpec acc_spec, const OutputSpec& out,
                              Out* y, std::ptrdiff_t y_stride, bool* saturated) {
  return batch_detail::requant_block<true>(acc, acc_stride, rows, channels, shifts, acc_spec, out, y, y_stride,
                                           saturated, batch_detail::Isa::kBest);
}

namespace batch_detail {

/// eltwise_add_run on the vector ISA `isa`.
template <typename In, typename Out>
std::uint64_t add_block(const In* a, const In* b, std::size_t n, const AddShifts& shifts, const OutputSpec& out,
                        Out* y, bool* saturated, Isa isa) {
  static_assert(std::is_integral_v<In> && sizeof(In) <= 4, "inputs are at most 32-bit integers");
  static_assert(std::is_integral_v<Out> && sizeof(Out) <= 4, "outputs are at most 32-bit integers");
  std::uint64_t saturations = 0;
  const bool usual = usual_shift(shifts.shift_y) && shifts.shift_a >= 0 && shifts.shift_a <= 31 &&
                     shifts.shift_b >= 0 && shifts.shift_b <= 31;
  with_round_mode(out.mode, [&](auto mode) {
    with_bool(usual, [&](auto usual_c) {
      with_bool(saturated != nullptr, [&](auto flags_c) {
        AddKernel<decltype(mode)::value, usual_c, flags_c, In, Out> k{a, b, n, shifts, out.lo(), out.hi(),
                                                                      y, saturated, 0};
        if constexpr (usual_c) {
          run_vectorized(k, isa);
        } else {
          run_portable(k);
        }
        saturations = k.saturations;
      });
    });
  });
  return saturations;
}

}  // namespace batch_detail

/// Eltwise add of n elements: y[i] = eltwise_add(a[i], b[i], shifts, out). Returns the
/// saturations; with `saturated`, also sets saturated[i] to whether the clamp changed
/// element i. In is an integer type of at most 32 bits (values of at most 16 bits, as
/// eltwise_add requires); Out as for requantize_rows. y must not overlap a or b.
template <typename In, typename Out>
std::uint64_t eltwise_add_run(const In* a, const In* b, std::size_t n, const AddShifts& shifts,
                              const OutputSpec& out, Out* y, bool* saturated = nullptr) {
  return batch_detail::add_block(a, b, n, shifts, out, y, saturated, batch_detail::Isa::kBest);
}

}  // namespace dla

#undef DLA_REQUANT_X86
#undef DLA_REQUANT_INLINE
#undef DLA_REQUANT_FLATTEN

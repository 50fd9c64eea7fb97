// dla/numerics.hpp — the integer arithmetic of the DLA (isa/README.md section 1).
//
// This header is the single definition of every number the accelerator computes.
// The emulator, the cycle model, the RTL co-simulation reference, the compiler's
// reference evaluator and the QAT bridge all call these functions; nothing else may
// re-implement them. Rules kept here:
//   * integers only: no float, no rounding-mode dependence, no global state;
//   * nothing outside the standard library (the header also compiles for devices);
//   * each function states its exact maths in its comment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace dla {

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// Storage types of tensors. I32 is the 32-bit accumulator/bias storage type.
enum class DType : std::uint8_t { I4 = 0, U4 = 1, I8 = 2, U8 = 3, I16 = 4, I32 = 5 };
inline constexpr int kNumDTypes = 6;

struct DTypeInfo {
  std::string_view name;
  int bits;          ///< width of one element
  bool is_signed;
  std::int64_t min;  ///< smallest representable value
  std::int64_t max;  ///< largest representable value
};

/// Properties of a storage type. Ranges are exactly those of isa/README.md section 1.
constexpr DTypeInfo dtype_info(DType t) {
  switch (t) {
    case DType::I4: return {"i4", 4, true, -8, 7};
    case DType::U4: return {"u4", 4, false, 0, 15};
    case DType::I8: return {"i8", 8, true, -128, 127};
    case DType::U8: return {"u8", 8, false, 0, 255};
    case DType::I16: return {"i16", 16, true, -32768, 32767};
    case DType::I32: return {"i32", 32, true, -2147483648LL, 2147483647LL};
  }
  return {"?", 0, false, 0, 0};
}

constexpr bool is_valid_dtype(int raw) { return raw >= 0 && raw < kNumDTypes; }

/// Parses "i4", "u4", "i8", "u8", "i16", "i32".
constexpr std::optional<DType> parse_dtype(std::string_view name) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (dtype_info(static_cast<DType>(i)).name == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

/// Bytes needed to store `count` elements of type `t` (4-bit types pack two per byte).
constexpr std::uint64_t storage_bytes(DType t, std::uint64_t count) {
  return dtype_info(t).bits == 4 ? count / 2 + (count & 1) : count * (dtype_info(t).bits / 8);
}

/// Rounding of round_shift. HALF_UP is the hardware default.
enum class RoundMode : std::uint8_t { HALF_UP = 0, HALF_AWAY = 1, HALF_EVEN = 2, FLOOR = 3 };
inline constexpr int kNumRoundModes = 4;

constexpr std::string_view round_mode_name(RoundMode m) {
  switch (m) {
    case RoundMode::HALF_UP: return "HALF_UP";
    case RoundMode::HALF_AWAY: return "HALF_AWAY";
    case RoundMode::HALF_EVEN: return "HALF_EVEN";
    case RoundMode::FLOOR: return "FLOOR";
  }
  return "?";
}

/// What the MAC array does when the exact sum leaves the accumulator range.
enum class OverflowPolicy : std::uint8_t { WRAP = 0, SATURATE_FINAL = 1 };

constexpr std::string_view overflow_policy_name(OverflowPolicy p) {
  return p == OverflowPolicy::WRAP ? "WRAP" : "SATURATE_FINAL";
}

// ---------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------

/// sat(v, [lo, hi]) = min(max(v, lo), hi).
constexpr std::int64_t clamp(std::int64_t v, std::int64_t lo, std::int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/// sat(v, T) = min(max(v, T.min), T.max).
constexpr std::int64_t saturate(std::int64_t v, DType t) {
  return clamp(v, dtype_info(t).min, dtype_info(t).max);
}

/// Smallest and largest value of a signed two's-complement integer of `bits` bits
/// (1 <= bits <= 64).
constexpr std::int64_t signed_min(int bits) {
  return bits >= 64 ? std::numeric_limits<std::int64_t>::min() : -(std::int64_t{1} << (bits - 1));
}
constexpr std::int64_t signed_max(int bits) {
  return bits >= 64 ? std::numeric_limits<std::int64_t>::max()
                    : (std::int64_t{1} << (bits - 1)) - 1;
}

/// True when v is representable as a signed `bits`-bit integer; an accumulator
/// overflow is exactly `!fits_signed(exact_sum, acc_bits)`.
constexpr bool fits_signed(std::int64_t v, int bits) {
  return v >= signed_min(bits) && v <= signed_max(bits);
}

/// wrap(v, bits): the unique w in [-2^(bits-1), 2^(bits-1)) with w == v (mod 2^bits),
/// i.e. two's-complement truncation to `bits` bits (1 <= bits <= 64).
constexpr std::int64_t wrap(std::int64_t v, int bits) {
  if (bits >= 64) return v;
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  const std::uint64_t low = static_cast<std::uint64_t>(v) & mask;
  const std::uint64_t sign = std::uint64_t{1} << (bits - 1);
  // (low ^ sign) - sign sign-extends bit (bits-1) without implementation-defined shifts.
  return static_cast<std::int64_t>((low ^ sign) - sign);
}

/// round_shift(v, s, mode): v * 2^-s rounded to an integer.
///   s > 0: q = floor(v / 2^s), r = v - q * 2^s in [0, 2^s), half = 2^(s-1);
///          FLOOR     -> q
///          HALF_UP   -> q + (r >= half)                  (ties toward +inf; == (v + half) >> s)
///          HALF_AWAY -> q + (r > half || (r == half && v >= 0))   (ties away from zero)
///          HALF_EVEN -> q + (r > half || (r == half && q odd))    (ties to even)
///   s == 0: v.
///   s < 0: v * 2^-s, saturated to the int64 range (every caller clamps the result to a
///          range inside int64, so saturating here gives the same final value as an exact
///          wider product would).
/// The computation never overflows for any int64 v and any int s (the hardware keeps
/// acc_bits + 1 bits; int64 with the remainder test is wider than that).
constexpr std::int64_t round_shift(std::int64_t v, int s, RoundMode mode) {
  if (s == 0) return v;
  if (s < 0) {
    if (v == 0) return 0;
    // Checked before negating: -s overflows int for s == INT_MIN.
    if (s <= -63) return v > 0 ? std::numeric_limits<std::int64_t>::max()
                               : std::numeric_limits<std::int64_t>::min();
    const int left = -s;
    const std::int64_t limit = std::numeric_limits<std::int64_t>::max() >> left;
    if (v > limit) return std::numeric_limits<std::int64_t>::max();
    if (v < -limit - 1) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(v) << left);
  }
  // q = floor(v / 2^s). For s >= 64 that is 0 or -1.
  const std::int64_t q = s >= 64 ? (v < 0 ? -1 : 0) : (v >> s);  // arithmetic shift (GCC/Clang; guaranteed from C++20)
  if (mode == RoundMode::FLOOR) return q;
  if (s > 64) {
    // |v| < 2^63 <= 2^(s-2), so v / 2^s lies strictly inside (-1/2, 1/2): no tie, rounds to 0.
    return 0;
  }
  // r = v - q * 2^s lies in [0, 2^s) and is the low s bits of v (s <= 64). It is compared
  // with half = 2^(s-1) with both scaled by 2^(64-s): rn = r * 2^(64-s) is v shifted left
  // by 64 - s (the bits above the low s drop out) and half becomes 2^63. Shifting v rather
  // than the constant 1 lets GCC vectorize loops whose shift differs per element
  // (dla/requant_batch.hpp).
  const std::uint64_t rn = static_cast<std::uint64_t>(v) << (64 - s);
  constexpr std::uint64_t half = std::uint64_t{1} << 63;
  bool up = false;
  switch (mode) {
    case RoundMode::HALF_UP: up = rn >= half; break;
    case RoundMode::HALF_AWAY: up = rn > half || (rn == half && v >= 0); break;
    case RoundMode::HALF_EVEN: up = rn > half || (rn == half && (q & 1) != 0); break;
    case RoundMode::FLOOR: break;
  }
  return q + (up ? 1 : 0);
}

// ---------------------------------------------------------------------------
// Accumulator (MAC array)
// ---------------------------------------------------------------------------

/// Accumulator width and overflow policy, both hardware-config fields.
struct AccSpec {
  int bits = 32;  ///< acc_bits, 1..64
  OverflowPolicy policy = OverflowPolicy::WRAP;
};

/// The value the accumulator holds for an exact sum (sum_k x[k]*w[oc,k] + b[oc], computed
/// wide by the caller):
///   WRAP:           wrap(exact, acc_bits)   (order-independent: engines may reduce in
///                                             any order and wrap once at the end)
///   SATURATE_FINAL: clamp(exact, -2^(acc_bits-1), 2^(acc_bits-1) - 1)
/// `overflowed` (optional) is set when the exact sum is outside the acc_bits range.
constexpr std::int64_t finalize_acc(std::int64_t exact, AccSpec acc, bool* overflowed = nullptr) {
  const bool over = !fits_signed(exact, acc.bits);
  if (overflowed != nullptr) *overflowed = over;
  if (!over) return exact;
  return acc.policy == OverflowPolicy::WRAP
             ? wrap(exact, acc.bits)
             : clamp(exact, signed_min(acc.bits), signed_max(acc.bits));
}

// ---------------------------------------------------------------------------
// Requantization
// ---------------------------------------------------------------------------

/// Output stage of a requantizing op: output type, rounding and clip.
/// lo = max(T.min, clip_lo), hi = min(T.max, clip_hi). ReLU is clip_lo = 0.
struct OutputSpec {
  DType type = DType::I8;
  RoundMode mode = RoundMode::HALF_UP;
  std::int64_t clip_lo = std::numeric_limits<std::int64_t>::min();
  std::int64_t clip_hi = std::numeric_limits<std::int64_t>::max();

  constexpr std::int64_t lo() const {
    return clip_lo > dtype_info(type).min ? clip_lo : dtype_info(type).min;
  }
  constexpr std::int64_t hi() const {
    return clip_hi < dtype_info(type).max ? clip_hi : dtype_info(type).max;
  }
};

/// True when a clamp changed the value: counted as a saturation by every engine.
constexpr bool is_clamped(std::int64_t before, std::int64_t lo, std::int64_t hi) {
  return before < lo || before > hi;
}

/// requantize(acc, s) = clamp(round_shift(acc, s, mode), lo, hi),
/// with s = requant_shift(f_x, f_w[oc], f_y). `saturated` (optional) is set when the clamp changed
/// the value.
constexpr std::int64_t requantize(std::int64_t acc, int shift, const OutputSpec& out,
                                  bool* saturated = nullptr) {
  const std::int64_t rounded = round_shift(acc, shift, out.mode);
  const std::int64_t lo = out.lo();
  const std::int64_t hi = out.hi();
  if (saturated != nullptr) *saturated = is_clamped(rounded, lo, hi);
  return clamp(rounded, lo, hi);
}

/// The right shift of a MAC output channel's requantization, s = f_x + f_w[oc] - f_y:
/// the accumulator holds values at frac f_x + f_w[oc] and the output is at frac f_y.
constexpr int requant_shift(int frac_x, int frac_w, int frac_y) { return frac_x + frac_w - frac_y; }

/// Shift alignment of an eltwise add: F = max(f_a, f_b), a is shifted left by F - f_a,
/// b by F - f_b, and the sum is shifted right by F - f_y.
struct AddShifts {
  int shift_a;  ///< F - f_a >= 0
  int shift_b;  ///< F - f_b >= 0
  int shift_y;  ///< F - f_y (any sign)
};

constexpr AddShifts add_shifts(int frac_a, int frac_b, int frac_y) {
  const int f = frac_a > frac_b ? frac_a : frac_b;
  return {f - frac_a, f - frac_b, f - frac_y};
}

/// Eltwise add (residual):
///   y = clamp(round_shift((a << shift_a) + (b << shift_b), shift_y, mode), lo, hi).
/// a and b are values of at most 16 bits and shift_a, shift_b <= 31 in every valid
/// program, so the aligned sum fits in int64 exactly.
constexpr std::int64_t eltwise_add(std::int64_t a, std::int64_t b, const AddShifts& sh,
                                   const OutputSpec& out, bool* saturated = nullptr) {
  const std::int64_t sum = round_shift(a, -sh.shift_a, RoundMode::FLOOR) +
                           round_shift(b, -sh.shift_b, RoundMode::FLOOR);
  return requantize(sum, sh.shift_y, out, saturated);
}

// ---------------------------------------------------------------------------
// Average pooling
// ---------------------------------------------------------------------------

inline constexpr std::int64_t kAvgPoolMultiplierMax = 65535;  ///< M is an unsigned 16-bit value

/// Average-pool multiplier M = round(2^S / N), ties rounded up, i.e.
/// M = floor((2^(S+1) + N) / (2N)). Returns nullopt when M does not fit in 16 bits
/// (1 <= M <= 65535) or the arguments are out of range (1 <= N <= 2^40, 0 <= S <= 47;
/// no pooling window comes near 2^40 elements, and the bound keeps 2N exact).
constexpr std::optional<std::int64_t> avgpool_multiplier(std::int64_t n, int s) {
  if (n < 1 || s < 0 || s > 47 || n > (std::int64_t{1} << 40)) return std::nullopt;
  const std::int64_t m = ((std::int64_t{1} << (s + 1)) + n) / (2 * n);
  if (m < 1 || m > kAvgPoolMultiplierMax) return std::nullopt;
  return m;
}

/// The right shift of an average pool, S + f_x - f_y: the window sum times
/// M = round(2^S / N) is at frac f_x + S and the output is at frac f_y.
constexpr int avgpool_requant_shift(int s, int frac_x, int frac_y) { return s + frac_x - frac_y; }

/// Average pool over an N-element window whose integer sum is `sum`:
///   y = clamp(round_shift(sum * M, S + f_x - f_y, mode), lo, hi)
/// with M = avgpool_multiplier(N, S). `shift` is avgpool_requant_shift(S, f_x, f_y).
constexpr std::int64_t avgpool(std::int64_t sum, std::int64_t multiplier, int shift,
                               const OutputSpec& out, bool* saturated = nullptr) {
  return requantize(sum * multiplier, shift, out, saturated);
}

// ---------------------------------------------------------------------------
// Lookup table (VLUT): nonlinear activations
// ---------------------------------------------------------------------------
//
// A table maps an input integer x of type T_in (frac f_x) to an output integer of type
// T_out (frac f_y). Entries are signed 16-bit. For the table of a function g, entry e[j]
// holds round(g(x_j * 2^-f_x) * 2^f_y, mode) saturated to T_out, where x_j is the input
// integer of position j below (the compiler and the QAT bridge compute it with one
// function, dla::lut::build_table; the hardware only reads it).
//
//   4- and 8-bit inputs (direct):  2^bits entries, j = x - T_in.min, y = e[j].
//   i16 inputs (interpolated):     257 knots, one every 2^8 inputs: knot j is at input
//                                  x_j = j * 2^8 - 32768 (x_256 = 32768 lies one past the
//                                  type and closes the last segment). For x:
//     u = x + 32768                     in [0, 65535]
//     j = u >> 8                        in [0, 255]   (segment)
//     t = u & 255                       in [0, 255]   (position inside it, in 1/256)
//     y = e[j] + round_shift((e[j+1] - e[j]) * t, 8, mode)
//   Knots equal the function wherever x is a multiple of 2^8 (t = 0); between knots y is
//   the linear interpolation rounded once with the hardware rounding mode.
// The result is then clamped to T_out (the engines count a clamp that changed the value
// as a saturation; tables built by build_table never need it).

inline constexpr int kLutInterpBits = 8;                           ///< i16: 2^8 inputs per segment
inline constexpr std::int64_t kLutInterpKnots = (std::int64_t{1} << (16 - kLutInterpBits)) + 1;  ///< 257

/// Entries of the table for inputs of type `in`: 16 (i4/u4), 256 (i8/u8), 257 (i16);
/// 0 for I32, which a table does not cover.
constexpr std::int64_t lut_entries(DType in) {
  const int bits = dtype_info(in).bits;
  if (bits <= 8) return std::int64_t{1} << bits;
  return bits == 16 ? kLutInterpKnots : 0;
}

/// True when inputs of type `in` are interpolated between knots (i16) rather than
/// looked up directly.
constexpr bool lut_interpolates(DType in) { return dtype_info(in).bits == 16; }

/// The input integer the table's position j stands for: T_in.min + j for direct tables,
/// j * 2^8 - 32768 for the knots of an i16 table (j in [0, lut_entries(in))).
constexpr std::int64_t lut_position_input(DType in, std::int64_t j) {
  return lut_interpolates(in) ? j * (std::int64_t{1} << kLutInterpBits) + dtype_info(in).min
                              : dtype_info(in).min + j;
}

/// The table value at x, before the output clamp (see the maths above). `entry` has
/// lut_entries(in) values; x lies in T_in's range.
template <typename Entries>
constexpr std::int64_t lut_apply(const Entries& entry, std::int64_t x, DType in, RoundMode mode) {
  const std::int64_t u = x - dtype_info(in).min;
  if (!lut_interpolates(in)) return entry[static_cast<std::size_t>(u)];
  const auto j = static_cast<std::size_t>(u >> kLutInterpBits);
  const std::int64_t t = u & ((std::int64_t{1} << kLutInterpBits) - 1);
  const std::int64_t lo = entry[j];
  const std::int64_t hi = entry[j + 1];
  return lo + round_shift((hi - lo) * t, kLutInterpBits, mode);
}

/// lut_apply clamped to T_out. `saturated` (optional) is set when the clamp changed the
/// value.
template <typename Entries>
constexpr std::int64_t lut_lookup(const Entries& entry, std::int64_t x, DType in, DType out, RoundMode mode,
                                  bool* saturated = nullptr) {
  const std::int64_t v = lut_apply(entry, x, in, mode);
  if (saturated != nullptr) *saturated = is_clamped(v, dtype_info(out).min, dtype_info(out).max);
  return saturate(v, out);
}

// ---------------------------------------------------------------------------
// 4-bit packing
// ---------------------------------------------------------------------------

/// Nibble of element `index` in a packed 4-bit buffer: element 2k is the low nibble of
/// byte k, element 2k+1 the high nibble. Returns the value sign-extended for I4 and
/// zero-extended for U4.
constexpr std::int64_t unpack4(const std::uint8_t* bytes, std::uint64_t index, bool is_signed) {
  const unsigned nibble = (index & 1) ? (bytes[index >> 1] >> 4) & 0xF : bytes[index >> 1] & 0xF;
  return is_signed ? static_cast<std::int64_t>(nibble ^ 8u) - 8 : static_cast<std::int64_t>(nibble);
}

/// Stores the low 4 bits of `value` as element `index` of a packed buffer, leaving the
/// other nibble of the byte unchanged.
constexpr void pack4(std::uint8_t* bytes, std::uint64_t index, std::int64_t value) {
  const auto nibble = static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) & 0xF);
  std::uint8_t& b = bytes[index >> 1];
  b = (index & 1) ? static_cast<std::uint8_t>((b & 0x0F) | (nibble << 4))
                  : static_cast<std::uint8_t>((b & 0xF0) | nibble);
}

/// Reads element `index` of a buffer of type `t` (little endian for multi-byte types).
constexpr std::int64_t load_element(const std::uint8_t* bytes, DType t, std::uint64_t index) {
  switch (t) {
    case DType::I4: return unpack4(bytes, index, true);
    case DType::U4: return unpack4(bytes, index, false);
    case DType::I8: return static_cast<std::int8_t>(bytes[index]);
    case DType::U8: return bytes[index];
    case DType::I16: {
      const auto u = static_cast<std::uint16_t>(bytes[2 * index] | (bytes[2 * index + 1] << 8));
      return static_cast<std::int16_t>(u);
    }
    case DType::I32: {
      std::uint32_t u = 0;
      for (int i = 3; i >= 0; --i) u = (u << 8) | bytes[4 * index + static_cast<std::uint64_t>(i)];
      return static_cast<std::int32_t>(u);
    }
  }
  return 0;
}

/// Writes element `index` of a buffer of type `t`; `value` must already be in range.
constexpr void store_element(std::uint8_t* bytes, DType t, std::uint64_t index, std::int64_t value) {
  const auto u = static_cast<std::uint64_t>(value);
  switch (t) {
    case DType::I4:
    case DType::U4: pack4(bytes, index, value); return;
    case DType::I8:
    case DType::U8: bytes[index] = static_cast<std::uint8_t>(u); return;
    case DType::I16:
      bytes[2 * index] = static_cast<std::uint8_t>(u);
      bytes[2 * index + 1] = static_cast<std::uint8_t>(u >> 8);
      return;
    case DType::I32:
      for (int i = 0; i < 4; ++i) bytes[4 * index + static_cast<std::uint64_t>(i)] = static_cast<std::uint8_t>(u >> (8 * i));
      return;
  }
}

}  // namespace dla

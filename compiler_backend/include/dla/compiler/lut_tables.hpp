// dla/compiler/lut_tables.hpp — the contents of VLUT tables (dla/numerics.hpp: lut_apply).
//
// The one place a table is computed: the compiler calls it when it lowers an activation
// and the QAT bridge when it trains one, so training sees exactly the table the chip
// reads. Floating point is allowed here (dla::isa stays integer-only); the result is
// deterministic all the same:
//   entry j = sat(round(g(x_j * 2^-f_x) * 2^f_y, mode), T_out),  x_j = lut_position_input(T_in, j)
// where round uses the hardware rounding mode on the exact real:
//   * hardswish, hardsigmoid, LeakyReLU and the linear half of ELU are piecewise rational
//     in x (the slope is a double, itself a dyadic rational); they are rounded exactly in
//     128-bit integer arithmetic, so ties go where the mode sends them;
//   * SiLU, sigmoid, tanh, GELU (tanh form) and ELU's exponential half are evaluated in
//     long double as an exact asymptote plus an accurate rest (sigmoid(x) = 1 - sigmoid(-x)
//     for x >= 0, ...), so a value just below an integer or a half stays on its side;
//     their values at nonzero rational x are transcendental, never exact ties.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dla/error.hpp"
#include "dla/numerics.hpp"

namespace dla::lut {

/// The functions a table can hold; kTable is a table the user supplies.
enum class Function : std::uint8_t {
  kSiLU,
  kSigmoid,
  kTanh,
  kHardswish,
  kHardsigmoid,
  kGeluTanh,
  kLeakyRelu,
  kElu,
  kTable,
};

/// "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "gelu_tanh", "leaky_relu", "elu", "table".
std::string_view function_name(Function f);
std::optional<Function> parse_function(std::string_view name);

/// A function with its parameter: alpha is LeakyReLU's negative slope or ELU's alpha.
struct Activation {
  Function function = Function::kSiLU;
  double alpha = 0.0;
};

/// Input and output quantization of a table, and the hardware rounding mode.
struct TableFormat {
  DType in_type = DType::I8;
  int in_frac = 0;
  DType out_type = DType::I8;
  int out_frac = 0;
  RoundMode mode = RoundMode::HALF_UP;
};

/// Fracs a table accepts (wide enough for every QAT format, narrow enough for exact
/// 128-bit rounding).
inline constexpr int kMinFrac = -16;
inline constexpr int kMaxFrac = 31;

/// A table that cannot be built or used; the message says why (callers add the layer).
class LutError : public Error {
 public:
  using Error::Error;
};

/// g(x) in long double (not for kTable).
long double evaluate(const Activation& a, long double x);

/// g'(x) (not for kTable); at a kink (hardswish at +-3, LeakyReLU and ELU at 0) the
/// right-hand derivative, as PyTorch's autograd takes it.
long double derivative(const Activation& a, long double x);

/// The table of `a` for `format` (lut_entries(in_type) entries). Throws LutError when
/// the format is not one a table covers (I32, fracs outside [kMinFrac, kMaxFrac]) or the
/// table cannot represent the function: every entry the same (the output frac or type
/// saturates, or rounds away, every input), or, for i16 inputs, knots too far
/// apart to follow it (a segment's middle off by more than 1/8 of the table's range; the
/// message gives the smallest input frac that works).
std::vector<std::int16_t> build_table(const Activation& a, const TableFormat& format);

/// A user-supplied table as entries, checked: lut_entries(in_type) values, each within
/// out_type's range. Throws LutError naming the length or the first bad entry.
std::vector<std::int16_t> user_table(const std::vector<std::int64_t>& values, DType in_type, DType out_type);

/// The output integer of a table at input integer x: dla::lut_lookup with the format's
/// types and rounding mode.
std::int64_t lookup(const std::vector<std::int16_t>& table, std::int64_t x, const TableFormat& format);

}  // namespace dla::lut

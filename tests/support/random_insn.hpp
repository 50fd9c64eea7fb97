// random_insn.hpp — random valid instructions of the ISA table, for the ISA's round-trip
// tests and the RTL controller's decode test: every field uniform in its range, a quarter
// of the draws on the range ends (where off-by-one bugs live), and the token flags the
// instruction's queue allows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <variant>

#include "dla/isa.hpp"

namespace dla::test_support {

inline bool queue_has_prev(isa::Queue q) { return q == isa::Queue::kCompute || q == isa::Queue::kStore; }
inline bool queue_has_next(isa::Queue q) { return q == isa::Queue::kCompute || q == isa::Queue::kLoad; }

inline std::int64_t random_in(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  switch (rng() % 8) {
    case 0: return lo;
    case 1: return hi;
    default: return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  }
}

template <typename Insn>
isa::Instruction random_insn(std::mt19937_64& rng) {
  Insn insn;
  insn.visit_fields([&](const isa::FieldInfo& f, std::int64_t& v) { v = random_in(rng, f.min, f.max); });
  if (queue_has_prev(Insn::kQueue)) {
    insn.tokens.pop_prev = rng() & 1;
    insn.tokens.push_prev = rng() & 1;
  }
  if (queue_has_next(Insn::kQueue)) {
    insn.tokens.pop_next = rng() & 1;
    insn.tokens.push_next = rng() & 1;
  }
  return insn;
}

namespace detail {
template <std::size_t... I>
isa::Instruction random_of_index(std::size_t index, std::mt19937_64& rng, std::index_sequence<I...>) {
  isa::Instruction out;
  ((index == I ? (out = random_insn<std::variant_alternative_t<I, isa::Instruction>>(rng), 0) : 0), ...);
  return out;
}
}  // namespace detail

/// A random instruction of alternative `index` of isa::Instruction.
inline isa::Instruction random_instruction(std::size_t index, std::mt19937_64& rng) {
  return detail::random_of_index(index, rng, std::make_index_sequence<std::variant_size_v<isa::Instruction>>{});
}

}  // namespace dla::test_support

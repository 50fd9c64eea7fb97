// tests/isa/test_numerics_torch_oracle.cpp — PyTorch's quantizer as an external oracle for
// dla::requantize in HALF_EVEN mode (isa/README.md section 1: "HALF_EVEN (ties to even;
// equals PyTorch/ONNX)").
//
// at::quantize_per_tensor(x, scale, zero_point = 0, dtype) computes
// clamp(nearbyint(x / scale), T.min, T.max), rounding ties to even. With an integer
// accumulator acc (|acc| < 2^24, so a float holds it exactly), x = acc * 2^-f_acc (exact in
// float) and scale = 2^-f_y (exact), x / scale = acc * 2^(f_y - f_acc) exactly, so torch's
// result must equal dla::requantize(acc, f_acc - f_y, {type, HALF_EVEN}) for every element.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "dla/numerics.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

struct OracleType {
  at::ScalarType qtype;
  dla::DType dtype;
  const char* name;
  std::int64_t min, max;  // literal ranges of the torch quantized types
};

const std::array<OracleType, 3> kOracleTypes = {{
    {at::kQInt8, dla::DType::I8, "qint8/i8", -128, 127},
    {at::kQUInt8, dla::DType::U8, "quint8/u8", 0, 255},
    {at::kQInt32, dla::DType::I32, "qint32/i32", -2147483648LL, 2147483647LL},
}};

constexpr int kFracYMin = -8, kFracYMax = 15;
constexpr int kFracAccMin = 0, kFracAccMax = 20;
constexpr std::int64_t kAccLimit = std::int64_t{1} << 24;  // |acc| < 2^24: exact in float
constexpr int kPerBatch = 60'000;

// The integer representation of a quantized tensor as int64 values.
std::vector<std::int64_t> int_repr_values(const at::Tensor& q) {
  const at::Tensor r = q.int_repr().contiguous().to(at::kLong);
  const std::int64_t* p = r.data_ptr<std::int64_t>();
  return std::vector<std::int64_t>(p, p + r.numel());
}

// Quantizes float values with scale 2^-f_y, zero point 0.
std::vector<std::int64_t> torch_quantize(const std::vector<float>& x, int f_y, at::ScalarType qt) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(x.size())}, at::kFloat);
  std::copy(x.begin(), x.end(), t.data_ptr<float>());
  const double scale = std::ldexp(1.0, -f_y);
  return int_repr_values(at::quantize_per_tensor(t, scale, 0, qt));
}

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {  // inclusive
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

struct Sample {
  std::int64_t acc;
  int f_acc;
};

// One batch for an output frac f_y: a third uniform accumulators, a third exact ties
// (acc = odd * 2^(s-1) with s = f_acc - f_y >= 1), a third aimed at the ends of the output
// range (just inside, on, and just past them, including saturation).
std::vector<Sample> make_batch(std::mt19937_64& rng, int f_y, const OracleType& ot) {
  std::vector<Sample> out;
  out.reserve(kPerBatch);
  // Right shifts s = f_acc - f_y >= 1 reachable with f_acc in 0..20 and |acc| < 2^24.
  const int s_tie_lo = std::max(1, kFracAccMin - f_y);
  const int s_tie_hi = std::min(24, kFracAccMax - f_y);
  for (int i = 0; i < kPerBatch; ++i) {
    Sample smp{0, 0};
    const int kind = i % 3;
    bool ok = false;
    if (kind == 1 && s_tie_lo <= s_tie_hi) {
      const int s = static_cast<int>(uniform(rng, s_tie_lo, s_tie_hi));
      const std::int64_t kmax = (std::int64_t{1} << (25 - s)) - 1;  // |k * 2^(s-1)| < 2^24
      std::int64_t k;
      if (rng() & 1) {
        // k = 2y + 1: the tie between y and y + 1, with y around the output range ends.
        const std::int64_t end = (rng() & 1) ? ot.min : ot.max;
        const std::int64_t y = (rng() % 4 == 0) ? uniform(rng, -20, 20) : end + uniform(rng, -3, 2);
        k = 2 * y + 1;
        if (k > kmax || k < -kmax) k = 2 * uniform(rng, -(kmax / 2) - 1, kmax / 2) + 1;
      } else {
        k = 2 * uniform(rng, -(kmax / 2) - 1, kmax / 2) + 1;  // any odd k, |k| <= kmax
      }
      smp = {k * (std::int64_t{1} << (s - 1)), f_y + s};
      ok = true;
    } else if (kind == 2) {
      // Target y near an end of the range, with a random fraction below it.
      const int f_acc = static_cast<int>(uniform(rng, kFracAccMin, kFracAccMax));
      const int s = f_acc - f_y;
      const std::int64_t end = (rng() & 1) ? ot.min : ot.max;
      const std::int64_t y = end + uniform(rng, -3, 3);
      std::int64_t acc;
      if (s >= 0) {
        acc =
            y * (std::int64_t{1} << s) + (s > 0 ? uniform(rng, 0, (std::int64_t{1} << s) - 1) : 0);
      } else {
        acc = y / (std::int64_t{1} << -s) + uniform(rng, -1, 1);  // lands next to y
      }
      if (acc > -kAccLimit && acc < kAccLimit) {
        smp = {acc, f_acc};
        ok = true;
      }
    }
    if (!ok) {
      smp = {uniform(rng, -kAccLimit + 1, kAccLimit - 1),
             static_cast<int>(uniform(rng, kFracAccMin, kFracAccMax))};
      if (rng() % 8 == 0) smp.acc = uniform(rng, -300, 300);  // small magnitudes too
    }
    out.push_back(smp);
  }
  return out;
}

TEST(TorchOracle, TorchRoundsHalfToEven) {
  // Premise of the oracle, checked on literal values.
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f};
  const std::vector<std::int64_t> want = {0, 2, 2, 0, -2, -2, 4};
  EXPECT_EQ(torch_quantize(x, 0, at::kQInt8), want);
  EXPECT_EQ(torch_quantize(x, 0, at::kQInt32), want);
  // Saturation and zero point 0 for quint8.
  EXPECT_EQ(torch_quantize({-3.0f, 255.4f, 300.0f}, 0, at::kQUInt8),
            (std::vector<std::int64_t>{0, 255, 255}));
  EXPECT_EQ(torch_quantize({-200.0f, 127.5f}, 0, at::kQInt8),
            (std::vector<std::int64_t>{-128, 127}));
}

TEST(TorchOracle, RequantizeHalfEvenMatchesQuantizePerTensor) {
  std::mt19937_64 rng(0x70c4'0ac1e);
  std::uint64_t checked = 0, mismatches = 0, ties = 0, in_range_ties = 0, saturated = 0,
                half_up_diffs = 0;
  for (const OracleType& ot : kOracleTypes) {
    for (int f_y = kFracYMin; f_y <= kFracYMax; ++f_y) {
      const std::vector<Sample> batch = make_batch(rng, f_y, ot);
      std::vector<float> x(batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        ASSERT_LT(std::llabs(batch[i].acc), kAccLimit);
        ASSERT_GE(batch[i].f_acc, kFracAccMin);
        ASSERT_LE(batch[i].f_acc, kFracAccMax);
        x[i] = std::ldexp(static_cast<float>(batch[i].acc), -batch[i].f_acc);
        // Guard on the construction: the float is exactly acc * 2^-f_acc.
        ASSERT_EQ(std::ldexp(static_cast<double>(x[i]), batch[i].f_acc),
                  static_cast<double>(batch[i].acc));
      }
      const std::vector<std::int64_t> tq = torch_quantize(x, f_y, ot.qtype);
      ASSERT_EQ(tq.size(), batch.size());
      const dla::OutputSpec even{ot.dtype, dla::RoundMode::HALF_EVEN};
      const dla::OutputSpec up{ot.dtype, dla::RoundMode::HALF_UP};
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const Sample& s = batch[i];
        const int shift = s.f_acc - f_y;
        bool sat = false;
        const std::int64_t got = dla::requantize(s.acc, shift, even, &sat);
        ++checked;
        saturated += sat ? 1 : 0;
        if (shift >= 1 &&
            (s.acc & ((std::int64_t{1} << shift) - 1)) == (std::int64_t{1} << (shift - 1))) {
          ++ties;
          in_range_ties += sat ? 0 : 1;
        }
        if (dla::requantize(s.acc, shift, up) != tq[i]) ++half_up_diffs;
        if (got != tq[i]) {
          if (mismatches++ < 10) {
            ADD_FAILURE() << "dtype=" << ot.name << " f_y=" << f_y << " f_acc=" << s.f_acc
                          << " acc=" << s.acc << " torch=" << tq[i] << " dla=" << got;
          }
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(checked, 3u * (kFracYMax - kFracYMin + 1) * kPerBatch);
  // The sample really contains ties and saturations, and HALF_UP would have been caught.
  EXPECT_GT(ties, checked / 4);
  EXPECT_GT(in_range_ties, checked / 10);
  EXPECT_GT(saturated, checked / 10);
  EXPECT_GT(half_up_diffs, checked / 20);
  std::printf(
      "[ oracle ] %llu values checked (%llu exact ties, %llu of them unsaturated; "
      "%llu saturated); HALF_UP differs from torch on %llu of them\n",
      static_cast<unsigned long long>(checked), static_cast<unsigned long long>(ties),
      static_cast<unsigned long long>(in_range_ties), static_cast<unsigned long long>(saturated),
      static_cast<unsigned long long>(half_up_diffs));
}

// The oracle is sensitive to the rounding mode: on ties, another mode disagrees with torch.
TEST(TorchOracle, OtherModesDifferOnTies) {
  // acc = 5, 3, -3 at f_acc = 1 (2.5, 1.5, -1.5) into f_y = 0; 7 at f_acc = 2 (1.75, no tie).
  const std::vector<float> x = {2.5f, 1.5f, -1.5f, 1.75f};
  const std::vector<std::int64_t> accs = {5, 3, -3, 7};
  const std::vector<int> fracs = {1, 1, 1, 2};
  const std::vector<std::int64_t> tq = torch_quantize(x, 0, at::kQInt8);
  ASSERT_EQ(tq, (std::vector<std::int64_t>{2, 2, -2, 2}));
  const dla::OutputSpec even{dla::DType::I8, dla::RoundMode::HALF_EVEN};
  const dla::OutputSpec up{dla::DType::I8, dla::RoundMode::HALF_UP};
  const dla::OutputSpec away{dla::DType::I8, dla::RoundMode::HALF_AWAY};
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(dla::requantize(accs[i], fracs[i], even), tq[i]) << i;
  }
  EXPECT_NE(dla::requantize(5, 1, up), tq[0]);     // 2.5: HALF_UP 3, torch 2
  EXPECT_NE(dla::requantize(5, 1, away), tq[0]);   // 2.5: HALF_AWAY 3, torch 2
  EXPECT_EQ(dla::requantize(-3, 1, away), tq[2]);  // -1.5: HALF_AWAY -2 happens to agree
  EXPECT_NE(dla::requantize(-3, 1, up), tq[2]);    // -1.5: HALF_UP -1, torch -2
  EXPECT_EQ(dla::requantize(7, 2, up), tq[3]);     // no tie: every mode agrees
}

}  // namespace

// A tiled, double-buffered convolution program built with dla::ProgramBuilder, the way a
// compiler would emit it, its naive reference and the configs the suites run it on. Used
// by the device and CLI suites.
//
//   image (u8, NCHW [1, in_c, in_h, in_w], NHWC in DRAM)
//   conv k x k, stride s, no padding, i8 weights, int32 bias, per-channel shifts, clip
//   out (i8, NCHW [1, out_c, out_h, out_w], NHWC in DRAM)
//
// Per tile of `tile_rows` output rows (tile t uses buffer set t % 2):
//   load    LOAD ACT input rows           pop_next when t >= 2 (compute freed the set)
//   load    LOAD ACC bias (broadcast)     push_next
//   compute MAC accumulate                pop_prev
//   compute REQUANT -> ACT output tile    pop_next when t >= 2 (store freed the tile),
//                                         push_prev when tile t + 2 exists, push_next
//   store   STORE output rows             pop_prev, push_prev when tile t + 2 exists
// Weights and the requant record are loaded once before the first tile.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "../support/device_programs.hpp"
#include "dla/numerics.hpp"
#include "dla/program.hpp"
#include "dla/tensor.hpp"

namespace emu_test {

struct ConvSpec {
  int in_c = 8;
  int in_h = 10;
  int in_w = 9;
  int out_c = 12;
  int k = 3;
  int stride = 1;
  int tile_rows = 2;
  std::int32_t clip_lo = 0;  // ReLU
  std::int32_t clip_hi = 2147483647;
  /// Every tile loads its weights and requant record (into the buffers of its half of the
  /// double buffer) instead of all tiles reading one copy: tiles share no SRAM data.
  bool reload_per_tile = false;
  /// Zero bias, and the first two tiles accumulate onto the zeros ACC holds at the start
  /// of a run instead of loading it.
  bool acc_from_zeros = false;
  int out_h() const { return (in_h - k) / stride + 1; }
  int out_w() const { return (in_w - k) / stride + 1; }
};

struct ConvCase {
  ConvSpec spec;
  dla::Program program;
  std::vector<std::int8_t> weights;  // [out_c][k][k][in_c]
  std::vector<std::int32_t> bias;    // [out_c]
  std::vector<std::int8_t> shifts;   // [out_c]
  dla::TensorDesc in;
  dla::TensorDesc out;
  std::uint32_t num_tiles = 0;
  // Instruction indices of tile 0, for tests that break the program.
  std::uint32_t first_act_load = 0, first_bias_load = 0, first_mac = 0, first_requant = 0, first_store = 0;
};

inline void append_i32(std::vector<std::uint8_t>& v, std::int64_t x) {
  const auto u = static_cast<std::uint32_t>(static_cast<std::int32_t>(x));
  for (int i = 0; i < 4; ++i) v.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
}

/// Builds the program for `cfg` (the config is embedded). Random weights, bias, shifts.
inline ConvCase make_conv_program(const dla::HwConfig& cfg, const ConvSpec& s, std::mt19937_64& g,
                                  bool embed_config = true) {
  using namespace dla;
  ConvCase c;
  c.spec = s;
  const int oh = s.out_h(), ow = s.out_w();
  std::uniform_int_distribution<int> w8(-128, 127), bias_d(-3000, 3000), sh(3, 9);
  for (int i = 0; i < s.out_c * s.k * s.k * s.in_c; ++i) c.weights.push_back(static_cast<std::int8_t>(w8(g)));
  for (int i = 0; i < s.out_c; ++i) c.bias.push_back(s.acc_from_zeros ? 0 : bias_d(g));
  for (int i = 0; i < s.out_c; ++i) c.shifts.push_back(static_cast<std::int8_t>(sh(g)));

  ProgramBuilder b = embed_config ? ProgramBuilder(cfg) : ProgramBuilder(cfg.identity_hash());
  std::vector<std::uint8_t> wbytes(c.weights.begin(), c.weights.end());
  const std::uint64_t w_at = b.add_constant(wbytes);
  std::vector<std::uint8_t> bias_bytes;
  for (auto x : c.bias) append_i32(bias_bytes, x);
  const std::uint64_t b_at = b.add_constant(bias_bytes);
  std::vector<std::uint8_t> rec;
  append_i32(rec, s.clip_lo);
  append_i32(rec, s.clip_hi);
  for (auto x : c.shifts) rec.push_back(static_cast<std::uint8_t>(x));
  const std::uint64_t r_at = b.add_constant(rec);
  c.in = b.add_tensor({"image", TensorRole::kInput, DType::U8, 0, Layout::kNHWC,
                       {1, static_cast<std::uint64_t>(s.in_c), static_cast<std::uint64_t>(s.in_h),
                        static_cast<std::uint64_t>(s.in_w)},
                       0});
  c.out = b.add_tensor({"out", TensorRole::kOutput, DType::I8, 4, Layout::kNHWC,
                        {1, static_cast<std::uint64_t>(s.out_c), static_cast<std::uint64_t>(oh),
                         static_cast<std::uint64_t>(ow)},
                        0});

  const std::int64_t in_row = static_cast<std::int64_t>(s.in_w) * s.in_c;
  const std::int64_t out_row = static_cast<std::int64_t>(ow) * s.out_c;
  const std::int64_t in_tile_rows = static_cast<std::int64_t>(s.tile_rows - 1) * s.stride + s.k;
  const std::int64_t act_in[2] = {0, in_tile_rows * in_row};
  const std::int64_t act_out[2] = {2 * in_tile_rows * in_row, 2 * in_tile_rows * in_row + s.tile_rows * out_row};
  const std::int64_t acc_tile = static_cast<std::int64_t>(s.tile_rows) * out_row;
  const std::int64_t acc_at[2] = {0, acc_tile};

  const std::uint32_t first = b.instruction_count();
  const std::int64_t wgt_at[2] = {0, s.reload_per_tile ? static_cast<std::int64_t>(wbytes.size()) : 0};
  const std::int64_t param_at[2] = {0, s.reload_per_tile ? static_cast<std::int64_t>(rec.size()) : 0};
  // The weights and the requant record into one half of the double buffer.
  auto weight_loads = [&](int set) {
    isa::Load lw;
    lw.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
    lw.sram_addr = wgt_at[set];
    lw.dram_addr = static_cast<std::int64_t>(w_at);
    lw.row_bytes = static_cast<std::int64_t>(wbytes.size());
    isa::Load lp;
    lp.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
    lp.sram_addr = param_at[set];
    lp.dram_addr = static_cast<std::int64_t>(r_at);
    lp.row_bytes = static_cast<std::int64_t>(rec.size());
    return std::vector<isa::Load>{lw, lp};
  };
  if (!s.reload_per_tile) {
    for (const isa::Load& l : weight_loads(0)) b.add(l);
  }

  const int tiles = (oh + s.tile_rows - 1) / s.tile_rows;
  c.num_tiles = static_cast<std::uint32_t>(tiles);
  for (int t = 0; t < tiles; ++t) {
    const int set = t % 2;
    const int r0 = t * s.tile_rows;
    const int rows = std::min(s.tile_rows, oh - r0);
    const bool later = t + 2 < tiles;
    isa::Load la;
    la.tokens.pop_next = t >= 2;
    la.buffer = static_cast<std::int64_t>(isa::Buffer::ACT);
    la.sram_addr = act_in[set];
    la.dram_addr = static_cast<std::int64_t>(c.in.dram_offset) + static_cast<std::int64_t>(r0) * s.stride * in_row;
    la.row_bytes = in_row;
    la.rows = static_cast<std::int64_t>(rows - 1) * s.stride + s.k;
    la.dram_stride = in_row;
    la.sram_stride = in_row;
    // The tile's loads; the last one tells the MAC that its inputs are in SRAM.
    std::vector<isa::Load> loads{la};
    if (s.reload_per_tile) {
      for (const isa::Load& l : weight_loads(set)) loads.push_back(l);
    }
    const bool loads_bias = !(s.acc_from_zeros && t < 2);
    if (loads_bias) {
      isa::Load lb;
      lb.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
      lb.sram_addr = acc_at[set];
      lb.dram_addr = static_cast<std::int64_t>(b_at);
      lb.row_bytes = 4 * s.out_c;
      lb.rows = static_cast<std::int64_t>(rows) * ow;
      lb.dram_stride = 0;
      lb.sram_stride = s.out_c;
      loads.push_back(lb);
    }
    loads.back().tokens.push_next = true;
    const std::uint32_t ia = b.add(loads.front());
    for (std::size_t i = 1; i < loads.size(); ++i) b.add(loads[i]);
    const std::uint32_t ib = loads_bias ? b.instruction_count() - 1 : 0;
    isa::Mac mac;
    mac.tokens.pop_prev = true;
    mac.act_unsigned = 1;
    mac.accumulate = 1;
    mac.act_addr = act_in[set];
    mac.wgt_addr = wgt_at[set];
    mac.acc_addr = acc_at[set];
    mac.out_h = rows;
    mac.out_w = ow;
    mac.out_c = s.out_c;
    mac.in_c = s.in_c;
    mac.kernel_h = s.k;
    mac.kernel_w = s.k;
    mac.stride_h = s.stride;
    mac.stride_w = s.stride;
    const std::uint32_t im = b.add(mac);
    isa::Requant rq;
    rq.tokens.pop_next = t >= 2;
    rq.tokens.push_prev = later;
    rq.tokens.push_next = true;
    rq.out_type = static_cast<std::int64_t>(DType::I8);
    rq.acc_addr = acc_at[set];
    rq.param_addr = param_at[set];
    rq.act_addr = act_out[set];
    rq.pixels = static_cast<std::int64_t>(rows) * ow;
    rq.channels = s.out_c;
    const std::uint32_t ir = b.add(rq);
    isa::Store st;
    st.tokens.pop_prev = true;
    st.tokens.push_prev = later;
    st.sram_addr = act_out[set];
    st.dram_addr = static_cast<std::int64_t>(c.out.dram_offset) + static_cast<std::int64_t>(r0) * out_row;
    st.row_bytes = out_row;
    st.rows = rows;
    st.dram_stride = out_row;
    st.sram_stride = out_row;
    const std::uint32_t is = b.add(st);
    if (t == 0) {
      c.first_act_load = ia;
      c.first_bias_load = ib;
      c.first_mac = im;
      c.first_requant = ir;
      c.first_store = is;
    }
  }
  b.add(isa::End{});
  DebugRecord d;
  d.layer = "conv1";
  d.insn_begin = first;
  d.insn_end = b.instruction_count();
  d.output = c.out;
  d.output.name = "conv1";
  d.output.role = TensorRole::kIntermediate;
  b.add_debug(d);
  c.program = b.build();
  return c;
}

/// A u8 tensor of `shape` (`frac` fraction bits), every element the low byte of a draw from `g`.
inline dla::HostTensor random_u8(std::vector<std::uint64_t> shape, std::mt19937_64& g, int frac = 0) {
  dla::HostTensor t;
  t.dtype = dla::DType::U8;
  t.frac = frac;
  t.shape = std::move(shape);
  for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(static_cast<std::int32_t>(g() & 0xFF));
  return t;
}

inline dla::HostTensor random_image(const ConvCase& c, std::mt19937_64& g) { return random_u8(c.in.shape, g); }

/// A config and a convolution for it, named for SCOPED_TRACE.
struct ConvVariant {
  const char* name;
  dla::HwConfig cfg;
  ConvSpec spec;
};

/// The configs and convolutions the device suites check the program on: the presets,
/// shallow queues and token FIFOs, a strided convolution, a wide one with a clip, 16-bit
/// accumulators that wrap or saturate (names starting "acc16"), and last `large` (its
/// timing parameters as the caller sets them) with FLOOR rounding, named `large_name`.
inline std::vector<ConvVariant> conv_variants(dla::HwConfig large = dla::HwConfig::preset("large"),
                                              const char* large_name = "large floor") {
  using dla::HwConfig;
  using dla::testing::with_depths;
  HwConfig acc16 = HwConfig::preset("default");
  acc16.acc_bits = 16;
  HwConfig acc16sat = acc16;
  acc16sat.overflow_policy = dla::OverflowPolicy::SATURATE_FINAL;
  acc16sat.rounding_mode = dla::RoundMode::HALF_EVEN;
  large.rounding_mode = dla::RoundMode::FLOOR;
  ConvSpec strided;
  strided.stride = 2;
  strided.in_h = 13;
  strided.in_w = 11;
  strided.tile_rows = 1;
  ConvSpec wide;
  wide.in_c = 37;
  wide.out_c = 29;
  wide.in_h = 12;
  wide.in_w = 12;
  wide.tile_rows = 3;
  wide.clip_lo = -100;
  wide.clip_hi = 90;
  return {
      {"default", HwConfig::preset("default"), ConvSpec{}},
      {"small", HwConfig::preset("small"), ConvSpec{}},
      {"depth 1/1", with_depths(HwConfig::preset("default"), 1, 1), ConvSpec{}},
      {"depth 2/1 strided", with_depths(HwConfig::preset("default"), 2, 1), strided},
      {"acc16 wrap", acc16, wide},
      {"acc16 saturate half-even", acc16sat, wide},
      {large_name, large, wide},
  };
}

/// The convolution in NCHW, naive int64 loops; acc_bits / overflow policy / rounding of
/// `cfg` applied as isa/README.md section 1 says.
inline dla::HostTensor reference_conv(const ConvCase& c, const dla::HostTensor& image, const dla::HwConfig& cfg,
                                     std::uint64_t* overflows = nullptr, std::uint64_t* saturations = nullptr) {
  if (overflows != nullptr) *overflows = 0;
  if (saturations != nullptr) *saturations = 0;
  const ConvSpec& s = c.spec;
  const int oh = s.out_h(), ow = s.out_w();
  dla::HostTensor y;
  y.dtype = dla::DType::I8;
  y.frac = 4;
  y.shape = c.out.shape;
  y.values.resize(y.num_elements());
  const std::int64_t amin = -(std::int64_t{1} << (cfg.acc_bits - 1)), amax = (std::int64_t{1} << (cfg.acc_bits - 1)) - 1;
  for (int o = 0; o < s.out_c; ++o)
    for (int r = 0; r < oh; ++r)
      for (int q = 0; q < ow; ++q) {
        std::int64_t sum = c.bias[static_cast<std::size_t>(o)];
        for (int kh = 0; kh < s.k; ++kh)
          for (int kw = 0; kw < s.k; ++kw)
            for (int i = 0; i < s.in_c; ++i) {
              const std::int64_t x =
                  image.values[static_cast<std::size_t>((i * s.in_h + r * s.stride + kh) * s.in_w + q * s.stride + kw)];
              sum += x * c.weights[static_cast<std::size_t>(((o * s.k + kh) * s.k + kw) * s.in_c + i)];
            }
        if (sum < amin || sum > amax) {
          if (overflows != nullptr) ++*overflows;
          if (cfg.overflow_policy == dla::OverflowPolicy::WRAP) {
            const std::uint64_t m = (std::uint64_t{1} << cfg.acc_bits) - 1;
            const std::uint64_t u = static_cast<std::uint64_t>(sum) & m;
            sum = (u >> (cfg.acc_bits - 1)) ? static_cast<std::int64_t>(u) - (std::int64_t{1} << cfg.acc_bits)
                                            : static_cast<std::int64_t>(u);
          } else {
            sum = sum < amin ? amin : amax;
          }
        }
        const std::int64_t v = dla::round_shift(sum, c.shifts[static_cast<std::size_t>(o)], cfg.rounding_mode);
        const std::int64_t lo = std::max<std::int64_t>(-128, s.clip_lo), hi = std::min<std::int64_t>(127, s.clip_hi);
        if (saturations != nullptr && (v < lo || v > hi)) ++*saturations;
        y.values[static_cast<std::size_t>((o * oh + r) * ow + q)] = static_cast<std::int32_t>(v < lo ? lo : v > hi ? hi : v);
      }
  return y;
}

}  // namespace emu_test

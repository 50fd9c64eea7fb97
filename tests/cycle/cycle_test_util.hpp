// Helpers of the cycle-model suites: running programs on an engine, and the timing model of
// dla/cycle.hpp written out again, independently of sim/engines/src/cycle, for the analytic checks.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dla/cycle.hpp"
#include "dla/device.hpp"
#include "dla/mac_modes.hpp"
#include "dla/numerics.hpp"
#include "dla/program.hpp"

namespace cycle_test {

using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
namespace isa = dla::isa;

inline std::uint64_t cdiv(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
inline std::uint64_t u(std::int64_t v) { return static_cast<std::uint64_t>(v); }

/// Runs `p` on a fresh cycle model; returns its report (and the device for more).
inline std::unique_ptr<dla::sim::CycleDevice> run_cycle(const HwConfig& hw, const Program& p,
                                                        const std::map<std::string, HostTensor>& inputs = {},
                                                        const dla::sim::RunOptions& options = {}) {
  auto dev = dla::sim::make_cycle_model(hw);
  dev->load(p);
  for (const auto& [name, t] : inputs) dev->set_input(name, t);
  dev->run(options);
  return dev;
}

/// The MAC array's speedup and passes of an instruction's mode.
inline std::pair<std::uint64_t, std::uint64_t> mode_rate(const isa::Mac& m, const HwConfig& hw) {
  switch (static_cast<isa::MacMode>(m.mode)) {
    case isa::MacMode::A4W4: return {u(hw.a4w4_speedup), 1};
    case isa::MacMode::A8W4: return {u(hw.a8w4_speedup), 1};
    case isa::MacMode::A16W8: return {1, u(hw.a16w8_passes)};
    default: return {1, 1};
  }
}

inline std::uint64_t macs_of(const isa::Mac& m) {
  return u(m.out_h) * u(m.out_w) * u(m.out_c) * u(m.kernel_h) * u(m.kernel_w) * (m.depthwise ? 1 : u(m.in_c));
}

/// Cycles the array needs for a MAC instruction at its peak (no mapping loss, no fill).
inline double mac_bound(const isa::Mac& m, const HwConfig& hw) {
  const auto [speedup, passes] = mode_rate(m, hw);
  return static_cast<double>(macs_of(m) * passes) / static_cast<double>(u(hw.mac_rows * hw.mac_cols) * speedup);
}

/// Per-unit cycles of an instruction range by the formulas of dla/cycle.hpp.
struct UnitCycles {
  std::uint64_t fetch = 0, load = 0, compute = 0, store = 0;
  std::uint64_t bus_bytes = 0;  ///< whole bursts
  std::uint64_t mac = 0, mac_instructions = 0;
  double mac_bound = 0;
};

inline std::uint64_t bursts(std::uint64_t addr, std::uint64_t row_bytes, std::uint64_t rows, std::uint64_t stride,
                            std::uint64_t burst) {
  // Independent of timing.cpp: walk the rows (or the one contiguous block) burst by burst.
  auto touched = [&](std::uint64_t a, std::uint64_t n) {
    std::uint64_t count = 0;
    for (std::uint64_t b = a - a % burst; b < a + n; b += burst) ++count;
    return count;
  };
  if (stride == row_bytes) return touched(addr, rows * row_bytes);
  std::uint64_t n = 0;
  for (std::uint64_t r = 0; r < rows; ++r) n += touched(addr + r * stride, row_bytes);
  return n;
}

/// Clocks of the SRAM port for a DMA's rows, independent of timing.cpp: per row, mark the
/// bank words (`word` bytes, `banks` of them) it touches and count how many times the
/// busiest bank is used.
inline std::uint64_t sram_clocks(std::uint64_t addr, std::uint64_t row_bytes, std::uint64_t rows, std::uint64_t stride,
                                 std::uint64_t word, std::uint64_t banks) {
  std::uint64_t clocks = 0;
  for (std::uint64_t r = 0; r < std::max<std::uint64_t>(rows, 1); ++r) {
    std::vector<std::uint64_t> uses(banks, 0);
    const std::uint64_t a = addr + r * stride;
    for (std::uint64_t w = a / word; w * word < a + std::max<std::uint64_t>(row_bytes, 1); ++w) ++uses[w % banks];
    clocks += *std::max_element(uses.begin(), uses.end());
  }
  return clocks;
}

/// The ACC SRAM's bank word in 4-byte words, by its definition (ARCHITECTURE: the
/// narrowest power of two of at least sram_bank_bytes / 4 words on which the widest
/// compute access, max(mac_cols, requant_lanes) words, takes one clock at every offset),
/// found by trying every offset rather than by HwConfig::acc_bank_words's formula.
inline std::uint64_t acc_bank_words(const HwConfig& hw) {
  const std::uint64_t widest = u(std::max(hw.mac_cols, hw.requant_lanes)), banks = u(hw.sram_banks);
  for (std::uint64_t word = std::max<std::uint64_t>(1, u(hw.sram_bank_bytes) / 4);; word *= 2) {
    bool one_clock = true;
    for (std::uint64_t off = 0; off < word && one_clock; ++off) {
      one_clock = sram_clocks(off, widest, 1, 0, word, banks) == 1;
    }
    if (one_clock || word > 2 * widest) return word;  // the second: one bank, refused by validate()
  }
}

/// Clocks beyond one a beat when every beat of `group` elements (n in all) moves its elements
/// of each run ({ACT byte base, element bits}, each on its own port) as one access of the
/// ACT SRAM's port (sram_clocks): the slowest one's clocks a beat.
inline std::uint64_t runs_stalls(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs, std::uint64_t n,
                                 std::uint64_t group, const HwConfig& hw) {
  std::uint64_t stalls = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += group) {
    const std::uint64_t k = std::min(group, n - e0);
    std::uint64_t slowest = 1;
    for (const auto& [base, bits] : runs) {
      const std::uint64_t b0 = e0 * bits / 8, b1 = ((e0 + k) * bits + 7) / 8;
      slowest = std::max(slowest, sram_clocks(base + b0, b1 - b0, 1, 0, u(hw.sram_bank_bytes), u(hw.sram_banks)));
    }
    stalls += slowest - 1;
  }
  return stalls;
}

/// The same for one run: writing n elements of `bits` bits from ACT byte `base`.
inline std::uint64_t write_stalls(std::uint64_t base, std::uint64_t bits, std::uint64_t n, std::uint64_t group,
                                  const HwConfig& hw) {
  return runs_stalls({{base, bits}}, n, group, hw);
}

inline std::uint64_t type_bits(std::int64_t type) { return u(dla::dtype_info(static_cast<dla::DType>(type)).bits); }

/// A MAC's clocks without the pipeline fill, walked set by set in the controller's order
/// (dense: output-channel block of mac_cols, kernel position, input-channel chunk;
/// depthwise: block of min(rows, cols) channels, `speedup` kernel positions): a set's
/// weights are read from the WGT SRAM one run per column (dense) or lane (depthwise), each
/// run's clocks by sram_clocks, into the second weight register while the previous set
/// computes; a set's beats are its pixels times the passes, each beat the clocks of its
/// activation run (dense) or of its kernel positions' runs of the block's channels
/// alternating between two read ports (depthwise: the busier port's). A set starts when the previous set's beats and
/// its own reads are both done; the first set's reads start the instruction.
inline std::uint64_t mac_walk_cycles(const isa::Mac& x, const HwConfig& hw) {
  const auto [speedup, passes] = mode_rate(x, hw);
  const auto mode = static_cast<isa::MacMode>(x.mode);
  const std::uint64_t wbits = u(dla::dtype_info(isa::mac_wgt_type(mode)).bits);
  const std::uint64_t abits = u(dla::dtype_info(isa::mac_act_type(mode, x.act_unsigned != 0)).bits);
  const std::uint64_t kk = u(x.kernel_h) * u(x.kernel_w), in_c = u(x.in_c), out_c = u(x.out_c);
  const std::uint64_t in_w = u((x.out_w - 1) * x.stride_w + (x.kernel_w - 1) * x.dilation + 1);
  const std::uint64_t word = u(hw.sram_bank_bytes), banks = u(hw.sram_banks);
  const bool dw = x.depthwise != 0;
  const std::uint64_t block = dw ? u(std::min(hw.mac_rows, hw.mac_cols)) : u(hw.mac_cols);
  const std::uint64_t chunk = u(hw.mac_rows) * speedup;
  auto run_clocks = [&](std::uint64_t base, std::uint64_t e0, std::uint64_t count, std::uint64_t bits) {
    const std::uint64_t b0 = e0 * bits / 8, b1 = ((e0 + count) * bits + 7) / 8;
    return sram_clocks(base + b0, b1 - b0, 1, 0, word, banks);
  };
  std::uint64_t set_start = 0, now = 0;
  bool first = true;
  for (std::uint64_t oc0 = 0; oc0 < out_c; oc0 += block) {
    const std::uint64_t n = std::min(block, out_c - oc0);
    for (std::uint64_t kpos = 0; kpos < kk; kpos += dw ? speedup : 1) {
      for (std::uint64_t ic0 = 0; ic0 < (dw ? 1 : in_c); ic0 += chunk) {
        std::uint64_t load = 0;
        for (std::uint64_t k = 0; k < n; ++k) {
          load += dw ? run_clocks(u(x.wgt_addr), (oc0 + k) * kk + kpos, std::min(speedup, kk - kpos), wbits)
                     : run_clocks(u(x.wgt_addr), ((oc0 + k) * kk + kpos) * in_c + ic0, std::min(chunk, in_c - ic0), wbits);
        }
        now = first ? load : std::max(now, set_start + load);
        first = false;
        set_start = now;
        for (std::uint64_t pass = 0; pass < passes; ++pass) {
          for (std::int64_t oh = 0; oh < x.out_h; ++oh) {
            for (std::int64_t ow = 0; ow < x.out_w; ++ow) {
              auto pixel_at = [&](std::uint64_t kp) {
                return u((oh * x.stride_h + static_cast<std::int64_t>(kp) / x.kernel_w * x.dilation) *
                             static_cast<std::int64_t>(in_w) +
                         ow * x.stride_w + static_cast<std::int64_t>(kp) % x.kernel_w * x.dilation);
              };
              if (!dw) {
                now += run_clocks(u(x.act_addr), pixel_at(kpos) * in_c + ic0, std::min(chunk, in_c - ic0), abits);
              } else {
                // One run of the block's channels per kernel position, on ports 0, 1, 0, 1.
                std::uint64_t port[2] = {0, 0};
                for (std::uint64_t j = 0; j < speedup && kpos + j < kk; ++j) {
                  port[j % 2] += run_clocks(u(x.act_addr), pixel_at(kpos + j) * in_c + oc0, n, abits);
                }
                now += std::max(port[0], port[1]);
              }
            }
          }
        }
      }
    }
  }
  return now;
}

/// A REQUANT's clocks, group by group: each group of requant_lanes elements is one beat of
/// one clock plus the extra clocks of its slowest access: the output write to ACT and,
/// with more channels than lanes, the reads of its channels' shifts from the PARAM record
/// (int32 clip_lo, int32 clip_hi, then one int8 shift per channel): a run from the group's
/// first channel and, past the last channel, one from channel 0 (its own port).
inline std::uint64_t requant_walk_cycles(const isa::Requant& x, const HwConfig& hw) {
  const std::uint64_t n = u(x.pixels) * u(x.channels), lanes = u(hw.requant_lanes), channels = u(x.channels);
  const std::uint64_t word = u(hw.sram_bank_bytes), banks = u(hw.sram_banks), bits = type_bits(x.out_type);
  const std::uint64_t shifts = u(x.param_addr) + 8;
  std::uint64_t cycles = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += lanes) {
    const std::uint64_t k = std::min(lanes, n - e0);
    std::uint64_t slowest = sram_clocks(u(x.act_addr) + e0 * bits / 8, (e0 + k) * bits / 8 + ((e0 + k) * bits % 8 != 0) - e0 * bits / 8,
                                        1, 0, word, banks);
    if (channels > lanes) {
      const std::uint64_t c0 = e0 % channels, first = std::min(k, channels - c0);
      slowest = std::max(slowest, sram_clocks(shifts + c0, first, 1, 0, word, banks));
      if (first < k) slowest = std::max(slowest, sram_clocks(shifts, k - first, 1, 0, word, banks));
    }
    cycles += slowest;
  }
  return cycles;
}

/// A window instruction's clocks (VMAXPOOL, VAVGPOOL, VUPSAMPLE, VCOPY), element by
/// element: each group of vector_lanes output elements takes one beat per window position;
/// the beat reads the distinct input elements its lanes need (input(e, k): the input
/// element of output e at position k, or -1 in the padding) as maximal runs of
/// consecutive elements, on ports 0, 1, 0, 1, ...; the last position's beat also writes
/// the group (its own port). A beat takes its busiest port's clocks, at least one.
template <class Input>
std::uint64_t window_walk_cycles(std::uint64_t n, std::uint64_t positions, std::uint64_t in_addr, std::uint64_t in_bits,
                                 std::uint64_t out_addr, std::uint64_t out_bits, const HwConfig& hw, Input&& input) {
  const std::uint64_t lanes = u(hw.vector_lanes), word = u(hw.sram_bank_bytes), banks = u(hw.sram_banks);
  auto clocks_of = [&](std::uint64_t base, std::uint64_t e0, std::uint64_t count, std::uint64_t bits) {
    const std::uint64_t b0 = e0 * bits / 8, b1 = ((e0 + count) * bits + 7) / 8;
    return sram_clocks(base + b0, b1 - b0, 1, 0, word, banks);
  };
  std::uint64_t cycles = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += lanes) {
    const std::uint64_t k = std::min(lanes, n - e0);
    for (std::uint64_t pos = 0; pos < positions; ++pos) {
      std::vector<std::int64_t> need;
      for (std::uint64_t e = e0; e < e0 + k; ++e) {
        if (const std::int64_t i = input(e, pos); i >= 0) need.push_back(i);
      }
      std::sort(need.begin(), need.end());
      need.erase(std::unique(need.begin(), need.end()), need.end());
      std::uint64_t port[3] = {0, 0, 1}, reads = 0;
      for (std::size_t a = 0; a < need.size();) {
        std::size_t b = a + 1;
        while (b < need.size() && need[b] == need[b - 1] + 1) ++b;
        port[reads++ % 2] += clocks_of(in_addr, u(need[a]), b - a, in_bits);
        a = b;
      }
      if (pos + 1 == positions) port[2] = clocks_of(out_addr, e0, k, out_bits);
      cycles += *std::max_element(port, port + 3);
    }
  }
  return cycles;
}

inline UnitCycles unit_cycles(const Program& p, const HwConfig& hw, std::uint32_t begin, std::uint32_t end) {
  UnitCycles c;
  const std::uint64_t bpc = u(hw.dram_bytes_per_cycle), lat = u(hw.dram_latency_cycles), burst = u(hw.dram_burst_bytes);
  for (std::uint32_t i = begin; i < end; ++i) {
    ++c.fetch;
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, isa::Load>) {
            const bool acc = x.buffer == static_cast<std::int64_t>(isa::Buffer::ACC);  // ACC: 4-byte words
            const std::uint64_t scale = acc ? 4 : 1;
            const std::uint64_t sram = sram_clocks(u(x.sram_addr) * scale, u(x.row_bytes), u(x.rows), u(x.sram_stride) * scale,
                                                   acc ? 4 * acc_bank_words(hw) : u(hw.sram_bank_bytes), u(hw.sram_banks));
            if (x.fill_zero) {
              c.load += sram;
            } else {
              const std::uint64_t bytes = bursts(u(x.dram_addr), u(x.row_bytes), u(x.rows), u(x.dram_stride), burst) * burst;
              c.load += lat + std::max(cdiv(bytes, bpc), sram);
              c.bus_bytes += bytes;
            }
          } else if constexpr (std::is_same_v<T, isa::Store>) {
            const std::uint64_t bytes = bursts(u(x.dram_addr), u(x.row_bytes), u(x.rows), u(x.dram_stride), burst) * burst;
            c.store += lat + std::max(cdiv(bytes, bpc), sram_clocks(u(x.sram_addr), u(x.row_bytes), u(x.rows), u(x.sram_stride),
                                                                 u(hw.sram_bank_bytes), u(hw.sram_banks)));
            c.bus_bytes += bytes;
          } else if constexpr (std::is_same_v<T, isa::Mac>) {
            const std::uint64_t cyc = mac_walk_cycles(x, hw) + u(hw.mac_pipeline_depth);
            c.compute += cyc;
            c.mac += cyc;
            ++c.mac_instructions;
            c.mac_bound += mac_bound(x, hw);
          } else if constexpr (std::is_same_v<T, isa::Requant>) {
            c.compute += requant_walk_cycles(x, hw);
          } else if constexpr (std::is_same_v<T, isa::VAdd>) {
            c.compute += cdiv(u(x.count), u(hw.vector_lanes)) +
                         runs_stalls({{u(x.a_addr), type_bits(x.a_type)}, {u(x.b_addr), type_bits(x.b_type)},
                                      {u(x.y_addr), type_bits(x.y_type)}},
                                     u(x.count), u(hw.vector_lanes), hw);
          } else if constexpr (std::is_same_v<T, isa::VMaxPool> || std::is_same_v<T, isa::VAvgPool>) {
            std::int64_t in_type = 0, out_type = 0, in_h = 0, in_w = 0, pad_top = 0, pad_left = 0;
            if constexpr (std::is_same_v<T, isa::VMaxPool>) {
              in_type = out_type = x.type;
              in_h = x.in_h;
              in_w = x.in_w;
              pad_top = x.pad_top;
              pad_left = x.pad_left;
            } else {
              in_type = x.in_type;
              out_type = x.out_type;
              in_h = (x.out_h - 1) * x.stride_h + x.kernel_h;
              in_w = (x.out_w - 1) * x.stride_w + x.kernel_w;
            }
            const std::int64_t ch = x.channels;
            c.compute += window_walk_cycles(
                u(x.out_h * x.out_w * ch), u(x.kernel_h * x.kernel_w), u(x.in_addr), type_bits(in_type), u(x.out_addr),
                type_bits(out_type), hw, [&](std::uint64_t e, std::uint64_t pos) -> std::int64_t {
                  const std::int64_t px = static_cast<std::int64_t>(e) / ch, k = static_cast<std::int64_t>(pos);
                  const std::int64_t ih = px / x.out_w * x.stride_h + k / x.kernel_w - pad_top;
                  const std::int64_t iw = px % x.out_w * x.stride_w + k % x.kernel_w - pad_left;
                  if (ih < 0 || ih >= in_h || iw < 0 || iw >= in_w) return -1;
                  return (ih * in_w + iw) * ch + static_cast<std::int64_t>(e) % ch;
                });
          } else if constexpr (std::is_same_v<T, isa::VUpsample>) {
            const std::int64_t ch = x.channels;
            c.compute += window_walk_cycles(4 * u(x.in_h * x.in_w * ch), 1, u(x.in_addr), type_bits(x.type), u(x.out_addr),
                                            type_bits(x.type), hw, [&](std::uint64_t e, std::uint64_t) -> std::int64_t {
                                              const std::int64_t px = static_cast<std::int64_t>(e) / ch;
                                              const std::int64_t oh = px / (2 * x.in_w), ow = px % (2 * x.in_w);
                                              return (oh / 2 * x.in_w + ow / 2) * ch + static_cast<std::int64_t>(e) % ch;
                                            });
          } else if constexpr (std::is_same_v<T, isa::VCopy>) {
            c.compute += window_walk_cycles(u(x.bytes), 1, u(x.src_addr), 8, u(x.dst_addr), 8, hw,
                                            [](std::uint64_t e, std::uint64_t) { return static_cast<std::int64_t>(e); });
          } else if constexpr (std::is_same_v<T, isa::VLut>) {
            const std::uint64_t per_element = x.in_type == static_cast<std::int64_t>(dla::DType::I16) ? 2 : 1;
            c.compute += cdiv(per_element * u(x.count), u(hw.vector_lanes));
          }
        },
        p.instructions[i]);
  }
  return c;
}

}  // namespace cycle_test

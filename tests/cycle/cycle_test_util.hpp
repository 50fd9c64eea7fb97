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
#include <variant>
#include <vector>

#include "dla/cycle.hpp"
#include "dla/device.hpp"
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
            const auto [speedup, passes] = mode_rate(x, hw);
            const std::uint64_t cols = cdiv(u(x.out_c), u(hw.mac_cols));
            const std::uint64_t taps = u(x.kernel_h) * u(x.kernel_w);
            const std::uint64_t per_pixel =
                x.depthwise ? cdiv(taps, speedup) * cols : taps * cdiv(u(x.in_c), u(hw.mac_rows) * speedup) * cols;
            const std::uint64_t cyc = u(x.out_h) * u(x.out_w) * per_pixel * passes + u(hw.mac_pipeline_depth);
            c.compute += cyc;
            c.mac += cyc;
            ++c.mac_instructions;
            c.mac_bound += mac_bound(x, hw);
          } else if constexpr (std::is_same_v<T, isa::Requant>) {
            c.compute += cdiv(u(x.pixels) * u(x.channels), u(hw.requant_lanes));
          } else if constexpr (std::is_same_v<T, isa::VAdd>) {
            c.compute += cdiv(u(x.count), u(hw.vector_lanes));
          } else if constexpr (std::is_same_v<T, isa::VMaxPool> || std::is_same_v<T, isa::VAvgPool>) {
            c.compute += cdiv(u(x.out_h) * u(x.out_w) * u(x.channels) * u(x.kernel_h) * u(x.kernel_w), u(hw.vector_lanes));
          } else if constexpr (std::is_same_v<T, isa::VUpsample>) {
            c.compute += cdiv(4 * u(x.in_h) * u(x.in_w) * u(x.channels), u(hw.vector_lanes));
          } else if constexpr (std::is_same_v<T, isa::VCopy>) {
            c.compute += cdiv(u(x.bytes), u(hw.vector_lanes));
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

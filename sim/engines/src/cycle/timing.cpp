// The cycle model's timing formulas and DRAM bus (timing.hpp).
#include "timing.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <variant>
#include <vector>

#include "dla/mac_modes.hpp"
#include "dla/numerics.hpp"
#include "dla/param_records.hpp"

namespace dla::sim::cycle {
namespace {

std::uint64_t u(std::int64_t v) { return static_cast<std::uint64_t>(v); }

struct ModeRate {
  std::uint64_t speedup;  ///< MACs per PE per cycle relative to a8w8
  std::uint64_t passes;   ///< passes over the array per MAC
};

ModeRate mode_rate(const isa::Mac& insn, const HwConfig& hw) {
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  return {u(isa::mac_speedup(mode, hw)), u(isa::mac_passes(mode, hw))};
}

/// Bytes one access of the ACT SRAM's port moves in one clock at any alignment.
std::uint64_t one_clock_bytes(const HwConfig& hw) { return (u(hw.sram_banks) - 1) * u(hw.sram_bank_bytes) + 1; }

/// Whether every run of at most n elements of `bits` bits takes one clock of a byte
/// SRAM's port wherever it starts (4-bit runs may start mid-byte: a byte more).
bool runs_take_one_clock(std::uint64_t n, std::uint64_t bits, const HwConfig& hw) {
  return (n * bits + 7) / 8 + (bits == 4 ? 1 : 0) <= one_clock_bytes(hw);
}

/// Bytes [b0, b1) that elements [e0, e0 + k) of `bits` bits occupy.
std::pair<std::uint64_t, std::uint64_t> element_bytes(std::uint64_t e0, std::uint64_t k, std::uint64_t bits) {
  return {e0 * bits / 8, ((e0 + k) * bits + 7) / 8};
}

/// Per (kernel position, input-channel chunk) of a dense MAC, the clocks beyond one a beat
/// that its activation runs take on the ACT SRAM's port over the output pixels (each beat
/// reads the run of its chunk's channels at its pixel and kernel position; the same runs
/// for every output-channel block and pass); empty when every run takes one clock.
std::vector<std::uint64_t> act_run_stalls(const isa::Mac& insn, const HwConfig& hw, const ModeRate& r) {
  if (insn.depthwise) return {};  // the rtl engine still gathers depthwise operands in C++
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  const std::uint64_t bits = u(dtype_info(isa::mac_act_type(mode, insn.act_unsigned != 0)).bits);
  const std::uint64_t chunk = u(hw.mac_rows) * r.speedup, in_c = u(insn.in_c), chunks = ceil_div(in_c, chunk);
  if (runs_take_one_clock(std::min(chunk, in_c), bits, hw)) return {};
  const std::uint64_t in_w = u((insn.out_w - 1) * insn.stride_w + (insn.kernel_w - 1) * insn.dilation + 1);
  std::vector<std::uint64_t> stalls(u(insn.kernel_h) * u(insn.kernel_w) * chunks, 0);
  for (std::uint64_t oh = 0; oh < u(insn.out_h); ++oh) {
    for (std::uint64_t ow = 0; ow < u(insn.out_w); ++ow) {
      for (std::uint64_t kh = 0; kh < u(insn.kernel_h); ++kh) {
        for (std::uint64_t kw = 0; kw < u(insn.kernel_w); ++kw) {
          const std::uint64_t pixel = (oh * u(insn.stride_h) + kh * u(insn.dilation)) * in_w + ow * u(insn.stride_w) +
                                      kw * u(insn.dilation);
          for (std::uint64_t c = 0; c < chunks; ++c) {
            const auto [b0, b1] = element_bytes(pixel * in_c + c * chunk, std::min(chunk, in_c - c * chunk), bits);
            stalls[(kh * u(insn.kernel_w) + kw) * chunks + c] += hw.sram_access_clocks(u(insn.act_addr) + b0, b1 - b0) - 1;
          }
        }
      }
    }
  }
  return stalls;
}

/// The clocks the WGT SRAM's port takes to read one weight set: a run per active column
/// (dense: the chunk's channels at kernel position kpos of output channel oc0 + k) or
/// diagonal lane (depthwise: the speedup's kernel positions from kpos of channel oc0 + k).
std::uint64_t weight_set_clocks(const isa::Mac& insn, const HwConfig& hw, const ModeRate& r, std::uint64_t bits,
                                std::uint64_t oc0, std::uint64_t n, std::uint64_t kpos, std::uint64_t ic0) {
  const std::uint64_t kk = u(insn.kernel_h) * u(insn.kernel_w), in_c = u(insn.in_c);
  std::uint64_t clocks = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    const std::uint64_t e0 = insn.depthwise ? (oc0 + k) * kk + kpos : ((oc0 + k) * kk + kpos) * in_c + ic0;
    const std::uint64_t count = insn.depthwise ? std::min(r.speedup, kk - kpos) : std::min(u(hw.mac_rows) * r.speedup, in_c - ic0);
    const auto [b0, b1] = element_bytes(e0, count, bits);
    clocks += hw.sram_access_clocks(u(insn.wgt_addr) + b0, b1 - b0);
  }
  return clocks;
}

/// A MAC's beats with its weight loads, in the controller's order of weight sets (dense: for
/// each block of mac_cols output channels, kernel position and input-channel chunk;
/// depthwise: for each block of min(mac_rows, mac_cols) channels and group of `speedup`
/// kernel positions). A set's beats are its pixels times the passes plus their activation
/// stalls. The WGT port reads set i + 1 into the array's second weight register while set
/// i computes, so set i + 1 starts max(B_i, L_{i+1}) after set i, and the first set's
/// reads L_0 come before any beat.
std::uint64_t mac_beats_with_weight_loads(const isa::Mac& insn, const HwConfig& hw, const ModeRate& r) {
  const std::uint64_t pixels = u(insn.out_h) * u(insn.out_w), out_c = u(insn.out_c), in_c = u(insn.in_c);
  const std::uint64_t kk = u(insn.kernel_h) * u(insn.kernel_w);
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  const std::uint64_t bits = u(dtype_info(isa::mac_wgt_type(mode)).bits);
  const bool dw = insn.depthwise != 0;
  const std::uint64_t block = dw ? u(std::min(hw.mac_rows, hw.mac_cols)) : u(hw.mac_cols);
  const std::uint64_t chunk = u(hw.mac_rows) * r.speedup, chunks = dw ? 1 : ceil_div(in_c, chunk);
  const std::uint64_t kstep = dw ? r.speedup : 1;
  const std::vector<std::uint64_t> act = act_run_stalls(insn, hw, r);
  // Where every run takes one clock, a set's reads take one clock per active column or lane.
  const std::uint64_t widest = dw ? r.speedup : std::min(chunk, in_c);
  const bool one_clock_runs = runs_take_one_clock(widest, bits, hw);
  std::uint64_t total = 0, prev_beats = 0;
  bool first = true;
  for (std::uint64_t oc0 = 0; oc0 < out_c; oc0 += block) {
    const std::uint64_t n = std::min(block, out_c - oc0);
    for (std::uint64_t kpos = 0; kpos < kk; kpos += kstep) {
      for (std::uint64_t c = 0; c < chunks; ++c) {
        const std::uint64_t load =
            one_clock_runs ? n : weight_set_clocks(insn, hw, r, bits, oc0, n, kpos, c * chunk);
        total += first ? load : std::max(prev_beats, load);
        first = false;
        prev_beats = (pixels + (act.empty() ? 0 : act[kpos * chunks + c])) * r.passes;
      }
    }
  }
  return total + prev_beats;
}

}  // namespace

std::uint64_t group_stalls(const std::vector<ActRun>& runs, std::uint64_t n, std::uint64_t group, const HwConfig& hw) {
  bool fits = true;
  for (const ActRun& r : runs) {
    const auto bits = static_cast<std::uint64_t>(dtype_info(r.type).bits);
    fits = fits && runs_take_one_clock(group, bits, hw);
  }
  if (fits) return 0;
  std::uint64_t stalls = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += group) {
    std::uint64_t slowest = 1;
    for (const ActRun& r : runs) {
      const auto [b0, b1] = element_bytes(e0, std::min(group, n - e0), static_cast<std::uint64_t>(dtype_info(r.type).bits));
      slowest = std::max(slowest, hw.sram_access_clocks(r.base + b0, b1 - b0));
    }
    stalls += slowest - 1;
  }
  return stalls;
}

std::uint64_t mac_cycles(const isa::Mac& insn, const HwConfig& hw) {
  return mac_beats_with_weight_loads(insn, hw, mode_rate(insn, hw)) + u(hw.mac_pipeline_depth);
}

double mac_ideal_cycles(const isa::Mac& insn, std::uint64_t macs, const HwConfig& hw) {
  const ModeRate r = mode_rate(insn, hw);
  return static_cast<double>(macs) * static_cast<double>(r.passes) /
         static_cast<double>(u(hw.mac_rows) * u(hw.mac_cols) * r.speedup);
}

std::uint64_t requant_cycles(const isa::Requant& insn, const HwConfig& hw) {
  const std::uint64_t n = u(insn.pixels) * u(insn.channels), lanes = u(hw.requant_lanes), channels = u(insn.channels);
  const std::uint64_t out_stalls = group_stalls({{u(insn.act_addr), static_cast<DType>(insn.out_type)}}, n, lanes, hw);
  // With more channels than lanes each beat also reads its group's shifts from PARAM: a
  // run from its first channel and, where the group wraps, one from channel 0 on the
  // second copy's port (the record is read with the word when its shifts fit the lanes).
  if (channels <= lanes || runs_take_one_clock(lanes, 8, hw)) return ceil_div(n, lanes) + out_stalls;
  const std::uint64_t bits = u(dtype_info(static_cast<DType>(insn.out_type)).bits);
  const std::uint64_t shifts = u(insn.param_addr) + isa::RequantRecord::size(0);
  std::uint64_t stalls = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += lanes) {
    const std::uint64_t k = std::min(lanes, n - e0), c0 = e0 % channels, first = std::min(k, channels - c0);
    const auto [b0, b1] = element_bytes(e0, k, bits);
    std::uint64_t slowest = std::max(hw.sram_access_clocks(u(insn.act_addr) + b0, b1 - b0),
                                     hw.sram_access_clocks(shifts + c0, first));
    if (first < k) slowest = std::max(slowest, hw.sram_access_clocks(shifts, k - first));
    stalls += slowest - 1;
  }
  return ceil_div(n, lanes) + stalls;
}

std::uint64_t vector_cycles(const isa::Instruction& insn, const HwConfig& hw) {
  const std::uint64_t work = std::visit(
      [](const auto& i) -> std::uint64_t {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, isa::VAdd>) {
          return u(i.count);
        } else if constexpr (std::is_same_v<T, isa::VMaxPool> || std::is_same_v<T, isa::VAvgPool>) {
          return u(i.out_h) * u(i.out_w) * u(i.channels) * u(i.kernel_h) * u(i.kernel_w);
        } else if constexpr (std::is_same_v<T, isa::VUpsample>) {
          return 4 * u(i.in_h) * u(i.in_w) * u(i.channels);
        } else if constexpr (std::is_same_v<T, isa::VCopy>) {
          return u(i.bytes);
        } else if constexpr (std::is_same_v<T, isa::VLut>) {
          // An i16 input reads two knots and interpolates: two lane-cycles per element.
          return lut_interpolates(static_cast<DType>(i.in_type)) ? 2 * u(i.count) : u(i.count);
        } else {
          return 0;
        }
      },
      insn);
  // The lookup-table unit has lanes of its own (a VLUT never reaches here with none:
  // semantics refuses it), and loads its table from PARAM first, lut_lanes entries a
  // cycle, each block one read of the PARAM SRAM (more cycles where its bytes take more).
  if (const auto* lut = std::get_if<isa::VLut>(&insn)) {
    const std::uint64_t lanes = u(std::max<std::int64_t>(hw.lut_lanes, 1));
    const auto in = static_cast<DType>(lut->in_type);
    const std::uint64_t entries = u(lut_entries(in)), entry_bytes = isa::LutRecord::kLayout[0].bytes;
    std::uint64_t table = ceil_div(entries, lanes);
    if (!runs_take_one_clock(lanes, 8 * entry_bytes, hw)) {
      table = 0;
      for (std::uint64_t e0 = 0; e0 < entries; e0 += lanes) {
        table += hw.sram_access_clocks(u(lut->param_addr) + e0 * entry_bytes, std::min(lanes, entries - e0) * entry_bytes);
      }
    }
    return table + ceil_div(work, lanes) +
           group_stalls({{u(lut->in_addr), in}, {u(lut->out_addr), static_cast<DType>(lut->out_type)}}, u(lut->count),
                        lut_interpolates(in) ? std::max<std::uint64_t>(lanes / 2, 1) : lanes, hw);
  }
  return ceil_div(work, u(hw.vector_lanes)) + output_stalls(insn, hw);
}

std::uint64_t output_stalls(const isa::Instruction& insn, const HwConfig& hw) {
  const std::uint64_t lanes = u(hw.vector_lanes);
  return std::visit(
      [&](const auto& i) -> std::uint64_t {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, isa::VAdd>) {
          return group_stalls({{u(i.a_addr), static_cast<DType>(i.a_type)},
                               {u(i.b_addr), static_cast<DType>(i.b_type)},
                               {u(i.y_addr), static_cast<DType>(i.y_type)}},
                              u(i.count), lanes, hw);
        } else if constexpr (std::is_same_v<T, isa::VMaxPool>) {
          return group_stalls({{u(i.out_addr), static_cast<DType>(i.type)}}, u(i.out_h) * u(i.out_w) * u(i.channels), lanes,
                              hw);
        } else if constexpr (std::is_same_v<T, isa::VAvgPool>) {
          return group_stalls({{u(i.out_addr), static_cast<DType>(i.out_type)}}, u(i.out_h) * u(i.out_w) * u(i.channels),
                              lanes, hw);
        } else if constexpr (std::is_same_v<T, isa::VUpsample>) {
          return group_stalls({{u(i.out_addr), static_cast<DType>(i.type)}}, 4 * u(i.in_h) * u(i.in_w) * u(i.channels),
                              lanes, hw);
        } else if constexpr (std::is_same_v<T, isa::VCopy>) {
          return group_stalls({{u(i.src_addr), DType::U8}, {u(i.dst_addr), DType::U8}}, u(i.bytes), lanes, hw);
        } else {
          return 0;
        }
      },
      insn);
}

std::uint64_t dram_bursts(std::uint64_t addr, std::uint64_t row_bytes, std::uint64_t rows, std::uint64_t stride,
                          std::uint64_t burst_bytes) {
  if (rows == 0 || row_bytes == 0) return 0;
  auto span = [&](std::uint64_t a, std::uint64_t n) { return (a + n - 1) / burst_bytes - a / burst_bytes + 1; };
  if (stride == row_bytes) return span(addr, rows * row_bytes);
  if (stride % burst_bytes == 0) return rows * span(addr, row_bytes);  // every row aligned alike
  std::uint64_t n = 0;
  for (std::uint64_t r = 0; r < rows; ++r) n += span(addr + r * stride, row_bytes);
  return n;
}

namespace {

/// `rows` rows of `len` elements, `stride` elements apart from element `addr`, on a port
/// whose access of n elements from a takes clocks(a, n); `word`: elements per bank word.
template <class Clocks>
std::uint64_t sram_rows_cycles(std::uint64_t addr, std::uint64_t len, std::uint64_t rows, std::uint64_t stride,
                               std::uint64_t word, Clocks&& clocks) {
  if (rows == 0 || len == 0) return 1;
  // Rows whose starts differ by a multiple of the bank width take equal clocks.
  if (stride % word == 0) return rows * clocks(addr, len);
  std::uint64_t n = 0;
  for (std::uint64_t r = 0; r < rows; ++r) n += clocks(addr + r * stride, len);
  return n;
}

std::uint64_t byte_rows_cycles(std::uint64_t addr, std::uint64_t row_bytes, std::uint64_t rows, std::uint64_t stride,
                               const HwConfig& hw) {
  return sram_rows_cycles(addr, row_bytes, rows, stride, u(hw.sram_bank_bytes),
                          [&hw](std::uint64_t a, std::uint64_t n) { return hw.sram_access_clocks(a, n); });
}

}  // namespace

std::uint64_t sram_port_cycles(const isa::Load& insn, const HwConfig& hw) {
  if (static_cast<isa::Buffer>(insn.buffer) == isa::Buffer::ACC) {  // rows of 4-byte words
    return sram_rows_cycles(u(insn.sram_addr), u(insn.row_bytes) / 4, u(insn.rows), u(insn.sram_stride),
                            u(hw.acc_bank_words()),
                            [&hw](std::uint64_t a, std::uint64_t n) { return hw.acc_access_clocks(a, n); });
  }
  return byte_rows_cycles(u(insn.sram_addr), u(insn.row_bytes), u(insn.rows), u(insn.sram_stride), hw);
}

std::uint64_t sram_port_cycles(const isa::Store& insn, const HwConfig& hw) {
  return byte_rows_cycles(u(insn.sram_addr), u(insn.row_bytes), u(insn.rows), u(insn.sram_stride), hw);
}

// ---------------------------------------------------------------------------
// DRAM bus
// ---------------------------------------------------------------------------

void DramBus::start(int ch, std::uint64_t now, std::uint64_t arrival, std::uint64_t bytes) {
  auto& c = chan_[static_cast<std::size_t>(ch)];
  if (c.active || bytes == 0 || arrival < now) throw std::logic_error("DramBus::start: channel busy or bad transfer");
  advance(now);
  c = Channel{true, arrival, 2 * bytes, kNever};
  project();
}

bool DramBus::done(int ch, std::uint64_t now) {
  advance(now);
  const auto& c = chan_[static_cast<std::size_t>(ch)];
  return c.active && c.completed != kNever;
}

void DramBus::finish(int ch) {
  chan_[static_cast<std::size_t>(ch)] = Channel{};
  projected_[static_cast<std::size_t>(ch)] = kNever;
}

void DramBus::advance(std::uint64_t now) {
  if (now > state_.t) simulate(state_, chan_, now);
}

void DramBus::project() {
  State s = state_;
  std::array<Channel, kChannels> ch = chan_;
  simulate(s, ch, kNever);
  for (std::size_t c = 0; c < kChannels; ++c) projected_[c] = ch[c].active ? ch[c].completed : kNever;
}

void DramBus::simulate(State& s, std::array<Channel, kChannels>& ch, std::uint64_t until) const {
  const std::uint64_t cap = 2 * bpc_;  // half bytes per cycle
  const std::uint64_t share = bpc_;    // each of two transferring channels
  while (s.t < until) {
    std::array<std::size_t, kChannels> live{};
    std::size_t n = 0;
    std::uint64_t next_arrival = kNever;
    for (std::size_t c = 0; c < kChannels; ++c) {
      if (!ch[c].active || ch[c].remaining == 0) continue;
      if (ch[c].arrival <= s.t) {
        live[n++] = c;
      } else {
        next_arrival = std::min(next_arrival, ch[c].arrival);
      }
    }
    if (n == 0) {
      if (next_arrival == kNever) {
        if (until != kNever) s.t = until;
        return;
      }
      s.t = std::min(next_arrival, until);
      continue;
    }
    if (n == 1) {
      Channel& c = ch[live[0]];
      const std::uint64_t fin = s.t + ceil_div(c.remaining, cap);
      const std::uint64_t stop = std::min({fin, next_arrival, until});
      if (stop == fin) {
        c.remaining = 0;
        c.completed = fin;
      } else {
        c.remaining -= cap * (stop - s.t);
      }
      s.busy += stop - s.t;
      s.t = stop;
      continue;
    }
    // Both channels transfer: equal shares until the smaller one completes.
    Channel* a = &ch[live[0]];
    Channel* b = &ch[live[1]];
    if (b->remaining < a->remaining) std::swap(a, b);
    const std::uint64_t k = ceil_div(a->remaining, share);
    const std::uint64_t fin = s.t + k;
    if (until < fin) {
      a->remaining -= share * (until - s.t);
      b->remaining -= share * (until - s.t);
      s.busy += until - s.t;
      s.t = until;
      continue;
    }
    const std::uint64_t to_b = cap * k - a->remaining;
    a->remaining = 0;
    a->completed = fin;
    b->remaining = b->remaining > to_b ? b->remaining - to_b : 0;
    if (b->remaining == 0) b->completed = fin;
    s.busy += k;
    s.t = fin;
  }
}

}  // namespace dla::sim::cycle

// The cycle model's timing formulas and DRAM bus (timing.hpp).
#include "timing.hpp"

#include <algorithm>
#include <functional>
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
  if (insn.depthwise) return {};  // depthwise_set_beats counts a depthwise beat's runs
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

/// The clocks of a depthwise weight set's beats, one a pixel and pass at the least: a beat
/// reads one ACT run of the set's n channels (from channel c0) per kernel position of the
/// set (at most `speedup` from kpos), alternately on the two ACT copies' read ports, and
/// takes the clocks of the busier port (a4w4's four runs: two clocks a beat).
std::uint64_t depthwise_set_beats(const isa::Mac& insn, const HwConfig& hw, const ModeRate& r, std::uint64_t c0,
                                  std::uint64_t n, std::uint64_t kpos) {
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  const std::uint64_t bits = u(dtype_info(isa::mac_act_type(mode, insn.act_unsigned != 0)).bits);
  const std::uint64_t kw = u(insn.kernel_w), runs = std::min(r.speedup, u(insn.kernel_h) * kw - kpos);
  const std::uint64_t pixels = u(insn.out_h) * u(insn.out_w), channels = u(insn.in_c);
  if (runs_take_one_clock(n, bits, hw)) return pixels * ceil_div(runs, 2) * r.passes;
  const std::uint64_t in_w = u((insn.out_w - 1) * insn.stride_w + (insn.kernel_w - 1) * insn.dilation + 1);
  std::uint64_t beats = 0;
  for (std::uint64_t oh = 0; oh < u(insn.out_h); ++oh) {
    for (std::uint64_t ow = 0; ow < u(insn.out_w); ++ow) {
      std::uint64_t port[2] = {0, 0};
      for (std::uint64_t j = 0; j < runs; ++j) {
        const std::uint64_t kh = (kpos + j) / kw, kx = (kpos + j) % kw;
        const std::uint64_t pixel = (oh * u(insn.stride_h) + kh * u(insn.dilation)) * in_w + ow * u(insn.stride_w) +
                                    kx * u(insn.dilation);
        const auto [b0, b1] = element_bytes(pixel * channels + c0, n, bits);
        port[j % 2] += hw.sram_access_clocks(u(insn.act_addr) + b0, b1 - b0);
      }
      beats += std::max(port[0], port[1]);
    }
  }
  return beats * r.passes;
}

/// A MAC's beats with its weight loads, in the controller's order of weight sets (dense: for
/// each block of mac_cols output channels, kernel position and input-channel chunk;
/// depthwise: for each block of min(mac_rows, mac_cols) channels and group of `speedup`
/// kernel positions). A set's beats are its pixels times the passes plus their activation
/// stalls (depthwise: depthwise_set_beats). The WGT port reads set i + 1 into the array's
/// second weight register while set i computes, so set i + 1 starts max(B_i, L_{i+1})
/// after set i, and the first set's reads L_0 come before any beat.
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
        prev_beats = dw ? depthwise_set_beats(insn, hw, r, oc0, n, kpos)
                        : (pixels + (act.empty() ? 0 : act[kpos * chunks + c])) * r.passes;
      }
    }
  }
  return total + prev_beats;
}

/// A window instruction of the vector unit (VMAXPOOL, VAVGPOOL, VUPSAMPLE; VCOPY as one
/// pixel of `bytes` channels): `out_pixels` x `channels` output elements, `positions`
/// window positions; input_pixel(p, k, &i) sets the input pixel of output pixel p at
/// position k and returns false in the padding.
struct Window {
  std::uint64_t out_pixels = 1, channels = 1, positions = 1;
  DType in = DType::I8, out = DType::I8;
  std::uint64_t in_addr = 0, out_addr = 0;
  std::function<bool(std::uint64_t, std::uint64_t, std::uint64_t*)> input_pixel;
};

/// Each group of vector_lanes consecutive output elements takes one beat per window
/// position. A beat reads the union of its elements' inputs, each maximal run of
/// consecutive input elements one ACT access, alternately on the two copies' read ports,
/// and a group's last beat writes its outputs on the write port: the beat takes its
/// busiest port's clocks, one at the least.
std::uint64_t window_cycles(const Window& w, const HwConfig& hw) {
  const std::uint64_t lanes = u(hw.vector_lanes), n = w.out_pixels * w.channels, groups = ceil_div(n, lanes);
  const auto in_bits = static_cast<std::uint64_t>(dtype_info(w.in).bits);
  const auto out_bits = static_cast<std::uint64_t>(dtype_info(w.out).bits);
  // A group within two pixels reads at most two runs, one per port.
  if ((w.channels >= lanes || w.out_pixels == 1) && runs_take_one_clock(lanes, in_bits, hw) &&
      runs_take_one_clock(lanes, out_bits, hw)) {
    return groups * w.positions;
  }
  std::uint64_t cycles = 0;
  for (std::uint64_t e0 = 0; e0 < n; e0 += lanes) {
    const std::uint64_t e1 = std::min(n, e0 + lanes);
    for (std::uint64_t k = 0; k < w.positions; ++k) {
      std::uint64_t port[2] = {0, 0}, reads = 0;
      std::uint64_t lo = 0, hi = 0;  // the run being gathered; empty when lo == hi
      auto flush = [&] {
        if (lo == hi) return;
        const auto [b0, b1] = element_bytes(lo, hi - lo, in_bits);
        port[reads++ % 2] += hw.sram_access_clocks(w.in_addr + b0, b1 - b0);
      };
      // Pixel by pixel: its channels of the group at its input pixel. Input pixels never
      // decrease along the output; an upsampled pixel repeats its predecessor's.
      for (std::uint64_t p = e0 / w.channels; p * w.channels < e1; ++p) {
        std::uint64_t ip = 0;
        if (!w.input_pixel(p, k, &ip)) continue;
        const std::uint64_t c_lo = std::max(e0, p * w.channels) - p * w.channels;
        const std::uint64_t c_hi = std::min(e1, (p + 1) * w.channels) - p * w.channels;
        const std::uint64_t a = ip * w.channels + c_lo, b = ip * w.channels + c_hi;
        if (lo != hi && a <= hi && b >= lo) {
          lo = std::min(lo, a);
          hi = std::max(hi, b);
        } else {
          flush();
          lo = a;
          hi = b;
        }
      }
      flush();
      std::uint64_t clocks = std::max<std::uint64_t>({1, port[0], port[1]});
      if (k + 1 == w.positions) {
        const auto [b0, b1] = element_bytes(e0, e1 - e0, out_bits);
        clocks = std::max(clocks, hw.sram_access_clocks(w.out_addr + b0, b1 - b0));
      }
      cycles += clocks;
    }
  }
  return cycles;
}

/// A pool's window: output pixel p at position k reads input pixel (oh * stride_h + kh -
/// pad_top, ow * stride_w + kw - pad_left) of in_h x in_w, or the padding.
template <class Pool>
Window pool_window(const Pool& i, std::int64_t in_h, std::int64_t in_w, std::int64_t pad_top, std::int64_t pad_left) {
  Window w;
  w.out_pixels = u(i.out_h) * u(i.out_w);
  w.channels = u(i.channels);
  w.positions = u(i.kernel_h) * u(i.kernel_w);
  w.in_addr = u(i.in_addr);
  w.out_addr = u(i.out_addr);
  w.input_pixel = [&i, in_h, in_w, pad_top, pad_left](std::uint64_t p, std::uint64_t k, std::uint64_t* ip) {
    const std::int64_t oh = static_cast<std::int64_t>(p) / i.out_w, ow = static_cast<std::int64_t>(p) % i.out_w;
    const std::int64_t ih = oh * i.stride_h + static_cast<std::int64_t>(k) / i.kernel_w - pad_top;
    const std::int64_t iw = ow * i.stride_w + static_cast<std::int64_t>(k) % i.kernel_w - pad_left;
    if (ih < 0 || ih >= in_h || iw < 0 || iw >= in_w) return false;
    *ip = u(ih * in_w + iw);
    return true;
  };
  return w;
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
  const std::uint64_t lanes = u(hw.vector_lanes);
  if (const auto* add = std::get_if<isa::VAdd>(&insn)) {
    return ceil_div(u(add->count), lanes) + group_stalls({{u(add->a_addr), static_cast<DType>(add->a_type)},
                                                          {u(add->b_addr), static_cast<DType>(add->b_type)},
                                                          {u(add->y_addr), static_cast<DType>(add->y_type)}},
                                                         u(add->count), lanes, hw);
  }
  if (const auto* mp = std::get_if<isa::VMaxPool>(&insn)) {
    Window w = pool_window(*mp, mp->in_h, mp->in_w, mp->pad_top, mp->pad_left);
    w.in = w.out = static_cast<DType>(mp->type);
    return window_cycles(w, hw);
  }
  if (const auto* ap = std::get_if<isa::VAvgPool>(&insn)) {
    // No padding: the input is the windows' extent.
    Window w = pool_window(*ap, (ap->out_h - 1) * ap->stride_h + ap->kernel_h, (ap->out_w - 1) * ap->stride_w + ap->kernel_w,
                           0, 0);
    w.in = static_cast<DType>(ap->in_type);
    w.out = static_cast<DType>(ap->out_type);
    return window_cycles(w, hw);
  }
  if (const auto* up = std::get_if<isa::VUpsample>(&insn)) {
    Window w;
    w.out_pixels = 4 * u(up->in_h) * u(up->in_w);
    w.channels = u(up->channels);
    w.in = w.out = static_cast<DType>(up->type);
    w.in_addr = u(up->in_addr);
    w.out_addr = u(up->out_addr);
    const std::uint64_t in_w = u(up->in_w);
    w.input_pixel = [in_w](std::uint64_t p, std::uint64_t, std::uint64_t* ip) {
      *ip = p / (2 * in_w) / 2 * in_w + p % (2 * in_w) / 2;
      return true;
    };
    return window_cycles(w, hw);
  }
  if (const auto* cp = std::get_if<isa::VCopy>(&insn)) {
    Window w;
    w.channels = u(cp->bytes);
    w.in = w.out = DType::U8;
    w.in_addr = u(cp->src_addr);
    w.out_addr = u(cp->dst_addr);
    w.input_pixel = [](std::uint64_t, std::uint64_t, std::uint64_t* ip) {
      *ip = 0;
      return true;
    };
    return window_cycles(w, hw);
  }
  const auto* lut = std::get_if<isa::VLut>(&insn);
  if (lut == nullptr) return 0;
  // The lookup-table unit has lanes of its own (a VLUT never reaches here with none:
  // semantics refuses it), and loads its table from PARAM first, lut_lanes entries a
  // cycle, each block one read of the PARAM SRAM (more cycles where its bytes take more);
  // an i16 input reads two knots and interpolates: two lane-cycles per element.
  const std::uint64_t lut_lanes = u(std::max<std::int64_t>(hw.lut_lanes, 1));
  const auto in = static_cast<DType>(lut->in_type);
  const std::uint64_t entries = u(lut_entries(in)), entry_bytes = isa::LutRecord::kLayout[0].bytes;
  std::uint64_t table = ceil_div(entries, lut_lanes);
  if (!runs_take_one_clock(lut_lanes, 8 * entry_bytes, hw)) {
    table = 0;
    for (std::uint64_t e0 = 0; e0 < entries; e0 += lut_lanes) {
      table += hw.sram_access_clocks(u(lut->param_addr) + e0 * entry_bytes, std::min(lut_lanes, entries - e0) * entry_bytes);
    }
  }
  const std::uint64_t work = lut_interpolates(in) ? 2 * u(lut->count) : u(lut->count);
  return table + ceil_div(work, lut_lanes) +
         group_stalls({{u(lut->in_addr), in}, {u(lut->out_addr), static_cast<DType>(lut->out_type)}}, u(lut->count),
                      lut_interpolates(in) ? std::max<std::uint64_t>(lut_lanes / 2, 1) : lut_lanes, hw);
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

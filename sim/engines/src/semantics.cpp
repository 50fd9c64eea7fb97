// One semantic body per instruction (dla/semantics.hpp). Arithmetic comes from
// dla/numerics.hpp only; this file moves data and applies the ISA's loops.
#include "dla/semantics.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dla/mac_modes.hpp"
#include "dla/numerics.hpp"
#include "dla/param_records.hpp"
#include "dla/requant_batch.hpp"
#include "mac_kernel.hpp"
#include "pack.hpp"
#include "weight_cache.hpp"

namespace dla::sim {

using detail::pack;
using detail::unpack;

std::string_view space_name(Space s) {
  switch (s) {
    case Space::kAct: return "ACT";
    case Space::kWgt: return "WGT";
    case Space::kAcc: return "ACC";
    case Space::kParam: return "PARAM";
    case Space::kDram: return "DRAM";
  }
  return "?";
}

MachineState::MachineState(const HwConfig& hw, std::uint64_t dram_bytes)
    : config(hw),
      dram(static_cast<std::size_t>(dram_bytes)),  // zero without touching a page
      act(static_cast<std::size_t>(hw.act_sram_bytes()), 0),
      wgt(static_cast<std::size_t>(hw.wgt_sram_bytes()), 0),
      param(static_cast<std::size_t>(hw.param_sram_bytes()), 0),
      acc(static_cast<std::size_t>(hw.acc_sram_words()), 0) {}

std::uint64_t MachineState::capacity(Space s) const {
  switch (s) {
    case Space::kAct: return act.size();
    case Space::kWgt: return wgt.size();
    case Space::kAcc: return acc.size();
    case Space::kParam: return param.size();
    case Space::kDram: return dram_bytes().size();
  }
  return 0;
}

void MachineState::clear() {
  std::fill(dram.begin(), dram.end(), std::uint8_t{0});
  std::fill(act.begin(), act.end(), std::uint8_t{0});
  std::fill(wgt.begin(), wgt.end(), std::uint8_t{0});
  std::fill(param.begin(), param.end(), std::uint8_t{0});
  std::fill(acc.begin(), acc.end(), std::int64_t{0});
}

namespace {

// ---------------------------------------------------------------------------
// Rule checks
// ---------------------------------------------------------------------------

template <typename Insn>
[[noreturn]] void fail(std::uint32_t index, const std::string& rule) {
  throw ExecutionError(std::string(Insn::kMnemonic) + ": " + rule, index);
}

std::string range_text(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

std::string capacity_text(Space s, std::uint64_t capacity) {
  switch (s) {
    case Space::kAct: return "the " + std::to_string(capacity) + "-byte activation SRAM";
    case Space::kWgt: return "the " + std::to_string(capacity) + "-byte weight SRAM";
    case Space::kAcc: return "the " + std::to_string(capacity) + "-word accumulator SRAM";
    case Space::kParam: return "the " + std::to_string(capacity) + "-byte parameter SRAM";
    case Space::kDram: return "the program's " + std::to_string(capacity) + "-byte DRAM";
  }
  return "?";
}

/// Every field inside its ISA-table range (decoded programs always are; programs built
/// in memory need not be).
template <typename Insn>
void check_fields(const Insn& insn, std::uint32_t index) {
  insn.visit_fields([&](const isa::FieldInfo& f, std::int64_t v) {
    if (v < f.min || v > f.max) {
      fail<Insn>(index, "field " + std::string(f.name) + " = " + std::to_string(v) + " is out of range [" +
                            std::to_string(f.min) + ", " + std::to_string(f.max) + "]");
    }
  });
}

/// Every access inside its space.
template <typename Insn>
void check_bounds(const Effects& fx, const MachineState& m, std::uint32_t index) {
  for (const Access& a : fx) {
    const std::uint64_t cap = m.capacity(a.region.space);
    if (a.region.end() > cap) {
      throw ExecutionError(std::string(Insn::kMnemonic) + (a.kind == AccessKind::kRead ? " reads " : " writes ") +
                               std::string(space_name(a.region.space)) + " " +
                               range_text(a.region.base, a.region.end()) + " past " +
                               capacity_text(a.region.space, cap),
                           index);
    }
  }
}

/// The vector unit streams a window or copy instruction: it reads groups of its input
/// while it writes earlier groups of its output, so the two ACT ranges (the first read and
/// the last write of fx) must not share a byte.
template <typename Insn>
void check_disjoint(const Effects& fx, std::uint32_t index, const char* input, const char* output) {
  const Region& in = fx.accesses[0].region;
  const Region& out = fx.accesses[fx.num_accesses - 1].region;
  if (in.base < out.end() && out.base < in.end()) {
    fail<Insn>(index, std::string(input) + " " + range_text(in.base, in.end()) + " and " + output + " " +
                          range_text(out.base, out.end()) + " overlap");
  }
}

template <typename Insn>
void check_kernel(const Insn& insn, const MachineState& m, std::uint32_t index) {
  if (insn.kernel_h > m.config.max_kernel || insn.kernel_w > m.config.max_kernel) {
    fail<Insn>(index, "kernel " + std::to_string(insn.kernel_h) + "x" + std::to_string(insn.kernel_w) +
                          " exceeds max_kernel = " + std::to_string(m.config.max_kernel) + " of the hardware config");
  }
}

std::uint64_t u(std::int64_t v) { return static_cast<std::uint64_t>(v); }

const std::uint8_t* record_at(const MachineState& m, std::int64_t param_addr) { return m.param.data() + param_addr; }

/// The output range of a requantizing record's clips. lo <= hi, else the clamp would
/// produce values outside the output type (a record no compiler emits; refused rather
/// than silently truncated).
template <typename Insn, typename Record>
OutputSpec output_spec(const MachineState& m, DType type, const Record& r, std::uint32_t index) {
  OutputSpec out{type, m.config.rounding_mode, r.clip_lo, r.clip_hi};
  if (out.lo() > out.hi()) {
    fail<Insn>(index, "parameter record clips [" + std::to_string(r.clip_lo) + ", " + std::to_string(r.clip_hi) +
                          "] leave no value of " + std::string(dtype_info(type).name));
  }
  return out;
}

DType dtype(std::int64_t raw) { return static_cast<DType>(raw); }

}  // namespace

// ---------------------------------------------------------------------------
// LOAD / STORE
// ---------------------------------------------------------------------------

Effects describe(const isa::Load& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  Effects fx;
  const Space dst = space_of(static_cast<isa::Buffer>(insn.buffer));
  if (!insn.fill_zero) {
    fx.add(Space::kDram, AccessKind::kRead, u(insn.dram_addr), u(insn.row_bytes), u(insn.rows), u(insn.dram_stride));
    fx.dram_read_bytes = u(insn.rows) * u(insn.row_bytes);
  }
  if (dst == Space::kAcc) {
    if (insn.row_bytes % 4 != 0) {
      fail<isa::Load>(index, "row_bytes = " + std::to_string(insn.row_bytes) +
                                 " is not a multiple of 4 (ACC rows are int32 words)");
    }
    fx.add(dst, AccessKind::kWrite, u(insn.sram_addr), u(insn.row_bytes) / 4, u(insn.rows), u(insn.sram_stride));
  } else {
    fx.add(dst, AccessKind::kWrite, u(insn.sram_addr), u(insn.row_bytes), u(insn.rows), u(insn.sram_stride));
  }
  check_bounds<isa::Load>(fx, m, index);
  return fx;
}

Effects perform(const isa::Load& insn, MachineState& m, std::uint32_t /*index*/, Effects fx,
                const ExecOptions& options) {
  if (options.weights != nullptr) {
    if (options.weights->holds(insn)) return fx;  // these bytes are in WGT already
    options.weights->before_write(fx);
    if (options.weights->defer(insn, m)) return fx;  // constants: WGT gets them when they are needed
  }
  const auto buffer = static_cast<isa::Buffer>(insn.buffer);
  const std::uint64_t row_bytes = u(insn.row_bytes);
  if (buffer == isa::Buffer::ACC) {
    // int32 words widened to accumulators. A DRAM row read for every SRAM row (stride 0:
    // the bias of every pixel of a tile) is decoded once.
    const std::uint64_t words = row_bytes / 4;
    std::vector<std::int64_t> row(insn.fill_zero || insn.dram_stride == 0 ? words : 0, 0);
    if (!insn.fill_zero && insn.dram_stride == 0) unpack(m.dram_bytes().data() + insn.dram_addr, DType::I32, words, row.data());
    for (std::uint64_t r = 0; r < u(insn.rows); ++r) {
      std::int64_t* dst = m.acc.data() + u(insn.sram_addr) + r * u(insn.sram_stride);
      if (row.empty()) {
        unpack(m.dram_bytes().data() + u(insn.dram_addr) + r * u(insn.dram_stride), DType::I32, words, dst);
      } else {
        std::copy(row.begin(), row.end(), dst);
      }
    }
    return fx;
  }
  for (std::uint64_t r = 0; r < u(insn.rows); ++r) {
    const std::uint8_t* src = m.dram_bytes().data() + u(insn.dram_addr) + r * u(insn.dram_stride);
    const std::uint64_t dst = u(insn.sram_addr) + r * u(insn.sram_stride);
    std::uint8_t* bytes = (buffer == isa::Buffer::ACT ? m.act : buffer == isa::Buffer::WGT ? m.wgt : m.param).data() + dst;
    if (insn.fill_zero) {
      std::memset(bytes, 0, row_bytes);
    } else {
      std::memcpy(bytes, src, row_bytes);
    }
  }
  return fx;
}

Effects describe(const isa::Store& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.sram_addr), u(insn.row_bytes), u(insn.rows), u(insn.sram_stride));
  fx.add(Space::kDram, AccessKind::kWrite, u(insn.dram_addr), u(insn.row_bytes), u(insn.rows), u(insn.dram_stride));
  fx.dram_write_bytes = u(insn.rows) * u(insn.row_bytes);
  check_bounds<isa::Store>(fx, m, index);
  return fx;
}

Effects perform(const isa::Store& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions& options) {
  if (options.weights != nullptr) options.weights->before_write(fx);  // deferred LOADs of these DRAM bytes
  for (std::uint64_t r = 0; r < u(insn.rows); ++r) {
    std::memcpy(m.dram_bytes().data() + u(insn.dram_addr) + r * u(insn.dram_stride),
                m.act.data() + u(insn.sram_addr) + r * u(insn.sram_stride), u(insn.row_bytes));
  }
  return fx;
}

// ---------------------------------------------------------------------------
// MAC
// ---------------------------------------------------------------------------

namespace {

struct MacPlan {
  DType act_type;
  DType wgt_type;
  std::int64_t in_h;
  std::int64_t in_w;
  std::uint64_t act_elements;
  std::uint64_t wgt_elements;
  std::uint64_t acc_words;
};

MacPlan plan_mac(const isa::Mac& insn) {
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  MacPlan p{};
  p.act_type = isa::mac_act_type(mode, insn.act_unsigned != 0);
  p.wgt_type = isa::mac_wgt_type(mode);
  p.in_h = (insn.out_h - 1) * insn.stride_h + (insn.kernel_h - 1) * insn.dilation + 1;
  p.in_w = (insn.out_w - 1) * insn.stride_w + (insn.kernel_w - 1) * insn.dilation + 1;
  p.act_elements = u(p.in_h) * u(p.in_w) * u(insn.in_c);
  p.wgt_elements = u(insn.out_c) * u(insn.kernel_h) * u(insn.kernel_w) * (insn.depthwise ? 1 : u(insn.in_c));
  p.acc_words = u(insn.out_h) * u(insn.out_w) * u(insn.out_c);
  return p;
}

}  // namespace

Effects describe(const isa::Mac& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  const auto mode = static_cast<isa::MacMode>(insn.mode);
  const isa::MacModeInfo& row = isa::mac_mode_info(mode);
  if (!isa::mac_mode_supported(mode, m.config)) {
    fail<isa::Mac>(index, "mode " + std::string(row.name) + " is not supported by the hardware config (" +
                              std::string(row.flag) + " = false)");
  }
  if (!row.has_unsigned && insn.act_unsigned) {
    fail<isa::Mac>(index, "mode " + std::string(row.name) + " takes signed " + std::string(dtype_info(row.act).name) +
                              " activations; act_unsigned must be 0");
  }
  if (insn.depthwise && insn.in_c != insn.out_c) {
    fail<isa::Mac>(index, "depthwise needs in_c == out_c (in_c = " + std::to_string(insn.in_c) +
                              ", out_c = " + std::to_string(insn.out_c) + ")");
  }
  check_kernel(insn, m, index);
  const MacPlan p = plan_mac(insn);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.act_addr), storage_bytes(p.act_type, p.act_elements));
  fx.add(Space::kWgt, AccessKind::kRead, u(insn.wgt_addr), storage_bytes(p.wgt_type, p.wgt_elements));
  if (insn.accumulate) fx.add(Space::kAcc, AccessKind::kRead, u(insn.acc_addr), p.acc_words);
  fx.add(Space::kAcc, AccessKind::kWrite, u(insn.acc_addr), p.acc_words);
  fx.macs = p.acc_words * u(insn.kernel_h) * u(insn.kernel_w) * (insn.depthwise ? 1 : u(insn.in_c));
  check_bounds<isa::Mac>(fx, m, index);
  return fx;
}

Effects perform(const isa::Mac& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions& options) {
  const MacPlan p = plan_mac(insn);
  detail::MacGeometry g;
  g.in_h = p.in_h;
  g.in_w = p.in_w;
  g.in_c = insn.in_c;
  g.out_h = insn.out_h;
  g.out_w = insn.out_w;
  g.out_c = insn.out_c;
  g.kernel_h = insn.kernel_h;
  g.kernel_w = insn.kernel_w;
  g.stride_h = insn.stride_h;
  g.stride_w = insn.stride_w;
  g.dilation = insn.dilation;
  g.depthwise = insn.depthwise != 0;
  g.accumulate = insn.accumulate != 0;
  const unsigned threads = fx.macs >= options.parallel_min_macs ? options.threads : 1u;
  detail::run_mac(g, p.act_type, m.act.data() + insn.act_addr, p.wgt_type, m.wgt.data() + insn.wgt_addr,
                  m.acc.data() + insn.acc_addr, threads, options.weights, u(insn.wgt_addr));
  return fx;
}

// ---------------------------------------------------------------------------
// REQUANT
// ---------------------------------------------------------------------------

Effects describe(const isa::Requant& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  const std::uint64_t n = u(insn.pixels) * u(insn.channels);
  Effects fx;
  fx.add(Space::kAcc, AccessKind::kRead, u(insn.acc_addr), n);
  fx.add(Space::kParam, AccessKind::kRead, u(insn.param_addr), isa::RequantRecord::size(u(insn.channels)));
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.act_addr), storage_bytes(dtype(insn.out_type), n));
  fx.elements = n;
  check_bounds<isa::Requant>(fx, m, index);
  return fx;
}

namespace {

/// Elements from which a vector-unit instruction shares its work between threads. The
/// work per element is small next to moving the element between cores: on the 2-vCPU
/// development VM, splitting the ~8K-element requantizations of ResNet-18 tiles gained
/// nothing, so only much larger instructions are split.
constexpr std::uint64_t kParallelMinElements = std::uint64_t{1} << 16;

unsigned vector_threads(std::uint64_t elements, const ExecOptions& options) {
  return elements >= kParallelMinElements ? std::max(1u, options.threads) : 1u;
}

/// Whether results of type t are written straight into ACT bytes (one byte per element);
/// the other types go through int32 and pack().
bool byte_type(DType t) { return t == DType::I8 || t == DType::U8; }

}  // namespace

Effects perform(const isa::Requant& insn, MachineState& m, std::uint32_t index, Effects fx, const ExecOptions& options) {
  const DType type = dtype(insn.out_type);
  const std::uint8_t* rec = record_at(m, insn.param_addr);
  // The clips alone: the shifts are read where they lie, without a copy.
  const OutputSpec out = output_spec<isa::Requant>(m, type, isa::RequantRecord::decode(rec, 0), index);
  const AccSpec acc_spec = m.config.acc_spec();
  const std::int8_t* shifts = isa::RequantRecord::shifts_at(rec);
  const std::int64_t* acc = m.acc.data() + insn.acc_addr;
  std::uint8_t* act = m.act.data() + insn.act_addr;
  const auto pixels = static_cast<std::size_t>(insn.pixels), channels = static_cast<std::size_t>(insn.channels);
  const auto row = static_cast<std::ptrdiff_t>(channels);
  std::vector<std::int32_t> wide(byte_type(type) ? 0 : static_cast<std::size_t>(fx.elements));
  const unsigned threads = vector_threads(fx.elements, options);
  const auto parts = static_cast<unsigned>(std::min<std::size_t>(detail::parts_for(threads), pixels));
  std::vector<RequantCounts> counts(parts);
  detail::for_parts(threads, parts, [&](unsigned part) {
    const std::size_t p0 = pixels * part / parts, rows = pixels * (part + 1) / parts - p0;
    const std::int64_t* a = acc + p0 * channels;
    const std::size_t at = p0 * channels;
    switch (type) {
      case DType::I8:
        counts[part] = requantize_rows(a, row, rows, channels, shifts, acc_spec, out,
                                       reinterpret_cast<std::int8_t*>(act) + at, row);
        break;
      case DType::U8: counts[part] = requantize_rows(a, row, rows, channels, shifts, acc_spec, out, act + at, row); break;
      default:
        counts[part] = requantize_rows(a, row, rows, channels, shifts, acc_spec, out, wide.data() + at, row);
        break;
    }
  });
  if (!byte_type(type)) pack(act, type, wide.size(), wide.data());
  RequantCounts total;
  for (const RequantCounts& c : counts) total += c;
  fx.acc_overflows = total.overflows;
  fx.saturations = total.saturations;
  return fx;
}

// ---------------------------------------------------------------------------
// Vector unit
// ---------------------------------------------------------------------------

Effects describe(const isa::VAdd& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  const std::uint64_t n = u(insn.count);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.a_addr), storage_bytes(dtype(insn.a_type), n));
  fx.add(Space::kAct, AccessKind::kRead, u(insn.b_addr), storage_bytes(dtype(insn.b_type), n));
  fx.add(Space::kParam, AccessKind::kRead, u(insn.param_addr), isa::AddRecord::kSize);
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.y_addr), storage_bytes(dtype(insn.y_type), n));
  fx.elements = n;
  check_bounds<isa::VAdd>(fx, m, index);
  return fx;
}

namespace {

/// y = eltwise_add(a, b) over elements [begin, end) (begin even: 4-bit elements start on a
/// byte), through chunks of unpacked int32; returns the saturations.
std::uint64_t add_range(MachineState& m, const isa::VAdd& insn, const AddShifts& sh, const OutputSpec& out,
                        std::uint64_t begin, std::uint64_t end) {
  constexpr std::uint64_t kChunk = 1024;
  const DType a_type = dtype(insn.a_type), b_type = dtype(insn.b_type), y_type = dtype(insn.y_type);
  std::int32_t a[kChunk], b[kChunk], y[kChunk];
  std::uint64_t saturations = 0;
  for (std::uint64_t off = begin; off < end; off += kChunk) {
    const std::uint64_t len = std::min(kChunk, end - off);
    unpack(m.act.data() + insn.a_addr + storage_bytes(a_type, off), a_type, len, a);
    unpack(m.act.data() + insn.b_addr + storage_bytes(b_type, off), b_type, len, b);
    saturations += eltwise_add_run(a, b, static_cast<std::size_t>(len), sh, out, y);
    pack(m.act.data() + insn.y_addr + storage_bytes(y_type, off), y_type, len, y);
  }
  return saturations;
}

/// How y lies against the inputs a and b.
enum class AddOverlap {
  kNone,      ///< y shares no byte with a or b
  kInPlace,   ///< y is a or b itself (same address and type) and shares no byte with the other
  kPartial,   ///< any other overlap
};

AddOverlap add_overlap(const isa::VAdd& insn) {
  const std::uint64_t n = u(insn.count);
  const std::uint64_t y0 = u(insn.y_addr), y1 = y0 + storage_bytes(dtype(insn.y_type), n);
  AddOverlap result = AddOverlap::kNone;
  for (const auto& [addr, type] : {std::pair{insn.a_addr, insn.a_type}, std::pair{insn.b_addr, insn.b_type}}) {
    const std::uint64_t x0 = u(addr), x1 = x0 + storage_bytes(dtype(type), n);
    if (y1 <= x0 || x1 <= y0) continue;
    if (x0 != y0 || type != insn.y_type) return AddOverlap::kPartial;
    result = AddOverlap::kInPlace;
  }
  return result;
}

/// eltwise_add_run on the ACT bytes themselves, for a, b and y all of the 8-bit type T
/// (y disjoint from a and b); returns the saturations.
template <typename T>
std::uint64_t add_bytes(MachineState& m, const isa::VAdd& insn, const AddShifts& sh, const OutputSpec& out) {
  std::uint8_t* act = m.act.data();
  return eltwise_add_run(reinterpret_cast<const T*>(act + insn.a_addr), reinterpret_cast<const T*>(act + insn.b_addr),
                         static_cast<std::size_t>(insn.count), sh, out, reinterpret_cast<T*>(act + insn.y_addr));
}

}  // namespace

Effects perform(const isa::VAdd& insn, MachineState& m, std::uint32_t index, Effects fx, const ExecOptions& options) {
  const DType y_type = dtype(insn.y_type);
  const isa::AddRecord rec = isa::AddRecord::decode(record_at(m, insn.param_addr));
  const OutputSpec out = output_spec<isa::VAdd>(m, y_type, rec, index);
  const AddShifts sh{rec.shift_a, rec.shift_b, rec.shift_y};
  for (const int s : {sh.shift_a, sh.shift_b}) {
    if (s < 0 || s > 31) {
      fail<isa::VAdd>(index, "parameter record shifts shift_a = " + std::to_string(sh.shift_a) +
                                 ", shift_b = " + std::to_string(sh.shift_b) + " must lie in [0, 31]");
    }
  }
  const auto n = static_cast<std::size_t>(insn.count);
  const AddOverlap overlap = add_overlap(insn);
  const unsigned threads = vector_threads(n, options);
  const bool same_type = insn.a_type == insn.y_type && insn.b_type == insn.y_type;
  if (overlap == AddOverlap::kNone && threads == 1 && same_type && byte_type(y_type)) {
    // Disjoint 8-bit operands of one type: from ACT to ACT without widening.
    fx.saturations = y_type == DType::I8 ? add_bytes<std::int8_t>(m, insn, sh, out)
                                         : add_bytes<std::uint8_t>(m, insn, sh, out);
    return fx;
  }
  if (overlap == AddOverlap::kPartial) {
    // y overlaps an input elsewhere: read everything before writing anything.
    std::vector<std::int32_t> a(n), b(n), y(n);
    unpack(m.act.data() + insn.a_addr, dtype(insn.a_type), n, a.data());
    unpack(m.act.data() + insn.b_addr, dtype(insn.b_type), n, b.data());
    fx.saturations = eltwise_add_run(a.data(), b.data(), n, sh, out, y.data());
    pack(m.act.data() + insn.y_addr, y_type, n, y.data());
    return fx;
  }
  const unsigned parts = detail::parts_for(threads);
  std::vector<std::uint64_t> saturations(parts);
  detail::for_parts(threads, parts, [&](unsigned part) {
    // Even part boundaries: 4-bit elements of different parts never share a byte.
    const std::uint64_t begin = (n * part / parts) & ~std::uint64_t{1};
    const std::uint64_t end = part + 1 == parts ? n : (n * (part + 1) / parts) & ~std::uint64_t{1};
    saturations[part] = add_range(m, insn, sh, out, begin, end);
  });
  fx.saturations = 0;
  for (const std::uint64_t s : saturations) fx.saturations += s;
  return fx;
}

Effects describe(const isa::VMaxPool& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  check_kernel(insn, m, index);
  const DType t = dtype(insn.type);
  const std::uint64_t c = u(insn.channels);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.in_addr), storage_bytes(t, u(insn.in_h) * u(insn.in_w) * c));
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.out_addr), storage_bytes(t, u(insn.out_h) * u(insn.out_w) * c));
  fx.elements = u(insn.out_h) * u(insn.out_w) * c;
  check_bounds<isa::VMaxPool>(fx, m, index);
  check_disjoint<isa::VMaxPool>(fx, index, "input", "output");
  return fx;
}

namespace {

/// y[oh][ow][c] = max of x over the window (positions in the padding skipped); y holds
/// the type's minimum on entry, which stays where a window lies wholly in the padding.
template <typename T>
void max_pool(const isa::VMaxPool& insn, const T* x, T* y) {
  const std::int64_t ch = insn.channels;
  for (std::int64_t oh = 0; oh < insn.out_h; ++oh) {
    for (std::int64_t ow = 0; ow < insn.out_w; ++ow) {
      T* __restrict o = y + (oh * insn.out_w + ow) * ch;
      for (std::int64_t kh = 0; kh < insn.kernel_h; ++kh) {
        const std::int64_t ih = oh * insn.stride_h + kh - insn.pad_top;
        if (ih < 0 || ih >= insn.in_h) continue;
        for (std::int64_t kw = 0; kw < insn.kernel_w; ++kw) {
          const std::int64_t iw = ow * insn.stride_w + kw - insn.pad_left;
          if (iw < 0 || iw >= insn.in_w) continue;
          const T* __restrict in = x + (ih * insn.in_w + iw) * ch;
          for (std::int64_t c = 0; c < ch; ++c) o[c] = std::max(o[c], in[c]);
        }
      }
    }
  }
}

/// max_pool of an 8-bit type on the ACT bytes themselves (no widening); y is written after
/// all of x is read.
template <typename T>
void max_pool_bytes(const isa::VMaxPool& insn, MachineState& m, std::size_t n) {
  std::vector<T> y(n, std::numeric_limits<T>::min());
  max_pool(insn, reinterpret_cast<const T*>(m.act.data() + insn.in_addr), y.data());
  std::memcpy(m.act.data() + insn.out_addr, y.data(), n);
}

}  // namespace

Effects perform(const isa::VMaxPool& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions&) {
  const DType t = dtype(insn.type);
  const auto n = static_cast<std::size_t>(fx.elements);
  if (t == DType::I8) {
    max_pool_bytes<std::int8_t>(insn, m, n);
    return fx;
  }
  if (t == DType::U8) {
    max_pool_bytes<std::uint8_t>(insn, m, n);
    return fx;
  }
  std::vector<std::int32_t> x(static_cast<std::size_t>(insn.in_h * insn.in_w * insn.channels));
  std::vector<std::int32_t> y(n, static_cast<std::int32_t>(dtype_info(t).min));
  unpack(m.act.data() + insn.in_addr, t, x.size(), x.data());
  max_pool(insn, x.data(), y.data());
  pack(m.act.data() + insn.out_addr, t, y.size(), y.data());
  return fx;
}

namespace {
struct AvgPlan {
  std::int64_t in_h;
  std::int64_t in_w;
  std::int64_t window;
};
AvgPlan plan_avg(const isa::VAvgPool& insn) {
  return {(insn.out_h - 1) * insn.stride_h + insn.kernel_h, (insn.out_w - 1) * insn.stride_w + insn.kernel_w,
          insn.kernel_h * insn.kernel_w};
}
}  // namespace

Effects describe(const isa::VAvgPool& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  const AvgPlan p = plan_avg(insn);
  const int s = static_cast<int>(m.config.avgpool_shift);
  if (!avgpool_multiplier(p.window, s)) {
    fail<isa::VAvgPool>(index, "the multiplier M = round(2^" + std::to_string(s) + " / " + std::to_string(p.window) +
                                   ") of a " + std::to_string(insn.kernel_h) + "x" + std::to_string(insn.kernel_w) +
                                   " window does not fit in 16 bits (1 <= M <= 65535)");
  }
  const std::uint64_t c = u(insn.channels);
  const std::uint64_t n = u(insn.out_h) * u(insn.out_w) * c;
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.in_addr), storage_bytes(dtype(insn.in_type), u(p.in_h) * u(p.in_w) * c));
  fx.add(Space::kParam, AccessKind::kRead, u(insn.param_addr), isa::AvgPoolRecord::kSize);
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.out_addr), storage_bytes(dtype(insn.out_type), n));
  fx.elements = n;
  check_bounds<isa::VAvgPool>(fx, m, index);
  check_disjoint<isa::VAvgPool>(fx, index, "input", "output");
  return fx;
}

Effects perform(const isa::VAvgPool& insn, MachineState& m, std::uint32_t index, Effects fx, const ExecOptions&) {
  const AvgPlan p = plan_avg(insn);
  const DType out_type = dtype(insn.out_type);
  const isa::AvgPoolRecord rec = isa::AvgPoolRecord::decode(record_at(m, insn.param_addr));
  const OutputSpec out = output_spec<isa::VAvgPool>(m, out_type, rec, index);
  const int shift = rec.shift;
  const std::int64_t mult = *avgpool_multiplier(p.window, static_cast<int>(m.config.avgpool_shift));
  const std::int64_t ch = insn.channels;
  std::vector<std::int32_t> x(static_cast<std::size_t>(p.in_h * p.in_w * ch));
  std::vector<std::int32_t> y(static_cast<std::size_t>(fx.elements));
  std::vector<std::int64_t> sum(static_cast<std::size_t>(ch));
  unpack(m.act.data() + insn.in_addr, dtype(insn.in_type), x.size(), x.data());
  std::uint64_t saturations = 0;
  for (std::int64_t oh = 0; oh < insn.out_h; ++oh) {
    for (std::int64_t ow = 0; ow < insn.out_w; ++ow) {
      std::fill(sum.begin(), sum.end(), 0);
      for (std::int64_t kh = 0; kh < insn.kernel_h; ++kh) {
        for (std::int64_t kw = 0; kw < insn.kernel_w; ++kw) {
          const std::int32_t* in = x.data() + ((oh * insn.stride_h + kh) * p.in_w + ow * insn.stride_w + kw) * ch;
          for (std::int64_t c = 0; c < ch; ++c) sum[static_cast<std::size_t>(c)] += in[c];
        }
      }
      std::int32_t* o = y.data() + (oh * insn.out_w + ow) * ch;
      for (std::int64_t c = 0; c < ch; ++c) {
        bool sat = false;
        o[c] = static_cast<std::int32_t>(avgpool(sum[static_cast<std::size_t>(c)], mult, shift, out, &sat));
        saturations += sat;
      }
    }
  }
  pack(m.act.data() + insn.out_addr, out_type, y.size(), y.data());
  fx.saturations = saturations;
  return fx;
}

Effects describe(const isa::VUpsample& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  const DType t = dtype(insn.type);
  const std::uint64_t n = u(insn.in_h) * u(insn.in_w) * u(insn.channels);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.in_addr), storage_bytes(t, n));
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.out_addr), storage_bytes(t, 4 * n));
  fx.elements = 4 * n;
  check_bounds<isa::VUpsample>(fx, m, index);
  check_disjoint<isa::VUpsample>(fx, index, "input", "output");
  return fx;
}

Effects perform(const isa::VUpsample& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions&) {
  const DType t = dtype(insn.type);
  const std::int64_t ch = insn.channels;
  const std::int64_t in_w = insn.in_w;
  std::vector<std::int32_t> x(static_cast<std::size_t>(insn.in_h * in_w * ch));
  std::vector<std::int32_t> y(static_cast<std::size_t>(fx.elements));
  unpack(m.act.data() + insn.in_addr, t, x.size(), x.data());
  for (std::int64_t oh = 0; oh < 2 * insn.in_h; ++oh) {
    for (std::int64_t ow = 0; ow < 2 * in_w; ++ow) {
      std::copy_n(x.data() + ((oh / 2) * in_w + ow / 2) * ch, ch, y.data() + (oh * 2 * in_w + ow) * ch);
    }
  }
  pack(m.act.data() + insn.out_addr, t, y.size(), y.data());
  return fx;
}

Effects describe(const isa::VCopy& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.src_addr), u(insn.bytes));
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.dst_addr), u(insn.bytes));
  fx.elements = u(insn.bytes);
  check_bounds<isa::VCopy>(fx, m, index);
  check_disjoint<isa::VCopy>(fx, index, "source", "destination");
  return fx;
}

Effects perform(const isa::VCopy& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions&) {
  std::memcpy(m.act.data() + insn.dst_addr, m.act.data() + insn.src_addr, u(insn.bytes));
  return fx;
}

Effects describe(const isa::VLut& insn, const MachineState& m, std::uint32_t index) {
  check_fields(insn, index);
  if (m.config.lut_lanes == 0) fail<isa::VLut>(index, "the hardware config has no lookup-table unit (lut_lanes = 0)");
  const DType in = dtype(insn.in_type);
  const std::uint64_t n = u(insn.count);
  Effects fx;
  fx.add(Space::kAct, AccessKind::kRead, u(insn.in_addr), storage_bytes(in, n));
  fx.add(Space::kParam, AccessKind::kRead, u(insn.param_addr), isa::LutRecord::size(in));
  fx.add(Space::kAct, AccessKind::kWrite, u(insn.out_addr), storage_bytes(dtype(insn.out_type), n));
  fx.elements = n;
  check_bounds<isa::VLut>(fx, m, index);
  return fx;
}

Effects perform(const isa::VLut& insn, MachineState& m, std::uint32_t /*index*/, Effects fx, const ExecOptions&) {
  const DType in = dtype(insn.in_type);
  const DType out = dtype(insn.out_type);
  const isa::LutRecord rec = isa::LutRecord::decode(record_at(m, insn.param_addr), in);
  const auto n = static_cast<std::size_t>(insn.count);
  std::vector<std::int32_t> x(n);
  unpack(m.act.data() + insn.in_addr, in, n, x.data());
  std::uint64_t saturations = 0;
  for (std::int32_t& v : x) {
    bool sat = false;
    v = static_cast<std::int32_t>(lut_lookup(rec.entry, v, in, out, m.config.rounding_mode, &sat));
    saturations += sat;
  }
  pack(m.act.data() + insn.out_addr, out, n, x.data());
  fx.saturations = saturations;
  return fx;
}

// ---------------------------------------------------------------------------
// SYNC / END: the scheduler waits; nothing happens to data.
// ---------------------------------------------------------------------------

Effects describe(const isa::Sync& insn, const MachineState&, std::uint32_t index) {
  check_fields(insn, index);
  return {};
}
Effects perform(const isa::Sync&, MachineState&, std::uint32_t, Effects fx, const ExecOptions&) {
  return fx;
}
Effects describe(const isa::End& insn, const MachineState&, std::uint32_t index) {
  check_fields(insn, index);
  return {};
}
Effects perform(const isa::End&, MachineState&, std::uint32_t, Effects fx, const ExecOptions&) {
  return fx;
}

// ---------------------------------------------------------------------------
// Dispatch over the variant
// ---------------------------------------------------------------------------

void check_instruction(const isa::Instruction& insn, std::uint32_t index) {
  std::visit(
      [&](const auto& i) {
        using Insn = std::decay_t<decltype(i)>;
        check_fields(i, index);
        const std::string error = isa::token_flag_error(Insn::kQueue, i.tokens);
        if (!error.empty()) fail<Insn>(index, error);
      },
      insn);
}

Effects describe(const isa::Instruction& insn, const MachineState& m, std::uint32_t index) {
  return std::visit([&](const auto& i) { return describe(i, m, index); }, insn);
}

bool keeps_half_of_last_byte(const isa::Instruction& insn) {
  const auto odd_4bit = [](std::int64_t type, std::uint64_t elements) {
    return dtype_info(dtype(type)).bits == 4 && elements % 2 == 1;
  };
  if (const auto* r = std::get_if<isa::Requant>(&insn)) return odd_4bit(r->out_type, u(r->pixels) * u(r->channels));
  if (const auto* a = std::get_if<isa::VAdd>(&insn)) return odd_4bit(a->y_type, u(a->count));
  if (const auto* p = std::get_if<isa::VMaxPool>(&insn)) return odd_4bit(p->type, u(p->out_h) * u(p->out_w) * u(p->channels));
  if (const auto* p = std::get_if<isa::VAvgPool>(&insn)) {
    return odd_4bit(p->out_type, u(p->out_h) * u(p->out_w) * u(p->channels));
  }
  if (const auto* l = std::get_if<isa::VLut>(&insn)) return odd_4bit(l->out_type, u(l->count));
  return false;  // whole bytes or words (an upsampled 4-bit tile has an even count)
}

Effects perform(const isa::Instruction& insn, MachineState& m, std::uint32_t index, const Effects& fx,
                const ExecOptions& options) {
  return std::visit([&](const auto& i) { return perform(i, m, index, fx, options); }, insn);
}

Effects execute(const isa::Instruction& insn, MachineState& m, std::uint32_t index, const ExecOptions& options) {
  return std::visit([&](const auto& i) { return perform(i, m, index, describe(i, m, index), options); }, insn);
}

}  // namespace dla::sim

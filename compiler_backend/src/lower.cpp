// Lowering: tiling to the SRAMs, constants, DRAM allocation and pipelined emission.
#include "dla/compiler/lower.hpp"

#include <algorithm>

#include "dla/error.hpp"
#include "dla/mac_modes.hpp"
#include "dla/param_records.hpp"

namespace dla::compiler {
namespace {

using isa::Buffer;
using isa::Instruction;
using i64 = std::int64_t;

// ISA limits the tiler respects, read from the field table (dla/isa.hpp). LOAD and STORE
// share their DMA field ranges.
constexpr i64 kMaxRowBytes = isa::Load::field("row_bytes").max;
constexpr i64 kMaxRows = isa::Load::field("rows").max;
constexpr i64 kMaxDramStride = isa::Load::field("dram_stride").max;
constexpr i64 kMaxSramStride = isa::Load::field("sram_stride").max;
constexpr i64 kMaxTileSide = isa::Mac::field("out_h").max;
constexpr i64 kMaxChannels = isa::Mac::field("out_c").max;
constexpr i64 kMaxMacStride = isa::Mac::field("stride_h").max;
constexpr i64 kMaxDilation = isa::Mac::field("dilation").max;
constexpr i64 kMaxPoolChannels = isa::VMaxPool::field("channels").max;
constexpr i64 kMaxPoolKernel = isa::VMaxPool::field("kernel_h").max;
constexpr i64 kMaxPoolStride = isa::VMaxPool::field("stride_h").max;
constexpr i64 kMaxPoolPad = isa::VMaxPool::field("pad_top").max;
constexpr i64 kMaxAvgPoolWindow = isa::VAvgPool::field("kernel_h").max;
constexpr i64 kMaxVectorCount = isa::VAdd::field("count").max;
static_assert(kMaxRowBytes == isa::Store::field("row_bytes").max && kMaxRows == isa::Store::field("rows").max &&
              kMaxDramStride == isa::Store::field("dram_stride").max &&
              kMaxSramStride == isa::Store::field("sram_stride").max);
static_assert(kMaxPoolStride == isa::VAvgPool::field("stride_h").max);
constexpr i64 kContiguousChunk = 8192;
/// What an instruction costs, in bytes moved, when the tiler weighs tilings (its issue and
/// synchronization overhead, on the hardware and in the emulator).
constexpr i64 kInstructionCostBytes = 8192;

/// Halves a channel count, keeping it even for 4-bit types (min == 2) and >= min.
i64 even_half(i64 v, i64 min) {
  i64 h = (v + 1) / 2;
  if (min == 2) h += h % 2;
  return std::max(min, h);
}

[[noreturn]] void refuse(const Node& n, const std::string& why) {
  throw Error(std::string(op_kind_name(n.kind)) + " '" + n.name + "': " + why);
}

i64 nbytes(DType t, i64 count) { return static_cast<i64>(storage_bytes(t, static_cast<std::uint64_t>(count))); }
bool is4(DType t) { return dtype_info(t).bits == 4; }
i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
i64 align4(i64 v) { return (v + 3) / 4 * 4; }

/// An activation tensor in DRAM: [N][H][W][C], channels innermost.
struct View {
  i64 dram = 0;
  i64 N = 1, H = 1, W = 1, C = 1;
  DType dtype = DType::I8;
  int frac = 0;
  /// Byte address of element (n, h, w, c); the element index is even for 4-bit types.
  i64 addr(i64 n, i64 h, i64 w, i64 c) const { return dram + nbytes(dtype, ((n * H + h) * W + w) * C + c); }
  i64 elements() const { return N * H * W * C; }
};

// ---------------------------------------------------------------------------------
// DMA emission
// ---------------------------------------------------------------------------------

Instruction dma(bool store, Buffer buf, i64 sram, i64 dram, i64 row_bytes, i64 rows, i64 dram_stride, i64 sram_stride,
                bool fill_zero = false) {
  if (store) {
    isa::Store s;
    s.sram_addr = sram;
    s.dram_addr = dram;
    s.row_bytes = row_bytes;
    s.rows = rows;
    s.dram_stride = rows > 1 ? dram_stride : 0;
    s.sram_stride = rows > 1 ? sram_stride : 0;
    return s;
  }
  isa::Load l;
  l.buffer = static_cast<i64>(buf);
  l.fill_zero = fill_zero ? 1 : 0;
  l.sram_addr = sram;
  l.dram_addr = fill_zero ? 0 : dram;
  l.row_bytes = row_bytes;
  l.rows = rows;
  l.dram_stride = rows > 1 && !fill_zero ? dram_stride : 0;
  l.sram_stride = rows > 1 ? sram_stride : 0;
  return l;
}

/// Moves `bytes` contiguous bytes between DRAM and a byte-addressed SRAM buffer
/// (or zero-fills the SRAM range).
void copy_contiguous(std::vector<Instruction>& out, bool store, Buffer buf, i64 sram, i64 dram, i64 bytes,
                     bool fill_zero = false) {
  if (bytes <= kMaxRowBytes) {
    out.push_back(dma(store, buf, sram, dram, bytes, 1, 0, 0, fill_zero));
    return;
  }
  const i64 rows = bytes / kContiguousChunk;
  for (i64 r0 = 0; r0 < rows; r0 += kMaxRows) {
    const i64 n = std::min(kMaxRows, rows - r0);
    out.push_back(dma(store, buf, sram + r0 * kContiguousChunk, dram + r0 * kContiguousChunk, kContiguousChunk, n,
                      kContiguousChunk, kContiguousChunk, fill_zero));
  }
  const i64 rem = bytes - rows * kContiguousChunk;
  if (rem > 0) {
    out.push_back(dma(store, buf, sram + rows * kContiguousChunk, dram + rows * kContiguousChunk, rem, 1, 0, 0, fill_zero));
  }
}

/// Moves a box of rows x pixels x `chunk` bytes between DRAM (rows `dram_row` bytes
/// apart, pixels `dram_pixel` apart) and SRAM (rows `sram_row` apart, pixels dense).
void copy_box(std::vector<Instruction>& out, bool store, i64 sram, i64 sram_row, i64 dram, i64 dram_row,
              i64 dram_pixel, i64 rows, i64 pixels, i64 chunk) {
  if (rows <= 0 || pixels <= 0) return;
  if (chunk == dram_pixel) {  // the pixels of a row are one contiguous run
    const i64 run = pixels * chunk;
    if (run <= kMaxRowBytes && sram_row <= kMaxSramStride && dram_row <= kMaxDramStride) {
      for (i64 r0 = 0; r0 < rows; r0 += kMaxRows) {
        out.push_back(dma(store, Buffer::ACT, sram + r0 * sram_row, dram + r0 * dram_row, run,
                          std::min(kMaxRows, rows - r0), dram_row, sram_row));
      }
      return;
    }
    for (i64 r = 0; r < rows; ++r) copy_contiguous(out, store, Buffer::ACT, sram + r * sram_row, dram + r * dram_row, run);
    return;
  }
  for (i64 r = 0; r < rows; ++r) {
    out.push_back(dma(store, Buffer::ACT, sram + r * sram_row, dram + r * dram_row, chunk, pixels, dram_pixel, chunk));
  }
}

// ---------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------

/// One load -> compute hand-off. `finish` (when not empty) completes a tile into an
/// output slot and `stores` write it back.
struct Step {
  std::vector<Instruction> loads, computes, finish, stores;
};

/// Emits steps with the dependency tokens of the double-buffered schedule described in
/// lower.hpp. Every pop's matching push comes earlier in program order, so the program
/// cannot deadlock whatever the queue depths.
void emit_pipeline(ProgramBuilder& b, std::vector<Step>& steps) {
  std::size_t tiles = 0;
  for (const auto& s : steps) tiles += s.finish.empty() ? 0 : 1;
  std::size_t t = 0;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    Step& s = steps[k];
    isa::tokens_of(s.loads.front()).pop_next = k >= 2;
    isa::tokens_of(s.loads.back()).push_next = true;
    for (const auto& i : s.loads) b.add(i);

    std::vector<Instruction> compute = s.computes;
    compute.insert(compute.end(), s.finish.begin(), s.finish.end());
    isa::tokens_of(compute.front()).pop_prev = true;
    if (!s.finish.empty()) {
      isa::tokens_of(compute[s.computes.size()]).pop_next = t >= 2;
      isa::tokens_of(compute.back()).push_next = true;
    }
    isa::tokens_of(compute.back()).push_prev = k + 2 < steps.size();
    for (const auto& i : compute) b.add(i);

    if (!s.finish.empty()) {
      isa::tokens_of(s.stores.front()).pop_prev = true;
      isa::tokens_of(s.stores.back()).push_prev = t + 2 < tiles;
      for (const auto& i : s.stores) b.add(i);
      ++t;
    }
  }
}

/// Two slots per buffer region, for double buffering.
struct Slots {
  i64 a[2] = {0, 0};
  i64 operator[](std::size_t k) const { return a[k % 2]; }
};

// ---------------------------------------------------------------------------------
// Parameter records
// ---------------------------------------------------------------------------------

/// A parameter record of node `n`'s output range; its clips are the output type's range
/// narrowed by the node's clip.
template <typename Record>
Record clipped_record(const Node& n) {
  const OutputSpec spec = n.output_spec(RoundMode::HALF_UP);
  Record r;
  r.clip_lo = static_cast<std::int32_t>(spec.lo());
  r.clip_hi = static_cast<std::int32_t>(spec.hi());
  return r;
}

/// A shift of node `n`'s parameter record, which the record holds in 8 bits.
std::int8_t record_shift(const Node& n, i64 s) {
  if (s < -128 || s > 127) refuse(n, "requantize shift " + std::to_string(s) + " does not fit the 8-bit shift field");
  return static_cast<std::int8_t>(s);
}

// ---------------------------------------------------------------------------------
// Per-op plans
// ---------------------------------------------------------------------------------

struct ConvPlan {
  i64 th = 1, tw = 1, toc = 1, cc = 1;
  bool depthwise = false;
  isa::MacMode mode = isa::MacMode::A8W8;
  bool act_unsigned = false;
  std::vector<std::int32_t> weights;  ///< [OC][C/groups][KH][KW], permuted for flatten inputs
  // Constant offsets, indexed [group][oc tile] (and [chunk] for weights).
  std::vector<std::vector<std::vector<i64>>> weight_blocks;
  std::vector<std::vector<i64>> bias_blocks, param_blocks;
};

struct LayerPlan {
  ConvPlan conv;
  i64 param = 0;  ///< constant offset of the record of add / avg pool
};

class Lowering {
 public:
  Lowering(const Graph& g, const HwConfig& hw, const CompileOptions& options)
      : g_(g), hw_(hw), b_(options.embed_config ? ProgramBuilder(hw) : ProgramBuilder(hw.identity_hash())) {}

  Program run() {
    if (g_.outputs().empty()) throw Error("the graph has no outputs");
    plans_.resize(g_.nodes().size());
    for (std::size_t id = 0; id < g_.nodes().size(); ++id) plan(static_cast<int>(id));
    allocate();
    for (std::size_t id = 0; id < g_.nodes().size(); ++id) emit(static_cast<int>(id));
    b_.add(isa::End{});
    return b_.build();
  }

 private:
  const Node& node(int id) const { return g_.node(id); }

  // --- checks shared by the ops -----------------------------------------------------
  void check_even_channels(const Node& n, DType t, i64 channels, const char* what) const {
    if (is4(t) && channels % 2 != 0) {
      refuse(n, std::string(what) + " has " + std::to_string(channels) + " channels of a 4-bit type; the hardware packs "
                "two per byte, so 4-bit tensors need an even channel count");
    }
  }

  isa::MacMode mac_mode(const Node& n, DType act) const {
    const DType w = n.weight_dtype;
    const std::optional<isa::MacMode> mode = isa::mac_mode_for(act, w);
    if (!mode) {
      refuse(n, std::string("activation ") + std::string(dtype_info(act).name) + " x weight " +
                    std::string(dtype_info(w).name) + " is not a precision of the MAC array (" + isa::mac_modes_text() +
                    ")");
    }
    if (!isa::mac_mode_supported(*mode, hw_)) {
      refuse(n, "the hardware config does not support " + isa::mac_mode_types_text(*mode) + " MACs");
    }
    return *mode;
  }

  // --- views ----------------------------------------------------------------------------
  /// The DRAM view of node `id`'s output (flatten and 2-D tensors as one row of pixels).
  View view(int id) const {
    const Node& n = node(id);
    if (n.kind == OpKind::kFlatten) {
      View v = view(n.inputs[0]);
      return {v.dram, 1, 1, v.N, v.H * v.W * v.C, v.dtype, v.frac};
    }
    View v;
    v.dram = dram_[static_cast<std::size_t>(id)];
    v.dtype = n.dtype;
    v.frac = n.frac;
    if (n.shape.size() == 4) {
      v.N = n.shape[0];
      v.C = n.shape[1];
      v.H = n.shape[2];
      v.W = n.shape[3];
    } else {
      v.W = n.shape[0];
      v.C = n.shape[1];
    }
    return v;
  }

  /// Shape [N, C, H, W] of node `id`'s input data as the MAC sees it (linear: 1 x K x 1 x N).
  /// Dimensions of a conv as the MAC sees them; a linear layer is a 1x1 convolution over
  /// one row of N pixels with K channels.
  static void conv_dims(const Node& n, const Node& x, i64& N, i64& C, i64& H, i64& W, i64& OH, i64& OW) {
    if (n.kind == OpKind::kLinear) {
      N = 1;
      H = OH = 1;
      W = OW = x.shape[0];
      C = x.shape[1];
      return;
    }
    N = x.shape[0];
    C = x.shape[1];
    H = x.shape[2];
    W = x.shape[3];
    OH = n.shape[2];
    OW = n.shape[3];
  }

  // --- planning ---------------------------------------------------------------------------
  void plan(int id) {
    const Node& n = node(id);
    switch (n.kind) {
      case OpKind::kInput:
      case OpKind::kFlatten:
        if (n.shape.size() == 4) check_even_channels(n, n.dtype, n.shape[1], "the tensor");
        if (n.shape.size() == 2 && n.kind == OpKind::kInput) check_even_channels(n, n.dtype, n.shape[1], "the tensor");
        return;
      case OpKind::kConv2d:
      case OpKind::kLinear: plan_conv(id); return;
      case OpKind::kAdd: {
        check_even_channels(n, n.dtype, n.shape[1], "the output");
        const Node& a = node(n.inputs[0]);
        const Node& bb = node(n.inputs[1]);
        const AddShifts sh = add_shifts(a.frac, bb.frac, n.frac);
        auto rec = clipped_record<isa::AddRecord>(n);
        rec.shift_a = record_shift(n, sh.shift_a);
        rec.shift_b = record_shift(n, sh.shift_b);
        rec.shift_y = record_shift(n, sh.shift_y);
        plans_[static_cast<std::size_t>(id)].param = static_cast<i64>(b_.add_constant(rec.encode(), 4));
        return;
      }
      case OpKind::kAvgPool:
      case OpKind::kGlobalAvgPool: {
        const Node& x = node(n.inputs[0]);
        if (n.conv.kernel_h > kMaxAvgPoolWindow || n.conv.kernel_w > kMaxAvgPoolWindow) {
          refuse(n, "window " + std::to_string(n.conv.kernel_h) + "x" + std::to_string(n.conv.kernel_w) +
                        " exceeds the vector unit's " + std::to_string(kMaxAvgPoolWindow) + "x" +
                        std::to_string(kMaxAvgPoolWindow));
        }
        if (n.conv.stride_h > kMaxPoolStride || n.conv.stride_w > kMaxPoolStride) {
          refuse(n, "stride above " + std::to_string(kMaxPoolStride));
        }
        const i64 window = i64{n.conv.kernel_h} * n.conv.kernel_w;
        if (!avgpool_multiplier(window, static_cast<int>(hw_.avgpool_shift))) {
          refuse(n, "the multiplier round(2^" + std::to_string(hw_.avgpool_shift) + " / " + std::to_string(window) +
                        ") does not fit 16 bits");
        }
        if (x.dtype == DType::I32 || n.dtype == DType::I32) refuse(n, "i32 tensors are not supported");
        check_even_channels(n, x.dtype, x.shape[1], "the input");
        check_even_channels(n, n.dtype, n.shape[1], "the output");
        auto rec = clipped_record<isa::AvgPoolRecord>(n);
        rec.shift = record_shift(n, avgpool_requant_shift(static_cast<int>(hw_.avgpool_shift), x.frac, n.frac));
        plans_[static_cast<std::size_t>(id)].param = static_cast<i64>(b_.add_constant(rec.encode(), 4));
        return;
      }
      case OpKind::kMaxPool:
        if (n.conv.kernel_h > kMaxPoolKernel || n.conv.kernel_w > kMaxPoolKernel || n.conv.kernel_h > hw_.max_kernel ||
            n.conv.kernel_w > hw_.max_kernel) {
          refuse(n, "window " + std::to_string(n.conv.kernel_h) + "x" + std::to_string(n.conv.kernel_w) +
                        " exceeds max_kernel " + std::to_string(std::min<i64>(kMaxPoolKernel, hw_.max_kernel)));
        }
        if (n.conv.stride_h > kMaxPoolStride || n.conv.stride_w > kMaxPoolStride) {
          refuse(n, "stride above " + std::to_string(kMaxPoolStride));
        }
        if (n.conv.pad_top > kMaxPoolPad || n.conv.pad_left > kMaxPoolPad) {
          refuse(n, "padding above " + std::to_string(kMaxPoolPad));
        }
        check_even_channels(n, n.dtype, n.shape[1], "the tensor");
        return;
      case OpKind::kConcat:
        for (int in : n.inputs) check_even_channels(n, n.dtype, node(in).shape[1], "an input");
        return;
      case OpKind::kUpsample2x: check_even_channels(n, n.dtype, n.shape[1], "the tensor"); return;
    }
  }

  /// What a conv tile of th x tw output pixels, toc output and cc input channels needs,
  /// double-buffered: bytes of each SRAM, accumulator words, and whether its shape is
  /// inside the ISA limits.
  struct ConvTileNeeds {
    i64 act, wgt, acc, par;
    bool shape_ok;
  };
  static ConvTileNeeds conv_tile_needs(const Node& n, DType x_dtype, bool depthwise, i64 th, i64 tw, i64 toc, i64 cc) {
    const auto& a = n.conv;
    const i64 kh = a.kernel_h, kw = a.kernel_w, d = a.dilation_h;
    const i64 in_th = (th - 1) * a.stride_h + (kh - 1) * d + 1;
    const i64 in_tw = (tw - 1) * a.stride_w + (kw - 1) * d + 1;
    ConvTileNeeds need{};
    need.act = 2 * align4(nbytes(x_dtype, in_th * in_tw * cc)) + 2 * align4(nbytes(n.dtype, th * tw * toc));
    need.wgt = 2 * nbytes(n.weight_dtype, toc * kh * kw * (depthwise ? 1 : cc));
    need.acc = 2 * th * tw * toc;
    need.par = 2 * align4(static_cast<i64>(isa::RequantRecord::size(static_cast<std::size_t>(toc))));
    need.shape_ok = th * tw <= kMaxRows && in_th <= 4 * kMaxTileSide * 8;
    return need;
  }

  /// The halving steps above stop at the first tiling that fits, which for a large layer
  /// is a short, wide tile (all output channels, few rows): every spatial tile then loads
  /// the layer's whole weights again. Among all tilings the same halving steps can reach
  /// (every combination of halved th, tw, toc, cc) that fit the same budgets, take the
  /// one that moves the fewest bytes by DMA (weights once per spatial tile, input tiles
  /// once per output-channel tile) plus kInstructionCostBytes per instruction it emits;
  /// ties keep the halving steps' result.
  void refine_conv_tiles(const Node& n, ConvPlan& p, i64 N, i64 G, i64 cg, i64 og, i64 OH, i64 OW, DType x_dtype) const {
    const auto& a = n.conv;
    const i64 kh = a.kernel_h, kw = a.kernel_w, d = a.dilation_h;
    const i64 min_ch_x = is4(x_dtype) ? 2 : 1, min_ch_y = is4(n.dtype) ? 2 : 1;
    auto halvings = [](i64 v, auto&& next, i64 min) {
      std::vector<i64> out{v};
      while (v > min) {
        const i64 h = next(v, min);
        if (h >= v) break;
        out.push_back(v = h);
      }
      return out;
    };
    auto spatial_half = [](i64 v, i64) { return (v + 1) / 2; };
    const i64 C = G * cg;
    const i64 toc0 = std::min(p.depthwise ? C : og, kMaxChannels);
    const i64 cc0 = p.depthwise ? toc0 : std::min(cg, kMaxChannels);
    const std::vector<i64> ths = halvings(std::min(OH, kMaxTileSide), spatial_half, 1);
    const std::vector<i64> tws = halvings(std::min(OW, kMaxTileSide), spatial_half, 1);
    const std::vector<i64> tocs = halvings(toc0, [](i64 v, i64 m) { return even_half(v, m); }, std::max(min_ch_y, p.depthwise ? min_ch_x : 1));
    const std::vector<i64> ccs = p.depthwise ? std::vector<i64>{0} : halvings(cc0, [](i64 v, i64 m) { return even_half(v, m); }, min_ch_x);
    auto in_rows = [&](i64 th) { return (th - 1) * a.stride_h + (kh - 1) * d + 1; };
    auto in_cols = [&](i64 tw) { return (tw - 1) * a.stride_w + (kw - 1) * d + 1; };
    auto fits = [&](i64 th, i64 tw, i64 toc, i64 cc) {
      const ConvTileNeeds need = conv_tile_needs(n, x_dtype, p.depthwise, th, tw, toc, cc);
      return need.shape_ok && need.act <= hw_.act_sram_bytes() && need.wgt <= hw_.wgt_sram_bytes() &&
             need.acc <= hw_.acc_sram_words() && need.par <= hw_.param_sram_bytes();
    };
    // Sum of the input tile extents over the tiles of one axis.
    auto extent_sum = [&](i64 out, i64 t, bool rows) {
      i64 sum = 0;
      for (i64 o = 0; o < out; o += t) sum += rows ? in_rows(std::min(t, out - o)) : in_cols(std::min(t, out - o));
      return sum;
    };
    const i64 oc_per_group = p.depthwise ? C : og, groups = p.depthwise ? 1 : G;
    const i64 weight_bytes = nbytes(n.weight_dtype, G * og * kh * kw * (p.depthwise ? 1 : cg));
    const i64 OC = G * og;
    auto cost = [&](i64 th, i64 tw, i64 toc, i64 cc) {
      const i64 row_tiles = ceil_div(OH, th), col_tiles = ceil_div(OW, tw), spatial = row_tiles * col_tiles;
      const i64 oc_tiles = ceil_div(oc_per_group, toc);
      const i64 chunks = p.depthwise ? 1 : ceil_div(cg, cc);
      const i64 in_row_sum = extent_sum(OH, th, true);
      const i64 in_area = in_row_sum * extent_sum(OW, tw, false);
      const i64 act = p.depthwise ? nbytes(x_dtype, in_area * C) : groups * oc_tiles * nbytes(x_dtype, in_area * cg);
      // DMA instructions: an input box is one when it has all channels, else one per row;
      // likewise an output box.
      const i64 act_insns = cc == C ? spatial : in_row_sum * col_tiles;
      const i64 store_insns = toc == OC ? spatial : OH * col_tiles;
      const i64 insns = groups * oc_tiles * (chunks * (act_insns + 2 * spatial) + 3 * spatial + store_insns);
      return N * (spatial * weight_bytes + act + insns * kInstructionCostBytes);
    };
    i64 best = cost(p.th, p.tw, p.toc, p.depthwise ? p.toc : p.cc);
    for (const i64 th : ths)
      for (const i64 tw : tws)
        for (const i64 toc : tocs)
          for (const i64 cc_raw : ccs) {
            const i64 cc = p.depthwise ? toc : cc_raw;
            if (!fits(th, tw, toc, cc)) continue;
            const i64 c = cost(th, tw, toc, cc);
            if (c < best) {
              best = c;
              p.th = th;
              p.tw = tw;
              p.toc = toc;
              p.cc = cc;
            }
          }
  }

  void plan_conv(int id) {
    const Node& n = node(id);
    const Node& x = node(n.inputs[0]);
    ConvPlan& p = plans_[static_cast<std::size_t>(id)].conv;
    const auto& a = n.conv;
    i64 N, C, H, W, OH, OW;
    conv_dims(n, x, N, C, H, W, OH, OW);
    const i64 OC = n.out_channels();
    const i64 G = a.groups;
    const i64 cg = C / G, og = OC / G;
    p.mode = mac_mode(n, x.dtype);
    p.act_unsigned = x.dtype == DType::U8 || x.dtype == DType::U4;
    p.depthwise = G > 1 && cg == 1 && og == 1;
    if (a.kernel_h > hw_.max_kernel || a.kernel_w > hw_.max_kernel) {
      refuse(n, "kernel " + std::to_string(a.kernel_h) + "x" + std::to_string(a.kernel_w) + " exceeds max_kernel " +
                    std::to_string(hw_.max_kernel) + " of the hardware config");
    }
    if (a.stride_h > kMaxMacStride || a.stride_w > kMaxMacStride) {
      refuse(n, "stride above " + std::to_string(kMaxMacStride) + " is not supported by the MAC array");
    }
    if (a.dilation_h != a.dilation_w) refuse(n, "the MAC array has one dilation for both axes");
    if (a.dilation_h > kMaxDilation) {
      refuse(n, "dilation above " + std::to_string(kMaxDilation) + " is not supported by the MAC array");
    }
    if (x.dtype == DType::I32) refuse(n, "i32 activations are not supported");
    check_even_channels(n, x.dtype, C, "the input");
    check_even_channels(n, n.dtype, OC, "the output");
    if (G > 1 && !p.depthwise) {
      check_even_channels(n, x.dtype, cg, "each input group");
      check_even_channels(n, n.dtype, og, "each output group");
    }

    // Weights as [OC][cg][KH][KW]; a linear layer after a flatten of [C, H, W] reads its
    // input in (h, w, c) order, so its columns are permuted from PyTorch's (c, h, w).
    p.weights = n.weights;
    if (n.kind == OpKind::kLinear && x.kind == OpKind::kFlatten) {
      const Node& src = node(x.inputs[0]);
      const i64 sc = src.shape[1], sh = src.shape[2], sw = src.shape[3];
      if (sh * sw > 1) {
        for (i64 oc = 0; oc < OC; ++oc)
          for (i64 c = 0; c < sc; ++c)
            for (i64 h = 0; h < sh; ++h)
              for (i64 w = 0; w < sw; ++w) {
                p.weights[static_cast<std::size_t>(oc * C + (h * sw + w) * sc + c)] =
                    n.weights[static_cast<std::size_t>(oc * C + (c * sh + h) * sw + w)];
              }
      }
    }

    // Tile sizes: start from whole dimensions and halve whatever overflows a buffer.
    const i64 kh = a.kernel_h, kw = a.kernel_w;
    const i64 min_ch_x = is4(x.dtype) ? 2 : 1, min_ch_y = is4(n.dtype) ? 2 : 1;
    p.th = std::min(OH, kMaxTileSide);
    p.tw = std::min(OW, kMaxTileSide);
    p.toc = std::min(p.depthwise ? C : og, kMaxChannels);
    p.cc = p.depthwise ? p.toc : std::min(cg, kMaxChannels);
    for (int guard = 0;; ++guard) {
      if (guard > 200) refuse(n, "no tiling fits the SRAMs");
      const auto [act, wgt, acc, par, shape_ok] = conv_tile_needs(n, x.dtype, p.depthwise, p.th, p.tw, p.toc, p.cc);
      auto shrink_spatial = [&]() {
        if (p.th > 1) p.th = (p.th + 1) / 2;
        else if (p.tw > 1) p.tw = (p.tw + 1) / 2;
        else return false;
        return true;
      };
      auto shrink_cc = [&]() {
        if (p.depthwise || p.cc <= min_ch_x) return false;
        p.cc = even_half(p.cc, min_ch_x);
        return true;
      };
      auto shrink_toc = [&]() {
        const i64 min = std::max(min_ch_y, p.depthwise ? min_ch_x : 1);
        if (p.toc <= min) return false;
        p.toc = even_half(p.toc, min);
        if (p.depthwise) p.cc = p.toc;
        return true;
      };
      if (!shape_ok) {
        if (!shrink_spatial()) refuse(n, "no tiling fits the ISA limits");
        continue;
      }
      if (act > hw_.act_sram_bytes()) {
        if (shrink_spatial() || shrink_cc() || shrink_toc()) continue;
        refuse(n, "even a 1x1-pixel tile needs " + std::to_string(act) + " bytes of activation SRAM, more than the " +
                      std::to_string(hw_.act_sram_bytes()) + " of the hardware config");
      }
      if (wgt > hw_.wgt_sram_bytes()) {
        if (shrink_cc() || shrink_toc()) continue;
        refuse(n, "one output channel's weights (" + std::to_string(wgt / 2) + " bytes) do not fit twice in the " +
                      std::to_string(hw_.wgt_sram_bytes()) + "-byte weight SRAM");
      }
      if (acc > hw_.acc_sram_words()) {
        if (shrink_spatial() || shrink_toc()) continue;
        refuse(n, "the accumulator SRAM cannot hold two 1-pixel tiles");
      }
      if (par > hw_.param_sram_bytes()) {
        if (shrink_toc()) continue;
        refuse(n, "the parameter SRAM cannot hold two requantize records");
      }
      break;
    }

    refine_conv_tiles(n, p, N, G, cg, og, OH, OW, x.dtype);

    // Constants: weight blocks [toc][kh][kw][cc] per (group, oc tile, chunk), bias and
    // requantize records per (group, oc tile).
    const i64 oc_per_group = p.depthwise ? C : og;
    const i64 groups = p.depthwise ? 1 : G;
    const i64 oc_tiles = ceil_div(oc_per_group, p.toc);
    const i64 chunks = p.depthwise ? 1 : ceil_div(cg, p.cc);
    p.weight_blocks.assign(static_cast<std::size_t>(groups), std::vector<std::vector<i64>>(static_cast<std::size_t>(oc_tiles)));
    p.bias_blocks.assign(static_cast<std::size_t>(groups), std::vector<i64>(static_cast<std::size_t>(oc_tiles)));
    p.param_blocks = p.bias_blocks;
    for (i64 g = 0; g < groups; ++g)
      for (i64 t = 0; t < oc_tiles; ++t) {
        const i64 oc0 = g * oc_per_group + t * p.toc;
        const i64 toc = std::min(p.toc, oc_per_group - t * p.toc);
        for (i64 ch = 0; ch < chunks; ++ch) {
          const i64 c0 = ch * p.cc;
          const i64 ccur = p.depthwise ? 1 : std::min(p.cc, cg - c0);
          std::vector<std::uint8_t> block(static_cast<std::size_t>(nbytes(n.weight_dtype, toc * kh * kw * ccur)), 0);
          std::uint64_t e = 0;
          for (i64 o = 0; o < toc; ++o)
            for (i64 y = 0; y < kh; ++y)
              for (i64 xk = 0; xk < kw; ++xk)
                for (i64 c = 0; c < ccur; ++c) {
                  const i64 src = (((oc0 + o) * cg + c0 + c) * kh + y) * kw + xk;
                  store_element(block.data(), n.weight_dtype, e++, p.weights[static_cast<std::size_t>(src)]);
                }
          p.weight_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(t)].push_back(static_cast<i64>(b_.add_constant(block, 4)));
        }
        std::vector<std::uint8_t> bias(static_cast<std::size_t>(4 * toc));
        auto rec = clipped_record<isa::RequantRecord>(n);
        for (i64 o = 0; o < toc; ++o) {
          store_element(bias.data(), DType::I32, static_cast<std::uint64_t>(o), n.bias[static_cast<std::size_t>(oc0 + o)]);
          rec.shift.push_back(
              record_shift(n, requant_shift(x.frac, n.weight_frac[static_cast<std::size_t>(oc0 + o)], n.frac)));
        }
        p.bias_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(t)] = static_cast<i64>(b_.add_constant(bias, 4));
        p.param_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(t)] = static_cast<i64>(b_.add_constant(rec.encode(), 4));
      }
  }

  // --- DRAM -------------------------------------------------------------------------------
  void allocate() {
    dram_.assign(g_.nodes().size(), 0);
    std::vector<bool> is_output(g_.nodes().size(), false);
    for (int o : g_.outputs()) is_output[static_cast<std::size_t>(o)] = true;
    for (std::size_t id = 0; id < g_.nodes().size(); ++id) {
      const Node& n = g_.nodes()[id];
      if (n.kind == OpKind::kFlatten) {
        dram_[id] = dram_[static_cast<std::size_t>(n.inputs[0])];
        if (is_output[id]) b_.add_tensor_at(desc(static_cast<int>(id), TensorRole::kOutput));
        continue;
      }
      const TensorRole role = n.kind == OpKind::kInput ? TensorRole::kInput
                              : is_output[id]          ? TensorRole::kOutput
                                                       : TensorRole::kIntermediate;
      TensorDesc d = desc(static_cast<int>(id), role);
      if (role == TensorRole::kIntermediate) {
        dram_[id] = static_cast<i64>(b_.allocate(d.byte_size()));
      } else {
        dram_[id] = static_cast<i64>(b_.add_tensor(d).dram_offset);
      }
    }
  }

  /// The descriptor of node `id`'s output as it lies in DRAM.
  TensorDesc desc(int id, TensorRole role) const {
    const Node& n = node(id);
    TensorDesc d;
    d.name = n.name;
    d.role = role;
    d.dtype = n.dtype;
    d.frac = n.frac;
    if (n.kind == OpKind::kFlatten) {
      // The bytes are the NHWC bytes of the flattened tensor.
      TensorDesc src = desc(n.inputs[0], role);
      src.name = n.name;
      src.dram_offset = static_cast<std::uint64_t>(dram_[static_cast<std::size_t>(id)]);
      return src;
    }
    d.layout = n.shape.size() == 4 ? Layout::kNHWC : Layout::kRowMajor;
    d.shape.assign(n.shape.begin(), n.shape.end());
    d.dram_offset = static_cast<std::uint64_t>(dram_[static_cast<std::size_t>(id)]);
    return d;
  }

  // --- emission ---------------------------------------------------------------------------
  void emit(int id) {
    const Node& n = node(id);
    if (n.kind == OpKind::kInput) return;
    const std::uint32_t first = b_.instruction_count();
    std::vector<Step> steps;
    switch (n.kind) {
      case OpKind::kConv2d:
      case OpKind::kLinear: steps = conv_steps(id); break;
      case OpKind::kAdd: steps = add_steps(id); break;
      case OpKind::kMaxPool:
      case OpKind::kAvgPool:
      case OpKind::kGlobalAvgPool: steps = pool_steps(id); break;
      case OpKind::kUpsample2x: steps = upsample_steps(id); break;
      case OpKind::kConcat: steps = concat_steps(id); break;
      case OpKind::kInput:
      case OpKind::kFlatten: break;
    }
    if (!steps.empty()) {
      emit_pipeline(b_, steps);
      b_.add(isa::Sync{});
    }
    DebugRecord r;
    r.layer = n.name;
    r.insn_begin = first;
    r.insn_end = b_.instruction_count();
    r.output = desc(id, TensorRole::kIntermediate);
    b_.add_debug(r);
  }

  /// Activation-SRAM layout of a pipeline: two input slots, then two output slots.
  static void act_slots(i64 in_bytes, i64 out_bytes, Slots& in, Slots& out) {
    in.a[0] = 0;
    in.a[1] = align4(in_bytes);
    out.a[0] = 2 * align4(in_bytes);
    out.a[1] = out.a[0] + align4(out_bytes);
  }

  std::vector<Step> conv_steps(int id) {
    const Node& n = node(id);
    const Node& xn = node(n.inputs[0]);
    const ConvPlan& p = plans_[static_cast<std::size_t>(id)].conv;
    const auto& a = n.conv;
    const View X = view(n.inputs[0]);
    const View Y = view(id);
    i64 N, C, H, W, OH, OW;
    conv_dims(n, xn, N, C, H, W, OH, OW);
    const i64 OC = n.out_channels(), G = a.groups, cg = C / G, og = OC / G;
    const i64 kh = a.kernel_h, kw = a.kernel_w, d = a.dilation_h;
    const i64 pt = a.pad_top, pl = a.pad_left;
    const i64 max_in_th = (p.th - 1) * a.stride_h + (kh - 1) * d + 1, max_in_tw = (p.tw - 1) * a.stride_w + (kw - 1) * d + 1;
    Slots in, out, wgt, acc, par;
    act_slots(nbytes(X.dtype, max_in_th * max_in_tw * p.cc), nbytes(Y.dtype, p.th * p.tw * p.toc), in, out);
    wgt.a[1] = nbytes(n.weight_dtype, p.toc * kh * kw * (p.depthwise ? 1 : p.cc));
    acc.a[1] = p.th * p.tw * p.toc;
    par.a[1] = align4(static_cast<i64>(isa::RequantRecord::size(static_cast<std::size_t>(p.toc))));

    const i64 oc_per_group = p.depthwise ? C : og;
    const i64 groups = p.depthwise ? 1 : G;
    const i64 in_per_group = p.depthwise ? C : cg;
    std::vector<Step> steps;
    std::size_t k = 0, t = 0;
    for (i64 img = 0; img < N; ++img)
      for (i64 g = 0; g < groups; ++g)
        for (i64 ot = 0; ot * p.toc < oc_per_group; ++ot) {
          const i64 oc0 = g * oc_per_group + ot * p.toc;  // first output channel of the tile
          const i64 toc = std::min(p.toc, oc_per_group - ot * p.toc);
          for (i64 oh0 = 0; oh0 < OH; oh0 += p.th)
            for (i64 ow0 = 0; ow0 < OW; ow0 += p.tw) {
              const i64 th = std::min(p.th, OH - oh0), tw = std::min(p.tw, OW - ow0);
              const i64 in_th = (th - 1) * a.stride_h + (kh - 1) * d + 1, in_tw = (tw - 1) * a.stride_w + (kw - 1) * d + 1;
              const i64 ih0 = oh0 * a.stride_h - pt, iw0 = ow0 * a.stride_w - pl;
              const i64 r_lo = std::max<i64>(0, ih0), r_hi = std::min(H, ih0 + in_th);
              const i64 c_lo = std::max<i64>(0, iw0), c_hi = std::min(W, iw0 + in_tw);
              const bool padded = r_lo > ih0 || r_hi < ih0 + in_th || c_lo > iw0 || c_hi < iw0 + in_tw;
              const i64 chunks = p.depthwise ? 1 : ceil_div(in_per_group, p.cc);
              for (i64 ch = 0; ch < chunks; ++ch, ++k) {
                const i64 c0 = p.depthwise ? oc0 : g * cg + ch * p.cc;
                const i64 ccur = p.depthwise ? toc : std::min(p.cc, cg - ch * p.cc);
                Step s;
                if (ch == 0) {
                  s.loads.push_back(dma(false, Buffer::ACC, acc[t], p.bias_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(ot)],
                                        4 * toc, th * tw, 0, toc));
                  copy_contiguous(s.loads, false, Buffer::PARAM, par[t], p.param_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(ot)],
                                  static_cast<i64>(isa::RequantRecord::size(static_cast<std::size_t>(toc))));
                }
                if (padded) copy_contiguous(s.loads, false, Buffer::ACT, in[k], 0, nbytes(X.dtype, in_th * in_tw * ccur), true);
                if (r_hi > r_lo && c_hi > c_lo) {
                  copy_box(s.loads, false, in[k] + nbytes(X.dtype, ((r_lo - ih0) * in_tw + (c_lo - iw0)) * ccur),
                           nbytes(X.dtype, in_tw * ccur), X.addr(img, r_lo, c_lo, c0), nbytes(X.dtype, W * C),
                           nbytes(X.dtype, C), r_hi - r_lo, c_hi - c_lo, nbytes(X.dtype, ccur));
                }
                const i64 wbytes = nbytes(n.weight_dtype, toc * kh * kw * (p.depthwise ? 1 : ccur));
                copy_contiguous(s.loads, false, Buffer::WGT, wgt[k],
                                p.weight_blocks[static_cast<std::size_t>(g)][static_cast<std::size_t>(ot)][static_cast<std::size_t>(ch)], wbytes);
                isa::Mac mac;
                mac.mode = static_cast<i64>(p.mode);
                mac.act_unsigned = p.act_unsigned ? 1 : 0;
                mac.accumulate = 1;  // onto the bias
                mac.depthwise = p.depthwise ? 1 : 0;
                mac.act_addr = in[k];
                mac.wgt_addr = wgt[k];
                mac.acc_addr = acc[t];
                mac.out_h = th;
                mac.out_w = tw;
                mac.out_c = toc;
                mac.in_c = ccur;
                mac.kernel_h = kh;
                mac.kernel_w = kw;
                mac.stride_h = a.stride_h;
                mac.stride_w = a.stride_w;
                mac.dilation = d;
                s.computes.push_back(mac);
                if (ch + 1 == chunks) {
                  isa::Requant rq;
                  rq.out_type = static_cast<i64>(Y.dtype);
                  rq.acc_addr = acc[t];
                  rq.act_addr = out[t];
                  rq.param_addr = par[t];
                  rq.pixels = th * tw;
                  rq.channels = toc;
                  s.finish.push_back(rq);
                  copy_box(s.stores, true, out[t], nbytes(Y.dtype, tw * toc), Y.addr(img, oh0, ow0, oc0),
                           nbytes(Y.dtype, Y.W * Y.C), nbytes(Y.dtype, Y.C), th, tw, nbytes(Y.dtype, toc));
                  ++t;
                }
                steps.push_back(std::move(s));
              }
            }
        }
    return steps;
  }

  std::vector<Step> pool_steps(int id) {
    const Node& n = node(id);
    const auto& a = n.conv;
    const bool is_max = n.kind == OpKind::kMaxPool;
    const View X = view(n.inputs[0]);
    const View Y = view(id);
    const i64 min_ch = is4(X.dtype) || is4(Y.dtype) ? 2 : 1;
    // Tile: output rows, columns, channels; halve until two input and two output tiles fit.
    i64 th = std::min(Y.H, kMaxTileSide), tw = std::min(Y.W, kMaxTileSide), tc = std::min(Y.C, kMaxPoolChannels);
    if (is4(X.dtype) && tc % 2) --tc;
    auto in_rows = [&](i64 rows) { return (rows - 1) * a.stride_h + a.kernel_h; };
    auto in_cols = [&](i64 cols) { return (cols - 1) * a.stride_w + a.kernel_w; };
    for (;;) {
      const i64 need = 2 * align4(nbytes(X.dtype, in_rows(th) * in_cols(tw) * tc)) + 2 * align4(nbytes(Y.dtype, th * tw * tc));
      const bool dims_ok = in_rows(th) <= kMaxTileSide && in_cols(tw) <= kMaxTileSide;
      if (need <= hw_.act_sram_bytes() && dims_ok) break;
      if (th > 1) th = (th + 1) / 2;
      else if (tw > 1) tw = (tw + 1) / 2;
      else if (tc > min_ch) tc = std::max(min_ch, (tc / 2) / min_ch * min_ch);
      else refuse(n, "no tile of this pooling window fits the activation SRAM or the 255-pixel tile limit");
    }
    Slots in, out, par;
    act_slots(nbytes(X.dtype, in_rows(th) * in_cols(tw) * tc), nbytes(Y.dtype, th * tw * tc), in, out);
    par.a[1] = align4(static_cast<i64>(isa::AvgPoolRecord::kSize));
    std::vector<Step> steps;
    std::size_t k = 0;
    for (i64 img = 0; img < Y.N; ++img)
      for (i64 c0 = 0; c0 < Y.C; c0 += tc)
        for (i64 oh0 = 0; oh0 < Y.H; oh0 += th)
          for (i64 ow0 = 0; ow0 < Y.W; ow0 += tw, ++k) {
            const i64 cth = std::min(th, Y.H - oh0), ctw = std::min(tw, Y.W - ow0), ctc = std::min(tc, Y.C - c0);
            const i64 ih0 = oh0 * a.stride_h - a.pad_top, iw0 = ow0 * a.stride_w - a.pad_left;
            const i64 ith = in_rows(cth), itw = in_cols(ctw);
            const i64 r_lo = std::max<i64>(0, ih0), r_hi = std::min(X.H, ih0 + ith);
            const i64 c_lo = std::max<i64>(0, iw0), c_hi = std::min(X.W, iw0 + itw);
            Step s;
            if (is_max) {
              // Only the valid input rows are loaded; the instruction skips the padding.
              copy_box(s.loads, false, in[k], nbytes(X.dtype, (c_hi - c_lo) * ctc), X.addr(img, r_lo, c_lo, c0),
                       nbytes(X.dtype, X.W * X.C), nbytes(X.dtype, X.C), r_hi - r_lo, c_hi - c_lo, nbytes(X.dtype, ctc));
              isa::VMaxPool v;
              v.in_addr = in[k];
              v.out_addr = out[k];
              v.in_h = r_hi - r_lo;
              v.in_w = c_hi - c_lo;
              v.out_h = cth;
              v.out_w = ctw;
              v.channels = ctc;
              v.kernel_h = a.kernel_h;
              v.kernel_w = a.kernel_w;
              v.stride_h = a.stride_h;
              v.stride_w = a.stride_w;
              v.pad_top = r_lo - ih0;
              v.pad_left = c_lo - iw0;
              v.type = static_cast<i64>(X.dtype);
              s.finish.push_back(v);
            } else {
              // Zero padding is part of the window (count_include_pad), so it is loaded as zeros.
              copy_contiguous(s.loads, false, Buffer::PARAM, par[k], plans_[static_cast<std::size_t>(id)].param,
                              static_cast<i64>(isa::AvgPoolRecord::kSize));
              if (r_lo > ih0 || r_hi < ih0 + ith || c_lo > iw0 || c_hi < iw0 + itw) {
                copy_contiguous(s.loads, false, Buffer::ACT, in[k], 0, nbytes(X.dtype, ith * itw * ctc), true);
              }
              copy_box(s.loads, false, in[k] + nbytes(X.dtype, ((r_lo - ih0) * itw + (c_lo - iw0)) * ctc),
                       nbytes(X.dtype, itw * ctc), X.addr(img, r_lo, c_lo, c0), nbytes(X.dtype, X.W * X.C),
                       nbytes(X.dtype, X.C), r_hi - r_lo, c_hi - c_lo, nbytes(X.dtype, ctc));
              isa::VAvgPool v;
              v.in_addr = in[k];
              v.out_addr = out[k];
              v.out_h = cth;
              v.out_w = ctw;
              v.channels = ctc;
              v.kernel_h = a.kernel_h;
              v.kernel_w = a.kernel_w;
              v.stride_h = a.stride_h;
              v.stride_w = a.stride_w;
              v.in_type = static_cast<i64>(X.dtype);
              v.out_type = static_cast<i64>(Y.dtype);
              v.param_addr = par[k];
              s.finish.push_back(v);
            }
            copy_box(s.stores, true, out[k], nbytes(Y.dtype, ctw * ctc), Y.addr(img, oh0, ow0, c0),
                     nbytes(Y.dtype, Y.W * Y.C), nbytes(Y.dtype, Y.C), cth, ctw, nbytes(Y.dtype, ctc));
            steps.push_back(std::move(s));
          }
    return steps;
  }

  std::vector<Step> upsample_steps(int id) {
    const Node& n = node(id);
    const View X = view(n.inputs[0]);
    const View Y = view(id);
    const i64 min_ch = is4(X.dtype) ? 2 : 1;
    i64 th = std::min(X.H, i64{127}), tw = std::min(X.W, i64{127}), tc = std::min(X.C, kMaxChannels);
    if (is4(X.dtype) && tc % 2) --tc;
    for (;;) {
      const i64 need = 2 * align4(nbytes(X.dtype, th * tw * tc)) + 2 * align4(nbytes(X.dtype, 4 * th * tw * tc));
      if (need <= hw_.act_sram_bytes()) break;
      if (th > 1) th = (th + 1) / 2;
      else if (tw > 1) tw = (tw + 1) / 2;
      else if (tc > min_ch) tc = std::max(min_ch, (tc / 2) / min_ch * min_ch);
      else refuse(n, "no tile fits the activation SRAM");
    }
    Slots in, out;
    act_slots(nbytes(X.dtype, th * tw * tc), nbytes(X.dtype, 4 * th * tw * tc), in, out);
    std::vector<Step> steps;
    std::size_t k = 0;
    for (i64 img = 0; img < X.N; ++img)
      for (i64 c0 = 0; c0 < X.C; c0 += tc)
        for (i64 h0 = 0; h0 < X.H; h0 += th)
          for (i64 w0 = 0; w0 < X.W; w0 += tw, ++k) {
            const i64 cth = std::min(th, X.H - h0), ctw = std::min(tw, X.W - w0), ctc = std::min(tc, X.C - c0);
            Step s;
            copy_box(s.loads, false, in[k], nbytes(X.dtype, ctw * ctc), X.addr(img, h0, w0, c0), nbytes(X.dtype, X.W * X.C),
                     nbytes(X.dtype, X.C), cth, ctw, nbytes(X.dtype, ctc));
            isa::VUpsample v;
            v.in_addr = in[k];
            v.out_addr = out[k];
            v.in_h = cth;
            v.in_w = ctw;
            v.channels = ctc;
            v.type = static_cast<i64>(X.dtype);
            s.finish.push_back(v);
            copy_box(s.stores, true, out[k], nbytes(Y.dtype, 2 * ctw * ctc), Y.addr(img, 2 * h0, 2 * w0, c0),
                     nbytes(Y.dtype, Y.W * Y.C), nbytes(Y.dtype, Y.C), 2 * cth, 2 * ctw, nbytes(Y.dtype, ctc));
            steps.push_back(std::move(s));
          }
    return steps;
  }

  std::vector<Step> add_steps(int id) {
    const Node& n = node(id);
    const View A = view(n.inputs[0]), B = view(n.inputs[1]), Y = view(id);
    const i64 total = Y.elements();
    const i64 step_align = is4(A.dtype) || is4(B.dtype) || is4(Y.dtype) ? 2 : 1;
    i64 chunk = std::min(total, kMaxVectorCount / 2 * 2);
    for (;;) {
      const i64 need = 2 * (align4(nbytes(A.dtype, chunk)) + align4(nbytes(B.dtype, chunk))) + 2 * align4(nbytes(Y.dtype, chunk));
      if (need <= hw_.act_sram_bytes() - 64) break;
      if (chunk <= step_align) refuse(n, "the activation SRAM cannot hold one element of each operand");
      chunk = std::max(step_align, chunk / 2 / step_align * step_align);
    }
    Slots in, out, par;
    const i64 a_bytes = align4(nbytes(A.dtype, chunk));
    act_slots(a_bytes + align4(nbytes(B.dtype, chunk)), nbytes(Y.dtype, chunk), in, out);
    par.a[1] = align4(static_cast<i64>(isa::AddRecord::kSize));
    std::vector<Step> steps;
    std::size_t k = 0;
    for (i64 e0 = 0; e0 < total; e0 += chunk, ++k) {
      const i64 cnt = std::min(chunk, total - e0);
      Step s;
      copy_contiguous(s.loads, false, Buffer::PARAM, par[k], plans_[static_cast<std::size_t>(id)].param,
                      static_cast<i64>(isa::AddRecord::kSize));
      copy_contiguous(s.loads, false, Buffer::ACT, in[k], A.dram + nbytes(A.dtype, e0), nbytes(A.dtype, cnt));
      copy_contiguous(s.loads, false, Buffer::ACT, in[k] + a_bytes, B.dram + nbytes(B.dtype, e0), nbytes(B.dtype, cnt));
      isa::VAdd v;
      v.a_addr = in[k];
      v.b_addr = in[k] + a_bytes;
      v.y_addr = out[k];
      v.count = cnt;
      v.a_type = static_cast<i64>(A.dtype);
      v.b_type = static_cast<i64>(B.dtype);
      v.y_type = static_cast<i64>(Y.dtype);
      v.param_addr = par[k];
      s.finish.push_back(v);
      copy_contiguous(s.stores, true, Buffer::ACT, out[k], Y.dram + nbytes(Y.dtype, e0), nbytes(Y.dtype, cnt));
      steps.push_back(std::move(s));
    }
    return steps;
  }

  std::vector<Step> concat_steps(int id) {
    const Node& n = node(id);
    const View Y = view(id);
    // Pixels of each input, all its channels, are copied into the output at the input's
    // channel offset. One slot layout serves every input, so the slots are stable over
    // the whole pipeline.
    i64 widest = 0;
    for (int in_id : n.inputs) widest = std::max(widest, view(in_id).C);
    const i64 pixels = Y.N * Y.H * Y.W;
    i64 chunk = std::min(pixels, kMaxRows);
    while (4 * align4(nbytes(Y.dtype, chunk * widest)) > hw_.act_sram_bytes()) {
      if (chunk == 1) refuse(n, "one pixel of the widest input does not fit the activation SRAM");
      chunk = (chunk + 1) / 2;
    }
    Slots in, out;
    act_slots(nbytes(Y.dtype, chunk * widest), nbytes(Y.dtype, chunk * widest), in, out);
    std::vector<Step> steps;
    std::size_t k = 0;
    i64 c_offset = 0;
    for (int in_id : n.inputs) {
      const View X = view(in_id);
      for (i64 p0 = 0; p0 < pixels; p0 += chunk, ++k) {
        const i64 cnt = std::min(chunk, pixels - p0);
        Step s;
        copy_contiguous(s.loads, false, Buffer::ACT, in[k], X.dram + nbytes(X.dtype, p0 * X.C), nbytes(X.dtype, cnt * X.C));
        isa::VCopy v;
        v.src_addr = in[k];
        v.dst_addr = out[k];
        v.bytes = nbytes(X.dtype, cnt * X.C);
        s.finish.push_back(v);
        copy_box(s.stores, true, out[k], nbytes(X.dtype, cnt * X.C), Y.dram + nbytes(Y.dtype, p0 * Y.C + c_offset), 0,
                 nbytes(Y.dtype, Y.C), 1, cnt, nbytes(X.dtype, X.C));
        steps.push_back(std::move(s));
      }
      c_offset += X.C;
    }
    return steps;
  }

  const Graph& g_;
  const HwConfig& hw_;
  ProgramBuilder b_;
  std::vector<LayerPlan> plans_;
  std::vector<i64> dram_;
};

}  // namespace

Program compile(const Graph& graph, const HwConfig& hw, const CompileOptions& options) {
  hw.validate();
  return Lowering(graph, hw, options).run();
}

}  // namespace dla::compiler

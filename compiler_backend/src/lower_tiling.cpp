// Lowering, tiling: the tile sizes of every op, chosen so that two tiles (double
// buffering) fit each SRAM of the hardware config and every tile fits the ISA's fields.
#include <algorithm>

#include "dla/param_records.hpp"
#include "lowering.hpp"

namespace dla::compiler::lowering {
namespace {

/// What an instruction costs, in bytes moved, when the tiler weighs tilings (its issue and
/// synchronization overhead, on the hardware and in the emulator).
constexpr i64 kInstructionCostBytes = 8192;

/// Halves a channel count, keeping it even for 4-bit types (min == 2) and >= min.
i64 even_half(i64 v, i64 min) {
  i64 h = (v + 1) / 2;
  if (min == 2) h += h % 2;
  return std::max(min, h);
}

/// What a conv tile needs, double-buffered: bytes of each SRAM, accumulator words, and
/// whether its shape is inside the ISA limits.
struct ConvTileNeeds {
  i64 act, wgt, acc, par;
  bool shape_ok;
};

ConvTileNeeds conv_tile_needs(const Node& n, DType x_dtype, bool depthwise, const ConvTiles& t) {
  const auto& a = n.conv;
  const i64 kh = a.kernel_h, kw = a.kernel_w, d = a.dilation_h;
  const i64 in_th = (t.th - 1) * a.stride_h + (kh - 1) * d + 1;
  const i64 in_tw = (t.tw - 1) * a.stride_w + (kw - 1) * d + 1;
  ConvTileNeeds need{};
  need.act = 2 * align4(nbytes(x_dtype, in_th * in_tw * t.cc)) + 2 * align4(nbytes(n.dtype, t.th * t.tw * t.toc));
  need.wgt = 2 * nbytes(n.weight_dtype, t.toc * kh * kw * (depthwise ? 1 : t.cc));
  need.acc = 2 * t.th * t.tw * t.toc;
  need.par = 2 * align4(static_cast<i64>(isa::RequantRecord::size(idx(t.toc))));
  need.shape_ok = t.th * t.tw <= kMaxRows && in_th <= 4 * kMaxTileSide * 8;
  return need;
}

/// The shape of a convolution the tilers work on.
struct ConvShape {
  ConvDims dims;
  i64 G, cg, og;
  bool depthwise;
  DType x_dtype;
};

/// Tile sizes: start from whole dimensions and halve whatever overflows a buffer.
ConvTiles halve_conv_tiles(const Lowering& L, const Node& n, const ConvShape& s) {
  const i64 min_ch_x = is4(s.x_dtype) ? 2 : 1, min_ch_y = is4(n.dtype) ? 2 : 1;
  const bool depthwise = s.depthwise;
  ConvTiles p;
  p.th = std::min(s.dims.OH, kMaxTileSide);
  p.tw = std::min(s.dims.OW, kMaxTileSide);
  p.toc = std::min(depthwise ? s.dims.C : s.og, kMaxChannels);
  p.cc = depthwise ? p.toc : std::min(s.cg, kMaxChannels);
  for (int guard = 0;; ++guard) {
    if (guard > 200) refuse(n, "no tiling fits the SRAMs");
    const auto [act, wgt, acc, par, shape_ok] = conv_tile_needs(n, s.x_dtype, depthwise, p);
    auto shrink_spatial = [&]() {
      if (p.th > 1) p.th = (p.th + 1) / 2;
      else if (p.tw > 1) p.tw = (p.tw + 1) / 2;
      else return false;
      return true;
    };
    auto shrink_cc = [&]() {
      if (depthwise || p.cc <= min_ch_x) return false;
      p.cc = even_half(p.cc, min_ch_x);
      return true;
    };
    auto shrink_toc = [&]() {
      const i64 min = std::max(min_ch_y, depthwise ? min_ch_x : 1);
      if (p.toc <= min) return false;
      p.toc = even_half(p.toc, min);
      if (depthwise) p.cc = p.toc;
      return true;
    };
    if (!shape_ok) {
      if (!shrink_spatial()) refuse(n, "no tiling fits the ISA limits");
      continue;
    }
    if (act > L.hw.act_sram_bytes()) {
      if (shrink_spatial() || shrink_cc() || shrink_toc()) continue;
      refuse(n, "even a 1x1-pixel tile needs " + std::to_string(act) + " bytes of activation SRAM, more than the " +
                    std::to_string(L.hw.act_sram_bytes()) + " of the hardware config");
    }
    if (wgt > L.hw.wgt_sram_bytes()) {
      if (shrink_cc() || shrink_toc()) continue;
      refuse(n, "one output channel's weights (" + std::to_string(wgt / 2) + " bytes) do not fit twice in the " +
                    std::to_string(L.hw.wgt_sram_bytes()) + "-byte weight SRAM");
    }
    if (acc > L.hw.acc_sram_words()) {
      if (shrink_spatial() || shrink_toc()) continue;
      refuse(n, "the accumulator SRAM cannot hold two 1-pixel tiles");
    }
    if (par > L.hw.param_sram_bytes()) {
      if (shrink_toc()) continue;
      refuse(n, "the parameter SRAM cannot hold two requantize records");
    }
    return p;
  }
}

/// The halving steps above stop at the first tiling that fits, which for a large layer
/// is a short, wide tile (all output channels, few rows): every spatial tile then loads
/// the layer's whole weights again. Among all tilings the same halving steps can reach
/// (every combination of halved th, tw, toc, cc) that fit the same budgets, take the
/// one that moves the fewest bytes by DMA (weights once per spatial tile, input tiles
/// once per output-channel tile) plus kInstructionCostBytes per instruction it emits;
/// ties keep the halving steps' result.
void refine_conv_tiles(const Lowering& L, const Node& n, const ConvShape& s, ConvTiles& p) {
  const auto& a = n.conv;
  const i64 N = s.dims.N, OH = s.dims.OH, OW = s.dims.OW, G = s.G, cg = s.cg, og = s.og;
  const bool depthwise = s.depthwise;
  const DType x_dtype = s.x_dtype;
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
  const i64 toc0 = std::min(depthwise ? C : og, kMaxChannels);
  const i64 cc0 = depthwise ? toc0 : std::min(cg, kMaxChannels);
  const std::vector<i64> ths = halvings(std::min(OH, kMaxTileSide), spatial_half, 1);
  const std::vector<i64> tws = halvings(std::min(OW, kMaxTileSide), spatial_half, 1);
  const std::vector<i64> tocs =
      halvings(toc0, [](i64 v, i64 m) { return even_half(v, m); }, std::max(min_ch_y, depthwise ? min_ch_x : 1));
  const std::vector<i64> ccs =
      depthwise ? std::vector<i64>{0} : halvings(cc0, [](i64 v, i64 m) { return even_half(v, m); }, min_ch_x);
  auto in_rows = [&](i64 th) { return (th - 1) * a.stride_h + (kh - 1) * d + 1; };
  auto in_cols = [&](i64 tw) { return (tw - 1) * a.stride_w + (kw - 1) * d + 1; };
  auto fits = [&](const ConvTiles& t) {
    const ConvTileNeeds need = conv_tile_needs(n, x_dtype, depthwise, t);
    return need.shape_ok && need.act <= L.hw.act_sram_bytes() && need.wgt <= L.hw.wgt_sram_bytes() &&
           need.acc <= L.hw.acc_sram_words() && need.par <= L.hw.param_sram_bytes();
  };
  // Sum of the input tile extents over the tiles of one axis.
  auto extent_sum = [&](i64 out, i64 t, bool rows) {
    i64 sum = 0;
    for (i64 o = 0; o < out; o += t) sum += rows ? in_rows(std::min(t, out - o)) : in_cols(std::min(t, out - o));
    return sum;
  };
  const i64 oc_per_group = depthwise ? C : og, groups = depthwise ? 1 : G;
  const i64 weight_bytes = nbytes(n.weight_dtype, G * og * kh * kw * (depthwise ? 1 : cg));
  const i64 OC = G * og;
  auto cost = [&](const ConvTiles& t) {
    const i64 row_tiles = ceil_div(OH, t.th), col_tiles = ceil_div(OW, t.tw), spatial = row_tiles * col_tiles;
    const i64 oc_tiles = ceil_div(oc_per_group, t.toc);
    const i64 chunks = depthwise ? 1 : ceil_div(cg, t.cc);
    const i64 in_row_sum = extent_sum(OH, t.th, true);
    const i64 in_area = in_row_sum * extent_sum(OW, t.tw, false);
    const i64 act = depthwise ? nbytes(x_dtype, in_area * C) : groups * oc_tiles * nbytes(x_dtype, in_area * cg);
    // DMA instructions: an input box is one when it has all channels, else one per row;
    // likewise an output box.
    const i64 act_insns = t.cc == C ? spatial : in_row_sum * col_tiles;
    const i64 store_insns = t.toc == OC ? spatial : OH * col_tiles;
    const i64 insns = groups * oc_tiles * (chunks * (act_insns + 2 * spatial) + 3 * spatial + store_insns);
    return N * (spatial * weight_bytes + act + insns * kInstructionCostBytes);
  };
  ConvTiles start = p;
  if (depthwise) start.cc = p.toc;
  i64 best = cost(start);
  for (const i64 th : ths)
    for (const i64 tw : tws)
      for (const i64 toc : tocs)
        for (const i64 cc_raw : ccs) {
          const ConvTiles t{th, tw, toc, depthwise ? toc : cc_raw};
          if (!fits(t)) continue;
          const i64 c = cost(t);
          if (c < best) {
            best = c;
            p = t;
          }
        }
}

}  // namespace

ConvTiles choose_conv_tiles(const Lowering& L, const Node& n, const Node& x, const ConvPlan& p) {
  ConvShape s;
  s.dims = conv_dims(n, x);
  s.G = n.conv.groups;
  s.cg = s.dims.C / s.G;
  s.og = n.out_channels() / s.G;
  s.depthwise = p.depthwise;
  s.x_dtype = x.dtype;
  ConvTiles t = halve_conv_tiles(L, n, s);
  refine_conv_tiles(L, n, s, t);
  return t;
}

PoolTile pool_tile(const Lowering& L, const Node& n, const View& X, const View& Y) {
  const auto& a = n.conv;
  const i64 min_ch = is4(X.dtype) || is4(Y.dtype) ? 2 : 1;
  // Output rows, columns, channels; halve until two input and two output tiles fit.
  i64 th = std::min(Y.H, kMaxTileSide), tw = std::min(Y.W, kMaxTileSide), tc = std::min(Y.C, kMaxPoolChannels);
  if (is4(X.dtype) && tc % 2) --tc;
  auto in_rows = [&](i64 rows) { return (rows - 1) * a.stride_h + a.kernel_h; };
  auto in_cols = [&](i64 cols) { return (cols - 1) * a.stride_w + a.kernel_w; };
  for (;;) {
    const i64 need = 2 * align4(nbytes(X.dtype, in_rows(th) * in_cols(tw) * tc)) + 2 * align4(nbytes(Y.dtype, th * tw * tc));
    const bool dims_ok = in_rows(th) <= kMaxTileSide && in_cols(tw) <= kMaxTileSide;
    if (need <= L.hw.act_sram_bytes() && dims_ok) break;
    if (th > 1) th = (th + 1) / 2;
    else if (tw > 1) tw = (tw + 1) / 2;
    else if (tc > min_ch) tc = std::max(min_ch, (tc / 2) / min_ch * min_ch);
    else refuse(n, "no tile of this pooling window fits the activation SRAM or the 255-pixel tile limit");
  }
  return {th, tw, tc};
}

PoolTile upsample_tile(const Lowering& L, const Node& n, const View& X) {
  const i64 min_ch = is4(X.dtype) ? 2 : 1;
  i64 th = std::min(X.H, i64{127}), tw = std::min(X.W, i64{127}), tc = std::min(X.C, kMaxChannels);
  if (is4(X.dtype) && tc % 2) --tc;
  for (;;) {
    const i64 need = 2 * align4(nbytes(X.dtype, th * tw * tc)) + 2 * align4(nbytes(X.dtype, 4 * th * tw * tc));
    if (need <= L.hw.act_sram_bytes()) break;
    if (th > 1) th = (th + 1) / 2;
    else if (tw > 1) tw = (tw + 1) / 2;
    else if (tc > min_ch) tc = std::max(min_ch, (tc / 2) / min_ch * min_ch);
    else refuse(n, "no tile fits the activation SRAM");
  }
  return {th, tw, tc};
}

i64 elementwise_chunk(const Lowering& L, const Node& n, const std::vector<View>& inputs, const View& Y,
                      i64 param_bytes) {
  if (param_bytes > L.hw.param_sram_bytes()) {
    refuse(n, "its " + std::to_string(param_bytes) + "-byte parameter record does not fit the " +
                  std::to_string(L.hw.param_sram_bytes()) + "-byte parameter SRAM");
  }
  const i64 total = Y.elements();
  bool any4 = is4(Y.dtype);
  for (const View& X : inputs) any4 = any4 || is4(X.dtype);
  const i64 step_align = any4 ? 2 : 1;
  i64 chunk = std::min(total, kMaxVectorCount / 2 * 2);
  for (;;) {
    i64 need = 2 * align4(nbytes(Y.dtype, chunk));
    for (const View& X : inputs) need += 2 * align4(nbytes(X.dtype, chunk));
    if (need <= L.hw.act_sram_bytes() - 64) return chunk;
    if (chunk <= step_align) refuse(n, "the activation SRAM cannot hold one element of each operand");
    chunk = std::max(step_align, chunk / 2 / step_align * step_align);
  }
}

i64 concat_chunk(const Lowering& L, const Node& n, const View& Y, i64 widest) {
  const i64 pixels = Y.N * Y.H * Y.W;
  i64 chunk = std::min(pixels, kMaxRows);
  while (4 * align4(nbytes(Y.dtype, chunk * widest)) > L.hw.act_sram_bytes()) {
    if (chunk == 1) refuse(n, "one pixel of the widest input does not fit the activation SRAM");
    chunk = (chunk + 1) / 2;
  }
  return chunk;
}

}  // namespace dla::compiler::lowering

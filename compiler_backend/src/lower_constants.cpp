// Lowering, constants: the weight blocks, biases and parameter records a program loads
// from its constant section.
#include <algorithm>

#include "dla/param_records.hpp"
#include "lowering.hpp"

namespace dla::compiler::lowering {
namespace {

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

i64 add_constant(Lowering& L, const std::vector<std::uint8_t>& bytes) {
  const auto [it, placed] = L.constant_at.try_emplace(bytes, 0);
  if (placed) it->second = static_cast<i64>(L.b.add_constant(bytes, 4));
  return it->second;
}

}  // namespace

std::vector<std::int32_t> conv_weights(const Lowering& L, const Node& n, const Node& x) {
  // A linear layer after a flatten of [C, H, W] reads its input in (h, w, c) order, so its
  // columns are permuted from PyTorch's (c, h, w).
  std::vector<std::int32_t> weights = n.weights;
  if (n.kind == OpKind::kLinear && x.kind == OpKind::kFlatten) {
    const Node& src = L.node(x.inputs[0]);
    const i64 C = conv_dims(n, x).C;
    const i64 sc = src.shape[1], sh = src.shape[2], sw = src.shape[3];
    if (sh * sw > 1) {
      for (i64 oc = 0; oc < n.out_channels(); ++oc)
        for (i64 c = 0; c < sc; ++c)
          for (i64 h = 0; h < sh; ++h)
            for (i64 w = 0; w < sw; ++w) {
              weights[idx(oc * C + (h * sw + w) * sc + c)] = n.weights[idx(oc * C + (c * sh + h) * sw + w)];
            }
    }
  }
  return weights;
}

void add_conv_constants(Lowering& L, const Node& n, const Node& x, ConvPlan& p) {
  // Weight blocks [toc][kh][kw][cc] per (group, oc tile, chunk), bias and requantize
  // records per (group, oc tile).
  const i64 C = conv_dims(n, x).C, G = n.conv.groups;
  const i64 cg = C / G, og = n.out_channels() / G;
  const i64 kh = n.conv.kernel_h, kw = n.conv.kernel_w;
  const ConvTiles& tiles = p.tiles;
  const i64 oc_per_group = p.depthwise ? C : og;
  const i64 groups = p.depthwise ? 1 : G;
  const i64 oc_tiles = ceil_div(oc_per_group, tiles.toc);
  const i64 chunks = p.depthwise ? 1 : ceil_div(cg, tiles.cc);
  p.weight_blocks.assign(idx(groups), std::vector<std::vector<i64>>(idx(oc_tiles)));
  p.bias_blocks.assign(idx(groups), std::vector<i64>(idx(oc_tiles)));
  p.param_blocks = p.bias_blocks;
  for (i64 g = 0; g < groups; ++g)
    for (i64 t = 0; t < oc_tiles; ++t) {
      const i64 oc0 = g * oc_per_group + t * tiles.toc;
      const i64 toc = std::min(tiles.toc, oc_per_group - t * tiles.toc);
      for (i64 ch = 0; ch < chunks; ++ch) {
        const i64 c0 = ch * tiles.cc;
        const i64 ccur = p.depthwise ? 1 : std::min(tiles.cc, cg - c0);
        std::vector<std::uint8_t> block(idx(nbytes(n.weight_dtype, toc * kh * kw * ccur)), 0);
        std::uint64_t e = 0;
        for (i64 o = 0; o < toc; ++o)
          for (i64 y = 0; y < kh; ++y)
            for (i64 xk = 0; xk < kw; ++xk)
              for (i64 c = 0; c < ccur; ++c) {
                const i64 src = (((oc0 + o) * cg + c0 + c) * kh + y) * kw + xk;
                store_element(block.data(), n.weight_dtype, e++, p.weights[idx(src)]);
              }
        p.weight_blocks[idx(g)][idx(t)].push_back(add_constant(L, block));
      }
      std::vector<std::uint8_t> bias(idx(4 * toc));
      auto rec = clipped_record<isa::RequantRecord>(n);
      for (i64 o = 0; o < toc; ++o) {
        store_element(bias.data(), DType::I32, static_cast<std::uint64_t>(o), n.bias[idx(oc0 + o)]);
        rec.shift.push_back(record_shift(n, requant_shift(x.frac, n.weight_frac[idx(oc0 + o)], n.frac)));
      }
      p.bias_blocks[idx(g)][idx(t)] = add_constant(L, bias);
      p.param_blocks[idx(g)][idx(t)] = add_constant(L, rec.encode());
    }
}

i64 add_add_record(Lowering& L, const Node& n) {
  const AddShifts sh = add_shifts(L.node(n.inputs[0]).frac, L.node(n.inputs[1]).frac, n.frac);
  auto rec = clipped_record<isa::AddRecord>(n);
  rec.shift_a = record_shift(n, sh.shift_a);
  rec.shift_b = record_shift(n, sh.shift_b);
  rec.shift_y = record_shift(n, sh.shift_y);
  return add_constant(L, rec.encode());
}

i64 add_lut_record(Lowering& L, const Node& n, const Node& x) {
  isa::LutRecord rec;
  rec.entry = lut_table_of(n, x, L.hw.rounding_mode);
  return add_constant(L, rec.encode());
}

i64 add_avgpool_record(Lowering& L, const Node& n, const Node& x) {
  auto rec = clipped_record<isa::AvgPoolRecord>(n);
  rec.shift = record_shift(n, avgpool_requant_shift(static_cast<int>(L.hw.avgpool_shift), x.frac, n.frac));
  return add_constant(L, rec.encode());
}

}  // namespace dla::compiler::lowering

// Lowering, vector-op emission: the steps of max / average pooling, residual add,
// upsampling and concat on the vector unit, one tile (or chunk) per step.
#include <algorithm>

#include "dla/param_records.hpp"
#include "lowering.hpp"

namespace dla::compiler::lowering {
namespace {

/// Calls fn(img, c0, h0, w0, rows, cols, channels) for every tile of `V` cut into tiles of
/// t.th x t.tw pixels and t.tc channels: images outermost, then channels, rows, columns.
template <typename Fn>
void for_each_tile(const View& V, const PoolTile& t, Fn&& fn) {
  for (i64 img = 0; img < V.N; ++img)
    for (i64 c0 = 0; c0 < V.C; c0 += t.tc)
      for (i64 h0 = 0; h0 < V.H; h0 += t.th)
        for (i64 w0 = 0; w0 < V.W; w0 += t.tw) {
          fn(img, c0, h0, w0, std::min(t.th, V.H - h0), std::min(t.tw, V.W - w0), std::min(t.tc, V.C - c0));
        }
}

}  // namespace

std::vector<Step> pool_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const auto& a = n.conv;
  const bool is_max = n.kind == OpKind::kMaxPool;
  const View X = L.view(n.inputs[0]);
  const View Y = L.view(id);
  const PoolTile tile = pool_tile(L, n, X, Y);
  auto in_rows = [&](i64 rows) { return (rows - 1) * a.stride_h + a.kernel_h; };
  auto in_cols = [&](i64 cols) { return (cols - 1) * a.stride_w + a.kernel_w; };
  const ActSlots slots = act_slots(nbytes(X.dtype, in_rows(tile.th) * in_cols(tile.tw) * tile.tc),
                                   nbytes(Y.dtype, tile.th * tile.tw * tile.tc));
  const Slots &in = slots.in, &out = slots.out;
  Slots par;
  par.a[1] = align4(static_cast<i64>(isa::AvgPoolRecord::kSize));
  std::vector<Step> steps;
  for_each_tile(Y, tile, [&](i64 img, i64 c0, i64 oh0, i64 ow0, i64 cth, i64 ctw, i64 ctc) {
    const std::size_t k = steps.size();
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
      copy_contiguous(s.loads, false, Buffer::PARAM, par[k], L.plan_of(id).param,
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
  });
  return steps;
}

std::vector<Step> upsample_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const View X = L.view(n.inputs[0]);
  const View Y = L.view(id);
  const PoolTile tile = upsample_tile(L, n, X);
  const i64 tile_elements = tile.th * tile.tw * tile.tc;
  const ActSlots slots = act_slots(nbytes(X.dtype, tile_elements), nbytes(X.dtype, 4 * tile_elements));
  const Slots &in = slots.in, &out = slots.out;
  std::vector<Step> steps;
  for_each_tile(X, tile, [&](i64 img, i64 c0, i64 h0, i64 w0, i64 cth, i64 ctw, i64 ctc) {
    const std::size_t k = steps.size();
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
  });
  return steps;
}

std::vector<Step> add_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const View A = L.view(n.inputs[0]), B = L.view(n.inputs[1]), Y = L.view(id);
  const i64 total = Y.elements();
  const i64 chunk = elementwise_chunk(L, n, {A, B}, Y);
  const i64 a_bytes = align4(nbytes(A.dtype, chunk));
  const auto [in, out] = act_slots(a_bytes + align4(nbytes(B.dtype, chunk)), nbytes(Y.dtype, chunk));
  Slots par;
  par.a[1] = align4(static_cast<i64>(isa::AddRecord::kSize));
  std::vector<Step> steps;
  std::size_t k = 0;
  for (i64 e0 = 0; e0 < total; e0 += chunk, ++k) {
    const i64 cnt = std::min(chunk, total - e0);
    Step s;
    copy_contiguous(s.loads, false, Buffer::PARAM, par[k], L.plan_of(id).param, static_cast<i64>(isa::AddRecord::kSize));
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

std::vector<Step> lut_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const View X = L.view(n.inputs[0]), Y = L.view(id);
  const i64 table_bytes = static_cast<i64>(isa::LutRecord::size(X.dtype));
  const i64 total = Y.elements();
  const i64 chunk = elementwise_chunk(L, n, {X}, Y, table_bytes);
  const auto [in, out] = act_slots(align4(nbytes(X.dtype, chunk)), nbytes(Y.dtype, chunk));
  std::vector<Step> steps;
  std::size_t k = 0;
  for (i64 e0 = 0; e0 < total; e0 += chunk, ++k) {
    const i64 cnt = std::min(chunk, total - e0);
    Step s;
    // The table is the same for every step: loaded once, at PARAM 0, by the first step
    // (the load queue runs in order, so it is there before any later step's VLUT).
    if (k == 0) copy_contiguous(s.loads, false, Buffer::PARAM, 0, L.plan_of(id).param, table_bytes);
    copy_contiguous(s.loads, false, Buffer::ACT, in[k], X.dram + nbytes(X.dtype, e0), nbytes(X.dtype, cnt));
    isa::VLut v;
    v.in_addr = in[k];
    v.out_addr = out[k];
    v.count = cnt;
    v.in_type = static_cast<i64>(X.dtype);
    v.out_type = static_cast<i64>(Y.dtype);
    v.param_addr = 0;
    s.finish.push_back(v);
    copy_contiguous(s.stores, true, Buffer::ACT, out[k], Y.dram + nbytes(Y.dtype, e0), nbytes(Y.dtype, cnt));
    steps.push_back(std::move(s));
  }
  return steps;
}

std::vector<Step> concat_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const View Y = L.view(id);
  // Pixels of each input, all its channels, are copied into the output at the input's
  // channel offset. One slot layout serves every input, so the slots are stable over
  // the whole pipeline.
  i64 widest = 0;
  for (int in_id : n.inputs) widest = std::max(widest, L.view(in_id).C);
  const i64 pixels = Y.N * Y.H * Y.W;
  const i64 chunk = concat_chunk(L, n, Y, widest);
  const auto [in, out] = act_slots(nbytes(Y.dtype, chunk * widest), nbytes(Y.dtype, chunk * widest));
  std::vector<Step> steps;
  std::size_t k = 0;
  i64 c_offset = 0;
  for (int in_id : n.inputs) {
    const View X = L.view(in_id);
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

}  // namespace dla::compiler::lowering

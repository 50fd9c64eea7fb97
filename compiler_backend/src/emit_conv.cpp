// Lowering, convolution emission: the steps of a conv2d / linear layer. Each step loads
// an input tile chunk and its weights and runs one MAC onto the tile's accumulators
// (which start at the bias); the last chunk's step requantizes the tile and stores it.
#include <algorithm>

#include "dla/param_records.hpp"
#include "lowering.hpp"

namespace dla::compiler::lowering {
namespace {

isa::Mac mac_of(const ConvPlan& p, const ConvAttrs& a) {
  isa::Mac mac;
  mac.mode = static_cast<i64>(p.mode);
  mac.act_unsigned = p.act_unsigned ? 1 : 0;
  mac.accumulate = 1;  // onto the bias
  mac.depthwise = p.depthwise ? 1 : 0;
  mac.kernel_h = a.kernel_h;
  mac.kernel_w = a.kernel_w;
  mac.stride_h = a.stride_h;
  mac.stride_w = a.stride_w;
  mac.dilation = a.dilation_h;
  return mac;
}

}  // namespace

std::vector<Step> conv_steps(const Lowering& L, int id) {
  const Node& n = L.node(id);
  const ConvPlan& p = L.plan_of(id).conv;
  const ConvTiles& pt = p.tiles;
  const auto& a = n.conv;
  const View X = L.view(n.inputs[0]);
  const View Y = L.view(id);
  const auto [N, C, H, W, OH, OW] = conv_dims(n, L.node(n.inputs[0]));
  const i64 OC = n.out_channels(), G = a.groups, cg = C / G, og = OC / G;
  const i64 kh = a.kernel_h, kw = a.kernel_w, d = a.dilation_h;
  const i64 pad_t = a.pad_top, pad_l = a.pad_left;
  const i64 max_in_th = (pt.th - 1) * a.stride_h + (kh - 1) * d + 1, max_in_tw = (pt.tw - 1) * a.stride_w + (kw - 1) * d + 1;
  const auto [in, out] = act_slots(nbytes(X.dtype, max_in_th * max_in_tw * pt.cc), nbytes(Y.dtype, pt.th * pt.tw * pt.toc));
  Slots wgt, acc, par;
  wgt.a[1] = nbytes(n.weight_dtype, pt.toc * kh * kw * (p.depthwise ? 1 : pt.cc));
  acc.a[1] = pt.th * pt.tw * pt.toc;
  par.a[1] = align4(static_cast<i64>(isa::RequantRecord::size(idx(pt.toc))));

  const i64 oc_per_group = p.depthwise ? C : og;
  const i64 groups = p.depthwise ? 1 : G;
  const i64 in_per_group = p.depthwise ? C : cg;
  std::vector<Step> steps;
  std::size_t k = 0, t = 0;
  for (i64 img = 0; img < N; ++img)
    for (i64 g = 0; g < groups; ++g)
      for (i64 ot = 0; ot * pt.toc < oc_per_group; ++ot) {
        const i64 oc0 = g * oc_per_group + ot * pt.toc;  // first output channel of the tile
        const i64 toc = std::min(pt.toc, oc_per_group - ot * pt.toc);
        for (i64 oh0 = 0; oh0 < OH; oh0 += pt.th)
          for (i64 ow0 = 0; ow0 < OW; ow0 += pt.tw) {
            const i64 th = std::min(pt.th, OH - oh0), tw = std::min(pt.tw, OW - ow0);
            const i64 in_th = (th - 1) * a.stride_h + (kh - 1) * d + 1, in_tw = (tw - 1) * a.stride_w + (kw - 1) * d + 1;
            const i64 ih0 = oh0 * a.stride_h - pad_t, iw0 = ow0 * a.stride_w - pad_l;
            const i64 r_lo = std::max<i64>(0, ih0), r_hi = std::min(H, ih0 + in_th);
            const i64 c_lo = std::max<i64>(0, iw0), c_hi = std::min(W, iw0 + in_tw);
            const bool padded = r_lo > ih0 || r_hi < ih0 + in_th || c_lo > iw0 || c_hi < iw0 + in_tw;
            const i64 chunks = p.depthwise ? 1 : ceil_div(in_per_group, pt.cc);
            for (i64 ch = 0; ch < chunks; ++ch, ++k) {
              const i64 c0 = p.depthwise ? oc0 : g * cg + ch * pt.cc;
              const i64 ccur = p.depthwise ? toc : std::min(pt.cc, cg - ch * pt.cc);
              Step s;
              if (ch == 0) {
                s.loads.push_back(dma(false, Buffer::ACC, acc[t], p.bias_blocks[idx(g)][idx(ot)], 4 * toc, th * tw, 0, toc));
                copy_contiguous(s.loads, false, Buffer::PARAM, par[t], p.param_blocks[idx(g)][idx(ot)],
                                static_cast<i64>(isa::RequantRecord::size(idx(toc))));
              }
              if (padded) copy_contiguous(s.loads, false, Buffer::ACT, in[k], 0, nbytes(X.dtype, in_th * in_tw * ccur), true);
              if (r_hi > r_lo && c_hi > c_lo) {
                copy_box(s.loads, false, in[k] + nbytes(X.dtype, ((r_lo - ih0) * in_tw + (c_lo - iw0)) * ccur),
                         nbytes(X.dtype, in_tw * ccur), X.addr(img, r_lo, c_lo, c0), nbytes(X.dtype, W * C),
                         nbytes(X.dtype, C), r_hi - r_lo, c_hi - c_lo, nbytes(X.dtype, ccur));
              }
              const i64 wbytes = nbytes(n.weight_dtype, toc * kh * kw * (p.depthwise ? 1 : ccur));
              copy_contiguous(s.loads, false, Buffer::WGT, wgt[k], p.weight_blocks[idx(g)][idx(ot)][idx(ch)], wbytes);
              isa::Mac mac = mac_of(p, a);
              mac.act_addr = in[k];
              mac.wgt_addr = wgt[k];
              mac.acc_addr = acc[t];
              mac.out_h = th;
              mac.out_w = tw;
              mac.out_c = toc;
              mac.in_c = ccur;
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

}  // namespace dla::compiler::lowering

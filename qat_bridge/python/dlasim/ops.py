"""The op registry (torch.ao's "backend config" for the DLA): one OpKind per op kind.

An entry says everything dlasim knows about one kind of op, and every stage reads it
there instead of comparing op names:

- the patterns prepare_qat matches (module classes, functions, Tensor methods), each with
  a handler that checks the call's arguments and returns (kind, attrs);
- its part in the analysis: whether it requantizes (has an output format of its own),
  shares its input's format (passes the integers on), is a MAC layer (conv2d, linear),
  folds into the MAC before it (BatchNorm), is a clip fused into a requantizer, is a
  view (a flatten or nothing) or vanishes (dropout, identity); when its output is >= 0;
- `build`: the layer of the prepared model (dlasim.layers) and the node record;
- `export`: the fields of its graph_json node (see dlasim.export);
- `replay`: its integers in integer_forward;
- `describe`: the extra columns of dlasim.report.
"""

import math
import operator
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as TF
from torch import nn

from . import functional as F
from .integers import ExportError, channel_scale, to_integers, to_reals
from .layers import (AddLayer, AvgPoolLayer, ConcatLayer, FlattenLayer, MacLayer, MaxPoolLayer, QuantizeLayer,
                     Upsample2xLayer)
from .hw import dtype_range, requant_shifts
from .plan import mac_mode
from .nn import TableActivation
from .tracer import arg, input_shape, pair


class Unsupported(Exception):
    """A node the quantized region cannot hold; the message says why."""


@dataclass(eq=False)
class OpKind:
    name: str                       # the node kind ("conv2d"), in QatModel.nodes and the report
    summary: str = ""               # what it matches, for the "supported:" list of errors
    export_op: Optional[str] = None  # its op in graph_json
    requantizes: bool = False       # has a requantizer: its output gets a format of its own
    shares_format: bool = False     # passes its inputs' integers on: output and inputs share a format
    mac: bool = False               # a conv2d / linear on the MAC array (weights, BN folding, MAC mode)
    on_host: bool = False           # exported, but the host runs it (not in a device graph)
    modules: dict = field(default_factory=dict)    # nn.Module class -> handler(node, module)
    functions: dict = field(default_factory=dict)  # function -> handler(node)
    methods: dict = field(default_factory=dict)    # Tensor method name -> handler(node)
    operands: Optional[Callable] = None  # (node, attrs) -> the fx nodes it reads (default: its first argument)
    nonneg: Optional[Callable] = None    # (qnode, known) -> its output is >= 0 by construction
    shape: Optional[Callable] = None     # (qnode, shape_of) -> output shape (default: the traced one)
    build: Optional[Callable] = None     # (qnode, builder) -> (layer, node record fields, program inputs)
    export: Optional[Callable] = None    # (exporter) -> graph_json fields
    replay: Optional[Callable] = None    # (node, replayer) -> int64 tensor
    describe: Optional[Callable] = None  # (layer, model) -> report fields


# ---------------------------------------------------------------------------------------
# Shared pieces of the entries
# ---------------------------------------------------------------------------------------


def _clipped(q):
    return q.clip is not None and q.clip[0] is not None and q.clip[0] >= 0


def _nonneg_if_clipped(q, known):
    return _clipped(q)


def _nonneg_if_clipped_or_inputs(q, known):
    return _clipped(q) or all(known.get(i, False) for i in q.inputs)


def _nonneg_if_inputs(q, known):
    return all(known.get(i, False) for i in q.inputs)


def _stride_or_kernel(k, s):
    return k if s is None or (isinstance(s, (list, tuple)) and len(s) == 0) else pair(s)


def _pads4(p):
    return [p[0], p[1], p[0], p[1]]


def _geometry(q):
    a = q.attrs
    return dict(kernel=a["kernel"], stride=a["stride"], padding=a["padding"])


def _export_geometry(x):
    i = x.info
    return dict(kernel=list(i["kernel"]), stride=list(i["stride"]), padding=_pads4(i["padding"]))


# ---------------------------------------------------------------------------------------
# Graph inputs and float -> int boundaries
# ---------------------------------------------------------------------------------------


def _replay_quantize(n, r, x, clip, what):
    """The integers of a quantizer, as QuantizeLayer computes them: integer tensors are the
    integers at the node's frac (range-checked, then clipped like reals)."""
    if not x.is_floating_point():
        lo, hi = dtype_range(n["dtype"])
        if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
            raise ExportError("integer_forward: %s holds integers outside %s [%d, %d]" % (what, n["dtype"], lo, hi))
        x = to_reals(x.to(torch.int64), n["frac"])
    bad = int(torch.isfinite(x).logical_not_().sum())
    if bad and r.nonfinite == "error":
        raise ExportError("integer_forward: %s: %d non-finite value(s) (NaN or inf) of %d, which have no integer; "
                          "integer_forward(..., nonfinite='count') counts them instead" % (what, bad, x.numel()))
    y = F.quantize(x, n["dtype"], n["frac"], tuple(clip), r.hw).y
    return to_integers(y, n["frac"])


def _build_input(q, b):
    layer = QuantizeLayer(q.name, q.source, b.hw_list, q.act_id, q.clip, b.config.nonfinite,
                          "input '%s'" % q.name)
    return layer, dict(index=b.placeholders.index(q.fx_node)), [q.name]


def _build_quant_in(q, b):
    src = q.attrs["float_source"]
    layer = QuantizeLayer(q.name, src.meta.get("dla_scope", ""), b.hw_list, q.act_id, q.clip, b.config.nonfinite,
                          "the output of float node '%s'" % b.value_name[src])
    return layer, dict(float_source=b.value_name[src]), [b.value_name[src]]


INPUT = OpKind(
    "input", export_op="input", requantizes=True, operands=lambda n, attrs: [],
    nonneg=lambda q, known: _clipped(q) or bool(q.fx_node.meta.get("dla_nonneg")),
    build=_build_input,
    export=lambda x: dict(op="input", index=x.info["index"], clip=x.clip),
    replay=lambda n, r: _replay_quantize(n, r, r.inputs[n["index"]], n["clip"], "input '%s'" % n["name"]))

QUANT_IN = OpKind(
    "quant_in", export_op="quantize", requantizes=True, on_host=True,
    nonneg=lambda q, known: _clipped(q) or bool(q.attrs["float_source"].meta.get("dla_nonneg")),
    shape=lambda q, shape_of: list(q.attrs["float_source"].meta["dla_shape"]),
    build=_build_quant_in,
    export=lambda x: dict(op="quantize", inputs=[x.info["float_source"]], out=x.out),
    replay=lambda n, r: _replay_quantize(n, r, r.env[n["inputs"][0]], n["out"]["clip"],
                                         "the output of float node '%s'" % n["inputs"][0]))


# ---------------------------------------------------------------------------------------
# MAC layers: conv2d, linear (and the BatchNorm folded into them)
# ---------------------------------------------------------------------------------------


def _match_conv(n, m):
    if m.padding_mode != "zeros":
        raise Unsupported("padding_mode=%r (the DLA pads with zeros)" % m.padding_mode)
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        else:  # "same"
            tot = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
            if any(t % 2 for t in tot):
                raise Unsupported("padding='same' with an even kernel pads asymmetrically")
            pad = tuple(t // 2 for t in tot)
    conv_args = dict(stride=pair(m.stride), padding=pair(pad), dilation=pair(m.dilation), groups=int(m.groups))
    return "conv2d", dict(module=m, conv_args=conv_args)


def _build_mac(q, b):
    layer = MacLayer(q.name, q.source, b.hw_list, q.kind, q.attrs["module"], q.bn, q.inputs[0].act_id, q.act_id,
                     q.weight_dtype, q.clip, b.config, q.attrs.get("conv_args"))
    info = dict(weight_dtype=q.weight_dtype, bn=q.bn is not None, conv_args=q.attrs.get("conv_args"))
    return layer, info, [i.name for i in q.inputs]


def _export_mac(x):
    layer, name = x.layer, x.name
    x_dtype, x_frac = x.fmt[x.ins[0]]
    wq, wfr, b = layer.eval_weights()
    w_int = wq.detach().double() * channel_scale(wfr, wq.dim(), +1)
    w_q = w_int.to(torch.int64)
    if not torch.equal(w_q.double(), w_int):
        raise ExportError("export: weights of '%s' are not integers at their fracs" % name)
    if b is None:
        b = torch.zeros(wq.shape[0], dtype=wq.dtype)
    b_q, _ = torch.ops.dla.bias_integers(b.detach(), x_frac, wfr, x.hw_list)
    wkey, bkey = "w_" + name, "b_" + name
    x.tensors[wkey] = w_q.to(torch.int8)
    x.tensors[bkey] = b_q.to(torch.int32)
    j = dict(op=x.op.export_op, inputs=x.ins)
    if layer.is_conv:
        ca = x.info["conv_args"]
        j.update(out_channels=int(wq.shape[0]), kernel=[int(wq.shape[2]), int(wq.shape[3])],
                 stride=list(ca["stride"]), padding=_pads4(ca["padding"]), dilation=list(ca["dilation"]),
                 groups=int(ca["groups"]))
    else:
        j.update(out_features=int(wq.shape[0]))
    j.update(weight_dtype=layer.weight_dtype, weights={"tensor": wkey, "shape": list(wq.shape)},
             weight_frac=[int(f) for f in wfr], bias={"tensor": bkey},
             shift=requant_shifts(x_frac, wfr, x.f_out), mac_mode=mac_mode(x_dtype, layer.weight_dtype)[0],
             out=x.out)
    return j


def _replay_mac(n, r, conv):
    ins, out = n["inputs"], n["out"]
    x_dtype, x_frac = r.fmt[ins[0]]
    w = r.ex.tensor(n["weights"]["tensor"]).to(torch.int64)
    wr = to_reals(w, 0) * channel_scale(n["weight_frac"], w.dim())
    b = r.ex.tensor(n["bias"]["tensor"]).to(torch.int64)
    br = b.to(torch.float64) * channel_scale([x_frac + f for f in n["weight_frac"]], 1)
    common = dict(x_dtype=x_dtype, x_frac=x_frac, w_dtype=n["weight_dtype"], w_fracs=n["weight_frac"],
                  y_dtype=out["dtype"], y_frac=out["frac"], clip=tuple(out["clip"]), hw=r.hw)
    if conv:
        p = n["padding"]
        y = F.conv2d(r.real(ins[0]), wr, br, stride=n["stride"], padding=[p[0], p[1]], dilation=n["dilation"],
                     groups=n["groups"], **common).y
    else:
        y = F.linear(r.real(ins[0]), wr, br, **common).y
    return to_integers(y, out["frac"])


def _describe_mac(layer, model):
    _, fr, _ = layer.eval_weights()
    x_dtype = model.acts[layer.in_id].dtype
    return dict(weight_dtype=layer.weight_dtype, weight_frac_min=min(fr), weight_frac_max=max(fr),
                mac_mode=mac_mode(x_dtype, layer.weight_dtype)[0], bn_folded=layer.bn is not None)


_MAC = dict(requantizes=True, mac=True, nonneg=_nonneg_if_clipped, build=_build_mac, export=_export_mac,
            describe=_describe_mac)

CONV2D = OpKind("conv2d", summary="conv2d", export_op="conv2d", modules={nn.Conv2d: _match_conv},
                replay=lambda n, r: _replay_mac(n, r, conv=True), **_MAC)
LINEAR = OpKind("linear", summary="linear", export_op="linear",
                modules={nn.Linear: lambda n, m: ("linear", dict(module=m))},
                replay=lambda n, r: _replay_mac(n, r, conv=False), **_MAC)

# Folded into the MAC before it (dlasim.fuse); its module must match the MAC's kind.
BATCH_NORM = OpKind("bn", summary="batch_norm after them",
                    modules={nn.BatchNorm2d: lambda n, m: ("bn", dict(module=m)),
                             nn.BatchNorm1d: lambda n, m: ("bn", dict(module=m))})
BN_OF_MAC = {CONV2D: nn.BatchNorm2d, LINEAR: nn.BatchNorm1d}


# ---------------------------------------------------------------------------------------
# Clips: fused into the requantizer that produces their input
# ---------------------------------------------------------------------------------------


def _clip(lo, hi):
    return "clip", dict(clip=(lo, hi))


def _clamp(n):
    lo, hi = arg(n, 1, "min"), arg(n, 2, "max")
    for v in (lo, hi):
        if v is not None and not isinstance(v, (int, float)):
            raise Unsupported("clamp with tensor bounds (the DLA clips with constants)")
    return _clip(None if lo is None else float(lo), None if hi is None else float(hi))


def _relu(n):
    return _clip(0.0, None)


CLIP = OpKind(
    "clip", summary="relu/relu6/hardtanh/clamp",
    # ReLU6 is a Hardtanh: it must come first.
    modules={nn.ReLU6: lambda n, m: _clip(0.0, 6.0), nn.ReLU: lambda n, m: _clip(0.0, None),
             nn.Hardtanh: lambda n, m: _clip(float(m.min_val), float(m.max_val))},
    functions={TF.relu: _relu, torch.relu: _relu, getattr(torch, "relu_", None): _relu,
               TF.relu6: lambda n: _clip(0.0, 6.0),
               TF.hardtanh: lambda n: _clip(float(arg(n, 1, "min_val", -1.0)), float(arg(n, 2, "max_val", 1.0))),
               torch.clamp: _clamp, torch.clip: _clamp},
    methods={"relu": _relu, "relu_": _relu, "clamp": _clamp, "clamp_": _clamp, "clip": _clamp, "clip_": _clamp})


# ---------------------------------------------------------------------------------------
# add, concat
# ---------------------------------------------------------------------------------------


def _match_add(n):
    a, b, alpha = arg(n, 0, "input"), arg(n, 1, "other"), n.kwargs.get("alpha", 1)
    if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node) and a.meta.get("dla_is_tensor")
            and b.meta.get("dla_is_tensor")):
        raise Unsupported("adding a constant (the DLA adds two tensors)")
    if alpha != 1:
        raise Unsupported("add with alpha=%s" % alpha)
    if a.meta.get("dla_shape") != b.meta.get("dla_shape"):
        raise Unsupported("add of shapes %s and %s (the DLA adds tensors of one shape, no broadcasting)"
                          % (a.meta.get("dla_shape"), b.meta.get("dla_shape")))
    return "add", dict(operands=(a, b))


def _build_add(q, b):
    layer = AddLayer(q.name, q.source, b.hw_list, q.inputs[0].act_id, q.inputs[1].act_id, q.act_id, q.clip)
    return layer, {}, [i.name for i in q.inputs]


def _export_add(x):
    fa, fb = x.fmt[x.ins[0]][1], x.fmt[x.ins[1]][1]
    big = max(fa, fb)
    return dict(op="add", inputs=x.ins, align={"a": big - fa, "b": big - fb, "out": big - x.f_out}, out=x.out)


def _replay_add(n, r):
    ins, out = n["inputs"], n["out"]
    (ta, fa), (tb, fb) = r.fmt[ins[0]], r.fmt[ins[1]]
    y = F.add(r.real(ins[0]), r.real(ins[1]), a_dtype=ta, a_frac=fa, b_dtype=tb, b_frac=fb, y_dtype=out["dtype"],
              y_frac=out["frac"], clip=tuple(out["clip"]), hw=r.hw).y
    return to_integers(y, out["frac"])


ADD = OpKind("add", summary="+ / torch.add", export_op="add", requantizes=True,
             functions={operator.add: _match_add, operator.iadd: _match_add, torch.add: _match_add},
             methods={"add": _match_add, "add_": _match_add},
             operands=lambda n, attrs: list(attrs.pop("operands")),
             nonneg=_nonneg_if_clipped_or_inputs, build=_build_add, export=_export_add, replay=_replay_add)


def _match_cat(n):
    tensors, dim = arg(n, 0, "tensors"), arg(n, 1, "dim", 0)
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.fx.Node) for t in tensors):
        raise Unsupported("torch.cat of something other than a list of tensors")
    shape = n.meta.get("dla_shape")
    if shape is None or len(shape) != 4 or dim not in (1, -3):
        raise Unsupported("concatenation along dim %s of %d-d tensors (the DLA joins [N, C, H, W] "
                          "tensors along C)" % (dim, len(shape) if shape else 0))
    return "cat", dict(parts=list(tensors))


def _replay_concat(n, r):
    ins = n["inputs"]
    kinds = {r.fmt[i] for i in ins}
    if len(kinds) != 1:
        raise ExportError("integer_forward: concat '%s' joins tensors of formats %s" % (n["name"], sorted(kinds)))
    return torch.cat([r.env[i] for i in ins], 1)


CONCAT = OpKind("cat", summary="torch.cat (channels)", export_op="concat", shares_format=True,
                functions={torch.cat: _match_cat, getattr(torch, "concat", torch.cat): _match_cat},
                operands=lambda n, attrs: list(attrs.pop("parts")), nonneg=_nonneg_if_inputs,
                build=lambda q, b: (ConcatLayer(q.name, q.source, b.hw_list, q.act_id, len(q.inputs)), {},
                                    [i.name for i in q.inputs]),
                export=lambda x: dict(op="concat", inputs=x.ins), replay=_replay_concat)


# ---------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------


def _maxpool(k, s, p, d, ceil_mode, return_indices):
    k = pair(k)
    if pair(d) != (1, 1):
        raise Unsupported("max pool dilation %s (the DLA has none)" % (d,))
    if ceil_mode:
        raise Unsupported("max pool ceil_mode=True")
    if return_indices:
        raise Unsupported("max pool return_indices=True")
    return "maxpool", dict(kernel=k, stride=_stride_or_kernel(k, s), padding=pair(p))


def _replay_maxpool(n, r):
    ins = n["inputs"]
    xt, xf = r.fmt[ins[0]]
    y = F.max_pool2d(r.real(ins[0]), n["kernel"], n["stride"], n["padding"][:2], dtype=xt, frac=xf)[0]
    return to_integers(y, xf)


MAX_POOL = OpKind(
    "maxpool", summary="max_pool2d", export_op="max_pool", shares_format=True,
    modules={nn.MaxPool2d: lambda n, m: _maxpool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                                 m.return_indices)},
    functions={TF.max_pool2d: lambda n: _maxpool(arg(n, 1, "kernel_size"), arg(n, 2, "stride"),
                                                 arg(n, 3, "padding", 0), arg(n, 4, "dilation", 1),
                                                 arg(n, 5, "ceil_mode", False), arg(n, 6, "return_indices", False))},
    nonneg=_nonneg_if_inputs,
    build=lambda q, b: (MaxPoolLayer(q.name, q.source, b.hw_list, q.act_id, **_geometry(q)), _geometry(q),
                        [i.name for i in q.inputs]),
    export=lambda x: dict(op="max_pool", inputs=x.ins, **_export_geometry(x)),
    replay=_replay_maxpool)


def _avgpool(k, s, p, ceil_mode, count_include_pad, divisor_override):
    k = pair(k)
    if ceil_mode:
        raise Unsupported("avg pool ceil_mode=True")
    if not count_include_pad and pair(p) != (0, 0):
        raise Unsupported("avg pool count_include_pad=False (the DLA counts zero padding)")
    if divisor_override:
        raise Unsupported("avg pool divisor_override")
    return "avgpool", dict(kernel=k, stride=_stride_or_kernel(k, s), padding=pair(p))


def _replay_avgpool(n, r, k, s, p):
    ins, out = n["inputs"], n["out"]
    xt, xf = r.fmt[ins[0]]
    y = F.avg_pool2d(r.real(ins[0]), k, s, p, x_dtype=xt, x_frac=xf, y_dtype=out["dtype"], y_frac=out["frac"],
                     clip=tuple(out["clip"]), hw=r.hw).y
    return to_integers(y, out["frac"])


def _replay_gap(n, r):
    shape = r.env[n["inputs"][0]].shape
    k = [shape[2], shape[3]]
    return _replay_avgpool(n, r, k, k, [0, 0])


AVG_POOL = OpKind(
    "avgpool", summary="avg_pool2d (count_include_pad)", export_op="avg_pool", requantizes=True,
    modules={nn.AvgPool2d: lambda n, m: _avgpool(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                 m.count_include_pad, m.divisor_override)},
    functions={TF.avg_pool2d: lambda n: _avgpool(arg(n, 1, "kernel_size"), arg(n, 2, "stride"),
                                                 arg(n, 3, "padding", 0), arg(n, 4, "ceil_mode", False),
                                                 arg(n, 5, "count_include_pad", True), arg(n, 6, "divisor_override"))},
    nonneg=_nonneg_if_clipped_or_inputs,
    build=lambda q, b: (AvgPoolLayer(q.name, q.source, b.hw_list, q.inputs[0].act_id, q.act_id, clip=q.clip,
                                     **_geometry(q)), _geometry(q), [i.name for i in q.inputs]),
    export=lambda x: dict(op="avg_pool", inputs=x.ins, out=x.out, **_export_geometry(x)),
    replay=lambda n, r: _replay_avgpool(n, r, n["kernel"], n["stride"], n["padding"][:2]))


def _adaptive(n, size):
    size = pair(size) if size is not None else None
    shape = input_shape(n)
    if size == (1, 1):
        return "gap", dict(keepdim=True)
    if shape is not None and size == tuple(shape[2:]):
        return "identity", {}
    raise Unsupported("adaptive_avg_pool2d to %s (only to 1x1, the global average pool)" % (size,))


def _mean(n):
    dim, keepdim = arg(n, 1, "dim"), arg(n, 2, "keepdim", False)
    shape = input_shape(n)
    if shape is None or len(shape) != 4 or dim is None:
        raise Unsupported("mean other than over (H, W) of an [N, C, H, W] tensor")
    dims = sorted(d % 4 for d in (dim if isinstance(dim, (list, tuple)) else [dim]))
    if dims != [2, 3]:
        raise Unsupported("mean over dims %s (the DLA averages over H and W: the global average pool)" % (dim,))
    return "gap", dict(keepdim=bool(keepdim))


GLOBAL_AVG_POOL = OpKind(
    "gap", summary="adaptive_avg_pool2d(1), mean over (H, W)", export_op="global_avg_pool", requantizes=True,
    modules={nn.AdaptiveAvgPool2d: lambda n, m: _adaptive(n, m.output_size)},
    functions={TF.adaptive_avg_pool2d: lambda n: _adaptive(n, arg(n, 1, "output_size")), torch.mean: _mean},
    methods={"mean": _mean},
    nonneg=_nonneg_if_clipped_or_inputs,
    shape=lambda q, shape_of: shape_of[q.inputs[0].name][:2] + [1, 1],
    build=lambda q, b: (AvgPoolLayer(q.name, q.source, b.hw_list, q.inputs[0].act_id, q.act_id, None, None, None,
                                     q.clip), {}, [i.name for i in q.inputs]),
    export=lambda x: dict(op="global_avg_pool", inputs=x.ins, out=x.out),
    replay=_replay_gap)


# ---------------------------------------------------------------------------------------
# Upsample, flatten and the nodes that vanish
# ---------------------------------------------------------------------------------------


def _upsample(n, size, scale, mode):
    if mode != "nearest":
        raise Unsupported("upsampling mode %r (the DLA upsamples nearest x2)" % mode)
    src, out = input_shape(n), n.meta.get("dla_shape")
    if src is None or out is None or len(src) != 4 or tuple(out[2:]) != (2 * src[2], 2 * src[3]):
        raise Unsupported("upsampling other than nearest x2 (scale_factor=%s, size=%s)" % (scale, size))
    return "upsample", {}


UPSAMPLE = OpKind(
    "upsample", summary="interpolate (nearest, x2)", export_op="upsample2x", shares_format=True,
    modules={nn.Upsample: lambda n, m: _upsample(n, m.size, m.scale_factor, m.mode)},
    functions={TF.interpolate: lambda n: _upsample(n, arg(n, 1, "size"), arg(n, 2, "scale_factor"),
                                                   arg(n, 3, "mode", "nearest")),
               getattr(TF, "upsample_nearest", None): lambda n: _upsample(n, arg(n, 1, "size"),
                                                                           arg(n, 2, "scale_factor"), "nearest"),
               getattr(TF, "upsample", None): lambda n: _upsample(n, arg(n, 1, "size"), arg(n, 2, "scale_factor"),
                                                                  arg(n, 3, "mode", "nearest"))},
    nonneg=_nonneg_if_inputs,
    build=lambda q, b: (Upsample2xLayer(q.name, q.source, b.hw_list), {}, [i.name for i in q.inputs]),
    export=lambda x: dict(op="upsample2x", inputs=x.ins),
    replay=lambda n, r: r.env[n["inputs"][0]].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def _view(*_):
    return "view", {}


def _identity(*_):
    return "identity", {}


FLATTEN = OpKind(
    "flatten", summary="flatten / view / reshape to [N, C*H*W]", export_op="flatten", shares_format=True,
    nonneg=_nonneg_if_inputs,
    shape=lambda q, shape_of: [shape_of[q.inputs[0].name][0], int(math.prod(shape_of[q.inputs[0].name][1:]))],
    build=lambda q, b: (FlattenLayer(q.name, q.source, b.hw_list), {}, [i.name for i in q.inputs]),
    export=lambda x: dict(op="flatten", inputs=x.ins),
    replay=lambda n, r: torch.flatten(r.env[n["inputs"][0]], 1))

# A reshape: a flatten to [N, C*H*W] (FLATTEN) or, to its own shape, nothing (dlasim.fuse).
VIEW = OpKind("view", modules={nn.Flatten: _view}, functions={torch.flatten: _view},
              methods={"flatten": _view, "view": _view, "reshape": _view})

IDENTITY = OpKind("identity", summary="dropout, identity",
                  modules={nn.Dropout: _identity, nn.Dropout2d: _identity, nn.Identity: _identity},
                  functions={TF.dropout: _identity, TF.dropout2d: _identity, getattr(TF, "dropout1d", None): _identity},
                  methods={"contiguous": _identity})


# ---------------------------------------------------------------------------------------
# Nonlinear activations: the lookup-table unit (VLUT), after the op that produced x
# ---------------------------------------------------------------------------------------


def _lut(function, alpha=0.0):
    return "lut", dict(function=function, alpha=float(alpha))


def _gelu(approximate):
    if approximate != "tanh":
        raise Unsupported("GELU with approximate=%r (the DLA's table holds the tanh form: "
                          "nn.GELU(approximate='tanh'); supported: %s)" % (approximate, SUPPORTED))
    return _lut("gelu_tanh")


def _table(n, m):
    return "lut", dict(function="table", alpha=0.0, fn=m.fn)


def _build_lut(q, b):
    from .activations import LutLayer  # dlasim.activations imports dlasim.layers
    if q.clip is not None:
        raise Unsupported("a clip/ReLU after %s '%s' (the table unit has no clip; clip before it)"
                          % (q.attrs["function"], q.name))
    layer = LutLayer(q.name, q.source, b.hw_list, q.inputs[0].act_id, q.act_id, q.attrs["function"],
                     q.attrs["alpha"], fn=q.attrs.get("fn"))
    return layer, dict(function=q.attrs["function"], alpha=q.attrs["alpha"]), [i.name for i in q.inputs]


def _export_lut(x):
    j = dict(op="lut", inputs=x.ins, function=x.info["function"], out=x.out)
    if x.info["function"] in ("leaky_relu", "elu"):
        j["alpha"] = x.info["alpha"]
    if x.info["function"] == "table":  # the table at the exported formats
        x_dtype, x_frac = x.fmt[x.ins[0]]
        j["table"] = x.layer.table_for(x_dtype, x_frac, x.out["dtype"], x.out["frac"])
    return j


def _replay_lut(n, r):
    ins, out = n["inputs"], n["out"]
    x_dtype, x_frac = r.fmt[ins[0]]
    y = F.lut(r.real(ins[0]), n["function"], x_dtype=x_dtype, x_frac=x_frac, y_dtype=out["dtype"],
              y_frac=out["frac"], alpha=n.get("alpha", 0.0), table=n.get("table"), hw=r.hw).y
    return to_integers(y, out["frac"])


LUT = OpKind(
    "lut", summary="silu/sigmoid/tanh/hardswish/hardsigmoid/gelu(tanh)/leaky_relu/elu/dlasim.nn.TableActivation "
                 "(lookup table)",
    export_op="lut", requantizes=True,
    modules={nn.SiLU: lambda n, m: _lut("silu"), nn.Sigmoid: lambda n, m: _lut("sigmoid"),
             nn.Tanh: lambda n, m: _lut("tanh"), nn.Hardswish: lambda n, m: _lut("hardswish"),
             nn.Hardsigmoid: lambda n, m: _lut("hardsigmoid"),
             nn.LeakyReLU: lambda n, m: _lut("leaky_relu", m.negative_slope),
             nn.GELU: lambda n, m: _gelu(getattr(m, "approximate", "none")),
             nn.ELU: lambda n, m: _lut("elu", m.alpha), TableActivation: _table},
    functions={TF.silu: lambda n: _lut("silu"), torch.sigmoid: lambda n: _lut("sigmoid"),
               getattr(TF, "sigmoid", None): lambda n: _lut("sigmoid"), torch.tanh: lambda n: _lut("tanh"),
               getattr(TF, "tanh", None): lambda n: _lut("tanh"), TF.hardswish: lambda n: _lut("hardswish"),
               TF.hardsigmoid: lambda n: _lut("hardsigmoid"),
               TF.leaky_relu: lambda n: _lut("leaky_relu", arg(n, 1, "negative_slope", 0.01)),
               TF.gelu: lambda n: _gelu(n.kwargs.get("approximate", "none")),
               TF.elu: lambda n: _lut("elu", arg(n, 1, "alpha", 1.0))},
    methods={"sigmoid": lambda n: _lut("sigmoid"), "tanh": lambda n: _lut("tanh")},
    nonneg=lambda q, known: q.attrs["function"] in ("sigmoid", "hardsigmoid"),
    build=_build_lut, export=_export_lut, replay=_replay_lut)


# ---------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------

OPS = [INPUT, QUANT_IN, CONV2D, LINEAR, BATCH_NORM, CLIP, ADD, CONCAT, MAX_POOL, AVG_POOL, GLOBAL_AVG_POOL, UPSAMPLE,
       FLATTEN, VIEW, IDENTITY]
OPS.append(LUT)  # activation tables, matched like the rest
BY_NAME = {op.name: op for op in OPS}
BY_EXPORT_OP = {op.export_op: op for op in OPS if op.export_op}
_FUNCTIONS = {f: (op, h) for op in OPS for f, h in op.functions.items() if f is not None}
_METHODS = {m: (op, h) for op in OPS for m, h in op.methods.items()}

SUPPORTED = ", ".join(s for s in (op.summary for op in OPS) if s)


def match(n, modules):
    """(OpKind, attrs) of a tensor-producing fx node in the quantized region; Unsupported
    says why a node cannot be there."""
    if n.op == "placeholder":
        return INPUT, {}
    if n.op == "get_attr":
        raise Unsupported("a constant tensor (get_attr) cannot feed the quantized region")
    if n.op == "call_module":
        m = modules[n.target]
        for op in OPS:
            for cls, handler in op.modules.items():
                if isinstance(m, cls):
                    return _resolved(handler(n, m))
        what = type(m).__name__
    elif n.op == "call_function":
        if n.target in _FUNCTIONS:
            return _resolved(_FUNCTIONS[n.target][1](n))
        what = getattr(n.target, "__name__", n.target)
    elif n.op == "call_method":
        if n.target in _METHODS:
            return _resolved(_METHODS[n.target][1](n))
        what = "Tensor.%s" % n.target
    else:
        raise Unsupported("unsupported node kind %s" % n.op)
    raise Unsupported("the DLA has no %s in the quantized region (supported: %s)" % (what, SUPPORTED))


def _resolved(kind_attrs):
    kind, attrs = kind_attrs
    return BY_NAME[kind], attrs


def operands(op, n, attrs):
    """The fx nodes a quantized node of kind `op` reads."""
    if op.operands is not None:
        return op.operands(n, attrs)
    return [n.args[0] if n.args else next(iter(n.kwargs.values()))]


__all__ = ["OpKind", "OPS", "BY_NAME", "BY_EXPORT_OP", "SUPPORTED", "Unsupported", "match", "operands", "INPUT",
           "QUANT_IN", "CONV2D", "LINEAR", "BATCH_NORM", "BN_OF_MAC", "CLIP", "ADD", "CONCAT", "MAX_POOL", "AVG_POOL",
           "GLOBAL_AVG_POOL", "UPSAMPLE", "FLATTEN", "VIEW", "IDENTITY", "LUT"]

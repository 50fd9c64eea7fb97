"""prepare_qat: an ordinary PyTorch model in, a model whose eval forward is the DLA's integers out.

    prepared = dlasim.prepare_qat(model, (example_images,), hw="default",
                                  plan=dlasim.PrecisionPlan.preset("int4", input={"dtype": "u8", "frac": 8}),
                                  observer="moving_average", observer_disable_epoch=3, freeze_bn_epoch=2)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for epoch in range(epochs):
        dlasim.set_epoch(prepared, epoch)        # applies observer_disable_epoch / freeze_bn_epoch
        for x, y in loader: ...                  # the usual loop; DistributedDataParallel works
    prepared.eval()
    dlasim.export(prepared, (example_images,), "net.dla.pt")

What prepare_qat does (no edits to the model's code):
1. traces the model with torch.fx (recording the module every op was called inside) and
   runs the example inputs through it for the shapes;
2. folds every BatchNorm into the conv2d / linear before it (QMac: batch statistics in
   training, then the running ones once frozen);
3. fuses ReLU, ReLU6, hardtanh and clamp into the clip of the requantizer that produces
   their input (through max pools, upsamples, flattens and concats, which commute with a
   clip), so the hardware's requantize does them;
4. finds every `+` / torch.add / Tensor.add and every torch.cat and gives the tensors the
   hardware requires to share a frac one activation format (concat inputs and output; max
   pool, upsample, flatten and their input); adds align their operands by shifts;
5. applies the precision plan (dlasim.plan) and checks every MAC layer's precision mode
   against the hardware config;
6. replaces the layers by bit-exact modules (dlasim.qat_modules) and quantizes the graph
   inputs and the outputs of float islands.

Supported in the quantized region: nn.Conv2d (zero padding; 'same' for odd kernels),
nn.Linear ([N, K] inputs), BatchNorm1d/2d after them, ReLU/ReLU6/Hardtanh/clamp, add,
torch.cat along channels, max_pool2d, avg_pool2d (count_include_pad), adaptive_avg_pool2d
to 1x1 and mean over H and W, nearest upsampling by 2, flatten / view / reshape to [N, C*H*W],
dropout and identity (removed). Anything else stops prepare_qat with an error that names
the node and shows the plan entry that leaves it in float.
"""

import copy
import math
import operator
from dataclasses import dataclass, fields, replace
from typing import Optional

import torch
import torch.fx as fx
import torch.nn.functional as TF
from torch import nn

from .hw import HwOptions
from .observers import OBSERVERS, WEIGHT_OBSERVERS
from .plan import MAC_MODES_TEXT, LayerPrecision, PlanError, PrecisionPlan, act_bits, act_name, input_specs, \
    mac_mode, name_matches, parse_act, parse_weight
from .qat_modules import ActFormat, QAdd, QAvgPool, QConcat, QFlatten, QInput, QMac, QMaxPool, QUpsample2x, \
    _Ctx


class PrepareError(ValueError):
    """The model cannot be prepared as it is (an op the DLA does not run in the quantized
    region, a pattern the hardware cannot fuse). The message names the node."""


@dataclass
class QatConfig:
    """Observers and schedules (see dlasim.observers)."""

    observer: str = "moving_average"      # minmax | moving_average | percentile | mse
    averaging_constant: float = 0.01      # moving averages
    percentile: float = 99.99             # percentile observer
    weight_observer: str = "max"          # max | mse (per output channel)
    observer_disable_epoch: Optional[int] = None  # set_epoch(e >= this) freezes every frac
    freeze_bn_epoch: Optional[int] = None         # set_epoch(e >= this) folds BN with running stats
    learnable_scales: bool = False        # TQT-style learnable log2 scales (weights and activations)
    bn_stats_grad: object = True          # gradient through the batch statistics: True (as BatchNorm),
    #                                       "weight" (to the weights only: cheaper), False (none)

    def validate(self):
        if self.observer not in OBSERVERS:
            raise ValueError("observer %r is not one of %s" % (self.observer, ", ".join(OBSERVERS)))
        if self.weight_observer not in WEIGHT_OBSERVERS:
            raise ValueError("weight_observer %r is not one of %s" % (self.weight_observer, ", ".join(WEIGHT_OBSERVERS)))
        if not 0 < self.averaging_constant <= 1:
            raise ValueError("averaging_constant must be in (0, 1]")
        if not 50 < self.percentile <= 100:
            raise ValueError("percentile must be in (50, 100]")
        return self


# ---------------------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------------------


class _ScopeTracer(fx.Tracer):
    """Records, in node.meta["dla_scope"], the module each op was traced inside."""

    def __init__(self):
        super().__init__()
        self._scope = [""]

    def call_module(self, m, forward, args, kwargs):
        self._scope.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._scope.pop()

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta["dla_scope"] = self._scope[-1]
        return node


class _Recorder(fx.Interpreter):
    def run_node(self, n):
        r = super().run_node(n)
        is_t = isinstance(r, torch.Tensor)
        n.meta["dla_is_tensor"] = is_t
        n.meta["dla_shape"] = tuple(r.shape) if is_t else None
        n.meta["dla_nonneg"] = bool(is_t and r.is_floating_point() and r.numel() > 0 and float(r.min()) >= 0)
        return r


def _trace(model, example_inputs):
    tracer = _ScopeTracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # torch.fx.proxy.TraceError and friends
        raise PrepareError("dlasim.prepare_qat: torch.fx cannot trace %s: %s. Control flow that depends on "
                           "tensor values cannot be traced; move it out of forward() or into a leaf module "
                           "left in float." % (type(model).__name__, e)) from e
    gm = fx.GraphModule(model, graph)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            _Recorder(gm).run(*example_inputs)
    finally:
        for m, t in flags.items():
            m.training = t
    return gm


# ---------------------------------------------------------------------------------------
# The quantized graph
# ---------------------------------------------------------------------------------------

REQUANTIZING = ("input", "quant_in", "conv2d", "linear", "add", "avgpool", "gap")
PASS_THROUGH = ("maxpool", "upsample", "flatten", "cat")
MAC = ("conv2d", "linear")

SUPPORTED = ("conv2d, linear, batch_norm after them, relu/relu6/hardtanh/clamp, + / torch.add, torch.cat "
             "(channels), max_pool2d, avg_pool2d, adaptive_avg_pool2d(1), mean over (H, W), interpolate "
             "(nearest, x2), flatten / view / reshape to [N, C*H*W], dropout, identity")


class QNode:
    def __init__(self, name, kind, inputs, fx_node=None, **attrs):
        self.name = name
        self.kind = kind
        self.inputs = list(inputs)
        self.fx_node = fx_node
        self.attrs = attrs
        self.clip = None
        self.bn = None
        self.aliases = []  # fx nodes folded or fused into this one
        self.act_id = None
        self.weight_dtype = None

    @property
    def names(self):
        out = []
        for n in [self.fx_node] + self.aliases:
            if n is None:
                continue
            out += [n.name, n.meta.get("dla_scope", "")]
            if n.op == "call_module":
                out.append(str(n.target))
        return out

    @property
    def source(self):
        n = self.fx_node
        if n is None:
            return ""
        return str(n.target) if n.op == "call_module" else n.meta.get("dla_scope", "")

    def __repr__(self):
        return "QNode(%s, %s)" % (self.name, self.kind)


class _Ref:
    """A reference to a value of the program (by name)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __getstate__(self):
        return self.name

    def __setstate__(self, state):
        self.name = state

    def __repr__(self):
        return "%" + self.name


def _pair(v):
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _arg(node, i, name, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _describe(node):
    if node.op == "call_module":
        what = "module %s '%s'" % (type(node.graph.owning_module.get_submodule(node.target)).__name__, node.target)
    elif node.op == "call_function":
        what = "function %s" % getattr(node.target, "__name__", str(node.target))
    elif node.op == "call_method":
        what = "method Tensor.%s" % node.target
    else:
        what = "%s %s" % (node.op, node.target)
    scope = node.meta.get("dla_scope", "")
    return "node '%s' (%s%s)" % (node.name, what, ", inside module '%s'" % scope if scope and node.op != "call_module"
                                 else "")


def _float_hint(node):
    key = str(node.target) if node.op == "call_module" else node.name
    return "leave it in float (it then runs on the host) with plan=dict(float_layers=[%r])" % key


class _Unsupported(Exception):
    pass


class _Analyzer:
    def __init__(self, gm, example_inputs, hw, plan, config):
        self.gm = gm
        self.example_inputs = example_inputs
        self.hw = hw
        self.plan = plan
        self.config = config
        self.modules = dict(gm.named_modules())

    # -- classification -----------------------------------------------------------------

    def fail(self, node, why, hint=True):
        msg = "dlasim.prepare_qat: %s: %s" % (_describe(node), why)
        if hint:
            msg += "; %s" % _float_hint(node)
        raise PrepareError(msg)

    def classify(self, n):
        """(kind, attrs) of a tensor-producing fx node in the quantized region."""
        shape = n.meta.get("dla_shape")
        if n.op == "placeholder":
            return "input", {}
        if n.op == "get_attr":
            raise _Unsupported("a constant tensor (get_attr) cannot feed the quantized region")
        if n.op == "call_module":
            return self.classify_module(n, self.modules[n.target])
        if n.op == "call_function":
            return self.classify_function(n, shape)
        if n.op == "call_method":
            return self.classify_method(n, shape)
        raise _Unsupported("unsupported node kind %s" % n.op)

    def classify_module(self, n, m):
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise _Unsupported("padding_mode=%r (the DLA pads with zeros)" % m.padding_mode)
            return "conv2d", dict(module=m, conv_args=self.conv_args(n, m))
        if isinstance(m, nn.Linear):
            return "linear", dict(module=m)
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            return "bn", dict(module=m)
        if isinstance(m, nn.ReLU6):
            return "clip", dict(clip=(0.0, 6.0))
        if isinstance(m, nn.ReLU):
            return "clip", dict(clip=(0.0, None))
        if isinstance(m, nn.Hardtanh):
            return "clip", dict(clip=(float(m.min_val), float(m.max_val)))
        if isinstance(m, nn.MaxPool2d):
            return self.maxpool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)
        if isinstance(m, nn.AvgPool2d):
            return self.avgpool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                m.divisor_override)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return self.adaptive(n, m.output_size)
        if isinstance(m, nn.Upsample):
            return self.upsample(n, m.size, m.scale_factor, m.mode)
        if isinstance(m, nn.Flatten):
            return "view", {}
        if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
            return "identity", {}
        raise _Unsupported("the DLA has no %s in the quantized region (supported: %s)" % (type(m).__name__, SUPPORTED))

    def conv_args(self, n, m):
        pad = m.padding
        if isinstance(pad, str):
            if pad == "valid":
                pad = (0, 0)
            else:  # "same"
                tot = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
                if any(t % 2 for t in tot):
                    raise _Unsupported("padding='same' with an even kernel pads asymmetrically")
                pad = tuple(t // 2 for t in tot)
        return dict(stride=_pair(m.stride), padding=_pair(pad), dilation=_pair(m.dilation), groups=int(m.groups))

    def maxpool(self, k, s, p, d, ceil_mode, return_indices):
        k = _pair(k)
        s = k if s is None or (isinstance(s, (list, tuple)) and len(s) == 0) else _pair(s)
        if _pair(d) != (1, 1):
            raise _Unsupported("max pool dilation %s (the DLA has none)" % (d,))
        if ceil_mode:
            raise _Unsupported("max pool ceil_mode=True")
        if return_indices:
            raise _Unsupported("max pool return_indices=True")
        return "maxpool", dict(kernel=k, stride=s, padding=_pair(p))

    def avgpool(self, k, s, p, ceil_mode, count_include_pad, divisor_override):
        k = _pair(k)
        s = k if s is None or (isinstance(s, (list, tuple)) and len(s) == 0) else _pair(s)
        if ceil_mode:
            raise _Unsupported("avg pool ceil_mode=True")
        if not count_include_pad and _pair(p) != (0, 0):
            raise _Unsupported("avg pool count_include_pad=False (the DLA counts zero padding)")
        if divisor_override:
            raise _Unsupported("avg pool divisor_override")
        return "avgpool", dict(kernel=k, stride=s, padding=_pair(p))

    def adaptive(self, n, size):
        size = _pair(size) if size is not None else None
        shape = n.args[0].meta.get("dla_shape") if isinstance(n.args[0], fx.Node) else None
        if size == (1, 1):
            return "gap", dict(keepdim=True)
        if shape is not None and size == tuple(shape[2:]):
            return "identity", {}
        raise _Unsupported("adaptive_avg_pool2d to %s (only to 1x1, the global average pool)" % (size,))

    def upsample(self, n, size, scale, mode):
        if mode != "nearest":
            raise _Unsupported("upsampling mode %r (the DLA upsamples nearest x2)" % mode)
        src = n.args[0].meta.get("dla_shape") if isinstance(n.args[0], fx.Node) else None
        out = n.meta.get("dla_shape")
        if src is None or out is None or len(src) != 4 or tuple(out[2:]) != (2 * src[2], 2 * src[3]):
            raise _Unsupported("upsampling other than nearest x2 (scale_factor=%s, size=%s)" % (scale, size))
        return "upsample", {}

    def classify_function(self, n, shape):
        t = n.target
        if t in (operator.add, operator.iadd, torch.add):
            return self.add_kind(n, n.args[0] if n.args else n.kwargs.get("input"),
                                 n.args[1] if len(n.args) > 1 else n.kwargs.get("other"), n.kwargs.get("alpha", 1))
        if t in (torch.cat, getattr(torch, "concat", torch.cat)):
            return self.cat_kind(n, _arg(n, 0, "tensors"), _arg(n, 1, "dim", 0))
        if t in (TF.relu, torch.relu, getattr(torch, "relu_", None)):
            return "clip", dict(clip=(0.0, None))
        if t is TF.relu6:
            return "clip", dict(clip=(0.0, 6.0))
        if t is TF.hardtanh:
            return "clip", dict(clip=(float(_arg(n, 1, "min_val", -1.0)), float(_arg(n, 2, "max_val", 1.0))))
        if t in (torch.clamp, torch.clip):
            return self.clamp_kind(_arg(n, 1, "min"), _arg(n, 2, "max"))
        if t is TF.max_pool2d:
            return self.maxpool(_arg(n, 1, "kernel_size"), _arg(n, 2, "stride"), _arg(n, 3, "padding", 0),
                                _arg(n, 4, "dilation", 1), _arg(n, 5, "ceil_mode", False),
                                _arg(n, 6, "return_indices", False))
        if t is TF.avg_pool2d:
            return self.avgpool(_arg(n, 1, "kernel_size"), _arg(n, 2, "stride"), _arg(n, 3, "padding", 0),
                                _arg(n, 4, "ceil_mode", False), _arg(n, 5, "count_include_pad", True),
                                _arg(n, 6, "divisor_override"))
        if t is TF.adaptive_avg_pool2d:
            return self.adaptive(n, _arg(n, 1, "output_size"))
        if t in (TF.interpolate, getattr(TF, "upsample_nearest", None), getattr(TF, "upsample", None)):
            return self.upsample(n, _arg(n, 1, "size"), _arg(n, 2, "scale_factor"),
                                 _arg(n, 3, "mode", "nearest") if t is not getattr(TF, "upsample_nearest", None)
                                 else "nearest")
        if t is torch.flatten:
            return "view", {}
        if t in (TF.dropout, TF.dropout2d, getattr(TF, "dropout1d", None)):
            return "identity", {}
        if t is torch.mean:
            return self.mean_kind(n, _arg(n, 1, "dim"), _arg(n, 2, "keepdim", False))
        raise _Unsupported("the DLA has no %s in the quantized region (supported: %s)"
                           % (getattr(t, "__name__", t), SUPPORTED))

    def classify_method(self, n, shape):
        m = n.target
        if m in ("add", "add_"):
            return self.add_kind(n, n.args[0], _arg(n, 1, "other"), n.kwargs.get("alpha", 1))
        if m in ("relu", "relu_"):
            return "clip", dict(clip=(0.0, None))
        if m in ("clamp", "clamp_", "clip", "clip_"):
            return self.clamp_kind(_arg(n, 1, "min"), _arg(n, 2, "max"))
        if m in ("flatten", "view", "reshape"):
            return "view", {}
        if m in ("contiguous",):
            return "identity", {}
        if m == "mean":
            return self.mean_kind(n, _arg(n, 1, "dim"), _arg(n, 2, "keepdim", False))
        raise _Unsupported("the DLA has no Tensor.%s in the quantized region (supported: %s)" % (m, SUPPORTED))

    def add_kind(self, n, a, b, alpha):
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node) and a.meta.get("dla_is_tensor")
                and b.meta.get("dla_is_tensor")):
            raise _Unsupported("adding a constant (the DLA adds two tensors)")
        if alpha != 1:
            raise _Unsupported("add with alpha=%s" % alpha)
        if a.meta.get("dla_shape") != b.meta.get("dla_shape"):
            raise _Unsupported("add of shapes %s and %s (the DLA adds tensors of one shape, no broadcasting)"
                               % (a.meta.get("dla_shape"), b.meta.get("dla_shape")))
        return "add", dict(operands=(a, b))

    def cat_kind(self, n, tensors, dim):
        if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, fx.Node) for t in tensors):
            raise _Unsupported("torch.cat of something other than a list of tensors")
        shape = n.meta.get("dla_shape")
        if shape is None or len(shape) != 4 or dim not in (1, -3):
            raise _Unsupported("concatenation along dim %s of %d-d tensors (the DLA joins [N, C, H, W] "
                               "tensors along C)" % (dim, len(shape) if shape else 0))
        return "cat", dict(parts=list(tensors))

    def clamp_kind(self, lo, hi):
        for v in (lo, hi):
            if v is not None and not isinstance(v, (int, float)):
                raise _Unsupported("clamp with tensor bounds (the DLA clips with constants)")
        return "clip", dict(clip=(None if lo is None else float(lo), None if hi is None else float(hi)))

    def mean_kind(self, n, dim, keepdim):
        shape = n.args[0].meta.get("dla_shape") if isinstance(n.args[0], fx.Node) else None
        if shape is None or len(shape) != 4 or dim is None:
            raise _Unsupported("mean other than over (H, W) of an [N, C, H, W] tensor")
        dims = sorted(d % 4 for d in (dim if isinstance(dim, (list, tuple)) else [dim]))
        if dims != [2, 3]:
            raise _Unsupported("mean over dims %s (the DLA averages over H and W: the global average pool)" % (dim,))
        return "gap", dict(keepdim=bool(keepdim))

    # -- building -----------------------------------------------------------------------

    def run(self):
        graph = self.gm.graph
        plan = self.plan
        fx_nodes = list(graph.nodes)
        self.placeholders = [n for n in fx_nodes if n.op == "placeholder"]
        self.output_node = next(n for n in fx_nodes if n.op == "output")

        # 1. Float region: the plan's float_layers, and the non-tensor helpers (x.size(0)...).
        is_float = {}
        for pattern in plan.float_layers:
            hits = [n for n in fx_nodes if n.op not in ("output",) and name_matches(pattern, self.fx_names(n))]
            if not hits:
                raise PlanError("plan.float_layers entry %r names no layer or node of the model (%s)"
                                % (pattern, self.name_examples()))
            for n in hits:
                is_float[n] = True
        for n in fx_nodes:
            if n.op == "output":
                continue
            if not n.meta.get("dla_is_tensor") or n.op == "get_attr":
                is_float[n] = True
        self.is_float = is_float

        # 2. One QNode per quantized fx node (identity-like nodes become aliases).
        value = {}  # fx node -> QNode (quantized values) ; float nodes map to None
        qnodes = []
        self.float_nodes = []
        for n in fx_nodes:
            if n.op == "output":
                continue
            if is_float.get(n):
                self.float_nodes.append(n)
                continue
            try:
                kind, attrs = self.classify(n)
            except _Unsupported as e:
                self.fail(n, "not supported in the quantized region: %s" % e)
            ins = self.quant_inputs(n, kind, attrs, value)
            identity = kind == "identity" or (kind == "view" and self.view_is_identity(n))
            if identity and isinstance(ins[0], fx.Node):
                is_float[n] = True  # dropout / identity of a float value: float code too
                self.float_nodes.append(n)
                continue
            if identity:
                value[n] = ins[0]
                ins[0].aliases.append(n)
                continue
            if kind == "view":
                src, out = n.args[0].meta.get("dla_shape"), n.meta.get("dla_shape")
                if src is None or len(src) != 4 or tuple(out) != (src[0], src[1] * src[2] * src[3]):
                    self.fail(n, "a reshape from %s to %s; the DLA flattens [N, C, H, W] to [N, C*H*W] only"
                              % (src, out))
                kind = "flatten"
            q = QNode(n.name, kind, ins, n, **attrs)
            qnodes.append(q)
            value[n] = q
            if kind == "gap" and not attrs["keepdim"]:
                q.attrs["keepdim"] = True
                flat = QNode(n.name + "_flatten", "flatten", [q], n)
                qnodes.append(flat)
                value[n] = flat
        self.value = value

        # 3. Float -> quantized boundaries: quantize the float values quantized nodes read.
        qnodes = self.insert_boundaries(qnodes)
        # 4. Fold BatchNorm into the MAC before it.
        users = self.users(qnodes)
        for q in [q for q in qnodes if q.kind == "bn"]:
            p = q.inputs[0]
            if p.kind not in MAC or p.bn is not None or p.clip is not None or users[p] != [q] or self.float_users(p):
                what = {"input": "a graph input", "quant_in": "a float node"}.get(p.kind, "'%s' (%s)" % (p.name, p.kind))
                self.fail(q.fx_node, "a BatchNorm must directly follow a conv2d or linear whose only user it is, "
                          "to be folded into it (this one follows %s)" % what)
            expect = nn.BatchNorm2d if p.kind == "conv2d" else nn.BatchNorm1d
            if not isinstance(q.attrs["module"], expect):
                self.fail(q.fx_node, "%s after a %s" % (type(q.attrs["module"]).__name__, p.kind))
            p.bn = q.attrs["module"]
            p.aliases.append(q.fx_node)
            self.replace(qnodes, q, p)
        # 5. Fuse clips into the requantizer that produces their input (a boundary
        #    quantizer is one too).
        for q in [q for q in qnodes if q.kind == "clip"]:
            users = self.users(qnodes)
            self.push_clip(q.inputs[0], q.attrs["clip"], q, users)
            q.inputs[0].aliases.append(q.fx_node)
            self.replace(qnodes, q, q.inputs[0])
        self.qnodes = qnodes
        return self

    def fx_names(self, n):
        names = [n.name, n.meta.get("dla_scope", "")]
        if n.op == "call_module":
            names.append(str(n.target))
        return names

    def name_examples(self, limit=12):
        names = []
        for n in self.gm.graph.nodes:
            if n.op in ("call_module",):
                names.append(str(n.target))
            elif n.op in ("call_function", "call_method"):
                names.append(n.name)
        more = "" if len(names) <= limit else ", ..."
        return "the model has: " + ", ".join(names[:limit]) + more

    def view_is_identity(self, n):
        src = n.args[0].meta.get("dla_shape") if isinstance(n.args[0], fx.Node) else None
        return src is not None and tuple(src) == tuple(n.meta.get("dla_shape") or ())

    def quant_inputs(self, n, kind, attrs, value):
        """The QNodes (or float fx nodes, resolved later) a quantized node reads."""
        if kind == "input":
            return []
        if kind == "add":
            srcs = list(attrs.pop("operands"))
        elif kind == "cat":
            srcs = list(attrs.pop("parts"))
        else:
            srcs = [n.args[0] if n.args else next(iter(n.kwargs.values()))]
        out = []
        for s in srcs:
            if not isinstance(s, fx.Node):
                self.fail(n, "its input is not a tensor")
            if self.is_float.get(s) or s not in value:
                if not s.meta.get("dla_is_tensor"):
                    self.fail(n, "its input %s is not a tensor" % s.name)
                out.append(s)  # a float fx node: gets a quantizer in insert_boundaries
            else:
                out.append(value[s])
        return out

    @staticmethod
    def users(qnodes):
        u = {q: [] for q in qnodes}
        for q in qnodes:
            for i in q.inputs:
                if isinstance(i, QNode):
                    u.setdefault(i, []).append(q)
        return u

    def replace(self, qnodes, old, new):
        for q in qnodes:
            q.inputs = [new if i is old else i for i in q.inputs]
        for n, v in list(self.value.items()):
            if v is old:
                self.value[n] = new
        qnodes.remove(old)

    def float_users(self, q):
        """fx float nodes (and the output) that read the value of q."""
        out = []
        fx_of = [n for n, v in self.value.items() if v is q]
        for n in fx_of:
            for u in n.users:
                if u.op == "output" or self.is_float.get(u):
                    out.append(u)
        return out

    def push_clip(self, p, clip, clip_node, users):
        """Merges a clip into the requantizer(s) that produce p, through ops that commute with it."""
        others = [u for u in users.get(p, []) if u is not clip_node] + self.float_users(p)
        if p.kind in REQUANTIZING and not others:
            p.clip = _intersect(p.clip, clip)
            return
        if p.clip is not None and _within(p.clip, clip):
            return  # already inside the clip: the clip does nothing
        if not others and p.kind in ("maxpool", "upsample", "flatten", "cat"):
            for i in p.inputs:
                self.push_clip(i, clip, p, users)
            return
        why = ("its input '%s' is also used elsewhere (%s), and the hardware requantizes once"
               % (p.name, ", ".join(sorted({getattr(o, "name", str(o)) for o in others}))) if others else
               "its input '%s' (%s) has no requantizer to fuse it into" % (p.name, p.kind))
        self.fail(clip_node.fx_node, "cannot fuse this clip/ReLU: " + why)

    def insert_boundaries(self, qnodes):
        out = []
        quantizers = {}
        for q in qnodes:
            for k, i in enumerate(q.inputs):
                if isinstance(i, fx.Node):
                    if i not in quantizers:
                        name = self.unique(i.name + "_quant", qnodes)
                        b = QNode(name, "quant_in", [], None, float_source=i)
                        b.aliases = []
                        quantizers[i] = b
                        out.append(b)
                    q.inputs[k] = quantizers[i]
            out.append(q)
        self.boundary = quantizers
        return out

    @staticmethod
    def unique(name, qnodes):
        taken = {q.name for q in qnodes}
        base, k = name, 1
        while name in taken:
            name = "%s_%d" % (base, k)
            k += 1
        return name


def _intersect(a, b):
    if a is None:
        return tuple(b)
    if b is None:
        return tuple(a)
    lo = [v for v in (a[0], b[0]) if v is not None]
    hi = [v for v in (a[1], b[1]) if v is not None]
    return (max(lo) if lo else None, min(hi) if hi else None)


def _within(inner, outer):
    lo_ok = outer[0] is None or (inner[0] is not None and inner[0] >= outer[0])
    hi_ok = outer[1] is None or (inner[1] is not None and inner[1] <= outer[1])
    return lo_ok and hi_ok


# ---------------------------------------------------------------------------------------
# Precision: plan, first/last rule, activation formats
# ---------------------------------------------------------------------------------------


class _Resolver:
    def __init__(self, an):
        self.an = an
        self.plan = an.plan
        self.qnodes = an.qnodes

    def run(self):
        an, plan = self.an, self.plan
        qnodes = self.qnodes
        layers = [q for q in qnodes if q.kind in REQUANTIZING]
        # Plan entries must name layers with a precision of their own.
        entries = [(p, LayerPrecision.coerce(v, "plan.layers[%r]" % p)) for p, v in plan.layers.items()]
        entries += [(p, LayerPrecision(frac=f)) for p, f in plan.fixed_fracs.items()]
        for pattern, _ in entries:
            if not any(name_matches(pattern, self.names(q)) for q in layers):
                other = [q.name for q in qnodes if name_matches(pattern, self.names(q))]
                if other:
                    raise PlanError("plan entry %r names %s, which keep their input's type and frac (max pool, "
                                    "upsample, flatten, concat); set the layers that produce their input instead"
                                    % (pattern, ", ".join(other)))
                raise PlanError("plan entry %r names no layer of the model (%s)" % (pattern, an.name_examples()))
        first, last = self.first_last(qnodes)
        rule = plan.first_last if (plan.four_bit_default and plan.first_last) else None
        in_specs = input_specs(plan.input, [q.name for q in qnodes if q.kind == "input"])
        nonneg = self.nonnegative(qnodes)
        self.spec = {}
        for q in layers:
            set_w = set_a = set_f = None
            for pattern, lp in entries:
                if name_matches(pattern, self.names(q)):
                    set_w = lp.weight if lp.weight is not None else set_w
                    set_a = lp.act if lp.act is not None else set_a
                    set_f = lp.frac if lp.frac is not None else set_f
            # exact types (i4, u4, i8, u8, i16) set by the plan are binding; "int4"/"int8"/
            # "int16" widen where a concat or pool joins them with wider tensors (noted)
            explicit = set_a is not None and str(set_a) in ("i4", "u4", "i8", "u8", "i16")
            if q.kind == "input":
                s = in_specs[q.name]
                if s["dtype"] is not None:
                    set_a = s["dtype"]
                    explicit = str(set_a) in ("i4", "u4", "i8", "u8", "i16")
                if s["frac"] is not None:
                    set_f = s["frac"]
                if set_a is None:
                    set_a = "int8"  # graph inputs: 8 bits (u8 images) unless plan.input says otherwise
            act = set_a
            if act is None:
                act = rule if (rule and q.kind in MAC and (q in first or q in last)) else plan.act
            bits, sign = parse_act(act, "layer '%s'" % q.name)
            if sign == "auto":
                sign = "u" if nonneg[q] else "i"
            if q.kind in MAC:
                w = set_w
                if w is None:
                    w = "i8" if (rule and (q in first or q in last)) else plan.weight
                q.weight_dtype = parse_weight(w, "layer '%s'" % q.name)
            self.spec[q] = dict(bits=bits, signed=sign == "i", explicit=explicit, frac=set_f, asked=act)
        self.first, self.last = first, last
        self.notes = []
        self.classes()
        return self

    @staticmethod
    def nonnegative(qnodes):
        """Values that are >= 0 by construction (auto types make them unsigned): clipped at
        >= 0, averages and sums of such values, and inputs that were >= 0 in the example."""
        out = {}
        for q in qnodes:
            clipped = q.clip is not None and q.clip[0] is not None and q.clip[0] >= 0
            if q.kind == "input":
                v = clipped or bool(q.fx_node.meta.get("dla_nonneg"))
            elif q.kind == "quant_in":
                v = clipped or bool(q.attrs["float_source"].meta.get("dla_nonneg"))
            elif q.kind in MAC:
                v = clipped
            elif q.kind in ("add", "avgpool", "gap"):
                v = clipped or all(out.get(i, False) for i in q.inputs)
            else:
                v = all(out.get(i, False) for i in q.inputs)
            out[q] = v
        return out

    def names(self, q):
        if q.kind == "quant_in":
            src = q.attrs["float_source"]
            return [q.name] + self.an.fx_names(src)
        return q.names

    def first_last(self, qnodes):
        users = _Analyzer.users(qnodes)
        first, last = set(), set()
        # first: MAC layers reached from an input or a float boundary without another MAC
        stack = [q for q in qnodes if q.kind in ("input", "quant_in")]
        seen = set()
        while stack:
            q = stack.pop()
            for u in users.get(q, []):
                if u in seen:
                    continue
                seen.add(u)
                if u.kind in MAC:
                    first.add(u)
                else:
                    stack.append(u)
        # last: MAC layers from which an output or a float consumer is reached without another MAC
        ends = set()
        for n in self.an.fx_outputs():
            v = self.an.value.get(n)
            if isinstance(v, QNode):
                ends.add(v)
        for q in qnodes:
            if self.an.float_users(q):
                ends.add(q)
        preds = {q: q.inputs for q in qnodes}
        stack, seen = list(ends), set()
        while stack:
            q = stack.pop()
            if q in seen:
                continue
            seen.add(q)
            if q.kind in MAC:
                last.add(q)
                continue
            stack.extend(i for i in preds.get(q, []) if isinstance(i, QNode))
        return first, last

    def classes(self):
        qnodes = self.qnodes
        parent = {q: q for q in qnodes}

        def find(q):
            while parent[q] is not q:
                parent[q] = parent[parent[q]]
                q = parent[q]
            return q

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra is not rb:
                parent[rb] = ra

        for q in qnodes:
            if q.kind in PASS_THROUGH:
                for i in q.inputs:
                    union(q, i)
        groups = {}
        for q in qnodes:
            groups.setdefault(find(q), []).append(q)
        self.groups = []
        for members in groups.values():
            producers = [m for m in members if m.kind in REQUANTIZING]
            if not producers:
                raise PrepareError("dlasim.prepare_qat: internal error: no requantizer in %s" % members)
            specs = [self.spec[p] for p in producers]
            bits = max(s["bits"] for s in specs)
            signed = any(s["signed"] for s in specs) or bits == 16
            dtype = act_name(bits, signed)
            for p, s in zip(producers, specs):
                if s["explicit"] and act_name(s["bits"], s["signed"]) != dtype:
                    joined = ", ".join("'%s' (%s)" % (o.name, act_name(self.spec[o]["bits"], self.spec[o]["signed"]))
                                       for o in producers)
                    raise PlanError("plan: '%s' is set to %s, but the hardware needs %s to share one type and frac "
                                    "(a concat joins them, or a pool/upsample/flatten passes them on), and together "
                                    "they need %s; set them alike" % (p.name, act_name(s["bits"], s["signed"]),
                                                                      joined, dtype))
            for p, s in zip(producers, specs):
                if act_name(s["bits"], s["signed"]) != dtype:
                    self.notes.append("'%s' asked for %s, runs %s: it shares its type with %s"
                                      % (p.name, act_name(s["bits"], s["signed"]), dtype,
                                         ", ".join("'%s'" % o.name for o in producers if o is not p)))
            fixed = {s["frac"] for s in specs if s["frac"] is not None}
            if len(fixed) > 1:
                raise PlanError("plan: fixed fracs %s are set for %s, which must share one frac"
                                % (sorted(fixed), ", ".join(p.name for p in producers)))
            self.groups.append(dict(members=members, producers=producers, dtype=dtype,
                                    frac=fixed.pop() if fixed else None))

    def widen_mac_inputs(self):
        """i8 weights read 8-bit activations on the MAC array: widen auto-typed 4-bit inputs."""
        for q in self.qnodes:
            if q.kind not in MAC or q.weight_dtype != "i8":
                continue
            g = self.groups[q.inputs[0].act_id]
            if act_bits(g["dtype"]) != 4:
                continue
            fixed = [p for p in g["producers"] if self.spec[p]["explicit"]]
            if fixed:
                raise PlanError("plan: layer '%s' (%s) has i8 weights, so it reads 8-bit activations (the MAC array "
                                "runs %s), but the plan sets '%s' to %s; give '%s' i4 weights or its input 8 bits"
                                % (q.name, q.kind, MAC_MODES_TEXT, fixed[0].name, g["dtype"], q.name))
            wide = g["dtype"][0] + "8"
            self.notes.append("%s widened from %s to %s: '%s' reads it with i8 weights"
                              % (", ".join("'%s'" % p.name for p in g["producers"]), g["dtype"], wide, q.name))
            g["dtype"] = wide

    def check_hw(self, hw):
        for q in self.qnodes:
            if q.kind not in MAC:
                continue
            x_dtype = self.dtype_of(q.inputs[0])
            mm = mac_mode(x_dtype, q.weight_dtype)
            if mm is None:
                raise PlanError("plan: layer '%s' (%s%s) reads %s activations with %s weights, which is not a precision "
                                "of the MAC array (%s); change its weights or its input's type in the plan"
                                % (q.name, q.kind, ", module '%s'" % q.source if q.source else "", x_dtype,
                                   q.weight_dtype, MAC_MODES_TEXT))
            mode, flag = mm
            if flag is not None and not getattr(hw, flag):
                raise PlanError("plan: layer '%s' (%s%s) reads %s activations with %s weights: the %s mode, which this "
                                "hardware config does not support (%s = false); give it i8 weights or other "
                                "activations in the plan" % (q.name, q.kind, ", module '%s'" % q.source
                                                             if q.source else "", x_dtype, q.weight_dtype, mode, flag))

    def dtype_of(self, q):
        return self.groups[q.act_id]["dtype"]


def _fx_outputs(an):
    out = []
    torch.fx.node.map_arg(an.output_node.args, lambda n: out.append(n))
    return out


_Analyzer.fx_outputs = _fx_outputs


# ---------------------------------------------------------------------------------------
# The prepared model
# ---------------------------------------------------------------------------------------

_RESERVED = set(dir(nn.ModuleDict))


def _key(name):
    return name + "_" if name in _RESERVED else name


class QatModel(nn.Module):
    """The prepared model: runs its program (the traced graph with the quantized layers in
    place) with the layers in `layers`, the activation formats in `acts` and the float
    islands' modules in `float_modules`.

    Training forwards observe (until set_epoch reaches observer_disable_epoch) and set each
    format's frac from its observer at the start of the next forward; the first forward
    (training or eval) with formats never observed first runs the float model on its batch
    to calibrate them. The eval forward is the hardware's integers (see dlasim.export).
    """

    def __init__(self, layers, acts, float_modules, float_attrs, program, outputs, nodes, hw, plan, config,
                 input_names):
        super().__init__()
        self.layers = layers
        self.acts = acts
        self.float_modules = float_modules
        self.float_attrs = float_attrs
        self._program = program
        self._outputs = outputs
        self.nodes = nodes
        self.hw_options = hw
        self.plan = plan
        self.config = config
        self.input_names = input_names
        self.register_buffer("epoch", torch.tensor(-1, dtype=torch.int64))

    # -- running -----------------------------------------------------------------------

    def _run(self, args, ctx):
        if len(args) != len(self.input_names):
            raise TypeError("the prepared model takes %d input(s) (%s), got %d"
                            % (len(self.input_names), ", ".join(self.input_names), len(args)))
        env = {}
        fm, layers = self.float_modules, self.layers
        for step in self._program:
            op, name = step[0], step[1]
            if op == "placeholder":
                env[name] = args[step[2]]
            elif op == "layer":
                env[name] = layers[step[2]](*[env[i] for i in step[3]], ctx)
            elif op == "call_module":
                a, k = _fill(step[3], env), _fill(step[4], env)
                env[name] = fm[step[2]](*a, **k)
            elif op == "call_function":
                env[name] = step[2](*_fill(step[3], env), **_fill(step[4], env))
            elif op == "call_method":
                a = _fill(step[3], env)
                env[name] = getattr(a[0], step[2])(*a[1:], **_fill(step[4], env))
            elif op == "get_attr":
                env[name] = _get_attr(self.float_attrs, step[2])
            else:
                raise RuntimeError("bad program step %r" % (step,))
        if ctx.record is not None:
            ctx.record.update(env)
        return _fill(self._outputs, env)

    def needs_calibration(self):
        return any(a.observer is not None and not bool(a.ready) for a in self.acts)

    @torch.no_grad()
    def calibrate_batch(self, *args):
        """Observes one batch with the float model (no quantization) and sets the fracs."""
        self._run(args, _Ctx(self.acts, float_mode=True, observe=True))
        for a in self.acts:
            a.update()

    def forward(self, *args):
        if self.needs_calibration():
            self.calibrate_batch(*args)
        observe = self.training
        if observe:
            for a in self.acts:
                a.update()
        return self._run(args, _Ctx(self.acts, observe=observe))

    def run(self, *args, float_mode=False, observe=False, record=None):
        """One forward with explicit switches; `record` (a dict) receives every value."""
        return self._run(args, _Ctx(self.acts, float_mode=float_mode, observe=observe, record=record))

    # -- state -------------------------------------------------------------------------

    def set_epoch(self, epoch):
        self.epoch.fill_(int(epoch))
        c = self.config
        if c.observer_disable_epoch is not None and epoch >= c.observer_disable_epoch:
            self.disable_observers()
        if c.freeze_bn_epoch is not None and epoch >= c.freeze_bn_epoch:
            self.freeze_bn()

    def disable_observers(self):
        """Freezes every activation frac and weight frac at its current value."""
        for a in self.acts:
            a.observer_enabled.fill_(False)
        for m in self.layers.values():
            if isinstance(m, QMac):
                m.weight_frac_frozen.fill_(True)

    def enable_observers(self):
        for a in self.acts:
            if a.observer is not None:
                a.observer_enabled.fill_(True)
        for m in self.layers.values():
            if isinstance(m, QMac):
                m.weight_frac_frozen.fill_(False)

    def freeze_bn(self):
        """Folds BatchNorm with its running statistics from now on (and stops updating them)."""
        for m in self.layers.values():
            if isinstance(m, QMac):
                m.bn_frozen.fill_(True)

    def fracs(self):
        """{tensor name: (dtype, frac)} of every quantized tensor."""
        return {n["name"]: (self.acts[n["act"]].dtype, self.acts[n["act"]].frac())
                for n in self.nodes if n.get("act") is not None}

    def extra_repr(self):
        return "plan: %s; %d layers, %d activation formats" % (self.plan.describe(), len(self.layers), len(self.acts))


def _fill(struct, env):
    if isinstance(struct, _Ref):
        return env[struct.name]
    if isinstance(struct, tuple):
        return tuple(_fill(s, env) for s in struct)
    if isinstance(struct, list):
        return [_fill(s, env) for s in struct]
    if isinstance(struct, dict):
        return {k: _fill(v, env) for k, v in struct.items()}
    if isinstance(struct, slice):
        return slice(_fill(struct.start, env), _fill(struct.stop, env), _fill(struct.step, env))
    return struct


def _get_attr(root, key):
    return getattr(root, key)


def _refs(struct, resolve):
    return torch.fx.node.map_aggregate(struct, lambda a: _Ref(resolve(a)) if isinstance(a, fx.Node) else a)


def unwrap(model):
    """The QatModel inside a DistributedDataParallel / DataParallel wrapper."""
    m = model
    while not isinstance(m, QatModel) and hasattr(m, "module"):
        m = m.module
    if not isinstance(m, QatModel):
        raise TypeError("expected a model returned by dlasim.prepare_qat (or one wrapped in DistributedDataParallel), "
                        "got %s" % type(model).__name__)
    return m


def set_epoch(model, epoch):
    """Applies the schedule at the start of an epoch: observer_disable_epoch, freeze_bn_epoch."""
    unwrap(model).set_epoch(epoch)


def disable_observers(model):
    unwrap(model).disable_observers()


def freeze_bn(model):
    unwrap(model).freeze_bn()


@torch.no_grad()
def calibrate(model, batches, max_batches=None):
    """Post-training calibration: observes the quantized model on `batches` (each a tensor
    or a tuple of inputs; (inputs, target) pairs are fine: the first item is used if the
    model takes one input) with BN in eval, then sets every frac."""
    m = unwrap(model)
    was = m.training
    m.eval()
    try:
        for i, b in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            args = b if isinstance(b, (tuple, list)) else (b,)
            args = tuple(args[:len(m.input_names)])
            if m.needs_calibration():
                m.calibrate_batch(*args)
            for a in m.acts:
                a.update()
            m.run(*args, observe=True)
        for a in m.acts:
            a.update()
    finally:
        m.train(was)
    return model


# ---------------------------------------------------------------------------------------
# prepare_qat
# ---------------------------------------------------------------------------------------


def _resolve_hw(hw):
    if hw is None:
        return HwOptions.preset("default")
    if isinstance(hw, HwOptions):
        return hw
    if isinstance(hw, str):
        return HwOptions.from_json(hw) if hw.lstrip().startswith("{") else HwOptions.preset(hw)
    return HwOptions.from_list(hw)


def prepare_qat(model, example_inputs, hw=None, plan=None, config=None, inplace=False, **options):
    """Prepares `model` for bit-exact QAT on the DLA; see the module docstring.

    example_inputs: a tensor or tuple of tensors (shapes, and the sign of auto-typed
    inputs); hw: an HwOptions, a preset name ("default"), hardware-config JSON text, or
    None (default preset); plan: a PrecisionPlan, a preset name ("int8", "int4",
    "int4_all", "w4a8", "int16") or a dict of PrecisionPlan fields; config / **options:
    QatConfig fields (observer=, observer_disable_epoch=, freeze_bn_epoch=,
    learnable_scales=, weight_observer=, ...). The model is copied unless inplace=True.
    """
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    hw = _resolve_hw(hw)
    plan = PrecisionPlan.coerce(plan)
    config = config or QatConfig()
    known = {f.name for f in fields(QatConfig)}
    bad = set(options) - known
    if bad:
        raise TypeError("prepare_qat: unknown option(s) %s (QatConfig fields: %s)" % (sorted(bad), ", ".join(sorted(known))))
    config = replace(config, **options).validate()
    if not inplace:
        model = copy.deepcopy(model)
    gm = _trace(model, example_inputs)
    an = _Analyzer(gm, example_inputs, hw, plan, config).run()
    res = _Resolver(an).run()
    for gid, g in enumerate(res.groups):
        for m in g["members"]:
            m.act_id = gid
    res.widen_mac_inputs()
    res.check_hw(hw)
    return _build(gm, an, res, hw, plan, config)


def _build(gm, an, res, hw, plan, config):
    hw_list = hw.to_list()
    acts = nn.ModuleList()
    for gid, g in enumerate(res.groups):
        name = "+".join(p.name for p in g["producers"])
        acts.append(ActFormat(name, g["dtype"], config, hw_list, g["frac"], config.learnable_scales))
    layers = nn.ModuleDict()
    nodes = []
    program = []
    value_name = {}  # fx node -> value name in the program
    for n, v in an.value.items():
        if isinstance(v, QNode):
            value_name[n] = v.name
    for n in an.float_nodes:
        value_name[n] = n.name
    for p in an.placeholders:
        value_name.setdefault(p, p.name)

    float_modules = nn.ModuleDict()
    float_attrs = nn.Module()
    fx_index = {n: i for i, n in enumerate(gm.graph.nodes)}
    q_by_fx = {}
    for q in an.qnodes:
        key = q.fx_node if q.fx_node is not None else q.attrs["float_source"]
        q_by_fx.setdefault(key, []).append(q)

    def resolve(n):
        if n not in value_name:
            raise PrepareError("dlasim.prepare_qat: internal error: no value for node %s" % n.name)
        return value_name[n]

    emitted = set()
    shape_of = {}

    def emit_q(q):
        if q in emitted:
            return
        emitted.add(q)
        key = _key(q.name)
        src = q.source
        ins = [i.name for i in q.inputs]
        if q.kind == "quant_in":
            shape = list(q.attrs["float_source"].meta["dla_shape"])
        elif q.kind == "gap":
            s = shape_of[ins[0]]
            shape = [s[0], s[1], 1, 1]
        elif q.kind == "flatten":
            s = shape_of[ins[0]]
            shape = [s[0], int(math.prod(s[1:]))]
        else:
            shape = list(q.fx_node.meta["dla_shape"])
        shape_of[q.name] = shape
        info = dict(name=q.name, kind=q.kind, inputs=ins, act=q.act_id, source=src, layer=key, shape=shape)
        if q.kind == "input":
            layers[key] = QInput(q.name, src, hw_list, q.act_id, q.clip)
            info["index"] = an.placeholders.index(q.fx_node)
            program.append(("layer", q.name, key, [q.name]))
        elif q.kind == "quant_in":
            fsrc = q.attrs["float_source"]
            layers[key] = QInput(q.name, fsrc.meta.get("dla_scope", ""), hw_list, q.act_id, q.clip)
            info["float_source"] = value_name[fsrc]
            program.append(("layer", q.name, key, [value_name[fsrc]]))
        elif q.kind in MAC:
            m = q.attrs["module"]
            layers[key] = QMac(q.name, src, hw_list, q.kind, m, q.bn, q.inputs[0].act_id, q.act_id, q.weight_dtype,
                               q.clip, config, q.attrs.get("conv_args"))
            info.update(weight_dtype=q.weight_dtype, bn=q.bn is not None, conv_args=q.attrs.get("conv_args"))
            program.append(("layer", q.name, key, ins))
        elif q.kind == "add":
            layers[key] = QAdd(q.name, src, hw_list, q.inputs[0].act_id, q.inputs[1].act_id, q.act_id, q.clip)
            program.append(("layer", q.name, key, ins))
        elif q.kind in ("avgpool", "gap"):
            if q.kind == "gap":
                layers[key] = QAvgPool(q.name, src, hw_list, q.inputs[0].act_id, q.act_id, None, None, None, q.clip)
            else:
                a = q.attrs
                layers[key] = QAvgPool(q.name, src, hw_list, q.inputs[0].act_id, q.act_id, a["kernel"], a["stride"],
                                       a["padding"], q.clip)
                info.update(kernel=a["kernel"], stride=a["stride"], padding=a["padding"])
            program.append(("layer", q.name, key, ins))
        elif q.kind == "maxpool":
            a = q.attrs
            layers[key] = QMaxPool(q.name, src, hw_list, q.act_id, a["kernel"], a["stride"], a["padding"])
            info.update(kernel=a["kernel"], stride=a["stride"], padding=a["padding"])
            program.append(("layer", q.name, key, ins))
        elif q.kind == "cat":
            layers[key] = QConcat(q.name, src, hw_list, q.act_id, len(ins))
            program.append(("layer", q.name, key, ins))
        elif q.kind == "upsample":
            layers[key] = QUpsample2x(q.name, src, hw_list)
            program.append(("layer", q.name, key, ins))
        elif q.kind == "flatten":
            layers[key] = QFlatten(q.name, src, hw_list)
            program.append(("layer", q.name, key, ins))
        else:
            raise PrepareError("dlasim.prepare_qat: internal error: node kind %s" % q.kind)
        if q.clip is not None:
            info["clip"] = list(q.clip)
        nodes.append(info)

    order = sorted(gm.graph.nodes, key=lambda n: fx_index[n])
    for n in order:
        if n.op == "output":
            continue
        if n.op == "placeholder":
            program.append(("placeholder", n.name, an.placeholders.index(n)))
        elif an.is_float.get(n):
            args = _refs(n.args, resolve)
            kwargs = _refs(n.kwargs, resolve)
            if n.op == "call_module":
                fkey = str(n.target).replace(".", "__")
                if fkey not in float_modules:
                    float_modules[fkey] = gm.get_submodule(n.target)
                program.append(("call_module", n.name, fkey, args, kwargs))
            elif n.op == "call_function":
                program.append(("call_function", n.name, n.target, args, kwargs))
            elif n.op == "call_method":
                program.append(("call_method", n.name, n.target, args, kwargs))
            elif n.op == "get_attr":
                akey = str(n.target).replace(".", "__")
                t = _fetch_attr(gm, n.target)
                if not hasattr(float_attrs, akey):
                    if isinstance(t, nn.Parameter):
                        float_attrs.register_parameter(akey, t)
                    elif isinstance(t, torch.Tensor):
                        float_attrs.register_buffer(akey, t)
                    else:
                        setattr(float_attrs, akey, t)
                program.append(("get_attr", n.name, akey))
            nodes.append(dict(name=n.name, kind="float", op=n.op, target=_target_name(n), act=None,
                              source=n.meta.get("dla_scope", ""), is_tensor=bool(n.meta.get("dla_is_tensor")),
                              shape=list(n.meta["dla_shape"]) if n.meta.get("dla_shape") else None,
                              inputs=[value_name[a] for a in _arg_nodes(n)]))
        for q in q_by_fx.get(n, []):
            emit_q(q)
    for q in an.qnodes:
        if q not in emitted:
            raise PrepareError("dlasim.prepare_qat: internal error: node %s not emitted" % q.name)
    outputs = _refs(an.output_node.args[0], resolve)
    input_names = [p.name for p in an.placeholders]
    model = QatModel(layers, acts, float_modules, float_attrs, program, outputs, nodes, hw, plan, config, input_names)
    model.notes = list(res.notes)
    model.train(gm.training)
    return model


def _arg_nodes(n):
    out = []
    torch.fx.node.map_arg((n.args, n.kwargs), lambda a: out.append(a))
    return list(dict.fromkeys(out))


def _fetch_attr(gm, target):
    obj = gm
    for part in str(target).split("."):
        obj = getattr(obj, part)
    return obj


def _target_name(n):
    if n.op == "call_function":
        return getattr(n.target, "__name__", str(n.target))
    return str(n.target)


__all__ = ["prepare_qat", "QatConfig", "QatModel", "PrepareError", "set_epoch", "disable_observers", "freeze_bn",
           "calibrate", "unwrap"]


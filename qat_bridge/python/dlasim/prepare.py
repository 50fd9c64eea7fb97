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
2. folds every BatchNorm into the conv2d / linear before it (MacLayer: batch statistics in
   training, then the running ones once frozen);
3. fuses ReLU, ReLU6, hardtanh and clamp into the clip of the requantizer that produces
   their input (through max pools, upsamples, flattens and concats, which commute with a
   clip), so the hardware's requantize does them;
4. finds every `+` / torch.add / Tensor.add and every torch.cat and gives the tensors the
   hardware requires to share a frac one activation format (concat inputs and output; max
   pool, upsample, flatten and their input); adds align their operands by shifts;
5. applies the precision plan (dlasim.plan) and checks every MAC layer's precision mode
   against the hardware config;
6. replaces the layers by bit-exact modules (dlasim.layers) and quantizes the graph
   inputs and the outputs of float islands.

The steps are modules of their own, as in torch.ao's fx package: dlasim.tracer (1),
dlasim.fuse (2-4), dlasim.precision (5), this module (6) and dlasim.runtime (the prepared
model); what each op kind is, matches and becomes is its entry in dlasim.ops.

Supported in the quantized region: nn.Conv2d (zero padding; 'same' for odd kernels),
nn.Linear ([N, K] inputs), BatchNorm1d/2d after them, ReLU/ReLU6/Hardtanh/clamp, add,
torch.cat along channels, max_pool2d, avg_pool2d (count_include_pad), adaptive_avg_pool2d
to 1x1 and mean over H and W, nearest upsampling by 2, flatten / view / reshape to [N, C*H*W],
dropout and identity (removed). Every node outside that list stops prepare_qat with one
error that lists them all (node, module, why) and the plan entry that leaves them in float,
with a glob where one names exactly them (`float_layers=['*.act']`).

Float islands (plan.float_layers, leaf modules) run on the host, in float; the values the
quantized region reads from them are quantized there. A node that reads only float values
joins its island without being named: a BatchNorm, a clip or an activation (SiLU, sigmoid,
...) after a float conv, a view, an element of a tuple a float module returns (an LSTM's
output), a constant made in forward(); the model's `notes` list them.

Leaf modules: a module that torch.fx cannot trace (YOLOv5's Detect compares traced shapes
in eval) is named as a leaf, `leaf_modules=["detect"]`, or left in float by the plan (a
module plan.float_layers names is a leaf too): it is traced as one node and runs as it is,
in float, with its own control flow, returning what it returns (a list in training, a
tuple in eval). A trace error names the innermost module that failed and the option.

Inputs: the prepared model, like integer_forward, takes float tensors or integer tensors
(uint8 images) that hold the integers at the input's frac, which the plan must then fix
(`input={"dtype": "u8", "frac": 8}`); example inputs may be integer tensors too.

Non-finite values: NaN or inf in a tensor to quantize (an input, a float island's output,
weights) is an error naming the tensor and the count, unless `nonfinite="count"`: then the
quantizer counts them (NaN becomes 0, inf saturates: the op's integers) and dlasim.report
shows the counts; observers only see the finite values.
"""

import copy
from dataclasses import dataclass, fields, replace
from typing import Optional

import torch
from torch import nn

from .fuse import Analyzer, QNode
from .hw import HwOptions
from .layers import BN_STATS_CONVS, NONFINITE_POLICIES, ActFormat
from .observers import OBSERVERS, WEIGHT_OBSERVERS
from .plan import PlanError, PrecisionPlan, input_specs, name_matches
from .precision import Resolver, shared_of, site_of
from .runtime import FLOAT, QatModel, as_inputs, layer_key, refs
from .tracer import PrepareError, record, trace


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
    bn_stats_conv: str = "integer"        # where a folded BN's batch statistics come from in training:
    #                                       "integer" (the integer conv with running-stat-folded weights,
    #                                       the output the quantized float BatchNorm of it: one conv per
    #                                       layer, as torch.ao) or "float" (a float conv of the input with
    #                                       the unfolded weights besides the integer layer with the
    #                                       batch-folded weights); eval and frozen BN are the integer layer
    nonfinite: str = "error"              # a NaN or inf to quantize (input, float island output, weight):
    #                                       "error" (names the tensor and the count) or "count" (counted
    #                                       per layer and reported by dlasim.report; the op makes NaN 0
    #                                       and saturates inf)

    def validate(self):
        if self.observer not in OBSERVERS:
            raise ValueError("observer %r is not one of %s" % (self.observer, ", ".join(OBSERVERS)))
        if self.weight_observer not in WEIGHT_OBSERVERS:
            raise ValueError("weight_observer %r is not one of %s" % (self.weight_observer, ", ".join(WEIGHT_OBSERVERS)))
        if not 0 < self.averaging_constant <= 1:
            raise ValueError("averaging_constant must be in (0, 1]")
        if not 50 < self.percentile <= 100:
            raise ValueError("percentile must be in (50, 100]")
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError("nonfinite %r is not one of %s" % (self.nonfinite, ", ".join(NONFINITE_POLICIES)))
        if self.bn_stats_conv not in BN_STATS_CONVS:
            raise ValueError("bn_stats_conv %r is not one of %s" % (self.bn_stats_conv, ", ".join(BN_STATS_CONVS)))
        return self


def _resolve_hw(hw):
    if hw is None:
        return HwOptions.preset("default")
    if isinstance(hw, HwOptions):
        return hw
    if isinstance(hw, str):
        return HwOptions.from_json(hw) if hw.lstrip().startswith("{") else HwOptions.preset(hw)
    return HwOptions.from_list(hw, "prepare_qat: hw")


def _as_reals(example_inputs, input_names, plan):
    """Integer example inputs (uint8 images) as the reals they mean at plan.input's frac."""
    specs = input_specs(plan.input, input_names)
    out = []
    for name, x in zip(input_names, example_inputs):
        if isinstance(x, torch.Tensor) and not x.is_floating_point():
            frac = specs[name]["frac"]
            if frac is None:
                raise PrepareError("dlasim.prepare_qat: example input '%s' is an integer tensor (%s); integers need a "
                                   "fixed frac to mean reals: set it in the plan (input={'dtype': 'u8', 'frac': 8})"
                                   % (name, x.dtype))
            x = x.to(torch.get_default_dtype()) * (2.0 ** -int(frac))
        out.append(x)
    return tuple(out) + tuple(example_inputs[len(input_names):])


def _check_finite(example_inputs, input_names, policy):
    for name, x in zip(input_names, example_inputs):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            bad = int((~torch.isfinite(x)).sum())
            if bad and policy == "error":
                raise PrepareError("dlasim.prepare_qat: example input '%s': %d non-finite value(s) (NaN or inf) of "
                                   "%d: the observers cannot set fracs from them; pass finite examples, or "
                                   "nonfinite='count' to count them instead" % (name, bad, x.numel()))


def prepare_qat(model, example_inputs, hw=None, plan=None, config=None, inplace=False, leaf_modules=(), **options):
    """Prepares `model` for bit-exact QAT on the DLA; see the module docstring.

    example_inputs: a tensor or tuple of tensors (shapes, and the sign of auto-typed
    inputs); hw: an HwOptions, a preset name ("default"), hardware-config JSON text, or
    None (default preset); plan: a PrecisionPlan, a preset name ("int8", "int4",
    "int4_all", "w4a8", "int16") or a dict of PrecisionPlan fields; config / **options:
    QatConfig fields (observer=, observer_disable_epoch=, freeze_bn_epoch=,
    learnable_scales=, weight_observer=, nonfinite=, ...). The model is copied unless
    inplace=True. leaf_modules: module names or globs that torch.fx does not trace into
    (a detection head that unpacks x.shape and reshapes): each runs as it is, in float, on
    the host, like the modules plan.float_layers names (which are leaves too).
    """
    example_inputs = as_inputs(example_inputs)
    hw = _resolve_hw(hw)
    plan = PrecisionPlan.coerce(plan)
    config = config or QatConfig()
    known = {f.name for f in fields(QatConfig)}
    bad = set(options) - known
    if bad:
        raise TypeError("prepare_qat: unknown option(s) %s (QatConfig fields: %s)" % (sorted(bad), ", ".join(sorted(known))))
    config = replace(config, **options).validate()
    if isinstance(leaf_modules, str) or not all(isinstance(m, str) for m in leaf_modules):
        raise TypeError("prepare_qat: leaf_modules must be a list of module names or globs, got %r" % (leaf_modules,))
    names = dict(model.named_modules())
    for pattern in leaf_modules:
        if not any(name_matches(pattern, [n]) for n in names if n):
            raise PlanError("prepare_qat: leaf_modules entry %r names no module of the model (it has: %s)"
                            % (pattern, ", ".join(list(n for n in names if n)[:12])))
    if not inplace:
        model = copy.deepcopy(model)
    gm = trace(model, list(leaf_modules) + list(plan.float_layers))
    input_names = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    example_inputs = _as_reals(example_inputs, input_names, plan)
    _check_finite(example_inputs, input_names, config.nonfinite)
    record(gm, model, example_inputs)
    an = Analyzer(gm, plan).run()
    res = Resolver(an).run()
    res.widen_mac_inputs()
    res.check_hw(hw)
    return _build(gm, an, res, hw, plan, config)


class _Builder:
    """What the registry's build functions (dlasim.ops) read."""

    def __init__(self, hw_list, config, placeholders, value_name):
        self.hw_list = hw_list
        self.config = config
        self.placeholders = placeholders
        self.value_name = value_name  # fx node -> its value's name in the program


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

    builder = _Builder(hw_list, config, an.placeholders, value_name)

    def emit_q(q):
        if q in emitted:
            return
        emitted.add(q)
        key = layer_key(q.name)
        shape = q.op.shape(q, shape_of) if q.op.shape else list(q.fx_node.meta["dla_shape"])
        shape_of[q.name] = shape
        layers[key], extra, program_inputs = q.op.build(q, builder)
        lead = res.ties.get(q)
        if lead is not None:
            layers[key] = layers[layer_key(lead.name)]  # tied calls: one layer, one set of weight fracs
        info = dict(name=q.name, kind=q.kind, inputs=[i.name for i in q.inputs], act=q.act_id, source=q.source,
                    layer=key, shape=shape, **extra)
        site = site_of(q)
        if site is not None:
            info["site"] = "%s:%s" % site
            n = q.fx_node if q.fx_node is not None else q.attrs["float_source"]
            info["call"] = int(n.meta.get("dla_call", 0))
            info["shared"] = shared_of(q)
        if res.rule and (q in res.first or q in res.last):
            info["first_last"] = "first" if q in res.first else "last"
        program.append(("layer", q.name, key, program_inputs))
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
            args = refs(n.args, resolve)
            kwargs = refs(n.kwargs, resolve)
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
            nodes.append(dict(name=n.name, kind=FLOAT, op=n.op, target=_target_name(n), act=None,
                              source=n.meta.get("dla_scope", ""), is_tensor=bool(n.meta.get("dla_is_tensor")),
                              shape=list(n.meta["dla_shape"]) if n.meta.get("dla_shape") else None,
                              inputs=[value_name[a] for a in _arg_nodes(n)]))
        for q in q_by_fx.get(n, []):
            emit_q(q)
    for q in an.qnodes:
        if q not in emitted:
            raise PrepareError("dlasim.prepare_qat: internal error: node %s not emitted" % q.name)
    outputs = refs(an.output_node.args[0], resolve)
    input_names = [p.name for p in an.placeholders]
    notes = list(res.notes)
    for n in an.joined:
        notes.append("'%s' (%s) reads only float values: it runs in float too" % (n.name, _target_name(n)))
    rules = dict(first_last=res.rule, first_last_at_islands=plan.first_last_at_islands,
                 first=sorted(q.name for q in res.first) if res.rule else [],
                 last=sorted(q.name for q in res.last) if res.rule else [],
                 island_neighbours=sorted(q.name for q in res.island_neighbours) if res.rule else [],
                 tied=sorted({shared_of(q) for q in res.tied_nodes}))
    model = QatModel(layers, acts, float_modules, float_attrs, program, outputs, nodes, hw, plan, config, input_names,
                     notes, rules)
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


__all__ = ["prepare_qat", "QatConfig", "PrepareError"]


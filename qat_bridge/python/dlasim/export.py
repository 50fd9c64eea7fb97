"""export: the prepared model as the integers the DLA runs; integer_forward: their replay.

`export(model, example_inputs, path)` writes one TorchScript file (torch.jit.save of a
scripted container module). `dla compile`'s importer reads it with LibTorch:

    torch::jit::Module m = torch::jit::load(path);
    std::string graph = m.attr("graph_json").toStringRef();      // the JSON below
    at::Tensor w = m.attr("w_conv1").toTensor();                   // tensors it names
    torch::jit::Module host = m.attr("h_softmax").toModule();      // float islands (host)

(`m.run_method("graph")` returns the same JSON string.) Python: `torch.jit.load(path).graph_json`,
or `dlasim.load_export(path)`.

## graph_json

    {"format": "dlasim-qat-export", "version": 1,
     "hw": {"acc_bits": 32, "overflow_policy": "WRAP", "rounding_mode": "HALF_UP",
            "avgpool_shift": 15, "supports_a4w4": true, "supports_a8w4": true,
            "supports_a16w8": true},
     "hw_list": [32, 0, 0, 15, 1, 1, 1],          # the `hw` argument of the dla ops
     "plan": "weights i8, activations int8",       # for people
     "inputs": ["x"],                              # graph inputs, in call order
     "outputs": ["fc"],                            # graph outputs, flattened in order
     "nodes": [ ... in topological order ... ]}

Every node has "name" (unique; the torch.fx node name), "op", "inputs" (names of earlier
nodes; absent for inputs), "source" (the module it came from, "" if none), "shape" (of
its output, NCHW or [N, K]) and "value": "int" (a quantized tensor: also "dtype" and
"frac", real = q * 2^-frac) or "float" (a host tensor). The ops and their fields map 1:1
onto the compiler's graph IR (compiler_backend/include/dla/compiler/graph.hpp) and its
graph file (graph_io.hpp), whose field names they use:

| op | fields | compiler |
|---|---|---|
| input | index (call position), dtype, frac, shape, clip [lo, hi] (null: none; the host quantizes: q = clamp(round_shift(x * 2^frac)), HALF_UP etc. as `hw`) | Graph::input |
| conv2d | out_channels, kernel [kh, kw], stride [sh, sw], padding [top, left, bottom, right], dilation, groups, weight_dtype (i4/i8), weights {"tensor": key, "shape": [OC, C/groups, KH, KW]}, weight_frac [per OC], bias {"tensor": key} (int32, acc_bits-wide, at x_frac + weight_frac[oc]), shift [x_frac + weight_frac[oc] - frac], mac_mode, out {dtype, frac, clip} | Graph::conv2d |
| linear | out_features, weight_dtype, weights {"tensor", "shape": [OUT, IN]}, weight_frac, bias, shift, mac_mode, out | Graph::linear |
| add | out, align {"a": F - f_a, "b": F - f_b, "out": F - frac} with F = max(f_a, f_b) | Graph::add |
| concat | (inputs share dtype and frac; joined along channels) | Graph::concat |
| max_pool | kernel, stride, padding [t, l, b, r] (padding never wins the max) | Graph::max_pool |
| avg_pool | kernel, stride, padding (zero padding counted in N: count_include_pad), out | Graph::avg_pool |
| global_avg_pool | out ([N, C, H, W] -> [N, C, 1, 1]) | Graph::global_avg_pool |
| upsample2x | (nearest) | Graph::upsample2x |
| flatten | ([N, C, H, W] -> [N, C*H*W], (c, h, w) order) | Graph::flatten |
| host | module (key of a traced TorchScript submodule: a float op of a float island, run on the host with its inputs' reals as float32; the shape helpers it reads are re-run, other constants baked in), output "value": "float" | splits the graph |
| quantize | out {dtype, frac, clip}: the host quantizes a float tensor (as input) | a device input |
| float_input | index, shape: a graph input only float islands read | host only |

`out` is {"dtype", "frac", "clip": [lo, hi]} with clip in output integers (null: the type's
bound; ReLU is [0, null]) exactly as in the graph file. Weights are int8 tensors, one value
per element (i4 values in [-8, 7], not packed: the compiler packs them). Fracs are in
[-32, 32].

A model without float islands is one device graph: `write_graph_file(path, json_path)`
writes it as the compiler's graph file (JSON + weights .bin) as well. With float islands,
every `host` node's int inputs are device outputs and every `quantize` node a device input.

## Replay

`integer_forward(exported, *inputs)` runs the file: int64 tensors between nodes, each
requantizing op through the dla ops (whose kernels are dla/numerics.hpp: the simulator's
code), concat / upsample / flatten as integer copies, host modules in float. Float inputs
are quantized by dla.quantize like the model does; integer tensors (uint8 images) are
taken as the integers. It returns the outputs' integers (int64) and host outputs' floats:
one tensor, or a tuple when the model has several outputs. For every input,

    to_integers(prepared.eval()(x), frac) == integer_forward(path, x)     # element for element
"""

import json
from pathlib import Path

import torch
from torch import nn

from . import functional as F
from .hw import HwOptions, dtype_range, requant_shifts
from .plan import mac_mode
from .prepare import _fill, _Ref, unwrap
from .qat_modules import clip_ints

FORMAT = "dlasim-qat-export"
VERSION = 1


class ExportError(RuntimeError):
    pass


def to_integers(y, frac):
    """The integers q of reals y = q * 2^-frac (int64); an error if y is not such a tensor."""
    v = y.detach().to(torch.float64) * (2.0 ** int(frac))
    q = v.to(torch.int64)
    if not torch.equal(q.to(torch.float64), v):
        bad = (q.to(torch.float64) != v).nonzero()[0].tolist()
        raise ExportError("to_integers: element %s = %r times 2^%d is not an integer" % (bad, float(y[tuple(bad)]), frac))
    return q


def to_reals(q, frac, dtype=torch.float64):
    """q * 2^-frac, exactly (float64; float32 for |q| < 2^24)."""
    return q.to(dtype) * (2.0 ** -int(frac))


def _channel_scale(fracs, dims, sign=-1):
    t = torch.tensor([2.0 ** (sign * int(f)) for f in fracs], dtype=torch.float64)
    return t.reshape([-1] + [1] * (dims - 1))


def _shape(v):
    return list(v.shape) if isinstance(v, torch.Tensor) else None


def _clip_json(c):
    if c is None:
        return [None, None]
    return [c[0], c[1]]


class _HostCall(nn.Module):
    """A float op of a float island, run on the host: `steps` are the op and the shape
    helpers it reads (x.size(0), x.shape, ...), re-run so that traced shapes follow the
    inputs; other non-tensor values and constants are baked in."""

    def __init__(self, steps, ref_names, modules):
        super().__init__()
        self.steps = steps
        self.ref_names = ref_names
        self.mods = nn.ModuleDict(modules)

    def forward(self, *tensors):
        env = dict(zip(self.ref_names, tensors))
        for name, kind, target, args, kwargs in self.steps:
            a, k = _fill(args, env), _fill(kwargs, env)
            if kind == "call_module":
                env[name] = self.mods[name](*a, **k)
            elif kind == "call_function":
                env[name] = target(*a, **k)
            else:
                env[name] = getattr(a[0], target)(*a[1:], **k)
        return env[self.steps[-1][0]]


def _host_steps(name, program, record, value_kind, float_modules):
    """(steps, input refs, modules) of the host module of float node `name`."""
    refs, steps, modules, done = [], [], {}, set()

    def visit(step_name):
        if step_name in done:
            return
        done.add(step_name)
        step = program[step_name]
        kind = step[0]

        def go(x):
            if isinstance(x, _Ref):
                r = x.name
                if value_kind.get(r) in ("int", "float"):
                    if r not in refs:
                        refs.append(r)
                    return x
                prod = program.get(r)
                if prod is not None and prod[0] in ("call_function", "call_method", "call_module") and \
                        not isinstance(record[r], torch.Tensor):
                    visit(r)  # a shape helper: re-run it on the host
                    return x
                return record[r]  # a constant (get_attr, ...): baked
            if isinstance(x, tuple):
                return tuple(go(e) for e in x)
            if isinstance(x, list):
                return [go(e) for e in x]
            if isinstance(x, dict):
                return {k: go(v) for k, v in x.items()}
            return x

        args, kwargs = go(step[3]), go(step[4])
        if kind == "call_module":
            modules[step_name] = float_modules[step[2]]
        steps.append((step_name, kind, step[2], args, kwargs))

    visit(name)
    return steps, refs, modules


class _Container(nn.Module):
    def __init__(self, graph_json, tensors, hosts):
        super().__init__()
        self.graph_json = graph_json
        for k, t in tensors.items():
            self.register_buffer(k, t)
        for k, h in hosts.items():
            setattr(self, k, h)

    def forward(self) -> str:
        return self.graph_json

    @torch.jit.export
    def graph(self) -> str:
        return self.graph_json


def _hw_json(hw):
    return {"acc_bits": hw.acc_bits, "overflow_policy": hw.overflow_policy, "rounding_mode": hw.rounding_mode,
            "avgpool_shift": hw.avgpool_shift, "supports_a4w4": hw.supports_a4w4, "supports_a8w4": hw.supports_a8w4,
            "supports_a16w8": hw.supports_a16w8}


@torch.no_grad()
def export_graph(model, example_inputs):
    """(graph dict, {tensor key: tensor}, {host key: module}, eval outputs) of a prepared model."""
    m = unwrap(model)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    was = m.training
    m.eval()
    try:
        m(*example_inputs)  # calibrates formats never observed
        record = {}
        outputs = m.run(*example_inputs, record=record)
    finally:
        m.train(was)
    hw = m.hw_options
    hw_list = hw.to_list()
    acts = m.acts
    nodes, tensors, hosts = [], {}, {}
    value_kind = {}
    fmt = {}

    def af(name):
        return fmt[name]

    program = {s[1]: s for s in m._program if s[0] != "placeholder"}
    quantized_inputs = {info["name"] for info in m.nodes if info["kind"] == "input"}
    for pname in m.input_names:
        if pname not in quantized_inputs:
            value_kind[pname] = "float"
    for info in m.nodes:
        name, kind = info["name"], info["kind"]
        j = {"name": name}
        if kind == "float":
            if not info["is_tensor"]:
                continue  # shapes and other constants: baked into the host modules that read them
            step = program[name]
            if step[0] == "get_attr":
                traced, refs = torch.jit.script(_Const(record[name])), []
            else:
                steps, refs, mods = _host_steps(name, program, record, value_kind, m.float_modules)
                host = _HostCall(steps, refs, mods)
                try:
                    traced = torch.jit.trace(host, tuple(record[r] for r in refs), check_trace=False)
                except Exception as e:
                    raise ExportError("export: cannot trace the float node '%s' (%s) for the host: %s"
                                      % (name, info["target"], e)) from e
            key = "h_" + name
            hosts[key] = traced
            j.update(op="host", inputs=refs, module=key, source=info["source"], shape=_shape(record[name]),
                     value="float")
            value_kind[name] = "float"
            nodes.append(j)
            continue
        layer = m.layers[info["layer"]]
        act = acts[info["act"]]
        f_out = act.frac()
        fmt[name] = (act.dtype, f_out)
        value_kind[name] = "int"
        ins = info["inputs"]
        j.update(source=info["source"], shape=_shape(record[name]), value="int", dtype=act.dtype, frac=f_out)
        clip = _clip_json(clip_ints(getattr(layer, "clip", None), f_out))
        out = {"dtype": act.dtype, "frac": f_out, "clip": clip}
        if kind == "input":
            j.update(op="input", index=info["index"], clip=clip)
        elif kind == "quant_in":
            j.update(op="quantize", inputs=[info["float_source"]], out=out)
        elif kind in ("conv2d", "linear"):
            x_dtype, x_frac = af(ins[0])
            wq, wfr, b = layer.eval_weights()
            w_int = (wq.detach().double() * _channel_scale(wfr, wq.dim(), +1))
            w_q = w_int.to(torch.int64)
            if not torch.equal(w_q.double(), w_int):
                raise ExportError("export: weights of '%s' are not integers at their fracs" % name)
            if b is None:
                b = torch.zeros(wq.shape[0], dtype=wq.dtype)
            b_q, _ = torch.ops.dla.bias_integers(b.detach(), x_frac, wfr, hw_list)
            wkey, bkey = "w_" + name, "b_" + name
            tensors[wkey] = w_q.to(torch.int8)
            tensors[bkey] = b_q.to(torch.int32)
            j.update(op=kind, inputs=ins)
            if kind == "conv2d":
                ca = info["conv_args"]
                j.update(out_channels=int(wq.shape[0]), kernel=[int(wq.shape[2]), int(wq.shape[3])],
                         stride=list(ca["stride"]), padding=[ca["padding"][0], ca["padding"][1], ca["padding"][0],
                                                             ca["padding"][1]],
                         dilation=list(ca["dilation"]), groups=int(ca["groups"]))
            else:
                j.update(out_features=int(wq.shape[0]))
            j.update(weight_dtype=layer.weight_dtype, weights={"tensor": wkey, "shape": list(wq.shape)},
                     weight_frac=[int(f) for f in wfr], bias={"tensor": bkey},
                     shift=requant_shifts(x_frac, wfr, f_out), mac_mode=mac_mode(x_dtype, layer.weight_dtype)[0],
                     out=out)
        elif kind == "add":
            fa, fb = af(ins[0])[1], af(ins[1])[1]
            big = max(fa, fb)
            j.update(op="add", inputs=ins, align={"a": big - fa, "b": big - fb, "out": big - f_out}, out=out)
        elif kind == "avgpool":
            p = info["padding"]
            j.update(op="avg_pool", inputs=ins, kernel=list(info["kernel"]), stride=list(info["stride"]),
                     padding=[p[0], p[1], p[0], p[1]], out=out)
        elif kind == "gap":
            j.update(op="global_avg_pool", inputs=ins, out=out)
        elif kind == "maxpool":
            p = info["padding"]
            j.update(op="max_pool", inputs=ins, kernel=list(info["kernel"]), stride=list(info["stride"]),
                     padding=[p[0], p[1], p[0], p[1]])
        elif kind == "cat":
            j.update(op="concat", inputs=ins)
        elif kind == "upsample":
            j.update(op="upsample2x", inputs=ins)
        elif kind == "flatten":
            j.update(op="flatten", inputs=ins)
        else:
            raise ExportError("export: unknown node kind %s" % kind)
        nodes.append(j)
    # Graph inputs only float islands read.
    inputs = list(m.input_names)
    for idx, pname in reversed(list(enumerate(m.input_names))):
        if pname not in quantized_inputs:
            nodes.insert(0, {"name": pname, "op": "float_input", "index": idx, "shape": list(example_inputs[idx].shape),
                             "value": "float", "source": ""})
    out_names = []
    torch.fx.node.map_aggregate(m._outputs, lambda a: out_names.append(a.name) if isinstance(a, _Ref) else None)
    graph = {"format": FORMAT, "version": VERSION, "hw": _hw_json(hw), "hw_list": hw_list,
             "plan": m.plan.describe(), "inputs": inputs, "outputs": out_names, "nodes": nodes}
    return graph, tensors, hosts, outputs


class _Const(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.register_buffer("t", t.clone())

    def forward(self) -> torch.Tensor:
        return self.t


def export(model, example_inputs, path, verify=True):
    """Writes the prepared model's integers to `path` (TorchScript); returns the path.

    With verify=True the file is replayed (integer_forward) on example_inputs and compared
    with the eval forward, element for element; a mismatch raises ExportError.
    """
    graph, tensors, hosts, outputs = export_graph(model, example_inputs)
    path = str(path)
    torch.jit.save(export_module(graph, tensors, hosts), path)
    if verify:
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        check_export(model, path, *example_inputs, _eval_outputs=outputs)
    return path


def export_module(graph, tensors, hosts):
    """The scripted container of an export (what export() saves)."""
    return torch.jit.script(_Container(json.dumps(graph, indent=1), tensors, hosts))


class Exported:
    """A loaded export: .graph (the JSON as a dict), .tensor(key), .host(key), .node(name)."""

    def __init__(self, module):
        self.module = module
        self.graph = json.loads(module.graph_json)
        if self.graph.get("format") != FORMAT:
            raise ExportError("not a dlasim QAT export (format %r)" % self.graph.get("format"))
        if self.graph.get("version") != VERSION:
            raise ExportError("unsupported export version %r (this dlasim reads %d)" % (self.graph.get("version"), VERSION))
        self._nodes = {n["name"]: n for n in self.graph["nodes"]}

    def tensor(self, key):
        return getattr(self.module, key)

    def host(self, key):
        return getattr(self.module, key)

    def node(self, name):
        return self._nodes[name]

    @property
    def nodes(self):
        return self.graph["nodes"]

    @property
    def hw(self):
        return HwOptions.from_list(self.graph["hw_list"])


def load_export(path):
    return Exported(torch.jit.load(str(path)))


def _as_exported(exported):
    if isinstance(exported, Exported):
        return exported
    if isinstance(exported, (str, Path)):
        return load_export(exported)
    return Exported(exported)


def _check_range(q, dtype, name):
    lo, hi = dtype_range(dtype)
    if q.numel() and (int(q.min()) < lo or int(q.max()) > hi):
        raise ExportError("integer_forward: input '%s' holds values outside %s [%d, %d]" % (name, dtype, lo, hi))


@torch.no_grad()
def integer_forward(exported, *inputs, return_all=False):
    """Replays an export with integers; see the module docstring. return_all=True returns
    {node name: value} of every node instead (ints as int64, host values as float)."""
    ex = _as_exported(exported)
    hw = ex.graph["hw_list"]
    env = {}
    fmt = {}

    def real(name, dtype=torch.float64):
        return to_reals(env[name], fmt[name][1], dtype)

    for n in ex.nodes:
        name, op = n["name"], n["op"]
        if n.get("value") == "int":
            fmt[name] = (n["dtype"], n["frac"])
        ins = n.get("inputs", [])
        if op == "float_input":
            env[name] = inputs[n["index"]]
            continue
        if op in ("input", "quantize"):
            x = inputs[n["index"]] if op == "input" else env[ins[0]]
            clip = n["clip"] if op == "input" else n["out"]["clip"]
            if x.is_floating_point():
                r = F.quantize(x, n["dtype"], n["frac"], tuple(clip), hw)
                env[name] = to_integers(r.y, n["frac"])
            else:
                q = x.to(torch.int64)
                _check_range(q, n["dtype"], name)
                env[name] = q
            continue
        if op == "host":
            args = [real(i, torch.float32) if i in fmt else env[i] for i in ins]
            env[name] = ex.host(n["module"])(*args)
            continue
        out = n.get("out")
        if op in ("conv2d", "linear"):
            x_dtype, x_frac = fmt[ins[0]]
            w = ex.tensor(n["weights"]["tensor"]).to(torch.int64)
            wr = to_reals(w, 0) * _channel_scale(n["weight_frac"], w.dim())
            b = ex.tensor(n["bias"]["tensor"]).to(torch.int64)
            br = b.to(torch.float64) * _channel_scale([x_frac + f for f in n["weight_frac"]], 1)
            common = dict(x_dtype=x_dtype, x_frac=x_frac, w_dtype=n["weight_dtype"], w_fracs=n["weight_frac"],
                          y_dtype=out["dtype"], y_frac=out["frac"], clip=tuple(out["clip"]), hw=hw)
            if op == "conv2d":
                p = n["padding"]
                r = F.conv2d(real(ins[0]), wr, br, stride=n["stride"], padding=[p[0], p[1]], dilation=n["dilation"],
                             groups=n["groups"], **common)
            else:
                r = F.linear(real(ins[0]), wr, br, **common)
            env[name] = to_integers(r.y, out["frac"])
        elif op == "add":
            (ta, fa), (tb, fb) = fmt[ins[0]], fmt[ins[1]]
            r = F.add(real(ins[0]), real(ins[1]), a_dtype=ta, a_frac=fa, b_dtype=tb, b_frac=fb, y_dtype=out["dtype"],
                      y_frac=out["frac"], clip=tuple(out["clip"]), hw=hw)
            env[name] = to_integers(r.y, out["frac"])
        elif op in ("avg_pool", "global_avg_pool"):
            xt, xf = fmt[ins[0]]
            if op == "avg_pool":
                k, s, p = n["kernel"], n["stride"], n["padding"][:2]
            else:
                shape = env[ins[0]].shape
                k, s, p = [shape[2], shape[3]], [shape[2], shape[3]], [0, 0]
            r = F.avg_pool2d(real(ins[0]), k, s, p, x_dtype=xt, x_frac=xf, y_dtype=out["dtype"], y_frac=out["frac"],
                             clip=tuple(out["clip"]), hw=hw)
            env[name] = to_integers(r.y, out["frac"])
        elif op == "max_pool":
            xt, xf = fmt[ins[0]]
            y = F.max_pool2d(real(ins[0]), n["kernel"], n["stride"], n["padding"][:2], dtype=xt, frac=xf)[0]
            env[name] = to_integers(y, xf)
        elif op == "concat":
            kinds = {fmt[i] for i in ins}
            if len(kinds) != 1:
                raise ExportError("integer_forward: concat '%s' joins tensors of formats %s" % (name, sorted(kinds)))
            env[name] = torch.cat([env[i] for i in ins], 1)
        elif op == "upsample2x":
            env[name] = env[ins[0]].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        elif op == "flatten":
            env[name] = torch.flatten(env[ins[0]], 1)
        else:
            raise ExportError("integer_forward: unknown op %r (node '%s')" % (op, name))
    if return_all:
        return env
    outs = tuple(env[o] for o in ex.graph["outputs"])
    return outs[0] if len(outs) == 1 else outs


def output_fracs(exported):
    """[(dtype, frac) or None for float outputs] of the export's outputs, in order."""
    ex = _as_exported(exported)
    return [(ex.node(o).get("dtype"), ex.node(o).get("frac")) if ex.node(o).get("value") == "int" else None
            for o in ex.graph["outputs"]]


def check_export(model, exported, *inputs, _eval_outputs=None):
    """Raises ExportError unless the eval forward of `model` on `inputs` equals the integer
    replay of `exported`, element for element; returns the number of elements compared."""
    ex = _as_exported(exported)
    m = unwrap(model)
    if _eval_outputs is None:
        was = m.training
        m.eval()
        try:
            with torch.no_grad():
                _eval_outputs = m(*inputs)
        finally:
            m.train(was)
    flat = []
    torch.fx.node.map_aggregate(_eval_outputs, lambda a: flat.append(a) if isinstance(a, torch.Tensor) else None)
    replay = integer_forward(ex, *inputs)
    replay = replay if isinstance(replay, tuple) else (replay,)
    if len(flat) != len(replay):
        raise ExportError("check_export: the model returns %d tensors, the export %d" % (len(flat), len(replay)))
    compared = 0
    for name, y, r in zip(ex.graph["outputs"], flat, replay):
        node = ex.node(name)
        if node.get("value") == "int":
            q = to_integers(y, node["frac"])
            if not torch.equal(q, r):
                diff = (q != r).nonzero()
                raise ExportError("check_export: output '%s' differs from the replay at %d of %d elements (first at %s: "
                                  "eval %d, replay %d)" % (name, diff.shape[0], q.numel(), diff[0].tolist(),
                                                           int(q[tuple(diff[0])]), int(r[tuple(diff[0])])))
        elif not torch.equal(y, r):
            raise ExportError("check_export: float output '%s' differs from the replay" % name)
        compared += y.numel()
    return compared


def write_graph_file(exported, json_path):
    """Writes an export without float islands as the compiler's graph file (graph_io.hpp):
    `json_path` and the weights next to it (same stem, .bin)."""
    ex = _as_exported(exported)
    jp = Path(json_path)
    bin_path = jp.with_suffix(".bin")
    blob = bytearray()
    nodes = []
    for n in ex.nodes:
        op = n["op"]
        if op in ("host", "quantize", "float_input"):
            raise ExportError("write_graph_file: node '%s' (%s) runs on the host; the compiler's graph file holds one "
                              "device graph (split the model at its float islands)" % (n["name"], op))
        g = {"name": n["name"], "op": op}
        if op == "input":
            g.update(dtype=n["dtype"], frac=n["frac"], shape=n["shape"])
            nodes.append(g)
            continue
        g["inputs"] = n["inputs"]
        for k in ("out_channels", "out_features", "kernel", "stride", "padding", "dilation", "groups", "weight_dtype",
                  "weight_frac", "out"):
            if k in n:
                g[k] = n[k]
        if op in ("conv2d", "linear"):
            w = ex.tensor(n["weights"]["tensor"]).reshape(-1)
            g["weights"] = {"offset": len(blob), "count": int(w.numel())}
            blob += bytes(w.to(torch.int8).numpy().tobytes())
            g["bias"] = [int(v) for v in ex.tensor(n["bias"]["tensor"]).tolist()]
        nodes.append(g)
    doc = {"format": "dlasim-graph", "version": 1, "weights_file": bin_path.name, "nodes": nodes,
           "outputs": ex.graph["outputs"]}
    jp.write_text(json.dumps(doc, indent=1) + "\n")
    bin_path.write_bytes(bytes(blob))
    return str(jp)


__all__ = ["export", "export_graph", "export_module", "integer_forward", "load_export", "Exported", "check_export", "to_integers",
           "to_reals", "write_graph_file", "output_fracs", "ExportError", "FORMAT", "VERSION"]

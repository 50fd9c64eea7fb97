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
     "hw_identity": "09a622f7143db0a9",           # identity hash of the config `dla compile` derives
                                                  #   (the default preset with the fields of "hw")
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

A float island that returns a tuple or list at a graph output (a detection head's
(boxes, [maps])) gives one host node per tensor in it, named `<node>__out<k>` in the order
torch.fx.node.map_aggregate visits them; `outputs` lists them, and the replay returns them
flattened, like the eval forward's tensors.

A model without float islands is one device graph: `write_graph_file(path, json_path)`
writes it as the compiler's graph file (JSON + weights .bin) as well. With float islands,
every `host` node's int inputs are device outputs and every `quantize` node a device input.

## The float reference (optional)

`export(..., float_reference=True)` also stores the prepared model run with floats (BN
folded, no quantization: what dlasim.report and dlasim.signoff(..., model=) measure SQNR
against), traced, as host module `f_reference`, and names what it returns in the graph:

    "float_reference": {"module": "f_reference", "values": ["conv1", "pool", ...]}

It takes the model's inputs as floats (an integer input as its reals, q * 2^-frac) and
returns one float tensor per name, in order.
`dla signoff net.dla.pt` then gives every layer its SQNR against the float model. It
holds the float weights (about four times the integer export's size); the digest covers
it like any host module.

## Integrity

Beside `graph_json` the container holds `digest_json`, the CRC-32 of the graph and of every
tensor and host module (dlasim.integrity). `load_export` (and everything that takes a path:
`integer_forward`, `write_graph_file`, `dlasim.Device`'s export) and `dla compile` check
them and the graph's structure, and refuse a damaged file with one ExportError (or one
error line) naming what is wrong.

## Replay

`integer_forward(exported, *inputs)` runs the file: int64 tensors between nodes, each
requantizing op through the dla ops (whose kernels are dla/numerics.hpp: the simulator's
code), concat / upsample / flatten as integer copies, host modules in float. Float inputs
are quantized by dla.quantize like the model does; integer tensors (uint8 images) are
taken as the integers (range-checked against the input's type). A NaN or inf to quantize
is an error naming the tensor, unless `nonfinite="count"` (as the model's
QatConfig.nonfinite; export's verification uses the model's). It returns the outputs'
integers (int64) and host outputs' floats: one tensor, or a tuple when the model has
several outputs. For every input,

    to_integers(prepared.eval()(x), frac) == integer_forward(path, x)     # element for element
"""

import json
from pathlib import Path

import torch
from torch import nn

from . import integrity, ops
from .hw import HwOptions
from .integers import ExportError, first_line, to_integers, to_reals
from .layers import NONFINITE_POLICIES, clip_ints
from .runtime import FLOAT, Ref, as_inputs, evaluating, fill, unwrap

FORMAT = "dlasim-qat-export"
VERSION = 1
# The host's nodes, besides the registry's (dlasim.ops): float-island ops and graph inputs
# only float islands read.
HOST, FLOAT_INPUT = "host", "float_input"


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
            a, k = fill(args, env), fill(kwargs, env)
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
            if isinstance(x, Ref):
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
    def __init__(self, graph_json, digest_json, tensors, hosts):
        super().__init__()
        self.graph_json = graph_json
        self.digest_json = digest_json
        for k, t in tensors.items():
            self.register_buffer(k, t)
        for k, h in hosts.items():
            setattr(self, k, h)

    def forward(self) -> str:
        return self.graph_json

    @torch.jit.export
    def graph(self) -> str:
        return self.graph_json


class _NodeExport:
    """What the registry's export functions (dlasim.ops) read: the node, its layer, the
    formats of the nodes before it, and `tensors` to add its weights to."""

    def __init__(self, op, name, info, layer, ins, fmt, f_out, out, clip, hw_list, tensors):
        self.op, self.name, self.info, self.layer, self.ins = op, name, info, layer, ins
        self.fmt, self.f_out, self.out, self.clip = fmt, f_out, out, clip
        self.hw_list, self.tensors = hw_list, tensors


def _hw_json(hw):
    return {"acc_bits": hw.acc_bits, "overflow_policy": hw.overflow_policy, "rounding_mode": hw.rounding_mode,
            "avgpool_shift": hw.avgpool_shift, "supports_a4w4": hw.supports_a4w4, "supports_a8w4": hw.supports_a8w4,
            "supports_a16w8": hw.supports_a16w8}


@torch.no_grad()
def export_graph(model, example_inputs):
    """(graph dict, {tensor key: tensor}, {host key: module}, eval outputs) of a prepared model."""
    # Eval mode throughout: the host modules are traced from the float modules, and a
    # BatchNorm traced in training mode would normalize with batch statistics.
    with evaluating(model) as m:
        return _export_graph(m, as_inputs(example_inputs))


def _export_graph(m, example_inputs):
    """export_graph of the unwrapped model `m`, in eval mode."""
    m(*example_inputs)  # calibrates formats never observed
    record = {}
    outputs = m.run(*example_inputs, record=record)
    hw = m.hw_options
    hw_list = hw.to_list()
    acts = m.acts
    nodes, tensors, hosts = [], {}, {}
    value_kind = {}
    fmt = {}

    program = {s[1]: s for s in m.program if s[0] != "placeholder"}
    quantized_inputs = {info["name"] for info in m.nodes if info["kind"] == ops.INPUT.name}
    for pname in m.input_names:
        if pname not in quantized_inputs:
            value_kind[pname] = "float"
    for info in m.nodes:
        name, kind = info["name"], info["kind"]
        j = {"name": name}
        if kind == FLOAT:
            if not info["is_tensor"]:
                continue  # shapes and other constants: baked into the host modules that read them
            nodes.append(_host_node(name, info, program, record, value_kind, m.float_modules, hosts))
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
        op = ops.BY_NAME[kind]
        j.update(op.export(_NodeExport(op, name, info, layer, ins, fmt, f_out, out, clip, hw_list, tensors)))
        nodes.append(j)
    # Graph inputs only float islands read.
    inputs = list(m.input_names)
    for idx, pname in reversed(list(enumerate(m.input_names))):
        if pname not in quantized_inputs:
            nodes.insert(0, {"name": pname, "op": FLOAT_INPUT, "index": idx, "shape": list(example_inputs[idx].shape),
                             "value": "float", "source": ""})
    # Outputs, flattened; a tuple or list a float island returns (a detection head's
    # (boxes, [maps])) becomes one host output per tensor in it, in order.
    out_refs, out_names = [], []
    torch.fx.node.map_aggregate(m.outputs, lambda a: out_refs.append(a.name) if isinstance(a, Ref) else None)
    info_of = {info["name"]: info for info in m.nodes}
    for name in out_refs:
        if isinstance(record[name], torch.Tensor):
            out_names.append(name)
            continue
        for k, where in enumerate(_tensor_paths(record[name])):
            part = "%s__out%d" % (name, k)
            program[part] = ("call_function", part, _pick, (Ref(name), where), {})
            record[part] = _pick(record[name], where)
            nodes.append(_host_node(part, dict(info_of[name], name=part, target="%s%s" % (name, list(where))),
                                    program, record, value_kind, m.float_modules, hosts))
            out_names.append(part)
    graph = {"format": FORMAT, "version": VERSION, "hw": _hw_json(hw), "hw_list": hw_list,
             "hw_identity": torch.ops.dla.hw_config_hash(hw_list),
             "plan": m.plan.describe(), "inputs": inputs, "outputs": out_names, "nodes": nodes}
    return graph, tensors, hosts, outputs


def _host_node(name, info, program, record, value_kind, float_modules, hosts):
    """The host node of float value `name` (its traced module goes into `hosts`)."""
    step = program[name]
    if step[0] == "get_attr":
        traced, refs = torch.jit.script(_Const(record[name])), []
    else:
        steps, refs, mods = _host_steps(name, program, record, value_kind, float_modules)
        host = _HostCall(steps, refs, mods)
        try:
            traced = torch.jit.trace(host, tuple(record[r] for r in refs), check_trace=False)
        except Exception as e:
            raise ExportError("export: cannot trace the float node '%s' (%s) for the host: %s"
                              % (name, info["target"], e)) from e
    key = "h_" + name
    hosts[key] = traced
    value_kind[name] = "float"
    return {"name": name, "op": HOST, "inputs": refs, "module": key, "source": info["source"],
            "shape": _shape(record[name]), "value": "float"}


def _tensor_paths(v, prefix=()):
    """The index paths of the tensors in nested tuples / lists / dicts, in the order
    torch.fx.node.map_aggregate visits them."""
    if isinstance(v, torch.Tensor):
        return [prefix]
    if isinstance(v, (tuple, list)):
        return [p for i, e in enumerate(v) for p in _tensor_paths(e, prefix + (i,))]
    if isinstance(v, dict):
        return [p for k, e in v.items() for p in _tensor_paths(e, prefix + (k,))]
    return []


def _pick(v, where):
    for i in where:
        v = v[i]
    return v


class _FloatReference(nn.Module):
    """The float model returning the value of every node in `names`, in order."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *inputs):
        record = {}
        self.model.run(*inputs, float_mode=True, record=record)
        return tuple(record[n] for n in self.names)


def _float_reference(model, graph, example_inputs):
    """(graph entry, traced module) of the float reference of `model` (see the docstring)."""
    # Traced on floats: integer inputs (uint8 images) as their reals, as `dla signoff` gives them.
    node = {n["name"]: n for n in graph["nodes"]}
    example_inputs = tuple(x if x.is_floating_point() else to_reals(x, node[name]["frac"], torch.float32)
                           for name, x in zip(graph["inputs"], example_inputs))
    with evaluating(model) as m, torch.no_grad():
        record = {}
        m.run(*example_inputs, float_mode=True, record=record)
        names = [n["name"] for n in graph["nodes"] if isinstance(record.get(n["name"]), torch.Tensor)
                 and record[n["name"]].is_floating_point()]
        try:
            traced = torch.jit.trace(_FloatReference(m, names), tuple(example_inputs), check_trace=False)
        except Exception as e:  # noqa: BLE001 - tracing raises whatever the model's code raises
            raise ExportError("export: cannot trace the float model for float_reference: %s" % e) from e
    return {"module": "f_reference", "values": names}, traced


class _Const(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.register_buffer("t", t.clone())

    def forward(self) -> torch.Tensor:
        return self.t


def export(model, example_inputs, path, verify=True, float_reference=False):
    """Writes the prepared model's integers to `path` (TorchScript); returns the path.

    With verify=True the file is replayed (integer_forward) on example_inputs and compared
    with the eval forward, element for element; a mismatch raises ExportError. With
    float_reference=True the file also holds the float model, for SQNR in `dla signoff`
    (see the module docstring).
    """
    graph, tensors, hosts, outputs = export_graph(model, example_inputs)
    if float_reference:
        graph["float_reference"], hosts["f_reference"] = _float_reference(model, graph, as_inputs(example_inputs))
    path = str(path)
    torch.jit.save(export_module(graph, tensors, hosts), path)
    if verify:
        check_export(model, path, *as_inputs(example_inputs), _eval_outputs=outputs)
    return path


def export_module(graph, tensors, hosts):
    """The scripted container of an export (what export() saves), with the CRC-32 of every
    item it holds (dlasim.integrity)."""
    graph_json = json.dumps(graph, indent=1)
    return torch.jit.script(_Container(graph_json, integrity.digest(graph_json, tensors, hosts), tensors, hosts))


class Exported:
    """A loaded export: .graph (the JSON as a dict), .tensor(key), .host(key), .node(name)."""

    def __init__(self, module):
        self.module = module
        self.graph = integrity.verify(module)
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
    """Loads and checks an export (dlasim.integrity): ExportError names what is wrong."""
    try:
        module = torch.jit.load(str(path))
    except Exception as e:  # noqa: BLE001 - torch.jit.load raises RuntimeError, IndexError, ... on damaged files
        raise ExportError("%s: cannot read it as a TorchScript export: %s" % (path, first_line(e))) from None
    try:
        return Exported(module)
    except ExportError as e:
        raise ExportError("%s: %s" % (path, e)) from None


def _as_exported(exported):
    if isinstance(exported, Exported):
        return exported
    if isinstance(exported, (str, Path)):
        return load_export(exported)
    return Exported(exported)


class _Replay:
    """What the registry's replay functions (dlasim.ops) read: the export, its hw list, the
    call's inputs, the values so far (`env`: int64 or host floats) and their formats."""

    def __init__(self, ex, inputs, nonfinite="error"):
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError("integer_forward: nonfinite %r is not one of %s"
                             % (nonfinite, ", ".join(NONFINITE_POLICIES)))
        self.ex = ex
        self.hw = ex.graph["hw_list"]
        self.inputs = inputs
        self.nonfinite = nonfinite  # what a NaN / inf to quantize is: "error" or "count" (QatConfig.nonfinite)
        self.env = {}
        self.fmt = {}  # name -> (dtype, frac) of the int values

    def real(self, name, dtype=torch.float64):
        return to_reals(self.env[name], self.fmt[name][1], dtype)


@torch.no_grad()
def integer_forward(exported, *inputs, return_all=False, nonfinite="error"):
    """Replays an export with integers; see the module docstring. return_all=True returns
    {node name: value} of every node instead (ints as int64, host values as float).
    A NaN or inf to quantize is an error, unless nonfinite="count" (as QatConfig.nonfinite)."""
    ex = _as_exported(exported)
    if len(inputs) != len(ex.graph["inputs"]):
        raise ExportError("integer_forward: the export takes %d input(s) (%s), got %d"
                          % (len(ex.graph["inputs"]), ", ".join(ex.graph["inputs"]), len(inputs)))
    r = _Replay(ex, inputs, nonfinite)
    env = r.env
    for n in ex.nodes:
        name, op = n["name"], n["op"]
        if n.get("value") == "int":
            r.fmt[name] = (n["dtype"], n["frac"])
        ins = n.get("inputs", [])
        if op == FLOAT_INPUT:
            env[name] = inputs[n["index"]]
        elif op == HOST:
            args = [r.real(i, torch.float32) if i in r.fmt else env[i] for i in ins]
            env[name] = ex.host(n["module"])(*args)
        elif op in ops.BY_EXPORT_OP:
            env[name] = ops.BY_EXPORT_OP[op].replay(n, r)
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
    if _eval_outputs is None:
        with evaluating(model) as m, torch.no_grad():
            _eval_outputs = m(*inputs)
    flat = []
    torch.fx.node.map_aggregate(_eval_outputs, lambda a: flat.append(a) if isinstance(a, torch.Tensor) else None)
    replay = integer_forward(ex, *inputs, nonfinite=unwrap(model).config.nonfinite)
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
        op = ops.BY_EXPORT_OP.get(n["op"])
        if op is None or op.on_host:
            raise ExportError("write_graph_file: node '%s' (%s) runs on the host; the compiler's graph file holds one "
                              "device graph (split the model at its float islands)" % (n["name"], n["op"]))
        g = {"name": n["name"], "op": n["op"]}
        if op is ops.INPUT:
            g.update(dtype=n["dtype"], frac=n["frac"], shape=n["shape"])
            nodes.append(g)
            continue
        g["inputs"] = n["inputs"]
        for k in ("out_channels", "out_features", "kernel", "stride", "padding", "dilation", "groups", "weight_dtype",
                  "weight_frac", "out", "function", "alpha", "table"):
            if k in n:
                g[k] = n[k]
        if op.mac:
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

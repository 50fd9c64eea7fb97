"""The analysis of prepare_qat (torch.ao's "fuse" step): the traced graph as QNodes.

Every fx node of the quantized region is matched against the op registry (dlasim.ops);
identity-like nodes become aliases; the float values quantized nodes read get a
quantizer (a boundary); every BatchNorm is folded into the conv2d / linear before it;
every clip (ReLU, ReLU6, hardtanh, clamp) is fused into the requantizer that produces its
input, through the ops that pass their input's integers on.
"""

import operator
import re

import torch
import torch.fx as fx
import torch.nn.functional as TF
from torch import nn

from . import ops
from .plan import PlanError, name_matches
from .tracer import PrepareError, describe, float_hint, fx_names


class QNode:
    """A node of the quantized graph: an OpKind (dlasim.ops), its inputs (QNodes) and what
    the analysis decided for it (clip, folded BatchNorm, format, weight type)."""

    def __init__(self, name, op, inputs, fx_node=None, **attrs):
        self.name = name
        self.op = op
        self.inputs = list(inputs)
        self.fx_node = fx_node
        self.attrs = attrs
        self.clip = None
        self.bn = None
        self.aliases = []  # fx nodes folded or fused into this one
        self.act_id = None
        self.weight_dtype = None

    @property
    def kind(self):
        return self.op.name

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


class Analyzer:
    """Runs the analysis (run()) on a traced GraphModule; the plan names the float layers."""

    def __init__(self, gm, plan):
        self.gm = gm
        self.plan = plan
        self.modules = dict(gm.named_modules())

    def fail(self, node, why, hint=True):
        msg = "dlasim.prepare_qat: %s: %s" % (describe(node), why)
        if hint:
            msg += "; %s" % float_hint(node)
        raise PrepareError(msg)

    def run(self):
        graph = self.gm.graph
        plan = self.plan
        fx_nodes = list(graph.nodes)
        self.placeholders = [n for n in fx_nodes if n.op == "placeholder"]
        self.output_node = next(n for n in fx_nodes if n.op == "output")

        # 1. Float region: the plan's float_layers, leaf modules (traced as one node: they run
        #    as they are), and the non-tensor helpers (x.size(0), x.shape...).
        is_float = {}
        for pattern in plan.float_layers:
            hits = [n for n in fx_nodes if n.op not in ("output",) and name_matches(pattern, fx_names(n))]
            if not hits:
                raise PlanError("plan.float_layers entry %r names no layer or node of the model (%s)"
                                % (pattern, self.name_examples()))
            for n in hits:
                is_float[n] = True
        for n in fx_nodes:
            if n.op == "output":
                continue
            if n.meta.get("dla_leaf") or n.op == "get_attr" or \
                    not (n.meta.get("dla_is_tensor") or n.meta.get("dla_has_tensors")):
                is_float[n] = True
        self.is_float = is_float

        # 2. One QNode per quantized fx node (identity-like nodes become aliases). A node
        #    that reads only float values and cannot be quantized there (an op the DLA does
        #    not run, a BatchNorm or an activation after a float conv, an element of a float
        #    tuple) joins the float island; every other node the DLA cannot run is collected
        #    for one error that lists them all.
        value = {}  # fx node -> QNode (quantized values) ; float nodes map to None
        qnodes = []
        self.float_nodes = []
        self.joined = []
        unsupported = []
        for n in fx_nodes:
            if n.op == "output":
                continue
            if is_float.get(n):
                self.float_nodes.append(n)
                continue
            try:
                op, attrs = ops.match(n, self.modules)
                if not n.meta.get("dla_is_tensor"):
                    raise ops.Unsupported("it returns several tensors (a tuple or list); the DLA's ops return one")
                if op is ops.VIEW and not self.view_is_identity(n) and not self.reads_only_float(n):
                    src, out = n.args[0].meta.get("dla_shape"), n.meta.get("dla_shape")
                    if src is None or len(src) != 4 or tuple(out) != (src[0], src[1] * src[2] * src[3]):
                        raise ops.Unsupported("a reshape from %s to %s; the DLA flattens [N, C, H, W] to "
                                              "[N, C*H*W] only" % (src, out))
            except ops.Unsupported as e:
                if self.reads_only_float(n) and (_is_activation(n, self.modules) or n.target is operator.getitem
                                                 or not _tensor_args(n)):
                    self.join_float(n)
                    continue
                unsupported.append((n, str(e)))
                is_float[n] = True  # as if the plan had left it in float: what that implies is found now
                self.float_nodes.append(n)
                continue
            if op in (ops.BATCH_NORM, ops.CLIP, ops.VIEW, ops.LUT) and self.reads_only_float(n):
                self.join_float(n)
                continue
            ins = self.quant_inputs(n, op, attrs, value)
            identity = op is ops.IDENTITY or (op is ops.VIEW and self.view_is_identity(n))
            if identity and isinstance(ins[0], fx.Node):
                is_float[n] = True  # dropout / identity of a float value: float code too
                self.float_nodes.append(n)
                continue
            if identity:
                value[n] = ins[0]
                ins[0].aliases.append(n)
                continue
            if op is ops.VIEW:
                op = ops.FLATTEN
            q = QNode(n.name, op, ins, n, **attrs)
            qnodes.append(q)
            value[n] = q
            if op is ops.GLOBAL_AVG_POOL and not attrs["keepdim"]:
                q.attrs["keepdim"] = True
                flat = QNode(n.name + "_flatten", ops.FLATTEN, [q], n)
                qnodes.append(flat)
                value[n] = flat
        self.value = value
        if unsupported:
            self.fail_unsupported(unsupported)

        # 3. Float -> quantized boundaries: quantize the float values quantized nodes read.
        qnodes = self.insert_boundaries(qnodes)
        # 4. Fold BatchNorm into the MAC before it.
        users = self.users(qnodes)
        for q in [q for q in qnodes if q.op is ops.BATCH_NORM]:
            p = q.inputs[0]
            if not p.op.mac or p.bn is not None or p.clip is not None or users[p] != [q] or self.float_users(p):
                what = {ops.INPUT: "a graph input", ops.QUANT_IN: "a float node"}.get(p.op, "'%s' (%s)" % (p.name,
                                                                                                        p.kind))
                self.fail(q.fx_node, "a BatchNorm must directly follow a conv2d or linear whose only user it is, "
                          "to be folded into it (this one follows %s)" % what)
            expect = ops.BN_OF_MAC[p.op]
            if not isinstance(q.attrs["module"], expect):
                self.fail(q.fx_node, "%s after a %s" % (type(q.attrs["module"]).__name__, p.kind))
            p.bn = q.attrs["module"]
            p.aliases.append(q.fx_node)
            self.replace(qnodes, q, p)
        # 5. Fuse clips into the requantizer that produces their input (a boundary
        #    quantizer is one too).
        for q in [q for q in qnodes if q.op is ops.CLIP]:
            users = self.users(qnodes)
            self.push_clip(q.inputs[0], q.attrs["clip"], q, users)
            q.inputs[0].aliases.append(q.fx_node)
            self.replace(qnodes, q, q.inputs[0])
        self.qnodes = qnodes
        return self

    def reads_only_float(self, n):
        """True when every tensor n reads is float (vacuously for a node that reads none:
        a constant made in forward())."""
        return all(self.is_float.get(a) for a in _tensor_args(n))

    def join_float(self, n):
        self.is_float[n] = True
        self.float_nodes.append(n)
        self.joined.append(n)

    def fail_unsupported(self, unsupported):
        """One error for every node the DLA cannot run, with the float_layers entries
        (globs where they name exactly such nodes) that leave them in float."""
        lines = ["%s: %s" % (describe(n), why.replace(" (supported: %s)" % ops.SUPPORTED, ""))
                 for n, why in unsupported]
        keys = suggest_float_layers([n for n, _ in unsupported], [n for n in self.gm.graph.nodes if n.op != "output"],
                                    self.is_float)
        scopes = list(dict.fromkeys(n.meta.get("dla_scope", "") for n, _ in unsupported if n.op != "call_module"))
        whole = " (or the modules they are inside, as a whole: float_layers=%r)" % scopes \
            if scopes and all(scopes) else ""
        what = "1 node is" if len(unsupported) == 1 else "%d nodes are" % len(unsupported)
        them = "it in float (it then runs" if len(unsupported) == 1 else "them in float (they then run"
        raise PrepareError("dlasim.prepare_qat: %s not supported in the quantized region: %s; leave %s on the host) "
                           "with plan=dict(float_layers=%r)%s (supported in the quantized region: %s)"
                           % (what, "; ".join(lines), them, keys, whole, ops.SUPPORTED))

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

    def quant_inputs(self, n, op, attrs, value):
        """The QNodes (or float fx nodes, resolved later) a quantized node reads."""
        srcs = ops.operands(op, n, attrs)
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
        if p.op.requantizes and not others:
            p.clip = _intersect(p.clip, clip)
            return
        if p.clip is not None and _within(p.clip, clip):
            return  # already inside the clip: the clip does nothing
        if not others and p.op.shares_format:
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
                        b = QNode(name, ops.QUANT_IN, [], None, float_source=i)
                        b.aliases = []
                        quantizers[i] = b
                        out.append(b)
                    q.inputs[k] = quantizers[i]
            out.append(q)
        self.boundary = quantizers
        return out

    def fx_outputs(self):
        out = []
        torch.fx.node.map_arg(self.output_node.args, lambda n: out.append(n))
        return out

    @staticmethod
    def unique(name, qnodes):
        taken = {q.name for q in qnodes}
        base, k = name, 1
        while name in taken:
            name = "%s_%d" % (base, k)
            k += 1
        return name


#: Element-wise activations the DLA does not run: after a float node they join it.
_ACTIVATION_FUNCTIONS = {torch.sigmoid, torch.tanh, TF.silu, TF.gelu, TF.leaky_relu, TF.hardswish, TF.hardsigmoid,
                         TF.elu, TF.softplus, TF.sigmoid, TF.tanh, getattr(TF, "mish", None)}
_ACTIVATION_METHODS = {"sigmoid", "tanh", "sigmoid_", "tanh_"}


def _is_activation(n, modules):
    if n.op == "call_module":
        m = modules[n.target]
        return type(m).__module__ == "torch.nn.modules.activation" and not isinstance(m, nn.MultiheadAttention)
    if n.op == "call_function":
        return n.target in _ACTIVATION_FUNCTIONS
    return n.op == "call_method" and n.target in _ACTIVATION_METHODS


def _tensor_args(n):
    """The fx nodes n reads that hold tensors."""
    ins = []
    fx.node.map_arg((n.args, n.kwargs), lambda a: ins.append(a))
    return [a for a in ins if a.meta.get("dla_is_tensor") or a.meta.get("dla_has_tensors")]


def _float_key(n):
    return str(n.target) if n.op == "call_module" else n.name


def suggest_float_layers(bad, nodes, is_float):
    """float_layers entries for the fx nodes `bad`: a glob ("*.act", "mul*") for two or
    more of them when it names no other node that would run quantized; names otherwise."""
    bad_set = set(bad)

    def exact(glob):
        hits = [n for n in nodes if name_matches(glob, fx_names(n))]
        return all(n in bad_set or is_float.get(n) for n in hits)

    groups = {}
    for n in bad:
        key = _float_key(n)
        if n.op == "call_module" and "." in key:
            glob = "*." + key.rsplit(".", 1)[1]
        else:
            glob = re.sub(r"_\d+$", "", key) + "*"
        groups.setdefault(glob, []).append(n)
    out = []
    for n in bad:
        key = _float_key(n)
        glob = next(g for g, members in groups.items() if n in members)
        entry = glob if len(groups[glob]) > 1 and exact(glob) else key
        if entry not in out:
            out.append(entry)
    return out


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


__all__ = ["Analyzer", "QNode", "suggest_float_layers"]

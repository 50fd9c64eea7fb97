"""Tracing for prepare_qat: torch.fx with the module each op ran inside, and the shapes.

`trace(model, example_inputs)` returns the GraphModule; every node's meta holds
"dla_scope" (the path of the module it was traced inside), and from one eval run on the
example inputs "dla_is_tensor", "dla_shape" and "dla_nonneg" (a float tensor >= 0).
"""

import torch
import torch.fx as fx


class PrepareError(ValueError):
    """The model cannot be prepared as it is (an op the DLA does not run in the quantized
    region, a pattern the hardware cannot fuse). The message names the node."""


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


def trace(model, example_inputs):
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


def fx_names(n):
    """The names a plan entry can match an fx node by: node name, scope, module path."""
    names = [n.name, n.meta.get("dla_scope", "")]
    if n.op == "call_module":
        names.append(str(n.target))
    return names


def describe(node):
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


def float_hint(node):
    key = str(node.target) if node.op == "call_module" else node.name
    return "leave it in float (it then runs on the host) with plan=dict(float_layers=[%r])" % key


def input_shape(n):
    """The recorded shape of the first argument of n (None if it is not a tensor node)."""
    return n.args[0].meta.get("dla_shape") if n.args and isinstance(n.args[0], fx.Node) else None


def arg(node, i, name, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def pair(v):
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


__all__ = ["PrepareError", "trace", "fx_names", "describe", "float_hint", "input_shape", "arg", "pair"]

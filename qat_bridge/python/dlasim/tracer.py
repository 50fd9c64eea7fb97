"""Tracing for prepare_qat: torch.fx with the module each op ran inside, and the shapes.

`trace(model, leaves)` returns the GraphModule and `record(gm, model, example_inputs)`
completes its nodes' meta; every node's meta holds
"dla_scope" (the path of the module it was traced inside), "dla_site" (the module call it
belongs to and its position there: the same for the corresponding nodes of two calls of
one module), "dla_call" (which call of that module: 0, 1, ...), "dla_shared" (the
outermost module called more than once that the node belongs to, or None), "dla_leaf" (a
module traced as one node because `leaves` names it), and from one eval run on the example
inputs "dla_is_tensor", "dla_has_tensors" (a tuple or list holding tensors), "dla_shape"
and "dla_nonneg" (a float tensor >= 0).
"""

import dis
import inspect
from contextlib import contextmanager

import torch
import torch.fx as fx

from .plan import name_matches


class PrepareError(ValueError):
    """The model cannot be prepared as it is (an op the DLA does not run in the quantized
    region, a pattern the hardware cannot fuse). The message names the node."""


class _ModuleTraceError(Exception):
    """A trace failure inside a module: the innermost module's path and class."""

    def __init__(self, path, cls, error):
        super().__init__(str(error))
        self.path, self.cls, self.error = path, cls, error


class _ScopeTracer(fx.Tracer):
    """Records, in node.meta, the module each op was traced inside and its call site;
    modules `leaves` names (globs) are traced as one call_module node."""

    def __init__(self, leaves=()):
        super().__init__()
        self._frames = [["", 0, 0]]  # [module path, call index, nodes created in this call]
        self._calls = {}
        self._leaves = list(leaves)

    def is_leaf_module(self, m, qualname):
        if any(name_matches(p, [qualname]) for p in self._leaves):
            return True
        if getattr(m, "dla_leaf", False):  # a dlasim module the registry maps whole (TableActivation)
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        call = self._calls.get(path, 0)
        self._calls[path] = call + 1
        if self.is_leaf_module(m, path):
            return super().call_module(m, forward, args, kwargs)
        self._frames.append([path, call, 0])
        try:
            return super().call_module(m, forward, args, kwargs)
        except _ModuleTraceError:
            raise
        except Exception as e:  # the innermost module that failed
            raise _ModuleTraceError(path, type(m).__name__, e) from e
        finally:
            self._frames.pop()

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        frame = self._frames[-1]
        node.meta["dla_scope"] = frame[0]
        node.meta["dla_stack"] = tuple(f[0] for f in self._frames[1:])
        if kind == "call_module":  # a leaf: its own call site
            node.meta["dla_site"] = "%s#0" % target
            node.meta["dla_call"] = self._calls.get(str(target), 1) - 1
            node.meta["dla_stack"] += (str(target),)
        else:
            node.meta["dla_site"] = "%s#%d" % (frame[0], frame[2])
            node.meta["dla_call"] = frame[1]
        frame[2] += 1
        if kind == "call_module" and any(name_matches(p, [str(target)]) for p in self._leaves):
            node.meta["dla_leaf"] = True
        return node


def _proxy_iter(self):
    """fx.Proxy.__iter__ with the calling instruction found by its offset: torch 1.13
    indexes the instruction list with f_lasti // 2, which is wrong on Python 3.11 (cache
    entries), so `a, b = proxy` (`bs, c, h, w = x.shape`) failed with an IndexError."""
    frame = inspect.currentframe().f_back
    inst = next((i for i in dis.get_instructions(frame.f_code) if i.offset == frame.f_lasti), None)
    if inst is not None and inst.opname == "UNPACK_SEQUENCE":
        return (self[i] for i in range(inst.argval))
    return self.tracer.iter(self)


@contextmanager
def _unpacking_proxies():
    saved = fx.Proxy.__iter__
    fx.Proxy.__iter__ = _proxy_iter
    try:
        yield
    finally:
        fx.Proxy.__iter__ = saved


def _has_tensors(r):
    found = []
    fx.node.map_aggregate(r, lambda a: found.append(a) if isinstance(a, torch.Tensor) else None)
    return bool(found)


def _mutable(a):
    """fx's immutable lists and dicts as plain ones (a leaf module may change its input list,
    as YOLOv5's Detect does)."""
    if isinstance(a, tuple):
        return tuple(_mutable(e) for e in a)
    if isinstance(a, list):
        return [_mutable(e) for e in a]
    if isinstance(a, dict):
        return {k: _mutable(v) for k, v in a.items()}
    return a


class _Recorder(fx.Interpreter):
    def call_module(self, target, args, kwargs):
        return super().call_module(target, _mutable(args), _mutable(kwargs))

    def run_node(self, n):
        r = super().run_node(n)
        is_t = isinstance(r, torch.Tensor)
        n.meta["dla_is_tensor"] = is_t
        n.meta["dla_has_tensors"] = (not is_t) and isinstance(r, (tuple, list, dict)) and _has_tensors(r)
        n.meta["dla_shape"] = tuple(r.shape) if is_t else None
        n.meta["dla_nonneg"] = bool(is_t and r.is_floating_point() and r.numel() > 0 and float(r.min()) >= 0)
        return r


def trace(model, leaves=()):
    """The traced GraphModule of `model` (modules `leaves` names stay one node each); see
    record() for the meta of one run."""
    tracer = _ScopeTracer(leaves)
    try:
        with _unpacking_proxies():
            graph = tracer.trace(model)
    except _ModuleTraceError as e:
        raise PrepareError("dlasim.prepare_qat: torch.fx cannot trace module %s '%s': %s. Name it as a leaf "
                           "module, leaf_modules=[%r] (or plan float_layers=[%r]): it then runs as it is, in "
                           "float, on the host" % (e.cls, e.path, e.error, e.path, e.path)) from e.error
    except Exception as e:  # torch.fx.proxy.TraceError and friends, in the model's own forward()
        raise PrepareError("dlasim.prepare_qat: torch.fx cannot trace %s.forward: %s. Control flow that depends on "
                           "tensor values cannot be traced; move it into a submodule and name that a leaf "
                           "module (leaf_modules=[...]: it runs in float, on the host)" % (type(model).__name__, e)) \
            from e
    for n in graph.nodes:  # the outermost module called more than once that n is part of
        n.meta["dla_shared"] = next((p for p in n.meta.get("dla_stack", ()) if tracer._calls.get(p, 0) > 1), None)
    return fx.GraphModule(model, graph)


def record(gm, model, example_inputs):
    """Fills the nodes' meta from one eval run of the model on example_inputs."""
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


__all__ = ["PrepareError", "trace", "record", "fx_names", "describe", "float_hint", "input_shape", "arg", "pair"]

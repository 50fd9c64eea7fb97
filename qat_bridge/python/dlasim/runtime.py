"""The prepared model at run time (torch.ao's converted model has the same role).

A QatModel runs its *program*: the traced graph as a list of steps, with the quantized
layers (dlasim.layers) in place of the model's and the float islands' modules and
functions as they were. Values are referred to by name (Ref); `fill` puts the values in.

Its public interface, which dlasim.export and dlasim.diagnostics use:
`program` (the steps), `outputs` (the output structure, of Refs), `nodes` (one record per
value: name, kind, inputs, act, layer, shape, ...), `layers`, `acts`, `float_modules`,
`input_names`, `run(*inputs, float_mode=, observe=, record=)` and `fracs()`.
"""

from contextlib import contextmanager

import torch
import torch.fx as fx
from torch import nn

from .layers import MacLayer, RunContext


FLOAT = "float"  # the kind of the node records of float-island values (the op kinds are dlasim.ops')


class Ref:
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


_RESERVED = set(dir(nn.ModuleDict))


def layer_key(name):
    """The key of a layer in QatModel.layers (a name nn.ModuleDict does not reserve)."""
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
                 input_names, notes=(), rules=None):
        super().__init__()
        self.layers = layers
        self.acts = acts
        self.float_modules = float_modules
        self.float_attrs = float_attrs
        self.program = program
        self.outputs = outputs
        self.nodes = nodes
        self.hw_options = hw
        self.plan = plan
        self.config = config
        self.input_names = input_names
        self.notes = list(notes)  # what the precision resolution changed, for people
        # what the plan's rules did (dlasim.report): the first/last rule's layers and the
        # island neighbours it left alone, the tied call sites
        self.rules = dict(rules or {})
        self.register_buffer("epoch", torch.tensor(-1, dtype=torch.int64))

    # -- running -----------------------------------------------------------------------

    def _run(self, args, ctx):
        if len(args) != len(self.input_names):
            raise TypeError("the prepared model takes %d input(s) (%s), got %d"
                            % (len(self.input_names), ", ".join(self.input_names), len(args)))
        env = {}
        fm, layers = self.float_modules, self.layers
        for step in self.program:
            op, name = step[0], step[1]
            if op == "placeholder":
                env[name] = args[step[2]]
            elif op == "layer":
                env[name] = layers[step[2]](*[env[i] for i in step[3]], ctx)
            elif op == "call_module":
                a, k = fill(step[3], env), fill(step[4], env)
                env[name] = fm[step[2]](*a, **k)
            elif op == "call_function":
                env[name] = step[2](*fill(step[3], env), **fill(step[4], env))
            elif op == "call_method":
                a = fill(step[3], env)
                env[name] = getattr(a[0], step[2])(*a[1:], **fill(step[4], env))
            elif op == "get_attr":
                env[name] = _get_attr(self.float_attrs, step[2])
            else:
                raise RuntimeError("bad program step %r" % (step,))
        if ctx.record is not None:
            ctx.record.update(env)
        return fill(self.outputs, env)

    def needs_calibration(self):
        return any(a.observer is not None and not bool(a.ready) for a in self.acts)

    @torch.no_grad()
    def calibrate_batch(self, *args):
        """Observes one batch with the float model (no quantization) and sets the fracs."""
        self._run(args, RunContext(self.acts, float_mode=True, observe=True))
        for a in self.acts:
            a.update()

    def forward(self, *args):
        if self.needs_calibration():
            self.calibrate_batch(*args)
        observe = self.training
        if observe:
            for a in self.acts:
                a.update()
        return self._run(args, RunContext(self.acts, observe=observe))

    def run(self, *args, float_mode=False, observe=False, record=None):
        """One forward with explicit switches; `record` (a dict) receives every value."""
        return self._run(args, RunContext(self.acts, float_mode=float_mode, observe=observe, record=record))

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
            if isinstance(m, MacLayer):
                m.weight_frac_frozen.fill_(True)

    def enable_observers(self):
        for a in self.acts:
            if a.observer is not None:
                a.observer_enabled.fill_(True)
        for m in self.layers.values():
            if isinstance(m, MacLayer):
                m.weight_frac_frozen.fill_(False)

    def freeze_bn(self):
        """Folds BatchNorm with its running statistics from now on (and stops updating them)."""
        for m in self.layers.values():
            if isinstance(m, MacLayer):
                m.bn_frozen.fill_(True)

    def fracs(self):
        """{tensor name: (dtype, frac)} of every quantized tensor."""
        return {n["name"]: (self.acts[n["act"]].dtype, self.acts[n["act"]].frac())
                for n in self.nodes if n.get("act") is not None}

    def extra_repr(self):
        return "plan: %s; %d layers, %d activation formats" % (self.plan.describe(), len(self.layers), len(self.acts))


def fill(struct, env):
    if isinstance(struct, Ref):
        return env[struct.name]
    if isinstance(struct, tuple):
        return tuple(fill(s, env) for s in struct)
    if isinstance(struct, list):
        return [fill(s, env) for s in struct]
    if isinstance(struct, dict):
        return {k: fill(v, env) for k, v in struct.items()}
    if isinstance(struct, slice):
        return slice(fill(struct.start, env), fill(struct.stop, env), fill(struct.step, env))
    return struct


def _get_attr(root, key):
    return getattr(root, key)


def refs(struct, resolve):
    return torch.fx.node.map_aggregate(struct, lambda a: Ref(resolve(a)) if isinstance(a, fx.Node) else a)


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


def as_inputs(example_inputs):
    """A tensor or a sequence of tensors as a tuple of inputs."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


@contextmanager
def evaluating(model):
    """The QatModel of `model` (unwrapped), in eval mode inside the block, its mode restored after."""
    m = unwrap(model)
    was = m.training
    m.eval()
    try:
        yield m
    finally:
        m.train(was)


@torch.no_grad()
def calibrate(model, batches, max_batches=None):
    """Post-training calibration: observes the quantized model on `batches` (each a tensor
    or a tuple of inputs; (inputs, target) pairs are fine: the first item is used if the
    model takes one input) with BN in eval, then sets every frac."""
    with evaluating(model) as m:
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
    return model


__all__ = ["QatModel", "FLOAT", "Ref", "fill", "refs", "layer_key", "as_inputs", "evaluating", "unwrap", "set_epoch",
           "disable_observers", "freeze_bn", "calibrate"]

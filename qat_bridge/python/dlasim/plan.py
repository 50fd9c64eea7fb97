"""Precision plans: which type each layer's weights and outputs get, which layers stay in float.

A plan names layers by module name ("layer1.0.conv1"), by the torch.fx node name of a
functional op ("add_3", "cat"), or by a glob over either ("layer1.*", "head*"). A name also
covers what is inside it: "head" names "head.conv" and every functional op traced inside
the module "head". Folded BatchNorm and fused ReLU modules name the conv they were folded
into.

    plan = dlasim.PrecisionPlan(
        weight="i4", act="int4",                  # the default of every layer
        layers={"layer4.*": "w8a8",               # later entries win, field by field
                "head.conv": {"act": "i16", "frac": 6}},
        float_layers=["decoder"],                 # runs on the host, in float
        fixed_fracs={"head.conv": 6},             # same as "frac" above
        input={"dtype": "u8", "frac": 8},         # graph inputs (images arrive as u8)
        first_last="int8",                        # first/last MAC layers 8-bit (default)
        first_last_at_islands=False,              # ... of the graph only, not next to float islands
        tie_calls=["backbone"])                   # calls of a shared module share their fracs

Types: weights "i4" or "i8"; activations "i4", "u4", "i8", "u8", "i16", or "int4", "int8",
"int16": the latter pick the signedness themselves (unsigned when the layer's output is
clipped at 0 by a fused ReLU/ReLU6/clamp, signed otherwise; 16 bits are always i16).

The first/last rule: when the default weight or activation type has 4 bits, the MAC
layers (conv2d, linear) that read a graph input, or whose output reaches a graph output
without passing another MAC layer, get i8 weights and 8-bit outputs (`first_last`,
"int8"), except for the fields the plan sets for them by name. `first_last=None` turns
the rule off. A float island splits the graph into device segments; the MAC layers that
read an island's output or feed an island are their segments' first and last layers, and
get the rule too only with `first_last_at_islands=True`; by default
(`first_last_at_islands=False`) they keep the plan's types. `dlasim.report` lists which
layers the rule set, and the island neighbours it left alone.

Shared modules: a module called more than once (a siamese backbone on the template and
on the search image) is one set of weights but, by default, each call's tensors get
fracs of their own (from their own statistics), so the calls are different integer
programs. `tie_calls=["backbone"]` (module names or globs; True: every module called more
than once) gives the corresponding tensors of all calls one format each, and the calls'
inputs too, so that one compiled backbone serves every call; `dlasim.report` says which
calls are tied, and which calls of one module got different fracs.

MAC precisions are the MAC array's (and the compiler's): i8/u8 x i8, i4/u4 x i4,
i8/u8 x i4, i16 x i8. A layer with i8 weights therefore reads 8-bit activations: the
tensor it reads is widened to 8 bits when its type is "int4" (automatic; the model's
`notes` say so), and an exact 4-bit type there is an error, as is i16 x i4.

`PrecisionPlan.preset(name)`: "int8" (w8a8, the default), "int4" (w4a4, first/last int8),
"int4_all" (w4a4 everywhere), "w4a8", "int16" (i8 weights, i16 activations).
"""

import fnmatch
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Optional, Sequence

from .hw import TABLES


class PlanError(ValueError):
    """A precision plan that names no layer, an unknown type, or a combination the
    hardware config does not support."""


_ACT = {"i4": (4, "i"), "u4": (4, "u"), "i8": (8, "i"), "u8": (8, "u"), "i16": (16, "i"),
        "int4": (4, "auto"), "int8": (8, "auto"), "int16": (16, "i")}
_WEIGHT = {"i4": "i4", "int4": "i4", "i8": "i8", "int8": "i8"}


def parse_act(text, where):
    """(bits, sign) of an activation type name; sign is "i", "u" or "auto"."""
    try:
        return _ACT[str(text)]
    except KeyError:
        raise PlanError("%s: unknown activation type %r (expected one of %s)"
                        % (where, text, ", ".join(_ACT))) from None


def parse_weight(text, where):
    try:
        return _WEIGHT[str(text)]
    except KeyError:
        raise PlanError("%s: unknown weight type %r (expected i4 or i8)" % (where, text)) from None


def act_name(bits, signed):
    return ("i" if signed else "u") + str(bits)


@dataclass
class LayerPrecision:
    """What a plan entry sets for the layers it names (None: not set here)."""

    weight: Optional[str] = None
    act: Optional[str] = None
    frac: Optional[int] = None

    @staticmethod
    def coerce(value, where):
        if isinstance(value, LayerPrecision):
            out = value
        elif isinstance(value, str):
            out = _shorthand(value, where)
        elif isinstance(value, Mapping):
            unknown = set(value) - {"weight", "act", "frac"}
            if unknown:
                raise PlanError("%s: unknown field(s) %s (weight, act, frac)" % (where, sorted(unknown)))
            out = LayerPrecision(value.get("weight"), value.get("act"), value.get("frac"))
        else:
            raise PlanError("%s: expected a dict(weight=, act=, frac=), a LayerPrecision or a string "
                            "such as 'w4a4', got %r" % (where, value))
        if out.weight is not None:
            parse_weight(out.weight, where)
        if out.act is not None:
            parse_act(out.act, where)
        if out.frac is not None and not (-32 <= int(out.frac) <= 32):
            raise PlanError("%s: frac %d is outside [-32, 32]" % (where, out.frac))
        return out


def _shorthand(text, where):
    """"w4a4", "w8a16", "w4a8", "int8", "i16" ..."""
    t = text.lower()
    if t.startswith("w") and "a" in t:
        w, a = t[1:].split("a", 1)
        return LayerPrecision(weight="i" + w, act=("int" + a) if a.isdigit() else a)
    if t in _ACT:
        return LayerPrecision(act=t)
    raise PlanError("%s: cannot read %r (use 'w4a4', 'w8a8', 'w8a16', or dict(weight=, act=, frac=))"
                    % (where, text))


@dataclass
class PrecisionPlan:
    """Per-layer weight and activation types; see the module docstring."""

    weight: str = "i8"
    act: str = "int8"
    layers: Mapping[str, Any] = field(default_factory=dict)
    float_layers: Sequence[str] = ()
    fixed_fracs: Mapping[str, int] = field(default_factory=dict)
    input: Any = None
    first_last: Optional[str] = "int8"
    first_last_at_islands: bool = False
    tie_calls: Any = ()

    PRESETS = ("int8", "int4", "int4_all", "w4a8", "int16")

    @staticmethod
    def preset(name, **changes):
        table = {
            "int8": dict(weight="i8", act="int8"),
            "int4": dict(weight="i4", act="int4"),
            "int4_all": dict(weight="i4", act="int4", first_last=None),
            "w4a8": dict(weight="i4", act="int8"),
            "int16": dict(weight="i8", act="int16"),
        }
        if name not in table:
            raise PlanError("unknown plan preset %r (expected one of %s)" % (name, ", ".join(table)))
        return PrecisionPlan(**{**table[name], **changes})

    @staticmethod
    def coerce(plan):
        """A PrecisionPlan from None (int8), a preset name, a dict of the fields, or a plan."""
        if plan is None:
            out = PrecisionPlan()
        elif isinstance(plan, PrecisionPlan):
            out = plan
        elif isinstance(plan, str):
            out = PrecisionPlan.preset(plan)
        elif isinstance(plan, Mapping):
            d = dict(plan)
            if "float" in d:
                d["float_layers"] = d.pop("float")
            base = PrecisionPlan.preset(d.pop("preset")) if "preset" in d else PrecisionPlan()
            names = {f.name for f in fields(PrecisionPlan)}
            unknown = set(d) - names
            if unknown:
                raise PlanError("plan: unknown field(s) %s (expected %s)" % (sorted(unknown), ", ".join(sorted(names))))
            out = replace(base, **d)
        else:
            raise PlanError("plan must be None, a preset name, a dict or a PrecisionPlan, got %r" % (plan,))
        out.validate()
        return out

    def validate(self):
        parse_weight(self.weight, "plan.weight")
        parse_act(self.act, "plan.act")
        if self.first_last not in (None, False):
            parse_act(self.first_last, "plan.first_last")
        if not isinstance(self.first_last_at_islands, bool):
            raise PlanError("plan.first_last_at_islands must be True or False, got %r" % (self.first_last_at_islands,))
        if isinstance(self.tie_calls, str) or not (self.tie_calls is True or self.tie_calls is False or
                                                   all(isinstance(t, str) for t in self.tie_calls)):
            raise PlanError("plan.tie_calls must be True or a list of module names or globs, got %r"
                            % (self.tie_calls,))
        if isinstance(self.float_layers, str):
            raise PlanError("plan.float_layers must be a list of names or globs, got the string %r"
                            % (self.float_layers,))
        for pattern, value in self.layers.items():
            LayerPrecision.coerce(value, "plan.layers[%r]" % pattern)
        for pattern, frac in self.fixed_fracs.items():
            if not isinstance(frac, int) or not -32 <= frac <= 32:
                raise PlanError("plan.fixed_fracs[%r] = %r must be an integer in [-32, 32]" % (pattern, frac))

    @property
    def four_bit_default(self):
        return parse_weight(self.weight, "plan.weight") == "i4" or parse_act(self.act, "plan.act")[0] == 4

    def describe(self):
        parts = ["weights %s, activations %s" % (self.weight, self.act)]
        if self.four_bit_default and self.first_last:
            parts.append("first/last layers %s%s" % (self.first_last, " (also at float islands)"
                                                     if self.first_last_at_islands else ""))
        if self.layers:
            parts.append("%d layer rule(s)" % len(self.layers))
        if self.float_layers:
            parts.append("float: %s" % ", ".join(self.float_layers))
        if self.tie_calls:
            parts.append("tied calls: %s" % ("all" if self.tie_calls is True else ", ".join(self.tie_calls)))
        return "; ".join(parts)


def name_matches(pattern, names):
    """True when the glob `pattern` matches one of `names` or a module that contains it."""
    for n in names:
        if not n:
            continue
        if fnmatch.fnmatchcase(n, pattern) or n.startswith(pattern + "."):
            return True
    return False


def input_specs(plan_input, input_names):
    """{input name: dict(dtype=None|str, frac=None|int)} from plan.input."""
    out = {n: {"dtype": None, "frac": None} for n in input_names}
    if plan_input is None:
        return out
    if isinstance(plan_input, str):
        parse_act(plan_input, "plan.input")
        return {n: {"dtype": plan_input, "frac": None} for n in input_names}
    if not isinstance(plan_input, Mapping):
        raise PlanError("plan.input must be a type name, dict(dtype=, frac=) or {input name: dict}, got %r"
                        % (plan_input,))
    if set(plan_input) <= {"dtype", "frac"}:
        per = {n: dict(plan_input) for n in input_names}
    else:
        unknown = set(plan_input) - set(input_names)
        if unknown:
            raise PlanError("plan.input names %s, but the graph inputs are %s"
                            % (sorted(unknown), list(input_names)))
        per = {n: dict(plan_input.get(n, {})) for n in input_names}
    for n, spec in per.items():
        bad = set(spec) - {"dtype", "frac"}
        if bad:
            raise PlanError("plan.input[%r]: unknown field(s) %s (dtype, frac)" % (n, sorted(bad)))
        if spec.get("dtype") is not None:
            parse_act(spec["dtype"], "plan.input[%r]" % n)
        if spec.get("frac") is not None and not -32 <= int(spec["frac"]) <= 32:
            raise PlanError("plan.input[%r]: frac %r is outside [-32, 32]" % (n, spec["frac"]))
        out[n] = {"dtype": spec.get("dtype"), "frac": spec.get("frac")}
    return out


#: The MAC array's precisions, from the one table of the library (dla/mac_modes.hpp):
#: activation bits x weight type -> (mode, hardware-config flag it needs).
MAC_MODES = {(TABLES["bits"][a], m["wgt"]): (m["mode"], m["flag"]) for m in TABLES["mac_modes"] for a in m["act"]}
MAC_MODES_TEXT = TABLES["mac_modes_text"]


def act_bits(dtype):
    return TABLES["bits"][dtype]


def mac_mode(act_dtype, weight_dtype):
    """(mode, hw flag or None) of a MAC layer reading `act_dtype` with `weight_dtype`
    weights; None when the MAC array has no such precision (4-bit x i8, i16 x i4: the
    ops would widen them, the compiler refuses them)."""
    return MAC_MODES.get((act_bits(act_dtype), weight_dtype))


__all__ = ["PrecisionPlan", "LayerPrecision", "PlanError", "name_matches", "mac_mode", "MAC_MODES"]
